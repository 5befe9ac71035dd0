//! The parallel subset engine:
//! 1. scan — each rank opens its share of the plate-MJDs (their store files, and an old subset
//!    being brought up to date) and describes what it finds as compact records (with the byte
//!    offset of each dataset's data) and per-plate descriptions;
//! 2. exchange — one `MPI_Allgatherv` of the records; the per-plate descriptions go to rank 0;
//! 3. create — rank 0 alone makes the whole output with the serial HDF5 driver (every object once,
//!    datasets allocated at creation) and broadcasts where each dataset's bytes go;
//! 4. write — every rank copies its byte ranges into the shared file (no HDF5 on the data path);
//! 5. close — fsync on every rank, then rank 0 renames the file into place.
//!
//! A failure on any rank is agreed on by all (each returns; the failing one says why), except in
//! the middle of collective MPI-IO, where the job is aborted; nothing ever appears under the final
//! name unless every rank succeeded.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use model::atomic::AtomicFile;
use model::layout::Layout;
use model::{GroupId, PlateMjd, SpectrumId};
use ranks::{partition_by_weight, Job};
use serde::Serialize;

use crate::copy::{coalesce, copy_collective, copy_independent, CopyOp, Method, Task};
use crate::create::{create_output, Offsets};
use crate::error::{QueryError, Result};
use crate::pinned::Pinned;
use crate::records::{DatasetRecord, PlateMeta};
use crate::scan::{fibers_in, file_layout, list_store, scan_plate, Piece, PlateSources, Scanned};

/// How ranks write the output's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// Each rank copies its own byte ranges (`copy_file_range`).
    Independent,
    /// All ranks write together with MPI-IO (`MPI_File_write_at_all`).
    Collective,
}

/// What to query.
pub struct QueryOptions {
    pub store: PathBuf,
    /// The spectra to copy: SDSS-I–IV fibers and SDSS-V targets alike.
    pub spectra: Vec<SpectrumId>,
    pub output: PathBuf,
    pub io: IoMode,
    /// The layout of the output (None: the store's, or the old subset's when one is reused).
    pub layout: Option<Layout>,
    /// An old subset whose fibers are taken from it rather than from the store (`--update`,
    /// `--add`): it may be the output itself, which is replaced only when the new one is complete.
    pub reuse: Option<PathBuf>,
}

/// Seconds spent in each phase, the maximum over ranks.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Phases {
    pub scan: f64,
    pub exchange: f64,
    pub create: f64,
    pub write: f64,
    pub close: f64,
}

/// The outcome of a query, the same on every rank.
#[derive(Debug, Serialize)]
pub struct QueryReport {
    pub fibers_found: usize,
    pub missing: Vec<SpectrumId>,
    pub layout: Layout,
    pub datasets: usize,
    pub bytes: u64,
    pub record_bytes: usize,
    pub collective_writes: u64,
    pub phases: Phases,
}

/// A scanned store group of this rank.
struct Mine {
    group: GroupId,
    scanned: Scanned,
}

/// The layout of the output's SDSS-I–IV groups (the others are in the merged layout): the one
/// asked for, else the store's (that of its first plate file holding a requested plate-MJD; every
/// rank reads the same file).
fn output_layout(opts: &QueryOptions, files: &[crate::scan::StoreFile]) -> Result<Layout> {
    if let Some(l) = opts.layout {
        return Ok(l);
    }
    if let Some(old) = &opts.reuse {
        return file_layout(old);
    }
    let wanted: BTreeSet<GroupId> = opts.spectra.iter().map(|f| f.group).collect();
    let plates: Vec<&crate::scan::StoreFile> =
        files.iter().filter(|f| f.plate_mjd().is_some()).collect();
    match plates
        .iter()
        .find(|f| wanted.contains(&f.group))
        .or(plates.first())
    {
        Some(f) => file_layout(&f.path),
        None => Ok(Layout::V1),
    }
}

/// Runs the query on every rank of the job.
pub fn run_query(job: &Job, opts: &QueryOptions) -> Result<QueryReport> {
    let mut phases = Phases::default();

    // Scan.
    let t = Instant::now();
    let files = list_store(&opts.store)?;
    let mut sources: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
    sources.extend(opts.reuse.iter().cloned());
    let layout = agree(job, output_layout(opts, &files))?;
    let old = match &opts.reuse {
        Some(path) => {
            let listed = job
                .is_root()
                .then(|| fibers_in(path).map_err(|e| e.to_string()));
            let listed: std::result::Result<Vec<(PlateMjd, Vec<i32>)>, String> =
                job.broadcast(listed.map(|r| r.map(|m| m.into_iter().collect())).as_ref())?;
            match listed {
                Ok(l) => l.into_iter().collect(),
                Err(e) if job.is_root() => return Err(QueryError::Invalid(e)),
                Err(_) => return Err(QueryError::OtherRank),
            }
        }
        None => std::collections::BTreeMap::new(),
    };
    let (scanned, pinned) = agree(job, scan_phase(job, opts, &files, &sources, &old, layout))?;
    phases.scan = t.elapsed().as_secs_f64();

    // Exchange.
    let t = Instant::now();
    let local: Vec<DatasetRecord> = scanned
        .iter()
        .flat_map(|m| m.scanned.records.iter().copied())
        .collect();
    let mut records = job.all_gather_varcount(&local)?;
    records.sort_by_key(DatasetRecord::sort_key);
    let local_metas: Vec<PlateMeta> = scanned
        .iter()
        .filter_map(|m| m.scanned.meta.clone())
        .collect();
    let metas: Option<Vec<PlateMeta>> = job.gather_to_root(&local_metas)?.map(|all| {
        let mut m: Vec<PlateMeta> = all.into_iter().flatten().collect();
        m.sort_by_key(|m| m.group);
        m
    });
    phases.exchange = t.elapsed().as_secs_f64();

    let local_found: Vec<i64> = scanned
        .iter()
        .flat_map(|m| {
            let group = m.group;
            m.scanned
                .found
                .iter()
                .map(move |&row| SpectrumId::new(group, row).key())
        })
        .collect();
    let found: BTreeSet<SpectrumId> = job
        .all_gather_varcount(&local_found)?
        .into_iter()
        .filter_map(SpectrumId::from_key)
        .collect();
    let missing: Vec<SpectrumId> = opts
        .spectra
        .iter()
        .filter(|f| !found.contains(f))
        .copied()
        .collect();

    // Create (rank 0), under the temporary name all ranks know.
    let t = Instant::now();
    let out = AtomicFile::with_temp(&opts.output, temp_output_path(job, &opts.output)?);
    let created = match &metas {
        Some(metas) => {
            create_output(out.temp(), layout, metas, &records).map_err(|e| e.to_string())
        }
        None => Err(String::new()),
    };
    // The other ranks sleep while rank 0 creates (no core taken from it).
    job.quiet_barrier();
    let offsets: std::result::Result<Offsets, String> =
        job.broadcast(job.is_root().then_some(&created))?;
    let offsets = match (created, offsets) {
        (Err(e), _) if job.is_root() => return Err(QueryError::Invalid(e)),
        (_, Err(_)) => return Err(QueryError::OtherRank),
        (_, Ok(o)) => o,
    };
    phases.create = t.elapsed().as_secs_f64();

    // Write.
    let t = Instant::now();
    let metas_pm: Vec<GroupId> = offsets_plates(job, &metas)?;
    let ops = coalesce(tasks(&scanned, &records, &offsets, &metas_pm));
    let written = match opts.io {
        IoMode::Independent => agree(
            job,
            copy_independent(out.temp(), &sources, &pinned, &ops, copy_method()),
        )?,
        IoMode::Collective => copy_collective(job, out.temp(), &sources, &pinned, &ops)
            .unwrap_or_else(|e| abort(job, e)),
    };
    phases.write = t.elapsed().as_secs_f64();

    // Close: every rank has fsynced its writes; rank 0 puts the file in place.
    let t = Instant::now();
    finish(job, out)?;
    phases.close = t.elapsed().as_secs_f64();

    // Arrays of a v2 output count as datasets; the plate-level tables do not (as in v1).
    let arrays: Option<u64> = metas.as_ref().map(|m| {
        m.iter()
            .flat_map(|m| &m.datasets)
            .filter(|d| d.path.contains('/'))
            .count() as u64
    });
    let plate_datasets = job.broadcast(arrays.as_ref())? as usize;
    Ok(QueryReport {
        fibers_found: found.len(),
        missing,
        layout,
        datasets: records.len() + plate_datasets,
        bytes: job.sum_u64(written.bytes),
        record_bytes: std::mem::size_of::<DatasetRecord>(),
        collective_writes: job.max_u64(written.collective_calls),
        phases: Phases {
            scan: job.max_f64(phases.scan),
            exchange: job.max_f64(phases.exchange),
            create: job.max_f64(phases.create),
            write: job.max_f64(phases.write),
            close: job.max_f64(phases.close),
        },
    })
}

/// Every rank learns whether any rank failed: the failing rank returns its error, the others
/// [`QueryError::OtherRank`].
fn agree<T>(job: &Job, r: Result<T>) -> Result<T> {
    job.quiet_barrier();
    let failed = job.any(r.is_err());
    match r {
        Err(e) => Err(e),
        Ok(_) if failed => Err(QueryError::OtherRank),
        Ok(v) => Ok(v),
    }
}

/// How independent writes move bytes (`BOSS_COPY=buffered` forces `pread`/`pwrite`, for
/// measurements and file systems that misbehave with `copy_file_range`).
fn copy_method() -> Method {
    match std::env::var("BOSS_COPY").as_deref() {
        Ok("buffered") => Method::Buffered,
        _ => Method::Kernel,
    }
}

/// Scans this rank's share of the requested plate-MJDs: each from its store file, and the fibers an
/// old subset already holds from that subset. The files stay open (pinned) for the copy.
fn scan_phase(
    job: &Job,
    opts: &QueryOptions,
    files: &[crate::scan::StoreFile],
    sources: &[PathBuf],
    old: &std::collections::BTreeMap<PlateMjd, Vec<i32>>,
    layout: Layout,
) -> Result<(Vec<Mine>, Pinned)> {
    let mut wanted: std::collections::BTreeMap<GroupId, Vec<i64>> = Default::default();
    for f in &opts.spectra {
        wanted.entry(f.group).or_default().push(f.row);
    }
    let store_index: HashMap<GroupId, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.group, i))
        .collect();
    let reuse = files.len() as u32;
    let mut plates: Vec<PlateSources> = Vec::new();
    for (group, mut fibers) in wanted {
        fibers.sort_unstable();
        // An old subset's SDSS-I–IV fibers are copied from it; everything else from the store.
        let had: std::collections::HashSet<i64> = group
            .plate_mjd()
            .and_then(|pm| old.get(&pm))
            .map(|v| v.iter().map(|&f| i64::from(f)).collect())
            .unwrap_or_default();
        let (kept, new): (Vec<i64>, Vec<i64>) = fibers.into_iter().partition(|f| had.contains(f));
        let mut plate = PlateSources {
            group,
            sources: Vec::new(),
        };
        if let Some(&i) = store_index.get(&group) {
            if !new.is_empty() {
                plate.sources.push((i as u32, sources[i].as_path(), new));
            }
        }
        if !kept.is_empty() {
            plate
                .sources
                .push((reuse, sources[reuse as usize].as_path(), kept));
        }
        if !plate.sources.is_empty() {
            plates.push(plate);
        }
    }
    let weights: Vec<u64> = plates
        .iter()
        .map(|p| p.sources.iter().map(|s| s.2.len() as u64).sum())
        .collect();
    let owner = partition_by_weight(&weights, job.size());
    let mut pinned = Pinned::default();
    let mine = plates
        .iter()
        .zip(owner)
        .filter(|(_, o)| *o == job.rank())
        .map(|(p, _)| {
            scan_plate(p, layout, &mut pinned).map(|scanned| Mine {
                group: p.group,
                scanned,
            })
        })
        .collect::<Result<Vec<Mine>>>()?;
    Ok((mine, pinned))
}

/// The group of each entry of `Offsets::plates`, on every rank (rank 0 knows the metas).
fn offsets_plates(job: &Job, metas: &Option<Vec<PlateMeta>>) -> Result<Vec<GroupId>> {
    let pms: Option<Vec<GroupId>> = metas.as_ref().map(|m| m.iter().map(|m| m.group).collect());
    Ok(job.broadcast(pms.as_ref())?)
}

/// What this rank writes: its per-fiber datasets (copied, or gathered from v2 rows), and for its
/// plate-MJDs every table and array piece (copied, in memory, or converted).
fn tasks(
    mine: &[Mine],
    records: &[DatasetRecord],
    offsets: &Offsets,
    metas_pm: &[GroupId],
) -> Vec<Task> {
    let by_pm: HashMap<GroupId, &Mine> = mine.iter().map(|m| (m.group, m)).collect();
    let mut tasks: Vec<Task> = Vec::new();
    for (r, dst) in records.iter().zip(&offsets.datasets) {
        let (Some(m), Some(dst)) = (by_pm.get(&GroupId::Plate(r.plate_mjd())), dst) else {
            continue;
        };
        let key = (r.fiber, r.expid, r.kind);
        tasks.push(match m.scanned.gathers.get(&key) {
            Some((source, srcs)) => Task::Gather {
                source: *source,
                srcs: srcs.clone(),
                len: r.len,
                dst: *dst,
            },
            None => Task::Copy(CopyOp {
                source: r.source,
                src: r.src_offset,
                dst: *dst,
                len: r.bytes(),
            }),
        });
    }
    for m in mine {
        let Ok(i) = metas_pm.binary_search(&m.group) else {
            continue;
        };
        let offs = &offsets.plates[i];
        for (pieces, dst) in m.scanned.fills.iter().zip(offs) {
            let Some(dst) = *dst else { continue };
            tasks.extend(pieces.iter().map(|p| match p {
                Piece::Copy {
                    source,
                    src,
                    at,
                    len,
                } => Task::Copy(CopyOp {
                    source: *source,
                    src: *src,
                    dst: dst + at,
                    len: *len,
                }),
                Piece::Bytes { at, bytes } => Task::Bytes {
                    dst: dst + at,
                    bytes: bytes.clone(),
                },
            }));
        }
        for sp in &m.scanned.spreads {
            let dsts: Option<Vec<u64>> = sp
                .datasets
                .iter()
                .map(|&d| offs[d].map(|o| o + 4 * sp.row * sp.width))
                .collect();
            if let Some(dsts) = dsts {
                tasks.push(Task::Spread {
                    source: sp.source,
                    src: sp.src,
                    len: sp.len,
                    width: sp.width,
                    pix0: sp.pix0,
                    dsts,
                    pad: sp.pad,
                });
            }
        }
    }
    tasks
}

/// The temporary name all ranks write under: beside the output, named by rank 0's host and pid.
fn temp_output_path(job: &Job, output: &Path) -> Result<PathBuf> {
    let owner = (model::atomic::hostname(), std::process::id());
    let (host, pid): (String, u32) = job.broadcast(job.is_root().then_some(&owner))?;
    Ok(model::atomic::temp_path(output, &host, pid))
}

/// Rank 0 commits the output once every rank's writes are durable; every rank learns the outcome.
fn finish(job: &Job, out: AtomicFile) -> Result<()> {
    job.quiet_barrier();
    let dest = out.dest().to_path_buf();
    let result = if job.is_root() {
        out.commit()
            .map_err(|e| QueryError::io(&dest, "cannot put the output into place", e))
    } else {
        out.disarm();
        Ok(())
    };
    agree(job, result)
}

/// Ends the whole job after a failure in the middle of collective MPI-IO (the other ranks would
/// wait in it forever); the temporary files are removed first.
fn abort(job: &Job, e: QueryError) -> ! {
    eprintln!(
        "boss-query: error (rank {}): {e}; aborting the job",
        job.rank()
    );
    job.abort(2)
}
