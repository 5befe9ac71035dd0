//! Resolving what a query selects. A fiber list alone needs nothing else; filters (`--where` and
//! the named ones), `--match`, `--ids`, `--list`, `--sql` and the exports read the store's catalog.
//! Rank 0 runs the SQL engine and tells every rank the answer. Rows of store files the catalog does
//! not reflect (newer than it, missing from it — an ingest killed between writing a store file and
//! the catalog — or a store without a catalog) are first built from the HDF5 files by the ranks in
//! parallel, so the answer is never stale.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use catalog::build::build_on_ranks;
use catalog::crossmatch::{crossmatch, read_targets};
use catalog::filters::Filters;
use catalog::freshness;
use catalog::ids::read_ids;
use catalog::sky::Angle;
use catalog::sql::{key_in, one_of, Engine};
use catalog::{columns, Catalog, CatalogError};
use model::fiberlist::{DesiRef, Missing, TargetRef};
use model::{layout, FiberId, GroupId, SpectrumId};
use ranks::Job;
use serde::{Deserialize, Serialize};

use crate::error::{QueryError, Result};

/// Where the catalog rows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogSource {
    /// `<STORE>/catalog.parquet` (with any stale rows rebuilt from their store files).
    CatalogFile,
    /// Built from the HDF5 files by the ranks (no catalog file).
    StoreScan,
}

/// The columns `--list` prints (with the ID column of `--ids`, and target columns and the
/// separation with `--match`).
pub const LIST_COLUMNS: [&str; 8] = [
    columns::KEY,
    columns::PLATE,
    columns::MJD,
    columns::FIBER,
    columns::RA,
    columns::DEC,
    columns::CLASS,
    columns::Z,
];

/// The columns `--list` adds when SDSS-V spectra are listed.
pub const SDSS5_LIST_COLUMNS: [&str; 3] = [columns::SURVEY, columns::FIELDID, columns::CATALOGID];

/// True for the key of an SDSS-V spectrum.
fn is_sdss5(key: i64) -> bool {
    SpectrumId::from_key(key).is_some_and(|s| matches!(s.group, GroupId::Field(_)))
}

/// True for the key of a DESI spectrum.
fn is_desi(key: i64) -> bool {
    SpectrumId::from_key(key).is_some_and(|s| matches!(s.group, GroupId::Desi(_)))
}

/// A crossmatch asked for.
#[derive(Debug, Clone)]
pub struct MatchRequest {
    pub targets: PathBuf,
    pub radius: Angle,
    pub all: bool,
}

/// What selects the fibers: every part given must hold (AND).
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub list: Option<Vec<FiberId>>,
    /// SDSS-V targets of a spectrum list (field, MJD, CATALOGID), resolved through the catalog.
    pub targets: Option<Vec<TargetRef>>,
    /// DESI targets of a spectrum list (TARGETID, maybe which coadds), resolved likewise.
    pub desi: Option<Vec<DesiRef>>,
    pub filters: Filters,
    pub ids: Option<PathBuf>,
    pub matching: Option<MatchRequest>,
    /// The catalog rows of the selection are needed on every rank (exports).
    pub rows: bool,
    /// The `--list` CSV is wanted.
    pub listing: bool,
}

/// How a crossmatch went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MatchReport {
    pub targets: usize,
    pub matched_targets: usize,
    pub matches: usize,
    pub radius_arcsec: f64,
}

/// How an ID lookup went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdReport {
    pub column: String,
    pub ids: usize,
    pub duplicates: usize,
    /// IDs without a fiber in the store.
    pub not_found: usize,
}

/// The answer, on every rank.
#[derive(Debug, Default)]
pub struct Selected {
    /// The selected spectra, sorted (by key).
    pub spectra: Vec<SpectrumId>,
    /// Their catalog rows (every column, sorted by key) when [`Ask::rows`].
    pub rows: Option<RecordBatch>,
    /// The `--list` CSV (rank 0).
    pub listing: Option<String>,
    pub source: Option<CatalogSource>,
    pub warnings: Vec<String>,
    /// Listed spectra the store does not have.
    pub missing: Vec<Missing>,
    pub matching: Option<MatchReport>,
    pub ids: Option<IdReport>,
}

/// What rank 0 tells the others.
#[derive(Serialize, Deserialize)]
struct Shared {
    keys: Vec<i64>,
    missing: Vec<Missing>,
    source: CatalogSource,
    warnings: Vec<String>,
    matching: Option<MatchReport>,
    ids: Option<IdReport>,
}

/// A catalog ready for SQL, on rank 0.
struct Opened {
    engine: Engine,
    source: CatalogSource,
    warnings: Vec<String>,
}

/// Opens the store's catalog for SQL (collective: stale rows are built by every rank). Some on
/// rank 0, None on the others.
fn open_catalog(job: &Job, store: &Path) -> Result<Option<Opened>> {
    let path = store.join(layout::CATALOG_FILE);
    let checked: Option<std::result::Result<freshness::Freshness, String>> = job
        .is_root()
        .then(|| freshness::check(store, false).map_err(|e| e.to_string()));
    let fresh: std::result::Result<freshness::Freshness, String> =
        job.broadcast(checked.as_ref())?;
    let fresh = match fresh {
        Ok(f) => f,
        Err(e) if job.is_root() => return Err(QueryError::Catalog(CatalogError::Input(e))),
        Err(_) => return Err(QueryError::OtherRank),
    };
    let built = build_on_ranks(job, &fresh.stale)?;
    let Some(built) = built else {
        return Ok(None);
    };
    if !built.errors.is_empty() {
        return Err(CatalogError::StoreFiles(built.errors).into());
    }
    if fresh.is_current() {
        let engine = Engine::over_file(&path)?;
        return Ok(Some(Opened {
            engine,
            source: CatalogSource::CatalogFile,
            warnings: Vec::new(),
        }));
    }
    let (mut catalog, source, warning) = match &fresh.unusable {
        None => (
            Catalog::read(&path)?,
            CatalogSource::CatalogFile,
            Some(format!(
                "{} is older than {} store file(s) and lists {} that no longer exist: their rows were read from the store files (run boss-ingest --rebuild-catalog {} to refresh it)",
                path.display(),
                fresh.stale.len(),
                fresh.gone.len(),
                store.display()
            )),
        ),
        Some(_) if !path.exists() => (Catalog::empty(), CatalogSource::StoreScan, None),
        Some(why) => (
            Catalog::empty(),
            CatalogSource::StoreScan,
            Some(format!(
                "{why}: every row was read from the store files (run boss-ingest --rebuild-catalog {} to rewrite it)",
                store.display()
            )),
        ),
    };
    catalog.replace(&fresh.replaced(), built.batches)?;
    Ok(Some(Opened {
        engine: Engine::over_catalog(&catalog)?,
        source,
        warnings: warning.into_iter().collect(),
    }))
}

/// Resolves a selection on every rank (collective).
pub fn select(job: &Job, store: &Path, ask: &Ask) -> Result<Selected> {
    let opened = open_catalog(job, store)?;
    // Every rank learns rank 0's answer, or that it failed (rank 0 keeps its error to report it).
    let mut root_error = None;
    let (mut root_rows, mut listing) = (None, None);
    let message: Option<std::result::Result<Shared, String>> =
        match opened.map(|o| on_root(&o, ask)) {
            Some(Ok((s, rows, list))) => {
                (root_rows, listing) = (rows, list);
                Some(Ok(s))
            }
            Some(Err(e)) => {
                let m = e.to_string();
                root_error = Some(e);
                Some(Err(m))
            }
            None => None,
        };
    let shared: std::result::Result<Shared, String> = job.broadcast(message.as_ref())?;
    if let Some(e) = root_error {
        return Err(e);
    }
    let shared = shared.map_err(|_| QueryError::OtherRank)?;
    let rows = if ask.rows {
        let bytes = match &root_rows {
            Some(r) if job.is_root() => catalog::ipc::to_bytes(r)?,
            _ => Vec::new(),
        };
        let bytes = job.broadcast_bytes(bytes);
        Some(match root_rows {
            Some(r) => r,
            None => catalog::ipc::from_bytes(&bytes)?,
        })
    } else {
        None
    };
    Ok(Selected {
        spectra: shared
            .keys
            .iter()
            .filter_map(|&k| SpectrumId::from_key(k))
            .collect(),
        rows,
        listing,
        source: Some(shared.source),
        warnings: shared.warnings,
        missing: shared.missing,
        matching: shared.matching,
        ids: shared.ids,
    })
}

/// Rank 0's part: the SQL, the crossmatch, the listing.
fn on_root(o: &Opened, ask: &Ask) -> Result<(Shared, Option<RecordBatch>, Option<String>)> {
    let engine = &o.engine;
    let mut filters = ask.filters.terms();
    let mut exprs = Vec::new();
    let mut missing = Vec::new();
    if let Some(list) = &ask.list {
        let keys: Vec<i64> = list.iter().map(|f| f.key()).collect();
        exprs.push(key_in(&keys));
        // Listed fibers the catalog does not have at all (not those the filters leave out).
        let present = engine.select(&[], vec![key_in(&keys)], Some(&[columns::KEY]))?;
        let present: HashSet<i64> = key_values(&present).collect();
        missing = keys
            .into_iter()
            .filter(|k| !present.contains(k))
            .map(|k| Missing::Fiber(FiberId::from_key(k)))
            .collect();
    }
    if let Some(targets) = &ask.targets {
        let (keys, absent) = resolve_targets(engine, targets)?;
        exprs.push(key_in(&keys));
        missing.extend(absent.into_iter().map(Missing::Target));
    }
    if let Some(refs) = &ask.desi {
        let (keys, absent) = resolve_desi(engine, refs)?;
        exprs.push(key_in(&keys));
        missing.extend(absent.into_iter().map(Missing::Desi));
    }
    let mut id_report = None;
    let mut id_column = None;
    if let Some(path) = &ask.ids {
        let list = read_ids(path, |c| engine.column_type(c))?;
        let values = list.values.clone();
        exprs.push(one_of(&list.column, values));
        id_report = Some(IdReport {
            column: list.column.clone(),
            ids: list.values.len(),
            duplicates: list.duplicates,
            not_found: 0,
        });
        id_column = Some(list.column);
    }
    let mut matched = None;
    if let Some(m) = &ask.matching {
        let targets = read_targets(&m.targets)?;
        let cand = engine.select(
            &filters,
            exprs.clone(),
            Some(&[columns::KEY, columns::RA, columns::DEC]),
        )?;
        let keys: Vec<i64> = key_values(&cand).collect();
        let ra = cand.column(1).as_primitive::<Float64Type>();
        let dec = cand.column(2).as_primitive::<Float64Type>();
        let with_position: Vec<usize> = (0..cand.num_rows())
            .filter(|&i| ra.is_valid(i) && dec.is_valid(i))
            .collect();
        let positions: Vec<(f64, f64)> = with_position
            .iter()
            .map(|&i| (ra.value(i), dec.value(i)))
            .collect();
        let t: Vec<(f64, f64)> = targets
            .ra
            .iter()
            .copied()
            .zip(targets.dec.iter().copied())
            .collect();
        let found = crossmatch(&positions, &t, m.radius, m.all)?;
        let mut fiber_keys: Vec<i64> = found
            .iter()
            .map(|f| keys[with_position[f.position]])
            .collect();
        let report = MatchReport {
            targets: targets.len(),
            matched_targets: found.iter().map(|f| f.target).collect::<HashSet<_>>().len(),
            matches: found.len(),
            radius_arcsec: m.radius.arcsec(),
        };
        fiber_keys.sort_unstable();
        fiber_keys.dedup();
        // The filters are applied: the matched keys are the selection.
        filters.clear();
        exprs = vec![key_in(&fiber_keys)];
        matched = Some((
            targets,
            found
                .into_iter()
                .map(|f| (f.target, keys[with_position[f.position]], f.separation))
                .collect::<Vec<_>>(),
            report,
        ));
    }
    let mut list_columns: Vec<&str> = LIST_COLUMNS.to_vec();
    // The columns SDSS-V users name their spectra by; listed when SDSS-V rows are selected.
    list_columns.extend(SDSS5_LIST_COLUMNS);
    // DESI users name theirs by TARGETID (a column only when the store holds DESI spectra).
    let desi_column = engine
        .column_type(model::desi::TARGETID)
        .is_some()
        .then_some(model::desi::TARGETID);
    list_columns.extend(desi_column);
    if let Some(c) = &id_column {
        if !list_columns.iter().any(|l| l.eq_ignore_ascii_case(c)) {
            list_columns.push(c);
        }
    }
    let columns: Option<&[&str]> = if ask.rows {
        None
    } else if ask.listing {
        Some(&list_columns)
    } else {
        Some(&[columns::KEY])
    };
    let rows = engine.select(&filters, exprs, columns)?;
    let keys: Vec<i64> = key_values(&rows).collect();
    if !keys.iter().any(|&k| is_sdss5(k)) {
        let id = id_column.as_deref().unwrap_or("");
        list_columns.retain(|c| !SDSS5_LIST_COLUMNS.contains(c) || c.eq_ignore_ascii_case(id));
    }
    if !keys.iter().any(|&k| is_desi(k)) {
        let id = id_column.as_deref().unwrap_or("");
        list_columns.retain(|c| {
            !c.eq_ignore_ascii_case(model::desi::TARGETID) || c.eq_ignore_ascii_case(id)
        });
    } else if !list_columns.contains(&columns::SURVEY) {
        list_columns.push(columns::SURVEY);
    }
    if let (Some(r), Some(c)) = (&mut id_report, &id_column) {
        let found: HashSet<String> = (0..rows.num_rows())
            .filter_map(|i| {
                let schema = rows.schema();
                let (at, _) = schema
                    .fields()
                    .iter()
                    .enumerate()
                    .find(|(_, f)| f.name().eq_ignore_ascii_case(c))?;
                let col = rows.column(at);
                arrow::util::display::array_value_to_string(col, i).ok()
            })
            .collect();
        r.not_found = r.ids.saturating_sub(found.len());
    }
    let listing = if ask.listing {
        Some(match &matched {
            Some((targets, found, _)) => match_listing(targets, found, &rows, &list_columns)?,
            None => csv_of(&project(&rows, &list_columns)?)?,
        })
    } else {
        None
    };
    let shared = Shared {
        keys,
        missing,
        source: o.source,
        warnings: o.warnings.clone(),
        matching: matched.map(|m| m.2),
        ids: id_report,
    };
    Ok((shared, ask.rows.then_some(rows), listing))
}

/// The catalog keys of SDSS-V targets named by field, MJD and CATALOGID (every coadd of them, or
/// the one the list names), and the targets the catalog does not have.
fn resolve_targets(engine: &Engine, targets: &[TargetRef]) -> Result<(Vec<i64>, Vec<TargetRef>)> {
    use arrow::datatypes::Int32Type;
    let ids: std::collections::BTreeSet<i64> = targets.iter().map(|t| t.catalogid).collect();
    let ids: Vec<i64> = ids.into_iter().collect();
    let rows = engine.select(
        &[],
        vec![catalog::sql::int64_in(columns::CATALOGID, &ids)],
        Some(&[
            columns::KEY,
            columns::FIELDID,
            columns::MJD,
            columns::CATALOGID,
        ]),
    )?;
    let field = rows.column(1).as_primitive::<Int32Type>();
    let mjd = rows.column(2).as_primitive::<Int32Type>();
    let catalogid = rows.column(3).as_primitive::<Int64Type>();
    let mut by_target: std::collections::HashMap<(i32, i32, i64), Vec<(i64, model::Coadd)>> =
        Default::default();
    for (i, key) in key_values(&rows).enumerate() {
        let Some(SpectrumId {
            group: GroupId::Field(g),
            ..
        }) = SpectrumId::from_key(key)
        else {
            continue;
        };
        if field.is_valid(i) && catalogid.is_valid(i) {
            by_target
                .entry((field.value(i), mjd.value(i), catalogid.value(i)))
                .or_default()
                .push((key, g.coadd));
        }
    }
    let mut keys = Vec::new();
    let mut absent = Vec::new();
    for t in targets {
        let found: Vec<i64> = by_target
            .get(&(t.field, t.mjd, t.catalogid))
            .into_iter()
            .flatten()
            .filter(|(_, c)| t.coadd.is_none_or(|want| want == *c))
            .map(|(k, _)| *k)
            .collect();
        if found.is_empty() {
            absent.push(*t);
        }
        keys.extend(found);
    }
    keys.sort_unstable();
    keys.dedup();
    Ok((keys, absent))
}

/// The catalog keys of DESI targets named by TARGETID (the coadds each reference fits), and the
/// references the catalog has no spectrum for.
fn resolve_desi(engine: &Engine, refs: &[DesiRef]) -> Result<(Vec<i64>, Vec<DesiRef>)> {
    let ids: std::collections::BTreeSet<i64> = refs.iter().map(|t| t.targetid).collect();
    let ids: Vec<i64> = ids.into_iter().collect();
    let mut by_target: std::collections::HashMap<i64, Vec<(i64, model::DesiGroup)>> =
        Default::default();
    if engine.column_type(model::desi::TARGETID).is_some() {
        let rows = engine.select(
            &[],
            vec![catalog::sql::int64_in(model::desi::TARGETID, &ids)],
            Some(&[columns::KEY, model::desi::TARGETID]),
        )?;
        let col = rows.column(1);
        // TARGETID is int64 in DESI's files (UInt64 if a catalog ever makes it unsigned).
        let tids: Vec<Option<i64>> = match col.data_type() {
            DataType::Int64 => col.as_primitive::<Int64Type>().iter().collect(),
            DataType::UInt64 => col
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .iter()
                .map(|v| v.map(|v| v as i64))
                .collect(),
            _ => vec![None; col.len()],
        };
        for (key, tid) in key_values(&rows).zip(tids) {
            if let (
                Some(SpectrumId {
                    group: GroupId::Desi(g),
                    ..
                }),
                Some(tid),
            ) = (SpectrumId::from_key(key), tid)
            {
                by_target.entry(tid).or_default().push((key, g));
            }
        }
    }
    let mut keys = Vec::new();
    let mut absent = Vec::new();
    for r in refs {
        let found: Vec<i64> = by_target
            .get(&r.targetid)
            .into_iter()
            .flatten()
            .filter(|(_, g)| r.fits(g))
            .map(|(k, _)| *k)
            .collect();
        if found.is_empty() {
            absent.push(*r);
        }
        keys.extend(found);
    }
    keys.sort_unstable();
    keys.dedup();
    Ok((keys, absent))
}

fn key_values(b: &RecordBatch) -> impl Iterator<Item = i64> + '_ {
    let k = b
        .column_by_name(columns::KEY)
        .expect("selections keep the key")
        .as_primitive::<Int64Type>();
    k.values().iter().copied()
}

/// The named columns of a batch.
fn project(b: &RecordBatch, names: &[&str]) -> Result<RecordBatch> {
    let idx: Vec<usize> = names
        .iter()
        .map(|n| {
            b.schema()
                .index_of(n)
                .map_err(|e| QueryError::Catalog(CatalogError::Sql(e.to_string())))
        })
        .collect::<Result<_>>()?;
    b.project(&idx)
        .map_err(|e| QueryError::Catalog(CatalogError::Sql(e.to_string())))
}

/// A batch as CSV with a header (the `--list` and `--sql` output). Array columns (MAG, the
/// spectra) are written as their text, `[1.0, 2.0]`, quoted: CSV has no nested values.
pub fn csv_of(b: &RecordBatch) -> Result<String> {
    let b = nested_as_text(b).map_err(QueryError::Csv)?;
    let mut buf = Vec::new();
    {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        w.write(&b).map_err(QueryError::Csv)?;
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The batch with every nested column (lists, structs, maps) replaced by its text.
fn nested_as_text(b: &RecordBatch) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    if !b
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(b.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (f, a) in b.schema().fields().iter().zip(b.columns()) {
        if !f.data_type().is_nested() {
            fields.push(f.as_ref().clone());
            arrays.push(a.clone());
            continue;
        }
        let fmt = ArrayFormatter::try_new(a.as_ref(), &options)?;
        let text: StringArray = (0..a.len())
            .map(|i| a.is_valid(i).then(|| fmt.value(i).to_string()))
            .collect();
        fields.push(Field::new(f.name(), DataType::Utf8, true));
        arrays.push(Arc::new(text));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

/// The `--list` of a crossmatch: each target's columns as written, then its fiber's columns and the
/// separation in arcseconds, one line per match in target order.
fn match_listing(
    targets: &catalog::crossmatch::Targets,
    found: &[(usize, i64, f64)],
    rows: &RecordBatch,
    columns: &[&str],
) -> Result<String> {
    let keys: std::collections::HashMap<i64, u64> = key_values(rows)
        .enumerate()
        .map(|(i, k)| (k, i as u64))
        .collect();
    let idx = arrow::array::UInt64Array::from_iter_values(found.iter().map(|f| keys[&f.1]));
    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let fiber_names: HashSet<String> = columns.iter().map(|c| c.to_ascii_lowercase()).collect();
    for (j, h) in targets.header.iter().enumerate() {
        // A target column named like a fiber column gets a prefix: both are printed.
        let name = if fiber_names.contains(&h.to_ascii_lowercase())
            || h.eq_ignore_ascii_case("separation_arcsec")
        {
            format!("target_{h}")
        } else {
            h.clone()
        };
        fields.push(Field::new(name, DataType::Utf8, false));
        arrays.push(Arc::new(StringArray::from_iter_values(
            found.iter().map(|f| targets.rows[f.0][j].as_str()),
        )));
    }
    let projected = project(rows, columns)?;
    for (f, a) in projected.schema().fields().iter().zip(projected.columns()) {
        fields.push(f.as_ref().clone());
        arrays.push(take(a, &idx, None).map_err(QueryError::Csv)?);
    }
    fields.push(Field::new("separation_arcsec", DataType::Float64, false));
    arrays.push(Arc::new(Float64Array::from_iter_values(
        found.iter().map(|f| f.2 * 3600.0),
    )));
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(QueryError::Csv)?;
    csv_of(&b)
}

/// Runs `--sql` (collective: stale rows are built by every rank; rank 0 runs the query). The
/// result: on rank 0, the rows.
pub fn run_sql(job: &Job, store: &Path, sql: &str) -> Result<(Option<RecordBatch>, Vec<String>)> {
    let opened = open_catalog(job, store)?;
    let answer = opened.map(|o| o.engine.query(sql).map(|r| (r, o.warnings)));
    let failed = job.any(matches!(answer, Some(Err(_))));
    match answer {
        Some(Ok((r, w))) => Ok((Some(r), w)),
        Some(Err(e)) => Err(e.into()),
        None if failed => Err(QueryError::OtherRank),
        None => Ok((None, Vec::new())),
    }
}
