//! One rank's ingest: decode the files of each of its units (store groups) on rayon threads while
//! the main thread writes the previous unit to the store (HDF5 writes stay on one thread). Each
//! unit is decoded and written by its survey ([`crate::survey`]).

use std::path::Path;
use std::sync::mpsc::sync_channel;

use serde::{Deserialize, Serialize};

use crate::decode::SpAllIndex;
use crate::plan::{Failure, Plan, Unit};
use crate::survey::{survey_of, Decoded};
use crate::writer::{Conflict, StoreError, StoreWriter};

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

/// The catalogs of a plan every unit may draw rows from.
pub struct Catalogs<'a> {
    pub spall: &'a [SpAllIndex],
    pub spall5: &'a [crate::sdss5::spall::SpAllIndex],
    pub zcat: &'a [crate::desi::zcat::ZcatIndex],
}

impl<'a> Catalogs<'a> {
    /// The catalogs of a plan.
    pub fn of(plan: &'a Plan) -> Self {
        Self {
            spall: &plan.spall,
            spall5: &plan.spall5,
            zcat: &plan.zcat,
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
    // A rendezvous: the next unit is decoded while this one is written, and waits for the writer
    // there — at most two units in memory (a DESI coadd is decoded whole: 1.1 GB for 2,500 targets).
    let (tx, rx) = sync_channel::<(u64, Decoded)>(0);
    std::thread::scope(|scope| {
        let writer_ref = &writer;
        scope.spawn(move || {
            for unit in units {
                let files = unit.files.len() as u64;
                let decoded = survey_of(&unit.group).decode(&unit, writer_ref, catalogs);
                if tx.send((files, decoded)).is_err() {
                    break; // the writer stopped (fail-fast)
                }
            }
        });
        for (nfiles, d) in rx {
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
                Some(work) => work.write(&writer),
                None => Ok(crate::writer::WriteOutcome::default()),
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
