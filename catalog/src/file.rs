//! `catalog.parquet`: the catalog rows sorted by key, the store files they were read from in the
//! file's key-value metadata, and each column's origin in its Arrow field metadata. Updates stream:
//! the rows of unchanged store files are read a batch at a time and merged in key order with the
//! new rows, so that a catalog of millions of rows is never held whole in memory.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{filter_record_batch, sort_to_indices, take_record_batch};
use arrow::datatypes::{Int64Type, Schema, SchemaRef};
use model::atomic::AtomicFile;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::columns::{self, DERIVED};
use crate::error::CatalogError;
use crate::unify::{conform, origins, union_schema};

/// The key-value metadata entry with the catalog format version.
pub const VERSION_KEY: &str = "boss.catalog.version";
/// The catalog format this crate writes and reads.
pub const VERSION: &str = "3";
/// The key-value metadata entry listing the store files of the catalog (one name per line).
pub const FILES_KEY: &str = "boss.catalog.store_files";
/// Rows per row group: small enough for key ranges to prune, large enough to compress well.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// Rows per batch read from the catalog.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// Catalog rows in memory: batches of one schema, sorted by key.
#[derive(Debug, Clone)]
pub struct Catalog {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Catalog {
    /// A catalog without rows (the derived columns only).
    pub fn empty() -> Self {
        Self {
            schema: Arc::new(Schema::new(columns::derived_fields())),
            batches: Vec::new(),
        }
    }

    /// The catalog of these batches (any provisional or final names, any order): one schema, sorted
    /// by key.
    pub fn from_batches(batches: Vec<RecordBatch>) -> Result<Self, CatalogError> {
        let mut c = Self::empty();
        c.add(batches)?;
        Ok(c)
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The rows of the store files `replaced` dropped, and the rows `new` merged in.
    pub fn replace(
        &mut self,
        replaced: &HashSet<String>,
        new: Vec<RecordBatch>,
    ) -> Result<(), CatalogError> {
        let old = std::mem::take(&mut self.batches);
        let schema = union_schema(
            std::iter::once(self.schema.as_ref())
                .chain(new.iter().map(|b| b.schema_ref().as_ref())),
        )?;
        let mut out = Vec::new();
        merge(
            old.into_iter().map(Ok),
            replaced,
            sorted(new)?,
            &schema,
            |b| {
                out.push(b);
                Ok(())
            },
        )?;
        self.schema = schema;
        self.batches = out;
        Ok(())
    }

    fn add(&mut self, new: Vec<RecordBatch>) -> Result<(), CatalogError> {
        self.replace(&HashSet::new(), new)
    }

    /// Reads a whole catalog file.
    pub fn read(path: &Path) -> Result<Self, CatalogError> {
        let reader = Reader::open(path)?;
        let schema = reader.schema.clone();
        let batches = reader.batches()?.collect::<Result<Vec<_>, _>>()?;
        Ok(Self { schema, batches })
    }

    /// Writes the catalog to `path` (a temporary file renamed into place when complete).
    pub fn write(&self, path: &Path) -> Result<(), CatalogError> {
        let mut w = CatalogWriter::create(path, &self.schema)?;
        for b in &self.batches {
            w.write(b)?;
        }
        w.finish()
    }

    /// The rows in one batch.
    pub fn concat(&self) -> Result<RecordBatch, CatalogError> {
        arrow::compute::concat_batches(&self.schema, &self.batches)
            .map_err(|e| CatalogError::Schema(e.to_string()))
    }
}

/// What the footer of a catalog file says, without reading its rows.
#[derive(Debug, Clone)]
pub struct Footer {
    pub schema: SchemaRef,
    pub rows: usize,
    pub store_files: BTreeSet<String>,
}

/// Reads the footer of a catalog file: an error for a missing file ([`CatalogError::Missing`]) or one
/// of another format version ([`CatalogError::Format`]).
pub fn footer(path: &Path) -> Result<Footer, CatalogError> {
    let r = Reader::open(path)?;
    Ok(Footer {
        schema: r.schema.clone(),
        rows: r.rows,
        store_files: r.store_files.clone(),
    })
}

/// An open catalog file.
struct Reader {
    path: PathBuf,
    builder: ParquetRecordBatchReaderBuilder<File>,
    schema: SchemaRef,
    rows: usize,
    store_files: BTreeSet<String>,
}

impl Reader {
    fn open(path: &Path) -> Result<Self, CatalogError> {
        let file = File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => CatalogError::Missing {
                path: path.to_path_buf(),
            },
            _ => CatalogError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|source| CatalogError::Parquet {
                path: path.to_path_buf(),
                source,
            })?
            .with_batch_size(READ_BATCH_ROWS);
        let meta = builder.metadata().file_metadata();
        let kv = |key: &str| {
            meta.key_value_metadata()
                .and_then(|kv| kv.iter().find(|e| e.key == key))
                .and_then(|e| e.value.clone())
        };
        let format = |message: String| CatalogError::Format {
            path: path.to_path_buf(),
            message,
        };
        match kv(VERSION_KEY) {
            Some(v) if v == VERSION => {}
            Some(v) => {
                return Err(format(format!(
                    "catalog format {v}, this version reads {VERSION} (rebuild it)"
                )))
            }
            None => return Err(format("written by an older version (rebuild it)".into())),
        }
        let schema = builder.schema().clone();
        origins(&schema).map_err(format)?;
        for d in &DERIVED {
            if schema.field_with_name(d.name).is_err() {
                return Err(format(format!("no column {}", d.name)));
            }
        }
        let rows = meta.num_rows() as usize;
        let store_files = kv(FILES_KEY)
            .map(|v| v.lines().map(str::to_string).collect())
            .unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            builder,
            schema,
            rows,
            store_files,
        })
    }

    fn batches(
        self,
    ) -> Result<impl Iterator<Item = Result<RecordBatch, CatalogError>>, CatalogError> {
        let path = self.path.clone();
        let reader = self
            .builder
            .build()
            .map_err(|source| CatalogError::Parquet {
                path: path.clone(),
                source,
            })?;
        Ok(reader.map(move |b| {
            b.map_err(|source| CatalogError::Arrow {
                path: path.clone(),
                source,
            })
        }))
    }
}

/// A catalog file being written, batch by batch (each conformed to the schema given): a temporary
/// file renamed into place by [`CatalogWriter::finish`].
pub struct CatalogWriter {
    path: PathBuf,
    temp: AtomicFile,
    writer: ArrowWriter<File>,
    store_files: BTreeSet<String>,
}

impl CatalogWriter {
    pub fn create(path: &Path, schema: &SchemaRef) -> Result<Self, CatalogError> {
        let io = |source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        };
        let temp = AtomicFile::new(path);
        let file = File::create(temp.temp()).map_err(io)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1")))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|source| {
            CatalogError::Parquet {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            writer,
            store_files: BTreeSet::new(),
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), CatalogError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let files = batch
            .column_by_name(columns::FILE)
            .map(|c| c.as_string::<i32>().clone());
        if let Some(files) = files {
            let mut last: Option<&str> = None;
            for f in files.iter().flatten() {
                if last != Some(f) {
                    self.store_files.insert(f.to_string());
                    last = Some(f);
                }
            }
        }
        self.writer
            .write(batch)
            .map_err(|source| CatalogError::Parquet {
                path: self.path.clone(),
                source,
            })
    }

    pub fn finish(mut self) -> Result<(), CatalogError> {
        let files: Vec<&str> = self.store_files.iter().map(String::as_str).collect();
        self.writer
            .append_key_value_metadata(KeyValue::new(VERSION_KEY.into(), VERSION.to_string()));
        self.writer
            .append_key_value_metadata(KeyValue::new(FILES_KEY.into(), files.join("\n")));
        let parquet = |source| CatalogError::Parquet {
            path: self.path.clone(),
            source,
        };
        self.writer.close().map_err(parquet)?;
        self.temp.commit().map_err(|source| CatalogError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Brings a catalog file up to date in one streaming pass: the rows of the store files `replaced`
/// are dropped, the batches `new` merged in key order. Without a catalog file (or with `rebuild`)
/// the new rows are the whole catalog. Returns the number of rows written.
pub fn update_file(
    path: &Path,
    replaced: &HashSet<String>,
    new: Vec<RecordBatch>,
    rebuild: bool,
) -> Result<usize, CatalogError> {
    let old = if rebuild {
        None
    } else {
        match Reader::open(path) {
            Ok(r) => Some(r),
            Err(CatalogError::Missing { .. }) => None,
            Err(e) => return Err(e),
        }
    };
    let new = sorted(new)?;
    let schema = union_schema(
        old.iter()
            .map(|r| r.schema.as_ref())
            .chain(new.iter().map(|b| b.schema_ref().as_ref())),
    )?;
    let mut writer = CatalogWriter::create(path, &schema)?;
    let mut rows = 0;
    let mut sink = |b: RecordBatch| {
        rows += b.num_rows();
        writer.write(&b)
    };
    match old {
        Some(r) => merge(r.batches()?, replaced, new, &schema, &mut sink)?,
        None => merge(std::iter::empty(), replaced, new, &schema, &mut sink)?,
    }
    writer.finish()?;
    Ok(rows)
}

/// Each batch sorted by key, the batches by their first key (each holds one store file, whose keys
/// are one contiguous range).
fn sorted(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, CatalogError> {
    let mut out = Vec::with_capacity(batches.len());
    for b in batches.into_iter().filter(|b| b.num_rows() > 0) {
        let idx = sort_to_indices(key_column(&b)?, None, None)
            .map_err(|e| CatalogError::Schema(e.to_string()))?;
        out.push(take_record_batch(&b, &idx).map_err(|e| CatalogError::Schema(e.to_string()))?);
    }
    let first = |b: &RecordBatch| {
        key_column(b)
            .map(|k| k.as_primitive::<Int64Type>().value(0))
            .unwrap_or(i64::MIN)
    };
    out.sort_by_key(first);
    Ok(out)
}

fn key_column(b: &RecordBatch) -> Result<&Arc<dyn Array>, CatalogError> {
    b.column_by_name(columns::KEY)
        .ok_or_else(|| CatalogError::Schema("a batch without a key column".into()))
}

/// Merges sorted old batches (without the rows of `replaced` files) with sorted new batches, all
/// conformed to `schema`, into `sink` in key order.
fn merge(
    old: impl Iterator<Item = Result<RecordBatch, CatalogError>>,
    replaced: &HashSet<String>,
    new: Vec<RecordBatch>,
    schema: &SchemaRef,
    mut sink: impl FnMut(RecordBatch) -> Result<(), CatalogError>,
) -> Result<(), CatalogError> {
    let mut new = new.into_iter().peekable();
    let first_key = |b: &RecordBatch| key_column(b).map(|k| k.as_primitive::<Int64Type>().value(0));
    for batch in old {
        let batch = batch?;
        let batch = if replaced.is_empty() {
            batch
        } else {
            let files = batch
                .column_by_name(columns::FILE)
                .ok_or_else(|| CatalogError::Schema("a batch without a file column".into()))?
                .as_string::<i32>();
            let keep: BooleanArray = files
                .iter()
                .map(|f| Some(!f.is_some_and(|f| replaced.contains(f))))
                .collect();
            filter_record_batch(&batch, &keep).map_err(|e| CatalogError::Schema(e.to_string()))?
        };
        if batch.num_rows() == 0 {
            continue;
        }
        let keys = key_column(&batch)?.as_primitive::<Int64Type>().clone();
        let keys = keys.values();
        let mut start = 0;
        while let Some(next) = new.peek() {
            let k = first_key(next)?;
            if k > keys[keys.len() - 1] {
                break;
            }
            let at = keys.partition_point(|&x| x < k).max(start);
            if at > start {
                sink(conform(&batch.slice(start, at - start), schema)?)?;
            }
            sink(conform(&new.next().expect("peeked"), schema)?)?;
            start = at;
        }
        if start < batch.num_rows() {
            sink(conform(
                &batch.slice(start, batch.num_rows() - start),
                schema,
            )?)?;
        }
    }
    for b in new {
        sink(conform(&b, schema)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::batch_of;
    use model::layout::PlateTable;
    use model::PlateMjd;
    use store::reader::FiberEntry;
    use store::table::{Column, ScalarKind};
    use store::Table;

    /// The catalog batch of a plate with `fibers` and a spall table with the given f32 columns.
    fn plate(plate: i32, fibers: &[i32], columns: &[&str]) -> RecordBatch {
        let mut cols = vec![Column {
            name: "FIBERID".into(),
            kind: ScalarKind::I32,
            dims: vec![],
            unit: None,
        }];
        cols.extend(columns.iter().map(|c| Column {
            name: c.to_string(),
            kind: ScalarKind::F32,
            dims: vec![],
            unit: None,
        }));
        let mut t = Table::new(cols);
        for &f in fibers {
            let mut row = f.to_ne_bytes().to_vec();
            for k in 0..columns.len() {
                row.extend((f as f32 * 10.0 + k as f32).to_ne_bytes());
            }
            t.push_row(&row);
        }
        let entries: Vec<FiberEntry> = fibers
            .iter()
            .map(|&fiber| FiberEntry {
                fiber,
                npix: 10,
                nexp: 0,
            })
            .collect();
        let pm = PlateMjd { plate, mjd: 55000 };
        batch_of(pm, &entries, vec![(PlateTable::Spall, t)]).unwrap()
    }

    fn keys(c: &Catalog) -> Vec<i64> {
        c.batches()
            .iter()
            .flat_map(|b| {
                key_column(b)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn updates_stream_in_key_order_and_follow_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.parquet");
        let none = HashSet::new();
        let n = update_file(
            &path,
            &none,
            vec![plate(7, &[3, 1, 2], &["Z"]), plate(5, &[1, 2], &["Z"])],
            false,
        )
        .unwrap();
        assert_eq!(n, 5);
        let f = footer(&path).unwrap();
        assert_eq!(
            f.store_files.into_iter().collect::<Vec<_>>(),
            ["0005-55000.h5", "0007-55000.h5"]
        );
        // Plate 6 arrives (between the others) with a new column; plate 7 is replaced by 2 fibers.
        let replaced: HashSet<String> = ["0007-55000.h5".to_string()].into();
        let n = update_file(
            &path,
            &replaced,
            vec![
                plate(7, &[9, 8], &["Z"]),
                plate(6, &[4], &["Z", "NEW_COLUMN"]),
            ],
            false,
        )
        .unwrap();
        assert_eq!(n, 5);
        let c = Catalog::read(&path).unwrap();
        let k = keys(&c);
        assert!(k.windows(2).all(|w| w[0] < w[1]), "sorted: {k:?}");
        assert_eq!(k.len(), 5);
        assert_eq!(k[2], 6 * 1_000_000_000 + 55000 * 10_000 + 4);
        let all = c.concat().unwrap();
        let new = all.column_by_name("NEW_COLUMN").expect("the new column");
        assert_eq!(new.null_count(), 4, "null where the plates do not have it");
        // The derived z holds spall's Z: no column named Z is repeated.
        assert!(all.column_by_name("Z").is_none() && all.column_by_name("z").is_some());
        // In memory, the same merge.
        let mut m = Catalog::from_batches(vec![plate(5, &[1, 2], &["Z"])]).unwrap();
        m.replace(&none, vec![plate(4, &[1], &["Z"])]).unwrap();
        assert_eq!(keys(&m)[0], 4 * 1_000_000_000 + 55000 * 10_000 + 1);
    }

    #[test]
    fn a_catalog_of_another_format_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.parquet");
        let b = plate(5, &[1], &["Z"]);
        let plain = Arc::new(Schema::new(
            b.schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_metadata(Default::default()))
                .collect::<Vec<_>>(),
        ));
        let b = RecordBatch::try_new(plain.clone(), b.columns().to_vec()).unwrap();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), plain, None).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        let e = footer(&path).unwrap_err().to_string();
        assert!(
            e.contains("older version") && e.contains("catalog.parquet"),
            "{e}"
        );
        assert!(matches!(
            footer(&dir.path().join("none.parquet")),
            Err(CatalogError::Missing { .. })
        ));
    }
}
