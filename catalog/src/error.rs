//! Errors of the catalog: of its file (each names the file), of the store files it is built from, and
//! of the user's expressions and lists (each names the column, the token or the line).

use std::path::PathBuf;

use arrow::error::ArrowError;
use parquet::errors::ParquetError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The catalog file does not exist.
    #[error("catalog {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parquet error on {}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: ParquetError,
    },
    #[error("arrow error on {}: {source}", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: ArrowError,
    },
    /// The file is readable parquet but not a catalog of this version.
    #[error("catalog {}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    /// A store file the catalog rows are read from.
    #[error("{}: cannot read for the catalog: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: hdf5::Error,
    },
    #[error("{}: cannot read a table for the catalog: {message}", path.display())]
    Table { path: PathBuf, message: String },
    /// A `--where` or `--sql` the engine refused: the message names the column or the token.
    #[error("{0}")]
    Sql(String),
    /// A target list, an ID list or another user file: the message names the file and the line.
    #[error("{0}")]
    Input(String),
    /// Store files the rows of the catalog could not be read from (one message per file).
    #[error("{}", .0.join("; "))]
    StoreFiles(Vec<String>),
    /// Batches that cannot go together (a bug, or a catalog edited by hand).
    #[error("catalog batches do not fit together: {0}")]
    Schema(String),
    /// Rows exchanged between ranks could not be decoded.
    #[error("catalog rows from another rank: {0}")]
    Exchange(String),
}
