//! The write phase: bytes, not values. Where input and output have the same layout, every dataset
//! (and every run of table or array rows) is one byte range copied from a store file into its
//! allocated place in the output — with `copy_file_range(2)` (the kernel copies, no buffer in this
//! process; `pread`/`pwrite` where the file system cannot), or, with `--io collective`, in rounds of
//! `MPI_File_write_at_all` with one derived datatype per rank and round. Between layouts, rows are
//! converted one dataset at a time (v1 records ↔ v2 rows), bounded in memory too.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use ranks::Job;

use crate::error::{QueryError, Result};
use crate::pinned::Pinned;
use crate::scan::Pad;

/// One byte range to copy from a source file into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CopyOp {
    pub source: u32,
    pub src: u64,
    pub dst: u64,
    pub len: u64,
}

/// One piece of output this rank writes.
#[derive(Debug, Clone)]
pub enum Task {
    /// Bytes from a source file.
    Copy(CopyOp),
    /// Bytes this rank already has.
    Bytes { dst: u64, bytes: Vec<u8> },
    /// A v1 dataset of records (`fields` 4-byte fields each) at `src` becomes one full row (padded)
    /// of `width` values at `dsts[f]` for each field.
    Spread {
        source: u32,
        src: u64,
        len: u64,
        width: u64,
        pix0: u64,
        dsts: Vec<u64>,
        pad: Pad,
    },
    /// `len` values of each field, starting at `srcs[f]`, interleaved into v1 records at `dst`.
    Gather {
        source: u32,
        srcs: Vec<u64>,
        len: u64,
        dst: u64,
    },
}

impl Task {
    /// Bytes this task writes.
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Copy(o) => o.len,
            Self::Bytes { bytes, .. } => bytes.len() as u64,
            Self::Spread { width, dsts, .. } => 4 * width * dsts.len() as u64,
            Self::Gather { srcs, len, .. } => 4 * len * srcs.len() as u64,
        }
    }

    fn source(&self) -> Option<u32> {
        match self {
            Self::Copy(o) => Some(o.source),
            Self::Spread { source, .. } | Self::Gather { source, .. } => Some(*source),
            Self::Bytes { .. } => None,
        }
    }
}

/// Sorts copies by source and position and merges ranges that follow each other in both files;
/// the other tasks keep their order, grouped by source.
pub fn coalesce(tasks: Vec<Task>) -> Vec<Task> {
    let (mut copies, mut others): (Vec<Task>, Vec<Task>) =
        tasks.into_iter().partition(|t| matches!(t, Task::Copy(_)));
    let mut ops: Vec<CopyOp> = copies
        .drain(..)
        .filter_map(|t| match t {
            Task::Copy(o) if o.len > 0 => Some(o),
            _ => None,
        })
        .collect();
    ops.sort();
    let mut out: Vec<Task> = Vec::with_capacity(ops.len() + others.len());
    let mut last: Option<CopyOp> = None;
    for o in ops {
        match &mut last {
            Some(l) if l.source == o.source && l.src + l.len == o.src && l.dst + l.len == o.dst => {
                l.len += o.len
            }
            _ => {
                if let Some(l) = last.replace(o) {
                    out.push(Task::Copy(l));
                }
            }
        }
    }
    if let Some(l) = last {
        out.push(Task::Copy(l));
    }
    others.sort_by_key(|t| t.source());
    out.extend(others);
    out
}

/// Bytes buffered per round by the buffered and collective paths: memory stays bounded.
const BUFFER: usize = 16 << 20;

/// How to move the bytes of copies.
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

/// The source files, as this rank opened them for its scan.
struct Sources<'a> {
    paths: &'a [PathBuf],
    pinned: &'a Pinned,
}

impl<'a> Sources<'a> {
    fn new(paths: &'a [PathBuf], pinned: &'a Pinned) -> Self {
        Self { paths, pinned }
    }

    fn get(&mut self, source: u32) -> Result<&File> {
        self.pinned.file(source, &self.paths[source as usize])
    }

    fn read(&mut self, source: u32, at: u64, buf: &mut [u8]) -> Result<()> {
        let path = self.paths[source as usize].clone();
        self.get(source)?
            .read_exact_at(buf, at)
            .map_err(|e| QueryError::io(&path, "cannot read a dataset", e))
    }
}

/// The output pieces a conversion task makes: (destination, bytes).
fn convert(task: &Task, sources: &mut Sources) -> Result<Vec<(u64, Vec<u8>)>> {
    match task {
        Task::Bytes { dst, bytes } => Ok(vec![(*dst, bytes.clone())]),
        Task::Copy(o) => {
            let mut buf = vec![0u8; o.len as usize];
            sources.read(o.source, o.src, &mut buf)?;
            Ok(vec![(o.dst, buf)])
        }
        Task::Spread {
            source,
            src,
            len,
            width,
            pix0,
            dsts,
            pad,
        } => {
            let nf = dsts.len();
            let mut rec = vec![0u8; *len as usize * nf * 4];
            sources.read(*source, *src, &mut rec)?;
            let values: Vec<u32> = rec
                .chunks_exact(4)
                .map(|c| u32::from_ne_bytes(c.try_into().expect("4 bytes")))
                .collect();
            if let Pad::Coadd { index0 } = pad {
                // Every pixel must sit on the grid: the v2 layout has no other place for it.
                let wave: Vec<f32> = (0..*len as usize)
                    .map(|k| f32::from_bits(values[k * nf]))
                    .collect();
                let i0 = store::v2::grid_index(&wave).map_err(|e| {
                    QueryError::store(&sources.paths[*source as usize], e.to_string())
                })?;
                if i0 != index0 + *pix0 as i64 {
                    return Err(QueryError::store(
                        &sources.paths[*source as usize],
                        "a coadd moved on the grid between scan and write",
                    ));
                }
            }
            Ok(dsts
                .iter()
                .enumerate()
                .map(|(f, &dst)| {
                    let mut row: Vec<u32> = (0..*width).map(|j| pad_value(pad, f, j)).collect();
                    for k in 0..*len as usize {
                        row[*pix0 as usize + k] = values[k * nf + f];
                    }
                    (dst, bytemuck::cast_slice(&row).to_vec())
                })
                .collect())
        }
        Task::Gather {
            source,
            srcs,
            len,
            dst,
        } => {
            let nf = srcs.len();
            let n = *len as usize;
            let mut out = vec![0u8; n * nf * 4];
            let mut col = vec![0u8; n * 4];
            for (f, &at) in srcs.iter().enumerate() {
                sources.read(*source, at, &mut col)?;
                for k in 0..n {
                    out[(k * nf + f) * 4..(k * nf + f) * 4 + 4]
                        .copy_from_slice(&col[k * 4..k * 4 + 4]);
                }
            }
            Ok(vec![(*dst, out)])
        }
    }
}

/// The padding of field `f` in column `j` of a converted row.
pub(crate) fn pad_value(pad: &Pad, f: usize, j: u64) -> u32 {
    match pad {
        Pad::Coadd { index0 } => {
            let (name, int) = store::records::COADD_FIELDS[f];
            store::v2::pad_value(name, int, index0 + j as i64)
        }
        Pad::Exposure { fields } => match fields.fields().nth(f) {
            Some(x) => store::v2::exposure_pad_value(x.is_int()),
            None => 0,
        },
    }
}

/// Writes `tasks` into `output` with independent writes, then makes them durable
/// (`fdatasync`). Sources are opened one at a time.
pub fn copy_independent(
    output: &Path,
    sources: &[PathBuf],
    pinned: &Pinned,
    tasks: &[Task],
    method: Method,
) -> Result<Written> {
    let out = std::fs::OpenOptions::new()
        .write(true)
        .open(output)
        .map_err(|e| QueryError::io(output, "cannot open the output for writing", e))?;
    let mut src = Sources::new(sources, pinned);
    let mut buf = Vec::new();
    let mut bytes = 0;
    let mut kernel = method == Method::Kernel;
    let mut unflushed = 0u64;
    for task in tasks {
        match task {
            Task::Copy(op) => {
                let copied = kernel
                    && match copy_range(src.get(op.source)?, &out, op) {
                        Ok(()) => true,
                        Err(e) if kernel_copy_unsupported(&e) => {
                            kernel = false;
                            false
                        }
                        Err(e) => return Err(QueryError::io(output, "copy_file_range", e)),
                    };
                if !copied {
                    buffered_range(&mut src, &out, output, op, &mut buf)?;
                }
            }
            other => {
                for (dst, piece) in convert(other, &mut src)? {
                    out.write_all_at(&piece, dst)
                        .map_err(|e| QueryError::io(output, "cannot write", e))?;
                }
            }
        }
        bytes += task.bytes();
        unflushed += task.bytes();
        if unflushed >= WRITEBACK {
            start_writeback(&out);
            unflushed = 0;
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
    src: &mut Sources,
    out: &File,
    output: &Path,
    op: &CopyOp,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let mut done = 0u64;
    while done < op.len {
        let n = ((op.len - done) as usize).min(BUFFER);
        buf.resize(n, 0);
        src.read(op.source, op.src + done, buf)?;
        out.write_all_at(buf, op.dst + done)
            .map_err(|e| QueryError::io(output, "cannot write", e))?;
        done += n as u64;
    }
    Ok(())
}

/// Splits copies larger than a round, so that every task fits one round.
fn split_copies(tasks: &[Task]) -> Vec<Task> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t {
            Task::Copy(op) if op.len > BUFFER as u64 => {
                let mut done = 0;
                while done < op.len {
                    let n = (op.len - done).min(BUFFER as u64);
                    out.push(Task::Copy(CopyOp {
                        src: op.src + done,
                        dst: op.dst + done,
                        len: n,
                        ..*op
                    }));
                    done += n;
                }
            }
            other => out.push(other.clone()),
        }
    }
    out
}

/// Writes `tasks` into `output` with collective MPI-IO: in each round every rank makes up to
/// [`BUFFER`] bytes of its pieces and all ranks write together with `MPI_File_write_at_all`, each
/// through a file view made of its pieces (one `MPI_Type_create_hindexed`). Then `MPI_File_sync`.
pub fn copy_collective(
    job: &Job,
    output: &Path,
    sources: &[PathBuf],
    pinned: &Pinned,
    tasks: &[Task],
) -> Result<Written> {
    use mpi::ffi;
    use mpi::raw::AsRaw;
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
    // Rounds of at most BUFFER bytes per rank (a task bigger than that is a round of its own).
    let tasks = split_copies(tasks);
    let mut rounds: Vec<Vec<&Task>> = vec![Vec::new()];
    let mut filled = 0u64;
    for t in &tasks {
        if filled > 0 && filled + t.bytes() > BUFFER as u64 {
            rounds.push(Vec::new());
            filled = 0;
        }
        rounds.last_mut().expect("one round at least").push(t);
        filled += t.bytes();
    }
    let total_rounds = job.max_u64(rounds.len() as u64) as usize;
    let name = std::ffi::CString::new(output.as_os_str().as_encoded_bytes())
        .map_err(|_| QueryError::Invalid("the output path holds a NUL byte".into()))?;
    let mut fh: ffi::MPI_File = std::ptr::null_mut();
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
    let mut src = Sources::new(sources, pinned);
    let mut written = Written::default();
    for round in 0..total_rounds {
        let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
        for t in rounds.get(round).map_or(&[][..], |r| r.as_slice()) {
            pieces.extend(convert(t, &mut src)?);
        }
        // Sorted by destination: a file view's displacements must not decrease.
        pieces.sort_by_key(|p| p.0);
        let lens: Vec<i32> = pieces.iter().map(|p| p.1.len() as i32).collect();
        let displs: Vec<ffi::MPI_Aint> = pieces.iter().map(|p| p.0 as ffi::MPI_Aint).collect();
        let packed: Vec<u8> = pieces.iter().flat_map(|p| p.1.iter().copied()).collect();
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
        written.bytes += packed.len() as u64;
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

    fn op(source: u32, src: u64, dst: u64, len: u64) -> Task {
        Task::Copy(CopyOp {
            source,
            src,
            dst,
            len,
        })
    }

    #[test]
    fn adjacent_ranges_merge() {
        let tasks = coalesce(vec![
            op(0, 100, 1000, 50),
            op(0, 0, 900, 100),
            op(1, 0, 1050, 10),
            op(0, 200, 2000, 0),
        ]);
        let got: Vec<CopyOp> = tasks
            .iter()
            .map(|t| match t {
                Task::Copy(o) => *o,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                CopyOp {
                    source: 0,
                    src: 0,
                    dst: 900,
                    len: 150
                },
                CopyOp {
                    source: 1,
                    src: 0,
                    dst: 1050,
                    len: 10
                }
            ]
        );
    }

    #[test]
    fn independent_copy_moves_the_bytes_and_gathers_rows() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let out = dir.path().join("out");
        std::fs::write(&a, (0..=255u8).collect::<Vec<_>>()).unwrap();
        let mut pinned = Pinned::default();
        pinned.pin_plain(0, &a).unwrap();
        // An ingest renames a new version over the file after the scan: the copy still reads the
        // version it planned on.
        let newer = dir.path().join("a.new");
        std::fs::write(&newer, vec![0xEEu8; 256]).unwrap();
        std::fs::rename(&newer, &a).unwrap();
        for method in [Method::Kernel, Method::Buffered] {
            std::fs::write(&out, vec![0u8; 64]).unwrap();
            let tasks = coalesce(vec![
                op(0, 10, 0, 5),
                op(0, 200, 32, 4),
                Task::Gather {
                    source: 0,
                    srcs: vec![100, 120],
                    len: 2,
                    dst: 40,
                },
            ]);
            let w =
                copy_independent(&out, std::slice::from_ref(&a), &pinned, &tasks, method).unwrap();
            assert_eq!(w.bytes, 9 + 16);
            let got = std::fs::read(&out).unwrap();
            assert_eq!(&got[..5], &[10, 11, 12, 13, 14]);
            assert_eq!(&got[32..36], &[200, 201, 202, 203]);
            // Two records of two fields: (100..104, 120..124), (104..108, 124..128).
            let want: Vec<u8> = (100..104)
                .chain(120..124)
                .chain(104..108)
                .chain(124..128)
                .collect();
            assert_eq!(&got[40..56], want.as_slice());
        }
    }
}
