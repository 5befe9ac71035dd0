//! Generator of realistic synthetic SDSS/BOSS inputs — spPlate, spZbest, spZline and, optionally,
//! per-fiber spec files in the variants real files come in — written into `<OUT>/<PLATE>/`,
//! deterministically for a seed. Used by `boss-synth`, the benchmarks and the Rust tests.
//! [`sdss5`] writes SDSS-V (DR19) files that follow the SDSS data model; [`desi`] DESI (DR1) coadds
//! and redrock files made after the real pair in data-samples/real/desi.

mod astrometry;
pub mod desi;
mod fits;
pub mod plate;
pub mod sdss5;
mod seeds;
pub mod spall;
mod spec_file;
mod spectrum;
mod tables;
mod targets;
mod template;
mod zline;

use anyhow::{ensure, Result};
use rayon::prelude::*;

pub use plate::{Config, Flavor};

/// Files and bytes written.
#[derive(Debug, Default, Clone, Copy)]
pub struct Output {
    pub files: usize,
    pub bytes: u64,
}

/// Checks a configuration, then writes every plate (in parallel).
pub fn generate(cfg: &Config) -> Result<Output> {
    ensure!(
        !cfg.flavor.is_sdss5() && cfg.flavor != Flavor::Desi,
        "the SDSS-V and DESI flavors are written by synth::sdss5::generate and synth::desi::generate"
    );
    ensure!(cfg.plates >= 1, "--plates must be at least 1");
    ensure!(
        (1..=9999).contains(&cfg.fibers),
        "--fibers must be in 1..=9999"
    );
    ensure!(cfg.npix >= 100, "--npix must be at least 100");
    ensure!(cfg.first_plate >= 1, "--first-plate must be positive");
    ensure!(
        i64::from(cfg.first_plate) + cfg.plates as i64 <= i64::from(i32::MAX),
        "plate numbers overflow"
    );
    ensure!(
        !(cfg.flavor == Flavor::Eboss && cfg.spec_files && cfg.exposures.is_some_and(|k| k > 0)),
        "--flavor eboss writes lite spec files: no --exposures"
    );
    let outputs = (0..cfg.plates)
        .into_par_iter()
        .map(|i| plate::generate(cfg, i))
        .collect::<Result<Vec<Output>>>()?;
    Ok(outputs.iter().fold(Output::default(), |a, o| Output {
        files: a.files + o.files,
        bytes: a.bytes + o.bytes,
    }))
}
