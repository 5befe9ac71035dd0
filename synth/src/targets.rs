//! The objects behind the fibers of a plate: class, redshift, spectral model, sky position,
//! photometry, targeting flags and per-fiber defects, drawn from each fiber's own random stream.
//!
//! Class mix: ~60 % GALAXY (z 0-0.8), ~25 % QSO (z 0.5-4), ~15 % STAR (z ≈ 0); ZWARNING = 0 for ~90 %.

use std::f64::consts::LN_10;

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::astrometry::{focal_xy, offset, PLATE_RADIUS_DEG};
use crate::plate::PlateInfo;
use crate::spectrum::{Class, Continuum, FiberConditions, Line, ObjectModel, BAND_WAVE};

/// One fiber's object, with everything the catalogs report about it.
#[derive(Debug, Clone)]
pub struct Target {
    pub fiber: i32,
    pub spectrograph: i32,
    pub ra: f64,
    pub dec: f64,
    pub xfocal: f64,
    pub yfocal: f64,
    pub class: Class,
    pub subclass: &'static str,
    pub objtype: &'static str,
    pub sourcetype: &'static str,
    pub z: f64,
    pub z_err: f64,
    pub zwarning: i32,
    pub rchi2: f32,
    pub rchi2diff: f32,
    pub vdisp: f32,
    pub vdisp_err: f32,
    pub specprimary: bool,
    pub model: ObjectModel,
    /// Photometric ugriz magnitudes (with photometric noise) and their errors.
    pub mags: [f32; 5],
    pub mag_errs: [f32; 5],
    /// Synthetic ugriz magnitudes of the model spectrum.
    pub spectro_mags: [f32; 5],
    pub boss_target1: i64,
    pub ancillary_target1: i64,
    pub thing_id: i32,
    pub run: i32,
    pub camcol: i32,
    pub field: i32,
    pub id: i32,
    pub sfd_ebv: f32,
    pub conditions: FiberConditions,
}

impl Target {
    /// `OBJID` of the plug map: run, rerun, camcol, field, id.
    pub fn objid(&self) -> [i32; 5] {
        [self.run, 301, self.camcol, self.field, self.id]
    }

    /// `TFILE`: the eigen-template file of the best fit.
    pub fn tfile(&self) -> &'static str {
        match self.class {
            Class::Galaxy => "spEigenGal-55740.fits",
            Class::Qso => "spEigenQSO-55732.fits",
            Class::Star => "spEigenStar-55734.fits",
        }
    }
}

/// AB magnitude of a flux density `f` (1e-17 erg/s/cm²/Å) at wavelength `lambda` (Å).
pub fn ab_mag(f: f64, lambda: f64) -> f64 {
    if f <= 0.0 {
        return 30.0;
    }
    let f_nu = f * 1e-17 * lambda * lambda / 2.997_924_58e18;
    (-2.5 * f_nu.log10() - 48.6).clamp(10.0, 30.0)
}

/// Flux in nanomaggies of an AB magnitude.
pub fn nanomaggies(mag: f64) -> f64 {
    10f64.powf((22.5 - mag) / 2.5)
}

fn lognormal(rng: &mut StdRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * rng.sample::<f64, _>(StandardNormal)).exp()
}

fn galaxy(rng: &mut StdRng) -> (ObjectModel, &'static str, f32) {
    let z = (0.8 * rng.random::<f64>().powf(0.7)).max(0.005);
    let amp = lognormal(rng, 1.8, 0.5);
    let emission = rng.random_bool(0.4);
    let (alpha, brk) = if emission {
        (rng.random_range(-1.0..0.5), rng.random_range(0.05..0.25))
    } else {
        (rng.random_range(0.5..1.8), rng.random_range(0.3..0.6))
    };
    let vdisp: f64 = rng.random_range(80.0..300.0);
    let sigma_kms = if emission {
        rng.random_range(40.0..150.0)
    } else {
        vdisp
    };
    let ha = amp
        * if emission {
            rng.random_range(2.0..12.0)
        } else {
            rng.random_range(0.05..0.4)
        };
    let hb = ha / rng.random_range(2.86..5.0);
    let oiii = hb * (0.8 * rng.sample::<f64, _>(StandardNormal)).exp();
    let nii = ha * rng.random_range(0.1..0.6);
    let oii = hb * rng.random_range(0.8..2.5);
    let sii = ha * rng.random_range(0.1..0.3);
    let line = |rest, amp, zline| Line {
        rest,
        amp,
        sigma_kms,
        zline,
    };
    let lines = vec![
        line(3728.48, oii, Some(0)),
        line(4862.68, hb, Some(1)),
        line(4960.30, oiii / 2.98, None),
        line(5008.24, oiii, Some(2)),
        line(6564.61, ha, Some(3)),
        line(6585.27, nii, Some(4)),
        line(6718.29, sii, None),
        line(6732.67, 0.75 * sii, None),
    ];
    let subclass = if !emission {
        ""
    } else if oiii / hb > 3.0 && nii / ha > 0.5 {
        "AGN"
    } else if ha > 8.0 * amp {
        "STARBURST"
    } else {
        "STARFORMING"
    };
    let model = ObjectModel {
        z,
        continuum: Continuum::Galaxy { amp, alpha, brk },
        lines,
    };
    (model, subclass, vdisp as f32)
}

fn qso(rng: &mut StdRng) -> (ObjectModel, &'static str) {
    let z = 0.5 + 3.5 * rng.random::<f64>().powf(1.6);
    let amp = lognormal(rng, 2.5, 0.5);
    let alpha = -1.5 + 0.3 * rng.sample::<f64, _>(StandardNormal);
    let broad: f64 = rng.random_range(1500.0..3500.0);
    // (rest, strength relative to the continuum, width, zline index)
    let list = [
        (1215.67, 6.0, broad, None),
        (1240.81, 1.0, broad, None),
        (1399.80, 0.6, broad, None),
        (1549.06, 3.0, broad, None),
        (1908.73, 1.5, broad, None),
        (2799.49, 1.5, broad, None),
        (4862.68, 1.0, broad, Some(1)),
        (5008.24, 0.5, 300.0, Some(2)),
        (6564.61, 3.0, broad, Some(3)),
    ];
    let lines = list
        .iter()
        .map(|&(rest, rel, sigma_kms, zline)| {
            let cont = amp * (alpha * (rest / 2500.0f64).ln()).exp();
            Line {
                rest,
                amp: rel * rng.random_range(0.5..1.5) * cont,
                sigma_kms,
                zline,
            }
        })
        .collect();
    let subclass = if rng.random_bool(0.7) {
        "BROADLINE"
    } else {
        ""
    };
    (
        ObjectModel {
            z,
            continuum: Continuum::Qso { amp, alpha },
            lines,
        },
        subclass,
    )
}

fn star(rng: &mut StdRng) -> (ObjectModel, &'static str, bool) {
    let temp = if rng.random_bool(0.5) {
        rng.random_range(6000.0..7500.0)
    } else {
        rng.random_range(3500.0..11000.0)
    };
    let amp = lognormal(rng, 15.0, 0.8);
    let z = 1e-4 * rng.sample::<f64, _>(StandardNormal);
    let balmer = 0.5 * (-((temp - 9500.0) / 2500.0f64).powi(2)).exp() + 0.05;
    let calcium = 0.6 * ((8000.0 - temp) / 4000.0).clamp(0.05, 1.0);
    let metals = 0.3 * ((7000.0 - temp) / 3000.0).clamp(0.02, 1.0);
    let hw = if temp > 7500.0 { 500.0 } else { 150.0 };
    let mut model = ObjectModel {
        z,
        continuum: Continuum::Star { amp, temp },
        lines: vec![],
    };
    let list = [
        (6564.61, balmer, hw),
        (4862.68, balmer, hw),
        (4341.69, balmer, hw),
        (4102.89, balmer, hw),
        (3934.78, calcium, 80.0),
        (3969.59, calcium, 80.0),
        (5176.70, metals, 80.0),
        (5891.58, metals, 60.0),
        (5897.56, metals, 60.0),
    ];
    model.lines = list
        .iter()
        .map(|&(rest, depth, sigma_kms)| {
            let cont = model.continuum_ln((rest * (1.0 + z)).ln());
            Line {
                rest,
                amp: -depth * cont,
                sigma_kms,
                zline: None,
            }
        })
        .collect();
    let subclass = match temp {
        t if t >= 9500.0 => "A0",
        t if t >= 7000.0 => "F2",
        t if t >= 6000.0 => "F9",
        t if t >= 5300.0 => "G2",
        t if t >= 4500.0 => "K1",
        t if t >= 3900.0 => "K7",
        _ => "M0",
    };
    let standard = (5800.0..7500.0).contains(&temp);
    (model, subclass, standard)
}

/// Draws the object of `fiber` (1-based) on this plate.
pub fn make_target(info: &PlateInfo, fiber: i32, rng: &mut StdRng) -> Target {
    let half = info.nfiber.div_ceil(2) as i32;
    let spectrograph = if fiber <= half { 1 } else { 2 };
    let radius = PLATE_RADIUS_DEG * rng.random::<f64>().sqrt();
    let pa = rng.random_range(0.0..360.0);
    let (ra, dec) = offset(info.ra, info.dec, radius, pa);
    let (xfocal, yfocal) = focal_xy(radius, pa);

    let u: f64 = rng.random();
    let class = if u < 0.60 {
        Class::Galaxy
    } else if u < 0.85 {
        Class::Qso
    } else {
        Class::Star
    };
    let (model, subclass, vdisp, objtype, sourcetype, boss_target1) = match class {
        Class::Galaxy => {
            let (m, sub, vdisp) = galaxy(rng);
            let (source, bit) = if m.z < 0.4 {
                ("LOZ", 1i64)
            } else {
                ("CMASS", 2i64)
            };
            (m, sub, vdisp, "GALAXY", source, bit)
        }
        Class::Qso => {
            let (m, sub) = qso(rng);
            let bits = (1i64 << 40) | if rng.random_bool(0.3) { 1i64 << 41 } else { 0 };
            (m, sub, 0.0, "QSO", "QSO", bits)
        }
        Class::Star => {
            let (m, sub, standard) = star(rng);
            if standard {
                (m, sub, 0.0, "SPECTROPHOTO_STD", "STD", 1i64 << 20)
            } else {
                (m, sub, 0.0, "STAR", "STAR", 0)
            }
        }
    };
    let z = model.z;
    let z_err_base = match class {
        Class::Galaxy => rng.random_range(3e-5..1.5e-4) * (1.0 + z),
        Class::Qso => rng.random_range(3e-4..1.5e-3) * (1.0 + z),
        Class::Star => rng.random_range(5e-6..3e-5),
    };
    let zwarning = if rng.random_bool(0.9) {
        0
    } else {
        [4, 4, 4, 4, 16, 20, 32][rng.random_range(0..7)]
    };
    let z_err = if zwarning != 0 {
        z_err_base * 5.0
    } else {
        z_err_base
    };
    let rchi2 = (1.0 + 0.08 * rng.sample::<f64, _>(StandardNormal)).abs() as f32;
    let rchi2diff = if zwarning & 4 != 0 {
        rng.random_range(0.0..0.01)
    } else {
        rng.random_range(0.01..0.5)
    } as f32;
    let vdisp_err = if vdisp > 0.0 {
        rng.random_range(8.0..40.0)
    } else {
        0.0
    };

    let mut mags = [0f32; 5];
    let mut mag_errs = [0f32; 5];
    let mut spectro_mags = [0f32; 5];
    for b in 0..5 {
        let lam = BAND_WAVE[b];
        let m = ab_mag(model.continuum_ln(lam.ln()), lam);
        let err = 0.02 + 0.03 * (m - 18.0).max(0.0);
        spectro_mags[b] = (m + 0.03 * rng.sample::<f64, _>(StandardNormal)) as f32;
        mags[b] = (m + err * rng.sample::<f64, _>(StandardNormal)) as f32;
        mag_errs[b] = err as f32;
    }
    let ancillary_target1 = if rng.random_bool(0.02) {
        1i64 << rng.random_range(0..40)
    } else {
        0
    };
    let thing_id = rng.random_range(1_000_000..500_000_000);
    let run = rng.random_range(94..8200);
    let camcol = rng.random_range(1..=6);
    let field = rng.random_range(11..=800);
    let id = rng.random_range(1..=1500);
    let sfd_ebv = (info.ebv * (1.0 + 0.1 * rng.sample::<f64, _>(StandardNormal))).max(0.001) as f32;
    let specprimary = rng.random_bool(0.95);

    let npix = info.npix;
    let (lead, trail) = if rng.random_bool(0.3) {
        (
            rng.random_range(1..=(npix / 40).clamp(1, 12)),
            rng.random_range(1..=(npix / 20).clamp(1, 25)),
        )
    } else {
        (0, 0)
    };
    let bad_run = (npix >= 400 && rng.random_bool(0.05)).then(|| {
        (
            rng.random_range(npix / 5..npix * 4 / 5),
            rng.random_range(5..=20),
        )
    });
    let conditions = FiberConditions {
        sky_scale: (1.0 + 0.05 * rng.sample::<f64, _>(StandardNormal)).clamp(0.8, 1.2),
        wdisp_offset: 0.03 * rng.sample::<f64, _>(StandardNormal),
        lead,
        trail,
        bad_run,
    };
    Target {
        fiber,
        spectrograph,
        ra,
        dec,
        xfocal,
        yfocal,
        class,
        subclass,
        objtype,
        sourcetype,
        z,
        z_err,
        zwarning,
        rchi2,
        rchi2diff,
        vdisp,
        vdisp_err,
        specprimary,
        model,
        mags,
        mag_errs,
        spectro_mags,
        boss_target1,
        ancillary_target1,
        thing_id,
        run,
        camcol,
        field,
        id,
        sfd_ebv,
        conditions,
    }
}

/// Flux error (nanomaggies) of a magnitude error at this flux.
pub fn flux_err(flux: f64, mag_err: f64) -> f64 {
    flux * 0.4 * LN_10 * mag_err
}
