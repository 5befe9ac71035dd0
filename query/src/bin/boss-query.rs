//! `boss-query`: copies a subset of fibers from the store into one shared HDF5 file, in parallel
//! under `mpirun`/`srun` or as a plain process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use catalog::fiberlist::read_fiber_list;
use catalog::FiberId;
use clap::Parser;
use query::engine::{run_query, QueryOptions, QueryReport};
use query::transfer::IoMode;
use ranks::Job;
use serde::Serialize;

/// Copy selected fibers (coadd, exposures and the matching rows of plugmap, spall, zline, zbest)
/// from the store into one HDF5 file with the same layout, with all MPI ranks writing in parallel.
///
/// Exit status: 0 all fibers found, 1 some fibers were not in the store, 2 the query could not run.
#[derive(Parser, Debug)]
#[command(version, max_term_width = 100)]
struct Args {
    /// The store directory written by boss-ingest.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Fiber list: CSV with a plate,mjd,fiber header (other columns ignored), or H5Boss's
    /// space-separated format with the header `plates mjds fibers`.
    #[arg(long, value_name = "LIST")]
    fibers: PathBuf,
    /// Output HDF5 file.
    #[arg(short, long, value_name = "OUT.h5")]
    output: PathBuf,
    /// How ranks write: each its own datasets (independent) or all together (collective).
    #[arg(long, value_enum, default_value = "independent")]
    io: IoMode,
    /// Replace OUT if it exists.
    #[arg(long)]
    force: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// The JSON summary.
#[derive(Serialize)]
struct Summary<'a> {
    fibers_asked: usize,
    duplicates: usize,
    fibers_found: usize,
    fibers_missing: usize,
    missing: Vec<String>,
    datasets: usize,
    bytes: u64,
    ranks: usize,
    io: IoMode,
    record_bytes: usize,
    collective_writes: u64,
    collective_fallbacks: u64,
    fallback_causes: &'a [&'static str],
    phases: &'a query::engine::Phases,
    seconds: f64,
    output: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let job = Job::init();
    ExitCode::from(run(&args, &job))
}

fn run(args: &Args, job: &Job) -> u8 {
    let start = Instant::now();
    let say = |msg: &str| {
        if job.is_root() {
            eprintln!("boss-query: {msg}");
        }
    };
    let list = match read_fiber_list(&args.fibers) {
        Ok(l) => l,
        Err(e) => {
            say(&format!("error: {e}"));
            return 2;
        }
    };
    if !args.store.is_dir() {
        say(&format!(
            "error: {}: the store directory does not exist",
            args.store.display()
        ));
        return 2;
    }
    if args.output.exists() && !args.force {
        say(&format!(
            "error: {}: exists (use --force to replace it)",
            args.output.display()
        ));
        return 2;
    }
    let opts = QueryOptions {
        store: args.store.clone(),
        fibers: list.fibers.clone(),
        output: args.output.clone(),
        io: args.io,
    };
    let Ok(report) = run_query(job, &opts) else {
        return 2;
    };
    if !job.is_root() {
        return exit_code(&report);
    }
    for m in &report.missing {
        eprintln!(
            "boss-query: not in the store: plate {} mjd {} fiber {}",
            m.plate, m.mjd, m.fiber
        );
    }
    if report.collective_fallbacks > 0 {
        eprintln!(
            "boss-query: warning: {} of {} collective writes fell back to independent I/O: {}",
            report.collective_fallbacks,
            report.collective_fallbacks + report.collective_writes,
            report.fallback_causes.join("; ")
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let summary = Summary {
            fibers_asked: list.fibers.len(),
            duplicates: list.duplicates,
            fibers_found: report.fibers_found,
            fibers_missing: report.missing.len(),
            missing: report.missing.iter().map(FiberId::to_string).collect(),
            datasets: report.datasets,
            bytes: report.bytes,
            ranks: job.size(),
            io: args.io,
            record_bytes: report.record_bytes,
            collective_writes: report.collective_writes,
            collective_fallbacks: report.collective_fallbacks,
            fallback_causes: &report.fallback_causes,
            phases: &report.phases,
            seconds,
            output: args.output.display().to_string(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serialises")
        );
    }
    let p = &report.phases;
    eprintln!(
        "boss-query: {} of {} fibers ({} datasets, {:.1} MB) into {} in {:.2} s on {} rank(s) \
         [scan {:.2} exchange {:.2} create {:.2} write {:.2} close {:.2}]",
        report.fibers_found,
        list.fibers.len(),
        report.datasets,
        report.bytes as f64 / 1e6,
        args.output.display(),
        seconds,
        job.size(),
        p.scan,
        p.exchange,
        p.create,
        p.write,
        p.close
    );
    exit_code(&report)
}

fn exit_code(report: &QueryReport) -> u8 {
    u8::from(!report.missing.is_empty())
}
