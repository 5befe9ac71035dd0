//! A small safe writer over cfitsio: whole images and whole table columns in one call each.
//!
//! Every file is written under a temporary name beside its final name and renamed into place
//! only after cfitsio has closed it without error, so a half-written file never carries a final name.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{bail, ensure, Context, Result};
use fitsio_sys as sys;
use model::atomic::AtomicFile;

use crate::template::Template;

/// Value of one header card.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Real(f64),
    Str(String),
    /// Logical (`T` / `F`).
    Bool(bool),
    /// Commentary text: a `COMMENT` or `HISTORY` card, or a card with a blank keyword.
    Text(String),
}

/// One header card: name, value and comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub name: String,
    pub value: Value,
    pub comment: &'static str,
}

impl Card {
    pub fn int(name: impl Into<String>, value: i64, comment: &'static str) -> Self {
        Self {
            name: name.into(),
            value: Value::Int(value),
            comment,
        }
    }
    pub fn real(name: impl Into<String>, value: f64, comment: &'static str) -> Self {
        Self {
            name: name.into(),
            value: Value::Real(value),
            comment,
        }
    }
    pub fn str(name: impl Into<String>, value: impl Into<String>, comment: &'static str) -> Self {
        Self {
            name: name.into(),
            value: Value::Str(value.into()),
            comment,
        }
    }
}

/// Pixel types of the images we write.
pub trait Pixel: Copy {
    /// cfitsio BITPIX code.
    const BITPIX: c_int;
    /// cfitsio datatype code of the memory array.
    const DATATYPE: c_int;
}

impl Pixel for f32 {
    const BITPIX: c_int = sys::FLOAT_IMG;
    const DATATYPE: c_int = sys::TFLOAT as c_int;
}

impl Pixel for f64 {
    const BITPIX: c_int = sys::DOUBLE_IMG;
    const DATATYPE: c_int = sys::TDOUBLE as c_int;
}

impl Pixel for i32 {
    const BITPIX: c_int = sys::LONG_IMG as c_int;
    const DATATYPE: c_int = sys::TINT as c_int;
}

/// Data of one binary-table column, all rows (vector cells flattened row after row).
#[derive(Debug, Clone)]
pub enum ColData {
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    /// Unsigned 64-bit: TFORM `K` with TZERO = 2^63, as SDSS writes SPECOBJID in spec files.
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// Fixed-width strings, one per row.
    Str(Vec<String>),
}

impl ColData {
    fn len(&self) -> usize {
        match self {
            Self::U8(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::I64(v) => v.len(),
            Self::U64(v) => v.len(),
            Self::F32(v) => v.len(),
            Self::F64(v) => v.len(),
            Self::Str(v) => v.len(),
        }
    }
}

/// One binary-table column: name, TFORM (e.g. `5E`, `16A`), optional TUNIT and its data.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub tform: String,
    pub unit: Option<&'static str>,
    pub data: ColData,
}

impl Column {
    /// Repeat count of the TFORM (`5E` -> 5, `E` -> 1); for strings, the width.
    fn repeat(&self) -> usize {
        let digits: String = self
            .tform
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().unwrap_or(1)
    }

    /// Number of table rows this column holds.
    fn rows(&self) -> Result<usize> {
        let n = self.data.len();
        if matches!(self.data, ColData::Str(_)) {
            return Ok(n);
        }
        let r = self.repeat();
        ensure!(
            r > 0 && n.is_multiple_of(r),
            "column {}: {} values do not fill cells of {}",
            self.name,
            n,
            self.tform
        );
        Ok(n / r)
    }
}

fn status_text(status: c_int) -> String {
    let mut buf = [0 as c_char; 32];
    // SAFETY: ffgerr writes at most FLEN_STATUS (31) characters plus the terminating NUL.
    unsafe {
        sys::ffgerr(status, buf.as_mut_ptr());
        CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
    }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("string {s:?} contains a NUL byte"))
}

/// cfitsio built without `--enable-reentrant` must not be used from two threads at once.
pub(crate) fn io_guard() -> Option<MutexGuard<'static, ()>> {
    static REENTRANT: OnceLock<bool> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    // SAFETY: fits_is_reentrant only reads a compile-time constant of the library.
    let reentrant = *REENTRANT.get_or_init(|| unsafe { sys::fits_is_reentrant() } != 0);
    if reentrant {
        None
    } else {
        Some(LOCK.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// An open, new FITS file. Closed (and its errors reported) by [`FitsWriter::close`]; dropping it
/// without closing closes it quietly, for error paths.
pub struct FitsWriter {
    fptr: *mut sys::fitsfile,
    path: PathBuf,
    /// The buffer of a file written in memory ([`FitsWriter::create_in_memory`]).
    mem: Option<Box<MemBuffer>>,
}

/// The memory of an in-memory FITS file: cfitsio keeps the addresses of both fields while the file
/// is open and reallocates the block with `libc::realloc`; it is freed here.
struct MemBuffer {
    ptr: *mut c_void,
    size: usize,
}

impl Drop for MemBuffer {
    fn drop(&mut self) {
        // SAFETY: ptr is null or a block of libc's allocator that nothing else owns any more.
        unsafe { libc::free(self.ptr) };
    }
}

impl FitsWriter {
    /// Creates a new empty file at `path`, replacing any file of that name.
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        }
        let name = path
            .to_str()
            .with_context(|| format!("path {} is not UTF-8", path.display()))?;
        let c_name = cstring(name)?;
        let mut fptr = ptr::null_mut();
        let mut status = 0;
        // SAFETY: valid out-pointer and NUL-terminated file name.
        unsafe { sys::ffinit(&mut fptr, c_name.as_ptr(), &mut status) };
        let w = Self {
            fptr,
            path: path.to_path_buf(),
            mem: None,
        };
        w.check(status, || "creating the file".to_string())?;
        ensure!(
            !w.fptr.is_null(),
            "cfitsio returned no handle for {}",
            path.display()
        );
        Ok(w)
    }

    /// Creates a new empty file in memory (`label` names it in messages): nothing touches the disk
    /// until [`FitsWriter::close_into_bytes`] hands the whole file over, which spares cfitsio's many
    /// small reads, seeks and writes of header edits.
    pub fn create_in_memory(label: &Path) -> Result<Self> {
        // cfitsio takes the initial block for the file's first bytes (it reads them back when it
        // looks for HDUs): one zeroed block, which holds no HDU.
        const INITIAL: usize = 2880;
        // SAFETY: a plain allocation, owned by the MemBuffer from here on.
        let ptr = unsafe { libc::calloc(1, INITIAL) };
        ensure!(!ptr.is_null(), "out of memory for {}", label.display());
        let mut mem = Box::new(MemBuffer { ptr, size: INITIAL });
        let mut fptr = ptr::null_mut();
        let mut status = 0;
        // SAFETY: the buffer address and size live in the boxed MemBuffer, which outlives the
        // fitsfile (it is dropped after ffclos); realloc has the signature cfitsio expects.
        unsafe {
            sys::ffimem(
                &mut fptr,
                &mut mem.ptr,
                &mut mem.size,
                1 << 20,
                Some(libc::realloc),
                &mut status,
            )
        };
        let w = Self {
            fptr,
            path: label.to_path_buf(),
            mem: Some(mem),
        };
        w.check(status, || "creating the file in memory".to_string())?;
        ensure!(
            !w.fptr.is_null(),
            "cfitsio returned no handle for {}",
            label.display()
        );
        Ok(w)
    }

    /// Closes an in-memory file and returns its bytes.
    pub fn close_into_bytes(mut self) -> Result<Vec<u8>> {
        let (mut nhdu, mut status) = (0, 0);
        let (mut head, mut data, mut end): (sys::LONGLONG, sys::LONGLONG, sys::LONGLONG) =
            (0, 0, 0);
        // SAFETY: fptr is open; the out-pointers are valid.
        unsafe {
            sys::ffthdu(self.fptr, &mut nhdu, &mut status);
            sys::ffmahd(self.fptr, nhdu, ptr::null_mut(), &mut status);
            sys::ffghadll(self.fptr, &mut head, &mut data, &mut end, &mut status);
        }
        self.check(status, || "finding the end of the file".to_string())?;
        // SAFETY: fptr is open; it is nulled so Drop does not close it again.
        unsafe { sys::ffclos(self.fptr, &mut status) };
        self.fptr = ptr::null_mut();
        self.check(status, || "closing the file".to_string())?;
        let Some(mem) = self.mem.take() else {
            bail!("{} is not an in-memory file", self.path.display());
        };
        let len = usize::try_from(end).unwrap_or(0).min(mem.size);
        ensure!(
            !mem.ptr.is_null() && len > 0 && len.is_multiple_of(2880),
            "cfitsio left {len} bytes for {}",
            self.path.display()
        );
        // SAFETY: cfitsio wrote the whole file into the first `mem.size` bytes of the block.
        Ok(unsafe { std::slice::from_raw_parts(mem.ptr as *const u8, len) }.to_vec())
    }

    fn check(&self, status: c_int, what: impl FnOnce() -> String) -> Result<()> {
        if status == 0 {
            return Ok(());
        }
        bail!(
            "cfitsio error {status} ({}) {} in {}",
            status_text(status),
            what(),
            self.path.display()
        )
    }

    /// Writes header cards into the current HDU.
    pub fn cards(&mut self, cards: &[Card]) -> Result<()> {
        for card in cards {
            let name = cstring(&card.name)?;
            let comment = cstring(card.comment)?;
            let mut status = 0;
            // SAFETY: fptr is open; all strings are NUL-terminated and outlive the call.
            unsafe {
                match &card.value {
                    Value::Int(v) => {
                        sys::ffpkyj(self.fptr, name.as_ptr(), *v, comment.as_ptr(), &mut status);
                    }
                    Value::Real(v) => {
                        // Negative decimals: %G format with that many significant digits; the
                        // fewest that read back as the same f64 (3.5528 stays "3.5528").
                        let digits = round_trip_digits(*v);
                        sys::ffpkyd(
                            self.fptr,
                            name.as_ptr(),
                            *v,
                            -digits,
                            comment.as_ptr(),
                            &mut status,
                        );
                    }
                    Value::Str(v) => {
                        let value = cstring(v)?;
                        sys::ffpkys(
                            self.fptr,
                            name.as_ptr(),
                            value.as_ptr(),
                            comment.as_ptr(),
                            &mut status,
                        );
                    }
                    Value::Bool(v) => {
                        sys::ffpkyl(
                            self.fptr,
                            name.as_ptr(),
                            c_int::from(*v),
                            comment.as_ptr(),
                            &mut status,
                        );
                    }
                    Value::Text(v) => {
                        let text = cstring(v)?;
                        match card.name.as_str() {
                            // cfitsio writes no card for an empty comment: write it whole.
                            "COMMENT" if v.is_empty() => {
                                let record = cstring("COMMENT")?;
                                sys::ffprec(self.fptr, record.as_ptr(), &mut status)
                            }
                            "COMMENT" => sys::ffpcom(self.fptr, text.as_ptr(), &mut status),
                            "HISTORY" => sys::ffphis(self.fptr, text.as_ptr(), &mut status),
                            _ => {
                                // A blank keyword: 8 spaces, then the text (72 characters at most).
                                let record = cstring(&format!("{:8}{}", "", truncate(v, 72)))?;
                                sys::ffprec(self.fptr, record.as_ptr(), &mut status)
                            }
                        };
                    }
                }
            }
            self.check(status, || format!("writing header key {}", card.name))?;
        }
        Ok(())
    }

    /// Appends an image HDU of `height` rows of `width` pixels (NAXIS1 = width, NAXIS2 = height),
    /// writes `cards` (EXTNAME first when given) and then the whole image in one call.
    /// The first HDU of a file becomes the primary HDU, which gets no EXTNAME.
    pub fn image<T: Pixel>(
        &mut self,
        extname: Option<&str>,
        width: usize,
        height: usize,
        cards: &[Card],
        data: &[T],
    ) -> Result<()> {
        ensure!(
            data.len() == width * height,
            "image {extname:?}: {} values for {width} x {height}",
            data.len()
        );
        let mut naxes = [width as std::ffi::c_long, height as std::ffi::c_long];
        let mut status = 0;
        // SAFETY: fptr is open and naxes holds 2 axes.
        unsafe { sys::ffcrim(self.fptr, T::BITPIX, 2, naxes.as_mut_ptr(), &mut status) };
        self.check(status, || format!("creating image {extname:?}"))?;
        if let Some(name) = extname {
            self.cards(&[Card::str("EXTNAME", name, "")])?;
        }
        self.cards(cards)?;
        self.write_pixels(extname.unwrap_or("(primary)"), data)
    }

    /// Writes the pixels of the current image, from the first, in one call.
    pub fn write_pixels<T: Pixel>(&mut self, label: &str, data: &[T]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut status = 0;
        // SAFETY: data holds data.len() elements of the type named by DATATYPE; cfitsio only
        // reads from the array despite the mutable pointer type.
        unsafe {
            sys::ffppr(
                self.fptr,
                T::DATATYPE,
                1,
                data.len() as sys::LONGLONG,
                data.as_ptr() as *mut c_void,
                &mut status,
            )
        };
        self.check(status, || format!("writing image {label}"))
    }

    /// Appends an HDU with the header of the template's current HDU: every card in its order, the
    /// structure keywords included. Its CHECKSUM and DATASUM cards stay in place and do not hold for
    /// the new data until [`FitsWriter::write_checksum`] rewrites them.
    pub fn copy_header(&mut self, from: &Template) -> Result<()> {
        let mut status = 0;
        // SAFETY: both handles are open; the output gets a new HDU at its end.
        unsafe { sys::ffcphd(from.fptr, self.fptr, &mut status) };
        self.check(status, || "copying a template header".to_string())
    }

    /// Gives the current image HDU the axes `dims` (NAXIS1 first) and the pixel type of `T`.
    pub fn resize_image<T: Pixel>(&mut self, dims: &[usize]) -> Result<()> {
        let mut naxes: Vec<sys::LONGLONG> = dims.iter().map(|&d| d as sys::LONGLONG).collect();
        let mut status = 0;
        // SAFETY: an open handle on an image HDU; naxes holds dims.len() axes.
        unsafe {
            sys::ffrsimll(
                self.fptr,
                T::BITPIX,
                dims.len() as c_int,
                naxes.as_mut_ptr(),
                &mut status,
            )
        };
        self.check(status, || format!("resizing an image to {dims:?}"))
    }

    /// Gives the current (empty) table HDU `rows` rows (its NAXIS2).
    pub fn set_table_rows(&mut self, rows: usize) -> Result<()> {
        let key = cstring("NAXIS2")?;
        let mut status = 0;
        // SAFETY: an open handle on a table HDU; `&` keeps the card's comment.
        unsafe {
            sys::ffmkyj(
                self.fptr,
                key.as_ptr(),
                rows as sys::LONGLONG,
                c"&".as_ptr(),
                &mut status,
            );
            sys::ffrdef(self.fptr, &mut status);
        }
        self.check(status, || format!("setting {rows} table rows"))
    }

    /// Sets header keywords of the current HDU, replacing cards of the same name (appending the
    /// others).
    pub fn update_cards(&mut self, cards: &[Card]) -> Result<()> {
        for card in cards {
            let name = cstring(&card.name)?;
            let comment = cstring(card.comment)?;
            let mut status = 0;
            // SAFETY: an open handle; NUL-terminated strings that outlive the call.
            unsafe {
                match &card.value {
                    Value::Int(v) => {
                        sys::ffukyj(self.fptr, name.as_ptr(), *v, comment.as_ptr(), &mut status)
                    }
                    Value::Str(v) => {
                        let value = cstring(v)?;
                        sys::ffukys(
                            self.fptr,
                            name.as_ptr(),
                            value.as_ptr(),
                            comment.as_ptr(),
                            &mut status,
                        )
                    }
                    Value::Bool(v) => sys::ffukyl(
                        self.fptr,
                        name.as_ptr(),
                        c_int::from(*v),
                        comment.as_ptr(),
                        &mut status,
                    ),
                    Value::Real(v) => sys::ffukyd(
                        self.fptr,
                        name.as_ptr(),
                        *v,
                        -round_trip_digits(*v),
                        comment.as_ptr(),
                        &mut status,
                    ),
                    Value::Text(_) => bail!("commentary card {} cannot be updated", card.name),
                };
            }
            self.check(status, || format!("updating header key {}", card.name))?;
        }
        Ok(())
    }

    /// Computes the CHECKSUM and DATASUM of the current HDU (after its data) and writes them into
    /// their cards, if it has them (as a copied header has where its template had).
    pub fn write_checksum(&mut self) -> Result<()> {
        let name = cstring("CHECKSUM")?;
        let mut card = [0 as c_char; 81];
        let mut status = 0;
        // SAFETY: an open handle; a NUL-terminated name; a card buffer of FLEN_CARD bytes.
        unsafe { sys::ffgcrd(self.fptr, name.as_ptr(), card.as_mut_ptr(), &mut status) };
        if status != 0 {
            // KEY_NO_EXIST: an HDU without checksums stays so.
            return Ok(());
        }
        // SAFETY: an open handle.
        unsafe { sys::ffpcks(self.fptr, &mut status) };
        self.check(status, || "writing the checksums".to_string())
    }

    /// Appends (or, in an empty file, creates) a primary-style HDU without data, with these cards.
    pub fn empty_primary(&mut self, cards: &[Card]) -> Result<()> {
        let mut status = 0;
        // SAFETY: fptr is open; NAXIS = 0 needs no axis array.
        unsafe {
            sys::ffcrim(
                self.fptr,
                sys::BYTE_IMG as c_int,
                0,
                ptr::null_mut(),
                &mut status,
            )
        };
        self.check(status, || "creating the primary HDU".to_string())?;
        self.cards(cards)
    }

    /// Appends a binary table with these columns: structure and `cards` first, then every column
    /// with one cfitsio call. `extname` None writes no EXTNAME (as some SDSS writers did).
    pub fn table(
        &mut self,
        extname: Option<&str>,
        columns: &[Column],
        cards: &[Card],
    ) -> Result<()> {
        let label = extname.unwrap_or("(no EXTNAME)");
        ensure!(!columns.is_empty(), "table {label} has no columns");
        let nrows = columns[0].rows()?;
        self.create_table(extname, columns, nrows, cards)?;
        self.write_rows(label, 1, columns)
    }

    /// Appends the structure of a binary table of `nrows` rows with the names, forms and units of
    /// `columns` (their data is not written: see [`FitsWriter::write_rows`]).
    pub fn create_table(
        &mut self,
        extname: Option<&str>,
        columns: &[Column],
        nrows: usize,
        cards: &[Card],
    ) -> Result<()> {
        let label = extname.unwrap_or("(no EXTNAME)");
        ensure!(!columns.is_empty(), "table {label} has no columns");
        let ttype: Vec<CString> = columns
            .iter()
            .map(|c| cstring(&c.name))
            .collect::<Result<_>>()?;
        let tform: Vec<CString> = columns
            .iter()
            .map(|c| cstring(&c.tform))
            .collect::<Result<_>>()?;
        let tunit: Vec<CString> = columns
            .iter()
            .map(|c| cstring(c.unit.unwrap_or("")))
            .collect::<Result<_>>()?;
        let mut p_type: Vec<*mut c_char> =
            ttype.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let mut p_form: Vec<*mut c_char> =
            tform.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let mut p_unit: Vec<*mut c_char> =
            tunit.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let c_ext = extname.map(cstring).transpose()?;
        let mut status = 0;
        // SAFETY: the pointer arrays hold `columns.len()` NUL-terminated strings that outlive the
        // call; cfitsio only reads them.
        unsafe {
            sys::ffcrtb(
                self.fptr,
                sys::BINARY_TBL as c_int,
                nrows as sys::LONGLONG,
                columns.len() as c_int,
                p_type.as_mut_ptr(),
                p_form.as_mut_ptr(),
                p_unit.as_mut_ptr(),
                c_ext.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
                &mut status,
            )
        };
        self.check(status, || format!("creating table {label}"))?;
        self.cards(cards)?;
        Ok(())
    }

    /// Writes whole rows, already packed as the table stores them (big-endian, TFORM order), into
    /// the current table from row `first_row` (1-based).
    pub fn write_packed_rows(&mut self, label: &str, first_row: usize, bytes: &[u8]) -> Result<()> {
        let mut status = 0;
        // SAFETY: `bytes` holds `bytes.len()` bytes; cfitsio only reads them.
        unsafe {
            sys::ffptbb(
                self.fptr,
                first_row as sys::LONGLONG,
                1,
                bytes.len() as sys::LONGLONG,
                bytes.as_ptr() as *mut u8,
                &mut status,
            )
        };
        self.check(status, || {
            format!("writing rows from {first_row} of table {label}")
        })
    }

    /// Writes the data of `columns` (all the same number of rows) into the current table from row
    /// `first_row` (1-based).
    pub fn write_rows(&mut self, label: &str, first_row: usize, columns: &[Column]) -> Result<()> {
        let nrows = columns.first().map(Column::rows).transpose()?.unwrap_or(0);
        for c in columns {
            let n = c.rows()?;
            ensure!(
                n == nrows,
                "table {label}: column {} has {n} rows, not {nrows}",
                c.name
            );
        }
        if nrows == 0 {
            return Ok(());
        }
        for (i, c) in columns.iter().enumerate() {
            self.write_column(label, (i + 1) as c_int, first_row, c, c.repeat())?;
        }
        Ok(())
    }

    /// Writes the data of `columns` into the current table's columns of the same names (any case),
    /// from row `first_row` (1-based); the table's other columns keep their cells.
    pub fn write_named_columns(
        &mut self,
        label: &str,
        first_row: usize,
        columns: &[Column],
    ) -> Result<()> {
        for c in columns {
            let mut template = cstring(&c.name)?.into_bytes_with_nul();
            let (mut colnum, mut status): (c_int, c_int) = (0, 0);
            // SAFETY: an open handle on a table; a writable NUL-terminated copy of the name.
            unsafe {
                sys::ffgcno(
                    self.fptr,
                    0,
                    template.as_mut_ptr().cast(),
                    &mut colnum,
                    &mut status,
                )
            };
            self.check(status, || {
                format!("finding column {} of table {label}", c.name)
            })?;
            let (mut code, mut repeat, mut width): (c_int, sys::LONGLONG, sys::LONGLONG) =
                (0, 0, 0);
            // SAFETY: an open handle; a column number cfitsio gave; valid out-pointers.
            unsafe {
                sys::ffgtclll(
                    self.fptr,
                    colnum,
                    &mut code,
                    &mut repeat,
                    &mut width,
                    &mut status,
                )
            };
            self.check(status, || {
                format!("reading column {} of table {label}", c.name)
            })?;
            // Strings are cut to the table's own width.
            self.write_column(label, colnum, first_row, c, repeat as usize)?;
        }
        Ok(())
    }

    /// Writes one column's data into column number `colnum` (from 1) from row `first_row`; strings
    /// are cut to `width` bytes.
    fn write_column(
        &mut self,
        label: &str,
        colnum: c_int,
        first_row: usize,
        c: &Column,
        width: usize,
    ) -> Result<()> {
        let first = first_row as sys::LONGLONG;
        {
            let n = c.data.len() as sys::LONGLONG;
            let mut status = 0;
            // SAFETY: each array holds exactly nrows*repeat elements of the datatype passed
            // (checked above); cfitsio only reads them.
            unsafe {
                let numeric = match &c.data {
                    ColData::U8(v) => Some((sys::TBYTE, v.as_ptr() as *mut c_void)),
                    ColData::I32(v) => Some((sys::TINT, v.as_ptr() as *mut c_void)),
                    ColData::I64(v) => Some((sys::TLONGLONG, v.as_ptr() as *mut c_void)),
                    ColData::U64(v) => Some((sys::TULONGLONG, v.as_ptr() as *mut c_void)),
                    ColData::F32(v) => Some((sys::TFLOAT, v.as_ptr() as *mut c_void)),
                    ColData::F64(v) => Some((sys::TDOUBLE, v.as_ptr() as *mut c_void)),
                    ColData::Str(_) => None,
                };
                if let Some((datatype, data)) = numeric {
                    sys::ffpcl(
                        self.fptr,
                        datatype as c_int,
                        colnum,
                        first,
                        1,
                        n,
                        data,
                        &mut status,
                    );
                }
                if let ColData::Str(v) = &c.data {
                    let owned: Vec<CString> = v
                        .iter()
                        .map(|s| cstring(truncate(s, width)))
                        .collect::<Result<_>>()?;
                    let mut ptrs: Vec<*mut c_char> =
                        owned.iter().map(|s| s.as_ptr() as *mut c_char).collect();
                    sys::ffpcls(
                        self.fptr,
                        colnum,
                        first,
                        1,
                        n,
                        ptrs.as_mut_ptr(),
                        &mut status,
                    );
                }
            }
            self.check(status, || {
                format!("writing column {} of table {label}", c.name)
            })?;
        }
        Ok(())
    }

    /// Closes the file, flushing cfitsio's buffers, and reports any error.
    pub fn close(mut self) -> Result<()> {
        let mut status = 0;
        // SAFETY: fptr is open; it is nulled so Drop does not close it again.
        unsafe { sys::ffclos(self.fptr, &mut status) };
        self.fptr = ptr::null_mut();
        self.check(status, || "closing the file".to_string())
    }
}

impl Drop for FitsWriter {
    fn drop(&mut self) {
        if !self.fptr.is_null() {
            let mut status = 0;
            // SAFETY: fptr is open and never used again.
            unsafe { sys::ffclos(self.fptr, &mut status) };
            self.fptr = ptr::null_mut();
        }
    }
}

/// The fewest significant digits (1..=17) whose decimal rendering parses back to exactly `v`.
fn round_trip_digits(v: f64) -> c_int {
    (1..=17)
        .find(|&p| format!("{:.*e}", (p - 1) as usize, v).parse::<f64>().ok() == Some(v))
        .unwrap_or(17)
}

/// The longest prefix of `s` of at most `width` bytes that ends on a character boundary.
fn truncate(s: &str, width: usize) -> &str {
    if s.len() <= width {
        return s;
    }
    let mut end = width;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes a FITS file at `final_path` through `fill`, durably ([`model::atomic::AtomicFile`]: under a
/// temporary name, renamed into place after a clean close and fsync). Returns the size in bytes.
pub fn write_atomically(
    final_path: &Path,
    fill: impl FnOnce(&mut FitsWriter) -> Result<()>,
) -> Result<u64> {
    let w = AtomicFile::new(final_path);
    {
        let _guard = io_guard();
        FitsWriter::create(w.temp()).and_then(|mut f| {
            fill(&mut f)?;
            f.close()
        })
    }
    .with_context(|| format!("writing {}", final_path.display()))?;
    w.commit()
        .with_context(|| format!("renaming into place {}", final_path.display()))?;
    let size = std::fs::metadata(final_path)
        .with_context(|| format!("reading the size of {}", final_path.display()))?
        .len();
    Ok(size)
}

/// Like [`write_atomically`], but cfitsio writes the file in memory and it goes to disk in one
/// write: much faster for files of many small HDUs and header cards.
pub fn write_atomically_in_memory(
    final_path: &Path,
    fill: impl FnOnce(&mut FitsWriter) -> Result<()>,
) -> Result<u64> {
    let bytes = {
        let _guard = io_guard();
        FitsWriter::create_in_memory(final_path).and_then(|mut f| {
            fill(&mut f)?;
            f.close_into_bytes()
        })
    }
    .with_context(|| format!("writing {}", final_path.display()))?;
    let w = AtomicFile::new(final_path);
    std::fs::write(w.temp(), &bytes)
        .and_then(|()| w.commit())
        .with_context(|| format!("writing {}", final_path.display()))?;
    Ok(bytes.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_round_trip() {
        assert_eq!(round_trip_digits(3.5528), 5);
        assert_eq!(round_trip_digits(1e-4), 1);
        assert_eq!(round_trip_digits(46.24088393722677), 16);
        assert_eq!(round_trip_digits(0.1 + 0.2), 17);
        assert_eq!(truncate("GALAXYX", 6), "GALAXY");
    }
}
