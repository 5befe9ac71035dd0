//! Everything the tables say about one SDSS-V target ([`Facts`]): identifiers, positions,
//! photometry, the redshift fits (the best one first, as ZALL lists them), the spectrum's summary
//! and its emission lines — from the simulation of its coadd ([`simulate`]), or, for the spAll rows
//! of field-MJDs that are not generated, from the target alone ([`Facts::synthetic`]).

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

use super::group::Group;
use super::lines::{self, LineRow};
use super::NEXP;
use crate::seeds::{rng, Stream};
use crate::spectrum::{observe_coadd, Class, Continuum, FiberSpectrum, C_KMS};
use crate::tables::Summary;
use crate::targets::{make_target, Target};

/// Redshift fits per target in ZALL (the best one first).
pub const NFITS: usize = 3;

/// One redshift/classification fit (a ZALL row).
#[derive(Debug, Clone)]
pub struct Fit {
    pub class: Class,
    pub subclass: &'static str,
    pub z: f64,
    pub z_err: f64,
    pub zwarning: i32,
    pub rchi2: f32,
    pub rchi2diff: f32,
    pub tfile: &'static str,
    pub npoly: i32,
    /// Template columns used (unused ones -1).
    pub tcolumn: [i32; 10],
    pub theta: [f32; 10],
    pub vdisp: f32,
    pub vdisp_err: f32,
}

/// Per-target quantities only the SDSS-V tables report.
#[derive(Debug, Clone)]
pub struct Misc {
    pub catalogid_v0: i64,
    pub catalogid_v0p5: i64,
    pub carton_pk: i64,
    pub gaia_id: i64,
    pub pmra: f32,
    pub pmdec: f32,
    pub parallax: f32,
    /// Measured fiber positions per exposure, degrees.
    pub fiber_ra: [f64; NEXP],
    pub fiber_dec: [f64; NEXP],
    /// Focal-plane position per exposure, mm.
    pub xfocal: [f64; NEXP],
    pub yfocal: [f64; NEXP],
    pub fiberid: i32,
    pub target_flags: [bool; 29],
    pub specprimary: bool,
    /// Sky flux in the ugriz bands, nanomaggies.
    pub skyflux: [f32; 5],
    pub good_pixels: usize,
}

/// One target as every table sees it.
#[derive(Debug, Clone)]
pub struct Facts<'g> {
    pub g: &'g Group,
    pub ti: i32,
    pub catalogid: i64,
    pub sdss_id: i64,
    pub specobjid: String,
    pub t: Target,
    pub sn_median: [f32; 5],
    pub sn_median_all: f32,
    pub summary: Summary,
    pub fits: Vec<Fit>,
    pub lines: Vec<LineRow>,
    pub misc: Misc,
}

/// A target's coadd: the rows of the spField/spZbest images.
#[derive(Debug, Clone)]
pub struct Simulated<'g> {
    pub facts: Facts<'g>,
    pub spec: FiberSpectrum,
    /// Spectral resolution (FWHM, Å) per pixel: the SPECRESL row and WRESL.
    pub wresl: Vec<f32>,
}

/// The random stream of a target's SDSS-V-only quantities.
fn misc_rng(g: &Group, ti: i32) -> StdRng {
    rng(g.seed, g.index, Stream::Target, (1 << 40) | ti as u64)
}

/// Simulates target `ti` of group `g` on its grid under the group's sky.
pub fn simulate<'g>(g: &'g Group, ti: i32, grid: &[f64], sky: &[f64]) -> Simulated<'g> {
    let item = ti as u64;
    let mut target = make_target(
        &g.plate_info(),
        ti,
        &mut rng(g.seed, g.index, Stream::Target, item),
    );
    // One spectrograph at APO: b1 and r1.
    target.spectrograph = 1;
    let spec = observe_coadd(
        &target.model,
        grid,
        sky,
        &target.conditions,
        &mut rng(g.seed, g.index, Stream::Pixels, item),
    );
    let lines = lines::measure(
        &target,
        grid,
        &spec,
        &mut rng(g.seed, g.index, Stream::Lines, item),
    );
    let summary = Summary::new(grid, &target, &spec);
    let wresl = grid
        .iter()
        .zip(&spec.wdisp)
        .map(|(&l, &w)| {
            (2.3548 * f64::from(w) * 10f64.powf(l) * std::f64::consts::LN_10 * 1e-4) as f32
        })
        .collect();
    let good = spec.ivar.iter().filter(|&&v| v > 0.0).count();
    let facts = Facts::new(g, ti, target, &spec, summary, lines, good);
    Simulated { facts, spec, wresl }
}

impl<'g> Facts<'g> {
    fn new(
        g: &'g Group,
        ti: i32,
        t: Target,
        spec: &FiberSpectrum,
        summary: Summary,
        lines: Vec<LineRow>,
        good_pixels: usize,
    ) -> Self {
        let mut r = misc_rng(g, ti);
        let fits = fits(&t, &mut r);
        let misc = misc(ti, &t, good_pixels, &mut r);
        let sdss_id = g.sdss_id(ti);
        Self {
            g,
            ti,
            catalogid: g.catalogid(ti),
            sdss_id,
            specobjid: g.specobjid(sdss_id),
            sn_median: spec.sn_median,
            sn_median_all: spec.sn_median_all,
            t,
            summary,
            fits,
            lines,
            misc,
        }
    }

    /// A target without a simulated spectrum (spAll rows of field-MJDs that are not generated):
    /// the spectrum's summary is drawn to look like a simulated one's.
    pub fn synthetic(g: &'g Group, ti: i32) -> Self {
        let t = make_target(
            &g.plate_info(),
            ti,
            &mut rng(g.seed, g.index, Stream::Target, ti as u64),
        );
        let mut r = rng(g.seed, g.index, Stream::Pixels, ti as u64);
        let sn: f32 = r.random_range(0.5..15.0);
        let spec = FiberSpectrum {
            sn_median_all: sn,
            sn_median: std::array::from_fn(|b| sn * (0.4 + 0.3 * b as f32)),
            ..Default::default()
        };
        let good = g.npix - r.random_range(0..g.npix / 20);
        let (lo, hi) = (g.coeff0, g.coeff0 + super::COEFF1 * (g.npix - 1) as f64);
        let summary = Summary {
            dof: good as i32 - 13,
            any_and: 0,
            any_or: if r.random_bool(0.3) { 1 << 23 } else { 0 },
            wavemin: 10f64.powf(lo) as f32,
            wavemax: 10f64.powf(hi) as f32,
            wcoverage: (hi - lo) as f32,
            spectroflux: std::array::from_fn(|b| {
                crate::targets::nanomaggies(f64::from(t.spectro_mags[b])) as f32
            }),
            spectroflux_ivar: [100.0; 5],
        };
        Self::new(g, ti, t, &spec, summary, Vec::new(), good)
    }

    /// The best non-QSO fit and its 1-based number.
    pub fn noqso(&self) -> (usize, &Fit) {
        self.fits
            .iter()
            .enumerate()
            .find(|(_, f)| f.class != Class::Qso)
            .map_or((1, &self.fits[0]), |(i, f)| (i + 1, f))
    }

    /// Effective temperature of a star's model (None for other classes).
    pub fn temperature(&self) -> Option<f64> {
        match self.t.model.continuum {
            Continuum::Star { temp, .. } => Some(temp),
            _ => None,
        }
    }
}

/// The best fit (the target's own) and two worse ones of the other classes.
fn fits(t: &Target, r: &mut StdRng) -> Vec<Fit> {
    let tcolumn = |n: i32| std::array::from_fn(|k| if (k as i32) < n { k as i32 } else { -1 });
    let fit = |class: Class, z: f64, rchi2: f32, subclass: &'static str, r: &mut StdRng| {
        let (tfile, ncol) = match class {
            Class::Galaxy => ("spEigenGal-55740.fits", 4),
            Class::Qso => ("spEigenQSO-55732.fits", 4),
            Class::Star => ("spEigenStar-55734.fits", 1),
        };
        Fit {
            class,
            subclass,
            z,
            z_err: 1e-4 * (1.0 + z),
            zwarning: 0,
            rchi2,
            rchi2diff: 0.0,
            tfile,
            npoly: 3,
            tcolumn: tcolumn(ncol),
            theta: std::array::from_fn(|k| {
                if k < ncol as usize + 3 {
                    r.random_range(-2.0..2.0)
                } else {
                    0.0
                }
            }),
            vdisp: 0.0,
            vdisp_err: 0.0,
        }
    };
    let mut best = fit(t.class, t.z, t.rchi2, t.subclass, r);
    best.tfile = t.tfile();
    best.z_err = t.z_err;
    best.zwarning = t.zwarning;
    best.rchi2diff = t.rchi2diff;
    best.vdisp = t.vdisp;
    best.vdisp_err = t.vdisp_err;
    let mut out = vec![best];
    let mut rchi2 = t.rchi2 + t.rchi2diff;
    for class in [Class::Galaxy, Class::Qso, Class::Star] {
        if class == t.class || out.len() == NFITS {
            continue;
        }
        let z = match class {
            Class::Galaxy => r.random_range(0.01..0.8),
            Class::Qso => r.random_range(0.5..4.0),
            Class::Star => 1e-4 * r.sample::<f64, _>(StandardNormal),
        };
        let mut f = fit(class, z, rchi2, "", r);
        f.rchi2diff = r.random_range(0.005..0.2);
        rchi2 += f.rchi2diff;
        out.push(f);
    }
    out
}

fn misc(ti: i32, t: &Target, good_pixels: usize, r: &mut StdRng) -> Misc {
    let star = t.class == Class::Star;
    let catalogid_v0 = 4_000_000_000 + r.random_range(0..999_999_999);
    let catalogid_v0p5 = 27_021_597_000_000_000 + r.random_range(0..999_999_999);
    let carton_pk = r.random_range(10_000_000..99_999_999);
    let gaia_id = 3_000_000_000_000_000_000 + r.random_range(0..999_999_999_999_999);
    let mut normal = |s: f64| s * r.sample::<f64, _>(StandardNormal);
    let (pmra, pmdec, parallax) = if star {
        (normal(6.0), normal(6.0), (1.0 + normal(0.5)).abs())
    } else {
        (0.0, 0.0, 0.0)
    };
    // A fiber lands within ~0.1" of its target in each exposure.
    let jitter: [(f64, f64); NEXP] = std::array::from_fn(|_| (normal(2e-5), normal(2e-5)));
    let sky: [f64; 5] = std::array::from_fn(|_| normal(0.1));
    let cos_dec = t.dec.to_radians().cos().max(1e-3);
    let mut flags = [false; 29];
    flags[match t.class {
        Class::Galaxy => 3,
        Class::Qso => 7,
        Class::Star => 20,
    }] = true;
    Misc {
        catalogid_v0,
        catalogid_v0p5,
        carton_pk,
        gaia_id,
        pmra: pmra as f32,
        pmdec: pmdec as f32,
        parallax: parallax as f32,
        fiber_ra: std::array::from_fn(|e| crate::astrometry::wrap_ra(t.ra + jitter[e].0 / cos_dec)),
        fiber_dec: std::array::from_fn(|e| t.dec + jitter[e].1),
        xfocal: std::array::from_fn(|e| t.xfocal + 0.01 * jitter[e].0 / 2e-5),
        yfocal: std::array::from_fn(|e| t.yfocal + 0.01 * jitter[e].1 / 2e-5),
        fiberid: (ti - 1) % 500 + 1,
        target_flags: flags,
        specprimary: t.specprimary,
        skyflux: std::array::from_fn(|b| ((0.6 + 0.9 * b as f64) * (1.0 + sky[b])) as f32),
        good_pixels,
    }
}

/// Radial velocity of a fit, km/s.
pub fn velocity(z: f64) -> f64 {
    z * C_KMS
}
