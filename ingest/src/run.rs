//! One rank's ingest: decode the files of each of its plate-MJD units on rayon threads while the
//! main thread writes the previous unit to the store (HDF5 stays on one thread).

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::sync_channel;

use catalog::layout::PlateTable;
use catalog::FiberId;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::decode::{
    decode_companion, decode_plate, decode_spec, Contribution, InputError, InputKind, SpAllIndex,
};
use crate::plan::{InputFile, Unit};
use crate::writer::{Batch, StoreState, StoreWriter};

/// One failure, as reported in the summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub file: String,
    pub error: String,
}

impl From<&InputError> for Failure {
    fn from(e: &InputError) -> Self {
        Self {
            file: e.file.display().to_string(),
            error: e.message.clone(),
        }
    }
}

/// Counters of one rank (summed over ranks for the summary).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Counters {
    pub files_read: u64,
    pub files_skipped: u64,
    pub plate_mjds_written: u64,
    pub plate_mjds_unchanged: u64,
    pub fibers_added: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub failures: Vec<Failure>,
}

impl Counters {
    pub fn merge(&mut self, o: Counters) {
        self.files_read += o.files_read;
        self.files_skipped += o.files_skipped;
        self.plate_mjds_written += o.plate_mjds_written;
        self.plate_mjds_unchanged += o.plate_mjds_unchanged;
        self.fibers_added += o.fibers_added;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.failures.extend(o.failures);
    }
}

/// A unit decoded and ready to write.
struct Decoded {
    unit: Unit,
    /// What the store file held before this run's additions (read once, before decoding).
    state: StoreState,
    batch: Batch,
    failures: Vec<InputError>,
    files_read: u64,
    files_skipped: u64,
    bytes_read: u64,
}

/// Options of a rank's run.
pub struct RunOptions<'a> {
    pub store_dir: &'a Path,
    pub fail_fast: bool,
    /// Called with each failure as soon as it is known (prints it).
    pub on_failure: &'a (dyn Fn(&InputError) + Sync),
    /// Called after each unit with the number of files it had (drives the progress bar).
    pub on_unit_done: &'a (dyn Fn(u64) + Sync),
}

/// Ingests the given units; returns this rank's counters and whether it stopped early (fail-fast).
pub fn ingest_units(units: Vec<Unit>, spall: &[SpAllIndex], opts: &RunOptions) -> (Counters, bool) {
    let writer = StoreWriter::new(opts.store_dir);
    let mut counters = Counters::default();
    let mut stopped = false;
    let (tx, rx) = sync_channel::<Decoded>(1);
    std::thread::scope(|scope| {
        let writer_ref = &writer;
        scope.spawn(move || {
            for unit in units {
                if tx.send(decode_unit(unit, writer_ref, spall)).is_err() {
                    break; // the writer stopped (fail-fast)
                }
            }
        });
        for d in rx {
            let nfiles = d.unit.files.len() as u64;
            counters.files_read += d.files_read;
            counters.files_skipped += d.files_skipped;
            counters.bytes_read += d.bytes_read;
            for f in &d.failures {
                (opts.on_failure)(f);
                counters.failures.push(f.into());
            }
            match writer.write(d.unit.pm, d.batch, &d.state) {
                Ok(o) if o.written => {
                    counters.plate_mjds_written += 1;
                    counters.fibers_added += o.fibers_added as u64;
                    counters.bytes_written += o.bytes_written;
                }
                Ok(_) if d.failures.is_empty() => counters.plate_mjds_unchanged += 1,
                Ok(_) => {}
                Err(e) => {
                    let err = InputError::new(&e.path, e.message);
                    (opts.on_failure)(&err);
                    counters.failures.push((&err).into());
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

/// True when the store already holds what this file would add, so it need not be decoded.
fn already_ingested(f: &InputFile, state: &StoreState) -> bool {
    match f.kind {
        InputKind::Spec => f.fiber.is_some_and(|fiber| {
            state.fibers.contains(&fiber) && state.table_has(PlateTable::Spall, Some(fiber))
        }),
        InputKind::Plate => state.table_has(PlateTable::Plugmap, None),
        InputKind::Zbest => state.table_has(PlateTable::Zbest, None),
        InputKind::Zline | InputKind::SpAll => false,
    }
}

fn decode_file(f: &InputFile, unit: &Unit) -> Result<Contribution, InputError> {
    match f.kind {
        InputKind::Plate => decode_plate(&f.path, unit.pm),
        InputKind::Spec => {
            let fiber = f.fiber.expect("spec files are identified with their fiber");
            decode_spec(&f.path, FiberId::new(unit.pm.plate, unit.pm.mjd, fiber))
        }
        kind => decode_companion(&f.path, kind),
    }
}

fn decode_unit(unit: Unit, writer: &StoreWriter, spall: &[SpAllIndex]) -> Decoded {
    let mut failures = Vec::new();
    let state = match StoreState::read(&writer.file_path(unit.pm), unit.pm) {
        Ok(s) => s,
        Err(e) => {
            failures.push(InputError::new(&e.path, e.message));
            return Decoded {
                unit,
                state: StoreState::default(),
                batch: Batch::default(),
                failures,
                files_read: 0,
                files_skipped: 0,
                bytes_read: 0,
            };
        }
    };
    let (todo, skipped): (Vec<&InputFile>, Vec<&InputFile>) = unit
        .files
        .iter()
        .partition(|f| !already_ingested(f, &state));
    let results: Vec<Result<Contribution, InputError>> =
        todo.par_iter().map(|f| decode_file(f, &unit)).collect();
    let mut batch = Batch::default();
    let mut files_read = 0;
    let mut bytes_read = 0;
    for (f, r) in todo.iter().zip(results) {
        match r.and_then(|c| batch.add(&f.path, c)) {
            Ok(()) => {
                files_read += 1;
                bytes_read += f.bytes;
            }
            Err(e) => failures.push(e),
        }
    }
    add_spall_rows(&unit, &state, &mut batch, spall, &mut failures);
    Decoded {
        files_read,
        files_skipped: skipped.len() as u64,
        bytes_read,
        unit,
        state,
        batch,
        failures,
    }
}

/// Adds the rows of the given spAll files for fibers of this plate-MJD that have no spall row yet.
fn add_spall_rows(
    unit: &Unit,
    state: &StoreState,
    batch: &mut Batch,
    spall: &[SpAllIndex],
    failures: &mut Vec<InputError>,
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
        .chain(batch.coadds.iter().map(|(f, _)| *f))
        .collect();
    for index in spall {
        let wanted: HashSet<FiberId> = fibers
            .iter()
            .filter(|&&f| !have.contains(&f) && !state.table_has(PlateTable::Spall, Some(f)))
            .map(|&f| FiberId::new(unit.pm.plate, unit.pm.mjd, f))
            .collect();
        if wanted.is_empty() || !index.rows.iter().any(|(id, _)| wanted.contains(id)) {
            continue;
        }
        let result = index.read_rows(&wanted).and_then(|rows| {
            have.extend(rows.fiber_ids().unwrap_or_default());
            batch.add(
                &index.path,
                Contribution {
                    tables: vec![(PlateTable::Spall, rows)],
                    ..Default::default()
                },
            )
        });
        if let Err(e) = result {
            failures.push(e);
        }
    }
}
