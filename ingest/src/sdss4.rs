//! SDSS-I–IV inputs behind the survey interface: spPlate files (with their spZbest and spZline
//! siblings), spec files (BOSS, eBOSS, SDSS-I/II) and spAll rows, recognised by their pipeline
//! names and headers, decoded ([`crate::decode`]) and merged into the plate-MJD's store file
//! ([`crate::writer`]), in the H5Boss v1 or v2 layout.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use model::layout::PlateTable;
use model::{FiberId, GroupId, PlateMjd};
use rayon::prelude::*;

use crate::decode::{
    decode_companion, decode_plate, decode_spec, identify, plate_siblings, Contribution,
    InputError, InputKind, Problem, SpAllIndex,
};
use crate::plan::{Failure, InputFile, Unit};
use crate::run::Catalogs;
use crate::survey::{Decoded, Pending, Recognised, Survey};
use crate::writer::{Batch, StoreError, StoreState, StoreWriter, WriteOutcome};
use fitsread::{cfitsio_guard, Fits};

/// The SDSS-I–IV survey.
pub struct Sdss4;

impl Survey for Sdss4 {
    fn claims_name(&self, name: &str) -> bool {
        InputKind::from_file_name(name).is_some()
    }

    fn claims_content(&self, _path: &Path) -> bool {
        false // an SDSS-I–IV file is known by its pipeline name
    }

    fn identify(&self, path: &Path, name: &str, bytes: u64) -> Recognised {
        let Some(kind) = InputKind::from_file_name(name) else {
            return Recognised::NotMine;
        };
        match identify(path, kind) {
            Ok((pm, fiber)) => Recognised::Mine(Ok((
                InputFile {
                    path: path.to_path_buf(),
                    kind,
                    row: fiber.map(i64::from),
                    bytes,
                },
                GroupId::Plate(pm),
            ))),
            // An SDSS-V file under a name like SDSS-I–IV's: SDSS-V's to take.
            Err(e) if matches!(e.problem, Problem::Sdss5UnderSdss4Name) => Recognised::NotMine,
            Err(e) => Recognised::Mine(Err(e)),
        }
    }

    fn owns(&self, group: &GroupId) -> bool {
        matches!(group, GroupId::Plate(_))
    }

    fn companions(&self, f: &InputFile, group: &GroupId) -> Vec<PathBuf> {
        match (f.kind, group) {
            (InputKind::Plate, GroupId::Plate(pm)) => plate_siblings(&f.path, *pm),
            _ => Vec::new(),
        }
    }

    fn decode(&self, unit: &Unit, writer: &StoreWriter, catalogs: &Catalogs) -> Decoded {
        match unit.group {
            GroupId::Plate(pm) => decode_unit(pm, unit, writer, catalogs.spall),
            _ => Decoded::default(),
        }
    }
}

/// A plate-MJD ready to write: what the store file held before this run's additions (read once,
/// before decoding), and the batch.
struct PlateWrite {
    pm: PlateMjd,
    state: Box<StoreState>,
    batch: Box<Batch>,
}

impl Pending for PlateWrite {
    fn write(self: Box<Self>, writer: &StoreWriter) -> Result<WriteOutcome, StoreError> {
        let PlateWrite { pm, state, batch } = *self;
        writer.write(pm, *batch, *state)
    }
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

fn decode_unit(pm: PlateMjd, unit: &Unit, writer: &StoreWriter, spall: &[SpAllIndex]) -> Decoded {
    let mut d = Decoded::default();
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
    d.work = Some(Box::new(PlateWrite {
        pm,
        state: Box::new(state),
        batch: Box::new(batch),
    }));
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
