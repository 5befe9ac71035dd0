//! FITS → HDF5: reading survey files and writing them into the store, one HDF5 file per store
//! group (an SDSS-I–IV plate-MJD, an SDSS-V field-MJD, a DESI coadd). Each survey sits behind one
//! interface ([`survey::Survey`]: [`sdss4`], [`sdss5`], [`desi`]). The binary `boss-ingest` drives it (in parallel,
//! under MPI).

pub mod catalog_sync;
pub mod decode;
pub mod desi;
pub mod job;
pub mod lock;
pub mod names;
pub mod plan;
pub mod run;
pub mod sdss4;
pub mod sdss5;
pub mod survey;
pub mod writer;
