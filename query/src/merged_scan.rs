//! The scan of a store file in the merged layout (SDSS-V field-MJDs; `store::merged`): for the
//! requested row keys, the output group is the store group with only those rows — every block of
//! rows (a group holding the row-key array) keeps the selected rows of each of its row arrays, in
//! key order; arrays without a row dimension are copied whole; tables keep the rows whose key
//! column is selected; blocks with no selected row are left out. Every piece is a byte range of the
//! source file (or bytes of its index arrays), so the copy phase needs nothing survey-specific.

use std::collections::HashSet;
use std::path::Path;

use hdf5::types::TypeDescriptor;
use model::layout::{self, sdss5};
use model::GroupId;
use store::attrs::{read_attrs, AttrValue};
use store::Table;

use crate::error::{QueryError, Result};
use crate::records::{DatasetSpec, GroupSpec, PlateMeta};
use crate::scan::{Piece, Scanned};

fn h5<'a>(path: &'a Path, what: impl Into<String>) -> impl FnOnce(hdf5::Error) -> QueryError + 'a {
    let what = what.into();
    move |e| QueryError::hdf5(path, what, e)
}

/// Where a dataset's bytes are, its encoded type, shape and attributes.
struct Placed {
    offset: u64,
    dtype: Vec<u8>,
    shape: Vec<u64>,
    bytes: u64,
    attrs: Vec<(String, AttrValue)>,
}

fn place(path: &Path, dpath: &str, ds: &hdf5::Dataset) -> Result<Placed> {
    let shape: Vec<u64> = ds.shape().iter().map(|&n| n as u64).collect();
    let elem = ds.dtype().map_err(h5(path, dpath))?.size() as u64;
    let bytes = elem * shape.iter().product::<u64>();
    let offset = match ds.offset() {
        Some(o) => o,
        None if bytes == 0 => 0,
        None => {
            return Err(QueryError::store(
                path,
                format!("{dpath} is not stored contiguously"),
            ))
        }
    };
    Ok(Placed {
        offset,
        dtype: store::fast::dataset_type(ds).map_err(|source| QueryError::Raw {
            path: path.to_path_buf(),
            source,
        })?,
        shape,
        bytes,
        attrs: read_attrs(ds).map_err(h5(path, dpath))?,
    })
}

/// The integer values of a 1-D key array.
fn key_values(path: &Path, dpath: &str, ds: &hdf5::Dataset) -> Result<Vec<i64>> {
    let read = |e| QueryError::hdf5(path, dpath, e);
    match ds.dtype().and_then(|t| t.to_descriptor()).map_err(read)? {
        TypeDescriptor::Integer(hdf5::types::IntSize::U2) => Ok(ds
            .read_raw::<i16>()
            .map_err(read)?
            .into_iter()
            .map(i64::from)
            .collect()),
        TypeDescriptor::Integer(hdf5::types::IntSize::U4) => Ok(ds
            .read_raw::<i32>()
            .map_err(read)?
            .into_iter()
            .map(i64::from)
            .collect()),
        TypeDescriptor::Integer(hdf5::types::IntSize::U8) => ds.read_raw::<i64>().map_err(read),
        other => Err(QueryError::store(
            path,
            format!("{dpath} is not an integer key array ({other:?})"),
        )),
    }
}

struct Scan<'a> {
    path: &'a Path,
    source: u32,
    key: String,
    wanted: HashSet<i64>,
    meta: PlateMeta,
    fills: Vec<Vec<Piece>>,
}

impl Scan<'_> {
    fn add_dataset(&mut self, path: String, p: &Placed, shape: Vec<u64>, pieces: Vec<Piece>) {
        self.meta.datasets.push(DatasetSpec {
            path,
            dtype: p.dtype.clone(),
            shape,
            attrs: p.attrs.clone(),
        });
        self.fills.push(pieces);
    }

    /// A block of rows: the selected rows of each row array, arrays without a row dimension whole.
    /// Returns the selected keys (None when the group is no block).
    fn block(&mut self, rel: &str, g: &hdf5::Group) -> Result<Option<Vec<i64>>> {
        if !g.link_exists(&self.key) {
            return Ok(None);
        }
        let kpath = format!("{rel}/{}", self.key);
        let kds = g.dataset(&self.key).map_err(h5(self.path, &kpath))?;
        let keys = key_values(self.path, &kpath, &kds)?;
        let mut rows: Vec<usize> = (0..keys.len())
            .filter(|&r| self.wanted.contains(&keys[r]))
            .collect();
        rows.sort_by_key(|&r| keys[r]);
        if rows.is_empty() {
            return Ok(Some(Vec::new()));
        }
        self.meta.groups.push(GroupSpec {
            path: rel.to_string(),
            attrs: read_attrs(g).map_err(h5(self.path, rel))?,
        });
        let n = keys.len() as u64;
        for name in g.member_names().map_err(h5(self.path, rel))? {
            let dpath = format!("{rel}/{name}");
            let Ok(ds) = g.dataset(&name) else {
                return Err(QueryError::store(
                    self.path,
                    format!("{dpath}: a block of rows holds a group"),
                ));
            };
            let p = place(self.path, &dpath, &ds)?;
            let shared = p
                .attrs
                .iter()
                .any(|(k, v)| k == sdss5::SHARED_ATTR && matches!(v, AttrValue::Bool(true)));
            if p.shape.first() == Some(&n) && !shared {
                let row_bytes = p.bytes.checked_div(n).unwrap_or(0);
                let mut shape = p.shape.clone();
                shape[0] = rows.len() as u64;
                let pieces = rows
                    .iter()
                    .enumerate()
                    .filter(|_| row_bytes > 0)
                    .map(|(j, &r)| Piece::Copy {
                        source: self.source,
                        src: p.offset + r as u64 * row_bytes,
                        at: j as u64 * row_bytes,
                        len: row_bytes,
                    })
                    .collect();
                self.add_dataset(dpath, &p, shape, pieces);
            } else {
                let pieces = if p.bytes > 0 {
                    vec![Piece::Copy {
                        source: self.source,
                        src: p.offset,
                        at: 0,
                        len: p.bytes,
                    }]
                } else {
                    Vec::new()
                };
                let shape = p.shape.clone();
                self.add_dataset(dpath, &p, shape, pieces);
            }
        }
        Ok(Some(rows.iter().map(|&r| keys[r]).collect()))
    }

    /// Every group under `g`: blocks with their rows, other groups when something under them is
    /// kept. Returns the keys selected in the `coadds` block, if found there.
    fn groups(
        &mut self,
        prefix: &str,
        g: &hdf5::Group,
        found: &mut Option<Vec<i64>>,
    ) -> Result<()> {
        for name in g.member_names().map_err(h5(self.path, prefix))? {
            let Ok(sub) = g.group(&name) else { continue };
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            match self.block(&rel, &sub)? {
                Some(keys) => {
                    if rel == layout::COADDS {
                        *found = Some(keys);
                    }
                }
                None => {
                    // A parent group: created only when a block under it is.
                    let at = self.meta.groups.len();
                    self.meta.groups.push(GroupSpec {
                        path: rel.clone(),
                        attrs: read_attrs(&sub).map_err(h5(self.path, &rel))?,
                    });
                    let before = self.meta.datasets.len();
                    let groups_before = self.meta.groups.len();
                    self.groups(&rel, &sub, found)?;
                    if self.meta.groups.len() == groups_before && self.meta.datasets.len() == before
                    {
                        self.meta.groups.remove(at);
                    }
                }
            }
        }
        Ok(())
    }

    /// The tables directly under the group: the rows of selected keys, as byte ranges.
    fn tables(&mut self, g: &hdf5::Group, found: &HashSet<i64>) -> Result<()> {
        for name in g.member_names().map_err(h5(self.path, "/"))? {
            let Ok(ds) = g.dataset(&name) else { continue };
            let table = Table::read(&ds).map_err(|source| QueryError::Table {
                path: self.path.to_path_buf(),
                source,
            })?;
            let p = place(self.path, &name, &ds)?;
            let row_size = table.row_size() as u64;
            let rows: Vec<(i64, u64)> = match table.key_values(&self.key) {
                Some(keys) => keys
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| found.contains(k))
                    .map(|(r, &k)| (k, r as u64))
                    .collect(),
                None => (0..table.num_rows() as u64).map(|r| (0, r)).collect(),
            };
            let mut rows = rows;
            rows.sort_by_key(|r| r.0);
            let pieces = rows
                .iter()
                .enumerate()
                .map(|(j, &(_, r))| Piece::Copy {
                    source: self.source,
                    src: p.offset + r * row_size,
                    at: j as u64 * row_size,
                    len: row_size,
                })
                .collect();
            self.add_dataset(name, &p, vec![rows.len() as u64], pieces);
        }
        Ok(())
    }
}

/// Scans the merged store file `file` (source `source`, pinned) for the rows `rows` of `group`.
pub fn scan_merged(
    path: &Path,
    file: &hdf5::File,
    source: u32,
    group: GroupId,
    rows: &[i64],
) -> Result<Scanned> {
    if !store::merged::is_merged(file) {
        return Err(QueryError::Foreign {
            path: path.to_path_buf(),
        });
    }
    let gpath = group.path();
    if !file.link_exists(&gpath) {
        return Ok(Scanned::default());
    }
    let g = file.group(&gpath).map_err(h5(path, &gpath))?;
    let attrs = read_attrs(&g).map_err(h5(path, &gpath))?;
    let key = attrs
        .iter()
        .find_map(|(k, v)| match (k.as_str(), v) {
            (sdss5::ROW_KEY_ATTR, AttrValue::Str(s)) => Some(s.clone()),
            _ => None,
        })
        .ok_or_else(|| QueryError::store(path, format!("{gpath} has no ROW_KEY attribute")))?;
    let mut scan = Scan {
        path,
        source,
        key,
        wanted: rows.iter().copied().collect(),
        meta: PlateMeta {
            group,
            attrs,
            attr_sets: vec![Vec::new()],
            groups: Vec::new(),
            datasets: Vec::new(),
        },
        fills: Vec::new(),
    };
    let mut found = None;
    scan.groups("", &g, &mut found)?;
    let found = found.unwrap_or_default();
    if found.is_empty() {
        return Ok(Scanned::default());
    }
    // Blocks other than the coadds keep only the spectra found there.
    let found_set: HashSet<i64> = found.iter().copied().collect();
    scan.tables(&g, &found_set)?;
    Ok(Scanned {
        found,
        meta: Some(scan.meta),
        fills: scan.fills,
        ..Scanned::default()
    })
}
