//! Durable file writes, the one way every tool puts a file under its final name: write under a hidden
//! temporary name beside it, fsync the file, rename it into place, fsync the directory.
//!
//! Temporary files of this process are registered while they exist: they are removed when the write
//! is dropped without commit, when the process is ended by SIGTERM, SIGINT or SIGHUP (what `mpirun` and
//! Slurm send to the other ranks when one rank dies), and by [`remove_registered`] before an abort.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, Once};

use crate::layout;

/// A file being written under a temporary name; [`AtomicFile::commit`] puts it under its final name.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    temp: PathBuf,
    armed: bool,
}

impl AtomicFile {
    /// Plans a write of `dest`: the temporary file is `.NAME.tmp-HOST-PID` in the same directory (not
    /// created here; a stale file of that name is removed).
    pub fn new(dest: &Path) -> Self {
        let temp = temp_path(dest, &hostname(), std::process::id());
        let _ = std::fs::remove_file(&temp);
        Self::with_temp(dest, temp)
    }

    /// Plans a write of `dest` through a temporary path chosen elsewhere (all ranks of a job write the
    /// same temporary file, named by rank 0 with [`temp_path`]).
    pub fn with_temp(dest: &Path, temp: PathBuf) -> Self {
        register(&temp);
        Self {
            dest: dest.to_path_buf(),
            temp,
            armed: true,
        }
    }

    /// Where to write.
    pub fn temp(&self) -> &Path {
        &self.temp
    }

    /// Where the file goes when committed.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Makes the temporary file durable and puts it under its final name: fsync, rename, fsync of the
    /// directory. On error the temporary file is removed and the final name is untouched.
    pub fn commit(mut self) -> io::Result<()> {
        let result = (|| {
            File::open(&self.temp)?.sync_all()?;
            std::fs::rename(&self.temp, &self.dest)?;
            sync_dir(parent_dir(&self.dest))
        })();
        if result.is_ok() {
            self.forget();
        }
        result
    }

    /// Puts the temporary file under its final name without making it durable: for intermediate
    /// files that are read once and removed (the pieces of a stitched export).
    pub fn commit_volatile(mut self) -> io::Result<()> {
        std::fs::rename(&self.temp, &self.dest)?;
        self.forget();
        Ok(())
    }

    /// Forgets the temporary file without removing it (another rank of the job commits it).
    pub fn disarm(mut self) {
        self.forget();
    }

    fn forget(&mut self) {
        if self.armed {
            unregister(&self.temp);
            self.armed = false;
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.temp);
            unregister(&self.temp);
        }
    }
}

/// A directory filled under a temporary name (the staging directory of a directory output) and the
/// files that may appear in it. The files and the directory are registered like temporary files:
/// removed — the files, then the directory — when this is dropped without commit, when the process
/// is ended by SIGTERM, SIGINT or SIGHUP, and by [`remove_registered`]. Every rank of a job holds
/// one for the same directory, so whichever rank survives a killed one cleans up.
#[derive(Debug)]
pub struct TempDir {
    dir: PathBuf,
    files: Vec<PathBuf>,
    armed: bool,
}

impl TempDir {
    /// Registers `dir` (created elsewhere, or by this call with `create`) and the `files` that may
    /// appear in it.
    pub fn new(dir: &Path, files: Vec<PathBuf>, create: bool) -> io::Result<Self> {
        if create {
            std::fs::create_dir(dir)?;
        }
        for f in &files {
            register(f);
        }
        register(dir);
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            armed: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Makes the directory durable and puts it under `dest` (a new path or an empty directory).
    pub fn commit(mut self, dest: &Path) -> io::Result<()> {
        sync_dir(&self.dir)?;
        std::fs::rename(&self.dir, dest)?;
        sync_dir(parent_dir(dest))?;
        self.forget();
        Ok(())
    }

    /// Forgets the directory without removing it (another rank of the job committed it).
    pub fn disarm(mut self) {
        self.forget();
    }

    fn forget(&mut self) {
        if self.armed {
            for f in &self.files {
                unregister(f);
            }
            unregister(&self.dir);
            self.armed = false;
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            for f in &self.files {
                let _ = std::fs::remove_file(f);
            }
            let _ = std::fs::remove_dir(&self.dir);
            self.forget();
        }
    }
}

/// Writes `dest` durably with `write`, which gets the open temporary file.
pub fn write_with(dest: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let w = AtomicFile::new(dest);
    let mut f = File::create(w.temp())?;
    write(&mut f)?;
    drop(f);
    w.commit()
}

/// The temporary path a writer on `host` with process id `pid` uses for `dest`.
pub fn temp_path(dest: &Path, host: &str, pid: u32) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(dest).join(layout::temp_file_name(&name, host, pid))
}

/// The directory of a path (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// fsyncs a directory, so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// This machine's host name (what temporary names carry, so that a stale one is recognised).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let host: String = String::from_utf8_lossy(&buf[..end])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if host.is_empty() {
        "localhost".into()
    } else {
        host
    }
}

/// Removes the temporary files in `dir` left by writers on this host that no longer run (killed
/// before they could clean up). Returns the names removed.
pub fn remove_stale_temp_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let host = hostname();
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((owner, pid)) = layout::temp_file_owner(&name) else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        if owner == host && !alive && std::fs::remove_file(e.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

// ---------------------------------------------------------------------------------------------
// The registry of this process's temporary files, readable from a signal handler.
// ---------------------------------------------------------------------------------------------

static REGISTRY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// A leaked snapshot of the registry as C strings: what the signal handler unlinks (no locks, no
/// allocation in the handler). Replaced on every change; old snapshots are leaked (a few per run).
static SNAPSHOT: AtomicPtr<Vec<CString>> = AtomicPtr::new(std::ptr::null_mut());
static HANDLERS: Once = Once::new();

fn register(path: &Path) {
    install_handlers();
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.push(path.to_path_buf());
    publish(&r);
}

fn unregister(path: &Path) {
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = r.iter().position(|p| p == path) {
        r.swap_remove(i);
    }
    publish(&r);
}

fn publish(paths: &[PathBuf]) {
    let snapshot: Vec<CString> = paths
        .iter()
        .filter_map(|p| CString::new(p.as_os_str().as_bytes()).ok())
        .collect();
    SNAPSHOT.store(Box::into_raw(Box::new(snapshot)), Ordering::SeqCst);
}

/// Removes every registered temporary file, then every registered temporary directory, of this
/// process (before an abort of the job).
pub fn remove_registered() {
    let r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    for p in r.iter() {
        let _ = std::fs::remove_file(p);
    }
    for p in r.iter() {
        let _ = std::fs::remove_dir(p);
    }
}

fn install_handlers() {
    HANDLERS.call_once(|| {
        for sig in [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ] {
            // SAFETY: the handler only loads an atomic pointer, calls unlink(2) and rmdir(2) on
            // NUL-terminated strings that are never freed, and _exit(2): all async-signal-safe.
            // Files first, then directories (rmdir of a file, unlink of a directory fail harmlessly).
            let _ = unsafe {
                signal_hook::low_level::register(sig, move || {
                    let p = SNAPSHOT.load(Ordering::SeqCst);
                    if !p.is_null() {
                        for c in (*p).iter() {
                            libc::unlink(c.as_ptr());
                        }
                        for c in (*p).iter() {
                            libc::rmdir(c.as_ptr());
                        }
                    }
                    libc::_exit(128 + sig);
                })
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_is_removed_with_its_files_unless_committed() {
        let root = tempfile::tempdir().unwrap();
        let staging = root.path().join(".out.tmp-h-1");
        let part = staging.join("part-00000.parquet");
        let d = TempDir::new(&staging, vec![part.clone()], true).unwrap();
        std::fs::write(&part, b"x").unwrap();
        drop(d);
        assert!(
            !staging.exists(),
            "an uncommitted directory is removed with its files"
        );

        let d = TempDir::new(&staging, vec![part.clone()], true).unwrap();
        std::fs::write(&part, b"x").unwrap();
        let dest = root.path().join("out");
        d.commit(&dest).unwrap();
        assert_eq!(
            std::fs::read(dest.join("part-00000.parquet")).unwrap(),
            b"x"
        );
        let registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            !registry.iter().any(|p| p.starts_with(root.path())),
            "a committed directory is forgotten"
        );
    }

    #[test]
    fn commit_renames_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.h5");
        let w = AtomicFile::new(&dest);
        std::fs::write(w.temp(), b"data").unwrap();
        assert!(layout::is_temp_file_name(
            &w.temp().file_name().unwrap().to_string_lossy()
        ));
        assert!(!dest.exists());
        w.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");

        let w = AtomicFile::new(&dest);
        let temp = w.temp().to_path_buf();
        std::fs::write(&temp, b"half").unwrap();
        drop(w);
        assert!(!temp.exists(), "an uncommitted write is removed");
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            b"data",
            "and the old file kept"
        );

        write_with(&dest, |f| io::Write::write_all(f, b"new")).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn stale_temp_files_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("3655-55240.h5");
        // pid 0x7fffffff does not run; our own pid does.
        let dead = temp_path(&dest, &hostname(), i32::MAX as u32);
        let alive = temp_path(&dest, &hostname(), std::process::id());
        let other_host = temp_path(&dest, "elsewhere", i32::MAX as u32);
        for p in [&dead, &alive, &other_host] {
            std::fs::write(p, b"").unwrap();
        }
        let removed = remove_stale_temp_files(dir.path());
        assert_eq!(removed.len(), 1);
        assert!(!dead.exists() && alive.exists() && other_host.exists());
    }
}
