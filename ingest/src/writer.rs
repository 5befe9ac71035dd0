//! Writes one plate-MJD batch into its store file: only what is new is added, the file is rewritten
//! under a temporary name and renamed when complete, so no reader ever sees a half-written file.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use catalog::layout::{self, PlateTable};
use catalog::PlateMjd;
use hdf5::Group;
use store::attrs::{create_attr, create_attrs, read_str_attr, write_attr, write_attrs};
use store::records::{coadd_units, DEFAULT_FLUX_UNIT};
use store::{AttrValue, CoaddRecord, Table};

use crate::decode::{Contribution, Exposure, InputError};

/// Attribute of `/<PLATE>/<MJD>` telling which kind of file the header attributes came from.
const HEADER_SOURCE_ATTR: &str = "HEADER_SOURCE";
const HEADER_FROM_PLATE: &str = "spPlate";
const HEADER_FROM_SPEC: &str = "spec";

/// Everything this run adds to one plate-MJD, merged from its input files.
#[derive(Debug, Default)]
pub struct Batch {
    pub header: Option<(Vec<(String, AttrValue)>, bool)>,
    pub flux_unit: Option<String>,
    pub coadds: Vec<(i32, Vec<CoaddRecord>)>,
    pub exposures: Vec<(i32, Exposure)>,
    pub tables: BTreeMap<PlateTable, Table>,
}

impl Batch {
    /// Adds one file's contribution; a table whose columns differ from the batch's is an error of that file.
    pub fn add(&mut self, file: &Path, c: Contribution) -> Result<(), InputError> {
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
                        .map_err(|e| InputError::new(file, e.to_string()))?
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
        self.coadds.extend(c.coadds);
        self.exposures.extend(c.exposures);
        Ok(())
    }
}

/// What writing a batch did.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteOutcome {
    /// The store file was (re)written.
    pub written: bool,
    pub fibers_added: usize,
    pub bytes_written: u64,
}

/// A failure writing the store (not the fault of one input file).
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    pub message: String,
}

fn store_err(path: &Path) -> impl Fn(String) -> StoreError + '_ {
    move |message| StoreError {
        path: path.to_path_buf(),
        message,
    }
}

/// What a store file already holds, to add only what is new.
#[derive(Debug, Default)]
pub struct StoreState {
    pub fibers: HashSet<i32>,
    pub table_fibers: BTreeMap<PlateTable, Option<HashSet<i32>>>,
    pub header_from_plate: Option<bool>,
}

impl StoreState {
    /// Reads the state of the store file for `pm`; empty when the file does not exist.
    pub fn read(path: &Path, pm: PlateMjd) -> Result<Self, StoreError> {
        let mut state = Self::default();
        if !path.exists() {
            return Ok(state);
        }
        let err = store_err(path);
        let file =
            hdf5::File::open(path).map_err(|e| err(format!("cannot open store file: {e}")))?;
        if read_str_attr(&file, layout::FORMAT_ATTR).as_deref() != Some(layout::FORMAT_VERSION) {
            return Err(err("not a store file written by boss-ingest".into()));
        }
        let Ok(group) = file.group(&layout::plate_mjd_group(pm)) else {
            return Ok(state);
        };
        state.header_from_plate =
            read_str_attr(&group, HEADER_SOURCE_ATTR).map(|s| s == HEADER_FROM_PLATE);
        for name in group.member_names().map_err(|e| err(e.to_string()))? {
            if let Ok(fiber) = name.parse::<i32>() {
                if group.link_exists(&format!("{name}/{}", layout::COADD)) {
                    state.fibers.insert(fiber);
                }
            }
        }
        for t in PlateTable::ALL {
            if let Ok(ds) = group.dataset(t.name()) {
                let table = Table::read(&ds).map_err(|e| err(e.to_string()))?;
                state
                    .table_fibers
                    .insert(t, table.fiber_ids().map(|f| f.into_iter().collect()));
            }
        }
        Ok(state)
    }

    /// Which of these exposure datasets the store file already has (opened only when asked).
    fn existing_exposures(path: &Path, paths: &[String]) -> Result<HashSet<String>, StoreError> {
        if paths.is_empty() || !path.exists() {
            return Ok(HashSet::new());
        }
        let file = hdf5::File::open(path)
            .map_err(|e| store_err(path)(format!("cannot open store file: {e}")))?;
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
        let existing_exposures = StoreState::existing_exposures(&final_path, &exposure_paths)?;
        let new = only_new(pm, &mut batch, state, existing_exposures);
        if !new {
            return Ok(WriteOutcome::default());
        }
        let file_name = layout::store_file_name(pm);
        let tmp = self
            .dir
            .join(layout::temp_file_name(&file_name, std::process::id()));
        let err = store_err(&tmp);
        let result = (|| {
            if final_path.exists() {
                fs::copy(&final_path, &tmp)
                    .map_err(|e| err(format!("cannot copy the store file: {e}")))?;
            }
            let fibers_added = self
                .write_file(&tmp, pm, &batch)
                .map_err(|e| err(e.to_string()))?;
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| err(format!("fsync: {e}")))?;
            let bytes_written = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
            fs::rename(&tmp, &final_path)
                .map_err(|e| err(format!("cannot rename into place: {e}")))?;
            if let Ok(d) = fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
            Ok(WriteOutcome {
                written: true,
                fibers_added,
                bytes_written,
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_file(&self, path: &Path, pm: PlateMjd, batch: &Batch) -> hdf5::Result<usize> {
        let file = if path.exists() {
            hdf5::File::open_rw(path)?
        } else {
            let f = hdf5::File::with_options()
                .with_fapl(|p| store::tuning::tune_file_access(p).libver_v110())
                .create(path)?;
            write_attr(
                &f,
                layout::FORMAT_ATTR,
                &AttrValue::Str(layout::FORMAT_VERSION.into()),
            )?;
            write_attr(
                &f,
                layout::WRITER_ATTR,
                &AttrValue::Str(self.writer_name.clone()),
            )?;
            f
        };
        let group = ensure_group(&file, &layout::plate_mjd_group(pm))?;
        if let Some((cards, from_plate)) = &batch.header {
            write_attrs(&group, cards)?;
            let source = if *from_plate {
                HEADER_FROM_PLATE
            } else {
                HEADER_FROM_SPEC
            };
            write_attr(&group, HEADER_SOURCE_ATTR, &AttrValue::Str(source.into()))?;
        }
        let units: Vec<(String, AttrValue)> =
            coadd_units(batch.flux_unit.as_deref().unwrap_or(DEFAULT_FLUX_UNIT))
                .into_iter()
                .map(|(field, unit)| (layout::unit_attr(field), AttrValue::Str(unit)))
                .collect();
        for (fiber, records) in &batch.coadds {
            let g = ensure_group(&file, &layout::fiber_group(pm, *fiber))?;
            let ds = g
                .new_dataset_builder()
                .fill_time(store::tuning::FILL_TIME)
                .with_data(records.as_slice())
                .create(layout::COADD)?;
            create_attrs(&ds, &units)?;
        }
        for (fiber, e) in &batch.exposures {
            let g = ensure_group(&file, &layout::exposure_group(pm, *fiber, e.expid))?;
            let ds = g
                .new_dataset_builder()
                .fill_time(store::tuning::FILL_TIME)
                .with_data(e.records.as_slice())
                .create(e.arm.name())?;
            create_attr(
                &ds,
                layout::SPECTROGRAPH_ATTR,
                &AttrValue::Int(e.spectrograph),
            )?;
            create_attr(
                &ds,
                layout::EXTNAME_ATTR,
                &AttrValue::Str(e.extname.clone()),
            )?;
        }
        for (name, new_rows) in &batch.tables {
            let mut table = match group.dataset(name.name()) {
                Ok(ds) => Table::read(&ds).map_err(|e| e.to_string())?,
                Err(_) => Table::new(new_rows.columns().to_vec()),
            };
            table
                .append(new_rows, name.name())
                .map_err(|e| e.to_string())?;
            table.sort_by_fiber();
            table
                .write(&group, name.name())
                .map_err(|e| e.to_string())?;
        }
        Ok(batch.coadds.len())
    }
}

/// Drops from the batch everything the store already has; true when something is left to write.
fn only_new(
    pm: PlateMjd,
    batch: &mut Batch,
    state: &StoreState,
    mut seen_exp: HashSet<String>,
) -> bool {
    // The first copy of a fiber wins, within the batch as against the store.
    let mut seen = state.fibers.clone();
    batch.coadds.retain(|(fiber, _)| seen.insert(*fiber));
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
