//! Results written to standard output as a Unix tool writes them: a reader that went away (`| head
//! -1`) ends the output quietly, any other failure (a full disk, a closed descriptor) is an error
//! the caller reports — never a panic, and never a silent success.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when standard output was closed at start-up (`>&-`), see [`note_closed_stdout`].
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Call first thing in `main`: remembers whether standard output was closed when the program
/// started (`>&-`), so that writing results is then an error (see [`write`]), not a silent success.
///
/// Rust's runtime has by then put `/dev/null` on every closed standard descriptor (so that no file
/// the program opens takes its number), opened read-write; a shell's `>/dev/null` opens it
/// write-only. So a standard output that is `/dev/null` open for reading and writing was closed.
pub fn note_closed_stdout() {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(1, libc::F_GETFL) };
    let closed = if flags == -1 {
        true
    } else if flags & libc::O_ACCMODE == libc::O_RDWR {
        // SAFETY: descriptor 1 is only borrowed: ManuallyDrop never closes it.
        let out = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
        match (out.metadata(), std::fs::metadata("/dev/null")) {
            (Ok(o), Ok(n)) => o.file_type().is_char_device() && o.rdev() == n.rdev(),
            _ => false,
        }
    } else {
        false
    };
    STDOUT_CLOSED.store(closed, Ordering::Relaxed);
}

/// What became of the text.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// All of it reached standard output.
    All,
    /// The reader closed the pipe: the rest is not wanted.
    ReaderGone,
}

/// Writes `text` to standard output and flushes it. Unlike `print!`, which panics on a write error
/// and treats a closed descriptor as success, every failure is returned.
pub fn write(text: &str) -> std::io::Result<Written> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Err(std::io::Error::other("standard output is closed"));
    }
    // SAFETY: descriptor 1 is only borrowed: ManuallyDrop never closes it.
    let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Written::All),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(Written::ReaderGone),
        Err(e) => Err(e),
    }
}
