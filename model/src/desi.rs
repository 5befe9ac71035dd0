//! DESI store groups: one per coadd file — a HEALPix coadd (`coadd-<SURVEY>-<PROGRAM>-<PIXNUM>`) or
//! a cumulative tile coadd (`coadd-<PETAL>-<TILEID>-thru<NIGHT>`) — with their store file names,
//! HDF5 paths and the part of the catalog key that names them (docs/store-layout.md, "DESI").

use serde::{Deserialize, Serialize};

use crate::key::{checked_part, KeyError};

/// The row key of DESI groups: the target's row in its coadd file's TARGETID order, from 1.
pub const TARGET_ROW: &str = "TARGET_ROW";
/// DESI's target ID, a column of every row.
pub const TARGETID: &str = "TARGETID";
/// The arms of a DESI spectrograph, as the HDU names spell them (`B_FLUX`) and as the store's
/// blocks are named (`b`).
pub const ARMS: [&str; 3] = ["b", "r", "z"];
/// Rows of a DESI coadd (TARGET_ROW).
pub const TARGET_ROW_RANGE: (i64, i64) = (1, 99_999);
/// HEALPix pixel numbers (nside 64 has 49,152 pixels).
pub const PIXNUM_RANGE: (i64, i64) = (0, 99_999);
pub const TILEID_RANGE: (i64, i64) = (0, 999_999);
pub const PETAL_RANGE: (i64, i64) = (0, 9);
/// Nights as YYYYMMDD, from 2019 (commissioning) to 2045.
pub const NIGHT_RANGE: (i64, i64) = (20_190_101, 20_451_231);

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum $name { $($v),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$v),*];

            /// The name DESI's files and headers use.
            pub fn name(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }

            /// The value of a name (case and blanks ignored).
            pub fn from_name(name: &str) -> Option<Self> {
                let n = name.trim().to_ascii_lowercase();
                Self::ALL.iter().copied().find(|v| v.name() == n)
            }
        }
    };
}

named_enum!(
    /// DESI surveys (the SURVEY keyword).
    DesiSurvey { Cmx = "cmx", Special = "special", Sv1 = "sv1", Sv2 = "sv2", Sv3 = "sv3", Main = "main" }
);
named_enum!(
    /// DESI programs (the PROGRAM keyword).
    DesiProgram { Backup = "backup", Bright = "bright", Dark = "dark", Other = "other" }
);

/// One DESI coadd file: the unit of one store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DesiGroup {
    /// A HEALPix coadd (nside 64, nested).
    Healpix {
        survey: DesiSurvey,
        program: DesiProgram,
        pixnum: i32,
    },
    /// A cumulative tile coadd of one petal, through a night.
    Tile { tileid: i32, petal: i32, night: i32 },
}

const PREFIX: &str = "desi";

fn night_checked(night: i64) -> Result<i32, KeyError> {
    let n = checked_part("NIGHT", night, NIGHT_RANGE)?;
    let (m, d) = ((n / 100) % 100, n % 100);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(KeyError {
            what: "NIGHT (as YYYYMMDD)".into(),
            value: night,
            min: NIGHT_RANGE.0,
            max: NIGHT_RANGE.1,
        });
    }
    Ok(n)
}

impl DesiGroup {
    pub fn healpix(
        survey: DesiSurvey,
        program: DesiProgram,
        pixnum: i64,
    ) -> Result<Self, KeyError> {
        Ok(Self::Healpix {
            survey,
            program,
            pixnum: checked_part("HPXPIXEL", pixnum, PIXNUM_RANGE)?,
        })
    }

    pub fn tile(tileid: i64, petal: i64, night: i64) -> Result<Self, KeyError> {
        Ok(Self::Tile {
            tileid: checked_part("TILEID", tileid, TILEID_RANGE)?,
            petal: checked_part("PETAL", petal, PETAL_RANGE)?,
            night: night_checked(night)?,
        })
    }

    /// The coadd file's name in DESI's tree.
    pub fn coadd_file_name(&self) -> String {
        format!("coadd-{}.fits", self.file_stem())
    }

    /// The redrock file's name in DESI's tree.
    pub fn redrock_file_name(&self) -> String {
        format!("redrock-{}.fits", self.file_stem())
    }

    fn file_stem(&self) -> String {
        match *self {
            Self::Healpix {
                survey,
                program,
                pixnum,
            } => format!("{}-{}-{pixnum}", survey.name(), program.name()),
            Self::Tile {
                tileid,
                petal,
                night,
            } => format!("{petal}-{tileid}-thru{night}"),
        }
    }

    /// `desi-healpix-main-dark-27247.h5`, `desi-tile-080605-3-thru20210205.h5`.
    pub fn store_file_name(&self) -> String {
        match *self {
            Self::Healpix {
                survey,
                program,
                pixnum,
            } => format!(
                "{PREFIX}-healpix-{}-{}-{pixnum:05}.{}",
                survey.name(),
                program.name(),
                crate::layout::STORE_EXT
            ),
            Self::Tile {
                tileid,
                petal,
                night,
            } => format!(
                "{PREFIX}-tile-{tileid:06}-{petal}-thru{night}.{}",
                crate::layout::STORE_EXT
            ),
        }
    }

    /// The group a store file name names.
    pub fn from_store_file_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(&format!(".{}", crate::layout::STORE_EXT))?;
        let rest = stem.strip_prefix(PREFIX)?.strip_prefix('-')?;
        let parts: Vec<&str> = rest.split('-').collect();
        let g = match parts.as_slice() {
            ["healpix", survey, program, pixnum] => Self::healpix(
                DesiSurvey::from_name(survey)?,
                DesiProgram::from_name(program)?,
                pixnum.parse().ok()?,
            )
            .ok()?,
            ["tile", tileid, petal, night] => Self::tile(
                tileid.parse().ok()?,
                petal.parse().ok()?,
                night.strip_prefix("thru")?.parse().ok()?,
            )
            .ok()?,
            _ => return None,
        };
        (g.store_file_name() == name).then_some(g)
    }

    /// The HDF5 groups: `/desi/healpix/<survey>/<program>/<pixnum>` or
    /// `/desi/tiles/cumulative/<tileid>/<night>/<petal>` (DESI's own tree).
    pub fn path_parts(&self) -> Vec<String> {
        match *self {
            Self::Healpix {
                survey,
                program,
                pixnum,
            } => vec![
                PREFIX.into(),
                "healpix".into(),
                survey.name().into(),
                program.name().into(),
                pixnum.to_string(),
            ],
            Self::Tile {
                tileid,
                petal,
                night,
            } => vec![
                PREFIX.into(),
                "tiles".into(),
                "cumulative".into(),
                tileid.to_string(),
                night.to_string(),
                petal.to_string(),
            ],
        }
    }

    /// The number that names the group in catalog keys, below 2 × 10^13: HEALPix coadds
    /// `survey * 10^6 + program * 10^5 + pixnum`, tile coadds `10^13 + tileid * 10^6 + petal * 10^5
    /// + night`, the night counted in 31-day months from 2019.
    pub fn code(&self) -> i64 {
        match *self {
            Self::Healpix {
                survey,
                program,
                pixnum,
            } => survey as i64 * 1_000_000 + program as i64 * 100_000 + i64::from(pixnum),
            Self::Tile {
                tileid,
                petal,
                night,
            } => {
                let (y, m, d) = (night / 10_000, (night / 100) % 100, night % 100);
                let night_code = i64::from((y - 2019) * 372 + (m - 1) * 31 + (d - 1));
                TILE_CODE + i64::from(tileid) * 1_000_000 + i64::from(petal) * 100_000 + night_code
            }
        }
    }

    /// The group of a code made by [`DesiGroup::code`].
    pub fn from_code(code: i64) -> Option<Self> {
        if code >= TILE_CODE {
            let rest = code - TILE_CODE;
            let (tileid, petal, n) = (rest / 1_000_000, (rest / 100_000) % 10, rest % 100_000);
            let (y, m, d) = (2019 + n / 372, (n % 372) / 31 + 1, n % 31 + 1);
            let g = Self::tile(tileid, petal, y * 10_000 + m * 100 + d).ok()?;
            return (g.code() == code).then_some(g);
        }
        let survey = *DesiSurvey::ALL.get(usize::try_from(code / 1_000_000).ok()?)?;
        let program = *DesiProgram::ALL.get(((code / 100_000) % 10) as usize)?;
        let g = Self::healpix(survey, program, code % 100_000).ok()?;
        (g.code() == code).then_some(g)
    }
}

const TILE_CODE: i64 = 10_000_000_000_000;
/// Codes are below this.
pub const CODE_END: i64 = 2 * TILE_CODE;

impl std::fmt::Display for DesiGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Healpix {
                survey,
                program,
                pixnum,
            } => write!(
                f,
                "DESI healpix {}/{}/{pixnum}",
                survey.name(),
                program.name()
            ),
            Self::Tile {
                tileid,
                petal,
                night,
            } => write!(f, "DESI tile {tileid} petal {petal} thru {night}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip_through_codes_and_file_names() {
        let groups = [
            DesiGroup::healpix(DesiSurvey::Special, DesiProgram::Dark, 27_247).unwrap(),
            DesiGroup::healpix(DesiSurvey::Main, DesiProgram::Other, 99_999).unwrap(),
            DesiGroup::healpix(DesiSurvey::Cmx, DesiProgram::Backup, 0).unwrap(),
            DesiGroup::tile(80_605, 3, 20_210_205).unwrap(),
            DesiGroup::tile(999_999, 9, 20_451_231).unwrap(),
            DesiGroup::tile(0, 0, 20_190_101).unwrap(),
        ];
        let mut codes = std::collections::HashSet::new();
        for g in groups {
            assert!(g.code() < CODE_END);
            assert!(codes.insert(g.code()), "{g}");
            assert_eq!(DesiGroup::from_code(g.code()), Some(g), "{g}");
            assert_eq!(
                DesiGroup::from_store_file_name(&g.store_file_name()),
                Some(g)
            );
        }
        assert_eq!(
            groups[0].store_file_name(),
            "desi-healpix-special-dark-27247.h5"
        );
        assert_eq!(groups[0].coadd_file_name(), "coadd-special-dark-27247.fits");
        assert_eq!(
            groups[3].coadd_file_name(),
            "coadd-3-80605-thru20210205.fits"
        );
        assert_eq!(
            groups[3].path_parts().join("/"),
            "desi/tiles/cumulative/80605/20210205/3"
        );
        assert!(DesiGroup::tile(1, 10, 20_210_205).is_err());
        assert!(DesiGroup::tile(1, 1, 20_211_305).is_err());
        assert!(DesiGroup::healpix(DesiSurvey::Main, DesiProgram::Dark, 100_000).is_err());
        assert_eq!(DesiSurvey::from_name(" SV3 "), Some(DesiSurvey::Sv3));
        assert_eq!(DesiGroup::from_code(7_000_000), None);
    }
}
