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
}

/// The SDSS-I–IV coadd fields of a run of v1 records as columns, gathered in one pass over the
/// records (a pass per field would read every record once per field).
pub(crate) struct CoaddColumns {
    wave: Vec<f32>,
    flux: Vec<f32>,
    ivar: Vec<f32>,
    and_mask: Vec<i32>,
    or_mask: Vec<i32>,
    wavedisp: Vec<f32>,
    sky: Vec<f32>,
    model: Vec<f32>,
}

impl CoaddColumns {
    /// The columns of `coadds`, one after the other (`pixels` in all).
    pub(crate) fn gather<'a>(
        coadds: impl IntoIterator<Item = &'a [CoaddRecord]>,
        pixels: usize,
    ) -> Self {
        let mut c = Self {
            wave: Vec::with_capacity(pixels),
            flux: Vec::with_capacity(pixels),
            ivar: Vec::with_capacity(pixels),
            and_mask: Vec::with_capacity(pixels),
            or_mask: Vec::with_capacity(pixels),
            wavedisp: Vec::with_capacity(pixels),
            sky: Vec::with_capacity(pixels),
            model: Vec::with_capacity(pixels),
        };
        for records in coadds {
            for r in records {
                c.wave.push(r.wave);
                c.flux.push(r.flux);
                c.ivar.push(r.ivar);
                c.and_mask.push(r.and_mask);
                c.or_mask.push(r.or_mask);
                c.wavedisp.push(r.wavedisp);
                c.sky.push(r.sky);
                c.model.push(r.model);
            }
        }
        c
    }

    /// The values of field `column` (moved out; None: SDSS-I–IV coadds have no such field).
    pub(crate) fn take(&mut self, column: SpectralColumn) -> Option<ArrayRef> {
        let f32s = |v: &mut Vec<f32>| Arc::new(Float32Array::from(std::mem::take(v))) as ArrayRef;
        let i32s = |v: &mut Vec<i32>| Arc::new(Int32Array::from(std::mem::take(v))) as ArrayRef;
        Some(match column {
            SpectralColumn::Wave => f32s(&mut self.wave),
            SpectralColumn::Flux => f32s(&mut self.flux),
            SpectralColumn::Ivar => f32s(&mut self.ivar),
            SpectralColumn::AndMask => i32s(&mut self.and_mask),
            SpectralColumn::OrMask => i32s(&mut self.or_mask),
            SpectralColumn::Wavedisp => f32s(&mut self.wavedisp),
            SpectralColumn::Sky => f32s(&mut self.sky),
            SpectralColumn::Model => f32s(&mut self.model),
            SpectralColumn::Wresl => return None,
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
