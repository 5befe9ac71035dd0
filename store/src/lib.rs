//! The HDF5 store shared by ingest and query: the fixed coadd/exposure records, generic tables
//! (plugmap, spall, zline, zbest), scalar attributes, raw reads and writes, and the merged layout
//! of the newer surveys.

pub mod attrs;
pub mod fast;
pub mod files;
pub mod merged;
pub mod raw;
pub mod reader;
pub mod records;
pub mod table;
pub mod tuning;
pub mod v2;

pub use attrs::AttrValue;
pub use records::{CoaddRecord, ExposureColumns, ExposureField, FieldSet};
pub use table::{Column, ScalarKind, Table, TableError};
