//! Identifiers of spectra: plate-MJD pairs and the 64-bit fiber key used by DESI/redrock.

use serde::{Deserialize, Serialize};

/// A plate observed on one night: the unit of one store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlateMjd {
    pub plate: i32,
    pub mjd: i32,
}

/// One spectrum: plate, MJD and fiber. Orders by (plate, mjd, fiber), the same order as [`FiberId::key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FiberId {
    pub plate: i32,
    pub mjd: i32,
    pub fiber: i32,
}

impl FiberId {
    pub fn new(plate: i32, mjd: i32, fiber: i32) -> Self {
        Self { plate, mjd, fiber }
    }

    /// The plate-MJD this fiber belongs to.
    pub fn plate_mjd(self) -> PlateMjd {
        PlateMjd {
            plate: self.plate,
            mjd: self.mjd,
        }
    }

    /// `plate * 1_000_000_000 + mjd * 10_000 + fiber`, the stable key of DESI/redrock tools.
    pub fn key(self) -> i64 {
        self.plate as i64 * 1_000_000_000 + self.mjd as i64 * 10_000 + self.fiber as i64
    }

    /// Inverse of [`FiberId::key`].
    pub fn from_key(key: i64) -> Self {
        Self {
            plate: (key / 1_000_000_000) as i32,
            mjd: ((key / 10_000) % 100_000) as i32,
            fiber: (key % 10_000) as i32,
        }
    }
}

impl std::fmt::Display for FiberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.plate, self.mjd, self.fiber)
    }
}

impl std::fmt::Display for PlateMjd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.plate, self.mjd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_and_orders_like_the_triple() {
        let a = FiberId::new(3655, 55240, 2);
        assert_eq!(a.key(), 3_655_552_400_002);
        assert_eq!(FiberId::from_key(a.key()), a);
        let b = FiberId::new(10656, 58163, 366);
        assert_eq!(FiberId::from_key(b.key()), b);
        assert!(a < b && a.key() < b.key());
    }
}
