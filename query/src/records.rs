//! What the ranks exchange: one compact fixed-size record per dataset found (sent as an MPI datatype,
//! no serialisation), and one small description per plate-MJD (header attributes, table schemas).

use model::layout::{Arm, PlateTable};
use model::{FiberId, PlateMjd};
use mpi::traits::Equivalence;
use serde::{Deserialize, Serialize};
use store::{AttrValue, Column};

/// Which dataset of a fiber a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum DatasetKind {
    Coadd = 0,
    Blue = 1,
    Red = 2,
}

impl DatasetKind {
    pub fn from_arm(arm: Arm) -> Self {
        match arm {
            Arm::Blue => Self::Blue,
            Arm::Red => Self::Red,
        }
    }

    pub fn arm(self) -> Option<Arm> {
        match self {
            Self::Coadd => None,
            Self::Blue => Some(Arm::Blue),
            Self::Red => Some(Arm::Red),
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Blue,
            2 => Self::Red,
            _ => Self::Coadd,
        }
    }
}

/// Longest EXTNAME kept for an exposure (SDSS names are 29 characters).
pub const EXTNAME_BYTES: usize = 32;

/// One dataset to copy: where it belongs, how long it is, which store file holds it. 64 bytes.
#[derive(Equivalence, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct DatasetRecord {
    pub plate: i32,
    pub mjd: i32,
    pub fiber: i32,
    /// Exposure id (0 for a coadd).
    pub expid: u32,
    /// Number of elements (pixels).
    pub len: u64,
    /// Index of the store file in the sorted list every rank builds.
    pub source: u32,
    pub kind: u8,
    pub spectrograph: u8,
    pub extname_len: u8,
    pub reserved: u8,
    pub extname: [u8; EXTNAME_BYTES],
}

impl DatasetRecord {
    pub fn coadd(id: FiberId, len: u64, source: u32) -> Self {
        Self {
            plate: id.plate,
            mjd: id.mjd,
            fiber: id.fiber,
            expid: 0,
            len,
            source,
            kind: DatasetKind::Coadd as u8,
            spectrograph: 0,
            extname_len: 0,
            reserved: 0,
            extname: [0; EXTNAME_BYTES],
        }
    }

    pub fn exposure(
        id: FiberId,
        expid: u32,
        arm: Arm,
        spectrograph: u8,
        extname: &str,
        len: u64,
        source: u32,
    ) -> Self {
        let mut name = [0u8; EXTNAME_BYTES];
        let n = extname.len().min(EXTNAME_BYTES);
        name[..n].copy_from_slice(&extname.as_bytes()[..n]);
        Self {
            expid,
            kind: DatasetKind::from_arm(arm) as u8,
            spectrograph,
            extname_len: n as u8,
            extname: name,
            ..Self::coadd(id, len, source)
        }
    }

    pub fn fiber_id(&self) -> FiberId {
        FiberId::new(self.plate, self.mjd, self.fiber)
    }

    pub fn kind(&self) -> DatasetKind {
        DatasetKind::from_u8(self.kind)
    }

    pub fn extname(&self) -> &str {
        std::str::from_utf8(&self.extname[..self.extname_len as usize]).unwrap_or("")
    }

    /// The order every rank sorts the global list by: fiber, coadd first, then exposures.
    pub fn sort_key(&self) -> (i32, i32, i32, u8, u32, u8) {
        let group = u8::from(self.kind != DatasetKind::Coadd as u8);
        (
            self.plate, self.mjd, self.fiber, group, self.expid, self.kind,
        )
    }
}

/// One plate-level table subset: its columns and how many rows the output gets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableMeta {
    pub table: PlateTable,
    pub columns: Vec<Column>,
    pub rows: u64,
}

/// What every rank needs to create the metadata of one plate-MJD in the output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlateMeta {
    pub pm: PlateMjd,
    pub source: u32,
    pub attrs: Vec<(String, AttrValue)>,
    /// Attributes shared by the coadd datasets of this plate-MJD (units).
    pub coadd_attrs: Vec<(String, AttrValue)>,
    pub tables: Vec<TableMeta>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_compact_and_orders_coadd_first() {
        assert_eq!(std::mem::size_of::<DatasetRecord>(), 64);
        let id = FiberId::new(1, 2, 3);
        let c = DatasetRecord::coadd(id, 10, 0);
        let e = DatasetRecord::exposure(
            id,
            104927,
            Arm::Red,
            1,
            "R1-00104927-00104934-00104935",
            5,
            0,
        );
        assert!(c.sort_key() < e.sort_key());
        assert_eq!(e.extname(), "R1-00104927-00104934-00104935");
        assert_eq!(e.kind(), DatasetKind::Red);
    }
}
