//! Errors of the query engine, each naming the file or list it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{}: {message}", path.display())]
    Store { path: PathBuf, message: String },
    #[error("{0}")]
    List(#[from] model::fiberlist::ListError),
    #[error("{}: {message}", path.display())]
    Output { path: PathBuf, message: String },
    #[error("{0}")]
    Other(String),
    /// Another rank failed and said why; this rank stops without a message of its own.
    #[error("another rank could not go on")]
    OtherRank,
}

impl QueryError {
    pub fn store(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::Store {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub fn output(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        Self::Output {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

pub type Result<T> = std::result::Result<T, QueryError>;
