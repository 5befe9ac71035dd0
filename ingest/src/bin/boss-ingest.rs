//! `boss-ingest`: converts FITS plates and spectra into the HDF5 store, one file per plate-MJD.
//! Runs as a plain process or under `mpirun`, where the plate-MJDs are divided among ranks.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingest::catalog_sync::sync_catalog;
use ingest::decode::InputError;
use ingest::plan::{discover, plan};
use ingest::run::{ingest_units, Counters, RunOptions};
use ranks::{partition_by_weight, Job};
use serde::Serialize;

/// Convert SDSS/BOSS FITS files (spPlate, spec, spZbest, spZline, spAll) into an HDF5 store laid out
/// as /<PLATE>/<MJD>/<FIBER>/coadd, one file per plate-MJD (STORE/PPPP-MMMMM.h5).
///
/// Exit status: 0 all inputs ingested, 1 some inputs failed (the rest was ingested), 2 nothing could run.
#[derive(Parser, Debug)]
#[command(version, max_term_width = 100)]
struct Args {
    /// FITS files or directories (searched recursively for *.fits, *.fits.gz), then the STORE
    /// directory (only the STORE with --rebuild-catalog).
    #[arg(required = true, num_args = 1.., value_name = "INPUT... STORE")]
    paths: Vec<PathBuf>,
    /// Rebuild STORE/catalog.parquet from the HDF5 files (no inputs needed).
    #[arg(long)]
    rebuild_catalog: bool,
    /// Threads decoding FITS files on each rank (default: all cores, divided among the ranks).
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Stop at the first bad input (exit 1) instead of skipping it.
    #[arg(long)]
    fail_fast: bool,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar and no summary line.
    #[arg(short, long)]
    quiet: bool,
}

/// The summary printed at the end (`--json`).
#[derive(Serialize)]
struct Summary {
    files_found: usize,
    files_read: u64,
    files_skipped: u64,
    files_failed: usize,
    plate_mjds_written: u64,
    plate_mjds_unchanged: u64,
    fibers_added: u64,
    bytes_read: u64,
    bytes_written: u64,
    seconds: f64,
    ranks: usize,
    catalog_rows_written: usize,
    catalog_files_refreshed: usize,
    failures: Vec<ingest::run::Failure>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let job = Job::init_if_launched();
    let code = run(&args, &job);
    ExitCode::from(code)
}

fn run(args: &Args, job: &Job) -> u8 {
    let start = Instant::now();
    let (inputs, store_dir) = args.paths.split_at(args.paths.len() - 1);
    let store_dir = &store_dir[0];
    if inputs.is_empty() && args.rebuild_catalog && !store_dir.is_dir() {
        if job.is_root() {
            eprintln!(
                "boss-ingest: error: {}: no such store directory",
                store_dir.display()
            );
        }
        return 2;
    }
    if inputs.is_empty() && !args.rebuild_catalog {
        if job.is_root() {
            eprintln!("boss-ingest: error: give at least one INPUT before the STORE (or --rebuild-catalog STORE)");
        }
        return 2;
    }
    if let Err(e) = prepare_store(store_dir, job) {
        if job.is_root() {
            eprintln!("boss-ingest: error: {}: {e}", store_dir.display());
        }
        return 2;
    }
    let threads = args.jobs.unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / job.size()).max(1)
    });
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        eprintln!("boss-ingest: error: cannot start {threads} threads: {e}");
        return 2;
    }

    let (files, mut early_failures) = discover(inputs);
    let plan = plan(files, store_dir);
    early_failures.extend(plan.failures);
    let print_failure = |e: &InputError| eprintln!("boss-ingest: error: {e}");
    if job.is_root() {
        early_failures.iter().for_each(print_failure);
    }
    if args.fail_fast && !early_failures.is_empty() {
        return 1;
    }

    let weights: Vec<u64> = plan.units.iter().map(|u| u.bytes()).collect();
    let owner = partition_by_weight(&weights, job.size());
    let total_files: u64 = plan.units.iter().map(|u| u.files.len() as u64).sum();
    let mine: Vec<_> = plan
        .units
        .into_iter()
        .zip(owner)
        .filter(|(_, o)| *o == job.rank())
        .map(|(u, _)| u)
        .collect();
    let bar = progress_bar(job, args.quiet, total_files);
    let ranks = job.size() as u64;
    let on_unit_done = |n: u64| bar.inc(n * ranks);
    let opts = RunOptions {
        store_dir,
        fail_fast: args.fail_fast,
        on_failure: &print_failure,
        on_unit_done: &on_unit_done,
    };
    let (counters, stopped) = ingest_units(mine, &plan.spall, &opts);
    bar.finish_and_clear();
    if stopped && job.size() > 1 {
        job.abort(1);
    }

    let catalog = sync_catalog(job, store_dir, args.rebuild_catalog);
    if job.is_root() {
        catalog
            .errors
            .iter()
            .for_each(|e| eprintln!("boss-ingest: error: {e}"));
    }
    let gathered = job.gather_to_root(&counters);
    let Some(all) = gathered else { return 0 };
    let mut total = Counters::default();
    all.into_iter().for_each(|c| total.merge(c));
    let mut failures: Vec<ingest::run::Failure> = early_failures.iter().map(Into::into).collect();
    failures.extend(total.failures);
    failures.extend(catalog.errors.iter().map(|e| {
        ingest::run::Failure {
            file: store_dir
                .join(catalog::layout::CATALOG_FILE)
                .display()
                .to_string(),
            error: e.clone(),
        }
    }));
    let summary = Summary {
        files_found: plan.files_found,
        files_read: total.files_read,
        files_skipped: total.files_skipped,
        files_failed: failures.len(),
        plate_mjds_written: total.plate_mjds_written,
        plate_mjds_unchanged: total.plate_mjds_unchanged,
        fibers_added: total.fibers_added,
        bytes_read: total.bytes_read,
        bytes_written: total.bytes_written,
        seconds: start.elapsed().as_secs_f64(),
        ranks: job.size(),
        catalog_rows_written: catalog.rows,
        catalog_files_refreshed: catalog.files_refreshed,
        failures,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serialises")
        );
    }
    if !args.quiet {
        eprintln!(
            "boss-ingest: {} files read ({} already in the store, {} failed) into {} plate-MJD files ({} unchanged), \
             {} fibers added, {:.1} MB read, {:.1} MB written in {:.2} s on {} rank(s)",
            summary.files_read,
            summary.files_skipped,
            summary.files_failed,
            summary.plate_mjds_written,
            summary.plate_mjds_unchanged,
            summary.fibers_added,
            summary.bytes_read as f64 / 1e6,
            summary.bytes_written as f64 / 1e6,
            summary.seconds,
            summary.ranks
        );
    }
    u8::from(summary.files_failed > 0)
}

/// Creates the store directory, checks it is writable, and (rank 0) removes temporary files left by
/// an ingest that was killed; every rank waits for that before writing.
fn prepare_store(dir: &Path, job: &Job) -> Result<(), String> {
    let result = (|| {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the store directory: {e}"))?;
        let probe = dir.join(catalog::layout::temp_file_name(
            "write-probe",
            std::process::id(),
        ));
        std::fs::write(&probe, b"")
            .map_err(|e| format!("the store directory is not writable: {e}"))?;
        let _ = std::fs::remove_file(&probe);
        if job.is_root() {
            remove_stale_temp_files(dir);
        }
        Ok(())
    })();
    let failed = job.any(result.is_err());
    job.barrier();
    match result {
        Err(e) => Err(e),
        Ok(()) if failed => Err("the store is not usable on another rank".into()),
        Ok(()) => Ok(()),
    }
}

fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !catalog::layout::is_temp_file_name(&name) {
            continue;
        }
        let pid = name
            .rsplit("tmp-")
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn progress_bar(job: &Job, quiet: bool, total: u64) -> ProgressBar {
    if quiet || !job.is_root() || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} ingest [{bar:40}] {pos}/{len} files {elapsed_precise} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}
