//! FITS → HDF5: reading spPlate, spec, spZbest, spZline and spAll files and writing them into the
//! store, one HDF5 file per plate-MJD. The binary `boss-ingest` drives it (in parallel, under MPI).

pub mod catalog_sync;
pub mod decode;
pub mod job;
pub mod lock;
pub mod names;
pub mod plan;
pub mod run;
pub mod sdss5;
pub mod writer;
