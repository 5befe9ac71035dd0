//! A single file written by every rank (`--parquet out.parquet`, `--arrow out.arrow` under mpirun):
//! each rank writes its own contiguous run of store groups into a piece (a part file in a staging
//! directory beside the output, as for a directory output); the pieces are then joined in rank order
//! into the one file without decoding anything. A piece is a header (the magic bytes, and for Arrow
//! IPC the schema message), its rows (Parquet column chunks, Arrow IPC record-batch messages: bytes
//! that do not depend on where they sit in a file) and a footer that says where they are. The joined
//! file is the first piece's header, every piece's rows back to back, and one footer built here from
//! the pieces' footers with their offsets moved ([`Joint`]). Under several ranks rank 0's piece
//! becomes the file (its rows are already in place) and every other rank copies its own rows into
//! it at their offset, in parallel (module [`super::parts`]). Either way the file has the bytes one
//! process writes.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::error::ArrowError;
use arrow::ipc::convert::{fb_to_schema, IpcSchemaEncoder};
use arrow::ipc::reader::read_footer_length;
use arrow::ipc::{root_as_footer, Block, FooterBuilder};
use bytes::Bytes;
use flatbuffers::FlatBufferBuilder;
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{
    ColumnChunkMetaData, PageIndexPolicy, ParquetMetaData, ParquetMetaDataOptions,
    ParquetMetaDataReader,
};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use serde::{Deserialize, Serialize};

use crate::error::QueryError;

/// One piece's rows in the joined file: its bytes `from..from + len` go to offset `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Move {
    pub from: u64,
    pub len: u64,
    pub to: u64,
}

/// How pieces join into one file: the first piece's bytes `0..header`, then every piece's rows
/// (one [`Move`] per piece, in order, back to back), then `tail` (footer, and Parquet's page indexes).
#[derive(Debug)]
pub(crate) struct Joint {
    pub header: u64,
    pub moves: Vec<Move>,
    pub tail: Vec<u8>,
}

impl Joint {
    /// Where the rows end and the tail begins.
    pub fn rows_end(&self) -> u64 {
        self.moves.last().map_or(self.header, |m| m.to + m.len)
    }

    /// The pieces' rows, back to back after the header, from each piece's `(start, end)`.
    fn lay_out(header: u64, ranges: &[(u64, u64)]) -> Vec<Move> {
        let mut to = header;
        ranges
            .iter()
            .map(|&(from, end)| {
                let m = Move {
                    from,
                    len: end - from,
                    to,
                };
                to += m.len;
                m
            })
            .collect()
    }
}

/// Plans the join of `pieces` (files of extension `ext`, `arrow` or `parquet`, in order); errors
/// name `dest`, the file being written.
pub(crate) fn plan(
    ext: &str,
    pieces: &[&Path],
    dest: &Path,
) -> std::result::Result<Joint, QueryError> {
    let path = dest.to_path_buf();
    if ext == "arrow" {
        plan_arrow(pieces).map_err(|source| QueryError::Arrow { path, source })
    } else {
        plan_parquet(pieces).map_err(|source| QueryError::Parquet { path, source })
    }
}

/// Copies bytes `from..from + len` of `src` to offset `to` of `dst`, in the kernel where the file
/// system can (`copy_file_range`), else through a buffer.
pub(crate) fn copy_range(src: &File, dst: &File, m: Move) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (mut from, mut to, mut left) = (m.from as i64, m.to as i64, m.len);
    while left > 0 {
        let chunk = left.min(1 << 30) as usize;
        // SAFETY: both descriptors are open files; the offsets are plain integers the call updates.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut from,
                dst.as_raw_fd(),
                &mut to,
                chunk,
                0,
            )
        };
        if n > 0 {
            left -= n as u64;
            continue;
        }
        let e = std::io::Error::last_os_error();
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the piece ended early",
            ));
        }
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP) => {
                return copy_buffered(src, dst, from as u64, to as u64, left)
            }
            _ => return Err(e),
        }
    }
    Ok(())
}

fn copy_buffered(src: &File, dst: &File, from: u64, to: u64, len: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; (8 << 20).min(len as usize)];
    let mut done = 0;
    while done < len {
        let n = buf.len().min((len - done) as usize);
        src.read_exact_at(&mut buf[..n], from + done)?;
        dst.write_all_at(&buf[..n], to + done)?;
        done += n as u64;
    }
    Ok(())
}

/// A Parquet writer's sink that drops the bytes before `skip` (the header and rows, which are in the
/// file already) and keeps the rest (page indexes and footer).
struct TailSink {
    skip: u64,
    seen: u64,
    tail: Vec<u8>,
}

impl Write for TailSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let dropped = self.skip.saturating_sub(self.seen).min(buf.len() as u64) as usize;
        self.tail.extend_from_slice(&buf[dropped..]);
        self.seen += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stands in for a piece when its column chunks go through the writer only to be counted
/// ([`TailSink`] drops them): reads as zeros, without touching the file.
struct Unread(u64);

impl Length for Unread {
    fn len(&self) -> u64 {
        self.0
    }
}

impl ChunkReader for Unread {
    type T = std::io::Take<std::io::Repeat>;

    fn get_read(&self, start: u64) -> Result<Self::T> {
        Ok(std::io::repeat(0).take(self.0.saturating_sub(start)))
    }

    fn get_bytes(&self, _start: u64, length: usize) -> Result<Bytes> {
        Ok(Bytes::from(vec![0; length]))
    }
}

/// Plans the join of Parquet pieces: the header is the magic `PAR1`, a piece's rows are its column
/// chunks (from the magic to the end of its last chunk), and the tail is what parquet-rs' writer
/// writes after the same chunks appended in the same order, with the first piece's key-value
/// metadata (the Arrow schema, so readers get the same types back).
fn plan_parquet(pieces: &[&Path]) -> Result<Joint> {
    const MAGIC: u64 = 4;
    let inputs = pieces
        .iter()
        .map(|p| {
            let file = File::open(p).map_err(|e| {
                ParquetError::General(format!("cannot open the piece {}: {e}", p.display()))
            })?;
            // The page encoding stats as written (not folded into a mask), so that the footer
            // is the one a single writer writes: the same bytes for any number of ranks.
            let options = ParquetMetaDataOptions::new().with_encoding_stats_as_mask(false);
            ParquetMetaDataReader::new()
                .with_metadata_options(Some(options))
                .with_page_index_policy(PageIndexPolicy::Optional)
                .parse_and_finish(&file)
        })
        .collect::<Result<Vec<ParquetMetaData>>>()?;
    let Some(first) = inputs.first() else {
        return Err(ParquetError::General("no piece to stitch".into()));
    };
    let schema = first.file_metadata().schema_descr();
    for (p, m) in pieces.iter().zip(&inputs).skip(1) {
        if m.file_metadata().schema_descr().root_schema() != schema.root_schema() {
            return Err(ParquetError::General(format!(
                "the piece {} has another schema than {}",
                p.display(),
                pieces[0].display()
            )));
        }
    }
    let ranges: Vec<(u64, u64)> = inputs
        .iter()
        .map(|m| {
            let end = m
                .row_groups()
                .iter()
                .flat_map(|g| g.columns())
                .map(|c| {
                    let (start, len) = c.byte_range();
                    start + len
                })
                .max()
                .unwrap_or(MAGIC);
            (MAGIC, end)
        })
        .collect();
    let mut joint = Joint {
        header: MAGIC,
        moves: Joint::lay_out(MAGIC, &ranges),
        tail: Vec::new(),
    };
    let rows_end = joint.rows_end();
    let props = WriterProperties::builder()
        .set_key_value_metadata(first.file_metadata().key_value_metadata().cloned())
        .build();
    let sink = TailSink {
        skip: rows_end,
        seen: 0,
        tail: Vec::new(),
    };
    let mut writer = SerializedFileWriter::new(sink, schema.root_schema_ptr(), Arc::new(props))?;
    for (metadata, (_, end)) in inputs.iter().zip(&ranges) {
        let unread = Unread(*end);
        for (g, group) in metadata.row_groups().iter().enumerate() {
            let column_index = metadata.column_index().and_then(|c| c.get(g));
            let offset_index = metadata.offset_index().and_then(|o| o.get(g));
            let mut out_group = writer.next_row_group()?;
            for (c, column) in group.columns().iter().enumerate() {
                out_group.append_column(
                    &unread,
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
        }
    }
    if writer.bytes_written() as u64 != rows_end {
        return Err(ParquetError::General(format!(
            "the pieces' column chunks are not contiguous ({} bytes appended, {rows_end} expected)",
            writer.bytes_written()
        )));
    }
    joint.tail = writer.into_inner()?.tail;
    Ok(joint)
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

/// An Arrow IPC piece's footer: its schema and record-batch blocks, the metadata version, and where
/// its end-of-stream marker (which the footer follows) begins.
struct ArrowFooter {
    schema: Schema,
    blocks: Vec<Block>,
    version: arrow::ipc::MetadataVersion,
    eos: u64,
    eos_bytes: [u8; 8],
}

fn read_arrow_footer(path: &Path) -> arrow::error::Result<ArrowFooter> {
    let io = |what: &str, e: std::io::Error| {
        ArrowError::IoError(format!("{what} the piece {}: {e}", path.display()), e)
    };
    let invalid =
        |what: String| ArrowError::ParseError(format!("the piece {}: {what}", path.display()));
    let file = File::open(path).map_err(|e| io("cannot open", e))?;
    let len = file.metadata().map_err(|e| io("cannot read", e))?.len();
    if len < 18 {
        return Err(invalid(format!(
            "{len} bytes are too few for an Arrow IPC file"
        )));
    }
    let mut trailer = [0u8; 10];
    file.read_exact_at(&mut trailer, len - 10)
        .map_err(|e| io("cannot read", e))?;
    let footer_len = read_footer_length(trailer)? as u64;
    let start = len
        .checked_sub(10 + footer_len + 8)
        .ok_or_else(|| invalid(format!("a footer of {footer_len} bytes does not fit")))?;
    let mut buf = vec![0u8; footer_len as usize + 8];
    file.read_exact_at(&mut buf, start)
        .map_err(|e| io("cannot read", e))?;
    let footer = root_as_footer(&buf[8..]).map_err(|e| invalid(format!("bad footer: {e}")))?;
    if footer.dictionaries().is_some_and(|d| !d.is_empty()) {
        return Err(invalid("dictionary batches cannot be joined".into()));
    }
    let schema = fb_to_schema(
        footer
            .schema()
            .ok_or_else(|| invalid("the footer has no schema".into()))?,
    );
    let blocks: Vec<Block> = footer
        .recordBatches()
        .map(|v| v.iter().copied().collect())
        .unwrap_or_default();
    let mut eos_bytes = [0u8; 8];
    eos_bytes.copy_from_slice(&buf[..8]);
    Ok(ArrowFooter {
        schema,
        blocks,
        version: footer.version(),
        eos: start,
        eos_bytes,
    })
}

/// Plans the join of Arrow IPC pieces: the header is the magic and the schema message, a piece's
/// rows are its record-batch messages (up to its end-of-stream marker), and the tail is the marker
/// and a footer listing every piece's blocks at their new offsets, built as arrow-rs' FileWriter
/// builds it.
fn plan_arrow(pieces: &[&Path]) -> arrow::error::Result<Joint> {
    let footers = pieces
        .iter()
        .map(|p| read_arrow_footer(p))
        .collect::<arrow::error::Result<Vec<_>>>()?;
    let Some(first) = footers.first() else {
        return Err(ArrowError::InvalidArgumentError(
            "no piece to stitch".into(),
        ));
    };
    let mut ranges = Vec::new();
    for (p, f) in pieces.iter().zip(&footers) {
        if f.schema != first.schema || f.version != first.version {
            return Err(ArrowError::SchemaError(format!(
                "the piece {} has another schema than {}",
                p.display(),
                pieces[0].display()
            )));
        }
        let start = f.blocks.first().map_or(f.eos, |b| b.offset() as u64);
        let mut end = start;
        for b in &f.blocks {
            if b.offset() as u64 != end {
                return Err(ArrowError::ParseError(format!(
                    "the piece {}: its record batches are not back to back",
                    p.display()
                )));
            }
            end += b.metaDataLength() as u64 + b.bodyLength() as u64;
        }
        if end != f.eos {
            return Err(ArrowError::ParseError(format!(
                "the piece {}: bytes between its last record batch and its end",
                p.display()
            )));
        }
        ranges.push((start, end));
    }
    let header = ranges[0].0;
    let moves = Joint::lay_out(header, &ranges);
    let blocks: Vec<Block> = footers
        .iter()
        .zip(&moves)
        .flat_map(|(f, m)| {
            f.blocks.iter().map(move |b| {
                let offset = b.offset() as u64 - m.from + m.to;
                Block::new(offset as i64, b.metaDataLength(), b.bodyLength())
            })
        })
        .collect();
    let mut fbb = FlatBufferBuilder::new();
    let dictionaries = fbb.create_vector::<Block>(&[]);
    let record_batches = fbb.create_vector(&blocks);
    let schema = IpcSchemaEncoder::new().schema_to_fb_offset(&mut fbb, &first.schema);
    let root = {
        let mut b = FooterBuilder::new(&mut fbb);
        b.add_version(first.version);
        b.add_schema(schema);
        b.add_dictionaries(dictionaries);
        b.add_recordBatches(record_batches);
        b.finish()
    };
    fbb.finish(root, None);
    let footer = fbb.finished_data();
    let mut tail = first.eos_bytes.to_vec();
    tail.extend_from_slice(footer);
    tail.extend_from_slice(&(footer.len() as i32).to_le_bytes());
    tail.extend_from_slice(b"ARROW1");
    Ok(Joint {
        header,
        moves,
        tail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Int64Array, ListArray, RecordBatch};
    use arrow::datatypes::{DataType, Field, Float32Type};
    use arrow::ipc::writer::FileWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use crate::export::{ParquetEncoding, ParquetFile};

    /// Joins `pieces` into `out` in this process, as `joint` says.
    fn write_joint(pieces: &[&Path], joint: &Joint, out: &File) -> std::io::Result<()> {
        let first = File::open(pieces[0])?;
        copy_range(
            &first,
            out,
            Move {
                from: 0,
                len: joint.header,
                to: 0,
            },
        )?;
        for (p, m) in pieces.iter().zip(&joint.moves) {
            copy_range(&File::open(p)?, out, *m)?;
        }
        out.set_len(joint.rows_end())?;
        out.write_all_at(&joint.tail, joint.rows_end())
    }

    /// Joins the Parquet files `pieces` (of one schema, in this order) into `out`, in this process.
    fn stitch(pieces: &[&Path], out: File) -> Result<()> {
        let joint = plan_parquet(pieces)?;
        write_joint(pieces, &joint, &out).map_err(|e| ParquetError::External(Box::new(e)))
    }

    /// Joins the Arrow IPC files `pieces` (of one schema, in this order) into `out`, in this process.
    fn stitch_arrow(pieces: &[&Path], out: File) -> arrow::error::Result<()> {
        let joint = plan_arrow(pieces)?;
        write_joint(pieces, &joint, &out)
            .map_err(|e| ArrowError::IoError(format!("cannot join the pieces: {e}"), e))
    }

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
        stitch(&refs, File::create(&out).unwrap()).unwrap();
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
        stitch_arrow(&refs, File::create(&out).unwrap()).unwrap();
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
