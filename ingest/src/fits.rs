//! A thin reader over cfitsio for what the ingest needs: HDUs by name or position, header cards,
//! whole images, and binary tables read as raw rows then converted to packed native-endian rows.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_long};
use std::path::{Path, PathBuf};

use fitsio::FitsFile;
use fitsio_sys as sys;
use store::{AttrValue, Column, ScalarKind, Table};

/// What went wrong reading a FITS file, without the file name (the caller adds it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FitsError(pub String);

pub type Result<T> = std::result::Result<T, FitsError>;

// cfitsio data type codes (fitsio.h).
const TBIT: c_int = 1;
const TBYTE: c_int = 11;
const TLOGICAL: c_int = 14;
const TSTRING: c_int = 16;
const TSHORT: c_int = 21;
const TINT: c_int = 31;
const TLONG: c_int = 41;
const TFLOAT: c_int = 42;
const TLONGLONG: c_int = 81;
const TDOUBLE: c_int = 82;
const IMAGE_HDU: c_int = 0;
const KEY_NOT_FOUND: c_int = 202;

/// Header keys that describe the FITS structure, not the data: never copied as attributes.
const STRUCTURAL_KEYS: &[&str] = &[
    "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "TFIELDS", "COMMENT",
    "HISTORY", "CHECKSUM", "DATASUM", "CONTINUE", "END", "",
];

/// Kind of the current HDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HduKind {
    Image,
    Table,
}

/// One open FITS file; never opened for writing.
pub struct Fits {
    file: FitsFile,
    path: PathBuf,
    num_hdus: usize,
    current: usize,
}

fn status_text(status: c_int) -> String {
    let mut buf = [0 as c_char; 81];
    // SAFETY: ffgerr writes at most 31 characters and a NUL.
    unsafe { sys::ffgerr(status, buf.as_mut_ptr()) };
    // SAFETY: NUL-terminated by ffgerr.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn check(status: c_int, what: impl FnOnce() -> String) -> Result<()> {
    if status == 0 {
        Ok(())
    } else {
        Err(FitsError(format!(
            "{}: {} (cfitsio status {status})",
            what(),
            status_text(status)
        )))
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

impl Fits {
    /// Opens a FITS file (plain or gzip-compressed) read-only.
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            FitsFile::open(path).map_err(|e| FitsError(format!("cannot open as FITS: {e}")))?;
        let mut fits = Self {
            file,
            path: path.to_path_buf(),
            num_hdus: 0,
            current: 0,
        };
        let mut n: c_int = 0;
        let mut status = 0;
        // SAFETY: valid open file handle.
        unsafe { sys::ffthdu(fits.raw(), &mut n, &mut status) };
        check(status, || "cannot count HDUs".into())?;
        fits.num_hdus = n as usize;
        Ok(fits)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn num_hdus(&self) -> usize {
        self.num_hdus
    }

    fn raw(&mut self) -> *mut sys::fitsfile {
        // SAFETY: the handle stays owned by self.file.
        unsafe { self.file.as_raw() }
    }

    /// Makes HDU `index` (0 = primary) current.
    pub fn select(&mut self, index: usize) -> Result<HduKind> {
        if index >= self.num_hdus {
            return Err(FitsError(format!(
                "HDU {index} is missing (the file has {} HDUs)",
                self.num_hdus
            )));
        }
        let mut kind: c_int = 0;
        let mut status = 0;
        // SAFETY: valid handle; cfitsio counts HDUs from 1.
        unsafe { sys::ffmahd(self.raw(), index as c_int + 1, &mut kind, &mut status) };
        check(status, || format!("cannot move to HDU {index}"))?;
        self.current = index;
        Ok(if kind == IMAGE_HDU {
            HduKind::Image
        } else {
            HduKind::Table
        })
    }

    /// Current HDU index (0 = primary).
    pub fn current(&self) -> usize {
        self.current
    }

    /// A label for the current HDU in messages: `HDU 2 (SPALL)`.
    pub fn hdu_label(&mut self) -> String {
        match self.extname() {
            Some(name) => format!("HDU {} ({name})", self.current),
            None => format!("HDU {}", self.current),
        }
    }

    /// EXTNAME of the current HDU, if any.
    pub fn extname(&mut self) -> Option<String> {
        self.key_str("EXTNAME").ok().flatten()
    }

    /// Selects the HDU named `name` (case-insensitive), or, when no HDU of the file carries that
    /// EXTNAME, the HDU at `position` if it has no EXTNAME (some writers name no extension).
    pub fn select_named(&mut self, name: &str, position: usize) -> Result<HduKind> {
        for i in 1..self.num_hdus {
            self.select(i)?;
            if self
                .extname()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
            {
                return self.select(i);
            }
        }
        if position < self.num_hdus {
            let kind = self.select(position)?;
            if self.extname().is_none() {
                return Ok(kind);
            }
        }
        Err(FitsError(format!(
            "HDU {name} (position {position}) is missing"
        )))
    }

    /// A string keyword of the current HDU, None when absent.
    pub fn key_str(&mut self, key: &str) -> Result<Option<String>> {
        let mut value = [0 as c_char; 71];
        let mut status = 0;
        let ckey = cstring(key);
        // SAFETY: value holds FLEN_VALUE characters.
        unsafe {
            sys::ffgkys(
                self.raw(),
                ckey.as_ptr(),
                value.as_mut_ptr(),
                std::ptr::null_mut(),
                &mut status,
            )
        };
        if status == KEY_NOT_FOUND {
            return Ok(None);
        }
        check(status, || format!("keyword {key}"))?;
        // SAFETY: NUL-terminated by cfitsio.
        Ok(Some(
            unsafe { CStr::from_ptr(value.as_ptr()) }
                .to_string_lossy()
                .trim_end()
                .to_string(),
        ))
    }

    /// A numeric keyword of the current HDU as f64, None when absent.
    pub fn key_f64(&mut self, key: &str) -> Result<Option<f64>> {
        self.key_typed(key, TDOUBLE, 0f64)
    }

    /// An integer keyword of the current HDU, None when absent.
    pub fn key_i64(&mut self, key: &str) -> Result<Option<i64>> {
        self.key_typed(key, TLONGLONG, 0i64)
    }

    fn key_typed<T>(&mut self, key: &str, datatype: c_int, mut value: T) -> Result<Option<T>> {
        let mut status = 0;
        let ckey = cstring(key);
        // SAFETY: value has the size cfitsio writes for this datatype.
        unsafe {
            sys::ffgky(
                self.raw(),
                datatype,
                ckey.as_ptr(),
                (&mut value as *mut T).cast(),
                std::ptr::null_mut(),
                &mut status,
            )
        };
        if status == KEY_NOT_FOUND {
            return Ok(None);
        }
        check(status, || format!("keyword {key} is not a number"))?;
        Ok(Some(value))
    }

    /// An integer keyword that must be present.
    pub fn require_i64(&mut self, key: &str) -> Result<i64> {
        let label = self.hdu_label();
        self.key_i64(key)?
            .ok_or_else(|| FitsError(format!("{label}: keyword {key} is missing")))
    }

    /// A numeric keyword that must be present.
    pub fn require_f64(&mut self, key: &str) -> Result<f64> {
        let label = self.hdu_label();
        self.key_f64(key)?
            .ok_or_else(|| FitsError(format!("{label}: keyword {key} is missing")))
    }

    /// The data-describing cards of the current header as typed values, first occurrence of each key.
    pub fn header_cards(&mut self) -> Result<Vec<(String, AttrValue)>> {
        let mut nexist: c_int = 0;
        let mut nmore: c_int = 0;
        let mut status = 0;
        // SAFETY: valid handle.
        unsafe { sys::ffghsp(self.raw(), &mut nexist, &mut nmore, &mut status) };
        check(status, || "cannot read header".into())?;
        let mut cards: Vec<(String, AttrValue)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for n in 1..=nexist {
            let mut key = [0 as c_char; 75];
            let mut value = [0 as c_char; 71];
            let mut comment = [0 as c_char; 73];
            // SAFETY: buffers have cfitsio's FLEN_KEYWORD/FLEN_VALUE/FLEN_COMMENT sizes.
            unsafe {
                sys::ffgkyn(
                    self.raw(),
                    n,
                    key.as_mut_ptr(),
                    value.as_mut_ptr(),
                    comment.as_mut_ptr(),
                    &mut status,
                )
            };
            check(status, || format!("header card {n}"))?;
            // SAFETY: NUL-terminated by cfitsio.
            let key = unsafe { CStr::from_ptr(key.as_ptr()) }
                .to_string_lossy()
                .trim()
                .to_string();
            // SAFETY: NUL-terminated by cfitsio.
            let value = unsafe { CStr::from_ptr(value.as_ptr()) }
                .to_string_lossy()
                .trim()
                .to_string();
            let structural = STRUCTURAL_KEYS.contains(&key.as_str())
                || (key.starts_with("NAXIS") && key[5..].chars().all(|c| c.is_ascii_digit()));
            if structural || value.is_empty() || !seen.insert(key.clone()) {
                continue;
            }
            cards.push((key, parse_card_value(&value)));
        }
        Ok(cards)
    }

    /// The current image HDU as (rows, columns) and its values converted to the requested type.
    fn image<T: Default + Clone>(&mut self, datatype: c_int) -> Result<(Vec<T>, usize, usize)> {
        let label = self.hdu_label();
        let mut bitpix: c_int = 0;
        let mut naxis: c_int = 0;
        let mut naxes: [c_long; 3] = [0; 3];
        let mut status = 0;
        // SAFETY: naxes holds 3 axes, maxaxis = 3.
        unsafe {
            sys::ffgipr(
                self.raw(),
                3,
                &mut bitpix,
                &mut naxis,
                naxes.as_mut_ptr(),
                &mut status,
            )
        };
        check(status, || format!("{label}: cannot read image size"))?;
        if naxis != 2 {
            return Err(FitsError(format!(
                "{label}: expected a 2-D image, found {naxis} axes"
            )));
        }
        let (cols, rows) = (naxes[0] as usize, naxes[1] as usize);
        let mut data = vec![T::default(); rows * cols];
        let mut anynul = 0;
        if !data.is_empty() {
            // SAFETY: data holds rows × cols elements of the requested type; no null substitution.
            unsafe {
                sys::ffgpv(
                    self.raw(),
                    datatype,
                    1,
                    data.len() as i64,
                    std::ptr::null_mut(),
                    data.as_mut_ptr().cast(),
                    &mut anynul,
                    &mut status,
                )
            };
            check(status, || format!("{label}: cannot read image"))?;
        }
        Ok((data, rows, cols))
    }

    /// The current image as float32 values, row-major (rows = fibers).
    pub fn image_f32(&mut self) -> Result<(Vec<f32>, usize, usize)> {
        self.image(TFLOAT)
    }

    /// The current image as int32 values, row-major (rows = fibers).
    pub fn image_i32(&mut self) -> Result<(Vec<i32>, usize, usize)> {
        const _: () = assert!(std::mem::size_of::<c_int>() == 4);
        self.image(TINT)
    }

    /// Number of rows of the current table.
    pub fn num_rows(&mut self) -> Result<usize> {
        let mut n: c_long = 0;
        let mut status = 0;
        // SAFETY: valid handle.
        unsafe { sys::ffgnrw(self.raw(), &mut n, &mut status) };
        check(status, || "cannot count rows".into())?;
        Ok(n as usize)
    }

    /// The layout of the current binary table.
    pub fn table_layout(&mut self) -> Result<TableLayout> {
        let label = self.hdu_label();
        let mut ncols: c_int = 0;
        let mut status = 0;
        // SAFETY: valid handle.
        unsafe { sys::ffgncl(self.raw(), &mut ncols, &mut status) };
        check(status, || format!("{label}: not a table"))?;
        let row_width = self.require_i64("NAXIS1")? as usize;
        let mut fields = Vec::with_capacity(ncols as usize);
        let mut fits_offset = 0;
        for i in 1..=ncols as usize {
            let name = self
                .key_str(&format!("TTYPE{i}"))?
                .unwrap_or_else(|| format!("COL{i}"))
                .trim()
                .to_ascii_uppercase();
            let tform = self
                .key_str(&format!("TFORM{i}"))?
                .ok_or_else(|| FitsError(format!("{label}: TFORM{i} is missing")))?;
            let unit = self
                .key_str(&format!("TUNIT{i}"))?
                .filter(|u| !u.trim().is_empty());
            let zero = self.key_f64(&format!("TZERO{i}"))?.unwrap_or(0.0);
            let scale = self.key_f64(&format!("TSCAL{i}"))?.unwrap_or(1.0);
            let (code, repeat) = self.parse_tform(&tform, &label, &name)?;
            let dims = Self::cell_dims(repeat);
            let field = FitsField::new(name, code, repeat, dims, unit, zero, scale, fits_offset)
                .map_err(|e| FitsError(format!("{label}: {e}")))?;
            fits_offset += field.fits_width;
            fields.push(field);
        }
        if fits_offset != row_width {
            return Err(FitsError(format!(
                "{label}: columns add up to {fits_offset} bytes but NAXIS1 is {row_width}"
            )));
        }
        let columns = fields.iter().map(|f| f.column.clone()).collect();
        Ok(TableLayout {
            fields,
            row_width,
            table: Table::new(columns),
        })
    }

    fn parse_tform(&mut self, tform: &str, label: &str, name: &str) -> Result<(c_int, usize)> {
        let mut code: c_int = 0;
        let mut repeat: c_long = 0;
        let mut width: c_long = 0;
        let mut status = 0;
        let mut ctform = cstring(tform).into_bytes_with_nul();
        // SAFETY: NUL-terminated writable copy of the TFORM string.
        unsafe {
            sys::ffbnfm(
                ctform.as_mut_ptr().cast(),
                &mut code,
                &mut repeat,
                &mut width,
                &mut status,
            )
        };
        check(status, || {
            format!("{label}: column {name}: bad TFORM '{tform}'")
        })?;
        Ok((code, repeat as usize))
    }

    /// Cell shape: empty for scalars, else one flat axis of the repeat count. A TDIM shape (e.g.
    /// PROFMEAN_NMGY, TDIM (15,5)) is flattened: h5py cannot read nested HDF5 array types as numbers.
    fn cell_dims(repeat: usize) -> Vec<usize> {
        if repeat <= 1 {
            Vec::new()
        } else {
            vec![repeat]
        }
    }

    /// Reads every row of the current table.
    pub fn read_table(&mut self) -> Result<Table> {
        let layout = self.table_layout()?;
        let n = self.num_rows()?;
        let raw = self.read_raw_rows(0, n, layout.row_width)?;
        Ok(layout.convert(&raw))
    }

    /// Reads the given rows (0-based, any order) of the current table.
    pub fn read_table_rows(&mut self, layout: &TableLayout, rows: &[usize]) -> Result<Table> {
        let mut raw = Vec::with_capacity(rows.len() * layout.row_width);
        for &r in rows {
            raw.extend(self.read_raw_rows(r, 1, layout.row_width)?);
        }
        Ok(layout.convert(&raw))
    }

    fn read_raw_rows(&mut self, first: usize, count: usize, width: usize) -> Result<Vec<u8>> {
        let mut raw = vec![0u8; count * width];
        if raw.is_empty() {
            return Ok(raw);
        }
        let label = self.hdu_label();
        let mut status = 0;
        // SAFETY: raw holds count × width bytes.
        unsafe {
            sys::ffgtbb(
                self.raw(),
                first as i64 + 1,
                1,
                raw.len() as i64,
                raw.as_mut_ptr(),
                &mut status,
            )
        };
        check(status, || {
            format!("{label}: cannot read rows {first}..{}", first + count)
        })?;
        Ok(raw)
    }

    /// One scalar integer column of the current table, all rows (for indexing large catalogs).
    pub fn int_column(&mut self, name: &str) -> Result<Vec<i64>> {
        let layout = self.table_layout()?;
        let label = self.hdu_label();
        let col = layout
            .fields
            .iter()
            .position(|f| f.column.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| FitsError(format!("{label}: column {name} is missing")))?;
        let n = self.num_rows()?;
        let mut out = vec![0i64; n];
        if n > 0 {
            let mut status = 0;
            let mut anynul = 0;
            // SAFETY: out holds n i64 values; column numbers count from 1.
            unsafe {
                sys::ffgcv(
                    self.raw(),
                    TLONGLONG,
                    col as c_int + 1,
                    1,
                    1,
                    n as i64,
                    std::ptr::null_mut(),
                    out.as_mut_ptr().cast(),
                    &mut anynul,
                    &mut status,
                )
            };
            check(status, || format!("{label}: cannot read column {name}"))?;
        }
        Ok(out)
    }
}

/// Parses a header value string as cfitsio returns it.
fn parse_card_value(v: &str) -> AttrValue {
    if let Some(s) = v.strip_prefix('\'') {
        let s = s.strip_suffix('\'').unwrap_or(s);
        return AttrValue::Str(s.replace("''", "'").trim_end().to_string());
    }
    match v {
        "T" => return AttrValue::Bool(true),
        "F" => return AttrValue::Bool(false),
        _ => {}
    }
    if let Ok(i) = v.parse::<i64>() {
        return AttrValue::Int(i);
    }
    if let Ok(f) = v.replace(['D', 'd'], "E").parse::<f64>() {
        return AttrValue::Float(f);
    }
    AttrValue::Str(v.to_string())
}

/// How one FITS column maps to one store column.
#[derive(Debug, Clone)]
pub struct FitsField {
    column: Column,
    code: c_int,
    unsigned_offset: bool,
    fits_offset: usize,
    fits_width: usize,
}

impl FitsField {
    fn new(
        name: String,
        code: c_int,
        repeat: usize,
        dims: Vec<usize>,
        unit: Option<String>,
        zero: f64,
        scale: f64,
        fits_offset: usize,
    ) -> std::result::Result<Self, String> {
        let unsupported_scaling =
            || format!("column {name}: TSCAL {scale} / TZERO {zero} scaling is not supported");
        if code < 0 {
            return Err(format!(
                "column {name}: variable-length arrays are not supported"
            ));
        }
        let (kind, elem, unsigned_offset) = match (code, zero) {
            (TLOGICAL, _) => (ScalarKind::Bool, 1, false),
            (TBYTE, -128.0) => (ScalarKind::I8, 1, true),
            (TBYTE, _) => (ScalarKind::U8, 1, false),
            (TSHORT, 32768.0) => (ScalarKind::U16, 2, true),
            (TSHORT, _) => (ScalarKind::I16, 2, false),
            (TLONG, 2147483648.0) => (ScalarKind::U32, 4, true),
            (TLONG, _) => (ScalarKind::I32, 4, false),
            (TLONGLONG, 9223372036854775808.0) => (ScalarKind::U64, 8, true),
            (TLONGLONG, _) => (ScalarKind::I64, 8, false),
            (TFLOAT, _) => (ScalarKind::F32, 4, false),
            (TDOUBLE, _) => (ScalarKind::F64, 8, false),
            (TSTRING, _) => (ScalarKind::Str(repeat.max(1)), 1, false),
            (TBIT, _) => (ScalarKind::U8, 1, false),
            _ => {
                return Err(format!(
                    "column {name}: FITS type code {code} is not supported"
                ))
            }
        };
        if scale != 1.0 || (zero != 0.0 && !unsigned_offset) {
            return Err(unsupported_scaling());
        }
        let (dims, fits_width) = match code {
            TSTRING => (Vec::new(), repeat),
            TBIT => {
                let n = repeat.div_ceil(8);
                (vec![n], n)
            }
            _ => (dims, repeat * elem),
        };
        Ok(Self {
            column: Column {
                name,
                kind,
                dims,
                unit,
            },
            code,
            unsigned_offset,
            fits_offset,
            fits_width,
        })
    }
}

/// A table's FITS row layout and the store columns it converts to.
#[derive(Debug, Clone)]
pub struct TableLayout {
    pub fields: Vec<FitsField>,
    pub row_width: usize,
    table: Table,
}

impl TableLayout {
    /// Converts raw big-endian FITS rows to a table of packed native-endian rows.
    pub fn convert(&self, raw: &[u8]) -> Table {
        let mut table = self.table.clone();
        let offsets = table.offsets().to_vec();
        let mut row = vec![0u8; table.row_size()];
        for fits_row in raw.chunks_exact(self.row_width) {
            for (f, &out) in self.fields.iter().zip(&offsets) {
                let src = &fits_row[f.fits_offset..f.fits_offset + f.fits_width];
                let dst = &mut row[out..out + f.column.size()];
                convert_cell(f, src, dst);
            }
            table.push_row(&row);
        }
        table
    }
}

fn convert_cell(f: &FitsField, src: &[u8], dst: &mut [u8]) {
    match f.code {
        TSTRING => {
            // FITS pads with blanks or NULs; the store pads with NULs after the text.
            let text_len = src
                .iter()
                .rposition(|&b| b != b' ' && b != 0)
                .map_or(0, |p| p + 1);
            dst.fill(0);
            dst[..text_len].copy_from_slice(&src[..text_len]);
        }
        TLOGICAL => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = u8::from(*s == b'T');
            }
        }
        TBIT | TBYTE => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = if f.unsigned_offset { s ^ 0x80 } else { *s };
            }
        }
        _ => {
            let elem = f.column.kind.size();
            for (d, s) in dst.chunks_exact_mut(elem).zip(src.chunks_exact(elem)) {
                d.copy_from_slice(s);
                d.reverse(); // big endian → little endian (x86_64 and aarch64 are little endian)
                if f.unsigned_offset {
                    d[elem - 1] ^= 0x80;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_typed() {
        assert_eq!(
            parse_card_value("'v5_7_0  '"),
            AttrValue::Str("v5_7_0".into())
        );
        assert_eq!(parse_card_value("'it''s'"), AttrValue::Str("it's".into()));
        assert_eq!(parse_card_value("T"), AttrValue::Bool(true));
        assert_eq!(parse_card_value("3655"), AttrValue::Int(3655));
        assert_eq!(
            parse_card_value("1.0000000000000E-04"),
            AttrValue::Float(1e-4)
        );
        assert_eq!(parse_card_value("2.5D0"), AttrValue::Float(2.5));
    }

    #[test]
    fn unsigned_and_big_endian_cells_convert() {
        let f = FitsField::new(
            "ID".into(),
            TLONGLONG,
            1,
            vec![],
            None,
            9223372036854775808.0,
            1.0,
            0,
        )
        .unwrap();
        let mut dst = [0u8; 8];
        // Stored value -2^63 + 5 means unsigned 5.
        let src = (i64::MIN + 5).to_be_bytes();
        convert_cell(&f, &src, &mut dst);
        assert_eq!(u64::from_ne_bytes(dst), 5);
        let g = FitsField::new("X".into(), TSHORT, 1, vec![], None, 0.0, 1.0, 0).unwrap();
        let mut d2 = [0u8; 2];
        convert_cell(&g, &(-3i16).to_be_bytes(), &mut d2);
        assert_eq!(i16::from_ne_bytes(d2), -3);
        assert!(FitsField::new("S".into(), TFLOAT, 1, vec![], None, 1.0, 2.0, 0).is_err());
    }
}
