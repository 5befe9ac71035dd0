//! Source files held open from the scan to the copy, so that every byte a query copies comes from
//! the version of the file its byte ranges were planned on. An ingest replaces a store file by
//! renaming a new one over it; the inode this rank opened stays readable through its descriptor.
//!
//! A source is opened twice, by path: once as a plain file (the descriptor the copy reads) and
//! once by HDF5 (for the scan). Both are the same version when the path still names the plain
//! file's inode after HDF5 opened it: versions only move forward, and the held descriptor keeps
//! its inode number from being reused. Otherwise both are opened again.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{QueryError, Result};

/// How often a source may be replaced while it is being opened before the query gives up.
const ATTEMPTS: usize = 20;

/// One source, open twice on the same version.
struct Source {
    file: File,
    hdf5: hdf5::File,
}

/// The source files this rank has opened, by source index.
#[derive(Default)]
pub struct Pinned {
    files: HashMap<u32, Source>,
    #[cfg(test)]
    plain: HashMap<u32, File>,
}

impl Pinned {
    /// Opens `path` as source `source` (once; later calls return what was opened first): the
    /// plain file and the HDF5 file of one and the same version.
    pub fn pin(&mut self, source: u32, path: &Path) -> Result<(&File, &hdf5::File)> {
        let s = match self.files.entry(source) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(open_same_version(path)?),
        };
        Ok((&s.file, &s.hdf5))
    }

    /// Holds `path` as source `source` without opening it by HDF5: for copy tests whose sources
    /// are plain byte files.
    #[cfg(test)]
    pub fn pin_plain(&mut self, source: u32, path: &Path) -> Result<()> {
        let file = File::open(path).map_err(|e| QueryError::io(path, "cannot open", e))?;
        self.plain.insert(source, file);
        Ok(())
    }

    /// The file opened as `source`; an error when this rank never opened it (its byte ranges were
    /// planned by another rank, which cannot happen: each rank copies only what it scanned).
    pub fn file(&self, source: u32, path: &Path) -> Result<&File> {
        let file = self.files.get(&source).map(|s| &s.file);
        #[cfg(test)]
        let file = file.or_else(|| self.plain.get(&source));
        file.ok_or_else(|| {
            QueryError::store(path, "internal: copying from a file this rank did not scan")
        })
    }
}

fn open_same_version(path: &Path) -> Result<Source> {
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    for _ in 0..ATTEMPTS {
        let file = File::open(path).map_err(|e| QueryError::io(path, "cannot open", e))?;
        let hdf5 = hdf5::File::open(path)
            .map_err(|e| QueryError::hdf5(path, "cannot open the store file", e))?;
        let held = file
            .metadata()
            .map_err(|e| QueryError::io(path, "cannot stat", e))?;
        let named = std::fs::metadata(path).map_err(|e| QueryError::io(path, "cannot stat", e))?;
        if id(held) == id(named) {
            return Ok(Source { file, hdf5 });
        }
    }
    Err(QueryError::store(
        path,
        format!("replaced {ATTEMPTS} times while the query opened it; run the query again"),
    ))
}
