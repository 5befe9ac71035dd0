//! A single file written by every rank (`--parquet out.parquet`, `--arrow out.arrow` under mpirun):
//! each rank writes its own contiguous run of store groups into a piece (a part file in a staging
//! directory beside the output, as for a directory output), then rank 0 joins the pieces in rank
//! order into the one file. Parquet: the pieces' encoded column chunks are spliced, row group by
//! row group, without decoding (the approach of arrow-rs' `parquet-concat`), so the encoding runs
//! on every rank's cores. Arrow IPC: the pieces' record batches are read back (their buffers, no
//! conversion) and written on. Either way the file has the bytes one process writes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::error::ArrowError;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{
    ColumnChunkMetaData, PageIndexPolicy, ParquetMetaData, ParquetMetaDataOptions,
    ParquetMetaDataReader,
};
use parquet::file::properties::WriterProperties;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;

use crate::error::QueryError;

/// Joins `pieces` (files of extension `ext`, `arrow` or `parquet`) into `out`; errors name `dest`,
/// the file being written.
pub(crate) fn join(
    ext: &str,
    pieces: &[&Path],
    out: File,
    dest: &Path,
) -> std::result::Result<(), QueryError> {
    let path = dest.to_path_buf();
    if ext == "arrow" {
        stitch_arrow(pieces, out).map_err(|source| QueryError::Arrow { path, source })?;
    } else {
        stitch(pieces, out).map_err(|source| QueryError::Parquet { path, source })?;
    }
    Ok(())
}

/// Writes the row groups of `pieces` (Parquet files of one schema, in this order) into `out`, with
/// the first piece's key-value metadata (the Arrow schema, so readers get the same types back).
/// Returns the number of rows.
pub fn stitch(pieces: &[&Path], out: File) -> Result<u64> {
    let inputs = pieces
        .iter()
        .map(|p| {
            let file = File::open(p).map_err(|e| {
                ParquetError::General(format!("cannot open the piece {}: {e}", p.display()))
            })?;
            // The page encoding stats as written (not folded into a mask), so that the footer
            // is the one a single writer writes: the same bytes for any number of ranks.
            let options = ParquetMetaDataOptions::new().with_encoding_stats_as_mask(false);
            let metadata = ParquetMetaDataReader::new()
                .with_metadata_options(Some(options))
                .with_page_index_policy(PageIndexPolicy::Optional)
                .parse_and_finish(&file)?;
            Ok((file, metadata))
        })
        .collect::<Result<Vec<(File, ParquetMetaData)>>>()?;
    let Some((_, first)) = inputs.first() else {
        return Err(ParquetError::General("no piece to stitch".into()));
    };
    let schema = first.file_metadata().schema_descr();
    for (p, (_, m)) in pieces.iter().zip(&inputs).skip(1) {
        if m.file_metadata().schema_descr().root_schema() != schema.root_schema() {
            return Err(ParquetError::General(format!(
                "the piece {} has another schema than {}",
                p.display(),
                pieces[0].display()
            )));
        }
    }
    let props = WriterProperties::builder()
        .set_key_value_metadata(first.file_metadata().key_value_metadata().cloned())
        .build();
    let mut writer = SerializedFileWriter::new(out, schema.root_schema_ptr(), Arc::new(props))?;
    let mut rows = 0u64;
    for (file, metadata) in &inputs {
        for (g, group) in metadata.row_groups().iter().enumerate() {
            let column_index = metadata.column_index().and_then(|c| c.get(g));
            let offset_index = metadata.offset_index().and_then(|o| o.get(g));
            let mut out_group = writer.next_row_group()?;
            for (c, column) in group.columns().iter().enumerate() {
                out_group.append_column(
                    file,
                    ColumnCloseResult {
                        bytes_written: column.compressed_size() as u64,
                        rows_written: group.num_rows() as u64,
                        metadata: with_writer_statistics(column.clone())?,
                        bloom_filter: None,
                        column_index: column_index.and_then(|r| r.get(c)).cloned(),
                        offset_index: offset_index.and_then(|r| r.get(c)).cloned(),
                    },
                )?;
            }
            out_group.close()?;
            rows += group.num_rows() as u64;
        }
    }
    writer.close()?;
    Ok(rows)
}

/// The column chunk's metadata with its statistics as the writer wrote them: a reader does not
/// keep whether the deprecated `min`/`max` fields were written too, which the writer does for
/// columns of signed sort order — so that a stitched file has the bytes of one written whole.
fn with_writer_statistics(column: ColumnChunkMetaData) -> Result<ColumnChunkMetaData> {
    let Some(stats) = column.statistics().cloned() else {
        return Ok(column);
    };
    let signed = column.column_descr().sort_order().is_signed();
    let stats = match stats {
        Statistics::Boolean(v) => Statistics::Boolean(v.with_backwards_compatible_min_max(signed)),
        Statistics::Int32(v) => Statistics::Int32(v.with_backwards_compatible_min_max(signed)),
        Statistics::Int64(v) => Statistics::Int64(v.with_backwards_compatible_min_max(signed)),
        Statistics::Int96(v) => Statistics::Int96(v.with_backwards_compatible_min_max(signed)),
        Statistics::Float(v) => Statistics::Float(v.with_backwards_compatible_min_max(signed)),
        Statistics::Double(v) => Statistics::Double(v.with_backwards_compatible_min_max(signed)),
        Statistics::ByteArray(v) => {
            Statistics::ByteArray(v.with_backwards_compatible_min_max(signed))
        }
        Statistics::FixedLenByteArray(v) => {
            Statistics::FixedLenByteArray(v.with_backwards_compatible_min_max(signed))
        }
    };
    column.into_builder().set_statistics(stats).build()
}

/// Writes the record batches of the Arrow IPC files `pieces` (of one schema, in this order) into
/// the Arrow IPC file `out`. Returns the number of rows.
pub fn stitch_arrow(pieces: &[&Path], out: File) -> arrow::error::Result<u64> {
    let open = |p: &&Path| {
        let file = File::open(p).map_err(|e| {
            ArrowError::IoError(format!("cannot open the piece {}: {e}", p.display()), e)
        })?;
        FileReader::try_new(BufReader::with_capacity(1 << 20, file), None)
    };
    let Some(first) = pieces.first() else {
        return Err(ArrowError::InvalidArgumentError(
            "no piece to stitch".into(),
        ));
    };
    let schema = open(first)?.schema();
    let mut writer = FileWriter::try_new(BufWriter::with_capacity(1 << 20, out), &schema)?;
    let mut rows = 0u64;
    for p in pieces {
        let reader = open(p)?;
        if reader.schema() != schema {
            return Err(ArrowError::SchemaError(format!(
                "the piece {} has another schema than {}",
                p.display(),
                first.display()
            )));
        }
        for batch in reader {
            let batch = batch?;
            rows += batch.num_rows() as u64;
            writer.write(&batch)?;
        }
    }
    writer.finish()?;
    writer.into_inner()?.flush()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Int64Array, ListArray, RecordBatch};
    use arrow::datatypes::{DataType, Field, Float32Type, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use crate::export::{ParquetEncoding, ParquetFile};

    fn id_flux_schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("catalogid", DataType::Int64, false),
            Field::new(
                "flux",
                DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
                true,
            ),
        ]))
    }

    /// Writes `batches` into the Parquet file `path` as the export does, row groups of 3 rows.
    fn write_parquet(path: &Path, schema: &Arc<Schema>, batches: &[RecordBatch]) {
        let encoding = ParquetEncoding {
            row_group_rows: 3,
            ..ParquetEncoding::default()
        };
        let mut w = ParquetFile::create(File::create(path).unwrap(), schema, encoding).unwrap();
        batches.iter().for_each(|b| w.write(b).unwrap());
        w.close().unwrap();
    }

    fn batch(schema: &Arc<Schema>, first: i64, n: usize) -> RecordBatch {
        let ids = Int64Array::from_iter_values((0..n as i64).map(|i| first + i));
        let flux = ListArray::from_iter_primitive::<Float32Type, _, _>(
            (0..n).map(|i| Some((0..5).map(move |k| Some((first as f32) + (i * k) as f32)))),
        );
        RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(flux)]).unwrap()
    }

    #[test]
    fn pieces_stitch_into_one_file_with_every_row_in_order() {
        let schema = id_flux_schema();
        let d = tempfile::tempdir().unwrap();
        let mut pieces = Vec::new();
        let mut expected = Vec::new();
        for (p, (first, n)) in [(0i64, 7usize), (100, 0), (200, 4)].into_iter().enumerate() {
            let path = d.path().join(format!("piece-{p}.parquet"));
            let b = batch(&schema, first, n);
            write_parquet(&path, &schema, std::slice::from_ref(&b));
            expected.push(b);
            pieces.push(path);
        }
        let out = d.path().join("out.parquet");
        let refs: Vec<&Path> = pieces.iter().map(|p| p.as_path()).collect();
        let rows = stitch(&refs, File::create(&out).unwrap()).unwrap();
        assert_eq!(rows, 11);
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let got: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        let got = arrow::compute::concat_batches(&got[0].schema(), &got).unwrap();
        let want = arrow::compute::concat_batches(&schema, &expected).unwrap();
        // The Arrow schema travels in the metadata: the same types (and so equal batches) come back.
        assert_eq!(got, want);
        let ids = got.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.value(6), 6);
        assert_eq!(ids.value(7), 200);
        let flux = got.column(1).as_any().downcast_ref::<ListArray>().unwrap();
        let last = flux.value(10);
        let last = last.as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!(last.value(4), 212.0);
    }

    #[test]
    fn a_stitched_file_has_the_bytes_of_one_written_whole() {
        let schema = id_flux_schema();
        let d = tempfile::tempdir().unwrap();
        let batches = [batch(&schema, 0, 7), batch(&schema, 200, 4)];
        let whole = d.path().join("whole.parquet");
        write_parquet(&whole, &schema, &batches);
        let mut pieces = Vec::new();
        for (p, b) in batches.iter().enumerate() {
            let path = d.path().join(format!("piece-{p}.parquet"));
            write_parquet(&path, &schema, std::slice::from_ref(b));
            pieces.push(path);
        }
        let out = d.path().join("out.parquet");
        let refs: Vec<&Path> = pieces.iter().map(|p| p.as_path()).collect();
        stitch(&refs, File::create(&out).unwrap()).unwrap();
        let meta = |p: &Path| {
            format!(
                "{:#?}",
                ParquetMetaDataReader::new()
                    .with_metadata_options(Some(
                        ParquetMetaDataOptions::new().with_encoding_stats_as_mask(false),
                    ))
                    .with_page_index_policy(PageIndexPolicy::Optional)
                    .parse_and_finish(&File::open(p).unwrap())
                    .unwrap()
            )
        };
        assert_eq!(meta(&out), meta(&whole));
        let (a, b) = (std::fs::read(&out).unwrap(), std::fs::read(&whole).unwrap());
        let first = a.iter().zip(&b).position(|(x, y)| x != y);
        assert!(
            a == b,
            "the same metadata, other bytes: {} and {} bytes, first difference at {first:?}",
            a.len(),
            b.len()
        );
    }

    #[test]
    fn arrow_pieces_stitch_into_the_file_written_whole() {
        let schema = id_flux_schema();
        let d = tempfile::tempdir().unwrap();
        let batches = [
            batch(&schema, 0, 7),
            batch(&schema, 100, 0),
            batch(&schema, 200, 4),
        ];
        let write = |path: &Path, batches: &[RecordBatch]| {
            let mut w = FileWriter::try_new(File::create(path).unwrap(), &schema).unwrap();
            batches.iter().for_each(|b| w.write(b).unwrap());
            w.finish().unwrap();
        };
        let whole = d.path().join("whole.arrow");
        write(&whole, &batches);
        let mut pieces = Vec::new();
        for (p, b) in batches.iter().enumerate() {
            let path = d.path().join(format!("piece-{p}.arrow"));
            write(&path, std::slice::from_ref(b));
            pieces.push(path);
        }
        let out = d.path().join("out.arrow");
        let refs: Vec<&Path> = pieces.iter().map(|p| p.as_path()).collect();
        assert_eq!(
            stitch_arrow(&refs, File::create(&out).unwrap()).unwrap(),
            11
        );
        assert!(std::fs::read(&out).unwrap() == std::fs::read(&whole).unwrap());
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let odd = d.path().join("odd.arrow");
        FileWriter::try_new(File::create(&odd).unwrap(), &other)
            .unwrap()
            .finish()
            .unwrap();
        let e = stitch_arrow(&[&pieces[0], &odd], File::create(&out).unwrap()).unwrap_err();
        assert!(e.to_string().contains("another schema"), "{e}");
    }

    #[test]
    fn a_piece_of_another_schema_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (i, name) in ["a", "b"].into_iter().enumerate() {
            let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int64, false)]));
            let path = d.path().join(format!("{i}.parquet"));
            let ids = Int64Array::from_iter_values(0..3);
            let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids)]).unwrap();
            write_parquet(&path, &schema, &[b]);
            paths.push(path);
        }
        let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        let e = stitch(&refs, File::create(d.path().join("out")).unwrap()).unwrap_err();
        assert!(e.to_string().contains("another schema"), "{e}");
    }
}
