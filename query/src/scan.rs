//! The scan phase: each rank opens only its share of the store files and describes the requested
//! fibers it finds there — every dataset as a compact record with the byte offset of its data, each
//! plate-MJD's attributes and table types, and the runs of table rows to copy — then closes the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hdf5::H5Type;
use model::layout::{self, Arm, PlateTable};
use model::PlateMjd;
use store::attrs::{read_attrs, read_str_attr};
use store::{AttrValue, CoaddRecord, FieldSet, Table};

use crate::error::{QueryError, Result};
use crate::records::{DatasetKind, DatasetRecord, PlateMeta, TableMeta};

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

/// A run of consecutive table rows: from the source (byte offset) to output row `out_row`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRun {
    pub src: u64,
    pub out_row: u64,
    pub rows: u64,
}

/// Where one output table's rows come from.
#[derive(Debug, Clone, Default)]
pub struct TableSource {
    pub row_size: u64,
    pub runs: Vec<RowRun>,
}

/// What a rank found in one store file.
#[derive(Debug, Default)]
pub struct Scanned {
    pub records: Vec<DatasetRecord>,
    pub meta: Option<PlateMeta>,
    /// For each table of `meta.tables`, in order: where its rows are in the source file.
    pub tables: Vec<TableSource>,
}

/// The distinct attribute lists of one plate-MJD's datasets (index 0: none).
struct AttrSets(Vec<Vec<(String, AttrValue)>>);

impl AttrSets {
    fn new() -> Self {
        Self(vec![Vec::new()])
    }

    fn index(&mut self, attrs: Vec<(String, AttrValue)>) -> Option<u16> {
        // Compared as debug text: float attributes (NaN) are then equal to themselves.
        let key = format!("{attrs:?}");
        let i = match self.0.iter().position(|a| format!("{a:?}") == key) {
            Some(i) => i,
            None => {
                self.0.push(attrs);
                self.0.len() - 1
            }
        };
        u16::try_from(i).ok()
    }
}

/// Opens a store file and finds the requested fibers (sorted) in it.
pub fn scan_file(sf: &StoreFile, source: u32, fibers: &[i32]) -> Result<Scanned> {
    let path = &sf.path;
    let h5 = |what: String| move |e| QueryError::hdf5(path, what, e);
    let file = hdf5::File::open(path).map_err(h5("cannot open the store file".into()))?;
    if read_str_attr(&file, layout::FORMAT_ATTR).as_deref() != Some(layout::FORMAT_VERSION) {
        return Err(QueryError::Foreign { path: path.clone() });
    }
    let group_path = layout::plate_mjd_group(sf.pm);
    if !file.link_exists(&group_path) {
        return Ok(Scanned::default());
    }
    let group = file.group(&group_path).map_err(h5(group_path.clone()))?;
    let mut records = Vec::new();
    let mut sets = AttrSets::new();
    let mut found = HashSet::new();
    let raw = |source| QueryError::Raw {
        path: path.clone(),
        source,
    };
    let coadd_type = store::fast::type_of(&CoaddRecord::type_descriptor()).map_err(raw)?;
    for &fiber in fibers {
        // Absent is "not in the store"; present but unreadable is an error of the store file.
        let name = fiber.to_string();
        if !group.link_exists(&name) {
            continue;
        }
        let cpath = layout::coadd_path(sf.pm, fiber);
        let rel = format!("{name}/{}", layout::COADD);
        let coadd = match group.dataset(&rel) {
            Ok(ds) => ds,
            Err(e) => {
                // The slow path, on failure only: a fiber group without a coadd holds no spectrum
                // of this fiber; a group or coadd that cannot be read is an error of the file.
                let fpath = layout::fiber_group(sf.pm, fiber);
                let members = group
                    .group(&name)
                    .and_then(|g| g.member_names())
                    .map_err(h5(fpath))?;
                if !members.iter().any(|m| m == layout::COADD) {
                    continue;
                }
                return Err(QueryError::hdf5(path, cpath, e));
            }
        };
        let info = store::fast::dataset_info(&coadd, coadd_type.id()).map_err(raw)?;
        if !info.type_matches {
            return Err(QueryError::store(
                path,
                format!("{cpath} is not a coadd record dataset"),
            ));
        }
        let base = DatasetRecord {
            plate: sf.pm.plate,
            mjd: sf.pm.mjd,
            fiber,
            source,
            ..Default::default()
        };
        records.push(dataset_record(path, &cpath, &coadd, info, base, &mut sets)?);
        found.insert(fiber);
        if group.link_exists(&format!("{name}/{}", layout::EXPOSURES)) {
            let fpath = layout::fiber_group(sf.pm, fiber);
            let fiber_group = group.group(&name).map_err(h5(fpath))?;
            scan_exposures(path, &fiber_group, base, &mut sets, &mut records)?;
        }
    }
    if found.is_empty() {
        return Ok(Scanned::default());
    }
    let members = group.member_names().map_err(h5(group_path.clone()))?;
    let mut metas = Vec::new();
    let mut tables = Vec::new();
    for t in PlateTable::ALL {
        if !members.iter().any(|m| m == t.name()) {
            continue;
        }
        let tpath = layout::table_path(sf.pm, t);
        let ds = group.dataset(t.name()).map_err(h5(tpath.clone()))?;
        let (meta, src) = scan_table(path, &tpath, &ds, t, &found)?;
        metas.push(meta);
        tables.push(src);
    }
    let meta = PlateMeta {
        pm: sf.pm,
        attrs: read_attrs(&group).map_err(h5(group_path))?,
        attr_sets: sets.0,
        tables: metas,
    };
    Ok(Scanned {
        records,
        meta: Some(meta),
        tables,
    })
}

/// A dataset's record: length, where its bytes are, its attribute set.
fn dataset_record(
    file: &Path,
    path: &str,
    ds: &hdf5::Dataset,
    info: store::fast::DatasetInfo,
    base: DatasetRecord,
    sets: &mut AttrSets,
) -> Result<DatasetRecord> {
    let len = info.len;
    let src_offset = match info.offset {
        Some(o) => o,
        None if len == 0 => 0,
        None => {
            return Err(QueryError::store(
                file,
                format!("{path} is not stored contiguously (chunked, compact or unallocated)"),
            ))
        }
    };
    let attrs = if info.has_attrs {
        read_attrs(ds).map_err(|e| QueryError::hdf5(file, path, e))?
    } else {
        Vec::new()
    };
    let attrs = sets.index(attrs).ok_or_else(|| {
        QueryError::store(
            file,
            format!("{path}: more than 65535 distinct attribute sets in one plate-MJD"),
        )
    })?;
    Ok(DatasetRecord {
        len,
        src_offset,
        attrs,
        ..base
    })
}

fn scan_exposures(
    file: &Path,
    fiber_group: &hdf5::Group,
    base: DatasetRecord,
    sets: &mut AttrSets,
    out: &mut Vec<DatasetRecord>,
) -> Result<()> {
    let pm = base.plate_mjd();
    let h5 = |what: String| move |e| QueryError::hdf5(file, what, e);
    let gpath = layout::exposures_group(pm, base.fiber);
    let exposures = fiber_group
        .group(layout::EXPOSURES)
        .map_err(h5(gpath.clone()))?;
    let mut expids: Vec<u32> = exposures
        .member_names()
        .map_err(h5(gpath.clone()))?
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    expids.sort_unstable();
    for expid in expids {
        let epath = layout::exposure_group(pm, base.fiber, expid);
        let exposure = exposures
            .group(&expid.to_string())
            .map_err(h5(epath.clone()))?;
        let arms = exposure.member_names().map_err(h5(epath))?;
        for arm in [Arm::Blue, Arm::Red] {
            if !arms.iter().any(|a| a == arm.name()) {
                continue;
            }
            let apath = layout::exposure_path(pm, base.fiber, expid, arm);
            let ds = exposure.dataset(arm.name()).map_err(h5(apath.clone()))?;
            let d = ds
                .dtype()
                .and_then(|t| t.to_descriptor())
                .map_err(h5(apath.clone()))?;
            let fields = FieldSet::from_descriptor(&d).ok_or_else(|| {
                QueryError::store(file, format!("{apath} is not an exposure record dataset"))
            })?;
            let rec = DatasetRecord {
                expid,
                kind: DatasetKind::from_arm(arm) as u8,
                fields: fields.0,
                ..base
            };
            let info = store::fast::DatasetInfo {
                len: ds.size() as u64,
                offset: ds.offset(),
                type_matches: true,
                has_attrs: true,
            };
            out.push(dataset_record(file, &apath, &ds, info, rec, sets)?);
        }
    }
    Ok(())
}

/// The rows of one table that belong to the found fibers: its meta and where the rows are.
fn scan_table(
    file: &Path,
    tpath: &str,
    ds: &hdf5::Dataset,
    t: PlateTable,
    found: &HashSet<i32>,
) -> Result<(TableMeta, TableSource)> {
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
    let dtype = ds.dtype().map_err(|e| QueryError::hdf5(file, tpath, e))?;
    let row_size = dtype.size() as u64;
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
    let mut runs: Vec<RowRun> = Vec::new();
    for (out_row, &r) in keep.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if run.src + run.rows * row_size == base + r * row_size => run.rows += 1,
            _ => runs.push(RowRun {
                src: base + r * row_size,
                out_row: out_row as u64,
                rows: 1,
            }),
        }
    }
    let meta = TableMeta {
        table: t,
        dtype: store::fast::dataset_type(ds).map_err(|source| QueryError::Raw {
            path: file.to_path_buf(),
            source,
        })?,
        attrs: read_attrs(ds).map_err(|e| QueryError::hdf5(file, tpath, e))?,
        rows: keep.len() as u64,
    };
    Ok((meta, TableSource { row_size, runs }))
}
