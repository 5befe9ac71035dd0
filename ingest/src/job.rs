//! A whole ingest on every rank of a job: rank 0 locks the store, removes stale temporary files,
//! discovers and plans the inputs and broadcasts the plan; every rank ingests its share of the
//! plate-MJDs; the catalog is brought up to date; rank 0 gets the summary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use model::layout::{self, Layout};
use ranks::{partition_by_weight, ExchangeError, Job};
use serde::{Deserialize, Serialize};

use crate::catalog_sync::sync_catalog;
use crate::lock::{LockError, StoreLock};
use crate::plan::{discover, plan, Failure, Plan};
use crate::run::{ingest_units, Catalogs, Counters, RunOptions};
use crate::writer::Conflict;

/// What to ingest, validated from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub inputs: Vec<PathBuf>,
    pub store: PathBuf,
    pub rebuild_catalog: bool,
    pub fail_fast: bool,
    /// Wait for another ingest of the same store to finish (else refuse).
    pub wait: bool,
    /// The layout of new store files; a store holds one layout.
    pub layout: Layout,
}

/// What the tool reports as it goes (printed by the binary, on rank 0 for the plan's messages).
pub struct Events<'a> {
    pub failure: &'a (dyn Fn(&Failure) + Sync),
    pub conflicts: &'a (dyn Fn(&[Conflict]) + Sync),
    pub unit_done: &'a (dyn Fn(u64) + Sync),
    /// Total number of input files, once planned (sizes the progress bar).
    pub planned: &'a dyn Fn(u64),
    /// Another ingest holds the store: we wait.
    pub waiting: &'a dyn Fn(&str),
}

/// Why an ingest could not run at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{}: cannot create the store directory: {source}", path.display())]
    CreateStore {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the store directory is not writable on rank {rank}: {source}", path.display())]
    NotWritable {
        path: PathBuf,
        rank: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("the store is not usable on another rank")]
    OtherRank,
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Root(String),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("{}: no such store directory", path.display())]
    NoStore { path: PathBuf },
    #[error("{}: the store holds the {} layout; --layout {} would mix layouts (one store holds one layout: use a new store, or boss-query to convert)", path.display(), found.name(), wanted.name())]
    Layout {
        path: PathBuf,
        found: Layout,
        wanted: Layout,
    },
}

/// The summary of a run (`--json`), on rank 0.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub files_found: usize,
    pub files_read: u64,
    pub files_skipped: u64,
    pub files_failed: usize,
    pub plate_mjds_written: u64,
    pub plate_mjds_unchanged: u64,
    pub fibers_added: u64,
    pub coadds_replaced: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    pub ranks: usize,
    pub catalog_rows_written: usize,
    pub catalog_files_refreshed: usize,
    pub conflicts: Vec<Conflict>,
    pub failures: Vec<Failure>,
    /// The run stopped at the first failure (`--fail-fast`).
    pub stopped: bool,
}

/// What rank 0 tells the others after locking and planning.
#[derive(Serialize, Deserialize)]
enum Start {
    Go(Plan),
    Stop(String),
}

/// Runs the ingest on every rank; `Ok(None)` on ranks other than 0.
pub fn run(job: &Job, cfg: &Config, events: &Events) -> Result<Option<Summary>, IngestError> {
    let start = Instant::now();
    // Rank 0: lock, clean, plan. The lock lives until the end of this function.
    let mut lock = None;
    let root_start = if job.is_root() {
        match lock_and_plan(cfg, events) {
            Ok((l, p)) => {
                lock = Some(l);
                Ok(Start::Go(p))
            }
            Err(e) => Err(e),
        }
    } else {
        Ok(Start::Stop(String::new()))
    };
    let announced = match &root_start {
        Ok(s) => job.broadcast(Some(s))?,
        Err(e) => job.broadcast(Some(&Start::Stop(e.to_string())))?,
    };
    let mut plan = match (root_start, announced) {
        (Err(e), _) => return Err(e),
        (Ok(_), Start::Stop(msg)) => return Err(IngestError::Root(msg)),
        (Ok(_), Start::Go(plan)) => plan,
    };
    check_writable(job, &cfg.store)?;

    let weights: Vec<u64> = plan.units.iter().map(|u| u.bytes()).collect();
    let owner = partition_by_weight(&weights, job.size());
    let total_files: u64 = plan.units.iter().map(|u| u.files.len() as u64).sum();
    (events.planned)(total_files);
    let mine: Vec<_> = std::mem::take(&mut plan.units)
        .into_iter()
        .zip(owner)
        .filter(|(_, o)| *o == job.rank())
        .map(|(u, _)| u)
        .collect();
    let early_failures = std::mem::take(&mut plan.failures);
    let stop_now = cfg.fail_fast && !early_failures.is_empty();
    let opts = RunOptions {
        store_dir: &cfg.store,
        layout: cfg.layout,
        fail_fast: cfg.fail_fast,
        on_failure: events.failure,
        on_conflicts: events.conflicts,
        on_unit_done: events.unit_done,
    };
    let (counters, stopped) = if stop_now {
        (Counters::default(), true)
    } else {
        ingest_units(mine, &Catalogs::of(&plan), &opts)
    };
    if stopped && !stop_now && job.size() > 1 {
        // The other ranks may still be writing: end them all (exit 1, as for any failed input).
        job.abort(1);
    }

    let catalog = sync_catalog(job, &cfg.store, cfg.rebuild_catalog);
    let Some(all) = job.gather_to_root(&counters)? else {
        return Ok(None);
    };
    drop(lock);
    let mut total = Counters::default();
    all.into_iter().for_each(|c| total.merge(c));
    let mut failures = early_failures;
    failures.extend(total.failures);
    for error in catalog.errors {
        let f = Failure {
            file: cfg.store.join(layout::CATALOG_FILE).display().to_string(),
            error,
        };
        (events.failure)(&f);
        failures.push(f);
    }
    Ok(Some(Summary {
        files_found: plan.files_found,
        files_read: total.files_read,
        files_skipped: total.files_skipped,
        files_failed: failures.len(),
        plate_mjds_written: total.plate_mjds_written,
        plate_mjds_unchanged: total.plate_mjds_unchanged,
        fibers_added: total.fibers_added,
        coadds_replaced: total.coadds_replaced,
        bytes_read: total.bytes_read,
        bytes_written: total.bytes_written,
        seconds: start.elapsed().as_secs_f64(),
        ranks: job.size(),
        catalog_rows_written: catalog.rows,
        catalog_files_refreshed: catalog.files_refreshed,
        conflicts: total.conflicts,
        failures,
        stopped,
    }))
}

/// Rank 0: creates the store directory, takes the lock, removes temporary files that no running
/// ingest owns (under the lock, every one is stale), then discovers and plans the inputs.
fn lock_and_plan(cfg: &Config, events: &Events) -> Result<(StoreLock, Plan), IngestError> {
    if cfg.inputs.is_empty() && !cfg.store.is_dir() {
        return Err(IngestError::NoStore {
            path: cfg.store.clone(),
        });
    }
    std::fs::create_dir_all(&cfg.store).map_err(|source| IngestError::CreateStore {
        path: cfg.store.clone(),
        source,
    })?;
    let lock = StoreLock::acquire(&cfg.store, cfg.wait, events.waiting)?;
    remove_temp_files(&cfg.store);
    check_layout(&cfg.store, cfg.layout)?;
    let (files, discovery_failures) = discover(&cfg.inputs);
    let mut p = plan(files, &cfg.store);
    let mut failures: Vec<Failure> = discovery_failures.iter().map(Into::into).collect();
    failures.append(&mut p.failures);
    for f in &failures {
        (events.failure)(f);
    }
    p.failures = failures;
    Ok((lock, p))
}

/// A store holds one layout: ingesting into a store of the other layout is refused.
fn check_layout(dir: &Path, layout: Layout) -> Result<(), IngestError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if layout::parse_store_file_name(&e.file_name().to_string_lossy()).is_none() {
            continue;
        }
        let found = hdf5::File::open(e.path())
            .ok()
            .and_then(|f| store::attrs::read_str_attr(&f, layout::FORMAT_ATTR))
            .and_then(|f| Layout::from_format(&f));
        if let Some(found) = found {
            if found != layout {
                return Err(IngestError::Layout {
                    path: dir.to_path_buf(),
                    found,
                    wanted: layout,
                });
            }
            return Ok(());
        }
    }
    Ok(())
}

fn remove_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if layout::is_temp_file_name(&e.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Every rank checks it can write into the store (another node may not see it); all agree.
fn check_writable(job: &Job, dir: &Path) -> Result<(), IngestError> {
    let probe = model::atomic::AtomicFile::new(&dir.join("write-probe"));
    let result = std::fs::write(probe.temp(), b"").map_err(|source| IngestError::NotWritable {
        path: dir.to_path_buf(),
        rank: job.rank(),
        source,
    });
    drop(probe);
    let failed = job.any(result.is_err());
    result?;
    if failed {
        return Err(IngestError::OtherRank);
    }
    Ok(())
}
