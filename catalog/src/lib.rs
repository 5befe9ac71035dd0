//! Data model of the BOSS store, free of HDF5 and MPI: fiber keys, the store layout (every path and
//! file name), fiber lists, and (later) the catalog index with its selections.

pub mod fiberlist;
pub mod index;
pub mod key;
pub mod layout;
pub mod select;

pub use key::{FiberId, PlateMjd};
