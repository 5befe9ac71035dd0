//! The fixed compound records of the store: one coadd pixel and one exposure pixel (H5Boss v1).

use hdf5::H5Type;

/// One pixel of a coadded spectrum, as stored in `/<PLATE>/<MJD>/<FIBER>/coadd` (32 bytes).
#[derive(H5Type, Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct CoaddRecord {
    #[hdf5(rename = "WAVE")]
    pub wave: f32,
    #[hdf5(rename = "FLUX")]
    pub flux: f32,
    #[hdf5(rename = "IVAR")]
    pub ivar: f32,
    #[hdf5(rename = "AND_MASK")]
    pub and_mask: i32,
    #[hdf5(rename = "OR_MASK")]
    pub or_mask: i32,
    #[hdf5(rename = "WAVEDISP")]
    pub wavedisp: f32,
    #[hdf5(rename = "SKY")]
    pub sky: f32,
    #[hdf5(rename = "MODEL")]
    pub model: f32,
}

/// One pixel of one exposure on one camera, as stored in `.../exposures/<EXPID>/<b|r>` (32 bytes).
#[derive(H5Type, Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct ExposureRecord {
    #[hdf5(rename = "WAVE")]
    pub wave: f32,
    #[hdf5(rename = "FLUX")]
    pub flux: f32,
    #[hdf5(rename = "IVAR")]
    pub ivar: f32,
    #[hdf5(rename = "MASK")]
    pub mask: i32,
    #[hdf5(rename = "WAVEDISP")]
    pub wavedisp: f32,
    #[hdf5(rename = "SKY")]
    pub sky: f32,
    #[hdf5(rename = "X")]
    pub x: f32,
    #[hdf5(rename = "CALIB")]
    pub calib: f32,
}

/// Unit of the wavelength field.
pub const WAVE_UNIT: &str = "Angstrom";
/// Unit of flux-like fields when the FITS header has no BUNIT.
pub const DEFAULT_FLUX_UNIT: &str = "1e-17 erg/s/cm^2/Angstrom";

/// Units of the coadd fields, given the flux unit (BUNIT) of the source: `(field, unit)`.
pub fn coadd_units(flux_unit: &str) -> Vec<(&'static str, String)> {
    vec![
        ("WAVE", WAVE_UNIT.to_string()),
        ("FLUX", flux_unit.to_string()),
        ("IVAR", format!("1/({flux_unit})^2")),
        ("WAVEDISP", "pixel".to_string()),
        ("SKY", flux_unit.to_string()),
        ("MODEL", flux_unit.to_string()),
    ]
}

/// Vacuum wavelength in Å of a log10 wavelength, computed in double precision then rounded to f32.
pub fn wave_from_loglam(loglam: f64) -> f32 {
    10f64.powf(loglam) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_32_bytes_with_h5boss_field_names() {
        assert_eq!(std::mem::size_of::<CoaddRecord>(), 32);
        assert_eq!(std::mem::size_of::<ExposureRecord>(), 32);
        let hdf5::types::TypeDescriptor::Compound(c) = CoaddRecord::type_descriptor() else {
            panic!("coadd record is not a compound")
        };
        let names: Vec<_> = c.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["WAVE", "FLUX", "IVAR", "AND_MASK", "OR_MASK", "WAVEDISP", "SKY", "MODEL"]
        );
    }

    #[test]
    fn wave_is_float32_of_double_power() {
        assert_eq!(wave_from_loglam(3.5528), 10f64.powf(3.5528) as f32);
        assert!((wave_from_loglam(4.0) - 10000.0).abs() < 1e-3);
    }
}
