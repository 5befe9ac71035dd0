//! Writes one plate-MJD batch into its store file: only what is new is added, the file is rewritten
//! under a temporary name and renamed when complete, so no reader ever sees a half-written file.
//!
//! Which copy of a fiber's coadd is kept (the same rule for one run and for many runs):
//! 1. an spPlate's coadd wins over a spec file's — a later spPlate replaces coadds that came from
//!    spec files, and a later spec file adds its exposures and table rows but not its coadd;
//! 2. otherwise the copy already in the store wins, then the first input in path order.
//!
//! Two copies that differ are a conflict, reported; identical copies are not.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use hdf5::Group;
use model::atomic::AtomicFile;
use model::layout::{self, PlateTable};
use model::{FiberId, PlateMjd};
use store::attrs::{create_attr, read_attrs, read_str_attr, write_attr, write_attrs};
use store::records::{coadd_units, DEFAULT_FLUX_UNIT};
use store::{AttrValue, CoaddRecord, Table};

use crate::decode::{Contribution, Exposure, InputError, InputKind};

/// Attribute of `/<PLATE>/<MJD>` telling which kind of file the header attributes came from.
pub const HEADER_SOURCE_ATTR: &str = "HEADER_SOURCE";
const HEADER_FROM_PLATE: &str = "spPlate";
const HEADER_FROM_SPEC: &str = "spec";

/// A coadd of the batch and the file it came from.
#[derive(Debug)]
pub struct CoaddSource {
    pub records: Vec<CoaddRecord>,
    pub kind: InputKind,
    pub file: PathBuf,
}

/// Two copies of one fiber's coadd that differ, and which one was kept.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    pub fiber: String,
    pub kept: String,
    pub dropped: String,
    pub rule: ConflictRule,
}

/// Why one copy of a coadd was kept over another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// An spPlate's coadd wins over a spec file's.
    SpplateOverSpec,
    /// The copy already in the store wins.
    StoreFirst,
    /// The first input in path order wins.
    FirstInput,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.rule {
            ConflictRule::SpplateOverSpec => "an spPlate wins over spec files",
            ConflictRule::StoreFirst => "the store's copy wins",
            ConflictRule::FirstInput => "the first input wins",
        };
        write!(
            f,
            "fiber {}: kept {} over {} ({why})",
            self.fiber, self.kept, self.dropped
        )
    }
}

/// Everything this run adds to one plate-MJD, merged from its input files.
#[derive(Debug, Default)]
pub struct Batch {
    pub header: Option<(Vec<(String, AttrValue)>, bool)>,
    pub flux_unit: Option<String>,
    pub coadds: BTreeMap<i32, CoaddSource>,
    pub exposures: Vec<(i32, Exposure)>,
    pub tables: BTreeMap<PlateTable, Table>,
    /// Coadds the store has from spec files that this batch's spPlate replaces.
    pub replace: HashSet<i32>,
    pub conflicts: Vec<Conflict>,
}

impl Batch {
    /// Adds one file's contribution; a table whose columns differ from the batch's is an error of
    /// that file.
    pub fn add(
        &mut self,
        pm: PlateMjd,
        file: &Path,
        kind: InputKind,
        c: Contribution,
    ) -> Result<(), InputError> {
        for (name, table) in c.tables {
            match self.tables.get_mut(&name) {
                Some(t) => {
                    // The first source of a fiber's rows wins (spec SPZLINE rows against spZline).
                    let have: HashSet<i32> =
                        t.fiber_ids().unwrap_or_default().into_iter().collect();
                    let rows = match table.fiber_ids() {
                        Some(ids) => table.filter_rows(|r| !have.contains(&ids[r])),
                        None => continue,
                    };
                    t.append(&rows, name.name())
                        .map_err(|e| InputError::new(file, e))?
                }
                None => {
                    self.tables.insert(name, table);
                }
            }
        }
        if let Some((cards, from_plate)) = c.header {
            if self.header.as_ref().is_none_or(|(_, p)| from_plate && !p) {
                self.header = Some((cards, from_plate));
            }
        }
        if self.flux_unit.is_none() {
            self.flux_unit = c.flux_unit;
        }
        for (fiber, records) in c.coadds {
            let new = CoaddSource {
                records,
                kind,
                file: file.to_path_buf(),
            };
            let Some(old) = self.coadds.get(&fiber) else {
                self.coadds.insert(fiber, new);
                continue;
            };
            if old.records == new.records {
                continue;
            }
            let plate_wins = new.kind == InputKind::Plate && old.kind != InputKind::Plate;
            let rule =
                if plate_wins || (old.kind == InputKind::Plate && new.kind != InputKind::Plate) {
                    ConflictRule::SpplateOverSpec
                } else {
                    ConflictRule::FirstInput
                };
            let (kept, dropped) = if plate_wins {
                (&new.file, &old.file)
            } else {
                (&old.file, &new.file)
            };
            self.conflicts.push(Conflict {
                fiber: FiberId::new(pm.plate, pm.mjd, fiber).to_string(),
                kept: kept.display().to_string(),
                dropped: dropped.display().to_string(),
                rule,
            });
            if plate_wins {
                self.coadds.insert(fiber, new);
            }
        }
        self.exposures.extend(c.exposures);
        Ok(())
    }

    /// Applies the rules against what the store holds: coadds the store keeps are dropped from the
    /// batch (a conflict when they differ), coadds an spPlate replaces are marked.
    pub fn settle_against_store(
        &mut self,
        pm: PlateMjd,
        state: &StoreState,
        stored: &BTreeMap<i32, Vec<CoaddRecord>>,
    ) {
        let store_name = state.path.display().to_string();
        let fibers: Vec<i32> = self
            .coadds
            .keys()
            .copied()
            .filter(|f| state.fibers.contains(f))
            .collect();
        for fiber in fibers {
            let new = &self.coadds[&fiber];
            let store_from_plate = state.header_from_plate == Some(true);
            if new.kind == InputKind::Plate && !store_from_plate {
                self.conflicts.push(Conflict {
                    fiber: FiberId::new(pm.plate, pm.mjd, fiber).to_string(),
                    kept: new.file.display().to_string(),
                    dropped: store_name.clone(),
                    rule: ConflictRule::SpplateOverSpec,
                });
                self.replace.insert(fiber);
                continue;
            }
            let same = stored.get(&fiber).is_some_and(|s| *s == new.records);
            if !same {
                self.conflicts.push(Conflict {
                    fiber: FiberId::new(pm.plate, pm.mjd, fiber).to_string(),
                    kept: store_name.clone(),
                    dropped: new.file.display().to_string(),
                    rule: if new.kind != InputKind::Plate && store_from_plate {
                        ConflictRule::SpplateOverSpec
                    } else {
                        ConflictRule::StoreFirst
                    },
                });
            }
            self.coadds.remove(&fiber);
        }
    }

    /// The fibers of the batch whose coadds the store already holds from a source of the same rank
    /// (their stored copies must be read to compare).
    pub fn fibers_to_compare(&self, state: &StoreState) -> Vec<i32> {
        let store_from_plate = state.header_from_plate == Some(true);
        self.coadds
            .iter()
            .filter(|(f, c)| {
                state.fibers.contains(f) && (c.kind != InputKind::Plate || store_from_plate)
            })
            .map(|(f, _)| *f)
            .collect()
    }
}

/// What writing a batch did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteOutcome {
    /// The store file was (re)written.
    pub written: bool,
    pub fibers_added: usize,
    pub coadds_replaced: usize,
    pub bytes_written: u64,
}

/// A failure writing the store (not the fault of one input file).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: cannot open store file: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: hdf5::Error,
    },
    #[error("{}: not a store file written by boss-ingest", path.display())]
    Foreign { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Hdf5 {
        path: PathBuf,
        #[source]
        source: hdf5::Error,
    },
    #[error("{}: {source}", path.display())]
    Table {
        path: PathBuf,
        #[source]
        source: store::TableError,
    },
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// What a store file already holds, to add only what is new.
#[derive(Debug, Default)]
pub struct StoreState {
    pub path: PathBuf,
    pub fibers: HashSet<i32>,
    pub table_fibers: BTreeMap<PlateTable, Option<HashSet<i32>>>,
    pub header_from_plate: Option<bool>,
    /// The plate-MJD attributes (the primary header of the source).
    pub header: Vec<(String, AttrValue)>,
}

impl StoreState {
    /// Reads the state of the store file for `pm`; empty when the file does not exist.
    pub fn read(path: &Path, pm: PlateMjd) -> Result<Self, StoreError> {
        let mut state = Self {
            path: path.to_path_buf(),
            ..Self::default()
        };
        if !path.exists() {
            return Ok(state);
        }
        let h5 = |source| StoreError::Hdf5 {
            path: path.to_path_buf(),
            source,
        };
        let file = hdf5::File::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if read_str_attr(&file, layout::FORMAT_ATTR).as_deref() != Some(layout::FORMAT_VERSION) {
            return Err(StoreError::Foreign {
                path: path.to_path_buf(),
            });
        }
        let Ok(group) = file.group(&layout::plate_mjd_group(pm)) else {
            return Ok(state);
        };
        state.header_from_plate =
            read_str_attr(&group, HEADER_SOURCE_ATTR).map(|s| s == HEADER_FROM_PLATE);
        state.header = read_attrs(&group).map_err(h5)?;
        for name in group.member_names().map_err(h5)? {
            if let Ok(fiber) = name.parse::<i32>() {
                if group.link_exists(&format!("{name}/{}", layout::COADD)) {
                    state.fibers.insert(fiber);
                }
            }
        }
        for t in PlateTable::ALL {
            if let Ok(ds) = group.dataset(t.name()) {
                let table = Table::read(&ds).map_err(|source| StoreError::Table {
                    path: path.to_path_buf(),
                    source,
                })?;
                state
                    .table_fibers
                    .insert(t, table.fiber_ids().map(|f| f.into_iter().collect()));
            }
        }
        Ok(state)
    }

    /// The stored coadds of these fibers.
    pub fn read_coadds(
        &self,
        pm: PlateMjd,
        fibers: &[i32],
    ) -> Result<BTreeMap<i32, Vec<CoaddRecord>>, StoreError> {
        let mut out = BTreeMap::new();
        if fibers.is_empty() {
            return Ok(out);
        }
        let h5 = |source| StoreError::Hdf5 {
            path: self.path.clone(),
            source,
        };
        let file = hdf5::File::open(&self.path).map_err(h5)?;
        for &fiber in fibers {
            let ds = file.dataset(&layout::coadd_path(pm, fiber)).map_err(h5)?;
            out.insert(fiber, ds.read_raw::<CoaddRecord>().map_err(h5)?);
        }
        Ok(out)
    }

    /// True when the store's header is this spPlate's (the same spPlate was ingested before).
    pub fn has_plate_header(&self, cards: &[(String, AttrValue)]) -> bool {
        self.header_from_plate == Some(true)
            && cards.iter().all(|(k, v)| {
                self.header
                    .iter()
                    .any(|(hk, hv)| hk == k && same_value(hv, v))
            })
    }

    /// Which of these exposure datasets the store file already has (opened only when asked).
    fn existing_exposures(&self, paths: &[String]) -> Result<HashSet<String>, StoreError> {
        if paths.is_empty() || !self.path.exists() {
            return Ok(HashSet::new());
        }
        let file = hdf5::File::open(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        Ok(paths
            .iter()
            .filter(|p| file.link_exists(p))
            .cloned()
            .collect())
    }

    /// True when the table already has rows for this fiber (or exists without a FIBERID column).
    pub fn table_has(&self, t: PlateTable, fiber: Option<i32>) -> bool {
        match (self.table_fibers.get(&t), fiber) {
            (None, _) => false,
            (Some(None), _) | (Some(Some(_)), None) => true,
            (Some(Some(set)), Some(f)) => set.contains(&f),
        }
    }
}

/// Attribute values compare bit for bit (a NaN card equals itself).
fn same_value(a: &AttrValue, b: &AttrValue) -> bool {
    match (a, b) {
        (AttrValue::Float(x), AttrValue::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// Writes store files into one directory.
pub struct StoreWriter {
    dir: PathBuf,
    writer_name: String,
}

impl StoreWriter {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            writer_name: format!("boss-ingest {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Path of the store file of a plate-MJD.
    pub fn file_path(&self, pm: PlateMjd) -> PathBuf {
        self.dir.join(layout::store_file_name(pm))
    }

    /// Adds what is new in `batch` to the store file of `pm`, whose current content is `state`
    /// (read by the caller before decoding; only this rank writes this file).
    pub fn write(
        &self,
        pm: PlateMjd,
        mut batch: Batch,
        state: &StoreState,
    ) -> Result<WriteOutcome, StoreError> {
        let final_path = self.file_path(pm);
        let exposure_paths: Vec<String> = batch
            .exposures
            .iter()
            .map(|(fiber, e)| layout::exposure_path(pm, *fiber, e.expid, e.arm))
            .collect();
        let existing_exposures = state.existing_exposures(&exposure_paths)?;
        if !only_new(pm, &mut batch, state, existing_exposures) {
            return Ok(WriteOutcome::default());
        }
        let w = AtomicFile::new(&final_path);
        let tmp = w.temp().to_path_buf();
        let io = |what, source| StoreError::Io {
            path: tmp.clone(),
            what,
            source,
        };
        if final_path.exists() {
            fs::copy(&final_path, &tmp).map_err(|e| io("cannot copy the store file", e))?;
        }
        let fibers_added = self.write_file(&tmp, pm, &batch)?;
        let bytes_written = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        w.commit()
            .map_err(|e| io("cannot put the file into place", e))?;
        Ok(WriteOutcome {
            written: true,
            fibers_added,
            coadds_replaced: batch.replace.len(),
            bytes_written,
        })
    }

    fn write_file(&self, path: &Path, pm: PlateMjd, batch: &Batch) -> Result<usize, StoreError> {
        let h5 = |source| StoreError::Hdf5 {
            path: path.to_path_buf(),
            source,
        };
        let file = if path.exists() {
            hdf5::File::open_rw(path).map_err(h5)?
        } else {
            let f = hdf5::File::with_options()
                .with_fapl(|p| store::tuning::tune_file_access(p).libver_v110())
                .create(path)
                .map_err(h5)?;
            write_attr(
                &f,
                layout::FORMAT_ATTR,
                &AttrValue::Str(layout::FORMAT_VERSION.into()),
            )
            .map_err(h5)?;
            write_attr(
                &f,
                layout::WRITER_ATTR,
                &AttrValue::Str(self.writer_name.clone()),
            )
            .map_err(h5)?;
            f
        };
        let group = ensure_group(&file, &layout::plate_mjd_group(pm)).map_err(h5)?;
        if let Some((cards, from_plate)) = &batch.header {
            // The header is replaced whole (an spPlate's after a spec file's: no card of the old
            // header stays behind).
            store::attrs::delete_all(&group).map_err(h5)?;
            write_attrs(&group, cards).map_err(h5)?;
            let source = if *from_plate {
                HEADER_FROM_PLATE
            } else {
                HEADER_FROM_SPEC
            };
            write_attr(&group, HEADER_SOURCE_ATTR, &AttrValue::Str(source.into())).map_err(h5)?;
            let units: Vec<(String, AttrValue)> =
                coadd_units(batch.flux_unit.as_deref().unwrap_or(DEFAULT_FLUX_UNIT))
                    .into_iter()
                    .map(|(field, unit)| (layout::coadd_unit_attr(field), AttrValue::Str(unit)))
                    .collect();
            write_attrs(&group, &units).map_err(h5)?;
        }
        let mut added = 0;
        for (fiber, c) in &batch.coadds {
            let g = ensure_group(&file, &layout::fiber_group(pm, *fiber)).map_err(h5)?;
            if batch.replace.contains(fiber) {
                g.unlink(layout::COADD).map_err(h5)?;
            } else {
                added += 1;
            }
            g.new_dataset_builder()
                .fill_time(store::tuning::FILL_TIME)
                .with_data(c.records.as_slice())
                .create(layout::COADD)
                .map_err(h5)?;
        }
        for (fiber, e) in &batch.exposures {
            let g =
                ensure_group(&file, &layout::exposure_group(pm, *fiber, e.expid)).map_err(h5)?;
            let descriptor = e.data.fields.descriptor();
            let ds = g
                .new_dataset_builder()
                .packed(true)
                .fill_time(store::tuning::FILL_TIME)
                .empty_as(&descriptor)
                .shape(e.data.len())
                .create(e.arm.name())
                .map_err(h5)?;
            let dtype = hdf5::Datatype::from_descriptor(&descriptor).map_err(h5)?;
            store::raw::write_all(&ds, &dtype, &e.data.packed()).map_err(h5)?;
            create_attr(
                &ds,
                layout::SPECTROGRAPH_ATTR,
                &AttrValue::Int(e.spectrograph),
            )
            .map_err(h5)?;
            create_attr(
                &ds,
                layout::EXTNAME_ATTR,
                &AttrValue::Str(e.extname.clone()),
            )
            .map_err(h5)?;
        }
        let table_err = |source| StoreError::Table {
            path: path.to_path_buf(),
            source,
        };
        for (name, new_rows) in &batch.tables {
            let mut table = match group.dataset(name.name()) {
                Ok(ds) => Table::read(&ds).map_err(table_err)?,
                Err(_) => Table::new(new_rows.columns().to_vec()),
            };
            table.append(new_rows, name.name()).map_err(table_err)?;
            table.sort_by_fiber();
            table.write(&group, name.name()).map_err(table_err)?;
        }
        Ok(added)
    }
}

/// Drops from the batch everything the store already has; true when something is left to write.
fn only_new(
    pm: PlateMjd,
    batch: &mut Batch,
    state: &StoreState,
    mut seen_exp: HashSet<String>,
) -> bool {
    batch
        .exposures
        .retain(|(fiber, e)| seen_exp.insert(layout::exposure_path(pm, *fiber, e.expid, e.arm)));
    let tables = std::mem::take(&mut batch.tables);
    for (name, table) in tables {
        let rows = match table.fiber_ids() {
            Some(fibers) => table.filter_rows(|r| !state.table_has(name, Some(fibers[r]))),
            None if state.table_has(name, None) => continue,
            None => table,
        };
        if rows.num_rows() > 0 {
            batch.tables.insert(name, rows);
        }
    }
    let header_needed = match (&batch.header, state.header_from_plate) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some((_, from_plate)), Some(had_plate)) => *from_plate && !had_plate,
    };
    if !header_needed {
        batch.header = None;
    }
    !batch.coadds.is_empty()
        || !batch.exposures.is_empty()
        || !batch.tables.is_empty()
        || batch.header.is_some()
}

/// Opens or creates a group and its parents (checking links, which is cheap, rather than failing opens).
fn ensure_group(file: &hdf5::File, path: &str) -> hdf5::Result<Group> {
    let mut g: Group = file.as_group()?;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        g = if g.link_exists(part) {
            g.group(part)?
        } else {
            g.create_group(part)?
        };
    }
    Ok(g)
}
