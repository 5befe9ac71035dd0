//! The scan phase: each rank opens only its share of the files and describes what the output needs
//! from the requested fibers it finds there, then closes the files. One plate-MJD of the output may
//! draw on two files (the store, and an old subset being brought up to date), each in either
//! layout: each is read into a [`Part`], and the parts are put together by [`finish`]:
//! - per-fiber datasets of a v1 output become compact records;
//! - per plate-MJD, the groups and datasets to create (tables, v2 arrays) with their exact types;
//! - locally, how to fill each: byte ranges to copy (same layout in and out), bytes this rank
//!   already has (index arrays, padding), or rows to convert between layouts (v1 records ↔ v2 rows).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use hdf5::types::TypeDescriptor;
use hdf5::H5Type;
use model::layout::{self, Arm, Layout, PlateTable};
use model::{GroupId, PlateMjd};
use store::attrs::read_attrs;
use store::records::COADD_FIELDS;
use store::{AttrValue, CoaddRecord, ExposureField, FieldSet, Table};

use crate::error::{QueryError, Result};
use crate::pinned::Pinned;
use crate::records::{DatasetKind, DatasetRecord, DatasetSpec, GroupSpec, PlateMeta};

pub use store::files::StoreFile;

/// Lists the store's files, sorted by plate-MJD (the same list, in the same order, on every rank).
pub fn list_store(dir: &Path) -> Result<Vec<StoreFile>> {
    store::files::list(dir).map_err(|e| QueryError::io(dir, "cannot list the store", e))
}

/// The layout of a store (or subset) file.
pub fn file_layout(path: &Path) -> Result<Layout> {
    let file = hdf5::File::open(path)
        .map_err(|e| QueryError::hdf5(path, "cannot open the store file", e))?;
    store::reader::layout_of(&file).ok_or_else(|| QueryError::Foreign {
        path: path.to_path_buf(),
    })
}

/// A piece of one output dataset: `at` is the byte offset within the dataset.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Bytes copied from a source file.
    Copy {
        source: u32,
        src: u64,
        at: u64,
        len: u64,
    },
    /// Bytes this rank has (index arrays, padding).
    Bytes { at: u64, bytes: Vec<u8> },
}

/// How padding pixels of a converted row are filled.
#[derive(Debug, Clone, Copy)]
pub enum Pad {
    /// Coadds: WAVE the grid's wavelength (grid index of column 0), masks NODATA, the rest 0.
    Coadd { index0: i64 },
    /// Exposures: masks NODATA, the rest 0.
    Exposure { fields: FieldSet },
}

/// One v1 dataset (records of 4-byte fields) becoming row `row` of one v2 array per field.
#[derive(Debug, Clone)]
pub struct Spread {
    pub source: u32,
    pub src: u64,
    pub len: u64,
    pub row: u64,
    pub width: u64,
    pub pix0: u64,
    /// The spec index of the output array of each field, in field order.
    pub datasets: Vec<usize>,
    pub pad: Pad,
}

/// Identifies a per-fiber dataset of a v1 output within its plate-MJD: (fiber, expid, kind).
pub type RecordKey = (i32, u32, u8);

/// What a rank found for one plate-MJD of the output.
#[derive(Debug, Default)]
pub struct Scanned {
    pub records: Vec<DatasetRecord>,
    /// Row keys found (fibers, TARGET_INDEX), sorted.
    pub found: Vec<i64>,
    pub meta: Option<PlateMeta>,
    /// For each dataset of `meta.datasets`, in order: its pieces.
    pub fills: Vec<Vec<Piece>>,
    pub spreads: Vec<Spread>,
    /// v1 output from a v2 file: for each record, its source and where each field's real pixels
    /// start there.
    pub gathers: HashMap<RecordKey, (u32, Vec<u64>)>,
}

fn h5<'a>(path: &'a Path, what: impl Into<String>) -> impl FnOnce(hdf5::Error) -> QueryError + 'a {
    let what = what.into();
    move |e| QueryError::hdf5(path, what, e)
}

fn raw(path: &Path) -> impl FnOnce(store::fast::RawError) -> QueryError + '_ {
    move |source| QueryError::Raw {
        path: path.to_path_buf(),
        source,
    }
}

/// The encoded file type of a plain element type.
fn encoded(d: &TypeDescriptor, path: &Path) -> Result<Vec<u8>> {
    let t = hdf5::Datatype::from_descriptor(d).map_err(h5(path, "datatype"))?;
    store::fast::encode_type(t.id()).map_err(raw(path))
}

fn elem(int: bool) -> TypeDescriptor {
    if int {
        i32::type_descriptor()
    } else {
        f32::type_descriptor()
    }
}

// ------------------------------------------------------------------------------------------------
// Reading one file into a part
// ------------------------------------------------------------------------------------------------

/// Where a spectrum's pixels are in its source file.
#[derive(Debug, Clone)]
enum Pixels {
    /// A v1 dataset of records (all fields interleaved) at this offset.
    Records(u64),
    /// v2 rows: the offset of the first real pixel in each field's array.
    Rows(Vec<u64>),
}

/// One coadd of a part.
#[derive(Debug, Clone)]
struct CoaddRow {
    fiber: i32,
    /// Grid index of the first real pixel.
    i0: i64,
    npix: u64,
    pixels: Pixels,
}

/// One exposure of one camera of a fiber, in a part.
#[derive(Debug, Clone)]
struct ExposureRow {
    fiber: i32,
    fields: FieldSet,
    npix: u64,
    attrs: Vec<(String, AttrValue)>,
    pixels: Pixels,
}

/// One table of a part: its type and attributes, and the source offset of each selected row.
#[derive(Debug, Clone)]
struct TablePart {
    table: PlateTable,
    dtype: Vec<u8>,
    attrs: Vec<(String, AttrValue)>,
    row_size: u64,
    rows: Vec<(i32, u64)>,
}

/// What one file holds of the requested fibers of one plate-MJD.
#[derive(Debug)]
struct Part {
    source: u32,
    attrs: Vec<(String, AttrValue)>,
    coadds: Vec<CoaddRow>,
    /// v1 coadds' own attributes (none in stores written since units moved to the group).
    coadd_attrs: HashMap<i32, Vec<(String, AttrValue)>>,
    exposures: BTreeMap<(u32, Arm), Vec<ExposureRow>>,
    tables: Vec<TablePart>,
}

/// Reads what a file (store or subset) holds of the fibers `fibers` (sorted) of `pm`; None when
/// it holds none of them. `pinned` and `file` are the plain and HDF5 handles of one version of the
/// file at `path` (see [`Pinned`]), whatever `path` names by now.
fn read_part(
    path: &Path,
    (pinned, file): (&std::fs::File, &hdf5::File),
    source: u32,
    pm: PlateMjd,
    fibers: &[i32],
) -> Result<Option<Part>> {
    let input = store::reader::layout_of(file).ok_or_else(|| QueryError::Foreign {
        path: path.to_path_buf(),
    })?;
    let group_path = layout::plate_mjd_group(pm);
    if !file.link_exists(&group_path) {
        return Ok(None);
    }
    let group = file.group(&group_path).map_err(h5(path, &group_path))?;
    let mut part = Part {
        source,
        attrs: Vec::new(),
        coadds: Vec::new(),
        coadd_attrs: HashMap::new(),
        exposures: BTreeMap::new(),
        tables: Vec::new(),
    };
    match input {
        Layout::V1 => read_v1(path, pinned, &group, pm, fibers, &mut part)?,
        Layout::V2 => read_v2(path, &group, fibers, &mut part)?,
    }
    if part.coadds.is_empty() {
        return Ok(None);
    }
    let found: HashSet<i32> = part.coadds.iter().map(|c| c.fiber).collect();
    let members = group.member_names().map_err(h5(path, &group_path))?;
    for t in PlateTable::ALL {
        if members.iter().any(|m| m == t.name()) {
            let ds = group.dataset(t.name()).map_err(h5(path, t.name()))?;
            part.tables.push(read_table(
                path,
                &layout::table_path(pm, t),
                &ds,
                t,
                &found,
            )?);
        }
    }
    part.attrs = read_attrs(&group).map_err(h5(path, &group_path))?;
    Ok(Some(part))
}

/// The (length, byte offset) of a v1 dataset.
fn dataset_place(file: &Path, path: &str, info: store::fast::DatasetInfo) -> Result<(u64, u64)> {
    match info.offset {
        Some(o) => Ok((info.len, o)),
        None if info.len == 0 => Ok((0, 0)),
        None => Err(QueryError::store(
            file,
            format!("{path} is not stored contiguously (chunked, compact or unallocated)"),
        )),
    }
}

fn read_v1(
    path: &Path,
    pinned: &std::fs::File,
    group: &hdf5::Group,
    pm: PlateMjd,
    fibers: &[i32],
    part: &mut Part,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let coadd_type = store::fast::type_of(&CoaddRecord::type_descriptor()).map_err(raw(path))?;
    for &fiber in fibers {
        // Absent is "not in the store"; present but unreadable is an error of the store file.
        let name = fiber.to_string();
        if !group.link_exists(&name) {
            continue;
        }
        let cpath = layout::coadd_path(pm, fiber);
        let rel = format!("{name}/{}", layout::COADD);
        let coadd = match group.dataset(&rel) {
            Ok(ds) => ds,
            Err(e) => {
                // The slow path, on failure only: a fiber group without a coadd holds no spectrum
                // of this fiber; a group or coadd that cannot be read is an error of the file.
                let members = group
                    .group(&name)
                    .and_then(|g| g.member_names())
                    .map_err(h5(path, layout::fiber_group(pm, fiber)))?;
                if !members.iter().any(|m| m == layout::COADD) {
                    continue;
                }
                return Err(QueryError::hdf5(path, cpath, e));
            }
        };
        let info = store::fast::dataset_info(&coadd, coadd_type.id()).map_err(raw(path))?;
        if !info.type_matches {
            return Err(QueryError::store(
                path,
                format!("{cpath} is not a coadd record dataset"),
            ));
        }
        let (len, src) = dataset_place(path, &cpath, info)?;
        if info.has_attrs {
            part.coadd_attrs
                .insert(fiber, read_attrs(&coadd).map_err(h5(path, &cpath))?);
        }
        // The grid index of the first pixel, from its WAVE (the first field), read as 4 bytes; a
        // v1 output never needs it, a v2 output checks every pixel when it converts the row.
        let i0 = if len > 0 {
            let mut w = [0u8; 4];
            pinned
                .read_exact_at(&mut w, src)
                .map_err(|e| QueryError::io(path, "cannot read a coadd", e))?;
            let loglam = (f32::from_ne_bytes(w) as f64).log10();
            store::v2::grid_index_of(loglam).unwrap_or(i64::MIN)
        } else {
            i64::MIN
        };
        part.coadds.push(CoaddRow {
            fiber,
            i0,
            npix: len,
            pixels: Pixels::Records(src),
        });
        if group.link_exists(&format!("{name}/{}", layout::EXPOSURES)) {
            let fiber_group = group
                .group(&name)
                .map_err(h5(path, layout::fiber_group(pm, fiber)))?;
            read_v1_exposures(path, &fiber_group, pm, fiber, part)?;
        }
    }
    Ok(())
}

fn read_v1_exposures(
    file: &Path,
    fiber_group: &hdf5::Group,
    pm: PlateMjd,
    fiber: i32,
    part: &mut Part,
) -> Result<()> {
    let gpath = layout::exposures_group(pm, fiber);
    let exposures = fiber_group
        .group(layout::EXPOSURES)
        .map_err(h5(file, &gpath))?;
    let mut expids: Vec<u32> = exposures
        .member_names()
        .map_err(h5(file, &gpath))?
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    expids.sort_unstable();
    for expid in expids {
        let epath = layout::exposure_group(pm, fiber, expid);
        let exposure = exposures
            .group(&expid.to_string())
            .map_err(h5(file, &epath))?;
        let arms = exposure.member_names().map_err(h5(file, &epath))?;
        for arm in [Arm::Blue, Arm::Red] {
            if !arms.iter().any(|a| a == arm.name()) {
                continue;
            }
            let apath = layout::exposure_path(pm, fiber, expid, arm);
            let ds = exposure.dataset(arm.name()).map_err(h5(file, &apath))?;
            let d = ds
                .dtype()
                .and_then(|t| t.to_descriptor())
                .map_err(h5(file, &apath))?;
            let fields = FieldSet::from_descriptor(&d).ok_or_else(|| {
                QueryError::store(file, format!("{apath} is not an exposure record dataset"))
            })?;
            let info = store::fast::DatasetInfo {
                len: ds.size() as u64,
                offset: ds.offset(),
                type_matches: true,
                has_attrs: true,
            };
            let (len, src) = dataset_place(file, &apath, info)?;
            part.exposures
                .entry((expid, arm))
                .or_default()
                .push(ExposureRow {
                    fiber,
                    fields,
                    npix: len,
                    attrs: read_attrs(&ds).map_err(h5(file, &apath))?,
                    pixels: Pixels::Records(src),
                });
        }
    }
    Ok(())
}

/// One v2 group (coadds, or one camera of one exposure) of a file.
struct V2Group {
    fiberid: Vec<i32>,
    pix0: Vec<i32>,
    npix: Vec<i32>,
    /// (name, byte offset, bytes per row).
    arrays: HashMap<String, (u64, u64)>,
    attrs: Vec<(String, AttrValue)>,
}

fn read_i32s(file: &Path, g: &hdf5::Group, name: &str) -> Result<Vec<i32>> {
    let ds = g.dataset(name).map_err(h5(file, name))?;
    ds.read_raw::<i32>().map_err(h5(file, name))
}

fn v2_group(file: &Path, g: &hdf5::Group, prefix: &str) -> Result<V2Group> {
    let fiberid = read_i32s(file, g, layout::FIBERID)?;
    let mut arrays = HashMap::new();
    for name in g.member_names().map_err(h5(file, prefix))? {
        let dpath = format!("{prefix}/{name}");
        let ds = g.dataset(&name).map_err(h5(file, &dpath))?;
        let shape = ds.shape();
        if shape.first().copied() != Some(fiberid.len()) {
            return Err(QueryError::store(
                file,
                format!("{dpath} does not have one row per fiber"),
            ));
        }
        let elem = ds.dtype().map_err(h5(file, &dpath))?.size() as u64;
        let row_bytes = elem * shape[1..].iter().product::<usize>() as u64;
        let offset = match ds.offset() {
            Some(o) => o,
            None if ds.size() == 0 => 0,
            None => {
                return Err(QueryError::store(
                    file,
                    format!("{dpath} is not stored contiguously"),
                ))
            }
        };
        arrays.insert(name, (offset, row_bytes));
    }
    Ok(V2Group {
        pix0: read_i32s(file, g, layout::PIX0)?,
        npix: read_i32s(file, g, layout::NPIX)?,
        fiberid,
        arrays,
        attrs: read_attrs(g).map_err(h5(file, prefix))?,
    })
}

/// Where the real pixels of row `r` start in each named array of a v2 group.
fn row_starts(file: &Path, g: &V2Group, names: &[&str], r: usize) -> Result<Vec<u64>> {
    names
        .iter()
        .map(|n| {
            g.arrays
                .get(*n)
                .map(|(off, rb)| off + r as u64 * rb + 4 * g.pix0[r].max(0) as u64)
                .ok_or_else(|| QueryError::store(file, format!("a v2 group lacks the {n} array")))
        })
        .collect()
}

fn read_v2(path: &Path, group: &hdf5::Group, fibers: &[i32], part: &mut Part) -> Result<()> {
    if !group.link_exists(layout::COADDS) {
        return Ok(());
    }
    let wanted: HashSet<i32> = fibers.iter().copied().collect();
    let g = group
        .group(layout::COADDS)
        .map_err(h5(path, layout::COADDS))?;
    let coadds = v2_group(path, &g, layout::COADDS)?;
    let index0 = store::v2::grid_index0(&coadds.attrs)
        .ok_or_else(|| QueryError::store(path, "a v2 coadds group without LOGLAM0"))?;

    let names: Vec<&str> = COADD_FIELDS.iter().map(|(n, _)| *n).collect();
    let mut rows: Vec<usize> = (0..coadds.fiberid.len())
        .filter(|&r| wanted.contains(&coadds.fiberid[r]))
        .collect();
    rows.sort_by_key(|&r| coadds.fiberid[r]);
    for r in rows {
        part.coadds.push(CoaddRow {
            fiber: coadds.fiberid[r],
            i0: index0 + coadds.pix0[r] as i64,
            npix: coadds.npix[r] as u64,
            pixels: Pixels::Rows(row_starts(path, &coadds, &names, r)?),
        });
    }
    let found: HashSet<i32> = part.coadds.iter().map(|c| c.fiber).collect();
    if found.is_empty() || !group.link_exists(layout::EXPOSURES) {
        return Ok(());
    }
    let top = group
        .group(layout::EXPOSURES)
        .map_err(h5(path, layout::EXPOSURES))?;
    for name in top.member_names().map_err(h5(path, layout::EXPOSURES))? {
        let Ok(expid) = name.parse::<u32>() else {
            continue;
        };
        let eg = top.group(&name).map_err(h5(path, layout::EXPOSURES))?;
        for arm in [Arm::Blue, Arm::Red] {
            if !eg.link_exists(arm.name()) {
                continue;
            }
            let prefix = layout::exposure_rows_group(expid, arm);
            let ag = eg.group(arm.name()).map_err(h5(path, &prefix))?;
            let g = v2_group(path, &ag, &prefix)?;
            let rows: Vec<usize> = (0..g.fiberid.len())
                .filter(|&r| found.contains(&g.fiberid[r]))
                .collect();
            if rows.is_empty() {
                continue;
            }
            let fields = ExposureField::ALL
                .into_iter()
                .filter(|f| g.arrays.contains_key(f.name()))
                .fold(FieldSet::default(), |s, f| s.with(f));
            let fnames: Vec<&str> = fields.fields().map(ExposureField::name).collect();
            let spectrograph = ag
                .dataset(layout::SPECTROGRAPH_ATTR)
                .and_then(|d| d.read_raw::<i64>())
                .map_err(h5(path, &prefix))?;
            let extname = read_strings(path, &ag, &prefix)?;
            for r in rows {
                part.exposures
                    .entry((expid, arm))
                    .or_default()
                    .push(ExposureRow {
                        fiber: g.fiberid[r],
                        fields,
                        npix: g.npix[r] as u64,
                        attrs: vec![
                            (
                                layout::EXTNAME_ATTR.to_string(),
                                AttrValue::Str(extname.get(r).cloned().unwrap_or_default()),
                            ),
                            (
                                layout::SPECTROGRAPH_ATTR.to_string(),
                                AttrValue::Int(spectrograph.get(r).copied().unwrap_or(0)),
                            ),
                        ],
                        pixels: Pixels::Rows(row_starts(path, &g, &fnames, r)?),
                    });
            }
        }
    }
    Ok(())
}

/// The EXTNAME strings of a v2 exposure group.
fn read_strings(file: &Path, g: &hdf5::Group, prefix: &str) -> Result<Vec<String>> {
    let ds = g.dataset(layout::EXTNAME_ATTR).map_err(h5(file, prefix))?;
    let d = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5(file, prefix))?;
    let TypeDescriptor::FixedAscii(n) = d else {
        return Err(QueryError::store(
            file,
            format!("{prefix}/EXTNAME is not a fixed-length string array"),
        ));
    };
    let t = hdf5::Datatype::from_descriptor(&d).map_err(h5(file, prefix))?;
    let bytes = store::raw::read_all(&ds, &t, ds.size() * n).map_err(h5(file, prefix))?;
    Ok(store::v2::unpack_strings(&bytes, n))
}

/// The rows of one table that belong to the found fibers.
fn read_table(
    file: &Path,
    tpath: &str,
    ds: &hdf5::Dataset,
    t: PlateTable,
    found: &HashSet<i32>,
) -> Result<TablePart> {
    let table = Table::read(ds).map_err(|source| QueryError::Table {
        path: file.to_path_buf(),
        source,
    })?;
    let row_size = ds.dtype().map_err(h5(file, tpath))?.size() as u64;
    let ids = table.fiber_ids();
    let keep: Vec<(i32, u64)> = (0..table.num_rows())
        .filter_map(|r| match &ids {
            Some(ids) => found.contains(&ids[r]).then_some((ids[r], r as u64)),
            None => Some((0, r as u64)),
        })
        .collect();
    let base = match ds.offset() {
        Some(o) => o,
        None if keep.is_empty() => 0,
        None => {
            return Err(QueryError::store(
                file,
                format!("{tpath} is not stored contiguously"),
            ))
        }
    };
    Ok(TablePart {
        table: t,
        dtype: store::fast::dataset_type(ds).map_err(raw(file))?,
        attrs: read_attrs(ds).map_err(h5(file, tpath))?,
        row_size,
        rows: keep
            .into_iter()
            .map(|(f, r)| (f, base + r * row_size))
            .collect(),
    })
}

// ------------------------------------------------------------------------------------------------
// Putting parts together
// ------------------------------------------------------------------------------------------------

/// Where the requested spectra of one store group of the output are read from: each source file
/// with the row keys (sorted) taken from it (a store file; an old subset for fibers it already has).
pub struct PlateSources<'a> {
    pub group: GroupId,
    pub sources: Vec<(u32, &'a Path, Vec<i64>)>,
}

/// Scans the sources of one group for an output in layout `out` (SDSS-I–IV groups; the others are
/// in the merged layout whatever `out` is), each from the file pinned for it (opened now if it is
/// not yet): the copy reads the same files.
pub fn scan_plate(plate: &PlateSources, out: Layout, pinned: &mut Pinned) -> Result<Scanned> {
    let pm = match plate.group {
        GroupId::Plate(pm) => pm,
        group => {
            let Some((source, path, rows)) = plate.sources.first() else {
                return Ok(Scanned::default());
            };
            let (_, file) = pinned.pin(*source, path)?;
            return crate::merged_scan::scan_merged(path, file, *source, group, rows);
        }
    };
    let mut parts = Vec::new();
    for (source, path, fibers) in &plate.sources {
        let opened = pinned.pin(*source, path)?;
        let fibers: Vec<i32> = fibers.iter().map(|&f| f as i32).collect();
        if let Some(p) = read_part(path, opened, *source, pm, &fibers)? {
            parts.push(p);
        }
    }
    finish(pm, parts, out, plate.sources.first().map(|s| s.1))
}

/// The distinct attribute lists of one plate-MJD's datasets (index 0: none).
struct AttrSets(Vec<Vec<(String, AttrValue)>>);

impl AttrSets {
    fn index(&mut self, file: &Path, attrs: Vec<(String, AttrValue)>) -> Result<u16> {
        // Compared as debug text: float attributes (NaN) are then equal to themselves.
        let key = format!("{attrs:?}");
        let i = match self.0.iter().position(|a| format!("{a:?}") == key) {
            Some(i) => i,
            None => {
                self.0.push(attrs);
                self.0.len() - 1
            }
        };
        u16::try_from(i).map_err(|_| {
            QueryError::store(
                file,
                "more than 65535 distinct dataset attribute sets in one plate-MJD",
            )
        })
    }
}

/// The output of one plate-MJD from its parts (the first part's attributes and table types win).
fn finish(pm: PlateMjd, parts: Vec<Part>, out: Layout, first: Option<&Path>) -> Result<Scanned> {
    let file = first.unwrap_or(Path::new("store"));
    if parts.is_empty() {
        return Ok(Scanned::default());
    }
    let mut found: Vec<i64> = parts
        .iter()
        .flat_map(|p| p.coadds.iter().map(|c| i64::from(c.fiber)))
        .collect();
    found.sort_unstable();
    let mut s = Scanned {
        found,
        ..Scanned::default()
    };
    let mut m = PlateMeta {
        group: GroupId::Plate(pm),
        attrs: parts[0].attrs.clone(),
        attr_sets: vec![Vec::new()],
        groups: Vec::new(),
        datasets: Vec::new(),
    };
    match out {
        Layout::V1 => finish_v1(file, pm, &parts, &mut m, &mut s)?,
        Layout::V2 => finish_v2(file, &parts, &mut m, &mut s)?,
    }
    finish_tables(file, &parts, &mut m, &mut s)?;
    s.meta = Some(m);
    Ok(s)
}

/// v1 output: a record per coadd and exposure; bytes copied from v1 files, gathered from v2 rows.
fn finish_v1(
    file: &Path,
    pm: PlateMjd,
    parts: &[Part],
    m: &mut PlateMeta,
    s: &mut Scanned,
) -> Result<()> {
    let mut sets = AttrSets(std::mem::take(&mut m.attr_sets));
    for p in parts {
        let base = DatasetRecord {
            plate: pm.plate,
            mjd: pm.mjd,
            source: p.source,
            ..Default::default()
        };
        for c in &p.coadds {
            let attrs = p.coadd_attrs.get(&c.fiber).cloned().unwrap_or_default();
            let mut r = DatasetRecord {
                fiber: c.fiber,
                len: c.npix,
                attrs: sets.index(file, attrs)?,
                ..base
            };
            match &c.pixels {
                Pixels::Records(src) => r.src_offset = *src,
                Pixels::Rows(srcs) => {
                    s.gathers.insert(
                        (c.fiber, 0, DatasetKind::Coadd as u8),
                        (p.source, srcs.clone()),
                    );
                }
            }
            s.records.push(r);
        }
        for ((expid, arm), rows) in &p.exposures {
            let kind = DatasetKind::from_arm(*arm) as u8;
            for e in rows {
                let mut r = DatasetRecord {
                    fiber: e.fiber,
                    expid: *expid,
                    kind,
                    fields: e.fields.0,
                    len: e.npix,
                    attrs: sets.index(file, e.attrs.clone())?,
                    ..base
                };
                match &e.pixels {
                    Pixels::Records(src) => r.src_offset = *src,
                    Pixels::Rows(srcs) => {
                        s.gathers
                            .insert((e.fiber, *expid, kind), (p.source, srcs.clone()));
                    }
                }
                s.records.push(r);
            }
        }
    }
    s.records.sort_by_key(DatasetRecord::sort_key);
    m.attr_sets = sets.0;
    Ok(())
}

/// The pieces of row `row` of the arrays `specs` (one per field, `width` values each) for a
/// spectrum of `npix` pixels at column `col`: its real pixels copied (from v2 rows) or converted
/// (from v1 records), and the padding around them.
#[allow(clippy::too_many_arguments)]
fn place_row(
    s: &mut Scanned,
    source: u32,
    pixels: &Pixels,
    row: u64,
    width: u64,
    col: u64,
    npix: u64,
    specs: &[usize],
    pad: Pad,
) {
    match pixels {
        Pixels::Records(src) => s.spreads.push(Spread {
            source,
            src: *src,
            len: npix,
            row,
            width,
            pix0: col,
            datasets: specs.to_vec(),
            pad,
        }),
        Pixels::Rows(srcs) => {
            for (f, (&spec, &src)) in specs.iter().zip(srcs).enumerate() {
                let start = 4 * row * width;
                let fill = &mut s.fills[spec];
                if npix > 0 {
                    fill.push(Piece::Copy {
                        source,
                        src,
                        at: start + 4 * col,
                        len: 4 * npix,
                    });
                }
                for (a, b) in [(0, col), (col + npix, width)] {
                    if b > a {
                        let bytes: Vec<u32> =
                            (a..b).map(|j| crate::copy::pad_value(&pad, f, j)).collect();
                        fill.push(Piece::Bytes {
                            at: start + 4 * a,
                            bytes: bytemuck::cast_slice(&bytes).to_vec(),
                        });
                    }
                }
            }
        }
    }
}

/// A dataset to create and its (initially empty) pieces; returns its index.
fn add_spec(
    m: &mut PlateMeta,
    s: &mut Scanned,
    path: String,
    dtype: Vec<u8>,
    shape: Vec<u64>,
) -> usize {
    m.datasets.push(DatasetSpec {
        path,
        dtype,
        shape,
        attrs: Vec::new(),
    });
    s.fills.push(Vec::new());
    m.datasets.len() - 1
}

/// A 1-D array whose bytes this rank has.
fn add_array(
    m: &mut PlateMeta,
    s: &mut Scanned,
    path: String,
    dtype: Vec<u8>,
    bytes: Vec<u8>,
    n: u64,
) {
    let i = add_spec(m, s, path, dtype, vec![n]);
    s.fills[i].push(Piece::Bytes { at: 0, bytes });
}

/// v2 output: the coadds on the tightest grid holding every selected row, and per exposure and
/// camera the rows of the fibers that have it, padded to the longest.
fn finish_v2(file: &Path, parts: &[Part], m: &mut PlateMeta, s: &mut Scanned) -> Result<()> {
    let mut coadds: Vec<(u32, &CoaddRow)> = parts
        .iter()
        .flat_map(|p| p.coadds.iter().map(move |c| (p.source, c)))
        .collect();
    coadds.sort_by_key(|c| c.1.fiber);
    for (_, c) in &coadds {
        if c.i0 == i64::MIN {
            return Err(QueryError::store(
                file,
                format!(
                    "fiber {}: its coadd is not on the 1e-4 log-lambda grid (the v2 layout needs it)",
                    c.fiber
                ),
            ));
        }
    }
    let index0 = coadds
        .iter()
        .map(|c| c.1.i0)
        .min()
        .expect("a part has coadds");
    let end = coadds
        .iter()
        .map(|c| c.1.i0 + c.1.npix as i64)
        .max()
        .expect("a part has coadds");
    let width = (end - index0) as u64;
    let n = coadds.len() as u64;
    let prefix = layout::COADDS;
    m.groups.push(GroupSpec {
        path: prefix.to_string(),
        attrs: store::v2::grid_attrs(index0),
    });
    let mut specs = Vec::with_capacity(8);
    for (name, int) in COADD_FIELDS {
        let dtype = encoded(&elem(int), file)?;
        specs.push(add_spec(
            m,
            s,
            format!("{prefix}/{name}"),
            dtype,
            vec![n, width],
        ));
    }
    let pad = Pad::Coadd { index0 };
    for (row, (source, c)) in coadds.iter().enumerate() {
        let col = (c.i0 - index0) as u64;
        place_row(
            s, *source, &c.pixels, row as u64, width, col, c.npix, &specs, pad,
        );
    }
    let i32s = encoded(&elem(true), file)?;
    let fiberid: Vec<i32> = coadds.iter().map(|c| c.1.fiber).collect();
    let pix0: Vec<i32> = coadds.iter().map(|c| (c.1.i0 - index0) as i32).collect();
    let npix: Vec<i32> = coadds.iter().map(|c| c.1.npix as i32).collect();
    for (name, values) in [
        (layout::FIBERID, fiberid),
        (layout::PIX0, pix0),
        (layout::NPIX, npix),
    ] {
        let bytes = bytemuck::cast_slice(&values).to_vec();
        add_array(m, s, format!("{prefix}/{name}"), i32s.clone(), bytes, n);
    }

    let mut exposures: BTreeMap<(u32, Arm), Vec<(u32, &ExposureRow)>> = BTreeMap::new();
    for p in parts {
        for (key, rows) in &p.exposures {
            exposures
                .entry(*key)
                .or_default()
                .extend(rows.iter().map(|r| (p.source, r)));
        }
    }
    if exposures.is_empty() {
        return Ok(());
    }
    m.groups.push(GroupSpec {
        path: layout::EXPOSURES.to_string(),
        attrs: Vec::new(),
    });
    let mut last_expid = None;
    for ((expid, arm), mut rows) in exposures {
        rows.sort_by_key(|r| r.1.fiber);
        if last_expid != Some(expid) {
            m.groups.push(GroupSpec {
                path: format!("{}/{expid}", layout::EXPOSURES),
                attrs: Vec::new(),
            });
            last_expid = Some(expid);
        }
        let prefix = layout::exposure_rows_group(expid, arm);
        m.groups.push(GroupSpec {
            path: prefix.clone(),
            attrs: Vec::new(),
        });
        let fields = rows[0].1.fields;
        if rows.iter().any(|(_, e)| e.fields != fields) {
            return Err(QueryError::store(
                file,
                format!("{prefix}: the exposures of one camera-exposure have different fields"),
            ));
        }
        let n = rows.len() as u64;
        let width = rows.iter().map(|(_, e)| e.npix).max().unwrap_or(0);
        let mut specs = Vec::new();
        for f in fields.fields() {
            let dtype = encoded(&elem(f.is_int()), file)?;
            specs.push(add_spec(
                m,
                s,
                format!("{prefix}/{}", f.name()),
                dtype,
                vec![n, width],
            ));
        }
        let pad = Pad::Exposure { fields };
        for (row, (source, e)) in rows.iter().enumerate() {
            place_row(
                s, *source, &e.pixels, row as u64, width, 0, e.npix, &specs, pad,
            );
        }
        let attr = |e: &ExposureRow, name: &str| {
            e.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let fiberid: Vec<i32> = rows.iter().map(|r| r.1.fiber).collect();
        let npix: Vec<i32> = rows.iter().map(|r| r.1.npix as i32).collect();
        let spectrograph: Vec<i64> = rows
            .iter()
            .map(|(_, e)| match attr(e, layout::SPECTROGRAPH_ATTR) {
                Some(AttrValue::Int(v)) => v,
                _ => 0,
            })
            .collect();
        let extname: Vec<String> = rows
            .iter()
            .map(|(_, e)| match attr(e, layout::EXTNAME_ATTR) {
                Some(AttrValue::Str(v)) => v,
                _ => String::new(),
            })
            .collect();
        let i32s = encoded(&elem(true), file)?;
        add_array(
            m,
            s,
            format!("{prefix}/{}", layout::FIBERID),
            i32s.clone(),
            bytemuck::cast_slice(&fiberid).to_vec(),
            n,
        );
        add_array(
            m,
            s,
            format!("{prefix}/{}", layout::PIX0),
            i32s.clone(),
            vec![0u8; 4 * n as usize],
            n,
        );
        add_array(
            m,
            s,
            format!("{prefix}/{}", layout::NPIX),
            i32s,
            bytemuck::cast_slice(&npix).to_vec(),
            n,
        );
        let i64s = encoded(&i64::type_descriptor(), file)?;
        add_array(
            m,
            s,
            format!("{prefix}/{}", layout::SPECTROGRAPH_ATTR),
            i64s,
            bytemuck::cast_slice(&spectrograph).to_vec(),
            n,
        );
        let (w, names) = store::v2::pack_strings(&extname);
        let strings = encoded(&TypeDescriptor::FixedAscii(w), file)?;
        add_array(
            m,
            s,
            format!("{prefix}/{}", layout::EXTNAME_ATTR),
            strings,
            names,
            n,
        );
    }
    Ok(())
}

/// The tables: the rows of every part, sorted by FIBERID (stable), copied as bytes; the first
/// part's type and attributes. A part whose table type differs cannot share the table.
fn finish_tables(file: &Path, parts: &[Part], m: &mut PlateMeta, s: &mut Scanned) -> Result<()> {
    for t in PlateTable::ALL {
        let mut it = parts.iter().flat_map(|p| {
            p.tables
                .iter()
                .filter(move |x| x.table == t)
                .map(move |x| (p.source, x))
        });
        let Some((_, first)) = it.clone().next() else {
            continue;
        };
        let mut rows: Vec<(i32, u32, u64)> = Vec::new();
        for (source, tp) in it.by_ref() {
            if tp.dtype != first.dtype {
                return Err(QueryError::store(
                    file,
                    format!(
                        "table {}: the store and the old subset have different column types (refresh the subset from the store: run the query without --update/--add)",
                        t.name()
                    ),
                ));
            }
            rows.extend(tp.rows.iter().map(|&(f, src)| (f, source, src)));
        }
        rows.sort_by_key(|r| r.0);
        let i = add_spec(
            m,
            s,
            t.name().to_string(),
            first.dtype.clone(),
            vec![rows.len() as u64],
        );
        m.datasets[i].attrs = first.attrs.clone();
        s.fills[i] = rows
            .iter()
            .enumerate()
            .map(|(j, &(_, source, src))| Piece::Copy {
                source,
                src,
                at: j as u64 * first.row_size,
                len: first.row_size,
            })
            .collect();
    }
    Ok(())
}

/// The fibers of each plate-MJD a file (an old subset) holds.
pub fn fibers_in(path: &Path) -> Result<BTreeMap<PlateMjd, Vec<i32>>> {
    let file = hdf5::File::open(path).map_err(h5(path, "cannot open"))?;
    store::reader::layout_of(&file).ok_or_else(|| QueryError::Foreign {
        path: path.to_path_buf(),
    })?;
    let mut out = BTreeMap::new();
    let root = file.as_group().map_err(h5(path, "/"))?;
    for plate in root.member_names().map_err(h5(path, "/"))? {
        let Ok(p) = plate.parse::<i32>() else {
            continue;
        };
        let pg = root.group(&plate).map_err(h5(path, &plate))?;
        for mjd in pg.member_names().map_err(h5(path, &plate))? {
            let Ok(mj) = mjd.parse::<i32>() else { continue };
            let pm = PlateMjd { plate: p, mjd: mj };
            let fibers: Vec<i32> = store::reader::inventory(&file, pm)
                .map_err(h5(path, layout::plate_mjd_group(pm)))?
                .into_iter()
                .map(|e| e.fiber)
                .collect();
            out.insert(pm, fibers);
        }
    }
    Ok(out)
}
