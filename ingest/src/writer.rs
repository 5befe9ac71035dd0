//! Writes one plate-MJD batch into its store file: only what is new is added, the file is rewritten
//! under a temporary name and renamed when complete, so no reader ever sees a half-written file.
//!
//! Which copy of a fiber's coadd is kept (the same rule for one run and for many runs):
//! 1. an spPlate's coadd wins over a spec file's — a later spPlate replaces coadds that came from
//!    spec files, and a later spec file adds its exposures and table rows but not its coadd;
//! 2. otherwise the copy already in the store wins, then the first input in path order.
//!
//! Two copies that differ are a conflict, reported; identical copies are not.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hdf5::Group;
use model::atomic::AtomicFile;
use model::layout::{self, Layout, PlateTable};
use model::{FiberId, PlateMjd};
use store::attrs::{create_attr, read_attrs, read_str_attr, write_attrs};
use store::records::{coadd_units, DEFAULT_FLUX_UNIT};
use store::v2::{self, PlateArrays};
use store::{AttrValue, CoaddRecord, ExposureColumns, Table};

use crate::decode::{Contribution, Exposure, InputError, InputKind, PlateImages};

/// Attribute of `/<PLATE>/<MJD>` telling which kind of file the header attributes came from.
pub const HEADER_SOURCE_ATTR: &str = "HEADER_SOURCE";
const HEADER_FROM_PLATE: &str = "spPlate";
const HEADER_FROM_SPEC: &str = "spec";

/// The pixels of one coadd of the batch: records of a spec file, or a row of an spPlate's images.
#[derive(Debug, Clone)]
pub enum CoaddData {
    Records(Vec<CoaddRecord>),
    Plate(Arc<PlateImages>, usize),
}

impl CoaddData {
    /// The coadd as v1 records.
    pub fn records(&self) -> Cow<'_, [CoaddRecord]> {
        match self {
            Self::Records(r) => Cow::Borrowed(r),
            Self::Plate(p, row) => Cow::Owned(p.records(*row)),
        }
    }
}

/// A coadd of the batch and the file it came from.
#[derive(Debug)]
pub struct CoaddSource {
    pub data: CoaddData,
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
    /// The table whose rows of this fiber differ (None, `null` in JSON: the coadds differ). Always
    /// serialized: conflicts cross ranks in postcard, which cannot skip fields.
    #[serde(default)]
    pub table: Option<String>,
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
    /// An SDSS-V spField's coadd wins over a spec file's.
    SpfieldOverSpec,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.rule {
            ConflictRule::SpplateOverSpec => "an spPlate wins over spec files",
            ConflictRule::StoreFirst => "the store's copy wins",
            ConflictRule::FirstInput => "the first input wins",
            ConflictRule::SpfieldOverSpec => "an spField wins over spec files",
        };
        let what = match &self.table {
            Some(t) => format!(" {t} rows differ:"),
            None => String::new(),
        };
        // SDSS-I–IV spectra are fibers ("fiber 3655-55240-2"); later surveys' name themselves
        // ("field 112360-60000 TARGET_INDEX 5").
        let prefix = if self.fiber.starts_with("field ") || self.fiber.starts_with("DESI ") {
            ""
        } else {
            "fiber "
        };
        write!(
            f,
            "{prefix}{}:{what} kept {} over {} ({why})",
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
    /// The file each fiber's table rows came from, for conflict messages.
    pub table_origin: HashMap<(PlateTable, i32), PathBuf>,
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
            for f in table.fiber_ids().unwrap_or_default() {
                self.table_origin
                    .entry((name, f))
                    .or_insert_with(|| file.to_path_buf());
            }
            match self.tables.get_mut(&name) {
                Some(t) => {
                    // The first source of a fiber's rows wins (spec SPZLINE rows against spZline);
                    // rows that differ from the kept ones are a conflict, as coadds are.
                    for fiber in differing_rows(t, &table) {
                        let kept = self.table_origin.get(&(name, fiber));
                        self.conflicts.push(Conflict {
                            fiber: FiberId::new(pm.plate, pm.mjd, fiber).to_string(),
                            kept: kept.map_or(String::new(), |k| k.display().to_string()),
                            dropped: file.display().to_string(),
                            rule: ConflictRule::FirstInput,
                            table: Some(name.name().to_string()),
                        });
                    }
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
        let plate_rows = c.plate.iter().flat_map(|p| {
            p.fibers
                .iter()
                .enumerate()
                .map(|(row, &fiber)| (fiber, CoaddData::Plate(p.clone(), row)))
        });
        let spec_rows = c
            .coadds
            .into_iter()
            .map(|(fiber, r)| (fiber, CoaddData::Records(r)));
        for (fiber, data) in spec_rows.chain(plate_rows) {
            let new = CoaddSource {
                data,
                kind,
                file: file.to_path_buf(),
            };
            let Some(old) = self.coadds.get(&fiber) else {
                self.coadds.insert(fiber, new);
                continue;
            };
            if old.data.records() == new.data.records() {
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
                table: None,
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
                    table: None,
                });
                self.replace.insert(fiber);
                continue;
            }
            let same = stored
                .get(&fiber)
                .is_some_and(|s| *s == *new.data.records());
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
                    table: None,
                });
            }
            self.coadds.remove(&fiber);
        }
        // Table rows the store keeps: a conflict when this run's rows of the fiber differ.
        for (name, table) in &self.tables {
            let Some(stored) = state.tables.get(name) else {
                continue;
            };
            for fiber in differing_rows(stored, table) {
                let dropped = self.table_origin.get(&(*name, fiber));
                self.conflicts.push(Conflict {
                    fiber: FiberId::new(pm.plate, pm.mjd, fiber).to_string(),
                    kept: store_name.clone(),
                    dropped: dropped.map_or(String::new(), |d| d.display().to_string()),
                    rule: ConflictRule::StoreFirst,
                    table: Some(name.name().to_string()),
                });
            }
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

/// Writes a group of the merged layout as its store file in `dir`: a new file under a temporary
/// name, renamed into place when complete. Returns the bytes of data written.
pub fn write_merged_file(
    dir: &Path,
    writer: &str,
    merged: &store::merged::MergedGroup,
) -> Result<u64, StoreError> {
    let final_path = dir.join(merged.group.store_file_name());
    let w = AtomicFile::new(&final_path);
    let tmp = w.temp().to_path_buf();
    let bytes =
        store::merged::write(&tmp, writer, merged).map_err(|source| StoreError::Merged {
            path: tmp.clone(),
            source,
        })?;
    w.commit().map_err(|source| StoreError::Io {
        path: final_path.clone(),
        what: "cannot put the file into place",
        source,
    })?;
    Ok(bytes)
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
    #[error("{}: the store holds {} files; this ingest writes {} (one store holds one layout)", path.display(), found.format(), expected.format())]
    Layout {
        path: PathBuf,
        found: Layout,
        expected: Layout,
    },
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
    #[error("{}: {source}", path.display())]
    Merged {
        path: PathBuf,
        #[source]
        source: store::merged::MergedError,
    },
    #[error("{}: fiber {fiber}: {source}", path.display())]
    Grid {
        path: PathBuf,
        fiber: i32,
        #[source]
        source: store::v2::GridError,
    },
}

/// What a store file already holds, to add only what is new.
#[derive(Debug, Default)]
pub struct StoreState {
    pub path: PathBuf,
    pub layout: Layout,
    pub fibers: HashSet<i32>,
    pub table_fibers: BTreeMap<PlateTable, Option<HashSet<i32>>>,
    /// The tables the file holds (to compare rows of the same fibers).
    pub tables: BTreeMap<PlateTable, Table>,
    pub header_from_plate: Option<bool>,
    /// The plate-MJD attributes (the primary header of the source).
    pub header: Vec<(String, AttrValue)>,
    /// v2: the spectra the file holds (a v2 file is rewritten whole when it changes).
    pub arrays: Option<PlateArrays>,
}

impl StoreState {
    /// Reads the state of the store file for `pm`; empty when the file does not exist. A file of
    /// another layout than `layout` is an error.
    pub fn read(path: &Path, pm: PlateMjd, layout: Layout) -> Result<Self, StoreError> {
        let mut state = Self {
            path: path.to_path_buf(),
            layout,
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
        let found = read_str_attr(&file, layout::FORMAT_ATTR)
            .and_then(|f| Layout::from_format(&f))
            .ok_or_else(|| StoreError::Foreign {
                path: path.to_path_buf(),
            })?;
        if found != layout {
            return Err(StoreError::Layout {
                path: path.to_path_buf(),
                found,
                expected: layout,
            });
        }
        let Ok(group) = file.group(&layout::plate_mjd_group(pm)) else {
            return Ok(state);
        };
        state.header_from_plate =
            read_str_attr(&group, HEADER_SOURCE_ATTR).map(|s| s == HEADER_FROM_PLATE);
        state.header = read_attrs(&group).map_err(h5)?;
        match layout {
            Layout::V1 => {
                for name in group.member_names().map_err(h5)? {
                    if let Ok(fiber) = name.parse::<i32>() {
                        if group.link_exists(&format!("{name}/{}", layout::COADD)) {
                            state.fibers.insert(fiber);
                        }
                    }
                }
            }
            Layout::V2 => {
                let arrays = PlateArrays {
                    coadds: v2::read_coadds(&group).map_err(h5)?.unwrap_or_default(),
                    exposures: v2::read_exposures(&group).map_err(h5)?,
                };
                state.fibers = arrays.coadds.fiberid.iter().copied().collect();
                state.arrays = Some(arrays);
            }
        }
        for t in PlateTable::ALL {
            // Absent is "no such table"; present but unreadable is an error of the store file.
            if group.link_exists(t.name()) {
                let table = group.dataset(t.name()).map_err(h5).and_then(|ds| {
                    Table::read(&ds).map_err(|source| StoreError::Table {
                        path: path.to_path_buf(),
                        source,
                    })
                })?;
                state
                    .table_fibers
                    .insert(t, table.fiber_ids().map(|f| f.into_iter().collect()));
                state.tables.insert(t, table);
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
        if let Some(a) = &self.arrays {
            for (row, fiber) in a.coadds.fiberid.iter().enumerate() {
                if fibers.contains(fiber) {
                    out.insert(*fiber, a.coadds.row(row));
                }
            }
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

    /// Which of these exposure datasets (v1 paths) the store file already has.
    fn existing_exposures(
        &self,
        pm: PlateMjd,
        paths: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        if let Some(a) = &self.arrays {
            let have: HashSet<String> = a
                .exposures
                .iter()
                .flat_map(|((expid, arm), e)| {
                    e.fiberid
                        .iter()
                        .map(move |f| layout::exposure_path(pm, *f, *expid, *arm))
                })
                .collect();
            return Ok(paths
                .iter()
                .filter(|p| have.contains(*p))
                .cloned()
                .collect());
        }
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

/// The fibers that both tables have rows of, with rows that differ (as bytes; tables of different
/// columns are not compared: their rows are never merged either).
fn differing_rows(kept: &Table, new: &Table) -> Vec<i32> {
    if !kept.same_schema(new) {
        return Vec::new();
    }
    let (Some(k), Some(n)) = (kept.fiber_rows(), new.fiber_rows()) else {
        return Vec::new();
    };
    let mut out: Vec<i32> = n
        .iter()
        .filter(|(f, rows)| k.get(f).is_some_and(|kr| kr != *rows))
        .map(|(f, _)| *f)
        .collect();
    out.sort_unstable();
    out
}

/// Attribute values compare bit for bit (a NaN card equals itself).
fn same_value(a: &AttrValue, b: &AttrValue) -> bool {
    match (a, b) {
        (AttrValue::Float(x), AttrValue::Float(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// Writes store files into one directory, in one layout.
pub struct StoreWriter {
    dir: PathBuf,
    layout: Layout,
    writer_name: String,
}

impl StoreWriter {
    pub fn new(dir: &Path, layout: Layout) -> Self {
        Self {
            dir: dir.to_path_buf(),
            layout,
            writer_name: format!("boss-ingest {}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the files written record as their writer.
    pub fn writer_name(&self) -> &str {
        &self.writer_name
    }

    /// Path of the store file of a plate-MJD.
    pub fn file_path(&self, pm: PlateMjd) -> PathBuf {
        self.dir.join(layout::store_file_name(pm))
    }

    /// Adds what is new in `batch` to the store file of `pm`, whose current content is `state`
    /// (read by the caller before decoding; only this rank writes this file). v1 files are copied
    /// and added to; v2 files are written anew from the old content and the new.
    pub fn write(
        &self,
        pm: PlateMjd,
        mut batch: Batch,
        state: StoreState,
    ) -> Result<WriteOutcome, StoreError> {
        let final_path = self.file_path(pm);
        let exposure_paths: Vec<String> = batch
            .exposures
            .iter()
            .map(|(fiber, e)| layout::exposure_path(pm, *fiber, e.expid, e.arm))
            .collect();
        let existing_exposures = state.existing_exposures(pm, &exposure_paths)?;
        if !only_new(pm, &mut batch, &state, existing_exposures) {
            return Ok(WriteOutcome::default());
        }
        let w = AtomicFile::new(&final_path);
        let tmp = w.temp().to_path_buf();
        let io = |what, source| StoreError::Io {
            path: tmp.clone(),
            what,
            source,
        };
        let fibers_added = match self.layout {
            Layout::V1 => {
                if final_path.exists() {
                    fs::copy(&final_path, &tmp).map_err(|e| io("cannot copy the store file", e))?;
                }
                self.write_v1(&tmp, pm, &batch)?
            }
            Layout::V2 => {
                let replaced = batch.replace.len();
                let added = self.write_v2(&tmp, pm, batch, state)?;
                let bytes_written = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
                w.commit()
                    .map_err(|e| io("cannot put the file into place", e))?;
                return Ok(WriteOutcome {
                    written: true,
                    fibers_added: added,
                    coadds_replaced: replaced,
                    bytes_written,
                });
            }
        };
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

    /// Opens the file to add to (a copy of the old one), or creates it with the root attributes.
    fn open_or_create(&self, path: &Path) -> hdf5::Result<hdf5::File> {
        if path.exists() {
            return hdf5::File::open_rw(path);
        }
        let f = hdf5::File::with_options()
            .with_fapl(|p| store::tuning::tune_file_access(p).libver_v110())
            .create(path)?;
        create_attr(
            &f,
            layout::FORMAT_ATTR,
            &AttrValue::Str(self.layout.format().into()),
        )?;
        create_attr(
            &f,
            layout::WRITER_ATTR,
            &AttrValue::Str(self.writer_name.clone()),
        )?;
        Ok(f)
    }

    fn write_v1(&self, path: &Path, pm: PlateMjd, batch: &Batch) -> Result<usize, StoreError> {
        let h5 = |source| StoreError::Hdf5 {
            path: path.to_path_buf(),
            source,
        };
        let file = self.open_or_create(path).map_err(h5)?;
        let group = ensure_group(&file, &layout::plate_mjd_group(pm)).map_err(h5)?;
        write_header(&group, batch).map_err(h5)?;
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
                .with_data(&*c.data.records())
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
        merge_tables(path, &group, None, batch)?;
        Ok(added)
    }

    /// A new v2 file from the old file's content (`state`) and the batch.
    fn write_v2(
        &self,
        path: &Path,
        pm: PlateMjd,
        mut batch: Batch,
        state: StoreState,
    ) -> Result<usize, StoreError> {
        let old_arrays = state.arrays.unwrap_or_default();
        let added = batch
            .coadds
            .keys()
            .filter(|f| !batch.replace.contains(f))
            .count();
        let coadds =
            v2_coadds(&old_arrays.coadds, &mut batch).map_err(|(fiber, e)| StoreError::Grid {
                path: path.to_path_buf(),
                fiber,
                source: e,
            })?;
        let exposures =
            v2_exposures(old_arrays.exposures, &batch).map_err(|e| StoreError::Grid {
                path: path.to_path_buf(),
                fiber: 0,
                source: e,
            })?;
        // The header of the batch (it replaces the store's), else the store file's attributes.
        let attrs = header_attrs(&batch).unwrap_or_else(|| state.header.clone());
        let mut tables = Vec::new();
        for t in PlateTable::ALL {
            let mut table = match (state.tables.get(&t), batch.tables.get(&t)) {
                (None, None) => continue,
                (Some(old), _) => old.clone(),
                (None, Some(new)) => Table::new(new.columns().to_vec()),
            };
            if let Some(new) = batch.tables.get(&t) {
                table
                    .append(new, t.name())
                    .map_err(|source| StoreError::Table {
                        path: path.to_path_buf(),
                        source,
                    })?;
            }
            table.sort_by_fiber();
            tables.push((t.name().to_string(), table));
        }
        let group = store::merged::MergedGroup {
            group: model::GroupId::Plate(pm),
            row_key: String::new(),
            attrs,
            blocks: v2::blocks(&coadds, &exposures),
            tables,
        };
        drop(coadds);
        store::merged::write_as(path, &self.writer_name, Layout::V2.format(), &group).map_err(
            |source| StoreError::Merged {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Ok(added)
    }
}

/// The plate-MJD attributes of a batch's header: its cards, where they came from, and the coadd
/// units (None without a header).
fn header_attrs(batch: &Batch) -> Option<Vec<(String, AttrValue)>> {
    let (cards, from_plate) = batch.header.as_ref()?;
    let mut attrs = cards.clone();
    let source = if *from_plate {
        HEADER_FROM_PLATE
    } else {
        HEADER_FROM_SPEC
    };
    attrs.retain(|(k, _)| k != HEADER_SOURCE_ATTR);
    attrs.push((
        HEADER_SOURCE_ATTR.to_string(),
        AttrValue::Str(source.into()),
    ));
    for (field, unit) in coadd_units(batch.flux_unit.as_deref().unwrap_or(DEFAULT_FLUX_UNIT)) {
        let name = layout::coadd_unit_attr(field);
        attrs.retain(|(k, _)| *k != name);
        attrs.push((name, AttrValue::Str(unit)));
    }
    Some(attrs)
}

/// Replaces the plate-MJD attributes of a v1 group whole with the batch's header (an spPlate's
/// after a spec file's: no card of the old header stays behind).
fn write_header(group: &Group, batch: &Batch) -> hdf5::Result<()> {
    let Some(attrs) = header_attrs(batch) else {
        return Ok(());
    };
    store::attrs::delete_all(group)?;
    write_attrs(group, &attrs)
}

/// Each table: the old rows (from `old`, or from `group` itself when the file was copied) plus
/// the batch's new rows, sorted by FIBERID.
fn merge_tables(
    path: &Path,
    group: &Group,
    old: Option<&Group>,
    batch: &Batch,
) -> Result<(), StoreError> {
    let table_err = |source| StoreError::Table {
        path: path.to_path_buf(),
        source,
    };
    let source = old.unwrap_or(group);
    for t in PlateTable::ALL {
        let old_rows = match source.dataset(t.name()) {
            Ok(ds) => Some(Table::read(&ds).map_err(table_err)?),
            Err(_) => None,
        };
        let new_rows = batch.tables.get(&t);
        let mut table = match (old_rows, new_rows) {
            (None, None) => continue,
            (Some(o), None) if old.is_none() => {
                let _ = o;
                continue; // the copied file has it already
            }
            (Some(o), _) => o,
            (None, Some(n)) => Table::new(n.columns().to_vec()),
        };
        if let Some(n) = new_rows {
            table.append(n, t.name()).map_err(table_err)?;
        }
        table.sort_by_fiber();
        table.write(group, t.name()).map_err(table_err)?;
    }
    Ok(())
}

/// The v2 coadds of a plate-MJD: the old rows (those not replaced) and the batch's. The rows of
/// one spPlate alone go in as its images.
fn v2_coadds(
    old: &store::v2::CoaddArrays,
    batch: &mut Batch,
) -> Result<store::v2::CoaddArrays, (i32, store::v2::GridError)> {
    let kept_old: Vec<usize> = (0..old.rows())
        .filter(|&r| !batch.replace.contains(&old.fiberid[r]))
        .collect();
    if kept_old.is_empty() {
        if let Some(p) = whole_plate(batch) {
            let (coeff0, coeff1, npix, fibers) = (p.coeff0, p.coeff1, p.npix, p.fibers.clone());
            // The batch's rows all point into these images; once they are let go, the images
            // are taken as they are.
            let p = p.clone();
            batch.coadds.clear();
            let images = Arc::try_unwrap(p).unwrap_or_else(|shared| PlateImages {
                fibers: shared.fibers.clone(),
                wave: shared.wave.clone(),
                flux: shared.flux.clone(),
                ivar: shared.ivar.clone(),
                and_mask: shared.and_mask.clone(),
                or_mask: shared.or_mask.clone(),
                wavedisp: shared.wavedisp.clone(),
                sky: shared.sky.clone(),
                model: shared.model.clone(),
                ..*shared
            });
            return store::v2::CoaddArrays::from_images(
                coeff0,
                coeff1,
                npix,
                &fibers,
                images.into_fields(),
            )
            .map_err(|e| (0, e));
        }
    }
    let old_rows: Vec<(i32, Vec<CoaddRecord>)> = kept_old
        .iter()
        .map(|&r| (old.fiberid[r], old.row(r)))
        .collect();
    let new_rows: Vec<(i32, Cow<[CoaddRecord]>)> = batch
        .coadds
        .iter()
        .map(|(f, c)| (*f, c.data.records()))
        .collect();
    let rows: Vec<(i32, &[CoaddRecord])> = old_rows
        .iter()
        .map(|(f, r)| (*f, r.as_slice()))
        .chain(new_rows.iter().map(|(f, r)| (*f, &**r)))
        .collect();
    store::v2::CoaddArrays::from_rows(&rows)
}

/// The spPlate whose rows are all of the batch's coadds, if so.
fn whole_plate(batch: &Batch) -> Option<&Arc<PlateImages>> {
    let mut plate: Option<&Arc<PlateImages>> = None;
    for c in batch.coadds.values() {
        match (&c.data, plate) {
            (CoaddData::Plate(p, _), None) => plate = Some(p),
            (CoaddData::Plate(p, _), Some(q)) if Arc::ptr_eq(p, q) => {}
            _ => return None,
        }
    }
    plate.filter(|p| p.fibers.len() == batch.coadds.len())
}

/// The v2 exposure groups: the old rows and the batch's (new ones only, see `only_new`).
fn v2_exposures(
    mut old: BTreeMap<(u32, layout::Arm), store::v2::ExposureArrays>,
    batch: &Batch,
) -> Result<BTreeMap<(u32, layout::Arm), store::v2::ExposureArrays>, store::v2::GridError> {
    let mut new: BTreeMap<(u32, layout::Arm), Vec<&(i32, Exposure)>> = BTreeMap::new();
    for e in &batch.exposures {
        new.entry((e.1.expid, e.1.arm)).or_default().push(e);
    }
    for (key, rows) in new {
        let kept = old.remove(&key).unwrap_or_default();
        let kept_rows: Vec<(i32, i64, String, ExposureColumns)> = (0..kept.rows())
            .map(|r| {
                (
                    kept.fiberid[r],
                    kept.spectrograph[r],
                    kept.extname[r].clone(),
                    kept.row(r),
                )
            })
            .collect();
        let all: Vec<store::v2::ExposureRow> = kept_rows
            .iter()
            .map(|(f, s, n, c)| (*f, *s, n.as_str(), c))
            .chain(
                rows.iter()
                    .map(|(f, e)| (*f, e.spectrograph, e.extname.as_str(), &e.data)),
            )
            .collect();
        old.insert(key, store::v2::ExposureArrays::from_rows(&all)?);
    }
    Ok(old)
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
