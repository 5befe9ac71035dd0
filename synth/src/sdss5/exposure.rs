//! One exposure of a target on the coadd grid (the `MJD_EXP_<MJD>-<nn>` HDUs of full spec files):
//! the model observed with √NEXP times the coadd's noise, its own sky level and cosmic rays.

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::StandardNormal;

use super::NEXP;
use crate::spectrum::{pixmask, FiberSpectrum};

/// The columns of one exposure HDU.
#[derive(Debug, Clone, Default)]
pub struct Exposure {
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
    pub and_mask: Vec<i32>,
    pub or_mask: Vec<i32>,
    pub wdisp: Vec<f32>,
    pub sky: Vec<f32>,
    pub wresl: Vec<f32>,
}

/// Observes the coadd's model once more, as one of its NEXP exposures.
pub fn observe(coadd: &FiberSpectrum, wresl: &[f32], rng: &mut StdRng) -> Exposure {
    let n = coadd.flux.len();
    let sky_scale: f32 = rng.random_range(0.9..1.1);
    let disp_scale: f32 = 1.0 + 0.02 * rng.sample::<f32, _>(StandardNormal);
    let mut e = Exposure {
        flux: Vec::with_capacity(n),
        ivar: Vec::with_capacity(n),
        and_mask: Vec::with_capacity(n),
        or_mask: Vec::with_capacity(n),
        wdisp: Vec::with_capacity(n),
        sky: Vec::with_capacity(n),
        wresl: Vec::with_capacity(n),
    };
    // Pixel i of every coadd array makes pixel i of the exposure.
    #[allow(clippy::needless_range_loop)]
    for i in 0..n {
        let ivar = coadd.ivar[i] / NEXP as f32;
        let mut mask = coadd.and_mask[i];
        let (flux, ivar) = if ivar > 0.0 {
            let noise: f32 = rng.sample(StandardNormal);
            if rng.random_bool(0.002) {
                // A cosmic ray the coadd rejected.
                mask |= pixmask::COMBINEREJ;
                (coadd.model[i] + 25.0 / ivar.sqrt(), ivar)
            } else {
                (coadd.model[i] + noise / ivar.sqrt(), ivar)
            }
        } else {
            (0.0, 0.0)
        };
        e.flux.push(flux);
        e.ivar.push(ivar);
        e.and_mask.push(mask);
        e.or_mask.push(mask | coadd.or_mask[i]);
        e.wdisp.push(coadd.wdisp[i] * disp_scale);
        e.sky.push(coadd.sky[i] * sky_scale);
        e.wresl.push(wresl[i] * disp_scale);
    }
    e
}
