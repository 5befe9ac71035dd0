//! The scan phase: each rank opens only its share of the store files and describes what the output
//! needs from the requested fibers it finds there, then closes the file:
//! - per-fiber datasets of a v1 output as compact records;
//! - per plate-MJD, the groups and datasets to create (tables, v2 arrays) with their exact types;
//! - locally, how to fill each one: byte runs to copy (same layout in and out), small arrays it
//!   already holds, or rows to convert between the layouts (v1 records ↔ v2 rows).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;
use hdf5::H5Type;
use model::layout::{self, Arm, Layout, PlateTable};
use model::PlateMjd;
use store::attrs::read_attrs;
use store::records::COADD_FIELDS;
use store::{AttrValue, CoaddRecord, ExposureField, FieldSet, Table};

use crate::error::{QueryError, Result};
use crate::records::{DatasetKind, DatasetRecord, DatasetSpec, GroupSpec, PlateMeta};

/// One file of the store.
#[derive(Debug, Clone)]
pub struct StoreFile {
    pub pm: PlateMjd,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Lists the store's files, sorted by plate-MJD (the same list, in the same order, on every rank).
pub fn list_store(dir: &Path) -> Result<Vec<StoreFile>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| QueryError::io(dir, "cannot list the store", e))?;
    let mut files: Vec<StoreFile> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pm = layout::parse_store_file_name(&name)?;
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            Some(StoreFile {
                pm,
                path: e.path(),
                bytes,
            })
        })
        .collect();
    files.sort_by_key(|f| f.pm);
    Ok(files)
}

/// The layout of a store file.
pub fn file_layout(path: &Path) -> Result<Layout> {
    let file = hdf5::File::open(path)
        .map_err(|e| QueryError::hdf5(path, "cannot open the store file", e))?;
    store::reader::layout_of(&file).ok_or_else(|| QueryError::Foreign {
        path: path.to_path_buf(),
    })
}

/// A run of consecutive rows: from the source (byte offset) to output row `out_row`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRun {
    pub src: u64,
    pub out_row: u64,
    pub rows: u64,
}

/// How this rank fills one [`DatasetSpec`] of its plate-MJD.
#[derive(Debug, Clone)]
pub enum Fill {
    /// Rows copied as bytes from the source file.
    Runs { row_bytes: u64, runs: Vec<RowRun> },
    /// The whole dataset, already in memory (v2 index arrays made from a v1 store).
    Bytes(Vec<u8>),
    /// Filled row by row by [`Spread`]s.
    Spreads,
}

/// How padding pixels of a converted row are filled.
#[derive(Debug, Clone, Copy)]
pub enum Pad {
    /// Coadds: WAVE the grid's wavelength (grid index of column 0), masks NODATA, the rest 0.
    Coadd { index0: i64 },
    /// Exposures: masks NODATA, the rest 0.
    Exposure { fields: FieldSet },
}

/// One v1 dataset (records of `nfields` 4-byte fields) becoming row `row` of one v2 array per field.
#[derive(Debug, Clone)]
pub struct Spread {
    pub src: u64,
    pub len: u64,
    pub row: u64,
    pub width: u64,
    pub pix0: u64,
    /// The spec index of the output array of each field, in field order.
    pub datasets: Vec<usize>,
    pub pad: Pad,
}

/// Identifies a per-fiber dataset of a v1 output within its plate-MJD.
pub type RecordKey = (i32, u32, u8);

/// What a rank found in one store file.
#[derive(Debug, Default)]
pub struct Scanned {
    pub records: Vec<DatasetRecord>,
    /// Fibers found, sorted.
    pub found: Vec<i32>,
    pub meta: Option<PlateMeta>,
    /// For each dataset of `meta.datasets`, in order.
    pub fills: Vec<Fill>,
    pub spreads: Vec<Spread>,
    /// v2 store → v1 output: for each record, where each field's real pixels start in the source.
    pub gathers: HashMap<RecordKey, Vec<u64>>,
}

/// The distinct attribute lists of one plate-MJD's datasets (index 0: none).
struct AttrSets(Vec<Vec<(String, AttrValue)>>);

impl AttrSets {
    fn new() -> Self {
        Self(vec![Vec::new()])
    }

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

/// Opens a store file of the plate-MJD `sf.pm` and describes the requested `fibers` (sorted) for
/// an output of layout `out`.
pub fn scan_file(sf: &StoreFile, source: u32, fibers: &[i32], out: Layout) -> Result<Scanned> {
    let path = &sf.path;
    let file = hdf5::File::open(path).map_err(h5(path, "cannot open the store file"))?;
    let input = store::reader::layout_of(&file)
        .ok_or_else(|| QueryError::Foreign { path: path.clone() })?;
    let group_path = layout::plate_mjd_group(sf.pm);
    if !file.link_exists(&group_path) {
        return Ok(Scanned::default());
    }
    let group = file.group(&group_path).map_err(h5(path, &group_path))?;
    let mut s = match input {
        Layout::V1 => scan_v1(path, &file, &group, sf.pm, source, fibers, out)?,
        Layout::V2 => scan_v2(path, &group, sf.pm, source, fibers, out)?,
    };
    if s.found.is_empty() {
        return Ok(Scanned::default());
    }
    let found: HashSet<i32> = s.found.iter().copied().collect();
    let members = group.member_names().map_err(h5(path, &group_path))?;
    let meta = s.meta.as_mut().expect("a scan with fibers has a meta");
    for t in PlateTable::ALL {
        if !members.iter().any(|m| m == t.name()) {
            continue;
        }
        let tpath = layout::table_path(sf.pm, t);
        let ds = group.dataset(t.name()).map_err(h5(path, &tpath))?;
        let (spec, fill) = scan_table(path, &tpath, &ds, t, &found)?;
        meta.datasets.push(spec);
        s.fills.push(fill);
    }
    meta.attrs = read_attrs(&group).map_err(h5(path, &group_path))?;
    Ok(s)
}

/// A new meta for a plate-MJD (attributes and tables are added by [`scan_file`]).
fn meta(pm: PlateMjd, attr_sets: Vec<Vec<(String, AttrValue)>>) -> PlateMeta {
    PlateMeta {
        pm,
        attrs: Vec::new(),
        attr_sets,
        groups: Vec::new(),
        datasets: Vec::new(),
    }
}

/// A v1 dataset of the store: its length and where its bytes are.
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

/// One exposure dataset of a v1 store file.
struct V1Exposure {
    expid: u32,
    arm: Arm,
    fields: FieldSet,
    len: u64,
    src: u64,
    attrs: Vec<(String, AttrValue)>,
}

/// The requested fibers of a v1 store file: their coadd (length, offset) and exposures.
#[allow(clippy::type_complexity)]
fn v1_fibers(
    path: &Path,
    group: &hdf5::Group,
    pm: PlateMjd,
    fibers: &[i32],
) -> Result<Vec<(i32, u64, u64, Vec<(String, AttrValue)>, Vec<V1Exposure>)>> {
    let coadd_type = store::fast::type_of(&CoaddRecord::type_descriptor()).map_err(raw(path))?;
    let mut out = Vec::new();
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
        let attrs = if info.has_attrs {
            read_attrs(&coadd).map_err(h5(path, &cpath))?
        } else {
            Vec::new()
        };
        let mut exposures = Vec::new();
        if group.link_exists(&format!("{name}/{}", layout::EXPOSURES)) {
            let fiber_group = group
                .group(&name)
                .map_err(h5(path, layout::fiber_group(pm, fiber)))?;
            exposures = v1_exposures(path, &fiber_group, pm, fiber)?;
        }
        out.push((fiber, len, src, attrs, exposures));
    }
    Ok(out)
}

fn v1_exposures(
    file: &Path,
    fiber_group: &hdf5::Group,
    pm: PlateMjd,
    fiber: i32,
) -> Result<Vec<V1Exposure>> {
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
    let mut out = Vec::new();
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
            out.push(V1Exposure {
                expid,
                arm,
                fields,
                len,
                src,
                attrs: read_attrs(&ds).map_err(h5(file, &apath))?,
            });
        }
    }
    Ok(out)
}

/// A v1 store file, for a v1 output (records, bytes copied) or a v2 output (rows converted).
fn scan_v1(
    path: &Path,
    file: &hdf5::File,
    group: &hdf5::Group,
    pm: PlateMjd,
    source: u32,
    fibers: &[i32],
    out: Layout,
) -> Result<Scanned> {
    let found = v1_fibers(path, group, pm, fibers)?;
    let mut s = Scanned {
        found: found.iter().map(|f| f.0).collect(),
        ..Scanned::default()
    };
    let mut sets = AttrSets::new();
    match out {
        Layout::V1 => {
            for (fiber, len, src, attrs, exposures) in found {
                let base = DatasetRecord {
                    plate: pm.plate,
                    mjd: pm.mjd,
                    fiber,
                    source,
                    ..Default::default()
                };
                s.records.push(DatasetRecord {
                    len,
                    src_offset: src,
                    attrs: sets.index(path, attrs)?,
                    ..base
                });
                for e in exposures {
                    s.records.push(DatasetRecord {
                        expid: e.expid,
                        kind: DatasetKind::from_arm(e.arm) as u8,
                        fields: e.fields.0,
                        len: e.len,
                        src_offset: e.src,
                        attrs: sets.index(path, e.attrs)?,
                        ..base
                    });
                }
            }
            s.meta = Some(meta(pm, sets.0));
        }
        Layout::V2 => {
            let mut m = meta(pm, sets.0);
            v1_to_v2_coadds(path, file, &found, &mut m, &mut s)?;
            v1_to_v2_exposures(path, &found, &mut m, &mut s)?;
            s.meta = Some(m);
        }
    }
    Ok(s)
}

/// The v2 coadds of fibers found in a v1 store: the grid from each coadd's first WAVE (read at its
/// byte offset), the index arrays in memory, each row converted from the coadd's records.
#[allow(clippy::type_complexity)]
fn v1_to_v2_coadds(
    path: &Path,
    file: &hdf5::File,
    found: &[(i32, u64, u64, Vec<(String, AttrValue)>, Vec<V1Exposure>)],
    m: &mut PlateMeta,
    s: &mut Scanned,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let _ = file;
    let raw_file = std::fs::File::open(path).map_err(|e| QueryError::io(path, "cannot open", e))?;
    let mut firsts = Vec::with_capacity(found.len());
    for &(fiber, len, src, _, _) in found {
        if len == 0 {
            return Err(QueryError::store(
                path,
                format!("fiber {fiber}: an empty coadd has no place on a v2 grid"),
            ));
        }
        let mut w = [0u8; 4];
        raw_file
            .read_exact_at(&mut w, src)
            .map_err(|e| QueryError::io(path, "cannot read a coadd", e))?;
        let wave = f32::from_ne_bytes(w) as f64;
        let i0 = store::v2::grid_index_of(wave.log10()).ok_or_else(|| {
            QueryError::store(
                path,
                format!("fiber {fiber}: its coadd is not on the 1e-4 log-lambda grid (WAVE[0] = {wave})"),
            )
        })?;
        firsts.push(i0);
    }
    let index0 = *firsts.iter().min().expect("fibers found");
    let end = found
        .iter()
        .zip(&firsts)
        .map(|(f, &i0)| i0 + f.1 as i64)
        .max()
        .expect("fibers found");
    let width = (end - index0) as u64;
    let n = found.len() as u64;
    let prefix = layout::COADDS;
    m.groups.push(GroupSpec {
        path: prefix.to_string(),
        attrs: vec![
            (
                layout::LOGLAM0_ATTR.to_string(),
                AttrValue::Float(index0 as f64 * store::v2::COEFF1),
            ),
            (
                layout::COEFF1_ATTR.to_string(),
                AttrValue::Float(store::v2::COEFF1),
            ),
        ],
    });
    let mut field_specs = Vec::with_capacity(8);
    for (name, int) in COADD_FIELDS {
        field_specs.push(m.datasets.len());
        m.datasets.push(DatasetSpec {
            path: format!("{prefix}/{name}"),
            dtype: encoded(&elem(int), path)?,
            shape: vec![n, width],
            attrs: Vec::new(),
        });
        s.fills.push(Fill::Spreads);
    }
    let fiberid: Vec<i32> = found.iter().map(|f| f.0).collect();
    let pix0: Vec<i32> = firsts.iter().map(|&i| (i - index0) as i32).collect();
    let npix: Vec<i32> = found.iter().map(|f| f.1 as i32).collect();
    for (name, values) in [
        (layout::FIBERID, &fiberid),
        (layout::PIX0, &pix0),
        (layout::NPIX, &npix),
    ] {
        push_array(
            m,
            s,
            format!("{prefix}/{name}"),
            &elem(true),
            n,
            bytemuck::cast_slice(values),
            path,
        )?;
    }
    for (row, (f, &i0)) in found.iter().zip(&firsts).enumerate() {
        s.spreads.push(Spread {
            src: f.2,
            len: f.1,
            row: row as u64,
            width,
            pix0: (i0 - index0) as u64,
            datasets: field_specs.clone(),
            pad: Pad::Coadd { index0 },
        });
    }
    Ok(())
}

fn elem(int: bool) -> TypeDescriptor {
    if int {
        i32::type_descriptor()
    } else {
        f32::type_descriptor()
    }
}

/// A 1-D array whose bytes this rank has.
fn push_array(
    m: &mut PlateMeta,
    s: &mut Scanned,
    path: String,
    d: &TypeDescriptor,
    n: u64,
    bytes: &[u8],
    file: &Path,
) -> Result<()> {
    m.datasets.push(DatasetSpec {
        path,
        dtype: encoded(d, file)?,
        shape: vec![n],
        attrs: Vec::new(),
    });
    s.fills.push(Fill::Bytes(bytes.to_vec()));
    Ok(())
}

/// The v2 exposure groups of fibers found in a v1 store: per exposure and camera, the fibers that
/// have it, padded to the longest; SPECTROGRAPH and EXTNAME from the datasets' attributes.
#[allow(clippy::type_complexity)]
fn v1_to_v2_exposures(
    path: &Path,
    found: &[(i32, u64, u64, Vec<(String, AttrValue)>, Vec<V1Exposure>)],
    m: &mut PlateMeta,
    s: &mut Scanned,
) -> Result<()> {
    let mut groups: BTreeMap<(u32, Arm), Vec<(i32, &V1Exposure)>> = BTreeMap::new();
    for (fiber, _, _, _, exposures) in found {
        for e in exposures {
            groups
                .entry((e.expid, e.arm))
                .or_default()
                .push((*fiber, e));
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    m.groups.push(GroupSpec {
        path: layout::EXPOSURES.to_string(),
        attrs: Vec::new(),
    });
    let mut last_expid = None;
    for ((expid, arm), rows) in groups {
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
                path,
                format!("{prefix}: the exposures of one camera-exposure have different fields"),
            ));
        }
        let n = rows.len() as u64;
        let width = rows.iter().map(|(_, e)| e.len).max().unwrap_or(0);
        let mut specs = Vec::new();
        for f in fields.fields() {
            specs.push(m.datasets.len());
            m.datasets.push(DatasetSpec {
                path: format!("{prefix}/{}", f.name()),
                dtype: encoded(&elem(f.is_int()), path)?,
                shape: vec![n, width],
                attrs: Vec::new(),
            });
            s.fills.push(Fill::Spreads);
        }
        let fiberid: Vec<i32> = rows.iter().map(|r| r.0).collect();
        let npix: Vec<i32> = rows.iter().map(|r| r.1.len as i32).collect();
        let attr = |e: &V1Exposure, name: &str| {
            e.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
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
        let i32s = elem(true);
        push_array(
            m,
            s,
            format!("{prefix}/{}", layout::FIBERID),
            &i32s,
            n,
            bytemuck::cast_slice(&fiberid),
            path,
        )?;
        push_array(
            m,
            s,
            format!("{prefix}/{}", layout::PIX0),
            &i32s,
            n,
            &vec![0u8; 4 * n as usize],
            path,
        )?;
        push_array(
            m,
            s,
            format!("{prefix}/{}", layout::NPIX),
            &i32s,
            n,
            bytemuck::cast_slice(&npix),
            path,
        )?;
        push_array(
            m,
            s,
            format!("{prefix}/{}", layout::SPECTROGRAPH_ATTR),
            &i64::type_descriptor(),
            n,
            bytemuck::cast_slice(&spectrograph),
            path,
        )?;
        let w = extname.iter().map(String::len).max().unwrap_or(0).max(1);
        let mut names = vec![0u8; w * extname.len()];
        for (i, e) in extname.iter().enumerate() {
            names[i * w..i * w + e.len()].copy_from_slice(e.as_bytes());
        }
        push_array(
            m,
            s,
            format!("{prefix}/{}", layout::EXTNAME_ATTR),
            &TypeDescriptor::FixedAscii(w),
            n,
            &names,
            path,
        )?;
        for (row, (_, e)) in rows.iter().enumerate() {
            s.spreads.push(Spread {
                src: e.src,
                len: e.len,
                row: row as u64,
                width,
                pix0: 0,
                datasets: specs.clone(),
                pad: Pad::Exposure { fields },
            });
        }
    }
    Ok(())
}

/// The 1-D i32 array `name` of a v2 group.
fn read_i32s(file: &Path, g: &hdf5::Group, name: &str) -> Result<Vec<i32>> {
    let ds = g.dataset(name).map_err(h5(file, name))?;
    ds.read_raw::<i32>().map_err(h5(file, name))
}

/// One v2 group (coadds, or an exposure camera): its rows (FIBERID) and datasets.
struct V2Group {
    prefix: String,
    fiberid: Vec<i32>,
    pix0: Vec<i32>,
    npix: Vec<i32>,
    /// (name, dataset, byte offset, row bytes).
    datasets: Vec<(String, hdf5::Dataset, u64, u64)>,
    attrs: Vec<(String, AttrValue)>,
}

fn v2_group(file: &Path, g: &hdf5::Group, prefix: String) -> Result<V2Group> {
    let fiberid = read_i32s(file, g, layout::FIBERID)?;
    let pix0 = read_i32s(file, g, layout::PIX0)?;
    let npix = read_i32s(file, g, layout::NPIX)?;
    let mut datasets = Vec::new();
    for name in g.member_names().map_err(h5(file, &prefix))? {
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
        datasets.push((name, ds, offset, row_bytes));
    }
    Ok(V2Group {
        prefix,
        fiberid,
        pix0,
        npix,
        datasets,
        attrs: read_attrs(g).map_err(h5(file, "group attributes"))?,
    })
}

/// A v2 store file, for a v2 output (rows copied as bytes) or a v1 output (rows gathered into
/// records).
fn scan_v2(
    path: &Path,
    group: &hdf5::Group,
    pm: PlateMjd,
    source: u32,
    fibers: &[i32],
    out: Layout,
) -> Result<Scanned> {
    let wanted: HashSet<i32> = fibers.iter().copied().collect();
    let mut groups = Vec::new();
    if group.link_exists(layout::COADDS) {
        let g = group
            .group(layout::COADDS)
            .map_err(h5(path, layout::COADDS))?;
        groups.push(v2_group(path, &g, layout::COADDS.to_string())?);
    }
    let Some(coadds) = groups.first() else {
        return Ok(Scanned::default());
    };
    let mut found: Vec<i32> = coadds
        .fiberid
        .iter()
        .copied()
        .filter(|f| wanted.contains(f))
        .collect();
    found.sort_unstable();
    if found.is_empty() {
        return Ok(Scanned::default());
    }
    let found_set: HashSet<i32> = found.iter().copied().collect();
    let mut exposure_keys = Vec::new();
    if group.link_exists(layout::EXPOSURES) {
        let top = group
            .group(layout::EXPOSURES)
            .map_err(h5(path, layout::EXPOSURES))?;
        let mut expids: Vec<u32> = top
            .member_names()
            .map_err(h5(path, layout::EXPOSURES))?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        expids.sort_unstable();
        for expid in expids {
            let eg = top
                .group(&expid.to_string())
                .map_err(h5(path, layout::EXPOSURES))?;
            for arm in [Arm::Blue, Arm::Red] {
                if !eg.link_exists(arm.name()) {
                    continue;
                }
                let prefix = layout::exposure_rows_group(expid, arm);
                let g = eg.group(arm.name()).map_err(h5(path, &prefix))?;
                let vg = v2_group(path, &g, prefix)?;
                if vg.fiberid.iter().any(|f| found_set.contains(f)) {
                    exposure_keys.push((expid, arm));
                    groups.push(vg);
                }
            }
        }
    }
    let mut s = Scanned {
        found,
        ..Scanned::default()
    };
    match out {
        Layout::V2 => {
            let mut m = meta(pm, vec![Vec::new()]);
            let mut expids_done = HashSet::new();
            for (i, g) in groups.iter().enumerate() {
                if i == 1 {
                    m.groups.push(GroupSpec {
                        path: layout::EXPOSURES.to_string(),
                        attrs: Vec::new(),
                    });
                }
                if i >= 1 {
                    let (expid, _) = exposure_keys[i - 1];
                    if expids_done.insert(expid) {
                        m.groups.push(GroupSpec {
                            path: format!("{}/{expid}", layout::EXPOSURES),
                            attrs: Vec::new(),
                        });
                    }
                }
                let rows: Vec<usize> = (0..g.fiberid.len())
                    .filter(|&r| found_set.contains(&g.fiberid[r]))
                    .collect();
                // The tightest columns that hold every selected row: the same output as from a
                // v1 store, whatever else the store file holds.
                let (c0, c1) = if i == 0 {
                    let c0 = rows.iter().map(|&r| g.pix0[r]).min().unwrap_or(0);
                    let c1 = rows
                        .iter()
                        .map(|&r| g.pix0[r] + g.npix[r])
                        .max()
                        .unwrap_or(0);
                    (c0 as u64, c1 as u64)
                } else {
                    (0, rows.iter().map(|&r| g.npix[r]).max().unwrap_or(0) as u64)
                };
                let mut attrs = g.attrs.clone();
                if i == 0 {
                    for (k, v) in &mut attrs {
                        if k == layout::LOGLAM0_ATTR {
                            if let AttrValue::Float(l) = v {
                                *l = (((*l / store::v2::COEFF1).round() as i64 + c0 as i64) as f64)
                                    * store::v2::COEFF1;
                            }
                        }
                    }
                }
                m.groups.push(GroupSpec {
                    path: g.prefix.clone(),
                    attrs,
                });
                for (name, ds, offset, row_bytes) in &g.datasets {
                    let dpath = format!("{}/{name}", g.prefix);
                    let mut shape: Vec<u64> = ds.shape().iter().map(|&d| d as u64).collect();
                    shape[0] = rows.len() as u64;
                    let elem = ds.dtype().map_err(h5(path, &dpath))?.size() as u64;
                    let (dtype, fill) = if shape.len() == 2 {
                        let width_in = shape[1];
                        shape[1] = c1 - c0;
                        let out_bytes = elem * (c1 - c0);
                        let runs = if c0 == 0 && c1 == width_in {
                            let all: Vec<u64> = rows.iter().map(|&r| r as u64).collect();
                            runs(&all, *offset, *row_bytes)
                        } else {
                            rows.iter()
                                .enumerate()
                                .map(|(j, &r)| RowRun {
                                    src: offset + r as u64 * row_bytes + c0 * elem,
                                    out_row: j as u64,
                                    rows: 1,
                                })
                                .collect()
                        };
                        let fill = Fill::Runs {
                            row_bytes: out_bytes,
                            runs,
                        };
                        (store::fast::dataset_type(ds).map_err(raw(path))?, fill)
                    } else if name == layout::PIX0 {
                        let pix0: Vec<i32> = rows.iter().map(|&r| g.pix0[r] - c0 as i32).collect();
                        let t = store::fast::dataset_type(ds).map_err(raw(path))?;
                        (t, Fill::Bytes(bytemuck::cast_slice(&pix0).to_vec()))
                    } else if name == layout::EXTNAME_ATTR {
                        let names = v2_strings(path, g)?;
                        let names: Vec<&str> = rows.iter().map(|&r| names[r].as_str()).collect();
                        let w = names.iter().map(|n| n.len()).max().unwrap_or(0).max(1);
                        let mut bytes = vec![0u8; w * names.len()];
                        for (j, n) in names.iter().enumerate() {
                            bytes[j * w..j * w + n.len()].copy_from_slice(n.as_bytes());
                        }
                        (
                            encoded(&TypeDescriptor::FixedAscii(w), path)?,
                            Fill::Bytes(bytes),
                        )
                    } else {
                        let all: Vec<u64> = rows.iter().map(|&r| r as u64).collect();
                        let fill = Fill::Runs {
                            row_bytes: *row_bytes,
                            runs: runs(&all, *offset, *row_bytes),
                        };
                        (store::fast::dataset_type(ds).map_err(raw(path))?, fill)
                    };
                    m.datasets.push(DatasetSpec {
                        path: dpath.clone(),
                        dtype,
                        shape,
                        attrs: read_attrs(ds).map_err(h5(path, &dpath))?,
                    });
                    s.fills.push(fill);
                }
            }
            s.meta = Some(m);
        }
        Layout::V1 => {
            let mut sets = AttrSets::new();
            let base = DatasetRecord {
                plate: pm.plate,
                mjd: pm.mjd,
                source,
                ..Default::default()
            };
            let field_offsets = |g: &V2Group, names: &[&str], row: usize| -> Option<Vec<u64>> {
                names
                    .iter()
                    .map(|n| {
                        g.datasets
                            .iter()
                            .find(|d| d.0 == *n)
                            .map(|(_, _, off, rb)| {
                                off + row as u64 * rb + 4 * g.pix0[row].max(0) as u64
                            })
                    })
                    .collect()
            };
            let coadd_names: Vec<&str> = COADD_FIELDS.iter().map(|(n, _)| *n).collect();
            let coadds = &groups[0];
            for (r, &fiber) in coadds.fiberid.iter().enumerate() {
                if !found_set.contains(&fiber) {
                    continue;
                }
                let srcs = field_offsets(coadds, &coadd_names, r).ok_or_else(|| {
                    QueryError::store(path, "a v2 coadds group lacks a field array")
                })?;
                s.gathers.insert((fiber, 0, DatasetKind::Coadd as u8), srcs);
                s.records.push(DatasetRecord {
                    fiber,
                    len: coadds.npix[r] as u64,
                    ..base
                });
            }
            for (g, (expid, arm)) in groups.iter().skip(1).zip(&exposure_keys) {
                let fields = g
                    .datasets
                    .iter()
                    .filter_map(|d| ExposureField::ALL.iter().find(|f| f.name() == d.0))
                    .fold(FieldSet::default(), |s, f| s.with(*f));
                let names: Vec<&str> = fields.fields().map(ExposureField::name).collect();
                let spectrograph = g
                    .datasets
                    .iter()
                    .find(|d| d.0 == layout::SPECTROGRAPH_ATTR)
                    .map(|d| d.1.read_raw::<i64>())
                    .transpose()
                    .map_err(h5(path, &g.prefix))?
                    .unwrap_or_default();
                let extname = v2_strings(path, g)?;
                let kind = DatasetKind::from_arm(*arm) as u8;
                for (r, &fiber) in g.fiberid.iter().enumerate() {
                    if !found_set.contains(&fiber) {
                        continue;
                    }
                    let srcs = field_offsets(g, &names, r).ok_or_else(|| {
                        QueryError::store(path, "a v2 exposure group lacks a field array")
                    })?;
                    s.gathers.insert((fiber, *expid, kind), srcs);
                    let attrs = vec![
                        (
                            layout::EXTNAME_ATTR.to_string(),
                            AttrValue::Str(extname.get(r).cloned().unwrap_or_default()),
                        ),
                        (
                            layout::SPECTROGRAPH_ATTR.to_string(),
                            AttrValue::Int(spectrograph.get(r).copied().unwrap_or(0)),
                        ),
                    ];
                    s.records.push(DatasetRecord {
                        fiber,
                        expid: *expid,
                        kind,
                        fields: fields.0,
                        len: g.npix[r] as u64,
                        attrs: sets.index(path, attrs)?,
                        ..base
                    });
                }
            }
            s.records.sort_by_key(DatasetRecord::sort_key);
            s.meta = Some(meta(pm, sets.0));
        }
    }
    Ok(s)
}

/// The EXTNAME strings of a v2 exposure group.
fn v2_strings(file: &Path, g: &V2Group) -> Result<Vec<String>> {
    let Some((_, ds, _, _)) = g.datasets.iter().find(|d| d.0 == layout::EXTNAME_ATTR) else {
        return Ok(Vec::new());
    };
    let d = ds
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(h5(file, "EXTNAME"))?;
    let TypeDescriptor::FixedAscii(n) = d else {
        return Err(QueryError::store(
            file,
            "EXTNAME is not a fixed-length string array",
        ));
    };
    let t = hdf5::Datatype::from_descriptor(&d).map_err(h5(file, "EXTNAME"))?;
    let bytes = store::raw::read_all(ds, &t, ds.size() * n).map_err(h5(file, "EXTNAME"))?;
    Ok(bytes
        .chunks(n.max(1))
        .map(|c| {
            String::from_utf8_lossy(c)
                .trim_end_matches('\0')
                .to_string()
        })
        .collect())
}

/// Runs of consecutive selected rows (sorted) of a dataset at `base` with `row_bytes` per row.
fn runs(rows: &[u64], base: u64, row_bytes: u64) -> Vec<RowRun> {
    let mut out: Vec<RowRun> = Vec::new();
    for (out_row, &r) in rows.iter().enumerate() {
        match out.last_mut() {
            Some(run) if run.src + run.rows * row_bytes == base + r * row_bytes => run.rows += 1,
            _ => out.push(RowRun {
                src: base + r * row_bytes,
                out_row: out_row as u64,
                rows: 1,
            }),
        }
    }
    out
}

/// The rows of one table that belong to the found fibers: its spec and where the rows are.
fn scan_table(
    file: &Path,
    tpath: &str,
    ds: &hdf5::Dataset,
    t: PlateTable,
    found: &HashSet<i32>,
) -> Result<(DatasetSpec, Fill)> {
    let table = Table::read(ds).map_err(|source| QueryError::Table {
        path: file.to_path_buf(),
        source,
    })?;
    let keep: Vec<u64> = match table.fiber_ids() {
        Some(ids) => (0..ids.len())
            .filter(|&r| found.contains(&ids[r]))
            .map(|r| r as u64)
            .collect(),
        None => (0..table.num_rows() as u64).collect(),
    };
    let row_size = ds.dtype().map_err(h5(file, tpath))?.size() as u64;
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
    let spec = DatasetSpec {
        path: t.name().to_string(),
        dtype: store::fast::dataset_type(ds).map_err(raw(file))?,
        shape: vec![keep.len() as u64],
        attrs: read_attrs(ds).map_err(h5(file, tpath))?,
    };
    Ok((
        spec,
        Fill::Runs {
            row_bytes: row_size,
            runs: runs(&keep, base, row_size),
        },
    ))
}
