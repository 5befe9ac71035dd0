//! Resolving what a query selects: a fiber list alone needs nothing else; filters, `--list` and the
//! exports read the store's catalog. Rows of store files the catalog does not reflect (newer than
//! it, or missing from it — an ingest killed between writing a store file and the catalog) and of
//! stores without a catalog are built from the HDF5 files by the ranks in parallel, so the answer is
//! never stale.

use std::path::Path;
use std::time::SystemTime;

use catalog::index::{Catalog, CatalogError, CatalogRow};
use catalog::select::Selection;
use model::{layout, FiberId};
use ranks::{partition_by_weight, Job};

use crate::error::{QueryError, Result};
use crate::scan::{list_store, StoreFile};

/// Where the catalog rows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogSource {
    /// `<STORE>/catalog.parquet` (with any stale rows rebuilt from their store files).
    CatalogFile,
    /// Built from the HDF5 files by the ranks (no catalog file).
    StoreScan,
}

/// A catalog ready for selections.
pub struct Loaded {
    pub catalog: Catalog,
    pub source: CatalogSource,
    pub warnings: Vec<String>,
}

/// Reads the catalog of a store and brings it up to date with the store files in memory (the file
/// itself is left to `boss-ingest`).
pub fn load_catalog(job: &Job, store: &Path) -> Result<Loaded> {
    let path = store.join(layout::CATALOG_FILE);
    let files = list_store(store)?;
    let (mut catalog, source) = match Catalog::read_parquet(&path) {
        Ok(c) => (c, CatalogSource::CatalogFile),
        Err(CatalogError::Missing { .. }) => (Catalog::new(), CatalogSource::StoreScan),
        Err(e) => return Err(e.into()),
    };
    let catalog_time = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let known: std::collections::HashSet<String> = catalog.file_names().into_iter().collect();
    let stale: Vec<&StoreFile> = files
        .iter()
        .filter(|f| {
            source == CatalogSource::StoreScan
                || !known.contains(&layout::store_file_name(f.pm))
                || newer(&f.path, catalog_time)
        })
        .collect();
    let present: std::collections::HashSet<String> = files
        .iter()
        .map(|f| layout::store_file_name(f.pm))
        .collect();
    let gone: Vec<String> = known
        .iter()
        .filter(|f| !present.contains(*f))
        .cloned()
        .collect();
    let mut warnings = Vec::new();
    if source == CatalogSource::CatalogFile && (!stale.is_empty() || !gone.is_empty()) {
        warnings.push(format!(
            "{} is older than {} store file(s) and lists {} that no longer exist: their rows were read from the store files (run boss-ingest --rebuild-catalog {} to refresh it)",
            path.display(),
            stale.len(),
            gone.len(),
            store.display()
        ));
    }
    if !stale.is_empty() || !gone.is_empty() {
        let rows = rows_of(job, &stale)?;
        let mut replaced: Vec<String> = stale
            .iter()
            .map(|f| layout::store_file_name(f.pm))
            .collect();
        replaced.extend(gone);
        catalog.replace_files(&replaced, rows);
    }
    Ok(Loaded {
        catalog,
        source,
        warnings,
    })
}

fn newer(path: &Path, than: Option<SystemTime>) -> bool {
    match (std::fs::metadata(path).and_then(|m| m.modified()), than) {
        (Ok(m), Some(c)) => m >= c,
        _ => true,
    }
}

/// Catalog rows of these store files, read by the ranks in parallel, on every rank.
fn rows_of(job: &Job, files: &[&StoreFile]) -> Result<Vec<CatalogRow>> {
    let owner = partition_by_weight(
        &files.iter().map(|f| f.bytes).collect::<Vec<_>>(),
        job.size(),
    );
    let mut rows: Vec<CatalogRow> = Vec::new();
    let mut error = None;
    for (f, o) in files.iter().zip(owner) {
        if o != job.rank() {
            continue;
        }
        match catalog::from_store::catalog_rows(&f.path, f.pm) {
            Ok(r) => rows.extend(r),
            Err(e) => error = Some(QueryError::hdf5(&f.path, "cannot read for the catalog", e)),
        }
    }
    let failed = job.any(error.is_some());
    if let Some(e) = error {
        return Err(e);
    }
    if failed {
        return Err(QueryError::OtherRank);
    }
    Ok(job.all_gather(&rows)?.into_iter().flatten().collect())
}

/// The selected fibers (sorted by key) and their catalog rows.
pub fn select(catalog: &Catalog, selection: &Selection) -> (Vec<FiberId>, Catalog) {
    let rows = selection.select(catalog);
    let subset = catalog.take(&rows);
    let fibers = (0..subset.len()).map(|i| subset.fiber_id(i)).collect();
    (fibers, subset)
}

/// The `--list` output: a CSV that is itself a valid `--fibers` list.
pub fn list_csv(subset: &Catalog) -> String {
    let mut out = String::from("key,plate,mjd,fiber,ra,dec,class,z\n");
    for i in 0..subset.len() {
        let r = subset.row(i);
        let opt = |v: Option<String>| v.unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.key,
            r.plate,
            r.mjd,
            r.fiber,
            opt(r.ra.map(|v| v.to_string())),
            opt(r.dec.map(|v| v.to_string())),
            opt(r.class.clone()),
            opt(r.z.map(|v| v.to_string())),
        ));
    }
    out
}
