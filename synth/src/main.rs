//! `boss-synth`: writes realistic synthetic SDSS/BOSS inputs (spPlate, spZbest, spZline and,
//! optionally, per-fiber spec files) into `<OUT>/<PLATE>/`, deterministically for a seed.

mod astrometry;
mod fits;
mod plate;
mod seeds;
mod spec_file;
mod spectrum;
mod tables;
mod targets;
mod zline;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Result};
use clap::Parser;
use rayon::prelude::*;

use crate::plate::Config;

/// Generates synthetic BOSS plate files (spPlate, spZbest, spZline, spec files).
#[derive(Debug, Parser)]
#[command(name = "boss-synth", version, about)]
struct Args {
    /// Number of plate-MJDs to write.
    #[arg(long)]
    plates: usize,
    /// Fibers per plate (1000 for BOSS).
    #[arg(long, default_value_t = 1000)]
    fibers: usize,
    /// Output root; files go into <OUT>/<PLATE>/.
    #[arg(long)]
    out: PathBuf,
    /// Random seed: the same arguments give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write one spec-PPPP-MMMMM-FFFF.fits per fiber ("full" layout).
    #[arg(long)]
    spec_files: bool,
    /// Pixels of the coadd grid (NAXIS1 of spPlate).
    #[arg(long, default_value_t = 4600)]
    npix: usize,
    /// Plate number of the first plate; the others follow consecutively.
    #[arg(long, default_value_t = 5000)]
    first_plate: i32,
    /// Spec files of fibers 1..=K get per-exposure HDUs (default: fibers divisible by 10).
    #[arg(long, value_name = "K")]
    exposures: Option<usize>,
}

/// Files and bytes written.
#[derive(Debug, Default, Clone, Copy)]
pub struct Output {
    pub files: usize,
    pub bytes: u64,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("boss-synth: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    ensure!(args.plates >= 1, "--plates must be at least 1");
    ensure!(
        (1..=9999).contains(&args.fibers),
        "--fibers must be in 1..=9999"
    );
    ensure!(args.npix >= 100, "--npix must be at least 100");
    ensure!(args.first_plate >= 1, "--first-plate must be positive");
    ensure!(
        i64::from(args.first_plate) + args.plates as i64 <= i64::from(i32::MAX),
        "plate numbers overflow"
    );
    let cfg = Config {
        out: args.out,
        plates: args.plates,
        fibers: args.fibers,
        npix: args.npix,
        first_plate: args.first_plate,
        seed: args.seed,
        spec_files: args.spec_files,
        exposures: args.exposures,
    };
    let start = Instant::now();
    let outputs = (0..cfg.plates)
        .into_par_iter()
        .map(|i| plate::generate(&cfg, i))
        .collect::<Result<Vec<Output>>>()?;
    let total = outputs.iter().fold(Output::default(), |a, o| Output {
        files: a.files + o.files,
        bytes: a.bytes + o.bytes,
    });
    println!(
        "boss-synth: {} plates x {} fibers x {} pixels: {} files, {} bytes in {:.2} s -> {}",
        cfg.plates,
        cfg.fibers,
        cfg.npix,
        total.files,
        total.bytes,
        start.elapsed().as_secs_f64(),
        cfg.out.display()
    );
    Ok(())
}
