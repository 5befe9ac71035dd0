//! A whole `boss-query` run as one library call: a [`Request`] (the arguments, validated before any
//! work) → the selection (a list and/or catalog filters) → the HDF5 subset and/or the exports → a
//! [`Summary`]. The library prints nothing and chooses no exit code: the binary does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use catalog::filters::Filters;
use model::fiberlist::{read_fiber_list, FiberList, Missing};
use model::{FiberId, SpectrumId};
use ranks::Job;
use serde::Serialize;

use crate::engine::{run_query, IoMode, Phases, QueryOptions, QueryReport};
use crate::error::{QueryError, Result};
use crate::export::{export, parts, ExportOptions, ExportReport, ParquetCodec, SpectralColumn};
use crate::selection::{self, Ask, CatalogSource, IdReport, MatchReport, MatchRequest};

/// What a user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub store: PathBuf,
    pub fibers: Option<PathBuf>,
    /// The catalog filters (`--where` and the named ones).
    pub filters: Filters,
    /// Object IDs (`--ids`).
    pub ids: Option<PathBuf>,
    /// A crossmatch with a target list (`--match`).
    pub matching: Option<MatchRequest>,
    /// A whole SQL query (`--sql`): its result is printed as CSV or written to `parquet`.
    pub sql: Option<String>,
    /// Print the selection as CSV and write nothing.
    pub list: bool,
    pub output: Option<PathBuf>,
    pub arrow: Option<PathBuf>,
    pub parquet: Option<PathBuf>,
    pub columns: Vec<SpectralColumn>,
    /// The compression of Parquet exports.
    pub codec: ParquetCodec,
    /// Exports in the nested form (a struct-of-lists column per spectrum).
    pub nested: bool,
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
    pub matching: Option<MatchReport>,
    pub ids: Option<IdReport>,
    /// Rows of the `--sql` result.
    pub sql_rows: Option<usize>,
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
    /// The `--list` CSV (or the `--sql` result as CSV).
    #[serde(skip)]
    pub listing: Option<String>,
    /// The listed spectra the store does not have.
    #[serde(skip)]
    pub missing_ids: Vec<Missing>,
}

impl Summary {
    /// A summary of nothing done yet.
    fn empty(job: &Job, req: &Request) -> Self {
        Summary {
            fibers_asked: 0,
            duplicates: 0,
            selected: 0,
            catalog: None,
            fibers_found: 0,
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
            matching: None,
            ids: None,
            sql_rows: None,
            seconds: 0.0,
            kept: 0,
            added: 0,
            dropped: 0,
            peak_rss_mb: Vec::new(),
            output: req.output.as_ref().map(|o| o.display().to_string()),
            warnings: Vec::new(),
            listing: None,
            missing_ids: Vec::new(),
        }
    }
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
        if self.sql.is_some() {
            if self.selects() {
                return invalid("--sql is a whole query: put its conditions in its WHERE clause, not in --fibers, --where, --match, --ids or the filters".into());
            }
            if self.output.is_some() || self.arrow.is_some() || self.list || self.keep.is_some() {
                return invalid("--sql prints its result as CSV or writes it with --parquet; to copy the spectra of its rows, save it and pass it as --fibers (it needs plate, mjd and fiber columns)".into());
            }
        } else {
            if self.output.is_none() && self.arrow.is_none() && self.parquet.is_none() && !self.list
            {
                return invalid(
                    "nothing to do: give -o OUT.h5, --arrow, --parquet or --list".into(),
                );
            }
            if !self.selects() {
                return invalid("nothing selects fibers: give --fibers LIST, --where EXPR, --match TARGETS, --ids FILE and/or a filter (--cone, --z-min, --z-max, --class, --zwarning-zero, --primary)".into());
            }
        }
        if self.nested && !(self.arrow.is_some() || self.parquet.is_some()) {
            return invalid("--nested is a form of the export: give --parquet or --arrow".into());
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
            if Some(&r) == list.as_ref()
                || [
                    &self.ids,
                    &self.matching.as_ref().map(|m| m.targets.clone()),
                ]
                .into_iter()
                .flatten()
                .any(|p| resolved(p).ok().as_ref() == Some(&r))
            {
                return invalid(format!(
                    "{}: is an input of the query (--fibers, --ids or --match)",
                    out.display()
                ));
            }
            if seen.contains(&r) {
                return invalid(format!("{}: given as two outputs", out.display()));
            }
            let hdf5 = Some(out) == self.output.as_ref();
            if !hdf5 && parts::is_directory_form(out) {
                if self.sql.is_some() {
                    return invalid(format!(
                        "{}: --sql writes one Parquet file, not a directory",
                        out.display()
                    ));
                }
                parts::check_directory_output(&r, self.force).map_err(QueryError::Invalid)?;
            } else if self.keep.is_some() && hdf5 {
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
        self.sql.is_none() && (self.arrow.is_some() || self.parquet.is_some())
    }

    /// True when something selects fibers.
    fn selects(&self) -> bool {
        self.fibers.is_some() || self.filters.any() || self.ids.is_some() || self.matching.is_some()
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
    let mut listing = None;
    if job.is_root() {
        // Temporary files of runs that were killed (SIGKILL leaves them) beside the outputs.
        for out in req.outputs() {
            model::atomic::remove_stale_temp_files(model::atomic::parent_dir(out));
        }
    }
    if let Some(sql) = &req.sql {
        return run_sql(job, req, sql, start);
    }
    let list: Option<FiberList> = req.fibers.as_deref().map(read_fiber_list).transpose()?;
    let mut warnings = Vec::new();

    // What is selected: the list as given, or the catalog rows that pass every filter.
    // SDSS-V targets of a list are named by CATALOGID: the catalog says which spectra they are.
    let targets = list
        .as_ref()
        .is_some_and(|l| !l.targets.is_empty() || !l.desi.is_empty());
    let needs_catalog = req.filters.any()
        || req.ids.is_some()
        || req.matching.is_some()
        || req.list
        || req.exporting()
        || targets;
    let mut missing: Vec<Missing> = Vec::new();
    let (fibers, subset, source, matching, ids) = if needs_catalog {
        let ask = Ask {
            list: list
                .as_ref()
                .filter(|l| !l.fibers.is_empty())
                .map(|l| l.fibers.clone()),
            targets: list
                .as_ref()
                .filter(|l| !l.targets.is_empty())
                .map(|l| l.targets.clone()),
            desi: list
                .as_ref()
                .filter(|l| !l.desi.is_empty())
                .map(|l| l.desi.clone()),
            filters: req.filters.clone(),
            ids: req.ids.clone(),
            matching: req.matching.clone(),
            rows: req.exporting() && !req.list,
            listing: req.list,
        };
        let sel = selection::select(job, &req.store, &ask)?;
        warnings.extend(sel.warnings);
        missing = sel.missing;
        listing = sel.listing;
        (sel.spectra, sel.rows, sel.source, sel.matching, sel.ids)
    } else {
        (
            list.as_ref()
                .map(|l| l.fibers.iter().map(|&f| SpectrumId::from(f)).collect())
                .unwrap_or_default(),
            None,
            None,
            None,
            None,
        )
    };
    let mut summary = Summary::empty(job, req);
    summary.fibers_asked = list
        .as_ref()
        .map_or(0, |l| l.fibers.len() + l.targets.len() + l.desi.len());
    summary.duplicates = list.as_ref().map_or(0, |l| l.duplicates);
    summary.selected = fibers.len();
    summary.catalog = source;
    summary.fibers_found = fibers.len();
    summary.matching = matching;
    summary.ids = ids;
    summary.warnings = warnings;
    if req.list {
        summary.listing = listing;
    } else {
        if let Some(output) = &req.output {
            let mut fibers: Vec<SpectrumId> = fibers.clone();
            if let Some(keep) = req.keep {
                let old: Vec<SpectrumId> = old_fibers(job, output)?
                    .into_iter()
                    .map(SpectrumId::from)
                    .collect();
                let new: HashSet<SpectrumId> = fibers.iter().copied().collect();
                summary.kept = old.iter().filter(|f| new.contains(f)).count();
                summary.added = new.len() - summary.kept;
                summary.dropped = match keep {
                    Keep::Update => old.len() - summary.kept,
                    Keep::Add => 0,
                };
                if keep == Keep::Add {
                    let mut all: std::collections::BTreeSet<SpectrumId> = new.into_iter().collect();
                    all.extend(old);
                    fibers = all.into_iter().collect();
                }
            }
            let opts = QueryOptions {
                store: req.store.clone(),
                spectra: fibers,
                output: output.clone(),
                io: req.io,
                layout: req.layout,
                reuse: req.keep.map(|_| output.clone()),
            };
            let r: QueryReport = run_query(job, &opts)?;
            if source.is_none() {
                missing = r
                    .missing
                    .iter()
                    .filter_map(SpectrumId::fiber_id)
                    .map(Missing::Fiber)
                    .collect();
            }
            summary.fibers_found = r.fibers_found;
            summary.datasets = r.datasets;
            summary.bytes = r.bytes;
            summary.record_bytes = r.record_bytes;
            summary.collective_writes = r.collective_writes;
            summary.phases = Some(r.phases);
        }
        if req.exporting() {
            let subset = subset.as_ref().expect("exports read the catalog");
            let columns = if !req.columns.is_empty() {
                req.columns.clone()
            } else if crate::export::has_later_surveys(subset) {
                SpectralColumn::ALL.to_vec()
            } else {
                // SDSS-I–IV spectra only: their fields (no null wresl column).
                SpectralColumn::ALL
                    .into_iter()
                    .filter(|c| *c != SpectralColumn::Wresl)
                    .collect()
            };
            let opts = ExportOptions {
                arrow: req.arrow.clone(),
                parquet: req.parquet.clone(),
                columns,
                codec: req.codec,
                nested: req.nested,
            };
            summary.export = Some(export(job, &req.store, subset, &opts)?);
        }
    }
    summary.fibers_missing = missing.len();
    summary.missing = missing.iter().map(Missing::id).collect();
    summary.missing_ids = missing;
    summary.seconds = start.elapsed().as_secs_f64();
    summary.peak_rss_mb = job.all_gather(&(ranks::peak_rss_kib() as f64 / 1024.0))?;
    Ok(summary)
}

/// `--sql`: rank 0 runs the query and prints its result (the binary does) or writes it to Parquet.
fn run_sql(job: &Job, req: &Request, sql: &str, start: Instant) -> Result<Summary> {
    let (result, warnings) = selection::run_sql(job, &req.store, sql)?;
    let mut summary = Summary::empty(job, req);
    summary.output = req.parquet.as_ref().map(|o| o.display().to_string());
    summary.warnings = warnings;
    let mut failure = None;
    if let Some(rows) = result {
        summary.sql_rows = Some(rows.num_rows());
        let written = match &req.parquet {
            Some(path) => crate::export::write_parquet(path, &rows),
            None => selection::csv_of(&rows).map(|csv| summary.listing = Some(csv)),
        };
        failure = written.err();
    }
    let failed = job.any(failure.is_some());
    if let Some(e) = failure {
        return Err(e);
    }
    if failed {
        return Err(QueryError::OtherRank);
    }
    let rows = job.max_u64(summary.sql_rows.unwrap_or(0) as u64);
    summary.sql_rows = Some(rows as usize);
    summary.seconds = start.elapsed().as_secs_f64();
    summary.peak_rss_mb = job.all_gather(&(ranks::peak_rss_kib() as f64 / 1024.0))?;
    Ok(summary)
}
