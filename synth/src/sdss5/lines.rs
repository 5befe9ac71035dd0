//! Emission-line measurements of SDSS-V spZline files: the 32 lines of idlspec2d's
//! `etc/emlines.par` for every target, measured from the injected line and the coadd's noise;
//! lines outside the good pixels get errors of -1, as the pipeline writes them.

use std::f64::consts::{LN_10, PI};

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

use super::COEFF1;
use crate::spectrum::{FiberSpectrum, C_KMS, INSTRUMENT_SIGMA};
use crate::targets::Target;

/// LINENAME and wavelength of `emlines.par` (air for >= 2000 Å, vacuum below).
pub const LINES: [(&str, f64); 32] = [
    ("Ly_alpha", 1215.67),
    ("N_V 1240", 1240.81),
    ("C_IV 1549", 1549.48),
    ("He_II 1640", 1640.42),
    ("C_III] 1908", 1908.734),
    ("Mg_II 2799", 2799.49),
    ("[O_II] 3725", 3726.032),
    ("[O_II] 3727", 3728.815),
    ("[Ne_III] 3868", 3868.76),
    ("H_zeta", 3889.064),
    ("[Ne_III] 3970", 3967.47),
    ("H_epsilon", 3970.075),
    ("H_delta", 4101.734),
    ("H_gamma", 4340.464),
    ("[O_III] 4363", 4363.209),
    ("He_II 4685", 4685.68),
    ("H_beta", 4861.325),
    ("[O_III] 4959", 4958.911),
    ("[O_III] 5007", 5006.843),
    ("He_II 5411", 5411.52),
    ("[O_I] 5577", 5577.339),
    ("[N_II] 5755", 5754.59),
    ("He_I 5876", 5875.68),
    ("[O_I] 6300", 6300.304),
    ("[S_III] 6312", 6312.06),
    ("[O_I] 6363", 6363.776),
    ("[N_II] 6548", 6548.05),
    ("H_alpha", 6562.801),
    ("[N_II] 6583", 6583.45),
    ("[S_II] 6716", 6716.44),
    ("[S_II] 6730", 6730.82),
    ("[Ar_III] 7135", 7135.790),
];

/// Vacuum wavelength of a line of [`LINES`] (the IAU air-to-vacuum conversion above 2000 Å).
pub fn vacuum(lambda: f64) -> f64 {
    if lambda < 2000.0 {
        return lambda;
    }
    let s2 = (1e4 / lambda).powi(2);
    lambda * (1.0 + 6.4328e-5 + 2.94981e-2 / (146.0 - s2) + 2.5540e-4 / (41.0 - s2))
}

/// One spZline row.
#[derive(Debug, Clone)]
pub struct LineRow {
    pub name: &'static str,
    /// Vacuum wavelength, Å (LINEWAVE).
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

impl LineRow {
    /// A line the spectrum does not cover.
    fn uncovered(name: &'static str, wave: f64, z: f64) -> Self {
        Self {
            name,
            wave,
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
        }
    }
}

/// Measures every line of [`LINES`] for one target from its model and its coadd on `grid`.
pub fn measure(
    target: &Target,
    grid: &[f64],
    spec: &FiberSpectrum,
    rng: &mut StdRng,
) -> Vec<LineRow> {
    let (first, end) = spec.good_range();
    let z = target.z;
    LINES
        .iter()
        .map(|&(name, air)| {
            let rest = vacuum(air);
            let lam = rest * (1.0 + z);
            let pix = ((lam.log10() - grid[0]) / COEFF1).round();
            let covered = pix >= (first + 5) as f64
                && pix < end.saturating_sub(5) as f64
                && spec.ivar[pix as usize] > 0.0;
            if !covered {
                return LineRow::uncovered(name, rest, z);
            }
            let p = pix as usize;
            // The injected line at this wavelength, if any (emission only).
            let (amp, sigma_kms) = target
                .model
                .lines
                .iter()
                .find(|l| (l.rest - rest).abs() < 3.0)
                .map_or((0.0, 120.0), |l| (l.amp.max(0.0), l.sigma_kms));
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
            let npix = (3.0 * sigma_loglam / COEFF1).round() as i32;
            let dof = (2 * npix - 3).max(1) as f32;
            let usable = cont.abs() > 1e-3;
            LineRow {
                name,
                wave: rest,
                z: (z + z_err * rng.sample::<f64, _>(StandardNormal)) as f32,
                z_err: z_err as f32,
                sigma: (sigma_kms * (1.0 + 0.1 * rng.sample::<f64, _>(StandardNormal))).abs()
                    as f32,
                sigma_err: (sigma_kms / snr) as f32,
                area: area as f32,
                area_err: area_err as f32,
                ew: if usable { (area / cont) as f32 } else { 0.0 },
                ew_err: if usable {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacuum_wavelengths_of_the_strong_lines() {
        assert!((vacuum(6562.801) - 6564.61).abs() < 0.02);
        assert!((vacuum(5006.843) - 5008.24).abs() < 0.02);
        assert_eq!(vacuum(1215.67), 1215.67);
    }
}
