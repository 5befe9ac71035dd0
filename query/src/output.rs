//! The create phase: every rank opens the output with the MPI-IO driver and makes the identical
//! groups, datasets and attributes (collective metadata on), in the order of the global list.

use std::path::Path;

use hdf5::{Dataset, File, Group};
use model::layout;
use mpi::traits::AsRaw;
use store::attrs::create_attrs;
use store::{AttrValue, CoaddRecord, Table};

use crate::error::{QueryError, Result};
use crate::records::{DatasetKind, DatasetRecord, PlateMeta};
use crate::scan::exposure_attrs;

/// The open output file with the datasets this rank will write into.
pub struct Output {
    pub file: File,
    /// For each global record: its dataset, kept where this rank writes (or joins) it.
    pub datasets: Vec<Option<Dataset>>,
    /// For each plate meta and table: the dataset, kept where this rank writes (or joins) it.
    pub tables: Vec<Vec<Option<Dataset>>>,
}

impl Output {
    /// Closes every dataset, then the file (collective on every rank). The order matters: a file
    /// opened with the MPI-IO driver does not close while objects in it are still open.
    pub fn close(self) -> hdf5::Result<()> {
        let Output {
            file,
            datasets,
            tables,
        } = self;
        drop(datasets);
        drop(tables);
        file.close()
    }
}

/// Creates the output file (collectively, with the MPI-IO driver, when the job runs under MPI) and
/// every object in it.
pub fn create_output(
    path: &Path,
    world: Option<&mpi::topology::SimpleCommunicator>,
    metas: &[PlateMeta],
    records: &[DatasetRecord],
    keep: impl Fn(u32) -> bool,
) -> Result<Output> {
    let err = |e: hdf5::Error| QueryError::output(path, e);
    let file = File::with_options()
        .with_fapl(|p| {
            let p = store::tuning::tune_file_access(p).libver_v110();
            match world {
                Some(w) => p
                    .mpio(w.as_raw(), None)
                    .all_coll_metadata_ops(true)
                    .coll_metadata_write(true),
                None => p,
            }
        })
        .create(path)
        .map_err(err)?;
    create_attrs(
        &file,
        &[
            (
                layout::FORMAT_ATTR.to_string(),
                AttrValue::Str(layout::FORMAT_VERSION.into()),
            ),
            (
                layout::WRITER_ATTR.to_string(),
                AttrValue::Str(format!("boss-query {}", env!("CARGO_PKG_VERSION"))),
            ),
        ],
    )
    .map_err(err)?;
    let root = file.as_group().map_err(err)?;
    let mut plate_groups: Vec<Group> = Vec::with_capacity(metas.len());
    let mut tables = Vec::with_capacity(metas.len());
    let mut last_plate: Option<(i32, Group)> = None;
    for meta in metas {
        let plate_group = match &last_plate {
            Some((p, g)) if *p == meta.pm.plate => g.clone(),
            _ => {
                let g = root.create_group(&meta.pm.plate.to_string()).map_err(err)?;
                last_plate = Some((meta.pm.plate, g.clone()));
                g
            }
        };
        let group = plate_group
            .create_group(&meta.pm.mjd.to_string())
            .map_err(err)?;
        create_attrs(&group, &meta.attrs).map_err(err)?;
        let mut datasets = Vec::with_capacity(meta.tables.len());
        for t in &meta.tables {
            let ds = Table::create_dataset(&group, t.table.name(), &t.columns, t.rows as usize)
                .map_err(|e| QueryError::output(path, e))?;
            datasets.push(keep(meta.source).then_some(ds));
        }
        tables.push(datasets);
        plate_groups.push(group);
    }

    let mut datasets = Vec::with_capacity(records.len());
    let mut meta_index = 0;
    let mut fiber_group: Option<((i32, i32, i32), Group)> = None;
    let mut exposure_group: Option<((i32, i32, i32, u32), Group)> = None;
    for r in records {
        while metas[meta_index].pm != r.fiber_id().plate_mjd() {
            meta_index += 1;
        }
        let meta = &metas[meta_index];
        let fkey = (r.plate, r.mjd, r.fiber);
        let fgroup = match &fiber_group {
            Some((k, g)) if *k == fkey => g.clone(),
            _ => {
                let g = plate_groups[meta_index]
                    .create_group(&r.fiber.to_string())
                    .map_err(err)?;
                fiber_group = Some((fkey, g.clone()));
                g
            }
        };
        let ds = match r.kind() {
            DatasetKind::Coadd => {
                let ds = fgroup
                    .new_dataset::<CoaddRecord>()
                    .fill_time(store::tuning::FILL_TIME)
                    .shape(r.len as usize)
                    .create(layout::COADD)
                    .map_err(err)?;
                create_attrs(&ds, &meta.coadd_attrs).map_err(err)?;
                ds
            }
            kind => {
                let ekey = (r.plate, r.mjd, r.fiber, r.expid);
                let egroup = match &exposure_group {
                    Some((k, g)) if *k == ekey => g.clone(),
                    _ => {
                        let exposures = if fgroup.link_exists(layout::EXPOSURES) {
                            fgroup.group(layout::EXPOSURES).map_err(err)?
                        } else {
                            fgroup.create_group(layout::EXPOSURES).map_err(err)?
                        };
                        let g = exposures.create_group(&r.expid.to_string()).map_err(err)?;
                        exposure_group = Some((ekey, g.clone()));
                        g
                    }
                };
                let arm = kind.arm().expect("exposure kinds have an arm");
                let ds = egroup
                    .new_dataset_builder()
                    .packed(true)
                    .empty_as(store::FieldSet::ALL.descriptor())
                    .fill_time(store::tuning::FILL_TIME)
                    .shape(r.len as usize)
                    .create(arm.name())
                    .map_err(err)?;
                create_attrs(&ds, &exposure_attrs(r)).map_err(err)?;
                ds
            }
        };
        datasets.push(keep(r.source).then_some(ds));
    }
    Ok(Output {
        file,
        datasets,
        tables,
    })
}
