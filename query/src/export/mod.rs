//! Columnar export for pandas: one row per selected spectrum, sorted by key — every catalog column,
//! then one list column per coadd field (`df.flux[i]` is a spectrum, `df.wave[i]` its wavelengths;
//! SDSS-V spectra also have `wresl`, null for SDSS-I–IV ones; DESI spectra have per-arm columns
//! `b_wave`, `b_flux`, `b_ivar`, `b_mask`, `r_…`, `z_…`, null for SDSS ones, and their SDSS
//! columns are null). Each rank builds the batches of its
//! own store groups; rank 0 writes them in key order into one Arrow IPC
//! file and/or one Parquet file, one plate-MJD at a time (never the whole result in memory).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::{ArrayRef, Float32Array, Int32Array, ListArray, RecordBatch};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::Int64Type;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use catalog::ipc;
use model::atomic::AtomicFile;
use model::{GroupId, SpectrumId};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use ranks::{partition_by_weight, Job};
use store::CoaddRecord;

use crate::error::{QueryError, Result};

/// The coadd fields that can be exported, in the order of the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpectralColumn {
    Wave,
    Flux,
    Ivar,
    AndMask,
    OrMask,
    Wavedisp,
    Sky,
    Model,
    /// SDSS-V: the wavelength resolution (Å) of each pixel.
    Wresl,
}

impl SpectralColumn {
    pub const ALL: [SpectralColumn; 9] = [
        Self::Wave,
        Self::Flux,
        Self::Ivar,
        Self::AndMask,
        Self::OrMask,
        Self::Wavedisp,
        Self::Sky,
        Self::Model,
        Self::Wresl,
    ];

    /// Column name in the export.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wave => "wave",
            Self::Flux => "flux",
            Self::Ivar => "ivar",
            Self::AndMask => "and_mask",
            Self::OrMask => "or_mask",
            Self::Wavedisp => "wavedisp",
            Self::Sky => "sky",
            Self::Model => "model",
            Self::Wresl => "wresl",
        }
    }

    /// The array of the store's merged layout holding this field.
    fn store_name(self) -> &'static str {
        match self {
            Self::Wave => "WAVE",
            Self::Flux => "FLUX",
            Self::Ivar => "IVAR",
            Self::AndMask => "AND_MASK",
            Self::OrMask => "OR_MASK",
            Self::Wavedisp => "WAVEDISP",
            Self::Sky => "SKY",
            Self::Model => "MODEL",
            Self::Wresl => "WRESL",
        }
    }

    /// True for columns only some surveys have (null for the others).
    fn optional(self) -> bool {
        self == Self::Wresl
    }

    fn item_type(self) -> DataType {
        match self {
            Self::AndMask | Self::OrMask => DataType::Int32,
            _ => DataType::Float32,
        }
    }

    fn field(self) -> Field {
        list_field(self.name(), self.item_type(), self.optional())
    }

    /// The values of this field for a run of pixels (None: SDSS-I–IV coadds have no such field).
    fn array(self, records: &[CoaddRecord]) -> Option<ArrayRef> {
        let f32s = |get: fn(&CoaddRecord) -> f32| {
            Arc::new(Float32Array::from_iter_values(records.iter().map(get))) as ArrayRef
        };
        let i32s = |get: fn(&CoaddRecord) -> i32| {
            Arc::new(Int32Array::from_iter_values(records.iter().map(get))) as ArrayRef
        };
        Some(match self {
            Self::Wave => f32s(|r| r.wave),
            Self::Flux => f32s(|r| r.flux),
            Self::Ivar => f32s(|r| r.ivar),
            Self::AndMask => i32s(|r| r.and_mask),
            Self::OrMask => i32s(|r| r.or_mask),
            Self::Wavedisp => f32s(|r| r.wavedisp),
            Self::Sky => f32s(|r| r.sky),
            Self::Model => f32s(|r| r.model),
            Self::Wresl => return None,
        })
    }
}

fn list_field(name: &str, item: DataType, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(item, false))),
        nullable,
    )
}

/// DESI's per-arm list columns: `<arm>_<name>` from the store array, of this item type.
const ARM_COLUMNS: [(&str, &str, DataType); 4] = [
    ("wave", "WAVELENGTH", DataType::Float64),
    ("flux", "FLUX", DataType::Float32),
    ("ivar", "IVAR", DataType::Float32),
    ("mask", "MASK", DataType::Int32),
];

fn arm_fields() -> Vec<Field> {
    model::desi::ARMS
        .iter()
        .flat_map(|arm| {
            ARM_COLUMNS
                .iter()
                .map(move |(n, _, t)| list_field(&format!("{arm}_{n}"), t.clone(), true))
        })
        .collect()
}

/// True when some catalog rows are DESI spectra (the export then has the per-arm columns).
pub fn has_desi(rows: &RecordBatch) -> bool {
    spectra_of(rows)
        .iter()
        .any(|s| matches!(s.group, GroupId::Desi(_)))
}

/// Where to export and which spectral columns.
pub struct ExportOptions {
    pub arrow: Option<PathBuf>,
    pub parquet: Option<PathBuf>,
    pub columns: Vec<SpectralColumn>,
}

/// What the export wrote (on rank 0).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ExportReport {
    pub rows: usize,
    /// Bytes of spectral values exported.
    pub spectra_bytes: u64,
    pub seconds: f64,
}

/// The schema of the export: the catalog columns, then the chosen list columns (nullable when DESI
/// rows have none), then DESI's per-arm columns if `desi`.
pub fn export_schema(catalog: &Schema, columns: &[SpectralColumn], desi: bool) -> SchemaRef {
    let mut fields: Vec<Field> = catalog
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend(columns.iter().map(|c| {
        let f = c.field();
        let nullable = f.is_nullable() || desi;
        f.with_nullable(nullable)
    }));
    if desi {
        fields.extend(arm_fields());
    }
    Arc::new(Schema::new(fields))
}

/// The spectra of catalog rows.
fn spectra_of(rows: &RecordBatch) -> Vec<SpectrumId> {
    rows.column_by_name(catalog::columns::KEY)
        .expect("catalog rows have a key")
        .as_primitive::<Int64Type>()
        .values()
        .iter()
        .filter_map(|&k| SpectrumId::from_key(k))
        .collect()
}

/// True when some catalog rows are of a later survey than SDSS-I–IV (they have columns SDSS-I–IV
/// spectra do not, such as `wresl`).
pub fn has_later_surveys(rows: &RecordBatch) -> bool {
    spectra_of(rows)
        .iter()
        .any(|s| s.group.plate_mjd().is_none())
}

/// One list column from the flat values of its spectra and their offsets.
fn list(
    path: &Path,
    item: DataType,
    offsets: &OffsetBuffer<i32>,
    values: ArrayRef,
) -> Result<ArrayRef> {
    let item = Arc::new(Field::new_list_field(item, false));
    ListArray::try_new(item, offsets.clone(), values, None)
        .map(|l| Arc::new(l) as ArrayRef)
        .map_err(|source| QueryError::Arrow {
            path: path.to_path_buf(),
            source,
        })
}

/// A list column of nulls (a field a survey's spectra do not have).
fn null_list(c: SpectralColumn, rows: usize) -> ArrayRef {
    arrow::array::new_null_array(c.field().data_type(), rows)
}

fn offsets_of(path: &Path, lengths: impl Iterator<Item = usize>) -> Result<OffsetBuffer<i32>> {
    let mut offsets = vec![0i32];
    let mut total = 0usize;
    for n in lengths {
        total += n;
        offsets
            .push(i32::try_from(total).map_err(|_| {
                QueryError::store(path, "more than 2^31 pixels in one store group")
            })?);
    }
    Ok(OffsetBuffer::new(offsets.into()))
}

/// Builds the batch of one store group: the catalog rows `subset` (all of that group) and spectra.
fn build_batch(
    store: &Path,
    group: GroupId,
    subset: &RecordBatch,
    schema: &SchemaRef,
    columns: &[SpectralColumn],
    desi: bool,
) -> Result<RecordBatch> {
    let path = store.join(group.store_file_name());
    let rows: Vec<i64> = spectra_of(subset).iter().map(|s| s.row).collect();
    let mut arrays: Vec<ArrayRef> = subset.columns().to_vec();
    match group {
        GroupId::Plate(pm) => {
            let err = |e: hdf5::Error| QueryError::hdf5(&path, "cannot read a coadd", e);
            let file = hdf5::File::open(&path).map_err(err)?;
            let fibers: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
            let mut pixels: Vec<CoaddRecord> = Vec::new();
            let mut lengths = Vec::with_capacity(fibers.len());
            for coadd in store::reader::coadds(&file, pm, &fibers).map_err(err)? {
                lengths.push(coadd.len());
                pixels.extend(coadd);
            }
            let offsets = offsets_of(&path, lengths.into_iter())?;
            for c in columns {
                arrays.push(match c.array(&pixels) {
                    Some(values) => list(&path, c.item_type(), &offsets, values)?,
                    None => null_list(*c, rows.len()),
                });
            }
        }
        GroupId::Field(_) => {
            let spectra = store::merged::read_rows(&path, group, &rows)
                .map_err(|e| QueryError::store(&path, format!("cannot read the spectra: {e}")))?;
            let offsets = offsets_of(&path, spectra.lengths.iter().copied())?;
            for c in columns {
                arrays.push(match spectra.column(c.store_name()) {
                    Some(bits) => {
                        let values: ArrayRef = if c.item_type() == DataType::Int32 {
                            Arc::new(Int32Array::from_iter_values(bits.iter().map(|&b| b as i32)))
                        } else {
                            Arc::new(Float32Array::from_iter_values(
                                bits.iter().map(|&b| f32::from_bits(b)),
                            ))
                        };
                        list(&path, c.item_type(), &offsets, values)?
                    }
                    None if c.optional() => null_list(*c, rows.len()),
                    None => {
                        return Err(QueryError::store(
                            &path,
                            format!("the coadds have no {} array", c.store_name()),
                        ))
                    }
                });
            }
        }
        GroupId::Desi(_) => {
            for c in columns {
                arrays.push(null_list(*c, rows.len()));
            }
        }
    }
    if desi {
        arrays.extend(arm_arrays(&path, group, &rows)?);
    }
    RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|source| QueryError::Arrow { path, source })
}

/// DESI's per-arm list columns of the rows `rows` of `group` (nulls for groups of other surveys):
/// the arm's shared wavelength grid on every row, the row's FLUX, IVAR and MASK.
fn arm_arrays(path: &Path, group: GroupId, rows: &[i64]) -> Result<Vec<ArrayRef>> {
    let n = rows.len();
    if !matches!(group, GroupId::Desi(_)) {
        return Ok(arm_fields()
            .iter()
            .map(|f| arrow::array::new_null_array(f.data_type(), n))
            .collect());
    }
    let mut out = Vec::new();
    for arm in model::desi::ARMS {
        let block = store::merged::read_block_rows(path, group, arm, rows)
            .map_err(|e| QueryError::store(path, format!("cannot read arm {arm}: {e}")))?;
        for (_, store_name, item) in &ARM_COLUMNS {
            let a = block
                .iter()
                .find(|a| a.name == *store_name)
                .ok_or_else(|| {
                    QueryError::store(path, format!("arm {arm} has no {store_name} array"))
                })?;
            let shared = a.attrs.iter().any(|(k, v)| {
                k == model::layout::sdss5::SHARED_ATTR && *v == store::attrs::AttrValue::Bool(true)
            });
            let npix = if shared {
                a.shape[0] as usize
            } else {
                a.shape.get(1).copied().unwrap_or(0) as usize
            };
            let offsets = offsets_of(path, std::iter::repeat_n(npix, n))?;
            let values: ArrayRef = match item {
                DataType::Float64 => {
                    let v: Vec<f64> = bytemuck::pod_collect_to_vec(&a.bytes);
                    let v = if shared { v.repeat(n) } else { v };
                    Arc::new(arrow::array::Float64Array::from(v))
                }
                DataType::Int32 => Arc::new(Int32Array::from(bytemuck::pod_collect_to_vec::<
                    u8,
                    i32,
                >(&a.bytes))),
                _ => Arc::new(Float32Array::from(bytemuck::pod_collect_to_vec::<u8, f32>(
                    &a.bytes,
                ))),
            };
            if values.len() != npix * n {
                return Err(QueryError::store(
                    path,
                    format!(
                        "arm {arm}: {store_name} has {} values, expected {}",
                        values.len(),
                        npix * n
                    ),
                ));
            }
            out.push(list(path, item.clone(), &offsets, values)?);
        }
    }
    Ok(out)
}

/// The writers rank 0 feeds, each into a temporary file committed when complete (removed if the
/// export fails or the job is killed).
struct Writers {
    arrow: Option<(FileWriter<File>, AtomicFile)>,
    parquet: Option<(ArrowWriter<File>, AtomicFile)>,
}

impl Writers {
    fn open(opts: &ExportOptions, schema: &SchemaRef) -> Result<Self> {
        let io = |p: &Path, e| QueryError::io(p, "cannot create the export", e);
        let arrow = match &opts.arrow {
            Some(p) => {
                let w = AtomicFile::new(p);
                let f = File::create(w.temp()).map_err(|e| io(p, e))?;
                let fw = FileWriter::try_new(f, schema).map_err(|source| QueryError::Arrow {
                    path: p.clone(),
                    source,
                })?;
                Some((fw, w))
            }
            None => None,
        };
        let parquet = match &opts.parquet {
            Some(p) => {
                let w = AtomicFile::new(p);
                let f = File::create(w.temp()).map_err(|e| io(p, e))?;
                // One row group per plate-MJD batch at most: memory stays bounded.
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(1024))
                    .build();
                let pw =
                    ArrowWriter::try_new(f, schema.clone(), Some(props)).map_err(|source| {
                        QueryError::Parquet {
                            path: p.clone(),
                            source,
                        }
                    })?;
                Some((pw, w))
            }
            None => None,
        };
        Ok(Self { arrow, parquet })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some((w, a)) = &mut self.arrow {
            w.write(batch).map_err(|source| QueryError::Arrow {
                path: a.dest().to_path_buf(),
                source,
            })?;
        }
        if let Some((w, a)) = &mut self.parquet {
            w.write(batch).map_err(|source| QueryError::Parquet {
                path: a.dest().to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        let commit = |a: AtomicFile| {
            let dest = a.dest().to_path_buf();
            a.commit()
                .map_err(|e| QueryError::io(&dest, "cannot put the export into place", e))
        };
        if let Some((mut w, a)) = self.arrow {
            w.finish().map_err(|source| QueryError::Arrow {
                path: a.dest().to_path_buf(),
                source,
            })?;
            drop(w);
            commit(a)?;
        }
        if let Some((w, a)) = self.parquet {
            w.close().map_err(|source| QueryError::Parquet {
                path: a.dest().to_path_buf(),
                source,
            })?;
            commit(a)?;
        }
        Ok(())
    }
}

/// Writes one batch to a Parquet file (the `--sql` result), through a temporary file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let opts = ExportOptions {
        arrow: None,
        parquet: Some(path.to_path_buf()),
        columns: Vec::new(),
    };
    let mut w = Writers::open(&opts, &batch.schema())?;
    w.write(batch)?;
    w.finish()
}

/// Exports the selected fibers (`subset`, sorted by key). Collective: every rank calls it. A failure
/// after writing started aborts the job (the other ranks would wait for batches forever).
pub fn export(
    job: &Job,
    store: &Path,
    subset: &RecordBatch,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    let start = std::time::Instant::now();
    let desi = has_desi(subset);
    let schema = export_schema(&subset.schema(), &opts.columns, desi);
    // Rows of each store group (start, count), in key order: the subset is sorted by key, so the
    // rows of a group are contiguous.
    let mut groups: Vec<(GroupId, usize, usize)> = Vec::new();
    for (i, f) in spectra_of(subset).into_iter().enumerate() {
        match groups.last_mut() {
            Some((last, _, n)) if *last == f.group => *n += 1,
            _ => groups.push((f.group, i, 1)),
        }
    }
    let owner = partition_by_weight(
        &groups.iter().map(|g| g.2 as u64).collect::<Vec<_>>(),
        job.size(),
    );
    // Rank 0 opens the outputs; every rank learns whether it could before any batch moves.
    let opened = job.is_root().then(|| Writers::open(opts, &schema));
    let failed = job.any(matches!(opened, Some(Err(_))));
    let mut writers = match opened {
        Some(Ok(w)) if !failed => Some(w),
        Some(Err(e)) => return Err(e),
        _ if failed => return Err(QueryError::OtherRank),
        _ => None,
    };
    let mut report = ExportReport::default();
    for ((pm, first, n), o) in groups.iter().zip(owner) {
        let local = if o == job.rank() {
            Some(
                build_batch(
                    store,
                    *pm,
                    &subset.slice(*first, *n),
                    &schema,
                    &opts.columns,
                    desi,
                )
                .unwrap_or_else(|e| abort(job, e)),
            )
        } else {
            None
        };
        let batch = match (&mut writers, local) {
            (Some(_), Some(b)) => b,
            (Some(_), None) => {
                ipc::from_bytes(&job.receive_bytes(o)).unwrap_or_else(|e| abort(job, e.into()))
            }
            (None, Some(b)) => {
                job.send_bytes(
                    0,
                    &ipc::to_bytes(&b).unwrap_or_else(|e| abort(job, e.into())),
                );
                continue;
            }
            (None, None) => continue,
        };
        report.rows += batch.num_rows();
        report.spectra_bytes += batch
            .columns()
            .iter()
            .skip(subset.num_columns())
            .map(|c| {
                c.to_data()
                    .child_data()
                    .iter()
                    .map(|d| d.len() as u64 * 4)
                    .sum::<u64>()
            })
            .sum::<u64>();
        if let Some(w) = &mut writers {
            w.write(&batch).unwrap_or_else(|e| abort(job, e));
        }
    }
    if let Some(w) = writers {
        w.finish().unwrap_or_else(|e| abort(job, e));
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn abort(job: &Job, e: QueryError) -> ! {
    eprintln!(
        "boss-query: error (rank {}): {e}; aborting the job",
        job.rank()
    );
    job.abort(2)
}
