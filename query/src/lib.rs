//! The parallel subset engine behind `boss-query`: scan the store, exchange compact records with one
//! Allgatherv, create the output once on rank 0, copy each rank's byte ranges, close and rename;
//! plus the selections over the catalog and the Arrow/Parquet export.

pub mod copy;
pub mod create;
pub mod engine;
pub mod error;
pub mod export;
pub mod job;
pub mod merged_scan;
pub mod pinned;
pub mod records;
pub mod scan;
pub mod selection;
