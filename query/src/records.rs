//! What the ranks exchange: one compact fixed-size record per dataset found (sent as an MPI datatype,
//! no serialisation), and one small description per plate-MJD (attributes, table types) that only
//! rank 0, which creates the output, needs.

use model::layout::Arm;
use model::{FiberId, GroupId, PlateMjd};
use mpi::traits::Equivalence;
use serde::{Deserialize, Serialize};
use store::{AttrValue, FieldSet};

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

/// One dataset to copy: where it belongs, its shape and type, where its bytes are. 40 bytes.
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
    /// Byte offset of the dataset's data in its source file.
    pub src_offset: u64,
    /// Index of the source file in the list every rank builds.
    pub source: u32,
    /// Index of the dataset's attributes in its plate-MJD's [`PlateMeta::attr_sets`].
    pub attrs: u16,
    pub kind: u8,
    /// The fields of an exposure record ([`FieldSet`]); unused for a coadd.
    pub fields: u8,
}

impl DatasetRecord {
    pub fn fiber_id(&self) -> FiberId {
        FiberId::new(self.plate, self.mjd, self.fiber)
    }

    pub fn plate_mjd(&self) -> PlateMjd {
        PlateMjd {
            plate: self.plate,
            mjd: self.mjd,
        }
    }

    pub fn kind(&self) -> DatasetKind {
        DatasetKind::from_u8(self.kind)
    }

    pub fn field_set(&self) -> FieldSet {
        FieldSet(self.fields)
    }

    /// Bytes of one element.
    pub fn element_size(&self) -> u64 {
        match self.kind() {
            DatasetKind::Coadd => std::mem::size_of::<store::CoaddRecord>() as u64,
            _ => self.field_set().record_size() as u64,
        }
    }

    /// Bytes of the dataset.
    pub fn bytes(&self) -> u64 {
        self.len * self.element_size()
    }

    /// The order every rank sorts the global list by: fiber, coadd first, then exposures.
    pub fn sort_key(&self) -> (i32, i32, i32, u8, u32, u8) {
        let group = u8::from(self.kind != DatasetKind::Coadd as u8);
        (
            self.plate, self.mjd, self.fiber, group, self.expid, self.kind,
        )
    }
}

/// A group of the output under the plate-MJD group, with its attributes (v2: `coadds`,
/// `exposures/<EXPID>/<b|r>`), created in the order listed (parents first).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupSpec {
    pub path: String,
    pub attrs: Vec<(String, AttrValue)>,
}

/// A dataset of the output under the plate-MJD group (the tables, and the v2 arrays): its exact
/// file type (`H5Tencode`, so that bytes are copied as they are), shape and attributes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatasetSpec {
    pub path: String,
    pub dtype: Vec<u8>,
    pub shape: Vec<u64>,
    pub attrs: Vec<(String, AttrValue)>,
}

/// What rank 0 needs to create the metadata of one store group (a plate-MJD, a field-MJD) in the
/// output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlateMeta {
    pub group: GroupId,
    pub attrs: Vec<(String, AttrValue)>,
    /// The distinct attribute lists of the plate-MJD's per-fiber datasets (v1 output); records
    /// point into it (index 0 is always the empty list).
    pub attr_sets: Vec<Vec<(String, AttrValue)>>,
    pub groups: Vec<GroupSpec>,
    pub datasets: Vec<DatasetSpec>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_compact_and_orders_coadd_first() {
        assert_eq!(std::mem::size_of::<DatasetRecord>(), 40);
        let c = DatasetRecord {
            plate: 1,
            mjd: 2,
            fiber: 3,
            len: 10,
            ..Default::default()
        };
        let e = DatasetRecord {
            expid: 104927,
            kind: DatasetKind::Red as u8,
            fields: FieldSet::ALL.0,
            len: 5,
            ..c
        };
        assert!(c.sort_key() < e.sort_key());
        assert_eq!(e.kind(), DatasetKind::Red);
        assert_eq!(c.bytes(), 320);
        assert_eq!(e.bytes(), 160);
    }
}
