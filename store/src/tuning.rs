//! HDF5 settings for files with thousands of small datasets (one per fiber), shared by the ingest
//! and the query: a metadata cache large enough to hold a plate's metadata without evictions (each
//! eviction is a collective sync point under MPI-IO), metadata aggregated in 1 MiB blocks, and no
//! fill values written for datasets that are always written in full.

use hdf5::file::{FileAccessBuilder, MetadataCacheConfig};
use hdf5::plist::dataset_create::FillTime;

/// Applies the store's file-access settings.
pub fn tune_file_access(fapl: &mut FileAccessBuilder) -> &mut FileAccessBuilder {
    let mdc = MetadataCacheConfig {
        set_initial_size: true,
        initial_size: 32 << 20,
        min_size: 16 << 20,
        max_size: 128 << 20, // the largest HDF5 accepts
        ..MetadataCacheConfig::default()
    };
    fapl.mdc_config(&mdc).meta_block_size(1 << 20)
}

/// Fill-time of every dataset: never (each is written in full right after it is created).
pub const FILL_TIME: FillTime = FillTime::Never;
