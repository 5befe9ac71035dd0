//! Keeps `<STORE>/catalog.parquet` exact: after every ingest, the rows of each store file that is
//! newer than the catalog (or absent from it) are rebuilt from that HDF5 file by the ranks in
//! parallel, rows of store files that no longer exist are dropped, and rank 0 merges them into the
//! file in one streaming pass. An interrupted ingest is therefore repaired by the next run, and
//! `--rebuild-catalog` rebuilds every row.

use std::path::Path;

use catalog::build::build_on_ranks;
use catalog::freshness::{self, Freshness};
use model::layout;
use ranks::Job;
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

/// Rank 0's look at the store, with the warning printed where it is made.
fn plan(dir: &Path, rebuild: bool) -> Result<Freshness, String> {
    let f: Freshness = freshness::check(dir, rebuild).map_err(|e| e.to_string())?;
    if let Some(why) = &f.unusable {
        if dir.join(layout::CATALOG_FILE).exists() && !rebuild {
            eprintln!("boss-ingest: warning: {why}; rebuilding the catalog");
        }
    }
    Ok(f)
}

/// Brings the catalog up to date (collective: every rank calls it; rank 0 writes the file).
pub fn sync_catalog(job: &Job, dir: &Path, rebuild: bool) -> SyncOutcome {
    let failed = |e: String| SyncOutcome {
        errors: vec![e],
        ..SyncOutcome::default()
    };
    // Every rank has renamed its store files into place before rank 0 looks at the store.
    job.barrier();
    let mine = job.is_root().then(|| plan(dir, rebuild));
    let plan = match job.broadcast(mine.as_ref()) {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return failed(e),
        Err(e) => return failed(e.to_string()),
    };
    if plan.is_current() {
        return SyncOutcome::default();
    }
    let built = match build_on_ranks(job, &plan.stale) {
        Ok(Some(b)) => b,
        Ok(None) => return SyncOutcome::default(),
        Err(e) => return failed(e.to_string()),
    };
    let mut outcome = SyncOutcome {
        files_refreshed: plan.stale.len(),
        files_dropped: plan.gone.len(),
        errors: built.errors,
        ..SyncOutcome::default()
    };
    if !outcome.errors.is_empty() {
        // Not written: the next run finds the same files newer than the catalog and retries them.
        return outcome;
    }
    let path = dir.join(layout::CATALOG_FILE);
    let rebuild = plan.unusable.is_some();
    match catalog::file::update_file(&path, &plan.replaced(), built.batches, rebuild) {
        Ok(rows) => outcome.rows = rows,
        Err(e) => outcome.errors.push(e.to_string()),
    }
    outcome
}
