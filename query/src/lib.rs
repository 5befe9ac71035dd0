//! The parallel subset engine behind `boss-query`: scan the store, exchange compact records with one
//! Allgatherv, create the shared output collectively, write each rank's fibers, close and rename.

pub mod engine;
pub mod error;
pub mod export;
pub mod output;
pub mod records;
pub mod scan;
pub mod selection;
pub mod transfer;
