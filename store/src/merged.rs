//! The merged layout of the newer surveys (SDSS-V field-MJDs, DESI coadds): one store file per group, holding
//! under the group's HDF5 path blocks of rows — one array per quantity whose first dimension is the
//! spectrum, keyed by a row-key array named by the group's `ROW_KEY` attribute — and tables (compound
//! datasets with the same key column). Arrays of a block without that first dimension, or with the
//! attribute `SHARED` = true (a shared wavelength grid, whatever its length), belong to every row.
//!
//! This module knows nothing of any survey: a survey builds a [`MergedGroup`] in memory, and this
//! module writes it (every object created once by [`crate::fast::Creator`], contiguous and
//! allocated at creation, then the data written as plain bytes at the offsets) or reads it back.
//! The query copies rows of the same files by byte ranges (query/src/merged_scan.rs).

use std::os::unix::fs::FileExt;
use std::path::Path;

use hdf5::types::TypeDescriptor;
use hdf5::{Datatype, Group};
use model::layout::{self, sdss5};
use model::GroupId;

use crate::attrs::{read_attrs, read_str_attr, AttrValue};
use crate::fast::{Creator, RawError};
use crate::table::{Table, TableError};

/// A failure reading or writing a merged store file.
#[derive(Debug, thiserror::Error)]
pub enum MergedError {
    #[error("{0}")]
    Hdf5(#[from] hdf5::Error),
    #[error("{0}")]
    Raw(#[from] RawError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Layout(String),
}

type Result<T> = std::result::Result<T, MergedError>;

/// One dataset of a block: its element type, shape (`[rows, …]` for a row array), packed bytes
/// (native endian) and attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub name: String,
    pub dtype: TypeDescriptor,
    pub shape: Vec<u64>,
    pub bytes: Vec<u8>,
    pub attrs: Vec<(String, AttrValue)>,
}

impl Array {
    /// A 1-D or 2-D array of plain values.
    pub fn of<T: hdf5::H5Type + bytemuck::Pod>(name: &str, shape: Vec<u64>, values: &[T]) -> Self {
        Self {
            name: name.to_string(),
            dtype: T::type_descriptor(),
            shape,
            bytes: bytemuck::cast_slice(values).to_vec(),
            attrs: Vec::new(),
        }
    }

    /// An array of `T` values given as their packed native-endian bytes (as read by
    /// `fitsread::Fits::image_rows_bytes`): no copy.
    pub fn of_bytes<T: hdf5::H5Type>(name: &str, shape: Vec<u64>, bytes: Vec<u8>) -> Self {
        debug_assert_eq!(
            shape.iter().product::<u64>() as usize * std::mem::size_of::<T>(),
            bytes.len()
        );
        Self {
            name: name.to_string(),
            dtype: T::type_descriptor(),
            shape,
            bytes,
            attrs: Vec::new(),
        }
    }

    /// A 1-D array of fixed-length strings, as wide as the longest (at least 1).
    pub fn strings(name: &str, values: &[String]) -> Self {
        let (w, bytes) = crate::v2::pack_strings(values);
        Self {
            name: name.to_string(),
            dtype: TypeDescriptor::FixedAscii(w),
            shape: vec![values.len() as u64],
            bytes,
            attrs: Vec::new(),
        }
    }

    /// The values of a fixed-length string array.
    pub fn string_values(&self) -> Option<Vec<String>> {
        let TypeDescriptor::FixedAscii(w) = self.dtype else {
            return None;
        };
        Some(crate::v2::unpack_strings(&self.bytes, w))
    }

    /// The values as `T` (None when the element type is not `T`'s).
    pub fn values<T: hdf5::H5Type + bytemuck::Pod>(&self) -> Option<Vec<T>> {
        (self.dtype == T::type_descriptor()).then(|| bytemuck::pod_collect_to_vec(&self.bytes))
    }

    /// Integer values widened to i64 (for row keys of any integer width).
    pub fn int_values(&self) -> Option<Vec<i64>> {
        use hdf5::types::IntSize;
        match self.dtype {
            TypeDescriptor::Integer(IntSize::U2) => {
                Some(self.values::<i16>()?.into_iter().map(i64::from).collect())
            }
            TypeDescriptor::Integer(IntSize::U4) => {
                Some(self.values::<i32>()?.into_iter().map(i64::from).collect())
            }
            TypeDescriptor::Integer(IntSize::U8) => self.values::<i64>(),
            _ => None,
        }
    }

    /// Bytes of one row (of the first dimension).
    pub fn row_bytes(&self) -> usize {
        let n = self.shape.first().copied().unwrap_or(0) as usize;
        self.bytes.len().checked_div(n).unwrap_or(0)
    }
}

/// One HDF5 group under the store group (`coadds`, `exposures/353048`), with its arrays; listed
/// parents first (a group with no arrays is just a parent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    pub path: String,
    pub attrs: Vec<(String, AttrValue)>,
    pub arrays: Vec<Array>,
}

impl Block {
    pub fn array(&self, name: &str) -> Option<&Array> {
        self.arrays.iter().find(|a| a.name == name)
    }

    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// Everything a merged store file holds of its group.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedGroup {
    pub group: GroupId,
    /// The name of the row-key array of every block and the key column of every table.
    pub row_key: String,
    /// The group's attributes (the source's primary header, units).
    pub attrs: Vec<(String, AttrValue)>,
    pub blocks: Vec<Block>,
    /// Tables directly under the group, by name.
    pub tables: Vec<(String, Table)>,
}

impl MergedGroup {
    pub fn block(&self, path: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.path == path)
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// The format of a store file (its root attribute): the merged layout's, or None.
pub fn is_merged(file: &hdf5::File) -> bool {
    read_str_attr(file, layout::FORMAT_ATTR).as_deref() == Some(sdss5::MERGED_FORMAT)
}

/// Writes `g` as a new file at `path` (a temporary name: the caller renames it into place) in the
/// merged layout. Returns the bytes of data written.
pub fn write(path: &Path, writer: &str, g: &MergedGroup) -> Result<u64> {
    write_as(path, writer, sdss5::MERGED_FORMAT, g)
}

/// Writes `g` as a new file whose root says it is in layout `format` (the merged layout, or the
/// SDSS-I–IV v2 layout, whose groups are blocks too): every object created once, contiguous and
/// allocated at creation, then the data written as bytes at their offsets. A group without a row
/// key (v2) gets no ROW_KEY attribute.
pub fn write_as(path: &Path, writer: &str, format: &str, g: &MergedGroup) -> Result<u64> {
    let file = hdf5::File::with_options()
        .with_fapl(|p| p.meta_block_size(1 << 20).libver_v110())
        .create(path)?;
    let mut writes: Vec<(u64, &[u8])> = Vec::new();
    let format = format.to_string();
    hdf5::sync::sync(|| -> Result<()> {
        let mut c = Creator::new()?;
        let root = file.id();
        c.attrs(
            root,
            &[
                (
                    layout::FORMAT_ATTR.to_string(),
                    AttrValue::Str(format.clone()),
                ),
                (
                    layout::WRITER_ATTR.to_string(),
                    AttrValue::Str(writer.into()),
                ),
            ],
        )?;
        let mut parent = None;
        for part in g.group.path_parts() {
            let id = parent.as_ref().map_or(root, |h: &crate::fast::Hid| h.id());
            parent = Some(c.group(id, &part)?);
        }
        let top = parent.ok_or_else(|| MergedError::Layout("a group without a path".into()))?;
        let mut attrs = g.attrs.clone();
        attrs.retain(|(k, _)| k != sdss5::ROW_KEY_ATTR);
        if !g.row_key.is_empty() {
            attrs.push((
                sdss5::ROW_KEY_ATTR.to_string(),
                AttrValue::Str(g.row_key.clone()),
            ));
        }
        c.attrs(top.id(), &attrs)?;
        let mut groups: Vec<(String, crate::fast::Hid)> = Vec::new();
        for b in &g.blocks {
            let (parent, name) = match b.path.rsplit_once('/') {
                Some((p, n)) => {
                    let parent = groups
                        .iter()
                        .find(|(q, _)| q == p)
                        .map(|(_, h)| h.id())
                        .ok_or_else(|| {
                            MergedError::Layout(format!("block {} before its parent", b.path))
                        })?;
                    (parent, n)
                }
                None => (top.id(), b.path.as_str()),
            };
            let h = c.group(parent, name)?;
            c.attrs(h.id(), &b.attrs)?;
            for a in &b.arrays {
                let t = c.add_descriptor(&a.dtype)?;
                let (ds, off) = c.dataset(h.id(), &a.name, t, &a.shape)?;
                c.attrs(ds.id(), &a.attrs)?;
                if let Some(off) = off {
                    writes.push((off, &a.bytes));
                }
            }
            groups.push((b.path.clone(), h));
        }
        for (name, t) in &g.tables {
            let tid = c.add_descriptor(&t.descriptor())?;
            let (ds, off) = c.dataset(top.id(), name, tid, &[t.num_rows() as u64])?;
            let units: Vec<(String, AttrValue)> = t
                .columns()
                .iter()
                .filter_map(|col| {
                    col.unit
                        .as_ref()
                        .map(|u| (layout::unit_attr(&col.name), AttrValue::Str(u.clone())))
                })
                .collect();
            c.attrs(ds.id(), &units)?;
            if let Some(off) = off {
                writes.push((off, t.bytes()));
            }
        }
        Ok(())
    })?;
    file.close()?;
    let out = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut bytes = 0;
    for (off, data) in writes {
        out.write_all_at(data, off)?;
        bytes += data.len() as u64;
    }
    Ok(bytes)
}

/// One spectrum of a merged store file: its row key, pixel count, number of exposures and CATALOGID
/// (0 when the group has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedEntry {
    pub row: i64,
    pub npix: usize,
    pub nexp: usize,
    pub catalogid: i64,
}

fn int_array(g: &Group, name: &str) -> hdf5::Result<Vec<i64>> {
    let ds = g.dataset(name)?;
    Ok(match ds.dtype()?.size() {
        2 => ds.read_raw::<i16>()?.into_iter().map(i64::from).collect(),
        4 => ds.read_raw::<i32>()?.into_iter().map(i64::from).collect(),
        _ => ds.read_raw::<i64>()?,
    })
}

/// The spectra of a merged store file: the rows of its `coadds` block, sorted by row key, with the
/// number of `exposures/<N>` blocks each appears in.
pub fn inventory(file: &hdf5::File, group: GroupId) -> hdf5::Result<Vec<MergedEntry>> {
    let top = file.group(&group.path())?;
    let key = read_str_attr(&top, sdss5::ROW_KEY_ATTR)
        .ok_or_else(|| hdf5::Error::from(format!("{} has no ROW_KEY attribute", group.path())))?;
    if !top.link_exists(layout::COADDS) {
        return Ok(Vec::new());
    }
    let coadds = top.group(layout::COADDS)?;
    let rows = int_array(&coadds, &key)?;
    let npix = int_array(&coadds, layout::NPIX)?;
    let catalogid = if coadds.link_exists(sdss5::CATALOGID) {
        int_array(&coadds, sdss5::CATALOGID)?
    } else {
        vec![0; rows.len()]
    };
    if npix.len() != rows.len() || catalogid.len() != rows.len() {
        return Err(format!("{}/coadds: index arrays of different lengths", group.path()).into());
    }
    let mut nexp: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    if top.link_exists(layout::EXPOSURES) {
        let exposures = top.group(layout::EXPOSURES)?;
        for name in exposures.member_names()? {
            for k in int_array(&exposures.group(&name)?, &key)? {
                *nexp.entry(k).or_default() += 1;
            }
        }
    }
    let mut out: Vec<MergedEntry> = (0..rows.len())
        .map(|i| MergedEntry {
            row: rows[i],
            npix: npix[i].max(0) as usize,
            nexp: nexp.get(&rows[i]).copied().unwrap_or(0),
            catalogid: catalogid[i],
        })
        .collect();
    out.sort_by_key(|e| e.row);
    Ok(out)
}

/// The real pixels of some spectra of a merged store file's `coadds` block, per column flattened in
/// the order asked (for the columnar export).
#[derive(Debug, Default)]
pub struct SpectraRows {
    /// Pixels of each spectrum.
    pub lengths: Vec<usize>,
    columns: Vec<(String, Vec<u32>)>,
}

impl SpectraRows {
    /// The raw 4-byte values of a column, all spectra one after the other.
    pub fn column(&self, name: &str) -> Option<&[u32]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// The block `block` of `group`, its row keys, and the index of each of the row keys `rows` in
/// them (a row key the block lacks is an error).
fn block_rows(
    file: &hdf5::File,
    group: GroupId,
    block: &str,
    rows: &[i64],
) -> Result<(Group, Vec<i64>, Vec<usize>)> {
    let top = file.group(&group.path())?;
    let key = read_str_attr(&top, sdss5::ROW_KEY_ATTR)
        .ok_or_else(|| MergedError::Layout(format!("{} has no ROW_KEY", group.path())))?;
    let g = top.group(block)?;
    let keys = int_array(&g, &key)?;
    let index: std::collections::HashMap<i64, usize> =
        keys.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    let picked = rows
        .iter()
        .map(|k| {
            index.get(k).copied().ok_or_else(|| {
                MergedError::Layout(format!("{key} {k} is not in {}/{block}", group.path()))
            })
        })
        .collect::<Result<_>>()?;
    Ok((g, keys, picked))
}

/// Reads the real pixels (PIX0..PIX0+NPIX) of the rows `rows` (row keys) of the `coadds` block
/// of `group`, every 4-byte per-pixel array; a row key the block lacks is an error.
pub fn read_rows(path: &Path, group: GroupId, rows: &[i64]) -> Result<SpectraRows> {
    let file = hdf5::File::open(path)?;
    let (coadds, keys, picked) = block_rows(&file, group, layout::COADDS, rows)?;
    let pix0 = int_array(&coadds, layout::PIX0)?;
    let npix = int_array(&coadds, layout::NPIX)?;
    let mut out = SpectraRows {
        lengths: picked.iter().map(|&r| npix[r].max(0) as usize).collect(),
        columns: Vec::new(),
    };
    for name in coadds.member_names()? {
        let ds = coadds.dataset(&name)?;
        let shape = ds.shape();
        if shape.len() != 2 || shape[0] != keys.len() || ds.dtype()?.size() != 4 {
            continue;
        }
        let width = shape[1];
        let mem = Datatype::from_descriptor(&ds.dtype()?.to_descriptor()?)?;
        let bytes = crate::raw::read_all(&ds, &mem, ds.size() * 4)?;
        let all: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        let mut values = Vec::with_capacity(out.lengths.iter().sum());
        for (&r, &n) in picked.iter().zip(&out.lengths) {
            let start = r * width + pix0[r].max(0) as usize;
            if start + n > (r + 1) * width {
                return Err(MergedError::Layout(format!(
                    "{}/coadds/{name}: row {r} runs past the array",
                    group.path()
                )));
            }
            values.extend_from_slice(&all[start..start + n]);
        }
        out.columns.push((name, values));
    }
    Ok(out)
}

/// The arrays of one block (`b`) of a merged store file for the row keys `rows`: row arrays cut
/// to those rows, in the order asked; shared arrays (attribute SHARED, or no row dimension) whole.
/// A row key the block lacks is an error.
pub fn read_block_rows(
    path: &Path,
    group: GroupId,
    block: &str,
    rows: &[i64],
) -> Result<Vec<Array>> {
    let file = hdf5::File::open(path)?;
    let (g, keys, picked) = block_rows(&file, group, block, rows)?;
    let mut out = Vec::new();
    for name in g.member_names()? {
        let ds = g.dataset(&name)?;
        let attrs = read_attrs(&ds)?;
        let dtype = ds.dtype()?.to_descriptor()?;
        let mem = Datatype::from_descriptor(&dtype)?;
        let shape: Vec<u64> = ds.shape().iter().map(|&n| n as u64).collect();
        let bytes = crate::raw::read_all(&ds, &mem, ds.size() * mem.size())?;
        let shared = attrs
            .iter()
            .any(|(k, v)| k == sdss5::SHARED_ATTR && *v == AttrValue::Bool(true));
        if shared || shape.first() != Some(&(keys.len() as u64)) {
            out.push(Array {
                name,
                dtype,
                shape,
                bytes,
                attrs,
            });
            continue;
        }
        let row = bytes.len() / keys.len().max(1);
        let mut cut = Vec::with_capacity(row * picked.len());
        for &r in &picked {
            cut.extend_from_slice(&bytes[r * row..(r + 1) * row]);
        }
        let mut shape = shape;
        shape[0] = picked.len() as u64;
        out.push(Array {
            name,
            dtype,
            shape,
            bytes: cut,
            attrs,
        });
    }
    Ok(out)
}

/// Reads the group `group` of the merged store file at `path` whole.
pub fn read(path: &Path, group: GroupId) -> Result<MergedGroup> {
    let file = hdf5::File::open(path)?;
    if !is_merged(&file) {
        return Err(MergedError::Layout(format!(
            "not a store file of the merged layout (its {} is not {})",
            layout::FORMAT_ATTR,
            sdss5::MERGED_FORMAT
        )));
    }
    let top = file.group(&group.path())?;
    let mut attrs = read_attrs(&top)?;
    let row_key = match attrs.iter().position(|(k, _)| k == sdss5::ROW_KEY_ATTR) {
        Some(i) => match attrs.remove(i).1 {
            AttrValue::Str(s) => s,
            _ => return Err(MergedError::Layout("ROW_KEY is not a string".into())),
        },
        None => {
            return Err(MergedError::Layout(format!(
                "{} has no {} attribute",
                group.path(),
                sdss5::ROW_KEY_ATTR
            )))
        }
    };
    let mut g = MergedGroup {
        group,
        row_key,
        attrs,
        blocks: Vec::new(),
        tables: Vec::new(),
    };
    for name in top.member_names()? {
        if let Ok(ds) = top.dataset(&name) {
            g.tables.push((name, Table::read(&ds)?));
        }
    }
    read_blocks(&top, "", &mut g.blocks)?;
    Ok(g)
}

/// Every group under `g` (relative paths, parents first, members in name order).
fn read_blocks(g: &Group, prefix: &str, out: &mut Vec<Block>) -> Result<()> {
    for name in g.member_names()? {
        let Ok(sub) = g.group(&name) else { continue };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let mut block = Block {
            path: path.clone(),
            attrs: read_attrs(&sub)?,
            arrays: Vec::new(),
        };
        for member in sub.member_names()? {
            let Ok(ds) = sub.dataset(&member) else {
                continue;
            };
            let dtype = ds.dtype()?.to_descriptor()?;
            let shape: Vec<u64> = ds.shape().iter().map(|&n| n as u64).collect();
            let mem = Datatype::from_descriptor(&dtype)?;
            let bytes = crate::raw::read_all(&ds, &mem, ds.size() * mem.size())?;
            block.arrays.push(Array {
                name: member,
                dtype,
                shape,
                bytes,
                attrs: read_attrs(&ds)?,
            });
        }
        out.push(block);
        read_blocks(&sub, &path, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Coadd, FieldMjd};

    #[test]
    fn a_group_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.h5");
        let group = GroupId::Field(FieldMjd::checked(Coadd::Daily, 112_360, 60_000).unwrap());
        let mut flux = Array::of::<f32>("FLUX", vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        flux.attrs
            .push(("UNIT".into(), AttrValue::Str("erg".into())));
        let g = MergedGroup {
            group,
            row_key: "TARGET_INDEX".into(),
            attrs: vec![("MJD".into(), AttrValue::Int(60_000))],
            blocks: vec![
                Block {
                    path: "coadds".into(),
                    attrs: vec![("LOGLAM0".into(), AttrValue::Float(3.5523))],
                    arrays: vec![flux, Array::of::<i32>("TARGET_INDEX", vec![2], &[1, 7])],
                },
                Block {
                    path: "exposures".into(),
                    ..Block::default()
                },
                Block {
                    path: "exposures/353048".into(),
                    attrs: Vec::new(),
                    arrays: vec![Array::strings("EXTNAME", &["MJD_EXP_60000-00".into()])],
                },
            ],
            tables: Vec::new(),
        };
        let bytes = write(&path, "test", &g).unwrap();
        assert_eq!(bytes, 8 + 24 + 16);
        let mut back = read(&path, group).unwrap();
        back.attrs.retain(|(k, _)| k != "ROW_KEY");
        assert_eq!(back, g);
        let e = back.block("exposures/353048").unwrap();
        assert_eq!(
            e.array("EXTNAME").unwrap().string_values().unwrap(),
            ["MJD_EXP_60000-00"]
        );
        assert_eq!(
            back.block("coadds")
                .unwrap()
                .array("TARGET_INDEX")
                .unwrap()
                .int_values(),
            Some(vec![1, 7])
        );
        let f = hdf5::File::open(&path).unwrap();
        assert!(is_merged(&f));
        let flux: Vec<f32> = f
            .dataset("/sdss5/daily/112360/60000/coadds/FLUX")
            .unwrap()
            .read_raw()
            .unwrap();
        assert_eq!(flux, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }
}
