//! Emission-line measurements (the spZline rows): for every fiber the same few lines, measured
//! from the injected line and the fiber's noise; lines outside the good pixels get error -1.

use std::f64::consts::{LN_10, PI};

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::spectrum::{FiberSpectrum, COEFF1, C_KMS, INSTRUMENT_SIGMA};
use crate::targets::Target;

/// The lines reported for every fiber: LINENAME and rest vacuum wavelength (Å).
pub const ZLINES: [(&str, f64); 5] = [
    ("[O_II] 3727", 3728.48),
    ("H_beta", 4862.68),
    ("[O_III] 5007", 5008.24),
    ("H_alpha", 6564.61),
    ("[N_II] 6583", 6585.27),
];

/// One spZline row.
#[derive(Debug, Clone)]
pub struct ZlineRow {
    pub fiber: i32,
    pub name: &'static str,
    pub wave: f64,
    pub z: f32,
    pub z_err: f32,
    pub sigma: f32,
    pub sigma_err: f32,
    pub area: f32,
    pub area_err: f32,
    pub ew: f32,
    pub ew_err: f32,
    pub cont: f32,
    pub cont_err: f32,
    pub npix_left: i32,
    pub npix_right: i32,
    pub dof: f32,
    pub chi2: f32,
}

/// Measures the [`ZLINES`] of one fiber from its model and its coadd on the grid `grid`.
pub fn measure(
    target: &Target,
    grid: &[f64],
    spec: &FiberSpectrum,
    rng: &mut StdRng,
) -> Vec<ZlineRow> {
    let (first, end) = spec.good_range();
    let z = target.z;
    ZLINES
        .iter()
        .enumerate()
        .map(|(k, &(name, rest))| {
            let lam = rest * (1.0 + z);
            let pix = ((lam.log10() - grid[0]) / COEFF1).round();
            let covered = pix >= (first + 5) as f64
                && pix < end.saturating_sub(5) as f64
                && spec.ivar[pix as usize] > 0.0;
            if !covered {
                return ZlineRow {
                    fiber: target.fiber,
                    name,
                    wave: rest,
                    z: z as f32,
                    z_err: -1.0,
                    sigma: 0.0,
                    sigma_err: -1.0,
                    area: 0.0,
                    area_err: -1.0,
                    ew: 0.0,
                    ew_err: -1.0,
                    cont: 0.0,
                    cont_err: -1.0,
                    npix_left: 0,
                    npix_right: 0,
                    dof: 0.0,
                    chi2: -1.0,
                };
            }
            let p = pix as usize;
            let (amp, sigma_kms) = target
                .model
                .lines
                .iter()
                .find(|l| l.zline == Some(k))
                .map_or((0.0, 100.0), |l| (l.amp.max(0.0), l.sigma_kms));
            let intrinsic = sigma_kms / C_KMS / LN_10;
            let sigma_loglam = (intrinsic * intrinsic + INSTRUMENT_SIGMA * INSTRUMENT_SIGMA).sqrt();
            let sigma_lam = lam * LN_10 * sigma_loglam;
            let dlam = lam * LN_10 * COEFF1;
            let pix_sigma = 1.0 / f64::from(spec.ivar[p]).sqrt();
            let area_err = pix_sigma * (2.0 * PI.sqrt() * sigma_lam * dlam).sqrt();
            let area = amp * sigma_lam * (2.0 * PI).sqrt()
                + area_err * rng.sample::<f64, _>(StandardNormal);
            let cont_err = pix_sigma / 20f64.sqrt();
            let cont = target.model.continuum_ln(lam.ln())
                + cont_err * rng.sample::<f64, _>(StandardNormal);
            let snr = (area / area_err).max(1.0);
            let z_err = (1.0 + z) * sigma_kms / C_KMS / snr;
            let npix = (4.0 * sigma_loglam / COEFF1).round() as i32;
            let dof = (2 * npix - 3).max(1) as f32;
            ZlineRow {
                fiber: target.fiber,
                name,
                wave: rest,
                z: (z + z_err * rng.sample::<f64, _>(StandardNormal)) as f32,
                z_err: z_err as f32,
                sigma: (sigma_kms * (1.0 + 0.1 * rng.sample::<f64, _>(StandardNormal))).abs()
                    as f32,
                sigma_err: (sigma_kms / snr) as f32,
                area: area as f32,
                area_err: area_err as f32,
                ew: if cont.abs() > 1e-3 {
                    (area / cont) as f32
                } else {
                    0.0
                },
                ew_err: if cont.abs() > 1e-3 {
                    (area_err / cont.abs()) as f32
                } else {
                    -1.0
                },
                cont: cont as f32,
                cont_err: cont_err as f32,
                npix_left: npix,
                npix_right: npix,
                dof,
                chi2: (dof * (1.0 + 0.15 * rng.sample::<f32, _>(StandardNormal))).abs(),
            }
        })
        .collect()
}
