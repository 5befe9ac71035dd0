//! The store layout: every HDF5 path, store file name and FITS file name is built here and only here.
//!
//! See `docs/store-layout.md`. Group names are plain decimals, store files are `PPPP-MMMMM.h5`.

use crate::key::PlateMjd;

/// The two layouts of a store file (and of a query output).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// H5Boss format v1: a group and a coadd dataset per fiber.
    #[default]
    V1,
    /// H5Boss format v2, fiber-merged: per plate-MJD one 2-D array per quantity, fibers as rows.
    V2,
}

impl Layout {
    /// The value of the root attribute [`FORMAT_ATTR`] of a file in this layout.
    pub fn format(self) -> &'static str {
        match self {
            Self::V1 => "h5boss-v1",
            Self::V2 => "h5boss-v2",
        }
    }

    /// The layout a [`FORMAT_ATTR`] value names.
    pub fn from_format(format: &str) -> Option<Self> {
        [Self::V1, Self::V2]
            .into_iter()
            .find(|l| l.format() == format)
    }

    /// `v1` / `v2`, as the command lines spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = String;

    /// `v1` or `v2` (command lines).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "v1" => Ok(Self::V1),
            "v2" => Ok(Self::V2),
            _ => Err(format!("{s:?} is not a layout: expected v1 or v2")),
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Value of the root attribute [`FORMAT_ATTR`] of a v1 file.
pub const FORMAT_VERSION: &str = "h5boss-v1";
/// Root attribute naming the store format.
pub const FORMAT_ATTR: &str = "BOSS_STORE_FORMAT";
/// Root attribute naming the program that wrote the file.
pub const WRITER_ATTR: &str = "WRITER";
/// Extension of store files.
pub const STORE_EXT: &str = "h5";
/// Name of the per-fiber coadd dataset.
pub const COADD: &str = "coadd";
/// Name of the per-fiber exposures group.
pub const EXPOSURES: &str = "exposures";
/// Attribute of an exposure dataset: spectrograph number (1 or 2).
pub const SPECTROGRAPH_ATTR: &str = "SPECTROGRAPH";
/// Attribute of an exposure dataset: the FITS HDU name it came from.
pub const EXTNAME_ATTR: &str = "EXTNAME";
/// v2: the group of a plate-MJD's coadd arrays.
pub const COADDS: &str = "coadds";
/// v2: 1-D arrays of a coadds or exposure group: the fiber of each row, its first real pixel, its
/// number of real pixels; for exposures also the spectrograph and FITS HDU name of each row.
pub const FIBERID: &str = "FIBERID";
pub const PIX0: &str = "PIX0";
pub const NPIX: &str = "NPIX";
/// v2: attributes of the coadds group: log10 λ (Å) of column 0, and the step per column.
pub const LOGLAM0_ATTR: &str = "LOGLAM0";
pub const COEFF1_ATTR: &str = "COEFF1";
/// v2: the mask bit of padding pixels (SDSS SPPIXMASK NODATA, bit 24).
pub const NODATA: i32 = 1 << 24;

/// The catalog index beside the store files.
pub const CATALOG_FILE: &str = "catalog.parquet";
/// The lock file an ingest holds while it writes a store.
pub const LOCK_FILE: &str = ".boss-ingest.lock";

/// The plate-level tables kept under `/<PLATE>/<MJD>/`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PlateTable {
    /// spPlate HDU5.
    Plugmap,
    /// SPALL / SPECOBJ rows (spec HDU2, spAll files).
    Spall,
    /// SPZLINE rows (spec HDU3, spZline HDU1).
    Zline,
    /// spZbest HDU1.
    Zbest,
    /// SDSS-V: every redshift fit of every target (spec HDU `ZALL`), several rows per target.
    Zall,
    /// DESI: coadd HDU `FIBERMAP`, one row per target.
    Fibermap,
    /// DESI: coadd HDU `EXP_FIBERMAP`, one row per exposure of a target.
    ExpFibermap,
    /// DESI: coadd HDU `SCORES`.
    Scores,
    /// DESI: redrock HDU `REDSHIFTS`.
    Redshifts,
    /// DESI: redrock HDU `TSNR2`.
    Tsnr2,
    /// DESI: the rows of a zcatalog (zpix, zall-pix HDU `ZCATALOG`) of the group's targets.
    Zcatalog,
}

impl PlateTable {
    /// Every table, in the order they are written.
    pub const ALL: [PlateTable; 11] = [
        Self::Plugmap,
        Self::Spall,
        Self::Zline,
        Self::Zbest,
        Self::Zall,
        Self::Fibermap,
        Self::ExpFibermap,
        Self::Scores,
        Self::Redshifts,
        Self::Tsnr2,
        Self::Zcatalog,
    ];

    /// DESI's tables: from the coadd file, then from the redrock file.
    pub const DESI_COADD: [PlateTable; 3] = [Self::Fibermap, Self::ExpFibermap, Self::Scores];
    pub const DESI_REDROCK: [PlateTable; 2] = [Self::Redshifts, Self::Tsnr2];

    /// Dataset name under the plate-MJD group.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plugmap => "plugmap",
            Self::Spall => "spall",
            Self::Zline => "zline",
            Self::Zbest => "zbest",
            Self::Zall => "zall",
            Self::Fibermap => "fibermap",
            Self::ExpFibermap => "exp_fibermap",
            Self::Scores => "scores",
            Self::Redshifts => "redshifts",
            Self::Tsnr2 => "tsnr2",
            Self::Zcatalog => "zcatalog",
        }
    }

    /// The FITS EXTNAME of the table (DESI's HDU names are the store names in upper case).
    pub fn extname(self) -> String {
        self.name().to_ascii_uppercase()
    }
}

/// Camera arm of an exposure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arm {
    Blue,
    Red,
}

impl Arm {
    /// Dataset name of this arm under `exposures/<EXPID>/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Blue => "b",
            Self::Red => "r",
        }
    }

    /// Parses a dataset name (`b` / `r`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "b" => Some(Self::Blue),
            "r" => Some(Self::Red),
            _ => None,
        }
    }
}

/// File name of the store file for a plate-MJD: `3655-55240.h5`.
pub fn store_file_name(pm: PlateMjd) -> String {
    format!("{:04}-{:05}.{STORE_EXT}", pm.plate, pm.mjd)
}

/// Parses a store file name back into its plate-MJD.
pub fn parse_store_file_name(name: &str) -> Option<PlateMjd> {
    let stem = name.strip_suffix(&format!(".{STORE_EXT}"))?;
    let (plate, mjd) = stem.split_once('-')?;
    Some(PlateMjd {
        plate: plate.parse().ok()?,
        mjd: mjd.parse().ok()?,
    })
}

/// Temporary name a file is written under before it is renamed into place: hidden, with the
/// writer's host and process id (so that a later run can tell a stale one from a live one).
pub fn temp_file_name(final_name: &str, host: &str, pid: u32) -> String {
    format!(".{final_name}.tmp-{host}-{pid}")
}

/// True for names made by [`temp_file_name`].
pub fn is_temp_file_name(name: &str) -> bool {
    temp_file_owner(name).is_some()
}

/// The (host, pid) of the writer of a temporary file, from its name.
pub fn temp_file_owner(name: &str) -> Option<(&str, u32)> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, owner) = name.rsplit_once(".tmp-")?;
    let (host, pid) = owner.rsplit_once('-')?;
    Some((host, pid.parse().ok()?))
}

/// `/<PLATE>`.
pub fn plate_group(plate: i32) -> String {
    format!("/{plate}")
}

/// `/<PLATE>/<MJD>`.
pub fn plate_mjd_group(pm: PlateMjd) -> String {
    format!("/{}/{}", pm.plate, pm.mjd)
}

/// `/<PLATE>/<MJD>/<table>`.
pub fn table_path(pm: PlateMjd, table: PlateTable) -> String {
    format!("{}/{}", plate_mjd_group(pm), table.name())
}

/// `/<PLATE>/<MJD>/<FIBER>`.
pub fn fiber_group(pm: PlateMjd, fiber: i32) -> String {
    format!("{}/{fiber}", plate_mjd_group(pm))
}

/// `/<PLATE>/<MJD>/<FIBER>/coadd`.
pub fn coadd_path(pm: PlateMjd, fiber: i32) -> String {
    format!("{}/{COADD}", fiber_group(pm, fiber))
}

/// `/<PLATE>/<MJD>/<FIBER>/exposures`.
pub fn exposures_group(pm: PlateMjd, fiber: i32) -> String {
    format!("{}/{EXPOSURES}", fiber_group(pm, fiber))
}

/// `/<PLATE>/<MJD>/<FIBER>/exposures/<EXPID>`.
pub fn exposure_group(pm: PlateMjd, fiber: i32, expid: u32) -> String {
    format!("{}/{expid}", exposures_group(pm, fiber))
}

/// v2: `/<PLATE>/<MJD>/coadds`.
pub fn coadds_group(pm: PlateMjd) -> String {
    format!("{}/{COADDS}", plate_mjd_group(pm))
}

/// v2: `exposures/<EXPID>/<b|r>`, relative to the plate-MJD group.
pub fn exposure_rows_group(expid: u32, arm: Arm) -> String {
    format!("{EXPOSURES}/{expid}/{}", arm.name())
}

/// `/<PLATE>/<MJD>/<FIBER>/exposures/<EXPID>/<b|r>`.
pub fn exposure_path(pm: PlateMjd, fiber: i32, expid: u32, arm: Arm) -> String {
    format!("{}/{}", exposure_group(pm, fiber, expid), arm.name())
}

/// Attribute holding the unit of a table column: `<COLUMN>_UNIT` on the table dataset.
pub fn unit_attr(field: &str) -> String {
    format!("{field}_UNIT")
}

/// Attribute of the plate-MJD group holding the unit of a coadd field: `COADD_<FIELD>_UNIT` (once
/// per plate-MJD rather than on every coadd dataset).
pub fn coadd_unit_attr(field: &str) -> String {
    format!("COADD_{field}_UNIT")
}

/// The SDSS-V (DR18 and later) part of the layout: store files and groups of field-MJD coadds in
/// the merged layout (docs/store-layout.md), and the pipeline's file names.
pub mod sdss5 {
    use crate::group::{Coadd, FieldMjd};

    /// Value of the root attribute [`super::FORMAT_ATTR`] of a file in the merged layout.
    pub const MERGED_FORMAT: &str = "boss-merged-v1";
    /// Attribute of a merged group naming the dataset (and table column) that keys its rows.
    pub const ROW_KEY_ATTR: &str = "ROW_KEY";
    /// Attribute (true) of an array of a block that belongs to every row (a shared wavelength
    /// grid), whatever its length: the query copies it whole.
    pub const SHARED_ATTR: &str = "SHARED";
    /// The row key of SDSS-V groups: the target's row in its spField, counted from 1.
    pub const TARGET_INDEX: &str = "TARGET_INDEX";
    pub const CATALOGID: &str = "CATALOGID";
    /// Attribute of an exposure group: the HDU name it came from (`MJD_EXP_60000-00`) per row.
    pub const EXTNAME: &str = "EXTNAME";
    /// The first word of SDSS-V store file names.
    const PREFIX: &str = "sdss5";

    /// `sdss5-daily-112360-60000.h5` (custom coadds have field 000000).
    pub fn store_file_name(f: FieldMjd) -> String {
        format!(
            "{PREFIX}-{}-{:06}-{:05}.{}",
            f.coadd.name(),
            f.field,
            f.mjd,
            super::STORE_EXT
        )
    }

    /// The field-MJD a store file name names.
    pub fn parse_store_file_name(name: &str) -> Option<FieldMjd> {
        let stem = name.strip_suffix(&format!(".{}", super::STORE_EXT))?;
        let rest = stem.strip_prefix(PREFIX)?.strip_prefix('-')?;
        let (rest, mjd) = rest.rsplit_once('-')?;
        let (coadd, field) = rest.rsplit_once('-')?;
        let f = FieldMjd::checked(
            Coadd::from_name(coadd)?,
            field.parse().ok()?,
            mjd.parse().ok()?,
        )
        .ok()?;
        (store_file_name(f) == name).then_some(f)
    }

    /// The HDF5 groups of a field-MJD: `/sdss5/<coadd>/<FIELD>/<MJD>`.
    pub fn group_parts(f: FieldMjd) -> Vec<String> {
        vec![
            PREFIX.to_string(),
            f.coadd.name().to_string(),
            f.field.to_string(),
            f.mjd.to_string(),
        ]
    }

    /// File names of the SDSS-V pipeline.
    pub mod fits_names {
        use crate::group::FieldMjd;

        /// `spField-<FIELD>-<MJD>.fits`.
        pub fn spfield(f: FieldMjd) -> String {
            format!("spField-{}-{}.fits", f.field_str(), f.mjd)
        }
        /// `spZbest-<FIELD>-<MJD>.fits`.
        pub fn spzbest(f: FieldMjd) -> String {
            format!("spZbest-{}-{}.fits", f.field_str(), f.mjd)
        }
        /// `spZline-<FIELD>-<MJD>.fits`.
        pub fn spzline(f: FieldMjd) -> String {
            format!("spZline-{}-{}.fits", f.field_str(), f.mjd)
        }
        /// `spec-<FIELD>-<MJD>-<CATALOGID>.fits`.
        pub fn spec(f: FieldMjd, catalogid: i64) -> String {
            format!("spec-{}-{}-{catalogid}.fits", f.field_str(), f.mjd)
        }
        pub const SPFIELD_PREFIX: &str = "spField-";
    }
}

/// FITS file names used by the SDSS pipeline (the generator writes them, the ingest recognises them).
pub mod fits_names {
    use crate::key::PlateMjd;

    /// `spPlate-PPPP-MMMMM.fits`.
    pub fn spplate(pm: PlateMjd) -> String {
        format!("spPlate-{:04}-{:05}.fits", pm.plate, pm.mjd)
    }
    /// `spZbest-PPPP-MMMMM.fits`.
    pub fn spzbest(pm: PlateMjd) -> String {
        format!("spZbest-{:04}-{:05}.fits", pm.plate, pm.mjd)
    }
    /// `spZline-PPPP-MMMMM.fits`.
    pub fn spzline(pm: PlateMjd) -> String {
        format!("spZline-{:04}-{:05}.fits", pm.plate, pm.mjd)
    }
    /// `spec-PPPP-MMMMM-FFFF.fits`.
    pub fn spec(pm: PlateMjd, fiber: i32) -> String {
        format!("spec-{:04}-{:05}-{:04}.fits", pm.plate, pm.mjd, fiber)
    }
    /// File-name prefixes of the kinds of input, as the pipeline names them.
    pub const SPPLATE_PREFIX: &str = "spPlate-";
    pub const SPZBEST_PREFIX: &str = "spZbest-";
    pub const SPZLINE_PREFIX: &str = "spZline-";
    pub const SPEC_PREFIX: &str = "spec-";
    pub const SPALL_PREFIX: &str = "spAll";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_h5boss_v1() {
        let pm = PlateMjd {
            plate: 3655,
            mjd: 55240,
        };
        assert_eq!(store_file_name(pm), "3655-55240.h5");
        assert_eq!(parse_store_file_name("3655-55240.h5"), Some(pm));
        assert_eq!(
            parse_store_file_name("0042-05000.h5"),
            Some(PlateMjd {
                plate: 42,
                mjd: 5000
            })
        );
        assert_eq!(parse_store_file_name("catalog.parquet"), None);
        assert_eq!(coadd_path(pm, 4), "/3655/55240/4/coadd");
        assert_eq!(
            exposure_path(pm, 4, 104927, Arm::Red),
            "/3655/55240/4/exposures/104927/r"
        );
        assert_eq!(table_path(pm, PlateTable::Plugmap), "/3655/55240/plugmap");
        assert_eq!(fits_names::spec(pm, 2), "spec-3655-55240-0002.fits");
        let tmp = temp_file_name("3655-55240.h5", "node-7.cluster", 77);
        assert_eq!(temp_file_owner(&tmp), Some(("node-7.cluster", 77)));
        assert!(is_temp_file_name(&tmp));
        assert!(!is_temp_file_name("3655-55240.h5"));
    }
}
