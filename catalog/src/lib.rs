//! The catalog of a store: one row per fiber (`catalog.parquet`), built from the store files, and the
//! selections that run over it (sky cones, redshift, class, lists).

pub mod from_store;
pub mod index;
pub mod select;
