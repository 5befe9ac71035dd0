//! Keeps `<STORE>/catalog.parquet` exact: after every ingest, the rows of each store file that is
//! newer than the catalog (or absent from it) are rebuilt from that HDF5 file, and rows of store files
//! that no longer exist are dropped. An interrupted ingest is therefore repaired by the next run, and
//! `--rebuild-catalog` rebuilds every row.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use catalog::index::{Catalog, CatalogError, CatalogRow};
use model::{layout, PlateMjd};
use ranks::{partition_by_weight, Job};
use serde::{Deserialize, Serialize};

/// What a catalog update did.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SyncOutcome {
    pub files_refreshed: usize,
    pub files_dropped: usize,
    /// Rows of the catalog written (0 when it was already up to date).
    pub rows: usize,
    pub errors: Vec<String>,
}

/// The store files whose rows must be rebuilt, and the catalog's files that are gone.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Plan {
    stale: Vec<(PlateMjd, PathBuf, u64)>,
    dropped: Vec<String>,
    catalog_exists: bool,
}

fn store_files(dir: &Path) -> Vec<(PlateMjd, PathBuf, u64, Option<SystemTime>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let pm = layout::parse_store_file_name(&e.file_name().to_string_lossy())?;
            let meta = e.metadata().ok()?;
            Some((pm, e.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    files.sort_by_key(|f| f.0);
    files
}

/// Rank 0's plan, and the catalog it read to make it (kept for the merge: read once).
fn plan(dir: &Path, rebuild: bool) -> (Plan, Option<Catalog>) {
    let path = dir.join(layout::CATALOG_FILE);
    let existing = match Catalog::read_parquet(&path) {
        Ok(c) if !rebuild => Some(c),
        Ok(_) | Err(CatalogError::Missing { .. }) => None,
        Err(e) => {
            eprintln!("boss-ingest: warning: {e}; rebuilding the catalog");
            None
        }
    };
    let catalog_time = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let files = store_files(dir);
    let known: std::collections::HashSet<String> = existing
        .as_ref()
        .map(|c| c.file_names().into_iter().collect())
        .unwrap_or_default();
    let stale = files
        .iter()
        .filter(|(pm, _, _, modified)| {
            existing.is_none()
                || !known.contains(&layout::store_file_name(*pm))
                || match (modified, catalog_time) {
                    (Some(m), Some(c)) => *m >= c,
                    _ => true,
                }
        })
        .map(|(pm, p, len, _)| (*pm, p.clone(), *len))
        .collect();
    let present: std::collections::HashSet<String> = files
        .iter()
        .map(|(pm, ..)| layout::store_file_name(*pm))
        .collect();
    let dropped = known.into_iter().filter(|f| !present.contains(f)).collect();
    let plan = Plan {
        stale,
        dropped,
        catalog_exists: existing.is_some(),
    };
    (plan, existing)
}

/// Brings the catalog up to date (collective: every rank calls it; rank 0 writes the file).
pub fn sync_catalog(job: &Job, dir: &Path, rebuild: bool) -> SyncOutcome {
    // Every rank has renamed its store files into place before rank 0 looks at the store.
    job.barrier();
    let (mine, existing) = if job.is_root() {
        plan(dir, rebuild)
    } else {
        (Plan::default(), None)
    };
    let plan = match job.broadcast(job.is_root().then_some(&mine)) {
        Ok(p) => p,
        Err(e) => {
            return SyncOutcome {
                errors: vec![e.to_string()],
                ..SyncOutcome::default()
            }
        }
    };
    if plan.catalog_exists && plan.stale.is_empty() && plan.dropped.is_empty() {
        return SyncOutcome::default();
    }
    let weights: Vec<u64> = plan.stale.iter().map(|s| s.2).collect();
    let owner = partition_by_weight(&weights, job.size());
    let mut rows: Vec<CatalogRow> = Vec::new();
    let mut errors = Vec::new();
    for ((pm, path, _), o) in plan.stale.iter().zip(owner) {
        if o != job.rank() {
            continue;
        }
        match catalog::from_store::catalog_rows(path, *pm) {
            Ok(r) => rows.extend(r),
            Err(e) => errors.push(format!(
                "{}: cannot read for the catalog: {e}",
                path.display()
            )),
        }
    }
    let parts = match job.gather_to_root(&(rows, errors)) {
        Ok(Some(parts)) => parts,
        Ok(None) => return SyncOutcome::default(),
        Err(e) => {
            return SyncOutcome {
                errors: vec![e.to_string()],
                ..SyncOutcome::default()
            }
        }
    };
    let mut outcome = SyncOutcome {
        files_refreshed: plan.stale.len(),
        files_dropped: plan.dropped.len(),
        ..SyncOutcome::default()
    };
    let mut new_rows = Vec::new();
    for (r, e) in parts {
        new_rows.extend(r);
        outcome.errors.extend(e);
    }
    if !outcome.errors.is_empty() {
        // Not written: the next run finds the same files newer than the catalog and retries them.
        return outcome;
    }
    let path = dir.join(layout::CATALOG_FILE);
    let mut catalog = existing.unwrap_or_else(Catalog::new);
    let mut replaced: Vec<String> = plan
        .stale
        .iter()
        .map(|(pm, ..)| layout::store_file_name(*pm))
        .collect();
    replaced.extend(plan.dropped.iter().cloned());
    catalog.replace_files(&replaced, new_rows);
    outcome.rows = catalog.len();
    if let Err(e) = catalog.write_parquet(&path) {
        outcome.errors.push(e.to_string());
    }
    outcome
}
