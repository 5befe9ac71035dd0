//! Identifiers of spectra: plate-MJD pairs and the 64-bit fiber key used by DESI/redrock.

use serde::{Deserialize, Serialize};

/// Ranges of the parts of a fiber key, so that [`FiberId::key`] is exact and invertible and the store
/// file name and groups are plain decimals: plate 0..=2^31-1, MJD 0..=99999, fiber 1..=9999.
pub const PLATE_RANGE: (i64, i64) = (0, i32::MAX as i64);
pub const MJD_RANGE: (i64, i64) = (0, 99_999);
pub const FIBER_RANGE: (i64, i64) = (1, 9_999);

/// A plate, MJD or fiber number outside what the store can represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value} is out of range ({min}..={max})")]
pub struct KeyError {
    pub what: String,
    pub value: i64,
    pub min: i64,
    pub max: i64,
}

/// Checks one part of a key; `what` names it in the message (e.g. `PLATEID`).
pub fn checked_part(what: &str, value: i64, (min, max): (i64, i64)) -> Result<i32, KeyError> {
    if (min..=max).contains(&value) {
        Ok(value as i32)
    } else {
        Err(KeyError {
            what: what.to_string(),
            value,
            min,
            max,
        })
    }
}

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

impl PlateMjd {
    /// A plate-MJD from numbers read in a file, checked against [`PLATE_RANGE`] and [`MJD_RANGE`].
    pub fn checked(plate: i64, mjd: i64) -> Result<Self, KeyError> {
        Ok(Self {
            plate: checked_part("plate", plate, PLATE_RANGE)?,
            mjd: checked_part("MJD", mjd, MJD_RANGE)?,
        })
    }
}

impl FiberId {
    pub fn new(plate: i32, mjd: i32, fiber: i32) -> Self {
        Self { plate, mjd, fiber }
    }

    /// A fiber from numbers read in a file or list, checked against the key ranges.
    pub fn checked(plate: i64, mjd: i64, fiber: i64) -> Result<Self, KeyError> {
        let pm = PlateMjd::checked(plate, mjd)?;
        Ok(Self::new(
            pm.plate,
            pm.mjd,
            checked_part("fiber", fiber, FIBER_RANGE)?,
        ))
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

    /// Inverse of [`FiberId::key`], for a key that is a fiber's (None for any other number).
    pub fn from_key_checked(key: i64) -> Option<Self> {
        if key < 0 || key / 1_000_000_000 > PLATE_RANGE.1 {
            return None;
        }
        let f = Self::from_key(key);
        (f.fiber >= FIBER_RANGE.0 as i32).then_some(f)
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
        let max = FiberId::checked(i32::MAX as i64, 99_999, 9_999).unwrap();
        assert_eq!(FiberId::from_key(max.key()), max);
    }

    #[test]
    fn out_of_range_parts_are_errors_not_wraps() {
        let e = FiberId::checked(99_999_999_999, 55240, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plate 99999999999 is out of range (0..=2147483647)"
        );
        assert!(PlateMjd::checked(-3655, 55240).is_err());
        assert!(FiberId::checked(3655, 100_000, 1).is_err());
        assert!(FiberId::checked(3655, 55240, 0).is_err());
        assert_eq!(
            checked_part("PLATEID", 1 << 31, PLATE_RANGE)
                .unwrap_err()
                .what,
            "PLATEID"
        );
    }
}
