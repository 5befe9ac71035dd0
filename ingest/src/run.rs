//! One rank's ingest: decode the files of each of its units (store groups) on rayon threads while
//! the main thread writes the previous unit to the store (HDF5 writes stay on one thread). Each
//! unit is decoded and written by its survey's module: SDSS-I–IV here and in `decode`/`writer`,
//! SDSS-V in `sdss5`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::sync_channel;

use model::layout::PlateTable;
use model::{FiberId, GroupId, PlateMjd};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::decode::{
    decode_companion, decode_plate, decode_spec, Contribution, InputError, InputKind, SpAllIndex,
};
use crate::plan::{Failure, InputFile, Plan, Unit};
use crate::writer::{Batch, Conflict, StoreError, StoreState, StoreWriter};
use fitsread::{cfitsio_guard, Fits};

/// Counters of one rank (summed over ranks for the summary).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counters {
    pub files_read: u64,
    pub files_skipped: u64,
    pub plate_mjds_written: u64,
    pub plate_mjds_unchanged: u64,
    pub fibers_added: u64,
    pub coadds_replaced: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub failures: Vec<Failure>,
    pub conflicts: Vec<Conflict>,
}

impl Counters {
    pub fn merge(&mut self, o: Counters) {
        self.files_read += o.files_read;
        self.files_skipped += o.files_skipped;
        self.plate_mjds_written += o.plate_mjds_written;
        self.plate_mjds_unchanged += o.plate_mjds_unchanged;
        self.fibers_added += o.fibers_added;
        self.coadds_replaced += o.coadds_replaced;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.failures.extend(o.failures);
        self.conflicts.extend(o.conflicts);
    }
}

/// A unit decoded and ready to write, in its survey's terms.
enum Work {
    /// An SDSS-I–IV plate-MJD: what the store file held before this run's additions (read once,
    /// before decoding), and the batch.
    Sdss4 {
        pm: PlateMjd,
        state: Box<StoreState>,
        batch: Box<Batch>,
    },
    Sdss5(crate::sdss5::Prepared),
    /// Nothing to write (the unit failed as a whole).
    Nothing,
}

/// A unit decoded and ready to write.
struct Decoded {
    files: u64,
    work: Work,
    failures: Vec<Failure>,
    conflicts: Vec<Conflict>,
    files_read: u64,
    files_skipped: u64,
    bytes_read: u64,
}

/// The catalogs of a plan every unit may draw rows from.
pub struct Catalogs<'a> {
    pub spall: &'a [SpAllIndex],
    pub spall5: &'a [crate::sdss5::spall::SpAllIndex],
}

impl<'a> Catalogs<'a> {
    /// The catalogs of a plan.
    pub fn of(plan: &'a Plan) -> Self {
        Self {
            spall: &plan.spall,
            spall5: &plan.spall5,
        }
    }
}

/// Options of a rank's run.
pub struct RunOptions<'a> {
    pub store_dir: &'a Path,
    /// The layout of the store's files.
    pub layout: model::layout::Layout,
    pub fail_fast: bool,
    /// Called with each failure as soon as it is known (prints it).
    pub on_failure: &'a (dyn Fn(&Failure) + Sync),
    /// Called with the conflicts of each plate-MJD as soon as they are known (prints them).
    pub on_conflicts: &'a (dyn Fn(&[Conflict]) + Sync),
    /// Called after each unit with the number of files it had (drives the progress bar).
    pub on_unit_done: &'a (dyn Fn(u64) + Sync),
}

impl From<&StoreError> for Failure {
    fn from(e: &StoreError) -> Self {
        let text = e.to_string();
        let (file, error) = text.split_once(": ").unwrap_or(("store", &text));
        Self {
            file: file.to_string(),
            error: error.to_string(),
        }
    }
}

/// Ingests the given units; returns this rank's counters and whether it stopped early (fail-fast).
pub fn ingest_units(units: Vec<Unit>, catalogs: &Catalogs, opts: &RunOptions) -> (Counters, bool) {
    let writer = StoreWriter::new(opts.store_dir, opts.layout);
    let mut counters = Counters::default();
    let mut stopped = false;
    let (tx, rx) = sync_channel::<Decoded>(1);
    std::thread::scope(|scope| {
        let writer_ref = &writer;
        scope.spawn(move || {
            for unit in units {
                let decoded = match unit.group {
                    GroupId::Plate(pm) => decode_unit(pm, unit, writer_ref, catalogs.spall),
                    GroupId::Field(g) => {
                        let store_path = writer_ref.dir().join(unit.group.store_file_name());
                        let d =
                            crate::sdss5::decode_unit(g, &unit.files, &store_path, catalogs.spall5);
                        Decoded {
                            files: unit.files.len() as u64,
                            work: d.prepared.map_or(Work::Nothing, Work::Sdss5),
                            failures: d.failures,
                            conflicts: d.conflicts,
                            files_read: d.files_read,
                            files_skipped: d.files_skipped,
                            bytes_read: d.bytes_read,
                        }
                    }
                };
                if tx.send(decoded).is_err() {
                    break; // the writer stopped (fail-fast)
                }
            }
        });
        for d in rx {
            let nfiles = d.files;
            counters.files_read += d.files_read;
            counters.files_skipped += d.files_skipped;
            counters.bytes_read += d.bytes_read;
            for f in &d.failures {
                (opts.on_failure)(f);
            }
            counters.failures.extend(d.failures);
            if !d.conflicts.is_empty() {
                (opts.on_conflicts)(&d.conflicts);
                counters.conflicts.extend(d.conflicts.iter().cloned());
            }
            let had_failures = !counters.failures.is_empty();
            let written = match d.work {
                Work::Sdss4 { pm, state, batch } => writer.write(pm, *batch, *state),
                Work::Sdss5(p) => crate::sdss5::write(p, writer.dir(), writer.writer_name()),
                Work::Nothing => Ok(crate::writer::WriteOutcome::default()),
            };
            match written {
                Ok(o) if o.written => {
                    counters.plate_mjds_written += 1;
                    counters.fibers_added += o.fibers_added as u64;
                    counters.coadds_replaced += o.coadds_replaced as u64;
                    counters.bytes_written += o.bytes_written;
                }
                Ok(_) if !had_failures => counters.plate_mjds_unchanged += 1,
                Ok(_) => {}
                Err(e) => {
                    let f = Failure::from(&e);
                    (opts.on_failure)(&f);
                    counters.failures.push(f);
                }
            }
            (opts.on_unit_done)(nfiles);
            if opts.fail_fast && !counters.failures.is_empty() {
                stopped = true;
                break;
            }
        }
    });
    (counters, stopped)
}

/// What decoding one file gave.
enum Decode {
    Read(Contribution),
    /// The store already holds exactly this file's content (an spPlate ingested before).
    AlreadyIn,
}

fn decode_file(f: &InputFile, pm: PlateMjd, state: &StoreState) -> Result<Decode, InputError> {
    let _guard = cfitsio_guard();
    match f.kind {
        InputKind::Plate => {
            if state.header_from_plate == Some(true) {
                let mut fits = Fits::open(&f.path).map_err(|e| InputError::new(&f.path, e))?;
                fits.select(0).map_err(|e| InputError::new(&f.path, e))?;
                let cards = fits
                    .header_cards()
                    .map_err(|e| InputError::new(&f.path, e))?;
                if state.has_plate_header(&cards) {
                    return Ok(Decode::AlreadyIn);
                }
            }
            decode_plate(&f.path, pm).map(Decode::Read)
        }
        InputKind::Spec => {
            let fiber = f.row.expect("spec files are identified with their fiber") as i32;
            decode_spec(&f.path, FiberId::new(pm.plate, pm.mjd, fiber)).map(Decode::Read)
        }
        InputKind::Zbest if state.table_has(PlateTable::Zbest, None) => Ok(Decode::AlreadyIn),
        kind => decode_companion(&f.path, kind).map(Decode::Read),
    }
}

fn decode_unit(pm: PlateMjd, unit: Unit, writer: &StoreWriter, spall: &[SpAllIndex]) -> Decoded {
    let mut d = Decoded {
        files: unit.files.len() as u64,
        work: Work::Nothing,
        failures: Vec::new(),
        conflicts: Vec::new(),
        files_read: 0,
        files_skipped: 0,
        bytes_read: 0,
    };
    let state = match StoreState::read(&writer.file_path(pm), pm, writer.layout()) {
        Ok(s) => s,
        Err(e) => {
            d.failures.push((&e).into());
            return d;
        }
    };
    let results: Vec<Result<Decode, InputError>> = unit
        .files
        .par_iter()
        .map(|f| decode_file(f, pm, &state))
        .collect();
    let v2 = writer.layout() == model::layout::Layout::V2;
    let mut batch = Batch::default();
    for (f, r) in unit.files.iter().zip(results) {
        let r = if v2 {
            r.and_then(|c| on_grid(c, &f.path))
        } else {
            r
        };
        match r.and_then(|c| match c {
            Decode::Read(c) => batch.add(pm, &f.path, f.kind, c).map(|()| true),
            Decode::AlreadyIn => Ok(false),
        }) {
            Ok(true) => {
                d.files_read += 1;
                d.bytes_read += f.bytes;
            }
            Ok(false) => d.files_skipped += 1,
            Err(e) => d.failures.push((&e).into()),
        }
    }
    let compare = batch.fibers_to_compare(&state);
    match state.read_coadds(pm, &compare) {
        Ok(stored) => batch.settle_against_store(pm, &state, &stored),
        Err(e) => {
            d.failures.push((&e).into());
            return d;
        }
    }
    add_spall_rows(pm, &state, &mut batch, spall, &mut d.failures);
    d.conflicts = std::mem::take(&mut batch.conflicts);
    d.work = Work::Sdss4 {
        pm,
        state: Box::new(state),
        batch: Box::new(batch),
    };
    d
}

/// The v2 layout puts coadds on the plate's log-lambda grid: a file whose coadd is not on it is
/// refused (with the pixel that is off), rather than stored inexactly.
fn on_grid(d: Decode, file: &Path) -> Result<Decode, InputError> {
    use crate::decode::Problem;
    use store::v2::{grid_index, grid_index_of, GridError};
    if let Decode::Read(c) = &d {
        for (fiber, recs) in &c.coadds {
            let wave: Vec<f32> = recs.iter().map(|r| r.wave).collect();
            grid_index(&wave).map_err(|e| {
                InputError::new(
                    file,
                    Problem::Grid {
                        fiber: *fiber,
                        source: e,
                    },
                )
            })?;
        }
        if let Some(p) = &c.plate {
            let off = |e| {
                InputError::new(
                    file,
                    Problem::Grid {
                        fiber: 0,
                        source: e,
                    },
                )
            };
            if (p.coeff1 - store::v2::COEFF1).abs() > 1e-12 {
                return Err(off(GridError::Step(p.coeff1)));
            }
            grid_index_of(p.coeff0).ok_or_else(|| {
                off(GridError::OffGrid {
                    pixel: 0,
                    loglam: p.coeff0,
                    nearest: (p.coeff0 / store::v2::COEFF1).round() * store::v2::COEFF1,
                })
            })?;
        }
    }
    Ok(d)
}

/// Adds the rows of the given spAll files for fibers of this plate-MJD that have no spall row yet.
fn add_spall_rows(
    pm: PlateMjd,
    state: &StoreState,
    batch: &mut Batch,
    spall: &[SpAllIndex],
    failures: &mut Vec<Failure>,
) {
    if spall.is_empty() {
        return;
    }
    let mut have: HashSet<i32> = batch
        .tables
        .get(&PlateTable::Spall)
        .and_then(|t| t.fiber_ids())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let fibers: Vec<i32> = state
        .fibers
        .iter()
        .copied()
        .chain(batch.coadds.keys().copied())
        .collect();
    for index in spall {
        let wanted: HashSet<FiberId> = fibers
            .iter()
            .filter(|&&f| !have.contains(&f) && !state.table_has(PlateTable::Spall, Some(f)))
            .map(|&f| FiberId::new(pm.plate, pm.mjd, f))
            .collect();
        if wanted.is_empty() || !index.rows.iter().any(|(id, _)| wanted.contains(id)) {
            continue;
        }
        let _guard = cfitsio_guard();
        let result = index.read_rows(&wanted).and_then(|rows| {
            have.extend(rows.fiber_ids().unwrap_or_default());
            batch.add(
                pm,
                &index.path,
                InputKind::SpAll,
                Contribution {
                    tables: vec![(PlateTable::Spall, rows)],
                    ..Default::default()
                },
            )
        });
        if let Err(e) = result {
            failures.push((&e).into());
        }
    }
}
