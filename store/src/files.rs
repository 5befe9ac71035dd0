//! The files of a store directory: one per store group (an SDSS-I–IV plate-MJD, an SDSS-V
//! field-MJD), named by [`model::GroupId::store_file_name`].

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use model::{GroupId, PlateMjd};

/// One store file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoreFile {
    pub group: GroupId,
    pub path: PathBuf,
    pub bytes: u64,
    /// Last modification (None when the file system does not say).
    #[serde(skip)]
    pub modified: Option<SystemTime>,
}

impl StoreFile {
    /// The file's name in the store (what the catalog's `file` column holds).
    pub fn name(&self) -> String {
        self.group.store_file_name()
    }

    /// The plate-MJD of an SDSS-I–IV store file.
    pub fn plate_mjd(&self) -> Option<PlateMjd> {
        self.group.plate_mjd()
    }
}

/// The store's files, sorted by group (the same list, in the same order, on every rank).
pub fn list(dir: &Path) -> std::io::Result<Vec<StoreFile>> {
    let mut files: Vec<StoreFile> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let group = GroupId::from_store_file_name(&e.file_name().to_string_lossy())?;
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| StoreFile {
                group,
                path: e.path(),
                bytes: meta.len(),
                modified: meta.modified().ok(),
            })
        })
        .collect();
    files.sort_by_key(|f| f.group);
    Ok(files)
}
