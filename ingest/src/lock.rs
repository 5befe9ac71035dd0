//! The store lock: one `boss-ingest` writes a store at a time. Rank 0 holds an exclusive lock on
//! `STORE/.boss-ingest.lock` (`flock` through `std::fs::File::lock`) for the whole run; a second
//! ingest waits for it (or, with `--no-wait`, refuses). Readers (`boss-query`) take no lock: they only
//! ever see complete files, which are renamed into place.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use model::layout;

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}: the store is being written by another boss-ingest ({holder}); not waiting (--no-wait)", path.display())]
    Busy { path: PathBuf, holder: String },
    #[error("{}: cannot lock the store: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock of the store in `dir`. When another process holds it: waits (after calling
    /// `on_wait` with a description of the holder) or, without `wait`, returns [`LockError::Busy`].
    pub fn acquire(dir: &Path, wait: bool, on_wait: impl FnOnce(&str)) -> Result<Self, LockError> {
        let path = dir.join(layout::LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "holder unknown".to_string(),
                    h => h.to_string(),
                };
                if !wait {
                    return Err(LockError::Busy {
                        path: path.clone(),
                        holder,
                    });
                }
                on_wait(&holder);
                file.lock().map_err(io)?;
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(
            file,
            "pid {} on {}",
            std::process::id(),
            model::atomic::hostname()
        )
        .map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_busy_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = StoreLock::acquire(dir.path(), false, |_| {}).unwrap();
        let err = StoreLock::acquire(dir.path(), false, |_| {}).unwrap_err();
        assert!(
            matches!(&err, LockError::Busy { holder, .. } if holder.contains("pid")),
            "{err}"
        );
        drop(first);
        StoreLock::acquire(dir.path(), false, |_| {}).unwrap();
    }
}
