//! Columnar export for pandas: one row per selected spectrum, sorted by key — every catalog column,
//! then one list column per coadd field (`df.flux[i]` is a spectrum, `df.wave[i]` its wavelengths;
//! SDSS-V spectra also have `wresl`, null for SDSS-I–IV ones; DESI spectra have per-arm columns
//! `b_wave`, `b_flux`, `b_ivar`, `b_mask`, `r_…`, `z_…`, null for SDSS ones, and their SDSS
//! columns are null), or with `--nested` one struct-of-lists column per spectrum (module
//! [`nested`]). Each rank builds the batches of its own store groups, one store group at a time
//! (never the whole result in memory) and writes them into its own part files: of a directory
//! output (module [`parts`]), or the pieces of a single Arrow IPC or Parquet file, which all ranks
//! join into the file (module [`stitch`]); one process writes a single file directly.

mod batch;
mod columns;
pub mod nested;
pub mod parts;
mod stitch;
mod writers;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};
use model::atomic::AtomicFile;
use model::GroupId;
use ranks::{partition_contiguous, Job};

use crate::error::{QueryError, Result};
use batch::{build_batch, spectra_of};
use columns::arm_fields;
pub use columns::SpectralColumn;
use parts::{is_directory_form, PartDirs};
use writers::Writers;
pub use writers::{ParquetCodec, ParquetEncoding, ParquetFile};

/// True when some catalog rows are DESI spectra (the export then has the per-arm columns).
pub fn has_desi(rows: &RecordBatch) -> bool {
    spectra_of(rows)
        .iter()
        .any(|s| matches!(s.group, GroupId::Desi(_)))
}

/// Where to export and which spectral columns. A path ending in `/` (or an existing directory) is
/// a directory output: every rank writes its own part files into it (module [`parts`]).
pub struct ExportOptions {
    pub arrow: Option<PathBuf>,
    pub parquet: Option<PathBuf>,
    pub columns: Vec<SpectralColumn>,
    pub codec: ParquetCodec,
    /// The nested form: each spectrum one struct-of-lists column (module [`nested`]).
    pub nested: bool,
}

/// What the export wrote (the totals of all ranks).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ExportReport {
    pub rows: usize,
    /// Bytes of spectral values exported.
    pub spectra_bytes: u64,
    /// Part files written by all ranks (directory outputs; 0 for single files).
    pub parts: usize,
    pub codec: ParquetCodec,
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

/// True when some catalog rows are of a later survey than SDSS-I–IV (they have columns SDSS-I–IV
/// spectra do not, such as `wresl`).
pub fn has_later_surveys(rows: &RecordBatch) -> bool {
    spectra_of(rows)
        .iter()
        .any(|s| s.group.plate_mjd().is_none())
}

/// Writes one batch to a Parquet file (the `--sql` result), through a temporary file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    let encoding = ParquetEncoding::with_codec(ParquetCodec::Snappy);
    let mut w = Writers::open(None, Some(AtomicFile::new(path)), encoding, &batch.schema())?;
    w.write(batch)?;
    w.finish(true)
}

/// The outputs of an export split by form: directories (a part per rank) and single files —
/// written whole by the one process, or stitched from a piece per rank under several ranks.
struct Targets<'a> {
    dir_arrow: Option<&'a Path>,
    dir_parquet: Option<&'a Path>,
    file_arrow: Option<&'a Path>,
    file_parquet: Option<&'a Path>,
}

impl<'a> Targets<'a> {
    fn of(opts: &'a ExportOptions) -> Self {
        let split = |p: &'a Option<PathBuf>| match p.as_deref() {
            Some(p) if is_directory_form(p) => (None, Some(p)),
            other => (other, None),
        };
        let (file_arrow, dir_arrow) = split(&opts.arrow);
        let (file_parquet, dir_parquet) = split(&opts.parquet);
        Self {
            dir_arrow,
            dir_parquet,
            file_arrow,
            file_parquet,
        }
    }

    fn has_dirs(&self) -> bool {
        self.dir_arrow.is_some() || self.dir_parquet.is_some()
    }

    fn has_files(&self) -> bool {
        self.file_arrow.is_some() || self.file_parquet.is_some()
    }
}

/// Bytes of spectral values in a batch (its list columns after the catalog's `catalog_columns`).
fn spectra_bytes(batch: &RecordBatch, catalog_columns: usize) -> u64 {
    batch
        .columns()
        .iter()
        .skip(catalog_columns)
        .flat_map(|c| c.to_data().child_data().to_vec())
        .map(|d| (d.len() * d.data_type().primitive_width().unwrap_or(4)) as u64)
        .sum()
}

/// Exports the selected spectra (`subset`, sorted by key). Collective: every rank calls it.
///
/// Each rank builds the batches of its own contiguous run of store groups, one group at a time, and
/// writes them into its part files: of a directory output (put into place by rank 0 when every part
/// is complete), or the pieces of a single file, which all ranks join into rank 0's piece (module
/// [`stitch`]). Nothing moves between ranks; a single process writes single files directly. A
/// failure after writing started aborts the job; the files written are removed and nothing appears
/// under a final name.
pub fn export(
    job: &Job,
    store: &Path,
    subset: &RecordBatch,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    let start = std::time::Instant::now();
    let targets = Targets::of(opts);
    let encoding = ParquetEncoding::with_codec(opts.codec);
    let desi = has_desi(subset);
    let catalog_columns = subset.num_columns();
    let flat = export_schema(&subset.schema(), &opts.columns, desi);
    let schema = if opts.nested {
        nested::nested_schema(&flat, catalog_columns)
    } else {
        flat.clone()
    };
    // Rows of each store group (start, count), in key order: the subset is sorted by key, so the
    // rows of a group are contiguous.
    let mut groups: Vec<(GroupId, usize, usize)> = Vec::new();
    for (i, f) in spectra_of(subset).into_iter().enumerate() {
        match groups.last_mut() {
            Some((last, _, n)) if *last == f.group => *n += 1,
            _ => groups.push((f.group, i, 1)),
        }
    }
    let weights: Vec<u64> = groups.iter().map(|g| g.2 as u64).collect();
    // Parts in rank order must be in key order: ranks own contiguous runs of groups.
    let owner = partition_contiguous(&weights, job.size());
    let dirs = if targets.has_dirs() {
        Some(PartDirs::open(job, targets.dir_arrow, targets.dir_parquet)?)
    } else {
        None
    };
    let stitched = job.size() > 1 && targets.has_files();
    let pieces = if stitched {
        Some(PartDirs::open_pieces(
            job,
            targets.file_arrow,
            targets.file_parquet,
        )?)
    } else {
        None
    };
    // Each rank opens its part files (rank 0 also when nothing is selected: the directory then
    // holds one empty part with the schema), a single process its single files; every rank learns
    // whether all could before any batch is written.
    let mine = owner.contains(&job.rank()) || (job.is_root() && groups.is_empty());
    let open_parts = |d: &Option<PartDirs>| match d {
        Some(d) if mine => {
            let (a, p) = d.part_files(job.rank());
            Some(Writers::open(a, p, encoding, &schema))
        }
        _ => None,
    };
    let opened_parts = open_parts(&dirs);
    let opened_pieces = open_parts(&pieces);
    let opened_files = (!stitched && targets.has_files()).then(|| {
        Writers::open(
            targets.file_arrow.map(AtomicFile::new),
            targets.file_parquet.map(AtomicFile::new),
            encoding,
            &schema,
        )
    });
    let failed = job.any(
        matches!(opened_parts, Some(Err(_)))
            || matches!(opened_pieces, Some(Err(_)))
            || matches!(opened_files, Some(Err(_))),
    );
    let (mut parts, mut piece, mut files) = match (
        opened_parts.transpose(),
        opened_pieces.transpose(),
        opened_files.transpose(),
    ) {
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(e),
        _ if failed => return Err(QueryError::OtherRank),
        (Ok(p), Ok(s), Ok(f)) => (p, s, f),
    };
    let mut report = ExportReport {
        codec: opts.codec,
        ..Default::default()
    };
    for ((group, first, n), o) in groups.iter().zip(owner) {
        if o != job.rank() {
            continue;
        }
        let b = build_batch(
            store,
            *group,
            &subset.slice(*first, *n),
            &flat,
            &opts.columns,
            desi,
        )
        .unwrap_or_else(|e| abort(job, e));
        report.rows += b.num_rows();
        report.spectra_bytes += spectra_bytes(&b, catalog_columns);
        let b = if opts.nested {
            nested::nest(&b, &schema, catalog_columns).unwrap_or_else(|source| {
                let path = store.join(group.store_file_name());
                abort(job, QueryError::Arrow { path, source })
            })
        } else {
            b
        };
        for w in [&mut parts, &mut piece, &mut files].into_iter().flatten() {
            w.write(&b).unwrap_or_else(|e| abort(job, e));
        }
    }
    if let Some(w) = parts {
        w.finish(true).unwrap_or_else(|e| abort(job, e));
        report.parts =
            usize::from(targets.dir_arrow.is_some()) + usize::from(targets.dir_parquet.is_some());
    }
    if let Some(w) = piece {
        w.finish(false).unwrap_or_else(|e| abort(job, e));
    }
    if let Some(w) = files {
        w.finish(true).unwrap_or_else(|e| abort(job, e));
    }
    if let Some(d) = dirs {
        d.commit(job)?;
    }
    if let Some(d) = pieces {
        d.stitch(job)?;
    }
    report.rows = job.sum_u64(report.rows as u64) as usize;
    report.spectra_bytes = job.sum_u64(report.spectra_bytes);
    report.parts = job.sum_u64(report.parts as u64) as usize;
    report.seconds = job.max_f64(start.elapsed().as_secs_f64());
    Ok(report)
}

fn abort(job: &Job, e: QueryError) -> ! {
    eprintln!(
        "boss-query: error (rank {}): {e}; aborting the job",
        job.rank()
    );
    job.abort(2)
}
