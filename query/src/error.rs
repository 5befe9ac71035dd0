//! Errors of the query engine, each naming the file, list or argument it is about and keeping its
//! cause (`source()`), so the chain can be followed.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    List(#[from] model::fiberlist::ListError),
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error(transparent)]
    Exchange(#[from] ranks::ExchangeError),
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {what}: {source}", path.display())]
    Hdf5 {
        path: PathBuf,
        what: String,
        #[source]
        source: hdf5::Error,
    },
    #[error("{}: {source}", path.display())]
    Raw {
        path: PathBuf,
        #[source]
        source: store::fast::RawError,
    },
    #[error("{}: {source}", path.display())]
    Table {
        path: PathBuf,
        #[source]
        source: store::TableError,
    },
    #[error("{}: {source}", path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error("{}: {source}", path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("cannot move a record batch between ranks: {0}")]
    Ipc(#[source] arrow::error::ArrowError),
    /// The result could not be written as CSV.
    #[error("cannot write the result as CSV: {0}")]
    Csv(#[source] arrow::error::ArrowError),
    #[error("{}: not a store file written by boss-ingest (no {} attribute)", path.display(), model::layout::FORMAT_ATTR)]
    Foreign { path: PathBuf },
    /// Store content the engine cannot copy (a damaged or foreign object).
    #[error("{}: {what}", path.display())]
    Store { path: PathBuf, what: String },
    /// An MPI-IO call failed.
    #[error("{}: MPI-IO {call} failed (error {code})", path.display())]
    MpiIo {
        path: PathBuf,
        call: &'static str,
        code: i32,
    },
    /// Arguments that cannot run (exit 2 before any work).
    #[error("{0}")]
    Invalid(String),
    /// Another rank failed and said why; this rank stops without a message of its own.
    #[error("another rank could not go on")]
    OtherRank,
}

impl QueryError {
    pub fn io(path: &Path, what: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }

    pub fn hdf5(path: &Path, what: impl Into<String>, source: hdf5::Error) -> Self {
        Self::Hdf5 {
            path: path.to_path_buf(),
            what: what.into(),
            source,
        }
    }

    pub fn store(path: &Path, what: impl Into<String>) -> Self {
        Self::Store {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, QueryError>;
