//! Creating many HDF5 objects fast: groups, and contiguous datasets allocated at creation (no fill
//! values) whose file offset is returned, so that their bytes can be written later by plain file
//! I/O. Raw HDF5 calls with property lists, dataspaces and types made once and reused; every call
//! takes the HDF5 library lock (`hdf5::sync::sync`), and every id is closed by [`Hid`]'s drop.

use std::collections::HashMap;
use std::ffi::{c_void, CString};

use hdf5::types::{TypeDescriptor, VarLenUnicode};
use hdf5::{Datatype, H5Type};
use hdf5_sys::h5::{haddr_t, hsize_t, HADDR_UNDEF};
use hdf5_sys::h5a::{H5Acreate2, H5Awrite};
use hdf5_sys::h5d::{
    H5D_alloc_time_t, H5D_fill_time_t, H5D_layout_t, H5Dcreate2, H5Dget_offset, H5Dget_type,
};
use hdf5_sys::h5g::H5Gcreate2;
use hdf5_sys::h5i::{hid_t, H5Idec_ref};
use hdf5_sys::h5p::{
    H5Pcreate, H5Pset_alloc_time, H5Pset_fill_time, H5Pset_layout, H5Pset_obj_track_times,
    H5P_CLS_DATASET_CREATE, H5P_CLS_GROUP_CREATE, H5P_DEFAULT,
};
use hdf5_sys::h5s::{H5S_class_t, H5Screate, H5Screate_simple};
use hdf5_sys::h5t::{H5Tdecode1, H5Tencode};

use crate::attrs::AttrValue;

/// An error of a raw HDF5 call: what was being done.
#[derive(Debug, thiserror::Error)]
#[error("HDF5: {0} failed")]
pub struct RawError(pub String);

pub type Result<T> = std::result::Result<T, RawError>;

/// An owned HDF5 id, released when dropped.
#[derive(Debug)]
pub struct Hid(hid_t);

impl Hid {
    /// Takes ownership of an id returned by a raw call (negative: the call failed).
    pub fn new(id: hid_t, what: impl FnOnce() -> String) -> Result<Self> {
        if id < 0 {
            Err(RawError(what()))
        } else {
            Ok(Self(id))
        }
    }

    pub fn id(&self) -> hid_t {
        self.0
    }
}

impl Drop for Hid {
    fn drop(&mut self) {
        // SAFETY: an id this object owns, released once.
        hdf5::sync::sync(|| unsafe { H5Idec_ref(self.0) });
    }
}

fn cname(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| RawError(format!("name {name:?} holds a NUL")))
}

/// The serialised form of a datatype (`H5Tencode`): what the ranks send to recreate it exactly.
pub fn encode_type(type_id: hid_t) -> Result<Vec<u8>> {
    hdf5::sync::sync(|| {
        let mut n: usize = 0;
        // SAFETY: the first call with a null buffer only reports the size.
        if unsafe { H5Tencode(type_id, std::ptr::null_mut(), &mut n) } < 0 {
            return Err(RawError("H5Tencode".into()));
        }
        let mut buf = vec![0u8; n];
        // SAFETY: the buffer has the size just reported.
        if unsafe { H5Tencode(type_id, buf.as_mut_ptr().cast(), &mut n) } < 0 {
            return Err(RawError("H5Tencode".into()));
        }
        Ok(buf)
    })
}

/// A datatype from its [`encode_type`] form.
pub fn decode_type(bytes: &[u8]) -> Result<Hid> {
    if bytes.is_empty() {
        return Err(RawError("H5Tdecode of an empty buffer".into()));
    }
    // SAFETY: HDF5 reads an encoded type it wrote itself (sent between ranks of one job).
    let id = hdf5::sync::sync(|| unsafe { H5Tdecode1(bytes.as_ptr().cast()) });
    Hid::new(id, || "H5Tdecode".into())
}

/// The file datatype of a dataset, encoded.
pub fn dataset_type(ds: &hdf5::Dataset) -> Result<Vec<u8>> {
    // SAFETY: a valid dataset id; the returned type id is owned by the Hid.
    let t = Hid::new(hdf5::sync::sync(|| unsafe { H5Dget_type(ds.id()) }), || {
        format!("H5Dget_type of {}", ds.name())
    })?;
    encode_type(t.id())
}

/// What the scan needs to know of a dataset, from raw calls: its element count, the file offset of
/// its data (None when not contiguous or not allocated), whether its type equals `expected`, and
/// whether it has attributes.
#[derive(Debug, Clone, Copy)]
pub struct DatasetInfo {
    pub len: u64,
    pub offset: Option<u64>,
    pub type_matches: bool,
    pub has_attrs: bool,
}

/// [`DatasetInfo`] of a dataset, comparing its type with `expected` (a type id).
pub fn dataset_info(ds: &hdf5::Dataset, expected: hid_t) -> Result<DatasetInfo> {
    use hdf5_sys::h5o::{H5O_info1_t, H5Oget_info2, H5O_INFO_NUM_ATTRS};
    use hdf5_sys::h5t::H5Tequal;
    let id = ds.id();
    let len = ds.size() as u64;
    hdf5::sync::sync(|| {
        // SAFETY: raw queries on a valid dataset id; the type id is released by the Hid.
        let t = Hid::new(unsafe { H5Dget_type(id) }, || "H5Dget_type".into())?;
        let equal = unsafe { H5Tequal(t.id(), expected) };
        let offset = unsafe { H5Dget_offset(id) };
        let mut info = H5O_info1_t::default();
        let status = unsafe { H5Oget_info2(id, &mut info, H5O_INFO_NUM_ATTRS) };
        if equal < 0 || status < 0 {
            return Err(RawError("dataset type or attribute count".into()));
        }
        let nattrs = info.num_attrs;
        Ok(DatasetInfo {
            len,
            offset: (offset != HADDR_UNDEF).then_some(offset),
            type_matches: equal > 0,
            has_attrs: nattrs > 0,
        })
    })
}

/// A datatype id for a type descriptor (kept alive by the returned Hid).
pub fn type_of(d: &TypeDescriptor) -> Result<Hid> {
    let t = Datatype::from_descriptor(d).map_err(|e| RawError(format!("datatype: {e}")))?;
    decode_type(&encode_type(t.id())?)
}

/// Makes groups and early-allocated contiguous datasets in one file, reusing property lists,
/// dataspaces and datatypes.
pub struct Creator {
    dcpl: Hid,
    gcpl: Hid,
    scalar: Hid,
    spaces: HashMap<Vec<u64>, Hid>,
    types: Vec<Hid>,
    type_ids: HashMap<Vec<u8>, TypeId>,
    attr_types: [Datatype; 4],
}

/// A datatype registered with [`Creator::add_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeId(usize);

impl Creator {
    pub fn new() -> Result<Self> {
        hdf5::sync::sync(|| {
            // SAFETY: plain property-list and dataspace calls, checked by Hid::new.
            let dcpl = Hid::new(unsafe { H5Pcreate(*H5P_CLS_DATASET_CREATE) }, || {
                "H5Pcreate(dataset create)".into()
            })?;
            let gcpl = Hid::new(unsafe { H5Pcreate(*H5P_CLS_GROUP_CREATE) }, || {
                "H5Pcreate(group create)".into()
            })?;
            // No access/modification times in object headers: smaller headers, less work per
            // object, and the same bytes for the same query.
            let ok = unsafe {
                H5Pset_layout(dcpl.id(), H5D_layout_t::H5D_CONTIGUOUS) >= 0
                    && H5Pset_alloc_time(dcpl.id(), H5D_alloc_time_t::H5D_ALLOC_TIME_EARLY) >= 0
                    && H5Pset_fill_time(dcpl.id(), H5D_fill_time_t::H5D_FILL_TIME_NEVER) >= 0
                    && H5Pset_obj_track_times(dcpl.id(), 0) >= 0
                    && H5Pset_obj_track_times(gcpl.id(), 0) >= 0
            };
            if !ok {
                return Err(RawError("dataset creation properties".into()));
            }
            let scalar = Hid::new(unsafe { H5Screate(H5S_class_t::H5S_SCALAR) }, || {
                "H5Screate(scalar)".into()
            })?;
            let attr_types = [
                Datatype::from_type::<i64>(),
                Datatype::from_type::<f64>(),
                Datatype::from_type::<bool>(),
                Datatype::from_type::<VarLenUnicode>(),
            ];
            let [a, b, c, d] = attr_types;
            let err = |e: hdf5::Error| RawError(format!("attribute types: {e}"));
            Ok(Self {
                dcpl,
                gcpl,
                scalar,
                spaces: HashMap::new(),
                types: Vec::new(),
                type_ids: HashMap::new(),
                attr_types: [
                    a.map_err(err)?,
                    b.map_err(err)?,
                    c.map_err(err)?,
                    d.map_err(err)?,
                ],
            })
        })
    }

    /// Registers a datatype from its encoded form.
    pub fn add_type(&mut self, encoded: &[u8]) -> Result<TypeId> {
        if let Some(t) = self.type_ids.get(encoded) {
            return Ok(*t);
        }
        self.types.push(decode_type(encoded)?);
        let t = TypeId(self.types.len() - 1);
        self.type_ids.insert(encoded.to_vec(), t);
        Ok(t)
    }

    /// Registers the datatype of a compound record type.
    pub fn add_descriptor(&mut self, d: &TypeDescriptor) -> Result<TypeId> {
        let t = Datatype::from_descriptor(d).map_err(|e| RawError(format!("datatype: {e}")))?;
        self.add_type(&encode_type(t.id())?)
    }

    /// Registers the datatype of an `H5Type`.
    pub fn add_h5type<T: H5Type>(&mut self) -> Result<TypeId> {
        self.add_descriptor(&T::type_descriptor())
    }

    /// Creates group `name` under `parent`.
    pub fn group(&self, parent: hid_t, name: &str) -> Result<Hid> {
        let c = cname(name)?;
        let gcpl = self.gcpl.id();
        // SAFETY: valid parent id and NUL-terminated name.
        let id = hdf5::sync::sync(|| unsafe {
            H5Gcreate2(parent, c.as_ptr(), H5P_DEFAULT, gcpl, H5P_DEFAULT)
        });
        Hid::new(id, || format!("creating group {name}"))
    }

    /// Creates dataset `name` under `parent` with this type and shape, allocated now; returns it
    /// and its byte offset in the file (None for an empty dataset, which has no storage).
    pub fn dataset(
        &mut self,
        parent: hid_t,
        name: &str,
        t: TypeId,
        shape: &[u64],
    ) -> Result<(Hid, Option<u64>)> {
        let c = cname(name)?;
        if !self.spaces.contains_key(shape) {
            let dims: Vec<hsize_t> = shape.to_vec();
            // SAFETY: dims holds shape.len() sizes.
            let s = hdf5::sync::sync(|| unsafe {
                H5Screate_simple(dims.len() as i32, dims.as_ptr(), std::ptr::null())
            });
            self.spaces.insert(
                shape.to_vec(),
                Hid::new(s, || format!("dataspace {shape:?}"))?,
            );
        }
        let space = self.spaces[shape].id();
        let type_id = self.types[t.0].id();
        let dcpl = self.dcpl.id();
        // SAFETY: valid ids; the dataset id is owned by the returned Hid.
        let (id, offset) = hdf5::sync::sync(|| unsafe {
            let id = H5Dcreate2(
                parent,
                c.as_ptr(),
                type_id,
                space,
                H5P_DEFAULT,
                dcpl,
                H5P_DEFAULT,
            );
            let offset: haddr_t = if id >= 0 { H5Dget_offset(id) } else { 0 };
            (id, offset)
        });
        let ds = Hid::new(id, || format!("creating dataset {name}"))?;
        let bytes: u64 = shape.iter().product();
        let offset = match offset {
            HADDR_UNDEF if bytes == 0 => None,
            HADDR_UNDEF => {
                return Err(RawError(format!(
                    "dataset {name} was not allocated at creation"
                )))
            }
            o => Some(o),
        };
        Ok((ds, offset))
    }

    /// Creates a scalar attribute on an object (which has none of that name).
    pub fn attr(&self, obj: hid_t, name: &str, value: &AttrValue) -> Result<()> {
        let c = cname(name)?;
        let status = match value {
            AttrValue::Int(v) => self.write_attr(obj, &c, 0, (v as *const i64).cast()),
            AttrValue::Float(v) => self.write_attr(obj, &c, 1, (v as *const f64).cast()),
            AttrValue::Bool(v) => {
                let b = u8::from(*v);
                self.write_attr(obj, &c, 2, (&b as *const u8).cast())
            }
            AttrValue::Str(v) => {
                let text = CString::new(v.replace('\0', " ")).expect("no NUL left");
                // A variable-length string in memory is a pointer to its characters.
                let ptr = text.as_ptr();
                self.write_attr(obj, &c, 3, (&ptr as *const *const std::ffi::c_char).cast())
            }
        };
        if status < 0 {
            return Err(RawError(format!("writing attribute {name}")));
        }
        Ok(())
    }

    fn write_attr(&self, obj: hid_t, name: &CString, kind: usize, buf: *const c_void) -> i32 {
        let t = self.attr_types[kind].id();
        let scalar = self.scalar.id();
        // SAFETY: `buf` holds one value of the attribute's memory type `t`.
        hdf5::sync::sync(|| unsafe {
            let a = H5Acreate2(obj, name.as_ptr(), t, scalar, H5P_DEFAULT, H5P_DEFAULT);
            if a < 0 {
                return -1;
            }
            let s = H5Awrite(a, t, buf);
            H5Idec_ref(a);
            s
        })
    }

    /// Creates every attribute of a list on an object.
    pub fn attrs(&self, obj: hid_t, attrs: &[(String, AttrValue)]) -> Result<()> {
        attrs.iter().try_for_each(|(k, v)| self.attr(obj, k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CoaddRecord;

    #[test]
    fn datasets_are_allocated_where_the_offset_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.h5");
        {
            let f = hdf5::File::create(&path).unwrap();
            let mut c = Creator::new().unwrap();
            let t = c.add_h5type::<CoaddRecord>().unwrap();
            let g = c.group(f.id(), "3655").unwrap();
            let (ds, off) = c.dataset(g.id(), "coadd", t, &[10]).unwrap();
            c.attr(ds.id(), "EXTNAME", &AttrValue::Str("B1-00104927".into()))
                .unwrap();
            c.attr(ds.id(), "SPECTROGRAPH", &AttrValue::Int(1)).unwrap();
            c.attr(ds.id(), "X", &AttrValue::Float(f64::NAN)).unwrap();
            let (_, empty) = c.dataset(g.id(), "empty", t, &[0]).unwrap();
            assert_eq!(empty, None);
            drop(ds);
            drop(g);
            f.close().unwrap();
            // Write the bytes of 10 records straight into the file.
            let rec: Vec<CoaddRecord> = (0..10)
                .map(|i| CoaddRecord {
                    wave: i as f32,
                    flux: 2.0 * i as f32,
                    ..Default::default()
                })
                .collect();
            // SAFETY: CoaddRecord is repr(C) plain data.
            let bytes =
                unsafe { std::slice::from_raw_parts(rec.as_ptr().cast::<u8>(), rec.len() * 32) };
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(bytes, off.unwrap()).unwrap();
        }
        let f = hdf5::File::open(&path).unwrap();
        let ds = f.dataset("3655/coadd").unwrap();
        let back = ds.read_raw::<CoaddRecord>().unwrap();
        assert_eq!(back[3].flux, 6.0);
        let attrs = crate::attrs::read_attrs(&ds).unwrap();
        assert_eq!(
            attrs[0],
            ("EXTNAME".into(), AttrValue::Str("B1-00104927".into()))
        );
        assert_eq!(attrs[1], ("SPECTROGRAPH".into(), AttrValue::Int(1)));
        assert!(matches!(attrs[2].1, AttrValue::Float(v) if v.is_nan()));
        let encoded = dataset_type(&ds).unwrap();
        assert!(decode_type(&encoded).is_ok());
    }
}
