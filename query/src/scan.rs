//! The scan phase: each rank opens only its share of the store files and describes the requested
//! fibers it finds there as compact records, plus each plate-MJD's attributes and table subsets.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use model::layout::{self, Arm, PlateTable};
use model::{FiberId, PlateMjd};
use store::attrs::{read_attrs, read_str_attr};
use store::{AttrValue, Table};

use crate::error::{QueryError, Result};
use crate::records::{DatasetRecord, PlateMeta, TableMeta};

/// One file of the store.
#[derive(Debug, Clone)]
pub struct StoreFile {
    pub pm: PlateMjd,
    pub path: PathBuf,
    pub bytes: u64,
}

/// Lists the store's files, sorted by plate-MJD (the same list, in the same order, on every rank).
pub fn list_store(dir: &Path) -> Result<Vec<StoreFile>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| QueryError::store(dir, format!("cannot list the store: {e}")))?;
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

/// What a rank found in one store file.
pub struct Scanned {
    pub file: hdf5::File,
    pub records: Vec<DatasetRecord>,
    pub meta: Option<PlateMeta>,
    /// The rows of each plate-level table that belong to the selected fibers.
    pub tables: Vec<(PlateTable, Table)>,
}

impl Scanned {
    /// A store file that holds none of the requested fibers.
    fn nothing(file: hdf5::File) -> Self {
        Self {
            file,
            records: Vec::new(),
            meta: None,
            tables: Vec::new(),
        }
    }
}

/// Opens a store file and finds the requested fibers (sorted) in it.
pub fn scan_file(sf: &StoreFile, source: u32, fibers: &[i32]) -> Result<Scanned> {
    let err = |m: String| QueryError::store(&sf.path, m);
    let file =
        hdf5::File::open(&sf.path).map_err(|e| err(format!("cannot open the store file: {e}")))?;
    if read_str_attr(&file, layout::FORMAT_ATTR).as_deref() != Some(layout::FORMAT_VERSION) {
        return Err(err(format!(
            "not a store file written by boss-ingest (no {} attribute)",
            layout::FORMAT_ATTR
        )));
    }
    let mut records = Vec::new();
    let group_path = layout::plate_mjd_group(sf.pm);
    if !file.link_exists(&group_path) {
        return Ok(Scanned::nothing(file));
    }
    let group = file
        .group(&group_path)
        .map_err(|e| err(format!("{group_path}: {e}")))?;
    let mut found = HashSet::new();
    let mut coadd_attrs = None;
    for &fiber in fibers {
        let id = FiberId::new(sf.pm.plate, sf.pm.mjd, fiber);
        // Absent is "not in the store"; present but unreadable is an error of the store file.
        let name = fiber.to_string();
        if !group.link_exists(&name) {
            continue;
        }
        let fiber_err = |e: hdf5::Error| err(format!("{}: {e}", layout::fiber_group(sf.pm, fiber)));
        let fiber_group = group.group(&name).map_err(fiber_err)?;
        // Listing (not probing) the members: a damaged group is an error, not an absent fiber.
        let members = fiber_group.member_names().map_err(fiber_err)?;
        if !members.iter().any(|m| m == layout::COADD) {
            continue;
        }
        let coadd = fiber_group.dataset(layout::COADD).map_err(fiber_err)?;
        found.insert(fiber);
        records.push(DatasetRecord::coadd(id, coadd.size() as u64, source));
        if coadd_attrs.is_none() {
            coadd_attrs = Some(read_attrs(&coadd).map_err(fiber_err)?);
        }
        if members.iter().any(|m| m == layout::EXPOSURES) {
            scan_exposures(&fiber_group, id, source, &mut records).map_err(fiber_err)?;
        }
    }
    if found.is_empty() {
        return Ok(Scanned::nothing(file));
    }
    let members = group
        .member_names()
        .map_err(|e| err(format!("{group_path}: {e}")))?;
    let mut tables = Vec::new();
    let mut metas = Vec::new();
    for t in PlateTable::ALL {
        if !members.iter().any(|m| m == t.name()) {
            continue;
        }
        let table_err = |e: String| err(format!("{group_path}/{}: {e}", t.name()));
        let ds = group
            .dataset(t.name())
            .map_err(|e| table_err(e.to_string()))?;
        let table = Table::read(&ds).map_err(|e| table_err(e.to_string()))?;
        let subset = match table.fiber_ids() {
            Some(ids) => table.filter_rows(|r| found.contains(&ids[r])),
            None => table,
        };
        metas.push(TableMeta {
            table: t,
            columns: subset.columns().to_vec(),
            rows: subset.num_rows() as u64,
        });
        tables.push((t, subset));
    }
    let meta = PlateMeta {
        pm: sf.pm,
        source,
        attrs: read_attrs(&group).map_err(|e| err(e.to_string()))?,
        coadd_attrs: coadd_attrs.unwrap_or_default(),
        tables: metas,
    };
    Ok(Scanned {
        file,
        records,
        meta: Some(meta),
        tables,
    })
}

fn scan_exposures(
    fiber_group: &hdf5::Group,
    id: FiberId,
    source: u32,
    out: &mut Vec<DatasetRecord>,
) -> hdf5::Result<()> {
    let exposures = fiber_group.group(layout::EXPOSURES)?;
    let mut expids: Vec<u32> = exposures
        .member_names()?
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    expids.sort_unstable();
    for expid in expids {
        let exposure = exposures.group(&expid.to_string())?;
        let arms = exposure.member_names()?;
        for arm in [Arm::Blue, Arm::Red] {
            if !arms.iter().any(|a| a == arm.name()) {
                continue;
            }
            let ds = exposure.dataset(arm.name())?;
            let spectrograph = ds.attr(layout::SPECTROGRAPH_ATTR)?.read_scalar::<i64>()? as u8;
            let extname = read_str_attr(&ds, layout::EXTNAME_ATTR).unwrap_or_default();
            out.push(DatasetRecord::exposure(
                id,
                expid,
                arm,
                spectrograph,
                &extname,
                ds.size() as u64,
                source,
            ));
        }
    }
    Ok(())
}

/// Attributes of an exposure dataset, rebuilt from its record.
pub fn exposure_attrs(r: &DatasetRecord) -> Vec<(String, AttrValue)> {
    vec![
        (
            layout::SPECTROGRAPH_ATTR.to_string(),
            AttrValue::Int(r.spectrograph as i64),
        ),
        (
            layout::EXTNAME_ATTR.to_string(),
            AttrValue::Str(r.extname().to_string()),
        ),
    ]
}
