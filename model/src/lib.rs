//! The data model of the store, free of HDF5, MPI and Arrow: spectrum keys and store groups of every
//! survey, fiber keys, the store layout (every
//! path and file name), fiber lists, and durable writes (temporary name, fsync, rename), and
//! the process set-up every binary shares (allocator thresholds).

pub mod allocator;
pub mod atomic;
pub mod desi;
pub mod fiberlist;
pub mod group;
pub mod key;
pub mod layout;
pub mod message;
pub mod stdout;
pub mod table_text;

pub use desi::DesiGroup;
pub use group::{Coadd, FieldMjd, GroupId, SpectrumId, Survey};
pub use key::{FiberId, KeyError, PlateMjd};
