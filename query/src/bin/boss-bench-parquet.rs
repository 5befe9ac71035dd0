//! The Parquet encodings tried for the export's spectra, measured on the same rows: reads an Arrow
//! IPC export (`boss-query … --arrow IN.arrow`) and writes it as Parquet once per encoding (codec,
//! dictionary, BYTE_STREAM_SPLIT, row-group size, columns in parallel or not, and ArrowWriter as the
//! export used it before), each file fsynced; then reads each back. Prints JSON (bench/run puts it
//! in BENCHMARKS.md).

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::ipc::reader::FileReader;
use clap::Parser;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use query::export::{ParquetCodec, ParquetEncoding, ParquetFile};
use serde::Serialize;

/// Write one Arrow IPC export as Parquet with each encoding; time the writes and reads.
#[derive(Parser)]
struct Args {
    /// An Arrow IPC file written by boss-query --arrow.
    input: PathBuf,
    /// A directory for the Parquet files (each removed after it is measured).
    #[arg(long)]
    out: PathBuf,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

#[derive(Serialize)]
struct Measured {
    name: String,
    encoding: Option<ParquetEncoding>,
    file_bytes: u64,
    write_seconds: f64,
    read_seconds: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The encodings measured: the export's default first, then one change at a time.
fn encodings() -> Vec<(&'static str, ParquetEncoding)> {
    let d = ParquetEncoding::default();
    let with = |f: fn(&mut ParquetEncoding)| {
        let mut e = d;
        f(&mut e);
        e
    };
    let plain = |e: &mut ParquetEncoding| e.byte_stream_split = false;
    vec![
        ("default: snappy + byte_stream_split", d),
        (
            "none + byte_stream_split",
            with(|e| e.codec = ParquetCodec::None),
        ),
        (
            "zstd + byte_stream_split",
            with(|e| e.codec = ParquetCodec::Zstd),
        ),
        ("snappy, plain floats", with(plain)),
        (
            "none, plain floats",
            with(|e| {
                e.byte_stream_split = false;
                e.codec = ParquetCodec::None;
            }),
        ),
        (
            "zstd, plain floats",
            with(|e| {
                e.byte_stream_split = false;
                e.codec = ParquetCodec::Zstd;
            }),
        ),
        (
            "snappy, plain floats, list dictionary",
            with(|e| {
                e.byte_stream_split = false;
                e.list_dictionary = true;
            }),
        ),
        (
            "default, with page statistics of the spectra",
            with(|e| e.list_statistics = true),
        ),
        ("default on one core", with(|e| e.parallel = false)),
        (
            "default, row groups of 128",
            with(|e| e.row_group_rows = 128),
        ),
        (
            "default, row groups of 8192",
            with(|e| e.row_group_rows = 8192),
        ),
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    model::allocator::keep_freed_memory();
    let args = Args::parse();
    let reader = FileReader::try_new(File::open(&args.input)?, None)?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join("bench.parquet");
    let mut results = Vec::new();
    let mut measure = |name: &str,
                       encoding: Option<ParquetEncoding>,
                       write: &dyn Fn(File) -> Result<(), Box<dyn std::error::Error>>|
     -> Result<(), Box<dyn std::error::Error>> {
        let (mut writes, mut reads, mut bytes) = (Vec::new(), Vec::new(), 0);
        for _ in 0..args.repeat {
            let t = Instant::now();
            let f = File::create(&path)?;
            write(f.try_clone()?)?;
            f.sync_all()?;
            writes.push(t.elapsed().as_secs_f64());
            bytes = std::fs::metadata(&path)?.len();
            let t = Instant::now();
            let r = ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)?.build()?;
            let rows: usize = r.map(|b| b.map(|b| b.num_rows())).sum::<Result<_, _>>()?;
            reads.push(t.elapsed().as_secs_f64());
            assert_eq!(rows, batches.iter().map(|b| b.num_rows()).sum::<usize>());
            std::fs::remove_file(&path)?;
        }
        eprintln!(
            "parquet {name}: write {:.2} s, read {:.2} s, {} MB",
            median(writes.clone()),
            median(reads.clone()),
            bytes / 1_000_000
        );
        if encoding.is_some() && name.starts_with("warm-up") {
            return Ok(());
        }
        results.push(Measured {
            name: name.to_string(),
            encoding,
            file_bytes: bytes,
            write_seconds: median(writes),
            read_seconds: median(reads),
        });
        Ok(())
    };
    // One untimed write first: the first write of a run pays for the page cache it takes.
    let warm = encodings()[0].1;
    measure("warm-up (not reported)", Some(warm), &|f| {
        let mut w = ParquetFile::create(f, &schema, warm)?;
        for b in &batches {
            w.write(b)?;
        }
        Ok(w.close()?)
    })?;
    for (name, e) in encodings() {
        measure(name, Some(e), &|f| {
            let mut w = ParquetFile::create(f, &schema, e)?;
            for b in &batches {
                w.write(b)?;
            }
            Ok(w.close()?)
        })?;
    }
    // What the export did before: ArrowWriter (one core), snappy, dictionary everywhere.
    measure("before: ArrowWriter, snappy, dictionary", None, &|f| {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(1024))
            .build();
        let mut w = ArrowWriter::try_new(f, schema.clone(), Some(props))?;
        for b in &batches {
            w.write(b)?;
        }
        w.close()?;
        Ok(())
    })?;
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}
