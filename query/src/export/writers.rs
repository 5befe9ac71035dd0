//! The writers of one export file: an Arrow IPC file and/or a Parquet file, each written under a
//! temporary name and committed when complete (rank 0's single files, and every rank's part files of
//! a directory output). How Parquet encodes the spectra is decided here, once.

use std::fs::File;
use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::writer::FileWriter;
use model::atomic::AtomicFile;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn,
    ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use crate::error::{QueryError, Result};

/// The compression of the Parquet export's pages (`--parquet-codec`). Figures for each on spectra:
/// BENCHMARKS.md, "Export (issue 19)".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCodec {
    /// Uncompressed pages.
    None,
    /// Snappy (pandas' and pyarrow's default): with BYTE_STREAM_SPLIT, about 40% of the size of
    /// uncompressed spectra at the same write speed.
    #[default]
    Snappy,
    /// zstd level 1.
    Zstd,
}

impl ParquetCodec {
    fn compression(self) -> Compression {
        match self {
            Self::None => Compression::UNCOMPRESSED,
            Self::Snappy => Compression::SNAPPY,
            Self::Zstd => Compression::ZSTD(ZstdLevel::default()),
        }
    }
}

/// How the export's Parquet files are encoded. The default is what the export uses (BENCHMARKS.md,
/// "Export (issue 19)", has the figures of the alternatives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ParquetEncoding {
    /// The compression of every page.
    pub codec: ParquetCodec,
    /// Dictionary encoding of the list columns (spectra). Off: float spectra have no repeated
    /// values, so building a dictionary only to drop it costs time. The catalog's columns keep it
    /// (class, survey, … repeat).
    pub list_dictionary: bool,
    /// BYTE_STREAM_SPLIT encoding of float list columns (helps a codec find the repeated exponent
    /// bytes).
    pub byte_stream_split: bool,
    /// Page statistics (min/max, and so the column index) of the list columns. Off: nobody
    /// filters on a spectrum's pixel values, and computing them per value costs time; the
    /// catalog's columns keep theirs (row-group and page pruning on z, ra, …).
    pub list_statistics: bool,
    /// Rows per row group at most: a store group's batch is one row group, or several.
    pub row_group_rows: usize,
    /// Columns encoded in parallel (rayon) rather than one after the other.
    pub parallel: bool,
}

impl Default for ParquetEncoding {
    fn default() -> Self {
        Self {
            codec: ParquetCodec::default(),
            list_dictionary: false,
            byte_stream_split: true,
            list_statistics: false,
            row_group_rows: 1024,
            parallel: true,
        }
    }
}

impl ParquetEncoding {
    /// The default encoding with another codec.
    pub fn with_codec(codec: ParquetCodec) -> Self {
        Self {
            codec,
            ..Self::default()
        }
    }

    /// The writer properties of files of `schema`.
    pub fn properties(&self, schema: &Schema) -> WriterProperties {
        // Row groups are cut by ParquetFile::write (`row_group_rows`), not by the properties.
        let mut b = WriterProperties::builder().set_compression(self.codec.compression());
        let mut leaves = Vec::new();
        for f in schema.fields() {
            list_leaves(vec![f.name().clone()], f.data_type(), false, &mut leaves);
        }
        for (path, item) in leaves {
            b = b.set_column_dictionary_enabled(path.clone(), self.list_dictionary);
            if !self.list_statistics {
                b = b.set_column_statistics_enabled(path.clone(), EnabledStatistics::None);
            }
            if self.byte_stream_split && item.is_floating() {
                b = b.set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
            }
        }
        b.build()
    }
}

/// The Parquet leaf columns under `path` that hold list items (spectra: top-level list columns, and
/// the lists inside the nested form's struct columns), with their item type.
fn list_leaves(
    path: Vec<String>,
    t: &DataType,
    in_list: bool,
    out: &mut Vec<(ColumnPath, DataType)>,
) {
    match t {
        DataType::List(item) => {
            let mut p = path;
            p.extend(["list".to_string(), item.name().clone()]);
            list_leaves(p, item.data_type(), true, out);
        }
        DataType::Struct(fields) => {
            for f in fields {
                let mut p = path.clone();
                p.push(f.name().clone());
                list_leaves(p, f.data_type(), in_list, out);
            }
        }
        leaf if in_list => out.push((ColumnPath::new(path), leaf.clone())),
        _ => {}
    }
}

/// A Parquet file whose columns are encoded in parallel (rayon), one row group at a time: what makes
/// a single-file export use more than one core.
pub struct ParquetFile {
    writer: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    encoding: ParquetEncoding,
    row_groups: usize,
}

impl ParquetFile {
    /// Starts a file for batches of `schema` (with the Arrow schema in its metadata, as
    /// `ArrowWriter` writes it, so readers get the same types back).
    pub fn create(
        file: File,
        schema: &SchemaRef,
        encoding: ParquetEncoding,
    ) -> parquet::errors::Result<Self> {
        let props = encoding.properties(schema);
        let (writer, factory) =
            ArrowWriter::try_new(file, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(Self {
            writer,
            factory,
            schema: schema.clone(),
            encoding,
            row_groups: 0,
        })
    }

    /// Writes `batch` as row groups of at most `row_group_rows` rows.
    pub fn write(&mut self, batch: &RecordBatch) -> parquet::errors::Result<()> {
        let mut start = 0;
        while start < batch.num_rows() {
            let n = self.encoding.row_group_rows.min(batch.num_rows() - start);
            self.write_row_group(&batch.slice(start, n))?;
            start += n;
        }
        Ok(())
    }

    fn write_row_group(&mut self, batch: &RecordBatch) -> parquet::errors::Result<()> {
        let writers = self.factory.create_column_writers(self.row_groups)?;
        let mut leaves = Vec::with_capacity(writers.len());
        for (array, field) in batch.columns().iter().zip(self.schema.fields()) {
            leaves.extend(compute_leaves(field, array)?);
        }
        let encode = |(mut w, leaf): (ArrowColumnWriter, ArrowLeafColumn)| {
            w.write(&leaf)?;
            w.close()
        };
        let chunks: Vec<ArrowColumnChunk> = if self.encoding.parallel {
            writers
                .into_par_iter()
                .zip(leaves.into_par_iter())
                .map(encode)
                .collect::<parquet::errors::Result<_>>()?
        } else {
            writers
                .into_iter()
                .zip(leaves)
                .map(encode)
                .collect::<parquet::errors::Result<_>>()?
        };
        let mut row_group = self.writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        Ok(())
    }

    /// Writes the footer.
    pub fn close(self) -> parquet::errors::Result<()> {
        self.writer.close().map(|_| ())
    }
}

/// The files one rank writes: each into a temporary file committed by [`Writers::finish`] (removed
/// if the export fails or the job is killed).
pub(crate) struct Writers {
    arrow: Option<(FileWriter<File>, AtomicFile)>,
    parquet: Option<(ParquetFile, AtomicFile)>,
}

impl Writers {
    /// Opens the files `arrow` and/or `parquet` for batches of `schema`.
    pub(crate) fn open(
        arrow: Option<AtomicFile>,
        parquet: Option<AtomicFile>,
        encoding: ParquetEncoding,
        schema: &SchemaRef,
    ) -> Result<Self> {
        let create = |w: &AtomicFile| {
            File::create(w.temp())
                .map_err(|e| QueryError::io(w.dest(), "cannot create the export", e))
        };
        let arrow = match arrow {
            Some(w) => {
                let fw = FileWriter::try_new(create(&w)?, schema).map_err(|source| {
                    QueryError::Arrow {
                        path: w.dest().to_path_buf(),
                        source,
                    }
                })?;
                Some((fw, w))
            }
            None => None,
        };
        let parquet = match parquet {
            Some(w) => {
                let pw = ParquetFile::create(create(&w)?, schema, encoding).map_err(|source| {
                    QueryError::Parquet {
                        path: w.dest().to_path_buf(),
                        source,
                    }
                })?;
                Some((pw, w))
            }
            None => None,
        };
        Ok(Self { arrow, parquet })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
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

    /// Ends the files and puts them under their final names, durably (fsync) unless they are
    /// pieces to be stitched and removed (`durable` false).
    pub(crate) fn finish(self, durable: bool) -> Result<()> {
        let commit = |a: AtomicFile| {
            let dest: PathBuf = a.dest().to_path_buf();
            let done = if durable {
                a.commit()
            } else {
                a.commit_volatile()
            };
            done.map_err(|e| QueryError::io(&dest, "cannot put the export into place", e))
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn spectra_lose_statistics_and_dictionary_also_inside_structs_and_catalog_columns_keep_them() {
        let list = |n: &str| {
            Field::new(
                n,
                DataType::List(Arc::new(Field::new_list_field(DataType::Float32, false))),
                true,
            )
        };
        let schema = Schema::new(vec![
            Field::new("z", DataType::Float64, true),
            list("flux"),
            Field::new(
                "spectrum",
                DataType::Struct(vec![list("ivar")].into()),
                true,
            ),
        ]);
        let props = ParquetEncoding::default().properties(&schema);
        let path = |p: &[&str]| ColumnPath::new(p.iter().map(|s| s.to_string()).collect());
        for leaf in [
            path(&["flux", "list", "item"]),
            path(&["spectrum", "ivar", "list", "item"]),
        ] {
            assert_eq!(
                props.statistics_enabled(&leaf),
                EnabledStatistics::None,
                "{leaf}"
            );
            assert!(!props.dictionary_enabled(&leaf), "{leaf}");
            assert_eq!(
                props.encoding(&leaf),
                Some(Encoding::BYTE_STREAM_SPLIT),
                "{leaf}"
            );
        }
        let z = path(&["z"]);
        assert_eq!(props.statistics_enabled(&z), EnabledStatistics::Page);
        assert!(props.dictionary_enabled(&z));
        assert_eq!(props.encoding(&z), None);
    }
}
