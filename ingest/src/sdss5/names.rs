//! Every FITS name the SDSS-V ingest reads — HDU names, header keys, column names — in one place
//! (the DR19 data model, formats/sdss-v/).

/// spec files (specFull / specLite): HDU names in order; exposures follow (full files only).
pub mod spec {
    pub const COADD: (&str, usize) = ("COADD", 1);
    pub const SPALL: (&str, usize) = ("SPALL", 2);
    pub const ZALL: (&str, usize) = ("ZALL", 3);
    pub const ZLINE: (&str, usize) = ("ZLINE", 4);
    /// First per-exposure HDU (`MJD_EXP_<MJD>-<nn>`).
    pub const FIRST_EXPOSURE: usize = 5;
    pub const EXPOSURE_PREFIX: &str = "MJD_EXP_";
}

/// spField files: the coadd images of every target of a field-MJD, and its plug map.
pub mod spfield {
    /// HDU0 (primary) is the FLUX image.
    pub const IVAR: (&str, usize) = ("IVAR", 1);
    pub const ANDMASK: (&str, usize) = ("ANDMASK", 2);
    pub const ORMASK: (&str, usize) = ("ORMASK", 3);
    pub const WAVEDISP: (&str, usize) = ("WAVEDISP", 4);
    pub const PLUGMAP: (&str, usize) = ("PLUGMAP", 5);
    pub const SKY: (&str, usize) = ("SKY", 6);
    pub const SPECRESL: (&str, usize) = ("SPECRESL", 7);
}

/// spZbest: HDU1 the redshift table (one row per target), HDU2 the best-fit model image.
pub const ZBEST_TABLE: usize = 1;
pub const ZBEST_MODEL: usize = 2;
/// spZline and spAll: HDU1 the table.
pub const TABLE: usize = 1;

/// Header keywords.
pub mod key {
    pub const FIELDID: &str = "FIELDID";
    pub const MJD: &str = "MJD";
    pub const RUN2D: &str = "RUN2D";
    pub const VERS2D: &str = "VERS2D";
    pub const COEFF0: &str = "COEFF0";
    pub const COEFF1: &str = "COEFF1";
    pub const BUNIT: &str = "BUNIT";
    /// The exposure number of a `MJD_EXP_` HDU.
    pub const EXPOSURE: &str = "EXPOSURE";
}

/// Table columns (matched case-insensitively).
pub mod col {
    pub const FIELD: &str = "FIELD";
    pub const MJD: &str = "MJD";
    pub const TARGET_INDEX: &str = "TARGET_INDEX";
    pub const CATALOGID: &str = "CATALOGID";
    /// spField PLUGMAP: the CATALOGID as an integer (its CATALOGID column is a string).
    pub const ICATALOGID: &str = "ICATALOGID";
    pub const SPECOBJID: &str = "SPECOBJID";
    pub const LOGLAM: &str = "LOGLAM";
    pub const WDISP: &str = "WDISP";
    pub const LINENAME: &str = "LINENAME";
}

/// The store's names of per-pixel columns: LOGLAM becomes WAVE (Å), WDISP WAVEDISP (as in the
/// SDSS-I–IV layouts); the others keep their FITS names.
pub mod store {
    pub const WAVE: &str = "WAVE";
    pub const WAVEDISP: &str = "WAVEDISP";
    pub const FLUX: &str = "FLUX";
    pub const IVAR: &str = "IVAR";
    pub const AND_MASK: &str = "AND_MASK";
    pub const OR_MASK: &str = "OR_MASK";
    pub const SKY: &str = "SKY";
    pub const MODEL: &str = "MODEL";
    pub const WRESL: &str = "WRESL";
}
