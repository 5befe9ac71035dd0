//! The create phase, on rank 0 alone: one serial HDF5 file with every group, dataset and attribute
//! of the output, each dataset contiguous and allocated at creation without fill values. What comes
//! back is where each dataset's bytes go in the file; the data itself is written afterwards by plain
//! file I/O on every rank (`copy.rs`), so no rank repeats any metadata work.

use std::collections::HashMap;
use std::path::Path;

use model::layout::{self, Layout};
use store::fast::{Creator, Hid, TypeId};
use store::{AttrValue, CoaddRecord};

use crate::error::{QueryError, Result};
use crate::records::{DatasetKind, DatasetRecord, PlateMeta};

/// Where the data of each output dataset starts in the file (None: empty, nothing to write).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Offsets {
    /// One per global record, in order.
    pub datasets: Vec<Option<u64>>,
    /// One per plate meta and [`crate::records::DatasetSpec`], in order.
    pub plates: Vec<Vec<Option<u64>>>,
}

/// The file-access settings of an output: the store's (1 MiB metadata blocks, libver 1.10) with a
/// modest metadata cache, which bounds memory however many objects are created.
fn output_fapl(p: &mut hdf5::file::FileAccessBuilder) -> &mut hdf5::file::FileAccessBuilder {
    p.meta_block_size(1 << 20).libver_v110()
}

/// Creates the output at `path` (serial driver) in `layout` with every object; returns the data
/// offsets.
pub fn create_output(
    path: &Path,
    layout: Layout,
    metas: &[PlateMeta],
    records: &[DatasetRecord],
) -> Result<Offsets> {
    let h5 = |what: &'static str| move |e| QueryError::hdf5(path, what, e);
    let raw = |source| QueryError::Raw {
        path: path.to_path_buf(),
        source,
    };
    let file = hdf5::File::with_options()
        .with_fapl(output_fapl)
        .create(path)
        .map_err(h5("cannot create the output"))?;
    let offsets = hdf5::sync::sync(|| -> Result<Offsets> {
        let mut c = Creator::new().map_err(raw)?;
        let root = file.id();
        c.attrs(
            root,
            &[
                (
                    layout::FORMAT_ATTR.to_string(),
                    AttrValue::Str(layout.format().into()),
                ),
                (
                    layout::WRITER_ATTR.to_string(),
                    AttrValue::Str(format!("boss-query {}", env!("CARGO_PKG_VERSION"))),
                ),
            ],
        )
        .map_err(raw)?;
        let coadd = c.add_h5type::<CoaddRecord>().map_err(raw)?;
        let mut exposure_types: HashMap<u8, TypeId> = HashMap::new();
        let mut offsets = Offsets {
            datasets: Vec::with_capacity(records.len()),
            plates: Vec::with_capacity(metas.len()),
        };
        let mut plate_mjd_groups: Vec<Hid> = Vec::with_capacity(metas.len());
        // The groups above each store group (`/3655`, `/sdss5/daily/112360`), created once: the
        // metas come sorted, so groups sharing a parent follow each other.
        let mut parents: HashMap<String, Hid> = HashMap::new();
        for meta in metas {
            let parts = meta.group.path_parts();
            let mut path = String::new();
            let mut parent = root;
            for part in &parts[..parts.len() - 1] {
                path = format!("{path}/{part}");
                if !parents.contains_key(&path) {
                    let g = c.group(parent, part).map_err(raw)?;
                    parents.insert(path.clone(), g);
                }
                parent = parents[&path].id();
            }
            let last = parts.last().expect("a group has a path");
            let group = c.group(parent, last).map_err(raw)?;
            c.attrs(group.id(), &meta.attrs).map_err(raw)?;
            let mut groups: HashMap<&str, Hid> = HashMap::new();
            for g in &meta.groups {
                let parent = match g.path.rsplit_once('/') {
                    Some((p, _)) => groups[p].id(),
                    None => group.id(),
                };
                let name = g.path.rsplit('/').next().unwrap_or(&g.path);
                let h = c.group(parent, name).map_err(raw)?;
                c.attrs(h.id(), &g.attrs).map_err(raw)?;
                groups.insert(&g.path, h);
            }
            let mut datasets = Vec::with_capacity(meta.datasets.len());
            for d in &meta.datasets {
                let (parent, name) = match d.path.rsplit_once('/') {
                    Some((p, n)) => (groups[p].id(), n),
                    None => (group.id(), d.path.as_str()),
                };
                let tid = c.add_type(&d.dtype).map_err(raw)?;
                let (ds, off) = c.dataset(parent, name, tid, &d.shape).map_err(raw)?;
                c.attrs(ds.id(), &d.attrs).map_err(raw)?;
                datasets.push(off);
            }
            offsets.plates.push(datasets);
            plate_mjd_groups.push(group);
        }

        let mut meta_index = 0;
        let mut fiber_group: Option<(i32, Hid)> = None;
        let mut exposures_group: Option<(i32, Hid)> = None;
        let mut exposure_group: Option<((i32, u32), Hid)> = None;
        for r in records {
            while metas[meta_index].group != model::GroupId::Plate(r.plate_mjd()) {
                meta_index += 1;
                fiber_group = None;
                exposures_group = None;
                exposure_group = None;
            }
            let meta = &metas[meta_index];
            if fiber_group.as_ref().is_none_or(|(f, _)| *f != r.fiber) {
                let g = c
                    .group(plate_mjd_groups[meta_index].id(), &r.fiber.to_string())
                    .map_err(raw)?;
                fiber_group = Some((r.fiber, g));
            }
            let fgroup = fiber_group.as_ref().expect("set above").1.id();
            let attrs = &meta.attr_sets[r.attrs as usize];
            let (ds, off) = match r.kind() {
                DatasetKind::Coadd => c
                    .dataset(fgroup, layout::COADD, coadd, &[r.len])
                    .map_err(raw)?,
                kind => {
                    if exposures_group.as_ref().is_none_or(|(f, _)| *f != r.fiber) {
                        let g = c.group(fgroup, layout::EXPOSURES).map_err(raw)?;
                        exposures_group = Some((r.fiber, g));
                    }
                    let key = (r.fiber, r.expid);
                    if exposure_group.as_ref().is_none_or(|(k, _)| *k != key) {
                        let parent = exposures_group.as_ref().expect("set above").1.id();
                        let g = c.group(parent, &r.expid.to_string()).map_err(raw)?;
                        exposure_group = Some((key, g));
                    }
                    let t = match exposure_types.get(&r.fields) {
                        Some(t) => *t,
                        None => {
                            let t = c.add_descriptor(&r.field_set().descriptor()).map_err(raw)?;
                            exposure_types.insert(r.fields, t);
                            t
                        }
                    };
                    let arm = kind.arm().expect("exposure kinds have an arm");
                    let parent = exposure_group.as_ref().expect("set above").1.id();
                    c.dataset(parent, arm.name(), t, &[r.len]).map_err(raw)?
                }
            };
            c.attrs(ds.id(), attrs).map_err(raw)?;
            offsets.datasets.push(off);
        }
        Ok(offsets)
    })?;
    file.close().map_err(h5("cannot close the output"))?;
    Ok(offsets)
}
