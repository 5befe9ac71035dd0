//! The one place for the catalog's column facts: the derived columns (name, type, where their value
//! is looked for), where every other column comes from (its origin, kept in the Arrow field
//! metadata), and the naming rule that makes names unique ignoring case.
//!
//! The rule (docs/catalog.md): the derived columns come first, in lower case. Then every column of
//! the store's `spall`, `zbest` and `plugmap` tables, in upper case as in the store. A spall column
//! that a derived column already holds (`PLATE`, `MJD`, `CLASS`, `Z`, … — [`MERGED`]) is not
//! repeated. A column whose name is already taken, ignoring case — by a derived column, or by an
//! earlier table in the order spall, zbest, plugmap anywhere in the catalog — gets its table as a
//! prefix: `SPALL_RA`, `ZBEST_Z`, `PLUGMAP_RA`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use model::layout::PlateTable;

/// The field metadata key naming where a column comes from: `derived`, `spall`, `zbest`, `plugmap`.
pub const ORIGIN_TABLE: &str = "boss.table";
/// The field metadata key holding the column's name in its table.
pub const ORIGIN_COLUMN: &str = "boss.column";
/// The field metadata key holding the column's position in its table (the smallest over the store
/// files): table columns are ordered by it, so the order does not depend on the order of ingests.
pub const ORIGIN_POSITION: &str = "boss.position";

/// The position recorded on a table column's field (0 when absent).
pub fn position(field: &Field) -> usize {
    field
        .metadata()
        .get(ORIGIN_POSITION)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The field with its table position recorded.
pub fn with_position(field: Field, position: usize) -> Field {
    let mut m = field.metadata().clone();
    m.insert(ORIGIN_POSITION.to_string(), position.to_string());
    field.with_metadata(m)
}

pub const KEY: &str = "key";
pub const PLATE: &str = "plate";
pub const MJD: &str = "mjd";
pub const FIBER: &str = "fiber";
pub const FILE: &str = "file";
pub const NPIX: &str = "npix";
pub const NEXP: &str = "nexp";
pub const RA: &str = "ra";
pub const DEC: &str = "dec";
pub const CLASS: &str = "class";
pub const SUBCLASS: &str = "subclass";
pub const Z: &str = "z";
pub const Z_ERR: &str = "z_err";
pub const ZWARNING: &str = "zwarning";
pub const OBJTYPE: &str = "objtype";
pub const SPECPRIMARY: &str = "specprimary";
pub const SN_MEDIAN_ALL: &str = "sn_median_all";
pub const SURVEY: &str = "survey";
pub const FIELDID: &str = "field_id";
pub const CATALOGID: &str = "catalogid";

/// The tables whose columns the catalog carries, in the order of precedence for names: SDSS's,
/// then DESI's.
pub const TABLES: [PlateTable; 7] = [
    PlateTable::Spall,
    PlateTable::Zbest,
    PlateTable::Plugmap,
    PlateTable::Fibermap,
    PlateTable::Redshifts,
    PlateTable::Scores,
    PlateTable::Zcatalog,
];

/// Where a derived column's value comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// From the fiber's identity or its datasets.
    Fiber,
    /// The first table (in this order) with a row for the fiber and a value in this column; empty
    /// strings count as no value.
    Tables(&'static [(PlateTable, &'static str)]),
}

/// One derived column.
#[derive(Debug, Clone, Copy)]
pub struct Derived {
    pub name: &'static str,
    pub data_type: DerivedType,
    pub nullable: bool,
    pub source: Source,
    pub doc: &'static str,
}

/// The Arrow type of a derived column (a closed set, so that building it is a match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivedType {
    Int64,
    Int32,
    Float64,
    Float32,
    Utf8,
    Boolean,
}

impl DerivedType {
    pub fn arrow(self) -> DataType {
        match self {
            Self::Int64 => DataType::Int64,
            Self::Int32 => DataType::Int32,
            Self::Float64 => DataType::Float64,
            Self::Float32 => DataType::Float32,
            Self::Utf8 => DataType::Utf8,
            Self::Boolean => DataType::Boolean,
        }
    }
}

use PlateTable::{
    Fibermap as Fm, Plugmap as P, Redshifts as Rs, Spall as S, Zbest as Zb, Zcatalog as Zc,
};

/// The derived columns, in the order of the catalog (the SDSS-I–IV ones first, as before SDSS-V
/// entered the store; those of later surveys after them).
pub const DERIVED: [Derived; 20] = [
    fiber(
        KEY,
        DerivedType::Int64,
        "one integer per spectrum: plate*10^9 + mjd*10^4 + fiber for SDSS-I–IV, 3*10^18 + coadd*10^17 + field*10^10 + mjd*10^5 + target_index for SDSS-V, 4*10^18 + coadd file code*10^5 + target_row for DESI",
    ),
    optional(PLATE, DerivedType::Int32, "plate number (SDSS-I–IV)"),
    optional(
        MJD,
        DerivedType::Int32,
        "MJD of the plate-MJD or field-MJD (null for DESI coadds, which span nights: see MIN_MJD, MAX_MJD)",
    ),
    optional(FIBER, DerivedType::Int32, "fiber number (FIBERID; SDSS-I–IV)"),
    fiber(FILE, DerivedType::Utf8, "the store file holding the fiber"),
    fiber(NPIX, DerivedType::Int32, "pixels of the coadd"),
    fiber(
        NEXP,
        DerivedType::Int32,
        "exposures of the fiber in the store",
    ),
    table(
        RA,
        DerivedType::Float64,
        &[(S, "PLUG_RA"), (S, "RA"), (Zb, "PLUG_RA"), (P, "RA"), (Fm, "TARGET_RA")],
        "right ascension of the fiber, degrees (spall PLUG_RA, else RA, zbest PLUG_RA, plugmap RA; DESI fibermap TARGET_RA)",
    ),
    table(
        DEC,
        DerivedType::Float64,
        &[(S, "PLUG_DEC"), (S, "DEC"), (Zb, "PLUG_DEC"), (P, "DEC"), (Fm, "TARGET_DEC")],
        "declination of the fiber, degrees (as ra)",
    ),
    table(
        CLASS,
        DerivedType::Utf8,
        &[(S, "CLASS"), (Zb, "CLASS"), (Rs, "SPECTYPE"), (Zc, "SPECTYPE")],
        "spectral class: GALAXY, QSO, STAR (spall, else zbest; DESI redshifts SPECTYPE)",
    ),
    table(
        SUBCLASS,
        DerivedType::Utf8,
        &[(S, "SUBCLASS"), (Zb, "SUBCLASS"), (Rs, "SUBTYPE"), (Zc, "SUBTYPE")],
        "spectral subclass (DESI SUBTYPE)",
    ),
    table(
        Z,
        DerivedType::Float32,
        &[(S, "Z"), (Zb, "Z"), (Rs, "Z"), (Zc, "Z")],
        "redshift (DESI: redshifts Z, float64 there)",
    ),
    table(
        Z_ERR,
        DerivedType::Float32,
        &[(S, "Z_ERR"), (Zb, "Z_ERR"), (Rs, "ZERR"), (Zc, "ZERR")],
        "redshift error (DESI ZERR)",
    ),
    table(
        ZWARNING,
        DerivedType::Int32,
        &[(S, "ZWARNING"), (Zb, "ZWARNING"), (Rs, "ZWARN"), (Zc, "ZWARN")],
        "redshift warning bits (0: good; DESI ZWARN)",
    ),
    table(
        OBJTYPE,
        DerivedType::Utf8,
        &[(S, "OBJTYPE"), (Zb, "OBJTYPE"), (P, "OBJTYPE"), (Fm, "OBJTYPE")],
        "target type (DESI fibermap OBJTYPE: TGT, SKY, …)",
    ),
    table(
        SPECPRIMARY,
        DerivedType::Boolean,
        &[(S, "SPECPRIMARY"), (Zb, "SPECPRIMARY"), (Zc, "ZCAT_PRIMARY")],
        "the best spectrum of its object (DESI: zcatalog ZCAT_PRIMARY)",
    ),
    table(
        SN_MEDIAN_ALL,
        DerivedType::Float32,
        &[(S, "SN_MEDIAN_ALL"), (Zb, "SN_MEDIAN_ALL")],
        "median signal-to-noise over the spectrum",
    ),
    fiber(
        SURVEY,
        DerivedType::Utf8,
        "the survey: sdss4 (SDSS-I to IV, plates), sdss5 (SDSS-V, fields) or desi (DESI coadds)",
    ),
    optional(
        FIELDID,
        DerivedType::Int32,
        "SDSS-V field (FIELD of its spAll row; 0 for all-epoch coadds). Not named field or fieldid: SDSS-I–IV spAll FIELD and FIELDID are imaging fields and keep their names",
    ),
    optional(CATALOGID, DerivedType::Int64, "SDSS-V CATALOGID of the target"),
];

const fn fiber(name: &'static str, data_type: DerivedType, doc: &'static str) -> Derived {
    Derived {
        name,
        data_type,
        nullable: false,
        source: Source::Fiber,
        doc,
    }
}

/// A column of the spectrum's identity that only some surveys have (null for the others).
const fn optional(name: &'static str, data_type: DerivedType, doc: &'static str) -> Derived {
    Derived {
        name,
        data_type,
        nullable: true,
        source: Source::Fiber,
        doc,
    }
}

const fn table(
    name: &'static str,
    data_type: DerivedType,
    order: &'static [(PlateTable, &'static str)],
    doc: &'static str,
) -> Derived {
    Derived {
        name,
        data_type,
        nullable: true,
        source: Source::Tables(order),
        doc,
    }
}

/// spall columns a derived column of the same name (ignoring case) holds: not repeated. The others
/// that clash (RA, DEC: the photometric position; SPECPRIMARY: a byte) keep their values under a
/// prefixed name.
pub const MERGED: [&str; 10] = [
    "PLATE",
    "CATALOGID",
    "MJD",
    "CLASS",
    "SUBCLASS",
    "Z",
    "Z_ERR",
    "ZWARNING",
    "OBJTYPE",
    "SN_MEDIAN_ALL",
];

/// 64-bit identifiers that are unsigned in spec files and signed in spAll: always UInt64 in the
/// catalog (the same bits), so that a SPECOBJID matches whichever file it was read from.
pub const UNSIGNED_IDS: [&str; 1] = ["SPECOBJID"];

/// The ID columns `--ids` looks up, in this order.
pub const ID_COLUMNS: [&str; 5] = ["SPECOBJID", "THING_ID", "TARGETID", "CATALOGID", "SDSS_ID"];

/// Where a catalog column comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Derived(&'static str),
    Table(PlateTable, String),
}

impl Origin {
    /// The origin recorded in a field's metadata (None for fields this crate did not write).
    pub fn of(field: &Field) -> Option<Origin> {
        let m = field.metadata();
        let column = m.get(ORIGIN_COLUMN)?;
        match m.get(ORIGIN_TABLE)?.as_str() {
            "derived" => DERIVED
                .iter()
                .find(|d| d.name == column)
                .map(|d| Origin::Derived(d.name)),
            t => TABLES
                .into_iter()
                .find(|pt| pt.name() == t)
                .map(|pt| Origin::Table(pt, column.clone())),
        }
    }

    /// A field of this origin: metadata set, name provisional (`spall:Z`) until [`final_names`].
    pub fn field(&self, data_type: DataType, nullable: bool) -> Field {
        let (table, column) = match self {
            Origin::Derived(n) => ("derived", n.to_string()),
            Origin::Table(t, c) => (t.name(), c.clone()),
        };
        let name = match self {
            Origin::Derived(n) => n.to_string(),
            Origin::Table(t, c) => format!("{}:{c}", t.name()),
        };
        Field::new(name, data_type, nullable).with_metadata(HashMap::from([
            (ORIGIN_TABLE.to_string(), table.to_string()),
            (ORIGIN_COLUMN.to_string(), column),
        ]))
    }

    /// Derived columns first (in their order), then the tables in order of precedence.
    pub(crate) fn rank(&self) -> (usize, usize) {
        match self {
            Origin::Derived(n) => (0, DERIVED.iter().position(|d| d.name == *n).unwrap_or(0)),
            Origin::Table(t, _) => (1 + TABLES.iter().position(|x| x == t).unwrap_or(0), 0),
        }
    }
}

/// DESI table columns a derived column holds (REDSHIFTS Z; FIBERMAP OBJTYPE), and the row key
/// and TARGETID, which FIBERMAP carries once for all DESI tables.
pub const MERGED_DESI: [(PlateTable, &str); 7] = [
    (PlateTable::Redshifts, "Z"),
    (PlateTable::Fibermap, "OBJTYPE"),
    (PlateTable::Fibermap, model::desi::TARGET_ROW),
    (PlateTable::Redshifts, model::desi::TARGET_ROW),
    (PlateTable::Scores, model::desi::TARGET_ROW),
    (PlateTable::Redshifts, model::desi::TARGETID),
    (PlateTable::Scores, model::desi::TARGETID),
];

/// The columns of a DESI zcatalog the catalog carries: its own (ZCAT_NSPEC, ZCAT_PRIMARY, SV_…);
/// the others repeat the redrock REDSHIFTS and FIBERMAP columns (the derived columns take z,
/// class, … from it when a coadd has no redrock file).
fn zcatalog_own(column: &str) -> bool {
    let c = column.to_ascii_uppercase();
    c.starts_with("ZCAT_") || c.starts_with("SV_")
}

/// True for table columns the catalog does not carry because a derived column (or another table)
/// holds them.
pub fn is_merged(table: PlateTable, column: &str) -> bool {
    (table == PlateTable::Spall && MERGED.iter().any(|m| m.eq_ignore_ascii_case(column)))
        || (table == PlateTable::Zcatalog && !zcatalog_own(column))
        || MERGED_DESI
            .iter()
            .any(|(t, c)| *t == table && c.eq_ignore_ascii_case(column))
}

/// The final name of every origin (given in catalog order: derived, then the tables, each in the
/// order of its columns), unique ignoring case.
pub fn final_names(origins: &[Origin]) -> Vec<String> {
    let mut order: Vec<usize> = (0..origins.len()).collect();
    order.sort_by_key(|&i| origins[i].rank());
    let mut taken: HashSet<String> = HashSet::new();
    let mut names = vec![String::new(); origins.len()];
    for i in order {
        let mut name = match &origins[i] {
            Origin::Derived(n) => n.to_string(),
            Origin::Table(t, c) => {
                if taken.contains(&c.to_ascii_lowercase()) {
                    format!("{}_{c}", t.name().to_ascii_uppercase())
                } else {
                    c.clone()
                }
            }
        };
        // A prefixed name can itself be taken (a table with both Z and ZBEST_Z): number it.
        let base = name.clone();
        let mut n = 2;
        while taken.contains(&name.to_ascii_lowercase()) {
            name = format!("{base}_{n}");
            n += 1;
        }
        taken.insert(name.to_ascii_lowercase());
        names[i] = name;
    }
    names
}

/// The derived fields, final names, in order.
pub fn derived_fields() -> Vec<Arc<Field>> {
    DERIVED
        .iter()
        .map(|d| Arc::new(Origin::Derived(d.name).field(d.data_type.arrow(), d.nullable)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(table: PlateTable, c: &str) -> Origin {
        Origin::Table(table, c.to_string())
    }

    #[test]
    fn names_are_unique_ignoring_case_and_spall_wins() {
        let origins = vec![
            Origin::Derived(KEY),
            Origin::Derived(RA),
            t(S, "RA"),
            t(S, "THING_ID"),
            t(Zb, "THING_ID"),
            t(Zb, "RCHI2"),
            t(P, "RA"),
            t(P, "HOLETYPE"),
            t(P, "RCHI2"),
            t(S, "KEY"),
        ];
        assert_eq!(
            final_names(&origins),
            [
                "key",
                "ra",
                "SPALL_RA",
                "THING_ID",
                "ZBEST_THING_ID",
                "RCHI2",
                "PLUGMAP_RA",
                "HOLETYPE",
                "PLUGMAP_RCHI2",
                "SPALL_KEY"
            ]
        );
    }

    #[test]
    fn a_prefixed_name_that_is_taken_is_numbered() {
        let origins = vec![t(S, "Z_X"), t(S, "ZBEST_Z_X"), t(Zb, "Z_X")];
        assert_eq!(final_names(&origins), ["Z_X", "ZBEST_Z_X", "ZBEST_Z_X_2"]);
    }

    #[test]
    fn origin_survives_the_field_metadata() {
        for o in [Origin::Derived(Z), t(Zb, "Z")] {
            assert_eq!(Origin::of(&o.field(DataType::Float32, true)), Some(o));
        }
        assert_eq!(Origin::of(&Field::new("x", DataType::Int8, true)), None);
        assert!(is_merged(S, "z") && !is_merged(Zb, "Z") && !is_merged(S, "RA"));
    }
}
