//! The fixed compound records of the store: one coadd pixel and one exposure pixel (H5Boss v1).

use hdf5::types::{CompoundField, CompoundType, FloatSize, IntSize, TypeDescriptor};
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

/// The fields of a coadd record in store order, and whether each is an integer (the masks): the
/// names of the v1 compound fields and of the v2 arrays.
pub const COADD_FIELDS: [(&str, bool); 8] = [
    ("WAVE", false),
    ("FLUX", false),
    ("IVAR", false),
    ("AND_MASK", true),
    ("OR_MASK", true),
    ("WAVEDISP", false),
    ("SKY", false),
    ("MODEL", false),
];

impl CoaddRecord {
    /// The eight fields as raw 4-byte values, in [`COADD_FIELDS`] order.
    pub fn to_bits(&self) -> [u32; 8] {
        [
            self.wave.to_bits(),
            self.flux.to_bits(),
            self.ivar.to_bits(),
            self.and_mask as u32,
            self.or_mask as u32,
            self.wavedisp.to_bits(),
            self.sky.to_bits(),
            self.model.to_bits(),
        ]
    }

    /// The inverse of [`CoaddRecord::to_bits`].
    pub fn from_bits(b: [u32; 8]) -> Self {
        Self {
            wave: f32::from_bits(b[0]),
            flux: f32::from_bits(b[1]),
            ivar: f32::from_bits(b[2]),
            and_mask: b[3] as i32,
            or_mask: b[4] as i32,
            wavedisp: f32::from_bits(b[5]),
            sky: f32::from_bits(b[6]),
            model: f32::from_bits(b[7]),
        }
    }
}

/// A field of an exposure dataset (`.../exposures/<EXPID>/<b|r>`), in store order. A dataset holds
/// the fields its FITS HDU has: SDSS-I/II exposures have no `x` column, so their datasets have no X.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExposureField {
    Wave,
    Flux,
    Ivar,
    Mask,
    Wavedisp,
    Sky,
    X,
    Calib,
}

impl ExposureField {
    /// Every field, in store order.
    pub const ALL: [Self; 8] = [
        Self::Wave,
        Self::Flux,
        Self::Ivar,
        Self::Mask,
        Self::Wavedisp,
        Self::Sky,
        Self::X,
        Self::Calib,
    ];

    /// Field name in the store (upper case).
    pub fn name(self) -> &'static str {
        match self {
            Self::Wave => "WAVE",
            Self::Flux => "FLUX",
            Self::Ivar => "IVAR",
            Self::Mask => "MASK",
            Self::Wavedisp => "WAVEDISP",
            Self::Sky => "SKY",
            Self::X => "X",
            Self::Calib => "CALIB",
        }
    }

    /// True for the integer field (MASK); the others are float32.
    pub fn is_int(self) -> bool {
        self == Self::Mask
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Which [`ExposureField`]s an exposure dataset has (a bit per field).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct FieldSet(pub u8);

impl FieldSet {
    /// All eight fields (BOSS/eBOSS exposures).
    pub const ALL: FieldSet = FieldSet(0xff);

    pub fn contains(self, f: ExposureField) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn with(self, f: ExposureField) -> Self {
        Self(self.0 | f.bit())
    }

    /// The fields present, in store order.
    pub fn fields(self) -> impl Iterator<Item = ExposureField> {
        ExposureField::ALL
            .into_iter()
            .filter(move |f| self.contains(*f))
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Bytes of one record (4 per field).
    pub fn record_size(self) -> usize {
        4 * self.len()
    }

    /// The packed compound type of one record with these fields.
    pub fn descriptor(self) -> TypeDescriptor {
        let fields = self
            .fields()
            .enumerate()
            .map(|(index, f)| CompoundField {
                name: f.name().to_string(),
                ty: if f.is_int() {
                    TypeDescriptor::Integer(IntSize::U4)
                } else {
                    TypeDescriptor::Float(FloatSize::U4)
                },
                offset: 4 * index,
                index,
            })
            .collect();
        TypeDescriptor::Compound(CompoundType {
            fields,
            size: self.record_size(),
        })
    }

    /// The field set of a compound type, if it is exactly an exposure record of some fields.
    pub fn from_descriptor(d: &TypeDescriptor) -> Option<Self> {
        let TypeDescriptor::Compound(c) = d else {
            return None;
        };
        let mut set = FieldSet(0);
        for f in &c.fields {
            set = set.with(
                ExposureField::ALL
                    .into_iter()
                    .find(|e| e.name() == f.name)?,
            );
        }
        (set.descriptor() == *d).then_some(set)
    }
}

/// The pixels of one exposure of one camera: one column of raw 4-byte values per field present
/// (float32 bits, or int32 for MASK), all of the same length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExposureColumns {
    pub fields: FieldSet,
    pub columns: Vec<Vec<u32>>,
}

impl ExposureColumns {
    /// Number of pixels.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column of a field, if present.
    pub fn column(&self, f: ExposureField) -> Option<&[u32]> {
        self.fields
            .fields()
            .position(|g| g == f)
            .map(|i| self.columns[i].as_slice())
    }

    /// The records packed as in the store (native endian, 4 bytes per field).
    pub fn packed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() * self.fields.record_size());
        for i in 0..self.len() {
            for c in &self.columns {
                out.extend_from_slice(&c[i].to_ne_bytes());
            }
        }
        out
    }

    /// Reads packed records back into columns.
    pub fn from_packed(fields: FieldSet, bytes: &[u8]) -> Self {
        let n = fields.len();
        let mut columns = vec![Vec::with_capacity(bytes.len() / fields.record_size().max(1)); n];
        for rec in bytes.chunks_exact(4 * n.max(1)) {
            for (c, v) in columns.iter_mut().zip(rec.chunks_exact(4)) {
                c.push(u32::from_ne_bytes(v.try_into().expect("4 bytes")));
            }
        }
        Self { fields, columns }
    }
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
        assert_eq!(FieldSet::ALL.record_size(), 32);
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
    fn exposure_field_sets_round_trip_through_types() {
        let legacy = FieldSet::ALL.0 & !(1 << ExposureField::X as u8);
        let legacy = FieldSet(legacy);
        assert_eq!(legacy.len(), 7);
        assert!(!legacy.contains(ExposureField::X));
        let names: Vec<_> = legacy.fields().map(ExposureField::name).collect();
        assert_eq!(
            names,
            ["WAVE", "FLUX", "IVAR", "MASK", "WAVEDISP", "SKY", "CALIB"]
        );
        assert_eq!(
            FieldSet::from_descriptor(&legacy.descriptor()),
            Some(legacy)
        );
        assert_eq!(
            FieldSet::from_descriptor(&CoaddRecord::type_descriptor()),
            None,
            "a coadd is not an exposure record"
        );
        let cols = ExposureColumns {
            fields: legacy,
            columns: (0..7).map(|f| vec![f, 10 + f]).collect(),
        };
        assert_eq!(ExposureColumns::from_packed(legacy, &cols.packed()), cols);
        assert_eq!(cols.column(ExposureField::Calib), Some(&[6u32, 16][..]));
    }

    #[test]
    fn wave_is_float32_of_double_power() {
        assert_eq!(wave_from_loglam(3.5528), 10f64.powf(3.5528) as f32);
        assert!((wave_from_loglam(4.0) - 10000.0).abs() < 1e-3);
    }
}
