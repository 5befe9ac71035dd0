//! The parallel subset engine: scan (each rank its share of the store), exchange (one Allgatherv of
//! compact records), create (all ranks, identical metadata), write (each rank its own fibers), close,
//! then rank 0 renames the finished file into place.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use model::{layout, FiberId, PlateMjd};
use ranks::{partition_by_weight, Job};
use serde::Serialize;
use store::raw;

use crate::error::{QueryError, Result};
use crate::output::create_output;
use crate::records::{DatasetRecord, PlateMeta};
use crate::scan::{list_store, scan_file, Scanned};
use crate::transfer::{cause_names, IoMode, Transfer};

/// What to query.
pub struct QueryOptions {
    pub store: PathBuf,
    pub fibers: Vec<FiberId>,
    pub output: PathBuf,
    pub io: IoMode,
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
    pub missing: Vec<FiberId>,
    pub datasets: usize,
    pub bytes: u64,
    pub records_exchanged: usize,
    pub record_bytes: usize,
    pub collective_writes: u64,
    pub collective_fallbacks: u64,
    pub fallback_causes: Vec<&'static str>,
    pub phases: Phases,
}

/// The query failed on some rank; that rank has printed why.
#[derive(Debug)]
pub struct Failed;

/// Runs the query on every rank of the job. An error on one rank in the scan is agreed on by all
/// ranks (clean exit); an error after the output is open aborts the whole job.
pub fn run_query(job: &Job, opts: &QueryOptions) -> std::result::Result<QueryReport, Failed> {
    let report_err = |e: QueryError| {
        eprintln!("boss-query: error (rank {}): {e}", job.rank());
        Failed
    };
    let mut phases = Phases::default();

    // Scan.
    let t = Instant::now();
    let scanned = scan_phase(job, opts);
    let failed = job.any(scanned.is_err());
    let scanned = match scanned {
        Err(e) => return Err(report_err(e)),
        Ok(_) if failed => return Err(Failed),
        Ok(s) => s,
    };
    phases.scan = t.elapsed().as_secs_f64();

    // Exchange.
    let t = Instant::now();
    let local: Vec<DatasetRecord> = scanned
        .iter()
        .flat_map(|(_, s)| s.records.iter().copied())
        .collect();
    let mut records = match job.all_gather_varcount(&local) {
        Ok(r) => r,
        Err(e) => return Err(report_err(QueryError::Other(e.to_string()))),
    };
    records.sort_by_key(DatasetRecord::sort_key);
    let local_metas: Vec<PlateMeta> = scanned.iter().filter_map(|(_, s)| s.meta.clone()).collect();
    let mut metas: Vec<PlateMeta> = match job.all_gather(&local_metas) {
        Ok(m) => m.into_iter().flatten().collect(),
        Err(e) => return Err(report_err(QueryError::Other(e.to_string()))),
    };
    metas.sort_by_key(|m| m.pm);
    phases.exchange = t.elapsed().as_secs_f64();

    let found: BTreeSet<FiberId> = records.iter().map(DatasetRecord::fiber_id).collect();
    let missing: Vec<FiberId> = opts
        .fibers
        .iter()
        .filter(|f| !found.contains(f))
        .copied()
        .collect();

    // Create.
    let t = Instant::now();
    let tmp = temp_output_path(job, &opts.output);
    let mine: HashMap<u32, &Scanned> = scanned.iter().map(|(i, s)| (*i, s)).collect();
    let keep = |source: u32| opts.io == IoMode::Collective || mine.contains_key(&source);
    let output = match create_output(&tmp, job.mpi_world(), &metas, &records, keep) {
        Ok(o) => o,
        Err(e) => abort(job, &tmp, e),
    };
    phases.create = t.elapsed().as_secs_f64();

    // Write.
    let t = Instant::now();
    let mut transfer = Transfer::new(opts.io)
        .unwrap_or_else(|e| abort(job, &tmp, QueryError::Other(e.to_string())));
    let bytes = match write_phase(&mine, &metas, &records, &output, &mut transfer) {
        Ok(b) => b,
        Err(e) => abort(job, &tmp, e),
    };
    phases.write = t.elapsed().as_secs_f64();

    // Close (collective), then rename once every rank is done.
    let t = Instant::now();
    let report = transfer.report;
    drop(transfer);
    if let Err(e) = output.close() {
        abort(
            job,
            &tmp,
            QueryError::output(&tmp, format!("cannot close: {e}")),
        );
    }
    drop(scanned);
    job.barrier();
    if job.is_root() {
        // Durable before it appears under its final name.
        if let Err(e) = std::fs::File::open(&tmp).and_then(|f| f.sync_all()) {
            abort(job, &tmp, QueryError::output(&tmp, format!("fsync: {e}")));
        }
        if let Err(e) = std::fs::rename(&tmp, &opts.output) {
            abort(
                job,
                &tmp,
                QueryError::output(&opts.output, format!("cannot rename into place: {e}")),
            );
        }
    }
    job.barrier();
    phases.close = t.elapsed().as_secs_f64();

    let phases = Phases {
        scan: job.max_f64(phases.scan),
        exchange: job.max_f64(phases.exchange),
        create: job.max_f64(phases.create),
        write: job.max_f64(phases.write),
        close: job.max_f64(phases.close),
    };
    // Why any rank's collective writes fell back, OR-ed over all ranks.
    let causes = cause_names(job.or_u32(report.causes));
    Ok(QueryReport {
        fibers_found: found.len(),
        missing,
        datasets: records.len(),
        bytes: job.sum_u64(bytes),
        records_exchanged: records.len(),
        record_bytes: std::mem::size_of::<DatasetRecord>(),
        collective_writes: job.sum_u64(report.collective),
        collective_fallbacks: job.sum_u64(report.fell_back),
        fallback_causes: causes,
        phases,
    })
}

/// Opens this rank's share of the store files that hold requested plate-MJDs.
fn scan_phase(job: &Job, opts: &QueryOptions) -> Result<Vec<(u32, Scanned)>> {
    let mut wanted: HashMap<PlateMjd, Vec<i32>> = HashMap::new();
    for f in &opts.fibers {
        wanted.entry(f.plate_mjd()).or_default().push(f.fiber);
    }
    let files = list_store(&opts.store)?;
    let relevant: Vec<(u32, usize)> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains_key(&f.pm))
        .map(|(i, f)| (i as u32, wanted[&f.pm].len()))
        .collect();
    let weights: Vec<u64> = relevant.iter().map(|&(_, n)| n as u64).collect();
    let owner = partition_by_weight(&weights, job.size());
    relevant
        .iter()
        .zip(owner)
        .filter(|(_, o)| *o == job.rank())
        .map(|(&(i, _), _)| {
            let f = &files[i as usize];
            scan_file(f, i, &wanted[&f.pm]).map(|s| (i, s))
        })
        .collect()
}

/// Copies this rank's datasets and table subsets into the output; returns the bytes written.
fn write_phase(
    mine: &HashMap<u32, &Scanned>,
    metas: &[PlateMeta],
    records: &[DatasetRecord],
    output: &crate::output::Output,
    transfer: &mut Transfer,
) -> Result<u64> {
    let mut bytes = 0u64;
    let err = |e: hdf5::Error| QueryError::Other(e.to_string());
    for (r, ds) in records.iter().zip(&output.datasets) {
        let Some(ds) = ds else { continue };
        let dtype = ds.dtype().map_err(err)?;
        match mine.get(&r.source) {
            Some(s) => {
                let pm = r.fiber_id().plate_mjd();
                let path = match r.kind().arm() {
                    None => layout::coadd_path(pm, r.fiber),
                    Some(arm) => layout::exposure_path(pm, r.fiber, r.expid, arm),
                };
                let src = s.file.dataset(&path).map_err(err)?;
                let data = raw::read_all(&src, &dtype, r.len as usize * dtype.size())
                    .map_err(|e| QueryError::store(Path::new(&s.file.filename()), e))?;
                transfer.write(ds, &dtype, &data).map_err(err)?;
                bytes += data.len() as u64;
            }
            None => transfer.join(ds, &dtype).map_err(err)?,
        }
    }
    for (meta, datasets) in metas.iter().zip(&output.tables) {
        for (t, ds) in meta.tables.iter().zip(datasets) {
            let Some(ds) = ds else { continue };
            let dtype = ds.dtype().map_err(err)?;
            match mine.get(&meta.source) {
                Some(s) => {
                    let table = s
                        .tables
                        .iter()
                        .find(|(name, _)| *name == t.table)
                        .map(|(_, tab)| tab);
                    let data = table.map(|tab| tab.bytes()).unwrap_or_default();
                    transfer.write(ds, &dtype, data).map_err(err)?;
                    bytes += data.len() as u64;
                }
                None => transfer.join(ds, &dtype).map_err(err)?,
            }
        }
    }
    Ok(bytes)
}

/// The temporary name all ranks write under: beside the output, hidden, with rank 0's pid.
fn temp_output_path(job: &Job, output: &Path) -> PathBuf {
    let owner = (model::atomic::hostname(), std::process::id());
    let (host, pid): (String, u32) = job
        .broadcast(job.is_root().then_some(&owner))
        .unwrap_or(owner);
    model::atomic::temp_path(output, &host, pid)
}

/// Ends the whole job after a failure past the point where ranks could agree on it: the temporary
/// file is removed, nothing appears under the final name.
fn abort(job: &Job, tmp: &Path, e: QueryError) -> ! {
    eprintln!(
        "boss-query: error (rank {}): {e}; aborting the job",
        job.rank()
    );
    let _ = std::fs::remove_file(tmp);
    job.abort(2)
}
