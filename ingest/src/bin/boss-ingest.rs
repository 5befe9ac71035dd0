//! `boss-ingest`: converts FITS plates and spectra into the HDF5 store, one file per plate-MJD.
//! Runs as a plain process or under `mpirun`/`srun`, where the plate-MJDs are divided among ranks.
//! This file is the command line only: arguments → [`ingest::job::Config`] → [`ingest::job::run`] →
//! the summary, printed here, and the exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ingest::job::{Config, Events, Summary};
use ingest::plan::Failure;
use ingest::writer::{Conflict, ConflictRule};
use model::message::one_line;
use ranks::Job;

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
    /// When another boss-ingest is writing the same STORE, exit 2 at once instead of waiting.
    #[arg(long)]
    no_wait: bool,
    /// Layout of the store files: v1 (a group and a coadd dataset per fiber, H5Boss format v1) or v2
    /// (fiber-merged: per plate-MJD one 2-D array per quantity). One store holds one layout.
    #[arg(long, default_value = "v1", value_name = "v1|v2")]
    layout: model::layout::Layout,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar, no summary line and no conflict lines (failures are still printed).
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    model::allocator::keep_freed_memory();
    model::stdout::note_closed_stdout();
    let args = Args::parse();
    let job = Job::init_if_launched();
    let code = run(&args, &job);
    drop(job);
    ExitCode::from(code)
}

fn run(args: &Args, job: &Job) -> u8 {
    let (inputs, store) = args.paths.split_at(args.paths.len() - 1);
    if inputs.is_empty() && !args.rebuild_catalog {
        if job.is_root() {
            eprintln!("boss-ingest: error: give at least one INPUT before the STORE (or --rebuild-catalog STORE)");
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
    let cfg = Config {
        inputs: inputs.to_vec(),
        store: store[0].clone(),
        rebuild_catalog: args.rebuild_catalog,
        fail_fast: args.fail_fast,
        wait: !args.no_wait,
        layout: args.layout,
    };
    let bar: OnceLock<ProgressBar> = OnceLock::new();
    let ranks = job.size() as u64;
    let quiet = args.quiet;
    let failure = |f: &Failure| eprintln!("boss-ingest: error: {}", one_line(&f.to_string()));
    let conflicts = |c: &[Conflict]| {
        if !quiet {
            print_conflicts(c)
        }
    };
    let unit_done = |n: u64| {
        if let Some(b) = bar.get() {
            b.inc(n * ranks)
        }
    };
    let planned = |total: u64| {
        let _ = bar.set(progress_bar(job, args.quiet, total));
    };
    let waiting = |holder: &str| {
        eprintln!(
            "boss-ingest: waiting for the store lock of {} (held by {holder})",
            cfg.store.display()
        )
    };
    let events = Events {
        failure: &failure,
        conflicts: &conflicts,
        unit_done: &unit_done,
        planned: &planned,
        waiting: &waiting,
    };
    let result = ingest::job::run(job, &cfg, &events);
    if let Some(b) = bar.get() {
        b.finish_and_clear();
    }
    match result {
        Err(e) => {
            if job.is_root() {
                eprintln!("boss-ingest: error: {}", one_line(&e.to_string()));
            }
            2
        }
        Ok(None) => 0,
        Ok(Some(summary)) => {
            if !report(args, &summary) {
                return 2;
            }
            u8::from(summary.files_failed > 0 || summary.stopped)
        }
    }
}

/// Conflicts of one plate-MJD: one line each, except the systematic spPlate-over-spec case, which
/// gets one line with a count.
fn print_conflicts(conflicts: &[Conflict]) {
    let spplate: Vec<&Conflict> = conflicts
        .iter()
        .filter(|c| c.rule == ConflictRule::SpplateOverSpec)
        .collect();
    if let Some(first) = spplate.first() {
        eprintln!(
            "boss-ingest: note: {} fibers of {} have both an spPlate and a spec-file coadd: the spPlate's are kept (spec files add their exposures and table rows)",
            spplate.len(),
            first.fiber.rsplit_once('-').map_or("", |(pm, _)| pm)
        );
    }
    for c in conflicts
        .iter()
        .filter(|c| c.rule != ConflictRule::SpplateOverSpec)
    {
        eprintln!("boss-ingest: conflict: {}", one_line(&c.to_string()));
    }
}

/// Says the outcome; false when the JSON summary could not be written to standard output.
fn report(args: &Args, s: &Summary) -> bool {
    if args.json {
        let json = serde_json::to_string_pretty(s).expect("summary serialises");
        if let Err(e) = model::stdout::write(&format!("{json}\n")) {
            eprintln!("boss-ingest: error: cannot write the summary to standard output: {e}");
            return false;
        }
    }
    if !args.quiet {
        eprintln!(
            "boss-ingest: {} files read ({} already in the store, {} failed) into {} store files ({} unchanged), \
             {} spectra added, {} conflicts, {:.1} MB read, {:.1} MB written in {:.2} s on {} rank(s)",
            s.files_read,
            s.files_skipped,
            s.files_failed,
            s.plate_mjds_written,
            s.plate_mjds_unchanged,
            s.fibers_added,
            s.conflicts.len(),
            s.bytes_read as f64 / 1e6,
            s.bytes_written as f64 / 1e6,
            s.seconds,
            s.ranks
        );
    }
    true
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
