//! The catalog index of a store: one row per fiber, kept beside the store files as
//! [`layout::CATALOG_FILE`] (`catalog.parquet`).
//!
//! In memory the catalog is columnar: plain typed `Vec`s sorted by fiber key, one row per key.
//! Nullable numbers are a value `Vec` plus a validity `Vec<bool>` ([`NullableColumn`]); strings are
//! dictionary encoded ([`DictColumn`]: the few distinct file names, classes, subclasses and object
//! types, and one `u32` code per row), so that a selection over millions of rows runs over flat slices
//! without allocating per row (see [`crate::select`]).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, Int32Array, Int64Array, PrimitiveArray,
    StringArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int32Type, Int64Type, Schema,
    SchemaRef,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use model::FiberId;

/// One fiber of the store, as the ingest records it.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct CatalogRow {
    /// [`FiberId::key`] of (plate, mjd, fiber).
    pub key: i64,
    pub plate: i32,
    pub mjd: i32,
    pub fiber: i32,
    /// Store file name, e.g. `3655-55240.h5`.
    pub file: String,
    /// Pixels of the coadd.
    pub npix: i32,
    /// Number of exposures (exposure ids) stored for the fiber.
    pub nexp: i32,
    pub ra: Option<f64>,
    pub dec: Option<f64>,
    pub class: Option<String>,
    pub subclass: Option<String>,
    pub z: Option<f32>,
    pub z_err: Option<f32>,
    pub zwarning: Option<i32>,
    pub objtype: Option<String>,
    pub specprimary: Option<bool>,
    pub sn_median_all: Option<f32>,
}

impl CatalogRow {
    /// The fiber of this row, from its plate, mjd and fiber columns.
    pub fn fiber_id(&self) -> FiberId {
        FiberId::new(self.plate, self.mjd, self.fiber)
    }
}

/// Errors of reading and writing the catalog. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog file does not exist.
    #[error("catalog {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("I/O error on catalog {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet error on catalog {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("arrow error on catalog {}: {source}", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: ArrowError,
    },
    /// The file is readable parquet but not a catalog (missing column, wrong type, null key, ...).
    #[error("catalog {}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    /// A record batch given to [`Catalog::from_record_batch`] is not a catalog.
    #[error("not a catalog record batch: {0}")]
    Schema(String),
}

impl CatalogError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    fn parquet(path: &Path, source: ParquetError) -> Self {
        Self::Parquet {
            path: path.to_path_buf(),
            source,
        }
    }
    fn with_path(self, path: &Path) -> Self {
        match self {
            Self::Schema(message) => Self::Format {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        }
    }
}

/// A nullable column of plain values: `values[i]` is meaningful only where `valid[i]`
/// (null slots hold `T::default()`).
#[derive(Debug, Clone, Default)]
pub struct NullableColumn<T> {
    values: Vec<T>,
    valid: Vec<bool>,
}

impl<T: Copy + Default> NullableColumn<T> {
    fn with_capacity(n: usize) -> Self {
        Self {
            values: Vec::with_capacity(n),
            valid: Vec::with_capacity(n),
        }
    }
    fn push(&mut self, v: Option<T>) {
        self.values.push(v.unwrap_or_default());
        self.valid.push(v.is_some());
    }
    fn take(&self, idx: &[usize]) -> Self {
        Self {
            values: idx.iter().map(|&i| self.values[i]).collect(),
            valid: idx.iter().map(|&i| self.valid[i]).collect(),
        }
    }
    /// Value of row `i`, `None` where null.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T> {
        if self.valid[i] {
            Some(self.values[i])
        } else {
            None
        }
    }
    /// Raw values (null slots hold `T::default()`).
    #[inline]
    pub fn values(&self) -> &[T] {
        &self.values
    }
    /// Validity: `true` where the row has a value.
    #[inline]
    pub fn validity(&self) -> &[bool] {
        &self.valid
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    /// Number of null rows.
    pub fn null_count(&self) -> usize {
        self.valid.iter().filter(|v| !**v).count()
    }
}

impl<T: Copy + Default + PartialEq> PartialEq for NullableColumn<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.get(i) == other.get(i))
    }
}

/// Code of a null row in a [`DictColumn`].
pub const NULL_CODE: u32 = u32::MAX;

/// A dictionary-encoded, nullable string column: `dict()[codes()[i]]`, [`NULL_CODE`] for null.
#[derive(Debug, Clone, Default)]
pub struct DictColumn {
    dict: Vec<String>,
    codes: Vec<u32>,
}

impl DictColumn {
    /// Value of row `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        match self.codes[i] {
            NULL_CODE => None,
            c => Some(self.dict[c as usize].as_str()),
        }
    }
    /// The distinct values (may hold values no row uses).
    pub fn dict(&self) -> &[String] {
        &self.dict
    }
    /// One code per row: an index into [`DictColumn::dict`], or [`NULL_CODE`].
    #[inline]
    pub fn codes(&self) -> &[u32] {
        &self.codes
    }
    /// Code of a value, if any row may use it.
    pub fn code_of(&self, value: &str) -> Option<u32> {
        self.dict.iter().position(|d| d == value).map(|p| p as u32)
    }
    pub fn len(&self) -> usize {
        self.codes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
    /// Gathers rows, keeping only the dictionary entries still used (in their old order).
    fn take(&self, idx: &[usize]) -> Self {
        let mut used = vec![false; self.dict.len()];
        let mut codes: Vec<u32> = idx
            .iter()
            .map(|&i| {
                let c = self.codes[i];
                if c != NULL_CODE {
                    used[c as usize] = true;
                }
                c
            })
            .collect();
        if used.iter().all(|u| *u) {
            return Self {
                dict: self.dict.clone(),
                codes,
            };
        }
        let mut remap = vec![NULL_CODE; self.dict.len()];
        let mut dict = Vec::new();
        for (old, u) in used.iter().enumerate() {
            if *u {
                remap[old] = dict.len() as u32;
                dict.push(self.dict[old].clone());
            }
        }
        for c in &mut codes {
            if *c != NULL_CODE {
                *c = remap[*c as usize];
            }
        }
        Self { dict, codes }
    }
    fn to_arrow(&self, range: std::ops::Range<usize>) -> StringArray {
        self.codes[range]
            .iter()
            .map(|&c| (c != NULL_CODE).then(|| self.dict[c as usize].as_str()))
            .collect()
    }
}

impl PartialEq for DictColumn {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && (0..self.len()).all(|i| self.get(i) == other.get(i))
    }
}

/// Builds a [`DictColumn`], interning values (last value cache, linear scan of a small dictionary,
/// hash map beyond).
#[derive(Default)]
struct DictBuilder {
    col: DictColumn,
    map: HashMap<String, u32>,
    last: u32,
}

const LINEAR_DICT: usize = 16;

impl DictBuilder {
    fn with_capacity(n: usize) -> Self {
        Self {
            col: DictColumn {
                dict: Vec::new(),
                codes: Vec::with_capacity(n),
            },
            map: HashMap::new(),
            last: NULL_CODE,
        }
    }
    fn code(&mut self, s: &str) -> u32 {
        let dict = &mut self.col.dict;
        if self.last != NULL_CODE && dict[self.last as usize] == s {
            return self.last;
        }
        let found = if dict.len() <= LINEAR_DICT {
            dict.iter().position(|d| d == s).map(|p| p as u32)
        } else {
            self.map.get(s).copied()
        };
        let code = match found {
            Some(c) => c,
            None => {
                let c = dict.len() as u32;
                assert!(
                    c != NULL_CODE,
                    "too many distinct strings in a catalog column"
                );
                dict.push(s.to_owned());
                if dict.len() == LINEAR_DICT + 1 {
                    self.map = dict
                        .iter()
                        .enumerate()
                        .map(|(i, d)| (d.clone(), i as u32))
                        .collect();
                } else if dict.len() > LINEAR_DICT + 1 {
                    self.map.insert(s.to_owned(), c);
                }
                c
            }
        };
        self.last = code;
        code
    }
    fn push(&mut self, v: Option<&str>) {
        let c = match v {
            Some(s) => self.code(s),
            None => NULL_CODE,
        };
        self.col.codes.push(c);
    }
    fn finish(self) -> DictColumn {
        self.col
    }
}

/// The catalog: one row per fiber, sorted by key, columnar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    key: Vec<i64>,
    plate: Vec<i32>,
    mjd: Vec<i32>,
    fiber: Vec<i32>,
    file: DictColumn,
    npix: Vec<i32>,
    nexp: Vec<i32>,
    ra: NullableColumn<f64>,
    dec: NullableColumn<f64>,
    class: DictColumn,
    subclass: DictColumn,
    z: NullableColumn<f32>,
    z_err: NullableColumn<f32>,
    zwarning: NullableColumn<i32>,
    objtype: DictColumn,
    specprimary: NullableColumn<bool>,
    sn_median_all: NullableColumn<f32>,
}

/// Column names of the catalog, in schema order.
pub const COLUMNS: [&str; 17] = [
    "key",
    "plate",
    "mjd",
    "fiber",
    "file",
    "npix",
    "nexp",
    "ra",
    "dec",
    "class",
    "subclass",
    "z",
    "z_err",
    "zwarning",
    "objtype",
    "specprimary",
    "sn_median_all",
];

/// Rows per record batch when writing parquet (and the parquet row group size).
const WRITE_CHUNK: usize = 1 << 20;
/// Columns written without parquet dictionary encoding.
const HIGH_CARDINALITY: [&str; 6] = ["key", "ra", "dec", "z", "z_err", "sn_median_all"];
/// Rows per record batch when reading parquet.
const READ_BATCH: usize = 1 << 16;

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a catalog from rows in any order: sorted by key, one row per key (the last given wins).
    pub fn from_rows(rows: Vec<CatalogRow>) -> Self {
        let mut b = Builder::with_capacity(rows.len());
        for r in rows {
            b.push_row(r);
        }
        b.finish().normalized()
    }

    /// The arrow schema of the catalog (and of `catalog.parquet`).
    pub fn schema() -> SchemaRef {
        static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
        SCHEMA
            .get_or_init(|| {
                let f = |name: &str, t: DataType, nullable: bool| Field::new(name, t, nullable);
                Arc::new(Schema::new(vec![
                    f("key", DataType::Int64, false),
                    f("plate", DataType::Int32, false),
                    f("mjd", DataType::Int32, false),
                    f("fiber", DataType::Int32, false),
                    f("file", DataType::Utf8, false),
                    f("npix", DataType::Int32, false),
                    f("nexp", DataType::Int32, false),
                    f("ra", DataType::Float64, true),
                    f("dec", DataType::Float64, true),
                    f("class", DataType::Utf8, true),
                    f("subclass", DataType::Utf8, true),
                    f("z", DataType::Float32, true),
                    f("z_err", DataType::Float32, true),
                    f("zwarning", DataType::Int32, true),
                    f("objtype", DataType::Utf8, true),
                    f("specprimary", DataType::Boolean, true),
                    f("sn_median_all", DataType::Float32, true),
                ]))
            })
            .clone()
    }

    /// Number of rows (fibers).
    pub fn len(&self) -> usize {
        self.key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key.is_empty()
    }

    /// Row `i` as a struct (allocates its strings).
    pub fn row(&self, i: usize) -> CatalogRow {
        let s = |c: &DictColumn| c.get(i).map(str::to_owned);
        CatalogRow {
            key: self.key[i],
            plate: self.plate[i],
            mjd: self.mjd[i],
            fiber: self.fiber[i],
            file: self.file.get(i).unwrap_or_default().to_owned(),
            npix: self.npix[i],
            nexp: self.nexp[i],
            ra: self.ra.get(i),
            dec: self.dec.get(i),
            class: s(&self.class),
            subclass: s(&self.subclass),
            z: self.z.get(i),
            z_err: self.z_err.get(i),
            zwarning: self.zwarning.get(i),
            objtype: s(&self.objtype),
            specprimary: self.specprimary.get(i),
            sn_median_all: self.sn_median_all.get(i),
        }
    }

    /// Every row, in key order.
    pub fn rows(&self) -> Vec<CatalogRow> {
        (0..self.len()).map(|i| self.row(i)).collect()
    }

    /// Keys, strictly increasing.
    pub fn keys(&self) -> &[i64] {
        &self.key
    }
    pub fn plates(&self) -> &[i32] {
        &self.plate
    }
    pub fn mjds(&self) -> &[i32] {
        &self.mjd
    }
    /// Fiber numbers.
    pub fn fibers(&self) -> &[i32] {
        &self.fiber
    }
    /// Store file names (never null).
    pub fn files(&self) -> &DictColumn {
        &self.file
    }
    pub fn npix(&self) -> &[i32] {
        &self.npix
    }
    pub fn nexp(&self) -> &[i32] {
        &self.nexp
    }
    pub fn ra(&self) -> &NullableColumn<f64> {
        &self.ra
    }
    pub fn dec(&self) -> &NullableColumn<f64> {
        &self.dec
    }
    pub fn class(&self) -> &DictColumn {
        &self.class
    }
    pub fn subclass(&self) -> &DictColumn {
        &self.subclass
    }
    pub fn z(&self) -> &NullableColumn<f32> {
        &self.z
    }
    pub fn z_err(&self) -> &NullableColumn<f32> {
        &self.z_err
    }
    pub fn zwarning(&self) -> &NullableColumn<i32> {
        &self.zwarning
    }
    pub fn objtype(&self) -> &DictColumn {
        &self.objtype
    }
    pub fn specprimary(&self) -> &NullableColumn<bool> {
        &self.specprimary
    }
    pub fn sn_median_all(&self) -> &NullableColumn<f32> {
        &self.sn_median_all
    }

    /// Approximate heap bytes held by the columns (capacity of every vector and dictionary string).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        fn dict(c: &DictColumn) -> usize {
            c.codes.capacity() * size_of::<u32>()
                + c.dict.capacity() * size_of::<String>()
                + c.dict.iter().map(String::capacity).sum::<usize>()
        }
        fn nullable<T>(c: &NullableColumn<T>) -> usize {
            c.values.capacity() * size_of::<T>() + c.valid.capacity()
        }
        self.key.capacity() * 8
            + (self.plate.capacity()
                + self.mjd.capacity()
                + self.fiber.capacity()
                + self.npix.capacity()
                + self.nexp.capacity())
                * 4
            + dict(&self.file)
            + dict(&self.class)
            + dict(&self.subclass)
            + dict(&self.objtype)
            + nullable(&self.ra)
            + nullable(&self.dec)
            + nullable(&self.z)
            + nullable(&self.z_err)
            + nullable(&self.zwarning)
            + nullable(&self.specprimary)
            + nullable(&self.sn_median_all)
    }

    /// The fiber of row `i`.
    pub fn fiber_id(&self, i: usize) -> FiberId {
        FiberId::new(self.plate[i], self.mjd[i], self.fiber[i])
    }

    /// Row index of a key (binary search).
    pub fn position(&self, key: i64) -> Option<usize> {
        self.key.binary_search(&key).ok()
    }

    /// Row index of a fiber.
    pub fn find(&self, id: FiberId) -> Option<usize> {
        self.position(id.key())
    }

    /// Distinct store file names used by some row, sorted.
    pub fn file_names(&self) -> Vec<String> {
        let mut used = vec![false; self.file.dict.len()];
        for &c in &self.file.codes {
            used[c as usize] = true;
        }
        let mut names: Vec<String> = self
            .file
            .dict
            .iter()
            .zip(used)
            .filter(|(_, u)| *u)
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// The rows at `idx` (in that order; give sorted, distinct indices to keep the catalog invariant).
    pub fn take(&self, idx: &[usize]) -> Catalog {
        let g32 = |v: &[i32]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        Catalog {
            key: idx.iter().map(|&i| self.key[i]).collect(),
            plate: g32(&self.plate),
            mjd: g32(&self.mjd),
            fiber: g32(&self.fiber),
            file: self.file.take(idx),
            npix: g32(&self.npix),
            nexp: g32(&self.nexp),
            ra: self.ra.take(idx),
            dec: self.dec.take(idx),
            class: self.class.take(idx),
            subclass: self.subclass.take(idx),
            z: self.z.take(idx),
            z_err: self.z_err.take(idx),
            zwarning: self.zwarning.take(idx),
            objtype: self.objtype.take(idx),
            specprimary: self.specprimary.take(idx),
            sn_median_all: self.sn_median_all.take(idx),
        }
    }

    /// Drops every row whose `file` is one of `files`, then adds `rows` (which win over any remaining
    /// row of the same key). Used after an ingest rewrote some store files, so the catalog stays exact.
    pub fn replace_files(&mut self, files: &[String], rows: Vec<CatalogRow>) {
        let mut drop = vec![false; self.file.dict.len()];
        for f in files {
            if let Some(c) = self.file.code_of(f) {
                drop[c as usize] = true;
            }
        }
        let keep: Vec<usize> = if drop.iter().any(|d| *d) {
            (0..self.len())
                .filter(|&i| !drop[self.file.codes[i] as usize])
                .collect()
        } else {
            (0..self.len()).collect()
        };
        let kept = if keep.len() == self.len() {
            std::mem::take(self)
        } else {
            self.take(&keep)
        };
        let mut b = Builder::from_catalog(kept, rows.len());
        for r in rows {
            b.push_row(r);
        }
        *self = b.finish().normalized();
    }

    /// Restores the invariant (sorted by key, one row per key, the last wins).
    fn normalized(self) -> Self {
        if self.key.windows(2).all(|w| w[0] < w[1]) {
            return self;
        }
        let mut perm: Vec<usize> = (0..self.len()).collect();
        // Stable: rows of one key keep their input order, so the last of a run is the last given.
        perm.sort_by_key(|&i| self.key[i]);
        let mut idx: Vec<usize> = Vec::with_capacity(perm.len());
        for (j, &i) in perm.iter().enumerate() {
            let last_of_run = j + 1 == perm.len() || self.key[perm[j + 1]] != self.key[i];
            if last_of_run {
                idx.push(i);
            }
        }
        self.take(&idx)
    }

    /// The whole catalog as one record batch of [`Catalog::schema`].
    pub fn to_record_batch(&self) -> RecordBatch {
        self.record_batch_range(0..self.len())
    }

    fn record_batch_range(&self, r: std::ops::Range<usize>) -> RecordBatch {
        fn plain<T: ArrowPrimitiveType>(v: &[T::Native]) -> ArrayRef {
            Arc::new(PrimitiveArray::<T>::new(v.to_vec().into(), None))
        }
        fn nulls(valid: &[bool]) -> Option<NullBuffer> {
            if valid.iter().all(|v| *v) {
                None
            } else {
                Some(NullBuffer::from(valid))
            }
        }
        fn nullable<T: ArrowPrimitiveType>(
            c: &NullableColumn<T::Native>,
            r: std::ops::Range<usize>,
        ) -> ArrayRef
        where
            T::Native: Copy + Default,
        {
            Arc::new(PrimitiveArray::<T>::new(
                c.values[r.clone()].to_vec().into(),
                nulls(&c.valid[r]),
            ))
        }
        let columns: Vec<ArrayRef> = vec![
            plain::<Int64Type>(&self.key[r.clone()]),
            plain::<Int32Type>(&self.plate[r.clone()]),
            plain::<Int32Type>(&self.mjd[r.clone()]),
            plain::<Int32Type>(&self.fiber[r.clone()]),
            Arc::new(self.file.to_arrow(r.clone())),
            plain::<Int32Type>(&self.npix[r.clone()]),
            plain::<Int32Type>(&self.nexp[r.clone()]),
            nullable::<Float64Type>(&self.ra, r.clone()),
            nullable::<Float64Type>(&self.dec, r.clone()),
            Arc::new(self.class.to_arrow(r.clone())),
            Arc::new(self.subclass.to_arrow(r.clone())),
            nullable::<Float32Type>(&self.z, r.clone()),
            nullable::<Float32Type>(&self.z_err, r.clone()),
            nullable::<Int32Type>(&self.zwarning, r.clone()),
            Arc::new(self.objtype.to_arrow(r.clone())),
            Arc::new(BooleanArray::new(
                BooleanBuffer::from(&self.specprimary.values[r.clone()]),
                nulls(&self.specprimary.valid[r.clone()]),
            )),
            nullable::<Float32Type>(&self.sn_median_all, r),
        ];
        RecordBatch::try_new(Self::schema(), columns).expect("catalog columns match the schema")
    }

    /// Reads a record batch with the catalog's columns (found by name; extra columns are ignored,
    /// missing nullable columns read as null; string columns may also be large/view/dictionary utf8).
    /// Sorts by key and keeps the last row of each key.
    pub fn from_record_batch(batch: &RecordBatch) -> Result<Catalog, CatalogError> {
        let mut b = Builder::with_capacity(batch.num_rows());
        b.push_batch(batch)?;
        Ok(b.finish().normalized())
    }

    /// Writes `catalog.parquet` (zstd) durably ([`model::atomic::AtomicFile`]: temporary name, fsync,
    /// rename, fsync of the directory).
    pub fn write_parquet(&self, path: impl AsRef<Path>) -> Result<(), CatalogError> {
        let path = path.as_ref();
        let w = model::atomic::AtomicFile::new(path);
        self.write_parquet_file(w.temp())?;
        w.commit().map_err(|e| CatalogError::io(path, e))
    }

    fn write_parquet_file(&self, tmp: &Path) -> Result<(), CatalogError> {
        let file = File::create(tmp).map_err(|e| CatalogError::io(tmp, e))?;
        let mut props =
            WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
        // Dictionary encoding only pays for the low-cardinality columns (file, class, plate, ...);
        // for the others it would intern every value before falling back to plain pages.
        for col in HIGH_CARDINALITY {
            props = props.set_column_dictionary_enabled(ColumnPath::from(col), false);
        }
        let props = props
            .set_max_row_group_row_count(Some(WRITE_CHUNK))
            .set_created_by(format!("boss catalog {}", env!("CARGO_PKG_VERSION")))
            .build();
        let mut w = ArrowWriter::try_new(file, Self::schema(), Some(props))
            .map_err(|e| CatalogError::parquet(tmp, e))?;
        let mut start = 0;
        loop {
            let end = (start + WRITE_CHUNK).min(self.len());
            let batch = self.record_batch_range(start..end);
            w.write(&batch).map_err(|e| CatalogError::parquet(tmp, e))?;
            start = end;
            if start >= self.len() {
                break;
            }
        }
        w.into_inner().map_err(|e| CatalogError::parquet(tmp, e))?;
        Ok(())
    }

    /// Reads `catalog.parquet`. A file that does not exist is [`CatalogError::Missing`].
    pub fn read_parquet(path: impl AsRef<Path>) -> Result<Catalog, CatalogError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                CatalogError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                CatalogError::io(path, e)
            }
        })?;
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .map_err(|e| CatalogError::parquet(path, e))?;
        // Read the string columns as dictionaries: the parquet dictionary pages map straight to
        // our codes instead of materialising and interning millions of strings.
        let fields: Vec<Field> = meta
            .schema()
            .fields()
            .iter()
            .map(|f| {
                if f.data_type() == &DataType::Utf8 {
                    f.as_ref().clone().with_data_type(DataType::Dictionary(
                        Box::new(DataType::Int32),
                        Box::new(DataType::Utf8),
                    ))
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        let dict_schema = Arc::new(Schema::new_with_metadata(
            fields,
            meta.schema().metadata().clone(),
        ));
        let meta = ArrowReaderMetadata::try_new(
            meta.metadata().clone(),
            ArrowReaderOptions::new().with_schema(dict_schema),
        )
        .unwrap_or(meta);
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta);
        let rows = builder.metadata().file_metadata().num_rows().max(0) as usize;
        let reader = builder
            .with_batch_size(READ_BATCH)
            .build()
            .map_err(|e| CatalogError::parquet(path, e))?;
        let mut b = Builder::with_capacity(rows);
        for batch in reader {
            let batch = batch.map_err(|e| CatalogError::Arrow {
                path: path.to_path_buf(),
                source: e,
            })?;
            b.push_batch(&batch).map_err(|e| e.with_path(path))?;
        }
        Ok(b.finish().normalized())
    }
}

/// Appends rows or record batches to the columns of a catalog (no ordering invariant).
struct Builder {
    cat: Catalog,
    file: DictBuilder,
    class: DictBuilder,
    subclass: DictBuilder,
    objtype: DictBuilder,
}

impl Builder {
    fn with_capacity(n: usize) -> Self {
        Self {
            cat: Catalog {
                key: Vec::with_capacity(n),
                plate: Vec::with_capacity(n),
                mjd: Vec::with_capacity(n),
                fiber: Vec::with_capacity(n),
                file: DictColumn::default(),
                npix: Vec::with_capacity(n),
                nexp: Vec::with_capacity(n),
                ra: NullableColumn::with_capacity(n),
                dec: NullableColumn::with_capacity(n),
                class: DictColumn::default(),
                subclass: DictColumn::default(),
                z: NullableColumn::with_capacity(n),
                z_err: NullableColumn::with_capacity(n),
                zwarning: NullableColumn::with_capacity(n),
                objtype: DictColumn::default(),
                specprimary: NullableColumn::with_capacity(n),
                sn_median_all: NullableColumn::with_capacity(n),
            },
            file: DictBuilder::with_capacity(n),
            class: DictBuilder::with_capacity(n),
            subclass: DictBuilder::with_capacity(n),
            objtype: DictBuilder::with_capacity(n),
        }
    }

    /// Continues an existing catalog (its dictionaries are kept).
    fn from_catalog(mut cat: Catalog, extra: usize) -> Self {
        fn dict(col: DictColumn, extra: usize) -> DictBuilder {
            let mut col = col;
            col.codes.reserve(extra);
            let map = if col.dict.len() > LINEAR_DICT {
                col.dict
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (d.clone(), i as u32))
                    .collect()
            } else {
                HashMap::new()
            };
            DictBuilder {
                col,
                map,
                last: NULL_CODE,
            }
        }
        let file = dict(std::mem::take(&mut cat.file), extra);
        let class = dict(std::mem::take(&mut cat.class), extra);
        let subclass = dict(std::mem::take(&mut cat.subclass), extra);
        let objtype = dict(std::mem::take(&mut cat.objtype), extra);
        Self {
            cat,
            file,
            class,
            subclass,
            objtype,
        }
    }

    fn push_row(&mut self, r: CatalogRow) {
        let c = &mut self.cat;
        c.key.push(r.key);
        c.plate.push(r.plate);
        c.mjd.push(r.mjd);
        c.fiber.push(r.fiber);
        self.file.push(Some(&r.file));
        c.npix.push(r.npix);
        c.nexp.push(r.nexp);
        c.ra.push(r.ra);
        c.dec.push(r.dec);
        self.class.push(r.class.as_deref());
        self.subclass.push(r.subclass.as_deref());
        c.z.push(r.z);
        c.z_err.push(r.z_err);
        c.zwarning.push(r.zwarning);
        self.objtype.push(r.objtype.as_deref());
        c.specprimary.push(r.specprimary);
        c.sn_median_all.push(r.sn_median_all);
    }

    fn push_batch(&mut self, batch: &RecordBatch) -> Result<(), CatalogError> {
        let n = batch.num_rows();
        let col = |name: &str| batch.column_by_name(name);
        fn required<'a, A: Array + 'static>(
            c: Option<&'a ArrayRef>,
            name: &str,
            t: &DataType,
        ) -> Result<&'a A, CatalogError> {
            let c = c.ok_or_else(|| CatalogError::Schema(format!("missing column {name}")))?;
            if c.null_count() > 0 {
                return Err(CatalogError::Schema(format!("column {name} has nulls")));
            }
            typed::<A>(c, name, t)
        }
        fn typed<'a, A: Array + 'static>(
            c: &'a ArrayRef,
            name: &str,
            t: &DataType,
        ) -> Result<&'a A, CatalogError> {
            c.as_any().downcast_ref::<A>().ok_or_else(|| {
                CatalogError::Schema(format!("column {name} is {} instead of {t}", c.data_type()))
            })
        }
        fn prim<T: ArrowPrimitiveType>(
            dst: &mut NullableColumn<T::Native>,
            c: Option<&ArrayRef>,
            name: &str,
            n: usize,
        ) -> Result<(), CatalogError>
        where
            T::Native: Copy + Default,
        {
            let Some(c) = c else {
                dst.values
                    .resize(dst.values.len() + n, T::Native::default());
                dst.valid.resize(dst.valid.len() + n, false);
                return Ok(());
            };
            let a = typed::<PrimitiveArray<T>>(c, name, &T::DATA_TYPE)?;
            let start = dst.values.len();
            dst.values.extend_from_slice(a.values());
            match a.nulls() {
                None => dst.valid.resize(start + n, true),
                Some(nb) => {
                    dst.valid.extend(nb.iter());
                    for i in 0..n {
                        if !dst.valid[start + i] {
                            dst.values[start + i] = T::Native::default();
                        }
                    }
                }
            }
            Ok(())
        }
        fn strings(
            dst: &mut DictBuilder,
            c: Option<&ArrayRef>,
            name: &str,
            n: usize,
            nullable: bool,
        ) -> Result<(), CatalogError> {
            let Some(c) = c else {
                if !nullable {
                    return Err(CatalogError::Schema(format!("missing column {name}")));
                }
                dst.col.codes.resize(dst.col.codes.len() + n, NULL_CODE);
                return Ok(());
            };
            if !nullable && c.null_count() > 0 {
                return Err(CatalogError::Schema(format!("column {name} has nulls")));
            }
            if let DataType::Dictionary(k, v) = c.data_type() {
                if **k == DataType::Int32 && **v == DataType::Utf8 {
                    // Map each dictionary value used once (on first use, so values no row uses
                    // stay out of our dictionary), then every row by its key.
                    let d = typed::<DictionaryArray<Int32Type>>(c, name, c.data_type())?;
                    let values = typed::<StringArray>(d.values(), name, &DataType::Utf8)?;
                    const UNSET: u32 = NULL_CODE - 1;
                    let mut map = vec![UNSET; values.len()];
                    let keys = d.keys();
                    let nulls = keys.nulls();
                    dst.col.codes.reserve(n);
                    for (i, &k) in keys.values().iter().enumerate() {
                        if nulls.is_some_and(|nb| nb.is_null(i)) {
                            dst.col.codes.push(NULL_CODE);
                            continue;
                        }
                        let k = k as usize;
                        if map[k] == UNSET {
                            map[k] = if values.is_valid(k) {
                                dst.code(values.value(k))
                            } else {
                                NULL_CODE
                            };
                        }
                        dst.col.codes.push(map[k]);
                    }
                    return Ok(());
                }
            }
            let cast;
            let c = if c.data_type() == &DataType::Utf8 {
                c
            } else if matches!(
                c.data_type(),
                DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _)
            ) {
                cast = arrow::compute::cast(c, &DataType::Utf8).map_err(|e| {
                    CatalogError::Schema(format!("column {name}: cannot read as utf8: {e}"))
                })?;
                &cast
            } else {
                return Err(CatalogError::Schema(format!(
                    "column {name} is {} instead of Utf8",
                    c.data_type()
                )));
            };
            let a = typed::<StringArray>(c, name, &DataType::Utf8)?;
            for v in a.iter() {
                dst.push(v);
            }
            Ok(())
        }

        let key = required::<Int64Array>(col("key"), "key", &DataType::Int64)?;
        let i32s = ["plate", "mjd", "fiber", "npix", "nexp"]
            .map(|name| required::<Int32Array>(col(name), name, &DataType::Int32));
        let [plate, mjd, fiber, npix, nexp] = i32s;
        let (plate, mjd, fiber, npix, nexp) = (plate?, mjd?, fiber?, npix?, nexp?);
        let c = &mut self.cat;
        c.key.extend_from_slice(key.values());
        c.plate.extend_from_slice(plate.values());
        c.mjd.extend_from_slice(mjd.values());
        c.fiber.extend_from_slice(fiber.values());
        c.npix.extend_from_slice(npix.values());
        c.nexp.extend_from_slice(nexp.values());
        strings(&mut self.file, col("file"), "file", n, false)?;
        prim::<Float64Type>(&mut c.ra, col("ra"), "ra", n)?;
        prim::<Float64Type>(&mut c.dec, col("dec"), "dec", n)?;
        strings(&mut self.class, col("class"), "class", n, true)?;
        strings(&mut self.subclass, col("subclass"), "subclass", n, true)?;
        prim::<Float32Type>(&mut c.z, col("z"), "z", n)?;
        prim::<Float32Type>(&mut c.z_err, col("z_err"), "z_err", n)?;
        prim::<Int32Type>(&mut c.zwarning, col("zwarning"), "zwarning", n)?;
        strings(&mut self.objtype, col("objtype"), "objtype", n, true)?;
        match col("specprimary") {
            None => {
                let sp = &mut c.specprimary;
                sp.values.resize(sp.values.len() + n, false);
                sp.valid.resize(sp.valid.len() + n, false);
            }
            Some(a) => {
                let a = typed::<BooleanArray>(a, "specprimary", &DataType::Boolean)?;
                for v in a.iter() {
                    c.specprimary.push(v);
                }
            }
        }
        prim::<Float32Type>(
            &mut c.sn_median_all,
            col("sn_median_all"),
            "sn_median_all",
            n,
        )?;
        Ok(())
    }

    fn finish(self) -> Catalog {
        let mut cat = self.cat;
        cat.file = self.file.finish();
        cat.class = self.class.finish();
        cat.subclass = self.subclass.finish();
        cat.objtype = self.objtype.finish();
        cat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::layout;

    pub(crate) fn row(plate: i32, mjd: i32, fiber: i32) -> CatalogRow {
        let id = FiberId::new(plate, mjd, fiber);
        CatalogRow {
            key: id.key(),
            plate,
            mjd,
            fiber,
            file: layout::store_file_name(id.plate_mjd()),
            npix: 4600 + fiber,
            nexp: 3,
            ..Default::default()
        }
    }

    fn full(plate: i32, mjd: i32, fiber: i32) -> CatalogRow {
        CatalogRow {
            ra: Some(10.0 + fiber as f64 * 0.01),
            dec: Some(-5.0 + fiber as f64 * 0.02),
            class: Some(["GALAXY", "QSO", "STAR"][fiber as usize % 3].into()),
            subclass: Some("STARFORMING".into()),
            z: Some(0.1 * fiber as f32),
            z_err: Some(1e-4),
            zwarning: Some(fiber % 2),
            objtype: Some("GALAXY".into()),
            specprimary: Some(fiber % 3 != 0),
            sn_median_all: Some(3.5),
            ..row(plate, mjd, fiber)
        }
    }

    #[test]
    fn from_rows_sorts_and_last_wins() {
        let mut a = full(3655, 55240, 2);
        a.npix = 1;
        let mut b = a.clone();
        b.npix = 2;
        let c = full(3655, 55240, 1);
        let d = full(10, 55000, 7);
        let cat = Catalog::from_rows(vec![a, c.clone(), b.clone(), d.clone()]);
        assert_eq!(cat.len(), 3);
        assert_eq!(cat.rows(), vec![d, c, b]);
        assert!(cat.keys().windows(2).all(|w| w[0] < w[1]));
        assert_eq!(cat.find(FiberId::new(3655, 55240, 2)), Some(2));
        assert_eq!(cat.find(FiberId::new(3655, 55240, 3)), None);
        assert_eq!(cat.fiber_id(0), FiberId::new(10, 55000, 7));
    }

    #[test]
    fn schema_names_and_types() {
        let s = Catalog::schema();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, COLUMNS);
        for f in s.fields() {
            let opt = !matches!(
                f.name().as_str(),
                "key" | "plate" | "mjd" | "fiber" | "file" | "npix" | "nexp"
            );
            assert_eq!(f.is_nullable(), opt, "{}", f.name());
        }
        assert_eq!(
            s.field_with_name("specprimary").unwrap().data_type(),
            &DataType::Boolean
        );
        assert_eq!(
            s.field_with_name("z").unwrap().data_type(),
            &DataType::Float32
        );
        assert_eq!(
            s.field_with_name("ra").unwrap().data_type(),
            &DataType::Float64
        );
        let cat = Catalog::from_rows(vec![full(1, 50000, 1), row(1, 50000, 2)]);
        assert_eq!(cat.to_record_batch().schema(), s);
    }

    #[test]
    fn record_batch_round_trip_with_nulls() {
        let mut rows: Vec<CatalogRow> = (1..=40).map(|f| full(3655, 55240, f)).collect();
        rows.extend((1..=5).map(|f| row(3656, 55241, f)));
        let mut odd = full(3657, 55242, 9);
        odd.class = None;
        odd.z = Some(f32::NAN);
        odd.specprimary = Some(false);
        rows.push(odd);
        let cat = Catalog::from_rows(rows);
        let back = Catalog::from_record_batch(&cat.to_record_batch()).unwrap();
        assert_eq!(back.len(), cat.len());
        for i in 0..cat.len() {
            let (a, b) = (cat.row(i), back.row(i));
            if a.z.is_some_and(f32::is_nan) {
                assert!(b.z.is_some_and(f32::is_nan));
                assert_eq!(CatalogRow { z: None, ..a }, CatalogRow { z: None, ..b });
            } else {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn parquet_round_trip_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(layout::CATALOG_FILE);
        match Catalog::read_parquet(&path) {
            Err(CatalogError::Missing { path: p }) => assert_eq!(p, path),
            other => panic!("expected Missing, got {other:?}"),
        }
        let msg = Catalog::read_parquet(&path).unwrap_err().to_string();
        assert!(msg.contains(layout::CATALOG_FILE), "{msg}");

        let mut rows: Vec<CatalogRow> = (1..=1000).map(|f| full(3655, 55240, f)).collect();
        rows.extend((1..=50).map(|f| row(3656, 55241, f))); // every optional column null
        rows[3].ra = None;
        rows[4].class = None;
        rows[5].specprimary = None;
        rows[6].zwarning = None;
        let cat = Catalog::from_rows(rows);
        cat.write_parquet(&path).unwrap();
        let back = Catalog::read_parquet(&path).unwrap();
        assert_eq!(back, cat);
        assert_eq!(back.rows(), cat.rows());
        assert_eq!(back.row(3).ra, None);
        assert_eq!(back.row(1030).class, None);
        assert_eq!(back.row(1030).specprimary, None);
        assert_eq!(back.files().dict().len(), 2);
        // No temporary file is left behind, and rewriting replaces the file.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec![layout::CATALOG_FILE.to_string()]);
        let small = cat.take(&[0, 1, 2]);
        small.write_parquet(&path).unwrap();
        assert_eq!(Catalog::read_parquet(&path).unwrap(), small);
        // An empty catalog round-trips too.
        Catalog::new().write_parquet(&path).unwrap();
        assert!(Catalog::read_parquet(&path).unwrap().is_empty());
        // Not a parquet file: an error naming the file.
        std::fs::write(&path, b"not parquet").unwrap();
        let err = Catalog::read_parquet(&path).unwrap_err();
        assert!(matches!(err, CatalogError::Parquet { .. }), "{err:?}");
        assert!(err.to_string().contains(layout::CATALOG_FILE));
    }

    #[test]
    fn parquet_round_trip_beyond_the_dictionary_page_limit() {
        // 120k distinct 30-byte subclasses overflow parquet's dictionary page: the writer falls
        // back to plain pages, which the dictionary read must handle too.
        let rows: Vec<CatalogRow> = (0..120_000)
            .map(|i| CatalogRow {
                subclass: (i % 7 != 0).then(|| format!("SUBCLASS-{i:020}")),
                class: Some(["GALAXY", "QSO"][i as usize % 2].into()),
                ..row(1000 + i / 1000, 55000, 1 + i % 1000)
            })
            .collect();
        let cat = Catalog::from_rows(rows);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(layout::CATALOG_FILE);
        cat.write_parquet(&path).unwrap();
        let back = Catalog::read_parquet(&path).unwrap();
        assert_eq!(back, cat);
        assert_eq!(back.subclass().dict().len(), cat.subclass().dict().len());
    }

    #[test]
    fn from_record_batch_reads_dictionary_and_large_strings() {
        use arrow::array::LargeStringArray;
        let cat = Catalog::from_rows((1..=10).map(|f| full(3655, 55240, f)).collect());
        let batch = cat.to_record_batch();
        let dict_type = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let mut fields = Vec::new();
        let mut cols = Vec::new();
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            match f.name().as_str() {
                "class" | "file" => {
                    cols.push(arrow::compute::cast(c, &dict_type).unwrap());
                    fields.push(f.as_ref().clone().with_data_type(dict_type.clone()));
                }
                "objtype" => {
                    let a = c.as_any().downcast_ref::<StringArray>().unwrap();
                    cols.push(Arc::new(a.iter().collect::<LargeStringArray>()) as ArrayRef);
                    fields.push(f.as_ref().clone().with_data_type(DataType::LargeUtf8));
                }
                "sn_median_all" => {} // a missing nullable column reads as null
                _ => {
                    cols.push(c.clone());
                    fields.push(f.as_ref().clone());
                }
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
        let back = Catalog::from_record_batch(&batch).unwrap();
        let want: Vec<CatalogRow> = cat
            .rows()
            .into_iter()
            .map(|r| CatalogRow {
                sn_median_all: None,
                ..r
            })
            .collect();
        assert_eq!(back.rows(), want);
    }

    #[test]
    fn from_record_batch_rejects_bad_schema() {
        let batch = RecordBatch::try_from_iter(vec![(
            "key",
            Arc::new(Int64Array::from(vec![1i64])) as ArrayRef,
        )])
        .unwrap();
        let err = Catalog::from_record_batch(&batch).unwrap_err();
        assert!(err.to_string().contains("plate"), "{err}");
        let batch = RecordBatch::try_from_iter(vec![(
            "key",
            Arc::new(Int32Array::from(vec![1i32])) as ArrayRef,
        )])
        .unwrap();
        let err = Catalog::from_record_batch(&batch).unwrap_err();
        assert!(err.to_string().contains("key is Int32"), "{err}");
    }

    #[test]
    fn take_compacts_dictionaries() {
        let cat = Catalog::from_rows(vec![
            full(1, 50000, 1),
            full(2, 50000, 2),
            full(3, 50000, 3),
        ]);
        let t = cat.take(&[1]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.row(0), cat.row(1));
        assert_eq!(t.files().dict(), &["0002-50000.h5".to_string()]);
        assert_eq!(t.class().dict(), &["STAR".to_string()]);
    }

    #[test]
    fn replace_files_drops_and_adds() {
        let mut rows: Vec<CatalogRow> = (1..=5).map(|f| full(3655, 55240, f)).collect();
        rows.extend((1..=5).map(|f| full(3656, 55241, f)));
        rows.extend((1..=5).map(|f| full(3657, 55242, f)));
        let mut cat = Catalog::from_rows(rows);
        assert_eq!(cat.file_names().len(), 3);
        // The ingest rewrote 3656-55241.h5 (now fibers 2 and 9 only) and wrote a new 0042-50000.h5.
        let mut new2 = full(3656, 55241, 2);
        new2.z = Some(2.5);
        let new9 = full(3656, 55241, 9);
        let other = full(42, 50000, 1);
        cat.replace_files(
            &["3656-55241.h5".into(), "0042-50000.h5".into()],
            vec![new9.clone(), other.clone(), new2.clone()],
        );
        assert_eq!(cat.len(), 5 + 2 + 5 + 1);
        assert!(cat.keys().windows(2).all(|w| w[0] < w[1]));
        assert_eq!(cat.row(0), other);
        let i2 = cat.find(new2.fiber_id()).unwrap();
        assert_eq!(cat.row(i2), new2);
        assert!(cat.find(FiberId::new(3656, 55241, 1)).is_none());
        assert!(cat.find(FiberId::new(3656, 55241, 9)).is_some());
        assert_eq!(cat.row(cat.len() - 1), full(3657, 55242, 5));
        assert_eq!(
            cat.file_names(),
            vec![
                "0042-50000.h5",
                "3655-55240.h5",
                "3656-55241.h5",
                "3657-55242.h5"
            ]
        );
        // Removing a file with no new rows; removing an unknown file is a no-op.
        cat.replace_files(&["3655-55240.h5".into(), "9999-99999.h5".into()], vec![]);
        assert_eq!(cat.len(), 2 + 5 + 1);
        assert_eq!(cat.file_names().len(), 3);
        assert_eq!(
            cat.files().dict().len(),
            3,
            "names no row uses leave the dictionary"
        );
        let again = Catalog::from_rows(cat.rows());
        assert_eq!(again, cat);
    }

    #[test]
    fn many_distinct_strings_use_the_map() {
        let rows: Vec<CatalogRow> = (1..=100)
            .map(|f| CatalogRow {
                subclass: Some(format!("S{}", f % 40)),
                ..full(1, 50000, f)
            })
            .collect();
        let cat = Catalog::from_rows(rows.clone());
        assert_eq!(cat.subclass().dict().len(), 40);
        assert_eq!(cat.rows(), rows);
        let mut cat2 = cat.clone();
        cat2.replace_files(
            &[],
            vec![CatalogRow {
                subclass: Some("S7".into()),
                ..full(2, 50000, 1)
            }],
        );
        assert_eq!(cat2.subclass().dict().len(), 40);
        assert_eq!(cat2.row(100).subclass.as_deref(), Some("S7"));
    }
}
