//! The catalog of a store: one row per fiber (`catalog.parquet`) with derived columns and every
//! column of the store's spall, zbest and plugmap tables; SQL over it (DataFusion), a sky crossmatch
//! against target lists (k-d tree) and lookups by object ID.

pub mod build;
pub mod columns;
pub mod crossmatch;
pub mod error;
pub mod file;
pub mod filters;
pub mod freshness;
pub mod ids;
pub mod ipc;
pub mod sky;
pub mod sql;
pub mod unify;

pub use error::CatalogError;
pub use file::Catalog;
