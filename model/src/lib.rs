//! The data model of the BOSS store, free of HDF5, MPI and Arrow: fiber keys, the store layout (every
//! path and file name), fiber lists, and durable writes (temporary name, fsync, rename).

pub mod atomic;
pub mod fiberlist;
pub mod key;
pub mod layout;
pub mod message;
pub mod stdout;
pub mod table_text;

pub use key::{FiberId, KeyError, PlateMjd};
