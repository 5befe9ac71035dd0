//! Store groups and spectra of every survey: which store file and HDF5 group a spectrum lives in,
//! and the one 64-bit key that names it in the catalog (docs/store-layout.md, "Keys").
//!
//! Keys of the surveys live in separate ranges of `i64`, so that one catalog holds them all:
//! - SDSS-I–IV: `plate * 10^9 + mjd * 10^4 + fiber` (the key of the DESI/redrock tools), below
//!   2.2 × 10^18 since plates are at most 2^31 − 1;
//! - SDSS-V: `3 × 10^18 + coadd * 10^17 + field * 10^10 + mjd * 10^5 + target_index`, with the
//!   coadd numbered as the SDSS-V pipeline numbers it in SPECOBJID;
//! - DESI: `4 × 10^18 + group code * 10^5 + target_row`, the group code of [`DesiGroup::code`].

use serde::{Deserialize, Serialize};

use crate::desi::{self, DesiGroup};
use crate::key::{checked_part, FiberId, KeyError, PlateMjd, MJD_RANGE};
use crate::layout;

/// SDSS-V fields: up to 6 digits.
pub const FIELD_RANGE: (i64, i64) = (0, 999_999);
/// Rows of an SDSS-V field-MJD (TARGET_INDEX, counted from 1).
pub const TARGET_INDEX_RANGE: (i64, i64) = (1, 99_999);

/// The survey generations the store holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub enum Survey {
    /// SDSS-I to SDSS-IV (plates; DR17 and before).
    #[default]
    Sdss4,
    /// SDSS-V (fields, CATALOGIDs; DR18 and later).
    Sdss5,
    /// DESI (HEALPix and tile coadds, TARGETIDs; DR1 and later).
    Desi,
}

impl Survey {
    /// The value of the catalog's `survey` column.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sdss4 => "sdss4",
            Self::Sdss5 => "sdss5",
            Self::Desi => "desi",
        }
    }
}

/// The kinds of SDSS-V coadd, numbered as the pipeline numbers them in SPECOBJID (idlspec2d's
/// `specobjid.coaddids`): daily (one night), epoch (a field's epoch), and the custom all-epoch
/// coadds of BHM targets (field 0).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[repr(u8)]
pub enum Coadd {
    #[default]
    Daily = 0,
    Epoch = 1,
    AllEpoch = 2,
    AllEpochApo = 3,
    AllEpochLco = 4,
}

impl Coadd {
    pub const ALL: [Coadd; 5] = [
        Self::Daily,
        Self::Epoch,
        Self::AllEpoch,
        Self::AllEpochApo,
        Self::AllEpochLco,
    ];

    /// The pipeline's name of the coadd (also the field string of custom coadds in file names).
    pub fn name(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Epoch => "epoch",
            Self::AllEpoch => "allepoch",
            Self::AllEpochApo => "allepoch_apo",
            Self::AllEpochLco => "allepoch_lco",
        }
    }

    /// The coadd of a pipeline name (`spiders` and `efeds` are DR18's names of `allepoch`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "spiders" | "efeds" => Some(Self::AllEpoch),
            n => Self::ALL.into_iter().find(|c| c.name() == n),
        }
    }

    /// The two-digit id of SPECOBJID.
    pub fn id(self) -> u8 {
        self as u8
    }

    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Custom coadds are per target over many fields: their FIELD is 0 and their field string is
    /// the coadd's name.
    pub fn is_custom(self) -> bool {
        matches!(self, Self::AllEpoch | Self::AllEpochApo | Self::AllEpochLco)
    }
}

/// One SDSS-V coadd of a field on an MJD: the unit of one store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FieldMjd {
    pub coadd: Coadd,
    pub field: i32,
    pub mjd: i32,
}

impl FieldMjd {
    /// A field-MJD from numbers read in a file, range checked (custom coadds have field 0).
    pub fn checked(coadd: Coadd, field: i64, mjd: i64) -> Result<Self, KeyError> {
        let field = if coadd.is_custom() {
            0
        } else {
            checked_part("FIELD", field, FIELD_RANGE)?
        };
        Ok(Self {
            coadd,
            field,
            mjd: checked_part("MJD", mjd, MJD_RANGE)?,
        })
    }

    /// The field as file names spell it: six digits, or the coadd's name for custom coadds.
    pub fn field_str(&self) -> String {
        if self.coadd.is_custom() {
            self.coadd.name().to_string()
        } else {
            format!("{:06}", self.field)
        }
    }
}

impl std::fmt::Display for FieldMjd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.coadd {
            Coadd::Daily => write!(f, "{}-{}", self.field_str(), self.mjd),
            c if c.is_custom() => write!(f, "{}-{}", self.field_str(), self.mjd),
            c => write!(f, "{}-{} ({})", self.field_str(), self.mjd, c.name()),
        }
    }
}

/// The unit of one store file, in any survey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GroupId {
    /// An SDSS-I–IV plate-MJD (H5Boss layouts v1 and v2).
    Plate(PlateMjd),
    /// An SDSS-V field-MJD coadd (the merged layout).
    Field(FieldMjd),
    /// A DESI coadd file (HEALPix or tile; the merged layout).
    Desi(DesiGroup),
}

impl From<PlateMjd> for GroupId {
    fn from(pm: PlateMjd) -> Self {
        Self::Plate(pm)
    }
}

impl From<DesiGroup> for GroupId {
    fn from(g: DesiGroup) -> Self {
        Self::Desi(g)
    }
}

impl From<FieldMjd> for GroupId {
    fn from(f: FieldMjd) -> Self {
        Self::Field(f)
    }
}

impl GroupId {
    pub fn survey(&self) -> Survey {
        match self {
            Self::Plate(_) => Survey::Sdss4,
            Self::Field(_) => Survey::Sdss5,
            Self::Desi(_) => Survey::Desi,
        }
    }

    /// The plate-MJD of an SDSS-I–IV group.
    pub fn plate_mjd(&self) -> Option<PlateMjd> {
        match self {
            Self::Plate(pm) => Some(*pm),
            _ => None,
        }
    }

    /// The name of the group's store file.
    pub fn store_file_name(&self) -> String {
        match self {
            Self::Plate(pm) => layout::store_file_name(*pm),
            Self::Field(f) => layout::sdss5::store_file_name(*f),
            Self::Desi(g) => g.store_file_name(),
        }
    }

    /// The group a store file name names.
    pub fn from_store_file_name(name: &str) -> Option<Self> {
        layout::parse_store_file_name(name)
            .map(Self::Plate)
            .or_else(|| layout::sdss5::parse_store_file_name(name).map(Self::Field))
            .or_else(|| DesiGroup::from_store_file_name(name).map(Self::Desi))
    }

    /// The names of the HDF5 groups from the root to this group (`["3655", "55240"]`).
    pub fn path_parts(&self) -> Vec<String> {
        match self {
            Self::Plate(pm) => vec![pm.plate.to_string(), pm.mjd.to_string()],
            Self::Field(f) => layout::sdss5::group_parts(*f),
            Self::Desi(g) => g.path_parts(),
        }
    }

    /// The HDF5 path of the group (`/3655/55240`).
    pub fn path(&self) -> String {
        self.path_parts()
            .iter()
            .fold(String::new(), |p, part| format!("{p}/{part}"))
    }

    /// The name of a spectrum's row key in this group's messages and tables.
    pub fn row_name(&self) -> &'static str {
        match self {
            Self::Plate(_) => "fiber",
            Self::Field(_) => layout::sdss5::TARGET_INDEX,
            Self::Desi(_) => desi::TARGET_ROW,
        }
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Plate(pm) => pm.fmt(f),
            Self::Field(fm) => write!(f, "field {fm}"),
            Self::Desi(g) => g.fmt(f),
        }
    }
}

/// One spectrum of the store: its group and its row key there (fiber for SDSS-I–IV, TARGET_INDEX
/// for SDSS-V). Orders by group, then row, which is the order of [`SpectrumId::key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SpectrumId {
    pub group: GroupId,
    pub row: i64,
}

const SDSS5_BASE: i64 = 3_000_000_000_000_000_000;
const SDSS5_END: i64 = SDSS5_BASE + 5 * 100_000_000_000_000_000;
const DESI_BASE: i64 = 4_000_000_000_000_000_000;
const DESI_END: i64 = DESI_BASE + desi::CODE_END * 100_000;

impl SpectrumId {
    pub fn new(group: impl Into<GroupId>, row: i64) -> Self {
        Self {
            group: group.into(),
            row,
        }
    }

    /// A spectrum of an SDSS-V field-MJD, its TARGET_INDEX range checked.
    pub fn checked_field(group: FieldMjd, target_index: i64) -> Result<Self, KeyError> {
        checked_part("TARGET_INDEX", target_index, TARGET_INDEX_RANGE)?;
        Ok(Self::new(group, target_index))
    }

    /// A spectrum of a DESI coadd, its TARGET_ROW range checked.
    pub fn checked_desi(group: DesiGroup, target_row: i64) -> Result<Self, KeyError> {
        checked_part(desi::TARGET_ROW, target_row, desi::TARGET_ROW_RANGE)?;
        Ok(Self::new(group, target_row))
    }

    /// The catalog key (see the module documentation).
    pub fn key(&self) -> i64 {
        match self.group {
            GroupId::Plate(pm) => FiberId::new(pm.plate, pm.mjd, self.row as i32).key(),
            GroupId::Field(f) => {
                SDSS5_BASE
                    + i64::from(f.coadd.id()) * 100_000_000_000_000_000
                    + i64::from(f.field) * 10_000_000_000
                    + i64::from(f.mjd) * 100_000
                    + self.row
            }
            GroupId::Desi(g) => DESI_BASE + g.code() * 100_000 + self.row,
        }
    }

    /// The spectrum a catalog key names (None for a number that is no key).
    pub fn from_key(key: i64) -> Option<Self> {
        if key < 0 {
            return None;
        }
        if key < SDSS5_BASE {
            let f = FiberId::from_key_checked(key)?;
            return Some(Self::new(f.plate_mjd(), f.fiber.into()));
        }
        if key < SDSS5_END {
            let local = key - SDSS5_BASE;
            let coadd = Coadd::from_id((local / 100_000_000_000_000_000) as u8)?;
            let rest = local % 100_000_000_000_000_000;
            let field = rest / 10_000_000_000;
            let mjd = (rest / 100_000) % 100_000;
            let row = rest % 100_000;
            let group = FieldMjd::checked(coadd, field, mjd).ok()?;
            if group.field as i64 != field || row < TARGET_INDEX_RANGE.0 {
                return None;
            }
            return Some(Self::new(group, row));
        }
        if (DESI_BASE..DESI_END).contains(&key) {
            let local = key - DESI_BASE;
            let row = local % 100_000;
            let group = DesiGroup::from_code(local / 100_000)?;
            return (row >= desi::TARGET_ROW_RANGE.0).then(|| Self::new(group, row));
        }
        None
    }

    /// The fiber of an SDSS-I–IV spectrum.
    pub fn fiber_id(&self) -> Option<FiberId> {
        match self.group {
            GroupId::Plate(pm) => Some(FiberId::new(pm.plate, pm.mjd, self.row as i32)),
            _ => None,
        }
    }
}

impl From<FiberId> for SpectrumId {
    fn from(f: FiberId) -> Self {
        Self::new(f.plate_mjd(), f.fiber.into())
    }
}

impl std::fmt::Display for SpectrumId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.group {
            GroupId::Plate(pm) => write!(f, "{pm}-{}", self.row),
            GroupId::Field(fm) => write!(f, "field {fm} TARGET_INDEX {}", self.row),
            GroupId::Desi(g) => write!(f, "{g} TARGET_ROW {}", self.row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_both_generations_round_trip_and_do_not_overlap() {
        let boss = SpectrumId::from(FiberId::new(3655, 55240, 2));
        assert_eq!(boss.key(), 3_655_552_400_002);
        assert_eq!(SpectrumId::from_key(boss.key()), Some(boss));
        let max = SpectrumId::from(FiberId::new(i32::MAX, 99_999, 9_999));
        assert_eq!(SpectrumId::from_key(max.key()), Some(max));
        for coadd in Coadd::ALL {
            let g = FieldMjd::checked(coadd, 112_360, 60_000).unwrap();
            let s = SpectrumId::checked_field(g, 503).unwrap();
            assert!(s.key() > max.key());
            assert_eq!(SpectrumId::from_key(s.key()), Some(s), "{coadd:?}");
        }
        let big = FieldMjd::checked(Coadd::Epoch, 999_999, 99_999).unwrap();
        let s = SpectrumId::checked_field(big, 99_999).unwrap();
        assert_eq!(SpectrumId::from_key(s.key()), Some(s));
        assert!(SpectrumId::checked_field(big, 100_000).is_err());
        assert!(FieldMjd::checked(Coadd::Daily, 1_000_000, 60_000).is_err());
        // Custom coadds have field 0 whatever the file says.
        assert_eq!(
            FieldMjd::checked(Coadd::AllEpochApo, 17, 60_000)
                .unwrap()
                .field,
            0
        );
        assert_eq!(SpectrumId::from_key(-1), None);
        assert_eq!(SpectrumId::from_key(2_500_000_000_000_000_000), None);
        assert_eq!(SpectrumId::from_key(i64::MAX), None);
        assert!(boss < s);
        for g in [
            DesiGroup::healpix(desi::DesiSurvey::Main, desi::DesiProgram::Dark, 27_247).unwrap(),
            DesiGroup::tile(999_999, 9, 20_451_231).unwrap(),
        ] {
            for row in [1, 99_999] {
                let d = SpectrumId::checked_desi(g, row).unwrap();
                assert!(d.key() > s.key());
                assert_eq!(SpectrumId::from_key(d.key()), Some(d));
            }
            assert!(SpectrumId::checked_desi(g, 0).is_err());
        }
    }

    #[test]
    fn groups_name_their_files_and_paths() {
        let pm = GroupId::Plate(PlateMjd {
            plate: 3655,
            mjd: 55240,
        });
        assert_eq!(pm.store_file_name(), "3655-55240.h5");
        assert_eq!(pm.path(), "/3655/55240");
        let f = GroupId::Field(FieldMjd::checked(Coadd::Daily, 112_360, 60_000).unwrap());
        assert_eq!(f.store_file_name(), "sdss5-daily-112360-60000.h5");
        assert_eq!(f.path(), "/sdss5/daily/112360/60000");
        let e = GroupId::Field(FieldMjd::checked(Coadd::AllEpochLco, 0, 60_130).unwrap());
        assert_eq!(e.store_file_name(), "sdss5-allepoch_lco-000000-60130.h5");
        for g in [pm, f, e] {
            assert_eq!(GroupId::from_store_file_name(&g.store_file_name()), Some(g));
        }
        assert_eq!(GroupId::from_store_file_name("catalog.parquet"), None);
        assert_eq!(Coadd::from_name("SPIDERS"), Some(Coadd::AllEpoch));
    }
}
