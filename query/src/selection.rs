//! Resolving what a query selects: a fiber list alone needs nothing else; filters (cone, redshift,
//! class, …), `--list` and the exports read the store's catalog, or, when the store has none, build
//! the same rows from the store files in parallel (each rank its share) — both give the same answer.

use std::path::Path;

use catalog::index::{Catalog, CatalogError, CatalogRow};
use catalog::select::Selection;
use model::{layout, FiberId};
use ranks::{partition_by_weight, Job};

use crate::error::{QueryError, Result};
use crate::scan::list_store;

/// Where the catalog rows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogSource {
    /// `<STORE>/catalog.parquet`.
    CatalogFile,
    /// Built from the HDF5 files by the ranks (no catalog file).
    StoreScan,
}

/// Reads the catalog of a store, or builds it from the store files when there is none.
pub fn load_catalog(job: &Job, store: &Path) -> Result<(Catalog, CatalogSource)> {
    let path = store.join(layout::CATALOG_FILE);
    match Catalog::read_parquet(&path) {
        Ok(c) => return Ok((c, CatalogSource::CatalogFile)),
        Err(CatalogError::Missing { .. }) => {}
        Err(e) => return Err(QueryError::Other(e.to_string())),
    }
    let files = list_store(store)?;
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
            Err(e) => error = Some(QueryError::store(&f.path, e)),
        }
    }
    let failed = job.any(error.is_some());
    if let Some(e) = error {
        return Err(e);
    }
    if failed {
        return Err(QueryError::Other(
            "another rank could not read its store files".into(),
        ));
    }
    let all: Vec<CatalogRow> = job
        .all_gather(&rows)
        .map_err(|e| QueryError::Other(e.to_string()))?
        .into_iter()
        .flatten()
        .collect();
    Ok((Catalog::from_rows(all), CatalogSource::StoreScan))
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
