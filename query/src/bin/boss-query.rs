//! `boss-query`: selects fibers from the store — by list, sky cone, redshift, class — and copies them
//! into one shared HDF5 file and/or exports them to Arrow/Parquet, in parallel under `mpirun`/`srun`
//! or as a plain process.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use catalog::select::{Cone, Selection};
use clap::Parser;
use model::fiberlist::{read_fiber_list, FiberList};
use model::FiberId;
use query::engine::{run_query, Phases, QueryOptions, QueryReport};
use query::export::{export, ExportOptions, ExportReport, SpectralColumn};
use query::selection::{list_csv, load_catalog, select, CatalogSource};
use query::transfer::IoMode;
use ranks::Job;
use serde::Serialize;

/// Select fibers from a BOSS store and copy them (coadd, exposures, and the matching rows of plugmap,
/// spall, zline, zbest) into one HDF5 file with the store's layout, and/or export them to Arrow or
/// Parquet for pandas, with all MPI ranks working in parallel. Filters combine with each other and
/// with --fibers (AND).
///
/// Exit status: 0 success, 1 some listed fibers are not in the store, 2 the query could not run.
#[derive(Parser, Debug)]
#[command(version, max_term_width = 100)]
struct Args {
    /// The store directory written by boss-ingest.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Fiber list: CSV with a plate,mjd,fiber header (other columns ignored), or H5Boss's
    /// space-separated format with the header `plates mjds fibers`.
    #[arg(long, value_name = "LIST")]
    fibers: Option<PathBuf>,
    /// Only fibers within RADIUS degrees (great circle) of RA,DEC (degrees).
    #[arg(long, value_name = "RA,DEC,RADIUS", allow_hyphen_values = true)]
    cone: Option<Cone>,
    /// Only redshifts z >= Z.
    #[arg(long, value_name = "Z", allow_hyphen_values = true)]
    z_min: Option<f64>,
    /// Only redshifts z <= Z.
    #[arg(long, value_name = "Z", allow_hyphen_values = true)]
    z_max: Option<f64>,
    /// Only this spectral class (GALAXY, QSO, STAR); repeat for several.
    #[arg(long = "class", value_name = "CLASS")]
    classes: Vec<String>,
    /// Only good redshifts (ZWARNING = 0).
    #[arg(long)]
    zwarning_zero: bool,
    /// Only primary spectra (SPECPRIMARY).
    #[arg(long)]
    primary: bool,
    /// Print the selected fibers as CSV (key,plate,mjd,fiber,ra,dec,class,z) and write nothing else.
    #[arg(long)]
    list: bool,
    /// Output HDF5 file.
    #[arg(short, long, value_name = "OUT.h5")]
    output: Option<PathBuf>,
    /// Export to an Arrow IPC file (pandas.read_feather opens it).
    #[arg(long, value_name = "OUT.arrow")]
    arrow: Option<PathBuf>,
    /// Export to a Parquet file (pandas.read_parquet opens it).
    #[arg(long, value_name = "OUT.parquet")]
    parquet: Option<PathBuf>,
    /// Spectral columns to export (default: all).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "COLUMNS")]
    columns: Vec<SpectralColumn>,
    /// How ranks write the HDF5 output: each its own datasets (independent) or all together (collective).
    #[arg(long, value_enum, default_value = "independent")]
    io: IoMode,
    /// Replace outputs that exist.
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
    selected: usize,
    catalog: Option<CatalogSource>,
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
    phases: Option<&'a Phases>,
    export: Option<&'a ExportReport>,
    seconds: f64,
    output: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Collective I/O needs MPI even for one process; otherwise a plain process runs without MPI
    // (an MPI singleton takes about a second to start) and writes with HDF5's serial driver.
    let job = match args.io {
        IoMode::Collective => Job::init(),
        IoMode::Independent => Job::init_if_launched(),
    };
    ExitCode::from(run(&args, &job))
}

fn selection_of(args: &Args, list: Option<&FiberList>) -> Selection {
    Selection {
        fibers: list.map(|l| l.fibers.iter().copied().collect::<HashSet<FiberId>>()),
        cone: args.cone,
        z_min: args.z_min,
        z_max: args.z_max,
        classes: args.classes.clone(),
        zwarning_zero: args.zwarning_zero,
        primary: args.primary,
    }
}

fn run(args: &Args, job: &Job) -> u8 {
    let start = Instant::now();
    let say = |msg: &str| {
        if job.is_root() {
            eprintln!("boss-query: {msg}");
        }
    };
    let exporting = args.arrow.is_some() || args.parquet.is_some();
    if args.output.is_none() && !exporting && !args.list {
        say("error: nothing to do: give -o OUT.h5, --arrow, --parquet or --list");
        return 2;
    }
    let list = match args.fibers.as_deref().map(read_fiber_list).transpose() {
        Ok(l) => l,
        Err(e) => {
            say(&format!("error: {e}"));
            return 2;
        }
    };
    let selection = selection_of(args, list.as_ref());
    let filtering = !selection.is_empty_filter()
        && (selection.fibers.is_none()
            || selection.cone.is_some()
            || selection.z_min.is_some()
            || selection.z_max.is_some()
            || !selection.classes.is_empty()
            || selection.zwarning_zero
            || selection.primary);
    if list.is_none() && !filtering {
        say("error: nothing selects fibers: give --fibers LIST and/or a filter (--cone, --z-min, --z-max, --class, --zwarning-zero, --primary)");
        return 2;
    }
    if !args.store.is_dir() {
        say(&format!(
            "error: {}: the store directory does not exist",
            args.store.display()
        ));
        return 2;
    }
    if !args.list {
        for out in [&args.output, &args.arrow, &args.parquet]
            .into_iter()
            .flatten()
        {
            if out.exists() && !args.force {
                say(&format!(
                    "error: {}: exists (use --force to replace it)",
                    out.display()
                ));
                return 2;
            }
        }
    }

    // What is selected: the list as given, or the catalog rows that pass every filter.
    let needs_catalog = filtering || args.list || exporting;
    // Listed fibers the store does not have are reported whatever the filters (exit 1).
    let mut missing: Vec<FiberId> = Vec::new();
    let (fibers, subset, source) = if needs_catalog {
        let (catalog, source) = match load_catalog(job, &args.store) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("boss-query: error (rank {}): {e}", job.rank());
                return 2;
            }
        };
        if let Some(l) = &list {
            missing = l
                .fibers
                .iter()
                .filter(|f| catalog.find(**f).is_none())
                .copied()
                .collect();
        }
        let (fibers, subset) = select(&catalog, &selection);
        (fibers, Some(subset), Some(source))
    } else {
        (
            list.as_ref().map(|l| l.fibers.clone()).unwrap_or_default(),
            None,
            None,
        )
    };
    let report_missing = |missing: &[FiberId]| {
        if job.is_root() {
            for m in missing {
                eprintln!(
                    "boss-query: not in the store: plate {} mjd {} fiber {}",
                    m.plate, m.mjd, m.fiber
                );
            }
        }
    };
    if args.list {
        if job.is_root() {
            print!(
                "{}",
                list_csv(subset.as_ref().expect("--list reads the catalog"))
            );
        }
        report_missing(&missing);
        return u8::from(!missing.is_empty());
    }

    let mut report: Option<QueryReport> = None;
    if let Some(output) = &args.output {
        let opts = QueryOptions {
            store: args.store.clone(),
            fibers: fibers.clone(),
            output: output.clone(),
            io: args.io,
        };
        match run_query(job, &opts) {
            Ok(r) => {
                if subset.is_none() {
                    missing = r.missing.clone();
                }
                report = Some(r);
            }
            Err(_) => return 2,
        }
    }
    let mut export_report = None;
    if exporting {
        let columns = if args.columns.is_empty() {
            SpectralColumn::ALL.to_vec()
        } else {
            args.columns.clone()
        };
        let opts = ExportOptions {
            arrow: args.arrow.clone(),
            parquet: args.parquet.clone(),
            columns,
        };
        match export(
            job,
            &args.store,
            subset.as_ref().expect("exports read the catalog"),
            &opts,
        ) {
            Ok(r) => export_report = Some(r),
            Err(e) => {
                eprintln!("boss-query: error (rank {}): {e}", job.rank());
                return 2;
            }
        }
    }
    let code = u8::from(!missing.is_empty());
    if !job.is_root() {
        return code;
    }

    for m in &missing {
        eprintln!(
            "boss-query: not in the store: plate {} mjd {} fiber {}",
            m.plate, m.mjd, m.fiber
        );
    }
    if let Some(r) = report.as_ref().filter(|r| r.collective_fallbacks > 0) {
        eprintln!(
            "boss-query: warning: {} of {} collective writes fell back to independent I/O: {}",
            r.collective_fallbacks,
            r.collective_fallbacks + r.collective_writes,
            r.fallback_causes.join("; ")
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let summary = Summary {
            fibers_asked: list.as_ref().map_or(0, |l| l.fibers.len()),
            duplicates: list.as_ref().map_or(0, |l| l.duplicates),
            selected: fibers.len(),
            catalog: source,
            fibers_found: report.as_ref().map_or(fibers.len(), |r| r.fibers_found),
            fibers_missing: missing.len(),
            missing: missing.iter().map(FiberId::to_string).collect(),
            datasets: report.as_ref().map_or(0, |r| r.datasets),
            bytes: report.as_ref().map_or(0, |r| r.bytes),
            ranks: job.size(),
            io: args.io,
            record_bytes: report.as_ref().map_or(0, |r| r.record_bytes),
            collective_writes: report.as_ref().map_or(0, |r| r.collective_writes),
            collective_fallbacks: report.as_ref().map_or(0, |r| r.collective_fallbacks),
            fallback_causes: report.as_ref().map_or(&[][..], |r| &r.fallback_causes),
            phases: report.as_ref().map(|r| &r.phases),
            export: export_report.as_ref(),
            seconds,
            output: args.output.as_ref().map(|o| o.display().to_string()),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("summary serialises")
        );
    }
    if let (Some(r), Some(output)) = (&report, &args.output) {
        let p = &r.phases;
        eprintln!(
            "boss-query: {} of {} fibers ({} datasets, {:.1} MB) into {} in {:.2} s on {} rank(s) \
             [scan {:.2} exchange {:.2} create {:.2} write {:.2} close {:.2}]",
            r.fibers_found,
            fibers.len(),
            r.datasets,
            r.bytes as f64 / 1e6,
            output.display(),
            seconds,
            job.size(),
            p.scan,
            p.exchange,
            p.create,
            p.write,
            p.close
        );
    }
    if let Some(e) = &export_report {
        eprintln!(
            "boss-query: exported {} spectra ({:.1} MB of spectra) in {:.2} s ({:.0} MB/s)",
            e.rows,
            e.spectra_bytes as f64 / 1e6,
            e.seconds,
            e.spectra_bytes as f64 / 1e6 / e.seconds.max(1e-9)
        );
    }
    code
}
