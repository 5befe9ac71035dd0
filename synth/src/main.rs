//! `boss-synth`: writes realistic synthetic SDSS/BOSS inputs (spPlate, spZbest, spZline and,
//! optionally, per-fiber spec files) into `<OUT>/<PLATE>/`, deterministically for a seed; with
//! `--flavor sdss5|sdss5-lite`, SDSS-V DR19 files (spField, spZbest, spZline, spec, spAll) in the
//! tree SDSS distributes; with `--flavor desi`, DESI DR1 HEALPix coadds and redrock files in DESI's
//! tree.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Result};
use clap::Parser;
use synth::sdss5::CoaddKind;
use synth::{Config, Flavor};

/// Generates synthetic BOSS plate files (spPlate, spZbest, spZline, spec files).
#[derive(Debug, Parser)]
#[command(name = "boss-synth", version, about)]
struct Args {
    /// Number of plate-MJDs to write (SDSS-V: field-MJDs; MJDs of the all-epoch coadd; DESI: HEALPix
    /// coadd files, each with its redrock file).
    #[arg(long)]
    plates: usize,
    /// Fibers per plate (1000 for BOSS, 640 for SDSS-I/II; SDSS-V: targets per field-MJD; DESI:
    /// targets per coadd file).
    #[arg(long, default_value_t = 1000)]
    fibers: usize,
    /// Output root; files go into <OUT>/<PLATE>/.
    #[arg(long)]
    out: PathBuf,
    /// Random seed: the same arguments give byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write one spec-PPPP-MMMMM-FFFF.fits per fiber.
    #[arg(long)]
    spec_files: bool,
    /// Pixels of the coadd grid (NAXIS1 of spPlate).
    #[arg(long, default_value_t = 4600)]
    npix: usize,
    /// Plate number of the first plate; the others follow consecutively (SDSS-V: the first FIELD,
    /// at most 999999).
    #[arg(long, default_value_t = 5000)]
    first_plate: i32,
    /// Spec files of fibers 1..=K get per-exposure HDUs (default: fibers divisible by 10).
    #[arg(long, value_name = "K")]
    exposures: Option<usize>,
    /// Variant of the spec files: BOSS full files, eBOSS lite files (no EXTNAME, upper-case
    /// columns, no exposures) or SDSS-I/II files (SPECOBJ, 7-column exposures in decreasing
    /// wavelength); sdss5 / sdss5-lite: SDSS-V DR19 (v6_1_3) files following the SDSS data model,
    /// with full or lite spec files.
    #[arg(long, value_enum, default_value = "boss")]
    flavor: Flavor,
    /// Also write <OUT>/spAll-synth.fits with this many rows shaped like DR17's spAll (105 of its
    /// columns): the fibers of the plates first, then rows of plate-MJDs no store holds. SDSS-V:
    /// <OUT>/spAll-v6_1_3.fits and <OUT>/spAll-lite-v6_1_3.fits.
    #[arg(long, value_name = "N")]
    spall_rows: Option<usize>,
    /// SDSS-V coadd to write (sdss5 flavors only; default daily): daily, epoch (under `epoch`
    /// directories) or allepoch (the APO all-epoch coadd, `allepoch_apo` in place of the field).
    #[arg(long, value_enum, value_name = "KIND")]
    coadd: Option<CoaddKind>,
    /// DESI: the directory of the real coadd/redrock pair whose HDUs, headers and columns the
    /// files copy (default: data-samples/real/desi of the source tree boss-synth was built from).
    #[arg(long, value_name = "DIR")]
    template: Option<PathBuf>,
}

fn main() {
    model::allocator::keep_freed_memory();
    if let Err(e) = run(Args::parse()) {
        eprintln!("boss-synth: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    ensure!(
        args.template.is_none() || args.flavor == Flavor::Desi,
        "--template is only for --flavor desi"
    );
    if args.flavor.is_sdss5() {
        return run_sdss5(args);
    }
    if args.flavor == Flavor::Desi {
        return run_desi(args);
    }
    ensure!(
        args.coadd.is_none(),
        "--coadd is only for --flavor sdss5 and sdss5-lite"
    );
    let cfg = Config {
        out: args.out,
        plates: args.plates,
        fibers: args.fibers,
        npix: args.npix,
        first_plate: args.first_plate,
        seed: args.seed,
        spec_files: args.spec_files,
        // eBOSS lite files never carry exposures; the others default to every tenth fiber.
        exposures: match (args.flavor, args.exposures) {
            (Flavor::Eboss, None) => Some(0),
            (_, e) => e,
        },
        flavor: args.flavor,
    };
    let start = Instant::now();
    let total = synth::generate(&cfg)?;
    if let Some(rows) = args.spall_rows {
        let path = cfg.out.join("spAll-synth.fits");
        let bytes = synth::spall::write(&cfg, &path, rows)?;
        println!(
            "boss-synth: {rows} spAll rows, {bytes} bytes in {:.2} s -> {}",
            start.elapsed().as_secs_f64(),
            path.display()
        );
    }
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

fn run_sdss5(args: Args) -> Result<()> {
    let cfg = synth::sdss5::Config {
        out: args.out,
        groups: args.plates,
        targets: args.fibers,
        npix: args.npix,
        first_field: args.first_plate,
        seed: args.seed,
        spec_files: args.spec_files,
        exposures: args.exposures,
        lite: args.flavor == Flavor::Sdss5Lite,
        coadd: args.coadd.unwrap_or_default(),
    };
    let start = Instant::now();
    let total = synth::sdss5::generate(&cfg, args.spall_rows)?;
    println!(
        "boss-synth: {} SDSS-V {:?} field-MJDs x {} targets x {} pixels: {} files, {} bytes in {:.2} s -> {}",
        cfg.groups,
        cfg.coadd,
        cfg.targets,
        cfg.npix,
        total.files,
        total.bytes,
        start.elapsed().as_secs_f64(),
        cfg.out.display()
    );
    Ok(())
}

fn run_desi(args: Args) -> Result<()> {
    ensure!(
        !args.spec_files && args.coadd.is_none() && args.spall_rows.is_none(),
        "--spec-files, --coadd and --spall-rows are not for --flavor desi"
    );
    let mut cfg = synth::desi::Config::new(&args.out, args.plates, args.fibers, args.seed);
    if let Some(dir) = args.template {
        cfg.template_dir = dir;
    }
    let start = Instant::now();
    let total = synth::desi::generate(&cfg)?;
    println!(
        "boss-synth: {} DESI HEALPix coadds x {} targets (with redrock files): {} files, {} bytes in {:.2} s -> {}",
        cfg.files,
        cfg.targets,
        total.files,
        total.bytes,
        start.elapsed().as_secs_f64(),
        cfg.out.display()
    );
    Ok(())
}
