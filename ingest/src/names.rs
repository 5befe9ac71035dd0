//! Every FITS name the ingest reads — HDU names, header keys, column names — in one place.

/// HDU names and positions (position is used when a file names no extension).
pub mod hdu {
    pub const IVAR: (&str, usize) = ("IVAR", 1);
    pub const ANDMASK: (&str, usize) = ("ANDMASK", 2);
    pub const ORMASK: (&str, usize) = ("ORMASK", 3);
    pub const WAVEDISP: (&str, usize) = ("WAVEDISP", 4);
    pub const PLUGMAP: (&str, usize) = ("PLUGMAP", 5);
    pub const SKY: (&str, usize) = ("SKY", 6);
    pub const COADD: (&str, usize) = ("COADD", 1);
    /// HDU2 of spec files is SPALL (BOSS/eBOSS) or SPECOBJ (SDSS-I/II).
    pub const SPALL: (&str, usize) = ("SPALL", 2);
    pub const SPECOBJ: (&str, usize) = ("SPECOBJ", 2);
    pub const SPZLINE: (&str, usize) = ("SPZLINE", 3);
    /// First per-exposure HDU of a full spec file.
    pub const FIRST_EXPOSURE: usize = 4;
    /// spZbest: the redshift table and the best-fit model image.
    pub const ZBEST_TABLE: usize = 1;
    pub const ZBEST_MODEL: usize = 2;
    /// spZline, spAll: the table.
    pub const TABLE: usize = 1;
}

/// Header keywords.
pub mod key {
    pub const PLATEID: &str = "PLATEID";
    pub const MJD: &str = "MJD";
    pub const FIBERID: &str = "FIBERID";
    pub const COEFF0: &str = "COEFF0";
    pub const COEFF1: &str = "COEFF1";
    pub const BUNIT: &str = "BUNIT";
}

/// Table columns (matched case-insensitively).
pub mod col {
    pub const FLUX: &str = "FLUX";
    pub const LOGLAM: &str = "LOGLAM";
    pub const IVAR: &str = "IVAR";
    pub const AND_MASK: &str = "AND_MASK";
    pub const OR_MASK: &str = "OR_MASK";
    pub const WDISP: &str = "WDISP";
    pub const SKY: &str = "SKY";
    pub const MODEL: &str = "MODEL";
    pub const MASK: &str = "MASK";
    pub const CALIB: &str = "CALIB";
    pub const X: &str = "X";
    pub const PLATE: &str = "PLATE";
    pub const MJD: &str = "MJD";
    pub const FIBERID: &str = "FIBERID";
}
