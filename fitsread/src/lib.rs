//! A thin reader over cfitsio for what the ingest needs (SDSS spPlate, spec, spAll and spZbest files): HDUs by name or position, header cards,
//! images, and binary tables read as raw rows then converted to packed native-endian rows.
//!
//! Nothing in a header is trusted: every HDU's announced data must lie inside the file before a byte
//! of it is read or allocated, bytes after the last complete HDU (a truncated header) are an error,
//! and data is read in bounded blocks.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::raw::{c_char, c_int, c_long, c_void};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

use std::os::unix::ffi::OsStrExt;

use fitsio_sys as sys;

mod header;
use header::{HeaderIndex, Lookup, Number};

pub mod prescan;
use store::{AttrValue, Column, ScalarKind, Table};

/// What went wrong reading a FITS file, without the file name (the caller adds it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitsError {
    #[error("cannot open as FITS: {0}")]
    Open(String),
    #[error("{what}: {text} (cfitsio status {status})")]
    Status {
        what: String,
        status: c_int,
        text: String,
    },
    #[error("HDU {index} is missing (the file has {count} HDUs)")]
    NoSuchHdu { index: usize, count: usize },
    #[error("{hdu}: keyword {key} is missing")]
    MissingKey { hdu: String, key: String },
    #[error("{hdu}: keyword {key} = {value}: {why}")]
    BadKey {
        hdu: String,
        key: String,
        value: String,
        why: &'static str,
    },
    #[error("{hdu}: the header announces {announced} bytes of data but the file ends {available} bytes after the header (truncated file or a corrupt NAXIS)")]
    DataBeyondEnd {
        hdu: String,
        announced: u64,
        available: u64,
    },
    #[error("HDU {hdu}, header card {card} ({keyword}): an unquoted value longer than 68 characters (not FITS, and unsafe for cfitsio)")]
    UnsafeCard {
        hdu: usize,
        card: usize,
        keyword: String,
    },
    #[error("{hdu}, header card {card}: keyword {keyword} has characters the FITS standard forbids (control or non-ASCII bytes)")]
    BadKeyword {
        hdu: String,
        card: usize,
        /// The keyword, quoted with its control characters escaped.
        keyword: String,
    },
    #[error("the file continues for {extra} bytes after its last complete HDU ({last}): a truncated or corrupt HDU")]
    TrailingBytes { last: String, extra: u64 },
    #[error("{hdu}: expected {expected}, found {found}")]
    Unexpected {
        hdu: String,
        expected: &'static str,
        found: String,
    },
    #[error("{hdu}: column {column}: {why}")]
    Column {
        hdu: String,
        column: String,
        why: String,
    },
    #[error("{hdu}: columns add up to {columns} bytes but NAXIS1 is {naxis1}")]
    RowWidth {
        hdu: String,
        columns: usize,
        naxis1: usize,
    },
}

pub type Result<T> = std::result::Result<T, FitsError>;

/// A keyword looked up in the header index.
enum Found {
    Number(Number),
    Absent,
    /// Not decided by the index: cfitsio is asked.
    Ask,
}

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
const COL_NOT_FOUND: c_int = 219;
const COL_NOT_UNIQUE: c_int = 237;
const READONLY: c_int = 0;

/// The element types an image can be read as, with cfitsio's code for each.
pub trait Pixel: Copy {
    const DATATYPE: c_int;
}

impl Pixel for f32 {
    const DATATYPE: c_int = TFLOAT;
}

impl Pixel for i32 {
    const DATATYPE: c_int = TINT;
}

impl Pixel for f64 {
    const DATATYPE: c_int = TDOUBLE;
}

/// The most image axes read here (numpy order, slowest first).
const MAX_AXES: usize = 4;

/// Elements read by one cfitsio call: memory grows with what the file really holds.
const READ_BLOCK: usize = 1 << 20;
/// Files up to this size are read whole and parsed in memory ([`Fits::open`]): a spec file of one
/// spectrum (about 200 KB) is read with one call instead of one per header block.
const SMALL_FILE: u64 = 4 << 20;

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

/// A FITS file held in memory for cfitsio (fuzzing, tests): the buffer and its size must stay at
/// fixed addresses while cfitsio holds pointers to them.
struct MemFile {
    _bytes: Vec<u8>,
    ptr: *mut c_void,
    size: usize,
}

/// One open FITS file; never opened for writing. Closed when dropped.
pub struct Fits {
    fptr: *mut sys::fitsfile,
    num_hdus: usize,
    current: usize,
    /// The keywords and values of each header, read once, when its HDU is first selected.
    headers: HashMap<usize, HeaderIndex>,
    /// Logical (uncompressed) size of the file in bytes.
    size: u64,
    _memory: Option<Box<MemFile>>,
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
        Err(FitsError::Status {
            what: what(),
            status,
            text: status_text(status),
        })
    }
}

/// The value text of one header card as cfitsio splits it (`ffpsvc`: quotes kept, the comment
/// dropped); None when cfitsio cannot split it.
fn split_value(text: &[u8]) -> Option<String> {
    let mut card = [0 as c_char; 81];
    for (d, &s) in card.iter_mut().zip(text.iter().take(80)) {
        *d = s as c_char;
    }
    let mut value = [0 as c_char; 71];
    let mut comment = [0 as c_char; 73];
    let mut status = 0;
    // SAFETY: a NUL-terminated card of at most 80 characters; buffers of FLEN_VALUE and
    // FLEN_COMMENT.
    unsafe {
        sys::ffpsvc(
            card.as_mut_ptr(),
            value.as_mut_ptr(),
            comment.as_mut_ptr(),
            &mut status,
        )
    };
    // SAFETY: NUL-terminated by cfitsio.
    (status == 0).then(|| {
        unsafe { CStr::from_ptr(value.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    })
}

fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// Serialises cfitsio use when the system library was built without `--enable-reentrant`; hold it
/// while decoding one file (nested opens in one thread are fine: the guard covers them all).
pub fn cfitsio_guard() -> Option<MutexGuard<'static, ()>> {
    static LOCK: Mutex<()> = Mutex::new(());
    (!cfitsio_reentrant()).then(|| LOCK.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Whether the system cfitsio was built with `--enable-reentrant`: then one file may be read by
/// several threads at once, each through its own [`Fits`] handle (Debian's build is).
pub fn cfitsio_reentrant() -> bool {
    static REENTRANT: OnceLock<bool> = OnceLock::new();
    // SAFETY: fits_is_reentrant only reads a compile-time constant of the library.
    *REENTRANT.get_or_init(|| unsafe { sys::fits_is_reentrant() } != 0)
}

/// Logical size of a file as cfitsio sees it: gzip files are read uncompressed (ISIZE trailer).
fn logical_size(path: &Path) -> std::io::Result<u64> {
    let len = std::fs::metadata(path)?.len();
    let mut f = std::fs::File::open(path)?;
    let mut magic = [0u8; 2];
    if f.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] || len < 18 {
        return Ok(len);
    }
    use std::io::Seek;
    f.seek(std::io::SeekFrom::End(-4))?;
    let mut isize = [0u8; 4];
    f.read_exact(&mut isize)?;
    Ok(u32::from_le_bytes(isize) as u64)
}

/// An error for a card cfitsio cannot parse safely (see [`prescan`]).
/// The walk's HDU count when it could tell it.
fn refuse_unsafe_cards(found: std::io::Result<prescan::Scan>) -> Result<Option<usize>> {
    let scan = found.map_err(|e| FitsError::Open(e.to_string()))?;
    match scan.bad {
        Some(b) => Err(FitsError::UnsafeCard {
            hdu: b.hdu,
            card: b.card,
            keyword: b.keyword,
        }),
        None => Ok(scan.hdus),
    }
}

impl Fits {
    /// Opens a FITS file (plain or gzip-compressed) read-only. A plain file is opened without
    /// cfitsio's extended file-name syntax (a name with `[` or a leading `!` is just a name); any
    /// byte string is a valid path. Plain files are pre-scanned for cards cfitsio cannot parse safely
    /// ([`prescan`]); gzip-compressed files are not (cfitsio decompresses them itself).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, true)
    }

    /// Opens a file as [`Fits::open`] does, to look at a few of its headers (recognising a file):
    /// never read whole, so only the header blocks are read.
    pub fn open_for_headers(path: &Path) -> Result<Self> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, small_whole: bool) -> Result<Self> {
        let size = logical_size(path).map_err(|e| FitsError::Open(e.to_string()))?;
        let gzipped = path.extension().is_some_and(|e| e == "gz");
        if small_whole && !gzipped && size <= SMALL_FILE {
            // One read instead of a read per header block and cfitsio's reads through its buffers.
            // Room for open_memory's padding to whole records, so that it does not reallocate.
            let mut bytes = Vec::with_capacity((size as usize).div_ceil(2880).max(1) * 2880);
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| FitsError::Open(e.to_string()))?;
            return Self::open_memory(bytes);
        }
        let mut counted = None;
        if !gzipped {
            let mut file = std::fs::File::open(path).map_err(|e| FitsError::Open(e.to_string()))?;
            counted = refuse_unsafe_cards(prescan::check(&mut file, size))?;
        }
        let name = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| FitsError::Open("the path holds a NUL byte".into()))?;
        let mut fptr: *mut sys::fitsfile = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: a NUL-terminated path; cfitsio allocates the handle, closed in Drop.
        unsafe {
            if gzipped {
                sys::ffopen(&mut fptr, name.as_ptr(), READONLY, &mut status)
            } else {
                sys::ffdkopn(&mut fptr, name.as_ptr(), READONLY, &mut status)
            }
        };
        if status != 0 || fptr.is_null() {
            return Err(FitsError::Open(format!(
                "{} (cfitsio status {status})",
                status_text(status)
            )));
        }
        Self::from_raw(fptr, size, None, counted)
    }

    /// Opens a FITS file held in memory (read-only).
    pub fn open_memory(bytes: Vec<u8>) -> Result<Self> {
        let len = bytes.len() as u64;
        let counted = refuse_unsafe_cards(prescan::check(&mut std::io::Cursor::new(&bytes), len))?;
        // cfitsio loads whole 2880-byte records: its memory driver copies the last record of a file
        // whose size is not a multiple of 2880 from past the end of the buffer (a segfault when that
        // crosses into an unmapped page — found by the fuzzer). The buffer is padded with zeros to
        // whole records; cfitsio is told the file's own size, so its end-of-file checks are as before.
        let size = bytes.len();
        let mut bytes = bytes;
        bytes.resize(size.div_ceil(2880).max(1) * 2880, 0);
        let mut mem = Box::new(MemFile {
            size,
            ptr: std::ptr::null_mut(),
            _bytes: bytes,
        });
        mem.ptr = mem._bytes.as_mut_ptr().cast();
        let size = mem.size as u64;
        let mut fptr: *mut sys::fitsfile = std::ptr::null_mut();
        let mut status = 0;
        let name = cstring("memory.fits");
        // SAFETY: the buffer pointer and size live in the box, which the Fits keeps until after the
        // file is closed (Drop closes first); read-only, so no reallocation.
        unsafe {
            sys::ffomem(
                &mut fptr,
                name.as_ptr(),
                READONLY,
                &mut mem.ptr,
                &mut mem.size,
                0,
                None,
                &mut status,
            )
        };
        if status != 0 || fptr.is_null() {
            return Err(FitsError::Open(status_text(status)));
        }
        Self::from_raw(fptr, size, Some(mem), counted)
    }

    /// A handle on an opened file, its HDUs counted: by the prescan when it could tell (then every
    /// HDU ends where the next begins and the last at the end of the file), else by cfitsio, which
    /// parses every header to count them — and then bytes after the last HDU are refused.
    fn from_raw(
        fptr: *mut sys::fitsfile,
        size: u64,
        memory: Option<Box<MemFile>>,
        counted: Option<usize>,
    ) -> Result<Self> {
        let mut fits = Self {
            fptr,
            num_hdus: 0,
            current: 0,
            headers: HashMap::new(),
            size,
            _memory: memory,
        };
        if let Some(n) = counted {
            if n == 0 {
                return Err(FitsError::Open("no HDU".into()));
            }
            fits.num_hdus = n;
            return Ok(fits);
        }
        let mut n: c_int = 0;
        let mut status = 0;
        // SAFETY: valid open file handle.
        unsafe { sys::ffthdu(fits.raw(), &mut n, &mut status) };
        check(status, || "cannot count HDUs".into())?;
        fits.num_hdus = n.max(0) as usize;
        if fits.num_hdus == 0 {
            return Err(FitsError::Open("no HDU".into()));
        }
        // Bytes after the last complete HDU are an HDU cut inside its header.
        fits.select(fits.num_hdus - 1)?;
        let (_, end) = fits.data_extent()?;
        if fits.size > end {
            return Err(FitsError::TrailingBytes {
                last: fits.hdu_label(),
                extra: fits.size - end,
            });
        }
        Ok(fits)
    }

    pub fn num_hdus(&self) -> usize {
        self.num_hdus
    }

    /// Current HDU index (0 = primary).
    pub fn current(&self) -> usize {
        self.current
    }

    fn raw(&mut self) -> *mut sys::fitsfile {
        self.fptr
    }

    /// (data start, data end with padding) of the current HDU, as byte offsets.
    fn data_extent(&mut self) -> Result<(u64, u64)> {
        let (mut head, mut start, mut end) = (0i64, 0i64, 0i64);
        let mut status = 0;
        // SAFETY: valid handle, out-parameters of the right type.
        unsafe { sys::ffghadll(self.raw(), &mut head, &mut start, &mut end, &mut status) };
        check(status, || {
            format!("HDU {}: cannot locate its data", self.current)
        })?;
        Ok((start.max(0) as u64, end.max(0) as u64))
    }

    /// Makes HDU `index` (0 = primary) current, after checking that the data its header announces
    /// lies inside the file.
    pub fn select(&mut self, index: usize) -> Result<HduKind> {
        if index >= self.num_hdus {
            return Err(FitsError::NoSuchHdu {
                index,
                count: self.num_hdus,
            });
        }
        let mut kind: c_int = 0;
        let mut status = 0;
        // SAFETY: valid handle; cfitsio counts HDUs from 1.
        unsafe { sys::ffmahd(self.raw(), index as c_int + 1, &mut kind, &mut status) };
        check(status, || format!("cannot move to HDU {index}"))?;
        self.current = index;
        if !self.headers.contains_key(&index) {
            let header = self.read_header_index()?;
            self.headers.insert(index, header);
        }
        let announced = self.announced_data_bytes()?;
        let (start, _) = self.data_extent()?;
        let available = self.size.saturating_sub(start);
        if announced > available {
            return Err(FitsError::DataBeyondEnd {
                hdu: self.hdu_label(),
                announced,
                available,
            });
        }
        Ok(if kind == IMAGE_HDU {
            HduKind::Image
        } else {
            HduKind::Table
        })
    }

    /// What the current header's index knows of `key`.
    fn lookup(&self, key: &str) -> Lookup<'_> {
        self.headers
            .get(&self.current)
            .map_or(Lookup::Ask, |h| h.lookup(key, split_value))
    }

    /// The keywords of the current header: every card once (values are split when looked up).
    fn read_header_index(&mut self) -> Result<HeaderIndex> {
        let (mut nexist, mut nmore, mut status): (c_int, c_int, c_int) = (0, 0, 0);
        // SAFETY: valid handle.
        unsafe { sys::ffghsp(self.raw(), &mut nexist, &mut nmore, &mut status) };
        check(status, || {
            format!("HDU {}: cannot read its header", self.current)
        })?;
        let mut index = HeaderIndex::default();
        let mut card = [0 as c_char; 81];
        for n in 1..=nexist {
            // SAFETY: card holds FLEN_CARD characters.
            unsafe { sys::ffgrec(self.raw(), n, card.as_mut_ptr(), &mut status) };
            check(status, || format!("HDU {}: header card {n}", self.current))?;
            // SAFETY: NUL-terminated by cfitsio.
            let text = unsafe { CStr::from_ptr(card.as_ptr()) }.to_bytes();
            index.add(text);
        }
        Ok(index)
    }

    /// Bytes of data the current header announces (without the padding to 2880 bytes):
    /// |BITPIX|/8 × GCOUNT × (PCOUNT + NAXIS1 × … × NAXISn), in checked arithmetic.
    fn announced_data_bytes(&mut self) -> Result<u64> {
        let label = self.hdu_label();
        let key = |f: &mut Self, k: &str, default: i64| f.key_i64(k).map(|v| v.unwrap_or(default));
        let bitpix = key(self, "BITPIX", 8)?;
        let naxis = key(self, "NAXIS", 0)?;
        let pcount = key(self, "PCOUNT", 0)?;
        let gcount = key(self, "GCOUNT", 1)?;
        let bad = |k: &str, v: i64, why| FitsError::BadKey {
            hdu: label.clone(),
            key: k.into(),
            value: v.to_string(),
            why,
        };
        if !(0..=999).contains(&naxis) {
            return Err(bad("NAXIS", naxis, "not a number of axes"));
        }
        if naxis == 0 {
            return Ok(0);
        }
        let mut elements: u64 = 1;
        for i in 1..=naxis {
            let k = format!("NAXIS{i}");
            let n = key(self, &k, 0)?;
            let n = u64::try_from(n).map_err(|_| bad(&k, n, "negative"))?;
            elements = elements
                .checked_mul(n)
                .ok_or_else(|| bad(&k, n as i64, "the data size overflows"))?;
        }
        let pcount = u64::try_from(pcount).map_err(|_| bad("PCOUNT", pcount, "negative"))?;
        let gcount = u64::try_from(gcount).map_err(|_| bad("GCOUNT", gcount, "negative"))?;
        (bitpix.unsigned_abs() / 8)
            .checked_mul(gcount)
            .and_then(|b| b.checked_mul(elements.checked_add(pcount)?))
            .ok_or_else(|| bad("NAXIS2", 0, "the data size overflows"))
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
    /// `Ok(None)` when there is no such HDU; an HDU that cannot be read is an error, not "missing".
    /// HDUs already indexed are told apart by their index, without moving cfitsio there (each
    /// move re-parses the header, and a file's tables are looked up one after another).
    pub fn select_named(&mut self, name: &str, position: usize) -> Result<Option<HduKind>> {
        let named = |n: &str| n.trim().eq_ignore_ascii_case(name);
        for i in 1..self.num_hdus {
            let known = self
                .headers
                .get(&i)
                .and_then(|h| match h.lookup("EXTNAME", split_value) {
                    Lookup::Value(v) => Some(header::string_value(v).is_some_and(|n| named(&n))),
                    Lookup::Absent => Some(false),
                    Lookup::Ask => None,
                });
            let matches = match known {
                Some(m) => m,
                None => {
                    self.select(i)?;
                    self.extname().is_some_and(|n| named(&n))
                }
            };
            if matches {
                return self.select(i).map(Some);
            }
        }
        if position < self.num_hdus {
            let kind = self.select(position)?;
            if self.extname().is_none() {
                return Ok(Some(kind));
            }
        }
        Ok(None)
    }

    /// A string keyword of the current HDU, None when absent.
    pub fn key_str(&mut self, key: &str) -> Result<Option<String>> {
        match self.lookup(key) {
            Lookup::Value(v) => return Ok(Some(header::string_value(v).unwrap_or_default())),
            Lookup::Absent => return Ok(None),
            Lookup::Ask => {}
        }
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
        match self.key_number(key)? {
            Found::Number(n) => Ok(Some(n.as_f64())),
            Found::Absent => Ok(None),
            Found::Ask => self.key_typed(key, TDOUBLE, 0f64),
        }
    }

    /// An integer keyword of the current HDU, None when absent. A value with a fraction (`PLATEID =
    /// 7000.5`, which cfitsio would truncate) is an error, not a different integer.
    pub fn key_i64(&mut self, key: &str) -> Result<Option<i64>> {
        let not_integer = |f: &mut Self, v: f64| FitsError::BadKey {
            hdu: f.hdu_label(),
            key: key.into(),
            value: v.to_string(),
            why: "not an integer",
        };
        match self.key_number(key)? {
            Found::Number(Number::Int(i)) => Ok(Some(i)),
            Found::Number(Number::Real(r)) => {
                if r.fract() == 0.0 && r.abs() < 9.2e18 {
                    Ok(Some(r as i64))
                } else {
                    Err(not_integer(self, r))
                }
            }
            Found::Absent => Ok(None),
            Found::Ask => {
                let Some(v) = self.key_typed(key, TLONGLONG, 0i64)? else {
                    return Ok(None);
                };
                const EXACT: i64 = 1 << 53;
                if (-EXACT..=EXACT).contains(&v) {
                    if let Some(f) = self.key_typed(key, TDOUBLE, 0f64)? {
                        if f != v as f64 {
                            return Err(not_integer(self, f));
                        }
                    }
                }
                Ok(Some(v))
            }
        }
    }

    /// A keyword's value as a number, from the header index.
    fn key_number(&mut self, key: &str) -> Result<Found> {
        let not_a_number = match self.lookup(key) {
            Lookup::Value(v) => match header::number_value(v) {
                Some(n) => return Ok(Found::Number(n)),
                None => v.escape_debug().to_string(),
            },
            Lookup::Absent => return Ok(Found::Absent),
            Lookup::Ask => return Ok(Found::Ask),
        };
        Err(FitsError::BadKey {
            hdu: self.hdu_label(),
            key: key.into(),
            value: not_a_number,
            why: "not a number",
        })
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
        match self.key_i64(key)? {
            Some(v) => Ok(v),
            None => Err(FitsError::MissingKey {
                hdu: self.hdu_label(),
                key: key.into(),
            }),
        }
    }

    /// A numeric keyword that must be present.
    pub fn require_f64(&mut self, key: &str) -> Result<f64> {
        match self.key_f64(key)? {
            Some(v) => Ok(v),
            None => Err(FitsError::MissingKey {
                hdu: self.hdu_label(),
                key: key.into(),
            }),
        }
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
            // Keywords become attribute names and appear in messages: only printable ASCII (the
            // standard's A-Z 0-9 - _, and the blanks of HIERARCH names) is accepted.
            if !key.bytes().all(|b| (b' '..=b'~').contains(&b)) {
                return Err(FitsError::BadKeyword {
                    hdu: self.hdu_label(),
                    card: n as usize,
                    keyword: format!("{key:?}"),
                });
            }
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
    fn image<T: Copy>(&mut self, datatype: c_int) -> Result<(Vec<T>, usize, usize)> {
        let (data, dims) = self.image_nd(datatype)?;
        if dims.len() != 2 {
            return Err(FitsError::Unexpected {
                hdu: self.hdu_label(),
                expected: "a 2-D image",
                found: format!("{} axes", dims.len()),
            });
        }
        Ok((data, dims[0], dims[1]))
    }

    /// The shape of the current image (1 to 4 axes, numpy order) and its number of elements.
    fn image_shape(&mut self) -> Result<(Vec<usize>, usize)> {
        let label = self.hdu_label();
        let (mut bitpix, mut naxis): (c_int, c_int) = (0, 0);
        let mut naxes: [i64; MAX_AXES] = [0; MAX_AXES];
        let mut status = 0;
        // SAFETY: naxes holds MAX_AXES axes, maxaxis = MAX_AXES.
        unsafe {
            sys::ffgiprll(
                self.raw(),
                MAX_AXES as c_int,
                &mut bitpix,
                &mut naxis,
                naxes.as_mut_ptr(),
                &mut status,
            )
        };
        check(status, || format!("{label}: cannot read image size"))?;
        if naxis < 1 || naxis as usize > MAX_AXES {
            return Err(FitsError::Unexpected {
                hdu: label,
                expected: "an image of 1 to 4 axes",
                found: format!("{naxis} axes"),
            });
        }
        let dims: Vec<usize> = naxes[..naxis as usize]
            .iter()
            .rev()
            .map(|&n| n.max(0) as usize)
            .collect();
        let total = dims
            .iter()
            .try_fold(1usize, |a, &n| a.checked_mul(n))
            .ok_or_else(|| FitsError::BadKey {
                hdu: label,
                key: "NAXIS".into(),
                value: format!("{dims:?}"),
                why: "the image size overflows",
            })?;
        Ok((dims, total))
    }

    /// The shape of the current image (1 to 4 axes, numpy order).
    pub fn image_dims(&mut self) -> Result<Vec<usize>> {
        Ok(self.image_shape()?.0)
    }

    /// Reads `n` elements from element `first` (0-based) of the current image into `out`.
    ///
    /// # Safety
    /// `out` must be valid for writes of `n` values of the type `datatype` names, and aligned for it.
    unsafe fn read_elements(
        &mut self,
        datatype: c_int,
        first: usize,
        n: usize,
        out: *mut std::ffi::c_void,
    ) -> Result<()> {
        let mut anynul = 0;
        let mut status = 0;
        // SAFETY: the caller gives room for n elements; cfitsio writes all n (no null
        // substitution) or reports an error.
        unsafe {
            sys::ffgpv(
                self.raw(),
                datatype,
                first as i64 + 1,
                n as i64,
                std::ptr::null_mut(),
                out,
                &mut anynul,
                &mut status,
            )
        };
        if status == 0 {
            return Ok(());
        }
        let label = self.hdu_label();
        check(status, || format!("{label}: cannot read image"))
    }

    /// The current image of shape `[rows, …]` with its rows in the order `order` (`order[i]` is
    /// the file row that becomes row i; each row once), as the native-endian bytes of `T` values:
    /// read row by row straight into the result, with no intermediate array to permute.
    pub fn image_rows_bytes<T: Pixel>(&mut self, order: &[usize]) -> Result<Vec<u8>> {
        let (dims, total) = self.image_shape()?;
        let rows = dims[0];
        let mut seen = vec![false; rows];
        let permutation = order.len() == rows
            && order
                .iter()
                .all(|&r| r < rows && !std::mem::replace(&mut seen[r], true));
        if !permutation {
            return Err(FitsError::Unexpected {
                hdu: self.hdu_label(),
                expected: "an image whose first axis is the rows of the table it goes with",
                found: format!("shape {dims:?} for {} rows", order.len()),
            });
        }
        let row_len = total.checked_div(rows).unwrap_or(0);
        let size = std::mem::size_of::<T>();
        let mut bytes: Vec<u8> = Vec::with_capacity(total * size);
        // cfitsio writes T values: straight into the result when its buffer is aligned for T (as
        // the system allocator's always are), else through one row of T copied after.
        let aligned = (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>());
        let mut row: Vec<T> = Vec::with_capacity(if aligned { 0 } else { row_len });
        for &r in order {
            let at = bytes.len();
            let dst = if aligned {
                bytes.spare_capacity_mut().as_mut_ptr().cast()
            } else {
                row.spare_capacity_mut().as_mut_ptr().cast()
            };
            // SAFETY: dst has room for row_len values of T and is aligned for T; a length is
            // extended only once cfitsio has written the row. Pixel types are plain numbers
            // without padding, so a row of T is row_len * size initialised bytes.
            unsafe {
                self.read_elements(T::DATATYPE, r * row_len, row_len, dst)?;
                if aligned {
                    bytes.set_len(at + row_len * size);
                } else {
                    row.set_len(row_len);
                    bytes.extend_from_slice(std::slice::from_raw_parts(
                        row.as_ptr().cast::<u8>(),
                        row_len * size,
                    ));
                    row.set_len(0);
                }
            }
        }
        Ok(bytes)
    }

    /// The current image HDU (up to 4 axes) with its shape, slowest axis first (numpy's order:
    /// NAXISn … NAXIS1), and its values converted to the requested type, read in blocks (the size
    /// was checked against the file in [`Fits::select`]).
    fn image_nd<T: Copy>(&mut self, datatype: c_int) -> Result<(Vec<T>, Vec<usize>)> {
        let (dims, total) = self.image_shape()?;
        // The size was checked against the file in `select`: allocate once, read in blocks into
        // the spare capacity, and count an element only once cfitsio has written it.
        let mut data: Vec<T> = Vec::with_capacity(total);
        while data.len() < total {
            let first = data.len();
            let n = (total - first).min(READ_BLOCK);
            // SAFETY: the spare capacity holds at least n elements of the requested type; the
            // length is extended only once they are written.
            unsafe {
                self.read_elements(
                    datatype,
                    first,
                    n,
                    data.spare_capacity_mut().as_mut_ptr().cast(),
                )?;
                data.set_len(first + n);
            }
        }
        Ok((data, dims))
    }

    /// The current image (any number of axes up to 4) as float64 values and its shape (numpy order).
    pub fn image_nd_f64(&mut self) -> Result<(Vec<f64>, Vec<usize>)> {
        self.image_nd(TDOUBLE)
    }

    /// The current image (up to 4 axes) as float32 values and its shape (numpy order).
    pub fn image_nd_f32(&mut self) -> Result<(Vec<f32>, Vec<usize>)> {
        self.image_nd(TFLOAT)
    }

    /// The current image (up to 4 axes) as int32 values and its shape (numpy order).
    pub fn image_nd_i32(&mut self) -> Result<(Vec<i32>, Vec<usize>)> {
        self.image_nd(TINT)
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
        Ok(n.max(0) as usize)
    }

    /// The layout of the current binary table.
    pub fn table_layout(&mut self) -> Result<TableLayout> {
        let label = self.hdu_label();
        let mut ncols: c_int = 0;
        let mut status = 0;
        // SAFETY: valid handle.
        unsafe { sys::ffgncl(self.raw(), &mut ncols, &mut status) };
        check(status, || format!("{label}: not a table"))?;
        let row_width = self.require_i64("NAXIS1")?.max(0) as usize;
        let mut fields = Vec::with_capacity(ncols.max(0) as usize);
        let mut fits_offset = 0usize;
        for i in 1..=ncols.max(0) as usize {
            let name = self
                .key_str(&format!("TTYPE{i}"))?
                .unwrap_or_else(|| format!("COL{i}"))
                .trim()
                .to_ascii_uppercase();
            let tform =
                self.key_str(&format!("TFORM{i}"))?
                    .ok_or_else(|| FitsError::MissingKey {
                        hdu: label.clone(),
                        key: format!("TFORM{i}"),
                    })?;
            let unit = self
                .key_str(&format!("TUNIT{i}"))?
                .filter(|u| !u.trim().is_empty());
            let zero = self.key_f64(&format!("TZERO{i}"))?.unwrap_or(0.0);
            let scale = self.key_f64(&format!("TSCAL{i}"))?.unwrap_or(1.0);
            let (code, repeat) = self.parse_tform(&tform, &label, &name)?;
            let dims = Self::cell_dims(repeat);
            let field = FitsField::new(
                name.clone(),
                code,
                repeat,
                dims,
                unit,
                zero,
                scale,
                fits_offset,
            )
            .map_err(|why| FitsError::Column {
                hdu: label.clone(),
                column: name,
                why,
            })?;
            fits_offset = fits_offset.saturating_add(field.fits_width);
            fields.push(field);
        }
        if fits_offset != row_width {
            return Err(FitsError::RowWidth {
                hdu: label,
                columns: fits_offset,
                naxis1: row_width,
            });
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
        Ok((code, repeat.max(0) as usize))
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
        let rows: Vec<usize> = (0..n).collect();
        self.read_table_rows(&layout, &rows)
    }

    /// Reads the given rows (0-based, any order) of the current table: runs of consecutive rows are
    /// read with one call, at most [`READ_BLOCK`] bytes at a time.
    pub fn read_table_rows(&mut self, layout: &TableLayout, rows: &[usize]) -> Result<Table> {
        let mut table = layout.table.clone();
        let width = layout.row_width.max(1);
        let per_call = (READ_BLOCK / width).max(1);
        let mut i = 0;
        while i < rows.len() {
            let mut run = 1;
            while i + run < rows.len() && run < per_call && rows[i + run] == rows[i] + run {
                run += 1;
            }
            let raw = self.read_raw_rows(rows[i], run, layout.row_width)?;
            layout.convert_into(&raw, &mut table);
            i += run;
        }
        Ok(table)
    }

    /// Reads every row of the current table column by column: for each column its cells converted
    /// to native order, one after another. For per-pixel tables, whose columns are used one by
    /// one, this spares the packed rows and the gather of each column from them.
    pub fn read_table_columns(&mut self) -> Result<Columns> {
        let layout = self.table_layout()?;
        let n = self.num_rows()?;
        let width = layout.row_width.max(1);
        let mut data: Vec<Vec<u8>> = layout
            .fields
            .iter()
            .map(|f| Vec::with_capacity(n * f.column.size()))
            .collect();
        let per_call = (READ_BLOCK / width).max(1);
        let mut first = 0;
        while first < n {
            let count = per_call.min(n - first);
            let raw = self.read_raw_rows(first, count, layout.row_width)?;
            for (f, out) in layout.fields.iter().zip(&mut data) {
                let at = out.len();
                let size = f.column.size();
                out.resize(at + count * size, 0);
                convert_column(f, &raw, width, &mut out[at..], (size, 0));
            }
            first += count;
        }
        Ok(Columns {
            columns: layout.fields.iter().map(|f| f.column.clone()).collect(),
            rows: n,
            data,
        })
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

    /// The number (from 1) and cfitsio type code, repeat and width of the column `name` (any case)
    /// of the current table, from the description cfitsio parsed when the HDU was selected. None
    /// when there is no such column; of two of the same name, the first.
    fn column_type(&mut self, name: &str) -> Result<Option<(c_int, c_int, i64, i64)>> {
        let label = self.hdu_label();
        // ffgcno takes `*`, `?` and `#` for wildcards: a name holding one is matched by hand.
        if name.bytes().any(|b| matches!(b, b'*' | b'?' | b'#')) || name.is_empty() {
            return Ok(None);
        }
        let mut template = cstring(name).into_bytes_with_nul();
        let (mut colnum, mut status): (c_int, c_int) = (0, 0);
        // SAFETY: a NUL-terminated writable copy of the name.
        unsafe {
            sys::ffgcno(
                self.raw(),
                0, // CASEINSEN
                template.as_mut_ptr().cast(),
                &mut colnum,
                &mut status,
            )
        };
        match status {
            COL_NOT_FOUND => return Ok(None),
            COL_NOT_UNIQUE | 0 => {}
            _ => check(status, || format!("{label}: column {name}"))?,
        }
        let (mut code, mut repeat, mut width, mut status): (c_int, i64, i64, c_int) = (0, 0, 0, 0);
        // SAFETY: valid handle, a column number cfitsio gave.
        unsafe {
            sys::ffgtclll(
                self.raw(),
                colnum,
                &mut code,
                &mut repeat,
                &mut width,
                &mut status,
            )
        };
        check(status, || format!("{label}: column {name}"))?;
        Ok(Some((colnum, code, repeat, width)))
    }

    /// Row `row` (from 0) of the scalar integer column `name` of the current table, read by
    /// cfitsio without building the table's layout (a look at a few cells of a wide table). None
    /// when there is no such column or it is not a scalar integer column.
    pub fn int_cell(&mut self, name: &str, row: usize) -> Result<Option<i64>> {
        let Some((colnum, code, repeat, _)) = self.column_type(name)? else {
            return Ok(None);
        };
        let integer = matches!(code, TBYTE | TSHORT | TINT | TLONG | TLONGLONG);
        if !integer || repeat != 1 || row >= self.num_rows()? {
            return Ok(None);
        }
        let label = self.hdu_label();
        let (mut value, mut anynul, mut status): (i64, c_int, c_int) = (0, 0, 0);
        // SAFETY: one i64 out of one scalar cell of an existing row.
        unsafe {
            sys::ffgcv(
                self.raw(),
                TLONGLONG,
                colnum,
                row as i64 + 1,
                1,
                1,
                std::ptr::null_mut(),
                (&mut value as *mut i64).cast(),
                &mut anynul,
                &mut status,
            )
        };
        check(status, || format!("{label}: column {name}, row {row}"))?;
        Ok(Some(value))
    }

    /// Row `row` (from 0) of the string column `name` of the current table (trailing blanks
    /// dropped), as [`Fits::int_cell`] reads integers. None when there is no such column or it is
    /// not a string column.
    pub fn str_cell(&mut self, name: &str, row: usize) -> Result<Option<String>> {
        let Some((colnum, code, repeat, _)) = self.column_type(name)? else {
            return Ok(None);
        };
        if code != TSTRING || !(1..=1 << 16).contains(&repeat) || row >= self.num_rows()? {
            return Ok(None);
        }
        let label = self.hdu_label();
        let mut text = vec![0u8; repeat as usize + 1];
        let mut cells = [text.as_mut_ptr().cast::<c_char>()];
        let mut empty = [0 as c_char; 1];
        let (mut anynul, mut status): (c_int, c_int) = (0, 0);
        // SAFETY: one cell of `repeat` characters into a buffer of repeat + 1 bytes; the null
        // value is an empty C string.
        unsafe {
            sys::ffgcv(
                self.raw(),
                TSTRING,
                colnum,
                row as i64 + 1,
                1,
                1,
                empty.as_mut_ptr().cast(),
                cells.as_mut_ptr().cast(),
                &mut anynul,
                &mut status,
            )
        };
        check(status, || format!("{label}: column {name}, row {row}"))?;
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        Ok(Some(
            String::from_utf8_lossy(&text[..end]).trim_end().to_string(),
        ))
    }

    /// One scalar integer column of the current table, all rows (for indexing large catalogs).
    pub fn int_column(&mut self, name: &str) -> Result<Vec<i64>> {
        let label = self.hdu_label();
        let Some((colnum, ..)) = self.column_type(name)? else {
            return Err(FitsError::Column {
                hdu: label,
                column: name.into(),
                why: "missing".into(),
            });
        };
        let n = self.num_rows()?;
        let mut out: Vec<i64> = Vec::with_capacity(n.min(READ_BLOCK));
        while out.len() < n {
            let first = out.len();
            let count = (n - first).min(READ_BLOCK);
            out.resize(first + count, 0);
            let mut status = 0;
            let mut anynul = 0;
            // SAFETY: out[first..] holds count i64 values; column numbers count from 1.
            unsafe {
                sys::ffgcv(
                    self.raw(),
                    TLONGLONG,
                    colnum,
                    first as i64 + 1,
                    1,
                    count as i64,
                    std::ptr::null_mut(),
                    out[first..].as_mut_ptr().cast(),
                    &mut anynul,
                    &mut status,
                )
            };
            check(status, || format!("{label}: cannot read column {name}"))?;
        }
        Ok(out)
    }
}

impl Drop for Fits {
    fn drop(&mut self) {
        let mut status = 0;
        // SAFETY: the handle was opened by cfitsio and is closed once, here (before the memory of
        // an in-memory file is freed: fields drop after this).
        unsafe { sys::ffclos(self.fptr, &mut status) };
    }
}

/// Parses a header value string as cfitsio returns it. Non-standard `NaN` / `Inf` values (written in
/// the wild) become floats.
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
        if code < 0 {
            return Err("variable-length arrays are not supported".into());
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
            _ => return Err(format!("FITS type code {code} is not supported")),
        };
        if scale != 1.0 || (zero != 0.0 && !unsigned_offset) {
            return Err(format!(
                "TSCAL {scale} / TZERO {zero} scaling is not supported"
            ));
        }
        let (dims, fits_width) = match code {
            TSTRING => (Vec::new(), repeat),
            TBIT => {
                let n = repeat.div_ceil(8);
                (vec![n], n)
            }
            _ => (
                dims,
                repeat
                    .checked_mul(elem)
                    .ok_or_else(|| format!("repeat count {repeat} is too large"))?,
            ),
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

/// A table read column by column ([`Fits::read_table_columns`]): each column's cells in native
/// byte order, one after another.
#[derive(Debug, Clone)]
pub struct Columns {
    columns: Vec<Column>,
    rows: usize,
    data: Vec<Vec<u8>>,
}

impl Columns {
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// The index of a column (any case).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        store::table::column_position(&self.columns, name)
    }

    /// The cells of column `i` as 32-bit words (its float32 or int32 bits), None unless it is a
    /// scalar column of 4-byte elements.
    pub fn words(&self, i: usize) -> Option<Vec<u32>> {
        let c = self.columns.get(i)?;
        (c.count() == 1 && c.kind.size() == 4).then(|| {
            self.data[i]
                .chunks_exact(4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
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
    /// True when the table has a column of this name (any case).
    pub fn has_column(&self, name: &str) -> bool {
        self.table.column_index(name).is_some()
    }

    /// Converts raw big-endian FITS rows to packed native-endian rows appended to `table`, one
    /// column at a time.
    fn convert_into(&self, raw: &[u8], table: &mut Table) {
        let width = self.row_width.max(1);
        let offsets = table.offsets().to_vec();
        let row_size = table.row_size();
        let rows = table.push_zeroed_rows(raw.len() / width);
        for (f, &out) in self.fields.iter().zip(&offsets) {
            convert_column(f, raw, width, rows, (row_size, out));
        }
    }
}

/// Converts field `f` of every raw row (`width` bytes each) into its cells in `dst`: one cell every
/// `stride` bytes from `offset` (packed rows: the row size and the column's offset; one column's
/// cells: the cell size and 0). Numeric scalars of 2, 4 or 8 bytes without an unsigned offset are
/// swapped word by word; anything else goes through [`convert_cell`].
fn convert_column(
    f: &FitsField,
    raw: &[u8],
    width: usize,
    dst: &mut [u8],
    (stride, offset): (usize, usize),
) {
    let size = f.column.size();
    if size == 0 {
        return;
    }
    let cells = raw
        .chunks_exact(width)
        .map(|row| &row[f.fits_offset..f.fits_offset + f.fits_width]);
    let outs = dst
        .chunks_exact_mut(stride)
        .map(|d| &mut d[offset..offset + size]);
    let scalar = f.column.count() == 1 && f.fits_width == size;
    let numeric = !matches!(f.code, TSTRING | TLOGICAL | TBIT | TBYTE) && !f.unsigned_offset;
    match (scalar && numeric, size) {
        (true, 4) => {
            for (d, s) in outs.zip(cells) {
                let v = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
                d.copy_from_slice(&v.to_ne_bytes());
            }
        }
        (true, 8) => {
            for (d, s) in outs.zip(cells) {
                let v = u64::from_be_bytes(s[..8].try_into().expect("an 8-byte cell"));
                d.copy_from_slice(&v.to_ne_bytes());
            }
        }
        (true, 2) => {
            for (d, s) in outs.zip(cells) {
                d.copy_from_slice(&u16::from_be_bytes([s[0], s[1]]).to_ne_bytes());
            }
        }
        _ => {
            for (d, s) in outs.zip(cells) {
                convert_cell(f, s, d);
            }
        }
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

    /// A FITS file of one float32 image of shape `[rows, cols]` (numpy order), values r*100+c.
    fn image_file(rows: usize, cols: usize) -> Vec<u8> {
        let mut h = String::new();
        for card in [
            "SIMPLE  =                    T".to_string(),
            "BITPIX  =                  -32".to_string(),
            "NAXIS   =                    2".to_string(),
            format!("NAXIS1  = {cols:>20}"),
            format!("NAXIS2  = {rows:>20}"),
            "END".to_string(),
        ] {
            h.push_str(&format!("{card:<80}"));
        }
        let mut bytes = h.into_bytes();
        bytes.resize(2880, b' ');
        for r in 0..rows {
            for c in 0..cols {
                bytes.extend_from_slice(&((r * 100 + c) as f32).to_be_bytes());
            }
        }
        bytes.resize(bytes.len().div_ceil(2880) * 2880, 0);
        bytes
    }

    #[test]
    fn image_rows_come_in_the_order_asked_as_native_bytes() {
        let mut f = Fits::open_memory(image_file(3, 4)).unwrap();
        f.select(0).unwrap();
        assert_eq!(f.image_dims().unwrap(), vec![3, 4]);
        let bytes = f.image_rows_bytes::<f32>(&[2, 0, 1]).unwrap();
        let values: Vec<f32> = bytes
            .chunks(4)
            .map(|b| f32::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        let want: Vec<f32> = [2, 0, 1]
            .iter()
            .flat_map(|r| (0..4).map(move |c| (r * 100 + c) as f32))
            .collect();
        assert_eq!(values, want);
        // Not a permutation of the rows: an error naming the shape, nothing read.
        for bad in [&[0, 0, 1][..], &[0, 1][..], &[0, 1, 3][..]] {
            let err = f.image_rows_bytes::<f32>(bad).unwrap_err();
            assert!(err.to_string().contains("[3, 4]"), "{err}");
        }
    }

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
        assert!(matches!(parse_card_value("NaN"), AttrValue::Float(f) if f.is_nan()));
        assert_eq!(
            parse_card_value("-Inf"),
            AttrValue::Float(f64::NEG_INFINITY)
        );
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

    /// A primary HDU with `cards` (80 characters each, END added) and `data` bytes, padded.
    fn fits_bytes(cards: &[&str], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cards.iter().chain(["END"].iter()) {
            out.extend(format!("{c:<80}").bytes());
        }
        out.resize(out.len().div_ceil(2880) * 2880, b' ');
        out.extend(data);
        out.resize(out.len().div_ceil(2880) * 2880, 0);
        out
    }

    /// A primary HDU and a binary table of 3 rows: E, J, K, 3A, 2E and I columns (29 bytes a row).
    fn table_file() -> Vec<u8> {
        let mut bytes = fits_bytes(
            &[
                "SIMPLE  =                    T",
                "BITPIX  =                    8",
                "NAXIS   =                    0",
            ],
            &[],
        );
        let mut data = Vec::new();
        for r in 0..3i32 {
            data.extend((r as f32 * 1.5 - 1.0).to_be_bytes());
            data.extend((-7 * r).to_be_bytes());
            data.extend((i64::MAX - r as i64).to_be_bytes());
            data.extend(format!("a{r} ").bytes());
            data.extend((r as f32).to_be_bytes());
            data.extend((-(r as f32)).to_be_bytes());
            data.extend((300 - r as i16).to_be_bytes());
        }
        bytes.extend(fits_bytes(
            &[
                "XTENSION= 'BINTABLE'",
                "BITPIX  =                    8",
                "NAXIS   =                    2",
                "NAXIS1  =                   29",
                "NAXIS2  =                    3",
                "PCOUNT  =                    0",
                "GCOUNT  =                    1",
                "TFIELDS =                    6",
                "TTYPE1  = 'FLUX    '",
                "TFORM1  = 'E       '",
                "TTYPE2  = 'AND_MASK'",
                "TFORM2  = 'J       '",
                "TTYPE3  = 'ID      '",
                "TFORM3  = 'K       '",
                "TTYPE4  = 'NAME    '",
                "TFORM4  = '3A      '",
                "TTYPE5  = 'PAIR    '",
                "TFORM5  = '2E      '",
                "TTYPE6  = 'SHORT   '",
                "TFORM6  = 'I       '",
                "EXTNAME = 'COADD   '",
            ],
            &data,
        ));
        bytes
    }

    #[test]
    fn a_table_read_by_columns_equals_the_rows() {
        let mut f = Fits::open_memory(table_file()).unwrap();
        assert_eq!(f.num_hdus(), 2);
        assert_eq!(f.select_named("coadd", 1).unwrap(), Some(HduKind::Table));
        let rows = f.read_table().unwrap();
        let cols = f.read_table_columns().unwrap();
        assert_eq!(cols.num_rows(), 3);
        assert_eq!(cols.columns(), rows.columns());
        let flux: Vec<f32> = cols
            .words(0)
            .unwrap()
            .into_iter()
            .map(f32::from_bits)
            .collect();
        assert_eq!(flux, rows.f32_column("FLUX").unwrap());
        assert_eq!(flux, vec![-1.0, 0.5, 2.0]);
        let mask: Vec<i32> = cols
            .words(1)
            .unwrap()
            .into_iter()
            .map(|w| w as i32)
            .collect();
        assert_eq!(mask, rows.i32_column("AND_MASK").unwrap());
        assert_eq!(cols.column_index("id"), Some(2));
        assert_eq!(cols.words(2), None, "an 8-byte column has no 32-bit words");
        assert_eq!(cols.words(3), None);
        // Every column's cells are the packed rows' cells, byte for byte.
        for (i, &offset) in rows.offsets().iter().enumerate() {
            let size = rows.columns()[i].size();
            let gathered: Vec<u8> = (0..3)
                .flat_map(|r| rows.row(r)[offset..offset + size].to_vec())
                .collect();
            assert_eq!(cols.data[i], gathered, "column {i}");
        }
        let pair: Vec<f32> = cols.data[4]
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(pair, vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
        for r in 0..3 {
            assert_eq!(rows.int_value(r, 2), Some(i64::MAX - r as i64));
            assert_eq!(rows.int_value(r, 5), Some(300 - r as i64));
            assert_eq!(
                rows.str_value(r, 3).as_deref(),
                Some(format!("a{r}").as_str())
            );
        }
    }

    #[test]
    fn single_cells_are_read_by_name_and_type() {
        let mut f = Fits::open_memory(table_file()).unwrap();
        f.select(1).unwrap();
        assert_eq!(f.int_cell("id", 1).unwrap(), Some(i64::MAX - 1));
        assert_eq!(f.int_cell("AND_MASK", 2).unwrap(), Some(-14));
        assert_eq!(f.str_cell("NAME", 2).unwrap().as_deref(), Some("a2"));
        assert_eq!(
            f.int_cell("FLUX", 0).unwrap(),
            None,
            "a float column is not an integer"
        );
        assert_eq!(
            f.str_cell("ID", 0).unwrap(),
            None,
            "nor an integer a string"
        );
        assert_eq!(f.int_cell("ID", 3).unwrap(), None, "past the last row");
        assert_eq!(f.int_cell("NOPE", 0).unwrap(), None);
        assert_eq!(f.int_cell("I*", 0).unwrap(), None, "no wildcards");
    }

    #[test]
    fn whole_integer_columns_are_read_by_name() {
        let mut f = Fits::open_memory(table_file()).unwrap();
        f.select(1).unwrap();
        assert_eq!(
            f.int_column("id").unwrap(),
            vec![i64::MAX, i64::MAX - 1, i64::MAX - 2]
        );
        assert_eq!(f.int_column("AND_MASK").unwrap()[2], -14);
        let e = f.int_column("NOPE").unwrap_err().to_string();
        assert!(e.contains("NOPE") && e.contains("missing"), "{e}");
        assert!(
            f.int_column("NAME").is_err(),
            "a string column is not read as integers"
        );
    }

    #[test]
    fn absurd_naxis_is_an_error_before_any_allocation() {
        let cards = [
            "SIMPLE  =                    T",
            "BITPIX  =                  -32",
            "NAXIS   =                    2",
            "NAXIS1  =                 4600",
            "NAXIS2  =         999999999999",
        ];
        let err = Fits::open_memory(fits_bytes(&cards, &[0; 64]))
            .err()
            .unwrap();
        assert!(matches!(err, FitsError::DataBeyondEnd { .. }), "{err}");
        assert!(err.to_string().contains("file ends"), "{err}");
    }

    #[test]
    fn trailing_partial_header_is_an_error() {
        let cards = [
            "SIMPLE  =                    T",
            "BITPIX  =                    8",
            "NAXIS   =                    0",
            "EXTEND  =                    T",
        ];
        let mut bytes = fits_bytes(&cards, &[]);
        assert!(Fits::open_memory(bytes.clone()).is_ok());
        // Half of the next HDU's header.
        bytes.extend(format!("{:<80}", "XTENSION= 'BINTABLE'").bytes());
        bytes.resize(bytes.len() + 800, b' ');
        let err = Fits::open_memory(bytes).err().unwrap();
        assert!(
            err.to_string().contains("after its last complete HDU"),
            "{err}"
        );
    }

    /// The fuzzer's crashes (a 70-71-character unquoted TTYPE made cfitsio 4.2 overflow a column
    /// buffer and abort): now one error naming the card.
    #[test]
    fn the_fuzzed_long_unquoted_ttype_is_an_error() {
        // The third: an empty NAXIS in the primary header, after which cfitsio reads on.
        let empty = include_bytes!("../../fuzz/regressions/fits_reader-empty-naxis.fits");
        let err = Fits::open_memory(empty.to_vec()).err().unwrap();
        assert!(
            matches!(&err, FitsError::UnsafeCard { keyword, .. } if keyword == "TTYPE8"),
            "{err}"
        );
        // The second: form feeds before a quote, which cfitsio takes as part of the value.
        let feeds = include_bytes!("../../fuzz/regressions/fits_reader-form-feed-ttype.fits");
        let err = Fits::open_memory(feeds.to_vec()).err().unwrap();
        assert!(
            matches!(&err, FitsError::UnsafeCard { keyword, .. } if keyword == "TTYPE5"),
            "{err}"
        );
        // The fifth: `BITPIX=   -32` (cfitsio reads it, the header index did not): cfitsio read
        // four times the data the file holds, past the end of the buffer.
        let bitpix = include_bytes!("../../fuzz/regressions/fits_reader-early-equals-bitpix.fits");
        let err = Fits::open_memory(bitpix.to_vec()).err().unwrap();
        assert!(
            matches!(
                err,
                FitsError::DataBeyondEnd {
                    announced: 370960,
                    ..
                }
            ),
            "{err}"
        );
        // The fourth: `TTYPE8=  999…`, a value indicator before column 9.
        let early = include_bytes!("../../fuzz/regressions/fits_reader-early-equals-ttype.fits");
        let err = Fits::open_memory(early.to_vec()).err().unwrap();
        assert!(
            matches!(&err, FitsError::UnsafeCard { keyword, .. } if keyword == "TTYPE8"),
            "{err}"
        );
        let bytes = include_bytes!("../../fuzz/regressions/fits_reader-long-unquoted-ttype.fits");
        let err = Fits::open_memory(bytes.to_vec()).err().unwrap();
        assert!(
            matches!(&err, FitsError::UnsafeCard { keyword, .. } if keyword == "TTYPE17"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("fitsread-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.fits");
        std::fs::write(&path, bytes).unwrap();
        let err = Fits::open(&path).err().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.to_string().contains("TTYPE17"), "{err}");
    }
}
