//! A real FITS file opened read-only as the template of generated ones: its HDUs are found by
//! EXTNAME, their headers copied into a new file by cfitsio ([`crate::fits::FitsWriter::copy_header`]),
//! their table rows and images read whole. The DESI files ([`crate::desi`]) are made this way after
//! the real pair in data-samples/real/desi.

use std::ffi::{c_int, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use anyhow::{bail, ensure, Context, Result};
use fitsio_sys as sys;

/// cfitsio's "any HDU type" for `ffmnhd`.
const ANY_HDU: c_int = -1;

/// An open template file; dropping it closes it.
pub struct Template {
    pub(crate) fptr: *mut sys::fitsfile,
    path: PathBuf,
}

// SAFETY: the handle is used by one thread at a time (methods take `&mut self`), and cfitsio's
// global state is guarded by `fits::io_guard` where the library is not reentrant.
unsafe impl Send for Template {}

impl Template {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> Result<Self> {
        let name = CString::new(
            path.to_str()
                .with_context(|| format!("path {} is not UTF-8", path.display()))?,
        )?;
        let mut fptr = ptr::null_mut();
        let mut status = 0;
        // SAFETY: valid out-pointer and NUL-terminated file name; READONLY is 0.
        unsafe { sys::ffopen(&mut fptr, name.as_ptr(), 0, &mut status) };
        let t = Self {
            fptr,
            path: path.to_path_buf(),
        };
        t.check(status, "opening the template")?;
        ensure!(
            !t.fptr.is_null(),
            "cfitsio gave no handle for {}",
            path.display()
        );
        Ok(t)
    }

    fn check(&self, status: c_int, what: &str) -> Result<()> {
        if status != 0 {
            bail!(
                "cfitsio error {status} {what} in the template {}",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Moves to the primary HDU.
    pub fn primary(&mut self) -> Result<()> {
        let mut status = 0;
        // SAFETY: an open handle; the HDU type out-pointer may be null.
        unsafe { sys::ffmahd(self.fptr, 1, ptr::null_mut(), &mut status) };
        self.check(status, "moving to the primary HDU")
    }

    /// Moves to the HDU named `extname`.
    pub fn select(&mut self, extname: &str) -> Result<()> {
        let name = CString::new(extname)?;
        let mut status = 0;
        // SAFETY: an open handle and a NUL-terminated name cfitsio only reads.
        unsafe { sys::ffmnhd(self.fptr, ANY_HDU, name.as_ptr() as *mut _, 0, &mut status) };
        self.check(status, &format!("finding HDU {extname}"))
    }

    /// The rows of the current table, packed as FITS stores them (big-endian), and the bytes of
    /// one row.
    pub fn raw_rows(&mut self) -> Result<(Vec<u8>, usize)> {
        let (mut rows, mut width, mut status): (sys::LONGLONG, std::ffi::c_long, c_int) = (0, 0, 0);
        let key = CString::new("NAXIS1")?;
        // SAFETY: an open handle on a table HDU; valid out-pointers.
        unsafe {
            sys::ffgnrwll(self.fptr, &mut rows, &mut status);
            sys::ffgkyj(
                self.fptr,
                key.as_ptr(),
                &mut width,
                ptr::null_mut(),
                &mut status,
            );
        }
        self.check(status, "reading the table size")?;
        let (rows, width) = (rows as usize, width as usize);
        let mut bytes = vec![0u8; rows * width];
        if !bytes.is_empty() {
            // SAFETY: `bytes` holds rows * width bytes, the whole table.
            unsafe {
                sys::ffgtbb(
                    self.fptr,
                    1,
                    1,
                    bytes.len() as sys::LONGLONG,
                    bytes.as_mut_ptr(),
                    &mut status,
                )
            };
            self.check(status, "reading the table rows")?;
        }
        Ok((bytes, width))
    }

    /// The current image's pixels as f64, all of them.
    pub fn image_f64(&mut self) -> Result<Vec<f64>> {
        let mut naxes = [0 as std::ffi::c_long; 3];
        let (mut naxis, mut status): (c_int, c_int) = (0, 0);
        // SAFETY: an open handle; naxes has room for 3 axes.
        unsafe {
            sys::ffgidm(self.fptr, &mut naxis, &mut status);
            sys::ffgisz(self.fptr, 3, naxes.as_mut_ptr(), &mut status);
        }
        self.check(status, "reading the image size")?;
        let n: usize = naxes[..naxis.clamp(0, 3) as usize]
            .iter()
            .map(|&d| d as usize)
            .product();
        let mut out = vec![0f64; if naxis == 0 { 0 } else { n }];
        if !out.is_empty() {
            let mut anynul = 0;
            // SAFETY: `out` holds n doubles, every pixel of the image.
            unsafe {
                sys::ffgpv(
                    self.fptr,
                    sys::TDOUBLE as c_int,
                    1,
                    out.len() as sys::LONGLONG,
                    ptr::null_mut(),
                    out.as_mut_ptr() as *mut c_void,
                    &mut anynul,
                    &mut status,
                )
            };
            self.check(status, "reading the image")?;
        }
        Ok(out)
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        if !self.fptr.is_null() {
            let mut status = 0;
            // SAFETY: an open handle, never used again.
            unsafe { sys::ffclos(self.fptr, &mut status) };
        }
    }
}
