//! The spectral columns of the export: which coadd fields there are (SDSS's `wave`, `flux`, …,
//! DESI's per-arm `b_wave`, `b_flux`, …), their names, item types and the store arrays they come from.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int32Array};
use arrow::datatypes::{DataType, Field};
use store::CoaddRecord;

/// The coadd fields that can be exported, in the order of the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpectralColumn {
    Wave,
    Flux,
    Ivar,
    AndMask,
    OrMask,
    Wavedisp,
    Sky,
    Model,
    /// SDSS-V: the wavelength resolution (Å) of each pixel.
    Wresl,
}

impl SpectralColumn {
    pub const ALL: [SpectralColumn; 9] = [
        Self::Wave,
        Self::Flux,
        Self::Ivar,
        Self::AndMask,
        Self::OrMask,
        Self::Wavedisp,
        Self::Sky,
        Self::Model,
        Self::Wresl,
    ];

    /// Column name in the export.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wave => "wave",
            Self::Flux => "flux",
            Self::Ivar => "ivar",
            Self::AndMask => "and_mask",
            Self::OrMask => "or_mask",
            Self::Wavedisp => "wavedisp",
            Self::Sky => "sky",
            Self::Model => "model",
            Self::Wresl => "wresl",
        }
    }

    /// The array of the store's merged layout holding this field.
    pub(crate) fn store_name(self) -> &'static str {
        match self {
            Self::Wave => "WAVE",
            Self::Flux => "FLUX",
            Self::Ivar => "IVAR",
            Self::AndMask => "AND_MASK",
            Self::OrMask => "OR_MASK",
            Self::Wavedisp => "WAVEDISP",
            Self::Sky => "SKY",
            Self::Model => "MODEL",
            Self::Wresl => "WRESL",
        }
    }

    /// True for columns only some surveys have (null for the others).
    pub(crate) fn optional(self) -> bool {
        self == Self::Wresl
    }

    pub(crate) fn item_type(self) -> DataType {
        match self {
            Self::AndMask | Self::OrMask => DataType::Int32,
            _ => DataType::Float32,
        }
    }

    pub(crate) fn field(self) -> Field {
        list_field(self.name(), self.item_type(), self.optional())
    }

    /// The values of this field for a run of pixels (None: SDSS-I–IV coadds have no such field).
    pub(crate) fn array(self, records: &[CoaddRecord]) -> Option<ArrayRef> {
        let f32s = |get: fn(&CoaddRecord) -> f32| {
            Arc::new(Float32Array::from_iter_values(records.iter().map(get))) as ArrayRef
        };
        let i32s = |get: fn(&CoaddRecord) -> i32| {
            Arc::new(Int32Array::from_iter_values(records.iter().map(get))) as ArrayRef
        };
        Some(match self {
            Self::Wave => f32s(|r| r.wave),
            Self::Flux => f32s(|r| r.flux),
            Self::Ivar => f32s(|r| r.ivar),
            Self::AndMask => i32s(|r| r.and_mask),
            Self::OrMask => i32s(|r| r.or_mask),
            Self::Wavedisp => f32s(|r| r.wavedisp),
            Self::Sky => f32s(|r| r.sky),
            Self::Model => f32s(|r| r.model),
            Self::Wresl => return None,
        })
    }
}

pub(crate) fn list_field(name: &str, item: DataType, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new_list_field(item, false))),
        nullable,
    )
}

/// DESI's per-arm list columns: `<arm>_<name>` from the store array, of this item type.
pub(crate) const ARM_COLUMNS: [(&str, &str, DataType); 4] = [
    ("wave", "WAVELENGTH", DataType::Float64),
    ("flux", "FLUX", DataType::Float32),
    ("ivar", "IVAR", DataType::Float32),
    ("mask", "MASK", DataType::Int32),
];

pub(crate) fn arm_fields() -> Vec<Field> {
    model::desi::ARMS
        .iter()
        .flat_map(|arm| {
            ARM_COLUMNS
                .iter()
                .map(move |(n, _, t)| list_field(&format!("{arm}_{n}"), t.clone(), true))
        })
        .collect()
}
