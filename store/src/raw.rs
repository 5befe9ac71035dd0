//! Whole-dataset reads and writes of raw bytes with an explicit memory type, for types known only at
//! run time (generic tables, copies). Every raw HDF5 call takes the library's global lock.

use hdf5::{Dataset, Datatype};
use hdf5_sys::h5d::{H5Dread, H5Dwrite};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5p::H5P_DEFAULT;
use hdf5_sys::h5s::H5S_ALL;

/// Writes `bytes` (packed elements of `mem_type`) to the whole of `ds`.
pub fn write_all(ds: &Dataset, mem_type: &Datatype, bytes: &[u8]) -> hdf5::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    write_all_with(ds, mem_type, bytes, H5P_DEFAULT)
}

/// Writes `bytes` to the whole of `ds` with a given transfer property list (e.g. collective MPI-IO).
pub fn write_all_with(
    ds: &Dataset,
    mem_type: &Datatype,
    bytes: &[u8],
    dxpl: hid_t,
) -> hdf5::Result<()> {
    let expected = ds.size() * mem_type.size();
    if expected != bytes.len() {
        return Err(format!(
            "{}: {} bytes for a dataset of {expected}",
            ds.name(),
            bytes.len()
        )
        .into());
    }
    // SAFETY: the buffer holds exactly size × element-size bytes of the memory type.
    let status = hdf5::sync::sync(|| unsafe {
        H5Dwrite(
            ds.id(),
            mem_type.id(),
            H5S_ALL,
            H5S_ALL,
            dxpl,
            bytes.as_ptr().cast(),
        )
    });
    if status < 0 {
        return Err(format!("H5Dwrite failed on {}", ds.name()).into());
    }
    Ok(())
}

/// Reads the whole of `ds` as `len` bytes of packed elements of `mem_type`.
pub fn read_all(ds: &Dataset, mem_type: &Datatype, len: usize) -> hdf5::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    if len == 0 {
        return Ok(buf);
    }
    if ds.size() * mem_type.size() != len {
        return Err(format!("{}: size does not match its type", ds.name()).into());
    }
    // SAFETY: the buffer holds exactly size × element-size bytes of the memory type.
    let status = hdf5::sync::sync(|| unsafe {
        H5Dread(
            ds.id(),
            mem_type.id(),
            H5S_ALL,
            H5S_ALL,
            H5P_DEFAULT,
            buf.as_mut_ptr().cast(),
        )
    });
    if status < 0 {
        return Err(format!("H5Dread failed on {}", ds.name()).into());
    }
    Ok(buf)
}
