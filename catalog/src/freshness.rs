//! Whether `catalog.parquet` reflects its store: the store files it must be rebuilt from (newer than
//! it, or absent from it — an ingest killed between writing a store file and the catalog) and the
//! files it lists that are gone. `boss-ingest` repairs the file; `boss-query` repairs in memory.

use std::path::Path;
use std::time::SystemTime;

use model::layout;
use store::files::StoreFile;

use crate::error::CatalogError;
use crate::file::footer;

/// The state of a store's catalog (rank 0 checks it and broadcasts it as it is).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Freshness {
    /// Why the catalog file cannot be used at all (missing, unreadable, older format): every store
    /// file is stale.
    pub unusable: Option<String>,
    /// Store files whose rows must be (re)built.
    pub stale: Vec<StoreFile>,
    /// Store files the catalog lists that no longer exist.
    pub gone: Vec<String>,
}

impl Freshness {
    /// True when the catalog file can be used as it is.
    pub fn is_current(&self) -> bool {
        self.unusable.is_none() && self.stale.is_empty() && self.gone.is_empty()
    }

    /// The store files whose rows the catalog must drop: the stale and the gone.
    pub fn replaced(&self) -> std::collections::HashSet<String> {
        self.stale
            .iter()
            .map(StoreFile::name)
            .chain(self.gone.iter().cloned())
            .collect()
    }
}

/// Compares the catalog of `store` with its files (`rebuild`: treat every file as stale).
pub fn check(store: &Path, rebuild: bool) -> Result<Freshness, CatalogError> {
    let path = store.join(layout::CATALOG_FILE);
    let files = store::files::list(store).map_err(|source| CatalogError::Io {
        path: store.to_path_buf(),
        source,
    })?;
    let footer = match footer(&path) {
        Ok(_) if rebuild => Err("--rebuild-catalog".to_string()),
        Ok(f) => Ok(f),
        Err(CatalogError::Missing { .. }) => Err("no catalog file".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let footer = match footer {
        Ok(f) => f,
        Err(why) => {
            return Ok(Freshness {
                unusable: Some(why),
                stale: files,
                gone: Vec::new(),
            })
        }
    };
    let written = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    let stale = files
        .iter()
        .filter(|f| !footer.store_files.contains(&f.name()) || newer(f.modified, written))
        .cloned()
        .collect();
    let present: std::collections::HashSet<String> = files.iter().map(StoreFile::name).collect();
    let gone = footer
        .store_files
        .iter()
        .filter(|f| !present.contains(*f))
        .cloned()
        .collect();
    Ok(Freshness {
        unusable: None,
        stale,
        gone,
    })
}

/// A store file modified at or after the catalog was written may hold rows the catalog lacks.
fn newer(file: Option<SystemTime>, catalog: Option<SystemTime>) -> bool {
    match (file, catalog) {
        (Some(f), Some(c)) => f >= c,
        _ => true,
    }
}
