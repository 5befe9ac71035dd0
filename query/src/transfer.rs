//! Data transfer into the shared output file: independent writes (the default HDF5 transfer), or
//! collective writes through a transfer property list built by hand (hdf5-metno does not expose it),
//! with HDF5's own report of whether each collective write really was collective.

use hdf5::{Dataset, Datatype};
use hdf5_sys::h5::herr_t;
use hdf5_sys::h5d::{H5D_mpio_actual_io_mode_t, H5Dwrite};
use hdf5_sys::h5i::hid_t;
use hdf5_sys::h5p::{
    H5FD_mpio_xfer_t, H5Pclose, H5Pcreate, H5Pset_dxpl_mpio, H5P_CLS_DATASET_XFER, H5P_DEFAULT,
};
use hdf5_sys::h5s::{H5Sclose, H5Screate_simple, H5Sselect_none};

extern "C" {
    // In HDF5 ≥ 1.8.10 but not declared by hdf5-metno-sys.
    fn H5Pget_mpio_actual_io_mode(
        plist_id: hid_t,
        actual_io_mode: *mut H5D_mpio_actual_io_mode_t,
    ) -> herr_t;
    fn H5Pget_mpio_no_collective_cause(
        plist_id: hid_t,
        local_cause: *mut u32,
        global_cause: *mut u32,
    ) -> herr_t;
}

/// How ranks write their datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// Each rank writes only its own datasets.
    Independent,
    /// Every rank joins every write (an empty selection where it owns nothing).
    Collective,
}

/// Counts of collective writes and why HDF5 fell back to independent I/O.
#[derive(Debug, Default, Clone, Copy)]
pub struct CollectiveReport {
    pub collective: u64,
    pub fell_back: u64,
    pub causes: u32,
}

/// A dataset transfer property list.
pub struct Transfer {
    dxpl: hid_t,
    mode: IoMode,
    pub report: CollectiveReport,
}

impl Transfer {
    pub fn new(mode: IoMode) -> hdf5::Result<Self> {
        let dxpl = match mode {
            IoMode::Independent => H5P_DEFAULT,
            IoMode::Collective => hdf5::sync::sync(|| unsafe {
                // SAFETY: plain HDF5 property-list calls, checked below.
                let p = H5Pcreate(*H5P_CLS_DATASET_XFER);
                if p >= 0 && H5Pset_dxpl_mpio(p, H5FD_mpio_xfer_t::H5FD_MPIO_COLLECTIVE) < 0 {
                    H5Pclose(p);
                    return -1;
                }
                p
            }),
        };
        if dxpl < 0 {
            return Err("cannot create a collective transfer property list".into());
        }
        Ok(Self {
            dxpl,
            mode,
            report: CollectiveReport::default(),
        })
    }

    pub fn mode(&self) -> IoMode {
        self.mode
    }

    /// Writes all of `ds` from `bytes` (packed elements of `mem_type`).
    pub fn write(&mut self, ds: &Dataset, mem_type: &Datatype, bytes: &[u8]) -> hdf5::Result<()> {
        if bytes.is_empty() {
            return match self.mode {
                IoMode::Independent => Ok(()),
                IoMode::Collective => self.join(ds, mem_type),
            };
        }
        store::raw::write_all_with(ds, mem_type, bytes, self.dxpl)?;
        if self.mode == IoMode::Collective {
            self.record_actual_mode();
        }
        Ok(())
    }

    /// Joins a collective write of a dataset this rank does not own (empty selection).
    pub fn join(&mut self, ds: &Dataset, mem_type: &Datatype) -> hdf5::Result<()> {
        let dummy = [0u8; 64];
        let status = hdf5::sync::sync(|| unsafe {
            // SAFETY: a 1-element dataspace with nothing selected; no byte of the buffer is read.
            let dims = [1u64];
            let mem = H5Screate_simple(1, dims.as_ptr(), std::ptr::null());
            let file_space = hdf5_sys::h5d::H5Dget_space(ds.id());
            H5Sselect_none(mem);
            H5Sselect_none(file_space);
            let s = H5Dwrite(
                ds.id(),
                mem_type.id(),
                mem,
                file_space,
                self.dxpl,
                dummy.as_ptr().cast(),
            );
            H5Sclose(mem);
            H5Sclose(file_space);
            s
        });
        if status < 0 {
            return Err(format!("H5Dwrite (collective, empty) failed on {}", ds.name()).into());
        }
        Ok(())
    }

    fn record_actual_mode(&mut self) {
        let mut mode = H5D_mpio_actual_io_mode_t::H5D_MPIO_NO_COLLECTIVE;
        let (mut local, mut global) = (0u32, 0u32);
        hdf5::sync::sync(|| unsafe {
            // SAFETY: out-parameters of the right types.
            H5Pget_mpio_actual_io_mode(self.dxpl, &mut mode);
            H5Pget_mpio_no_collective_cause(self.dxpl, &mut local, &mut global);
        });
        if mode == H5D_mpio_actual_io_mode_t::H5D_MPIO_NO_COLLECTIVE {
            self.report.fell_back += 1;
            self.report.causes |= local | global;
        } else {
            self.report.collective += 1;
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if self.dxpl != H5P_DEFAULT {
            // SAFETY: a property list this object created.
            hdf5::sync::sync(|| unsafe { H5Pclose(self.dxpl) });
        }
    }
}

/// Names of the causes HDF5 gives for not doing collective I/O (H5D_mpio_no_collective_cause_t).
pub fn cause_names(causes: u32) -> Vec<&'static str> {
    [
        (1, "independent I/O was requested"),
        (
            2,
            "the memory and file datatypes differ (datatype conversion)",
        ),
        (4, "a data transform is set"),
        (8, "MPI derived types are disabled by the environment"),
        (16, "the dataspaces are not simple or scalar"),
        (32, "the dataset is neither contiguous nor chunked"),
        (64, "the dataset has filters"),
    ]
    .into_iter()
    .filter(|(bit, _)| causes & bit != 0)
    .map(|(_, name)| name)
    .collect()
}
