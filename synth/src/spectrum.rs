//! Physics-ish spectral models: galaxy, quasar and stellar continua with emission and absorption
//! lines, the night-sky spectrum, and the noise, masks and dispersion of observed spectra
//! (the coadd on the log-linear plate grid and the single-camera exposures).
//!
//! Fluxes are in 1e-17 erg/s/cm²/Å, wavelengths in vacuum Å, `loglam` is log10 of the wavelength.

use std::f64::consts::{LN_10, PI};

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

/// Pixel size of the coadd grid in log10 λ (the COEFF1 header key).
pub const COEFF1: f64 = 1e-4;
/// Speed of light, km/s.
pub const C_KMS: f64 = 299_792.458;
/// Instrumental line spread (Gaussian sigma) in log10 λ, about 1.2 coadd pixels.
pub const INSTRUMENT_SIGMA: f64 = 1.2e-4;

/// Variance terms of the noise model (1e-17 flux units squared): read noise, sky and object
/// photon noise per unit flux.
const READ_VAR: f64 = 0.12;
const SKY_VAR_PER_FLUX: f64 = 0.06;
const OBJ_VAR_PER_FLUX: f64 = 0.03;
/// Sky brighter than this (1e-17 units) sets BRIGHTSKY in the OR mask, twice that in the AND mask.
const BRIGHT_SKY: f64 = 30.0;

/// BOSS pixel mask bits (SDSS `SPPIXMASK`) used by the generator.
pub mod pixmask {
    pub const FULLREJECT: i32 = 1 << 18;
    pub const PARTIALREJECT: i32 = 1 << 19;
    pub const NOSKY: i32 = 1 << 22;
    pub const BRIGHTSKY: i32 = 1 << 23;
    pub const NODATA: i32 = 1 << 24;
    pub const COMBINEREJ: i32 = 1 << 25;
}

/// Spectral class, as the redshift pipeline names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Galaxy,
    Qso,
    Star,
}

impl Class {
    /// `CLASS` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Galaxy => "GALAXY",
            Self::Qso => "QSO",
            Self::Star => "STAR",
        }
    }
}

/// One emission (amp > 0) or absorption (amp < 0) line.
#[derive(Debug, Clone)]
pub struct Line {
    /// Rest-frame vacuum wavelength, Å.
    pub rest: f64,
    /// Peak height above the continuum, flux units.
    pub amp: f64,
    /// Intrinsic Gaussian width, km/s.
    pub sigma_kms: f64,
    /// Index into [`crate::zline::ZLINES`] when the line is one the emission-line fit reports.
    pub zline: Option<usize>,
}

impl Line {
    /// Total Gaussian sigma in log10 λ, intrinsic and instrumental.
    pub fn sigma_loglam(&self, instrument: f64) -> f64 {
        let intrinsic = self.sigma_kms / C_KMS / LN_10;
        (intrinsic * intrinsic + instrument * instrument).sqrt()
    }
}

/// Continuum shapes.
#[derive(Debug, Clone)]
pub enum Continuum {
    /// Power law f_λ ∝ λ^alpha with a 4000 Å break of relative depth `brk`; `amp` at rest 5000 Å.
    Galaxy { amp: f64, alpha: f64, brk: f64 },
    /// Power law f_λ ∝ λ^alpha, Lyman-α forest absorption and the Lyman limit; `amp` at rest 2500 Å.
    Qso { amp: f64, alpha: f64 },
    /// Black body of temperature `temp` K; `amp` at 5500 Å.
    Star { amp: f64, temp: f64 },
}

/// Noise-free spectrum of one object.
#[derive(Debug, Clone)]
pub struct ObjectModel {
    pub z: f64,
    pub continuum: Continuum,
    pub lines: Vec<Line>,
}

fn planck(lambda: f64, temp: f64) -> f64 {
    // hc/k in Å·K.
    let x = 1.438_777e8 / (lambda * temp);
    1.0 / (lambda.powi(5) * x.exp_m1())
}

impl ObjectModel {
    /// Continuum at the observed wavelength exp(`ln_obs`).
    pub fn continuum_ln(&self, ln_obs: f64) -> f64 {
        let ln_rest = ln_obs - self.z.ln_1p();
        match self.continuum {
            Continuum::Galaxy { amp, alpha, brk } => {
                let rest = ln_rest.exp();
                let below_break = 1.0 / (1.0 + ((rest - 4000.0) / 60.0).exp());
                amp * (alpha * (ln_rest - 5000f64.ln())).exp() * (1.0 - brk * below_break)
            }
            Continuum::Qso { amp, alpha } => {
                let rest = ln_rest.exp();
                let mut f = amp * (alpha * (ln_rest - 2500f64.ln())).exp();
                if rest < 1215.67 {
                    // Mean Lyman-α forest transmission (Faucher-Giguère et al. 2008 style).
                    let z_abs = ln_obs.exp() / 1215.67 - 1.0;
                    f *= (-0.0018 * (1.0 + z_abs).powf(3.92)).exp();
                }
                if rest < 912.0 {
                    f *= 0.05;
                }
                f
            }
            Continuum::Star { amp, temp } => {
                let rest = ln_rest.exp();
                amp * planck(rest, temp) / planck(5500.0, temp)
            }
        }
    }

    /// The model on a grid of ascending `loglam` values.
    pub fn render(&self, loglam: &[f64], instrument: f64) -> Vec<f64> {
        let mut out: Vec<f64> = loglam
            .iter()
            .map(|&l| self.continuum_ln(l * LN_10))
            .collect();
        let ln1z = self.z.ln_1p();
        for line in &self.lines {
            let centre = line.rest.log10() + ln1z / LN_10;
            add_gaussian(
                loglam,
                &mut out,
                centre,
                line.sigma_loglam(instrument),
                line.amp,
            );
        }
        out
    }
}

/// Adds `amp * exp(-(x-centre)²/2σ²)` to `out` over ±6σ of an ascending grid `x`.
fn add_gaussian(x: &[f64], out: &mut [f64], centre: f64, sigma: f64, amp: f64) {
    let lo = x.partition_point(|&v| v < centre - 6.0 * sigma);
    let hi = x.partition_point(|&v| v <= centre + 6.0 * sigma);
    let inv = 1.0 / sigma;
    for i in lo..hi {
        let t = (x[i] - centre) * inv;
        out[i] += amp * (-0.5 * t * t).exp();
    }
}

/// Night-sky spectrum of one plate: a red-rising continuum, auroral/sodium/mercury lines and an
/// OH forest in the red.
#[derive(Debug, Clone)]
pub struct SkyModel {
    level: f64,
    /// (loglam, peak height).
    lines: Vec<(f64, f64)>,
}

impl SkyModel {
    pub fn new(rng: &mut StdRng) -> Self {
        let level = rng.random_range(2.0..4.0);
        let bright = rng.random_range(0.7..1.4);
        let fixed = [
            (4047.71, 12.0),
            (4359.56, 25.0),
            (5462.27, 30.0),
            (5578.89, 160.0),
            (5891.58, 35.0),
            (5897.56, 30.0),
            (6302.05, 60.0),
            (6365.54, 20.0),
        ];
        let mut lines: Vec<(f64, f64)> = fixed
            .iter()
            .map(|&(w, a)| (f64::log10(w), a * bright))
            .collect();
        for _ in 0..90 {
            let w: f64 = rng.random_range(6800.0..10400.0);
            let a =
                25.0 * (0.8 * rng.sample::<f64, _>(StandardNormal)).exp() * (w / 8000.0).powi(2);
            lines.push((w.log10(), a.min(400.0)));
        }
        lines.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self { level, lines }
    }

    /// The sky on a grid of ascending `loglam` values, scaled by `scale`.
    pub fn render(&self, loglam: &[f64], instrument: f64, scale: f64) -> Vec<f64> {
        let mut out: Vec<f64> = loglam
            .iter()
            .map(|&l| self.level * (0.6 + 0.8 * (l * LN_10).exp() / 10_000.0))
            .collect();
        for &(centre, amp) in &self.lines {
            add_gaussian(loglam, &mut out, centre, instrument, amp);
        }
        out.iter_mut().for_each(|v| *v *= scale);
        out
    }
}

/// Per-fiber observing conditions and defects of the coadd.
#[derive(Debug, Clone)]
pub struct FiberConditions {
    /// Sky level relative to the plate's sky.
    pub sky_scale: f64,
    /// Offset of the dispersion (pixels).
    pub wdisp_offset: f64,
    /// Pixels without data (ivar 0, NODATA) at the blue and the red end.
    pub lead: usize,
    pub trail: usize,
    /// A run of rejected pixels (ivar 0, FULLREJECT): first pixel and length.
    pub bad_run: Option<(usize, usize)>,
}

/// One fiber's coadded spectrum on the plate grid: the rows of the spPlate images.
#[derive(Debug, Clone, Default)]
pub struct FiberSpectrum {
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
    pub and_mask: Vec<i32>,
    pub or_mask: Vec<i32>,
    pub wdisp: Vec<f32>,
    pub sky: Vec<f32>,
    pub model: Vec<f32>,
    /// Median S/N per pixel over all good pixels and in the ugriz ranges.
    pub sn_median_all: f32,
    pub sn_median: [f32; 5],
}

impl FiberSpectrum {
    /// First and one-past-last pixel with ivar > 0: the pixels a spec file keeps.
    pub fn good_range(&self) -> (usize, usize) {
        let first = self.ivar.iter().position(|&v| v > 0.0).unwrap_or(0);
        let end = self
            .ivar
            .iter()
            .rposition(|&v| v > 0.0)
            .map_or(first, |i| i + 1);
        (first, end)
    }
}

/// Wavelength ranges (Å) used for the five SN_MEDIAN values (u, g, r, i, z).
pub const BAND_RANGES: [(f64, f64); 5] = [
    (3000.0, 4000.0),
    (4000.0, 5500.0),
    (5500.0, 7000.0),
    (7000.0, 8500.0),
    (8500.0, 11000.0),
];
/// Effective wavelengths of the ugriz filters, Å.
pub const BAND_WAVE: [f64; 5] = [3551.0, 4686.0, 6166.0, 7480.0, 8932.0];

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m
}

/// Smooth dispersion profile: 1.0 in the middle of the range, 1.5 at its ends.
fn dispersion(t: f64, offset: f64) -> f64 {
    let u = 2.0 * t - 1.0;
    (1.0 + 0.45 * u * u + offset).clamp(0.9, 1.6)
}

/// Throughput loss at the ends of a spectrograph's range: noise multiplier.
fn edge_factor(t: f64) -> f64 {
    1.0 + 3.0 * (-t / 0.03).exp() + 1.5 * (-(1.0 - t) / 0.03).exp()
}

/// Observes `model` through the plate's sky on the coadd grid: noise, ivar, masks, dispersion.
pub fn observe_coadd(
    model: &ObjectModel,
    grid: &[f64],
    plate_sky: &[f64],
    cond: &FiberConditions,
    rng: &mut StdRng,
) -> FiberSpectrum {
    let n = grid.len();
    let truth = model.render(grid, INSTRUMENT_SIGMA);
    let mut s = FiberSpectrum {
        flux: Vec::with_capacity(n),
        ivar: Vec::with_capacity(n),
        and_mask: Vec::with_capacity(n),
        or_mask: Vec::with_capacity(n),
        wdisp: Vec::with_capacity(n),
        sky: Vec::with_capacity(n),
        model: Vec::with_capacity(n),
        ..Default::default()
    };
    let span = (n.max(2) - 1) as f64;
    for i in 0..n {
        let t = i as f64 / span;
        let sky = plate_sky[i] * cond.sky_scale;
        let m = truth[i];
        let sigma = (READ_VAR + SKY_VAR_PER_FLUX * sky + OBJ_VAR_PER_FLUX * m.abs()).sqrt()
            * edge_factor(t);
        let noise: f64 = rng.sample(StandardNormal);
        let mut or = 0;
        let mut and = 0;
        if sky > BRIGHT_SKY {
            or |= pixmask::BRIGHTSKY;
            if sky > 2.0 * BRIGHT_SKY {
                and |= pixmask::BRIGHTSKY;
            }
        }
        let u: f64 = rng.random();
        if u < 0.004 {
            or |= pixmask::COMBINEREJ;
        } else if u < 0.005 {
            or |= pixmask::PARTIALREJECT;
        }
        s.flux.push((m + sigma * noise) as f32);
        s.ivar.push((1.0 / (sigma * sigma)) as f32);
        s.and_mask.push(and);
        s.or_mask.push(or);
        s.wdisp.push(dispersion(t, cond.wdisp_offset) as f32);
        s.sky.push(sky as f32);
        s.model.push(m as f32);
    }
    // Pixels without data at the ends: flux 0, ivar 0.
    let lead = cond.lead.min(n);
    let trail = cond.trail.min(n - lead);
    for i in (0..lead).chain(n - trail..n) {
        s.flux[i] = 0.0;
        s.ivar[i] = 0.0;
        s.and_mask[i] |= pixmask::NODATA | pixmask::NOSKY;
        s.or_mask[i] |= pixmask::NODATA | pixmask::NOSKY;
    }
    // A rejected run: the flux is the interpolated model, ivar 0.
    if let Some((start, len)) = cond.bad_run {
        for i in start.min(n)..(start + len).min(n) {
            s.flux[i] = s.model[i];
            s.ivar[i] = 0.0;
            s.and_mask[i] |= pixmask::FULLREJECT;
            s.or_mask[i] |= pixmask::FULLREJECT;
        }
    }
    // Median S/N, overall and per band.
    let sn = |i: usize| (s.ivar[i] > 0.0).then(|| s.flux[i] * s.ivar[i].sqrt());
    let mut all: Vec<f32> = (0..n).filter_map(sn).collect();
    let mut bands = [0f32; 5];
    for (b, &(lo, hi)) in BAND_RANGES.iter().enumerate() {
        let first = grid.partition_point(|&l| l < lo.log10());
        let end = grid.partition_point(|&l| l < hi.log10());
        let mut v: Vec<f32> = (first..end).filter_map(sn).collect();
        bands[b] = median(&mut v);
    }
    s.sn_median_all = median(&mut all);
    s.sn_median = bands;
    s
}

/// Camera arm of a single exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Blue,
    Red,
}

impl Arm {
    /// Nominal pixel count and wavelength range (Å) of the camera; pixels are linear in λ.
    fn layout(self) -> (usize, f64, f64) {
        match self {
            // From loglam 3.5528 (3570.4 Å) ...
            Self::Blue => (2000, 3570.4, 6350.0),
            // ... and ending near loglam 4.02 (10471 Å).
            Self::Red => (2500, 5650.0, 10471.3),
        }
    }
}

/// One fiber's spectrum from one camera in one exposure (the columns of a spec-file HDU 4+).
#[derive(Debug, Clone, Default)]
pub struct ExposureSpectrum {
    pub flux: Vec<f32>,
    pub loglam: Vec<f32>,
    pub ivar: Vec<f32>,
    pub mask: Vec<i32>,
    pub wdisp: Vec<f32>,
    pub sky: Vec<f32>,
    pub calib: Vec<f32>,
    pub x: Vec<f32>,
}

/// Observes `model` in one exposure with one camera. `x0` is the fiber's trace column on the CCD,
/// `nexp` the number of exposures that make up the coadd (each is noisier by √nexp).
pub fn observe_exposure(
    model: &ObjectModel,
    sky_model: &SkyModel,
    arm: Arm,
    x0: f64,
    nexp: usize,
    rng: &mut StdRng,
) -> ExposureSpectrum {
    let (nominal, lo, hi) = arm.layout();
    let n = nominal - 5 + rng.random_range(0..=10);
    let shift: f64 = rng.random_range(-0.5..0.5);
    let step = (hi - lo) / (nominal - 1) as f64;
    let loglam: Vec<f64> = (0..n)
        .map(|j| (lo + shift + step * j as f64).log10())
        .collect();
    let sky_scale = rng.random_range(0.85..1.15);
    let truth = model.render(&loglam, 1.4e-4);
    let sky = sky_model.render(&loglam, 1.4e-4, sky_scale);
    let x_shift: f64 = rng.random_range(-0.3..0.3);
    let wdisp_offset: f64 = rng.random_range(-0.05..0.05);
    let mid = 0.5 * (lo + hi);
    let width = 0.45 * (hi - lo);
    let mut e = ExposureSpectrum::default();
    let span = (n - 1) as f64;
    for j in 0..n {
        let t = j as f64 / span;
        let lam = lo + shift + step * j as f64;
        let throughput = 0.15 + 0.85 * (-0.5 * ((lam - mid) / width).powi(2)).exp();
        let var = READ_VAR + SKY_VAR_PER_FLUX * sky[j] + OBJ_VAR_PER_FLUX * truth[j].abs();
        let sigma = var.sqrt() * (nexp as f64).sqrt() * edge_factor(t);
        let noise: f64 = rng.sample(StandardNormal);
        let mut mask = 0;
        if sky[j] > BRIGHT_SKY {
            mask |= pixmask::BRIGHTSKY;
        }
        let dead = j < 2 || j + 2 >= n;
        if dead {
            mask |= pixmask::NODATA;
        }
        e.flux.push(if dead {
            0.0
        } else {
            (truth[j] + sigma * noise) as f32
        });
        e.loglam.push(loglam[j] as f32);
        e.ivar.push(if dead {
            0.0
        } else {
            (1.0 / (sigma * sigma)) as f32
        });
        e.mask.push(mask);
        e.wdisp.push(dispersion(t, wdisp_offset) as f32);
        e.sky.push(sky[j] as f32);
        e.calib.push((0.02 / throughput) as f32);
        e.x.push((x0 + x_shift + 2.5 * (PI * t).sin()) as f32);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lines_land_at_the_redshifted_wavelength() {
        let model = ObjectModel {
            z: 0.5,
            continuum: Continuum::Galaxy {
                amp: 1.0,
                alpha: 0.0,
                brk: 0.0,
            },
            lines: vec![Line {
                rest: 5000.0,
                amp: 10.0,
                sigma_kms: 100.0,
                zline: None,
            }],
        };
        let grid: Vec<f64> = (0..4000).map(|i| 3.6 + COEFF1 * i as f64).collect();
        let f = model.render(&grid, INSTRUMENT_SIGMA);
        let peak = (0..f.len()).max_by(|&a, &b| f[a].total_cmp(&f[b])).unwrap();
        assert!((10f64.powf(grid[peak]) - 7500.0).abs() < 2.0);
        assert!((f[0] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn coadd_has_positive_ivar_except_defects() {
        let mut rng = StdRng::seed_from_u64(1);
        let sky = SkyModel::new(&mut rng);
        let grid: Vec<f64> = (0..1000).map(|i| 3.5528 + COEFF1 * i as f64).collect();
        let plate_sky = sky.render(&grid, INSTRUMENT_SIGMA, 1.0);
        let model = ObjectModel {
            z: 0.0,
            continuum: Continuum::Star {
                amp: 10.0,
                temp: 6000.0,
            },
            lines: vec![],
        };
        let cond = FiberConditions {
            sky_scale: 1.0,
            wdisp_offset: 0.0,
            lead: 3,
            trail: 5,
            bad_run: Some((500, 10)),
        };
        let s = observe_coadd(&model, &grid, &plate_sky, &cond, &mut rng);
        assert_eq!(s.good_range(), (3, 995));
        let zero = s.ivar.iter().filter(|&&v| v == 0.0).count();
        assert_eq!(zero, 18);
        assert!(s.wdisp.iter().all(|&w| (0.9..=1.6).contains(&w)));
        assert!(s.sn_median_all > 1.0);
    }
}
