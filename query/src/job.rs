//! A whole `boss-query` run as one library call: a [`Request`] (the arguments, validated before any
//! work) → the selection (a list and/or catalog filters) → the HDF5 subset and/or the exports → a
//! [`Summary`]. The library prints nothing and chooses no exit code: the binary does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use catalog::select::{Cone, Selection};
use model::fiberlist::{read_fiber_list, FiberList};
use model::FiberId;
use ranks::Job;
use serde::Serialize;

use crate::engine::{run_query, IoMode, Phases, QueryOptions, QueryReport};
use crate::error::{QueryError, Result};
use crate::export::{export, ExportOptions, ExportReport, SpectralColumn};
use crate::selection::{list_csv, load_catalog, select, CatalogSource};

/// The catalog filters of a query (all combine with AND, and with the list).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub cone: Option<Cone>,
    pub z_min: Option<f64>,
    pub z_max: Option<f64>,
    pub classes: Vec<String>,
    pub zwarning_zero: bool,
    pub primary: bool,
}

impl Filters {
    fn any(&self) -> bool {
        self.cone.is_some()
            || self.z_min.is_some()
            || self.z_max.is_some()
            || !self.classes.is_empty()
            || self.zwarning_zero
            || self.primary
    }
}

/// What a user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub store: PathBuf,
    pub fibers: Option<PathBuf>,
    pub filters: Filters,
    /// Print the selection as CSV and write nothing.
    pub list: bool,
    pub output: Option<PathBuf>,
    pub arrow: Option<PathBuf>,
    pub parquet: Option<PathBuf>,
    pub columns: Vec<SpectralColumn>,
    pub io: IoMode,
    /// The layout of the HDF5 output (None: the store's).
    pub layout: Option<model::layout::Layout>,
    pub force: bool,
    /// Bring an existing output up to date instead of writing a new one.
    pub keep: Option<Keep>,
}

/// How an existing subset is brought up to date (its fibers are copied from it, not read from the
/// store again; the new file replaces it only when complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The subset ends up holding exactly the new selection.
    Update,
    /// The new selection is added to what the subset holds.
    Add,
}

/// The outcome, on every rank (`--json` prints it).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub fibers_asked: usize,
    pub duplicates: usize,
    pub selected: usize,
    pub catalog: Option<CatalogSource>,
    pub fibers_found: usize,
    pub fibers_missing: usize,
    pub missing: Vec<String>,
    pub datasets: usize,
    pub bytes: u64,
    pub ranks: usize,
    pub io: IoMode,
    pub record_bytes: usize,
    pub collective_writes: u64,
    pub phases: Option<Phases>,
    pub export: Option<ExportReport>,
    pub seconds: f64,
    /// With --update/--add: fibers copied from the old subset, read from the store, dropped.
    pub kept: usize,
    pub added: usize,
    pub dropped: usize,
    /// Peak resident memory of each rank, MiB.
    pub peak_rss_mb: Vec<f64>,
    pub output: Option<String>,
    /// Things the user should know (a stale catalog, …), one line each.
    pub warnings: Vec<String>,
    /// The `--list` CSV.
    #[serde(skip)]
    pub listing: Option<String>,
    /// The listed fibers the store does not have.
    #[serde(skip)]
    pub missing_ids: Vec<FiberId>,
}

/// A path made comparable: its directory resolved (which must exist), its name kept.
fn resolved(p: &Path) -> Result<PathBuf> {
    let dir = model::atomic::parent_dir(p);
    let dir = dir.canonicalize().map_err(|e| {
        QueryError::Invalid(format!(
            "{}: the directory does not exist ({e})",
            dir.display()
        ))
    })?;
    Ok(dir.join(p.file_name().unwrap_or_default()))
}

impl Request {
    /// The outputs that will be written (none with `--list`).
    fn outputs(&self) -> Vec<&PathBuf> {
        if self.list {
            return Vec::new();
        }
        [&self.output, &self.arrow, &self.parquet]
            .into_iter()
            .flatten()
            .collect()
    }

    /// Checks everything that can be checked before any work, the same on every rank: something
    /// to do and something selecting, an existing store, and outputs that cannot destroy anything
    /// (they must be distinct, outside the store directory, not the fiber list, and new unless
    /// `--force`).
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: String| Err(QueryError::Invalid(m));
        if self.output.is_none() && self.arrow.is_none() && self.parquet.is_none() && !self.list {
            return invalid("nothing to do: give -o OUT.h5, --arrow, --parquet or --list".into());
        }
        if self.fibers.is_none() && !self.filters.any() {
            return invalid("nothing selects fibers: give --fibers LIST and/or a filter (--cone, --z-min, --z-max, --class, --zwarning-zero, --primary)".into());
        }
        if !self.store.is_dir() {
            return invalid(format!(
                "{}: the store directory does not exist",
                self.store.display()
            ));
        }
        let store = self
            .store
            .canonicalize()
            .map_err(|e| QueryError::Invalid(format!("{}: {e}", self.store.display())))?;
        let list = self.fibers.as_deref().map(resolved).transpose()?;
        let mut seen: Vec<PathBuf> = Vec::new();
        for out in self.outputs() {
            let r = resolved(out)?;
            if model::atomic::parent_dir(&r) == store {
                return invalid(format!(
                    "{}: outputs cannot go into the store directory (they could replace store files)",
                    out.display()
                ));
            }
            if Some(&r) == list.as_ref() {
                return invalid(format!(
                    "{}: is the fiber list given with --fibers",
                    out.display()
                ));
            }
            if seen.contains(&r) {
                return invalid(format!("{}: given as two outputs", out.display()));
            }
            if self.keep.is_some() && Some(out) == self.output.as_ref() {
                if !r.is_file() {
                    return invalid(format!(
                        "{}: --update and --add need an existing output to bring up to date",
                        out.display()
                    ));
                }
            } else if r.exists() && !self.force {
                return invalid(format!(
                    "{}: exists (use --force to replace it)",
                    out.display()
                ));
            }
            seen.push(r);
        }
        Ok(())
    }

    fn exporting(&self) -> bool {
        self.arrow.is_some() || self.parquet.is_some()
    }
}

/// The fibers an existing output holds (rank 0 reads it, every rank gets the list).
fn old_fibers(job: &Job, output: &Path) -> Result<Vec<FiberId>> {
    let listed = job.is_root().then(|| {
        crate::scan::fibers_in(output)
            .map(|m| {
                m.into_iter()
                    .flat_map(|(pm, f)| {
                        f.into_iter()
                            .map(move |f| FiberId::new(pm.plate, pm.mjd, f).key())
                    })
                    .collect::<Vec<i64>>()
            })
            .map_err(|e| e.to_string())
    });
    let listed: std::result::Result<Vec<i64>, String> = job.broadcast(listed.as_ref())?;
    match listed {
        Ok(keys) => Ok(keys.into_iter().map(FiberId::from_key).collect()),
        Err(e) if job.is_root() => Err(QueryError::Invalid(e)),
        Err(_) => Err(QueryError::OtherRank),
    }
}

/// Runs a request on every rank.
pub fn run(job: &Job, req: &Request) -> Result<Summary> {
    let start = Instant::now();
    req.validate()?;
    if job.is_root() {
        // Temporary files of runs that were killed (SIGKILL leaves them) beside the outputs.
        for out in req.outputs() {
            model::atomic::remove_stale_temp_files(model::atomic::parent_dir(out));
        }
    }
    let list: Option<FiberList> = req.fibers.as_deref().map(read_fiber_list).transpose()?;
    let selection = Selection {
        fibers: list
            .as_ref()
            .map(|l| l.fibers.iter().copied().collect::<HashSet<FiberId>>()),
        cone: req.filters.cone,
        z_min: req.filters.z_min,
        z_max: req.filters.z_max,
        classes: req.filters.classes.clone(),
        zwarning_zero: req.filters.zwarning_zero,
        primary: req.filters.primary,
    };
    let mut warnings = Vec::new();

    // What is selected: the list as given, or the catalog rows that pass every filter.
    let needs_catalog = req.filters.any() || req.list || req.exporting();
    let mut missing: Vec<FiberId> = Vec::new();
    let (fibers, subset, source) = if needs_catalog {
        let loaded = load_catalog(job, &req.store)?;
        warnings.extend(loaded.warnings);
        if let Some(l) = &list {
            missing = l
                .fibers
                .iter()
                .filter(|f| loaded.catalog.find(**f).is_none())
                .copied()
                .collect();
        }
        let (fibers, subset) = select(&loaded.catalog, &selection);
        (fibers, Some(subset), Some(loaded.source))
    } else {
        (
            list.as_ref().map(|l| l.fibers.clone()).unwrap_or_default(),
            None,
            None,
        )
    };
    let mut summary = Summary {
        fibers_asked: list.as_ref().map_or(0, |l| l.fibers.len()),
        duplicates: list.as_ref().map_or(0, |l| l.duplicates),
        selected: fibers.len(),
        catalog: source,
        fibers_found: fibers.len(),
        fibers_missing: 0,
        missing: Vec::new(),
        datasets: 0,
        bytes: 0,
        ranks: job.size(),
        io: req.io,
        record_bytes: 0,
        collective_writes: 0,
        phases: None,
        export: None,
        seconds: 0.0,
        kept: 0,
        added: 0,
        dropped: 0,
        peak_rss_mb: Vec::new(),
        output: req.output.as_ref().map(|o| o.display().to_string()),
        warnings,
        listing: None,
        missing_ids: Vec::new(),
    };
    if req.list {
        summary.listing = Some(list_csv(subset.as_ref().expect("--list reads the catalog")));
    } else {
        if let Some(output) = &req.output {
            let mut fibers = fibers.clone();
            if let Some(keep) = req.keep {
                let old = old_fibers(job, output)?;
                let new: HashSet<FiberId> = fibers.iter().copied().collect();
                summary.kept = old.iter().filter(|f| new.contains(f)).count();
                summary.added = new.len() - summary.kept;
                summary.dropped = match keep {
                    Keep::Update => old.len() - summary.kept,
                    Keep::Add => 0,
                };
                if keep == Keep::Add {
                    let mut all: std::collections::BTreeSet<FiberId> = new.into_iter().collect();
                    all.extend(old);
                    fibers = all.into_iter().collect();
                }
            }
            let opts = QueryOptions {
                store: req.store.clone(),
                fibers,
                output: output.clone(),
                io: req.io,
                layout: req.layout,
                reuse: req.keep.map(|_| output.clone()),
            };
            let r: QueryReport = run_query(job, &opts)?;
            if subset.is_none() {
                missing = r.missing.clone();
            }
            summary.fibers_found = r.fibers_found;
            summary.datasets = r.datasets;
            summary.bytes = r.bytes;
            summary.record_bytes = r.record_bytes;
            summary.collective_writes = r.collective_writes;
            summary.phases = Some(r.phases);
        }
        if req.exporting() {
            let columns = if req.columns.is_empty() {
                SpectralColumn::ALL.to_vec()
            } else {
                req.columns.clone()
            };
            let opts = ExportOptions {
                arrow: req.arrow.clone(),
                parquet: req.parquet.clone(),
                columns,
            };
            let subset = subset.as_ref().expect("exports read the catalog");
            summary.export = Some(export(job, &req.store, subset, &opts)?);
        }
    }
    summary.fibers_missing = missing.len();
    summary.missing = missing.iter().map(FiberId::to_string).collect();
    summary.missing_ids = missing;
    summary.seconds = start.elapsed().as_secs_f64();
    summary.peak_rss_mb = job.all_gather(&(ranks::peak_rss_kib() as f64 / 1024.0))?;
    Ok(summary)
}
