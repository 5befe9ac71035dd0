//! The write phase: bytes, not values. Store and output datasets are contiguous with the same
//! types, so every dataset (and every run of table rows) is one byte range copied from a store file
//! into the allocated place in the output — with `copy_file_range(2)` (the kernel copies, no buffer
//! in this process; `pread`/`pwrite` where the file system cannot), or, with `--io collective`, in
//! rounds of `MPI_File_write_at_all` with one derived datatype per rank and round.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use ranks::Job;

use crate::error::{QueryError, Result};

/// One byte range to copy from a source file into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CopyOp {
    pub source: u32,
    pub src: u64,
    pub dst: u64,
    pub len: u64,
}

/// Sorts ops by source and position, and merges ranges that follow each other in both files.
pub fn coalesce(mut ops: Vec<CopyOp>) -> Vec<CopyOp> {
    ops.retain(|o| o.len > 0);
    ops.sort();
    let mut out: Vec<CopyOp> = Vec::with_capacity(ops.len());
    for o in ops {
        match out.last_mut() {
            Some(l) if l.source == o.source && l.src + l.len == o.src && l.dst + l.len == o.dst => {
                l.len += o.len
            }
            _ => out.push(o),
        }
    }
    out
}

/// Bytes buffered per round by the buffered and collective paths: memory stays bounded.
const BUFFER: usize = 16 << 20;

/// How to move the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `copy_file_range(2)`, falling back to `pread`/`pwrite` where it is not supported.
    Kernel,
    /// `pread`/`pwrite` through one buffer.
    Buffered,
}

/// What the write phase did on this rank.
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub bytes: u64,
    /// Collective `MPI_File_write_at_all` calls this rank took part in.
    pub collective_calls: u64,
}

/// Copies `ops` (coalesced) into `output` with independent writes, then makes them durable
/// (`fdatasync`). Sources are opened one at a time.
pub fn copy_independent(
    output: &Path,
    sources: &[PathBuf],
    ops: &[CopyOp],
    method: Method,
) -> Result<Written> {
    let out = std::fs::OpenOptions::new()
        .write(true)
        .open(output)
        .map_err(|e| QueryError::io(output, "cannot open the output for writing", e))?;
    let mut buf = Vec::new();
    let mut bytes = 0;
    let mut kernel = method == Method::Kernel;
    let mut unflushed = 0u64;
    for group in ops.chunk_by(|a, b| a.source == b.source) {
        let path = &sources[group[0].source as usize];
        let src = File::open(path).map_err(|e| QueryError::io(path, "cannot open", e))?;
        for op in group {
            let copied = kernel
                && match copy_range(&src, &out, op) {
                    Ok(()) => true,
                    Err(e) if kernel_copy_unsupported(&e) => {
                        kernel = false;
                        false
                    }
                    Err(e) => return Err(QueryError::io(output, "copy_file_range", e)),
                };
            if !copied {
                buffered_range(&src, path, &out, output, op, &mut buf)?;
            }
            bytes += op.len;
            unflushed += op.len;
            if unflushed >= WRITEBACK {
                start_writeback(&out);
                unflushed = 0;
            }
        }
    }
    out.sync_data()
        .map_err(|e| QueryError::io(output, "fdatasync", e))?;
    Ok(Written {
        bytes,
        collective_calls: 0,
    })
}

/// Bytes copied between two starts of writeback: the disk writes while we copy, so the final
/// fdatasync has little left to wait for.
const WRITEBACK: u64 = 64 << 20;

/// Asks the kernel to start writing the file's dirty pages (`sync_file_range`, no waiting).
fn start_writeback(out: &File) {
    // SAFETY: a valid descriptor; offset 0 and length 0 mean the whole file. A failure only means
    // no early writeback: the final fdatasync still makes everything durable.
    unsafe { libc::sync_file_range(out.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

fn kernel_copy_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EBADF)
    )
}

fn copy_range(src: &File, out: &File, op: &CopyOp) -> std::io::Result<()> {
    let (mut off_in, mut off_out) = (op.src as i64, op.dst as i64);
    let mut left = op.len as usize;
    while left > 0 {
        // SAFETY: valid descriptors and offsets owned by this function.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                out.as_raw_fd(),
                &mut off_out,
                left,
                0,
            )
        };
        match n {
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the source file ends before the dataset",
                ))
            }
            n => left -= n as usize,
        }
    }
    Ok(())
}

fn buffered_range(
    src: &File,
    src_path: &Path,
    out: &File,
    output: &Path,
    op: &CopyOp,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let mut done = 0u64;
    while done < op.len {
        let n = ((op.len - done) as usize).min(BUFFER);
        buf.resize(n, 0);
        src.read_exact_at(buf, op.src + done)
            .map_err(|e| QueryError::io(src_path, "cannot read a dataset", e))?;
        out.write_all_at(buf, op.dst + done)
            .map_err(|e| QueryError::io(output, "cannot write", e))?;
        done += n as u64;
    }
    Ok(())
}

/// Copies `ops` into `output` with collective MPI-IO: in each round every rank reads up to
/// [`BUFFER`] bytes of its ranges and all ranks write together with `MPI_File_write_at_all`, each
/// through a file view made of its ranges (one `MPI_Type_create_hindexed`). Then `MPI_File_sync`.
pub fn copy_collective(
    job: &Job,
    output: &Path,
    sources: &[PathBuf],
    ops: &[CopyOp],
) -> Result<Written> {
    use mpi::ffi;
    let world = job.mpi_world().ok_or_else(|| {
        QueryError::Invalid(
            "--io collective needs MPI (it starts one even as a plain process)".into(),
        )
    })?;
    let mpi_err = |call: &'static str, code: i32| QueryError::MpiIo {
        path: output.to_path_buf(),
        call,
        code,
    };
    // Rounds: each at most BUFFER bytes per rank, a range split where a round ends.
    let mut rounds: Vec<Vec<CopyOp>> = vec![Vec::new()];
    let mut filled = 0u64;
    for op in ops {
        let mut done = 0;
        while done < op.len {
            if filled == BUFFER as u64 {
                rounds.push(Vec::new());
                filled = 0;
            }
            let n = (op.len - done).min(BUFFER as u64 - filled);
            rounds.last_mut().expect("one round at least").push(CopyOp {
                src: op.src + done,
                dst: op.dst + done,
                len: n,
                ..*op
            });
            filled += n;
            done += n;
        }
    }
    let total_rounds = job.max_u64(rounds.len() as u64) as usize;
    let name = std::ffi::CString::new(output.as_os_str().as_encoded_bytes())
        .map_err(|_| QueryError::Invalid("the output path holds a NUL byte".into()))?;
    let mut fh: ffi::MPI_File = std::ptr::null_mut();
    use mpi::raw::AsRaw;
    // SAFETY: a collective open of an existing file by every rank of the communicator.
    let rc = unsafe {
        ffi::MPI_File_open(
            world.as_raw(),
            name.as_ptr(),
            ffi::MPI_MODE_WRONLY as i32,
            ffi::RSMPI_INFO_NULL,
            &mut fh,
        )
    };
    if rc != 0 {
        return Err(mpi_err("MPI_File_open", rc));
    }
    let mut written = Written::default();
    let mut open: Option<(u32, File)> = None;
    let mut packed: Vec<u8> = Vec::new();
    for round in 0..total_rounds {
        let mut mine: Vec<CopyOp> = rounds.get(round).cloned().unwrap_or_default();
        // Sorted by destination: a file view's displacements must not decrease.
        mine.sort_by_key(|o| o.dst);
        let bytes: u64 = mine.iter().map(|o| o.len).sum();
        packed.resize(bytes as usize, 0);
        let mut at = 0usize;
        for op in &mine {
            if open.as_ref().is_none_or(|(s, _)| *s != op.source) {
                let path = &sources[op.source as usize];
                let f = File::open(path).map_err(|e| QueryError::io(path, "cannot open", e))?;
                open = Some((op.source, f));
            }
            let src = &open.as_ref().expect("opened above").1;
            src.read_exact_at(&mut packed[at..at + op.len as usize], op.src)
                .map_err(|e| {
                    QueryError::io(&sources[op.source as usize], "cannot read a dataset", e)
                })?;
            at += op.len as usize;
        }
        let lens: Vec<i32> = mine.iter().map(|o| o.len as i32).collect();
        let displs: Vec<ffi::MPI_Aint> = mine.iter().map(|o| o.dst as ffi::MPI_Aint).collect();
        // SAFETY: MPI datatype and file calls on valid handles; every rank calls set_view and
        // write_at_all once per round (an empty view where it has nothing).
        unsafe {
            let mut filetype: ffi::MPI_Datatype = ffi::RSMPI_UINT8_T;
            if !lens.is_empty() {
                let rc = ffi::MPI_Type_create_hindexed(
                    lens.len() as i32,
                    lens.as_ptr(),
                    displs.as_ptr(),
                    ffi::RSMPI_UINT8_T,
                    &mut filetype,
                );
                if rc != 0 {
                    return Err(mpi_err("MPI_Type_create_hindexed", rc));
                }
                ffi::MPI_Type_commit(&mut filetype);
            }
            let native = b"native\0";
            let rc = ffi::MPI_File_set_view(
                fh,
                0,
                ffi::RSMPI_UINT8_T,
                filetype,
                native.as_ptr().cast(),
                ffi::RSMPI_INFO_NULL,
            );
            if rc != 0 {
                return Err(mpi_err("MPI_File_set_view", rc));
            }
            let mut status: ffi::MPI_Status = std::mem::zeroed();
            let rc = ffi::MPI_File_write_at_all(
                fh,
                0,
                packed.as_ptr().cast(),
                packed.len() as i32,
                ffi::RSMPI_UINT8_T,
                &mut status,
            );
            if rc != 0 {
                return Err(mpi_err("MPI_File_write_at_all", rc));
            }
            if !lens.is_empty() {
                ffi::MPI_Type_free(&mut filetype);
            }
        }
        written.bytes += bytes;
        written.collective_calls += 1;
    }
    // SAFETY: collective sync and close of the file opened above.
    unsafe {
        let rc = ffi::MPI_File_sync(fh);
        if rc != 0 {
            return Err(mpi_err("MPI_File_sync", rc));
        }
        let rc = ffi::MPI_File_close(&mut fh);
        if rc != 0 {
            return Err(mpi_err("MPI_File_close", rc));
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_ranges_merge() {
        let op = |source, src, dst, len| CopyOp {
            source,
            src,
            dst,
            len,
        };
        let ops = coalesce(vec![
            op(0, 100, 1000, 50),
            op(0, 0, 900, 100),
            op(1, 0, 1050, 10),
            op(0, 200, 2000, 0),
        ]);
        assert_eq!(ops, vec![op(0, 0, 900, 150), op(1, 0, 1050, 10)]);
    }

    #[test]
    fn independent_copy_moves_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let out = dir.path().join("out");
        std::fs::write(&a, (0..=255u8).collect::<Vec<_>>()).unwrap();
        std::fs::write(&out, vec![0u8; 64]).unwrap();
        for method in [Method::Kernel, Method::Buffered] {
            let ops = coalesce(vec![
                CopyOp {
                    source: 0,
                    src: 10,
                    dst: 0,
                    len: 5,
                },
                CopyOp {
                    source: 0,
                    src: 200,
                    dst: 32,
                    len: 4,
                },
            ]);
            let w = copy_independent(&out, std::slice::from_ref(&a), &ops, method).unwrap();
            assert_eq!(w.bytes, 9);
            let got = std::fs::read(&out).unwrap();
            assert_eq!(&got[..5], &[10, 11, 12, 13, 14]);
            assert_eq!(&got[32..36], &[200, 201, 202, 203]);
        }
    }
}
