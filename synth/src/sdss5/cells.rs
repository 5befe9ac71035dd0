//! Binary-table cells: a value of any shape ([`Cell`]) converted to the TFORM of the model's column
//! and packed big-endian, so that whole rows go to cfitsio in one call. The same value fits every
//! table a column appears in (a per-exposure list `"1 1"` is text in spAll and its mean, an
//! integer, in spAll-lite; an int64 CATALOGID is a decimal string in the spField plug map).

use std::borrow::Cow;

use anyhow::{ensure, Result};

use super::datamodel::{ColumnModel, HduModel};
use crate::fits::{ColData, Column};

/// The value of one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Int(i64),
    /// An unsigned 64-bit integer (stored with TZERO = 2^63).
    U64(u64),
    Real(f64),
    Text(Cow<'static, str>),
    Ints(Vec<i64>),
    Reals(Vec<f64>),
    Bools(Vec<bool>),
}

impl Cell {
    pub fn text(s: impl Into<Cow<'static, str>>) -> Self {
        Self::Text(s.into())
    }

    /// Element `k` as an integer (vectors padded with 0; text: the rounded mean of its numbers).
    fn int_at(&self, k: usize) -> i64 {
        match self {
            Self::Int(v) => *v,
            Self::U64(v) => *v as i64,
            Self::Real(v) => v.round() as i64,
            Self::Text(s) => mean(s).round() as i64,
            Self::Ints(v) => v.get(k).copied().unwrap_or(0),
            Self::Reals(v) => v.get(k).map_or(0, |x| x.round() as i64),
            Self::Bools(v) => i64::from(v.get(k).copied().unwrap_or(false)),
        }
    }

    /// Element `k` as a float.
    fn real_at(&self, k: usize) -> f64 {
        match self {
            Self::Int(v) => *v as f64,
            Self::U64(v) => *v as f64,
            Self::Real(v) => *v,
            Self::Text(s) => mean(s),
            Self::Ints(v) => v.get(k).map_or(0.0, |&x| x as f64),
            Self::Reals(v) => v.get(k).copied().unwrap_or(0.0),
            Self::Bools(v) => f64::from(u8::from(v.get(k).copied().unwrap_or(false))),
        }
    }

    fn bool_at(&self, k: usize) -> bool {
        match self {
            Self::Bools(v) => v.get(k).copied().unwrap_or(false),
            other => other.int_at(k) != 0,
        }
    }

    /// The text of a character column.
    fn to_text(&self) -> Cow<'_, str> {
        let join = |v: Vec<String>| Cow::Owned(v.join(" "));
        match self {
            Self::Text(s) => Cow::Borrowed(s.as_ref()),
            Self::Int(v) => Cow::Owned(v.to_string()),
            Self::U64(v) => Cow::Owned(v.to_string()),
            Self::Real(v) => Cow::Owned(v.to_string()),
            Self::Ints(v) => join(v.iter().map(i64::to_string).collect()),
            Self::Reals(v) => join(v.iter().map(f64::to_string).collect()),
            Self::Bools(v) => join(v.iter().map(|&b| u8::from(b).to_string()).collect()),
        }
    }
}

/// The mean of the numbers of a whitespace-separated list (0 when there are none).
fn mean(s: &str) -> f64 {
    let (sum, n) = s
        .split_whitespace()
        .filter_map(|t| t.parse::<f64>().ok())
        .fold((0.0, 0usize), |(a, n), v| (a + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// One column of a table as written: the model's column, its type letter and repeat count (for
/// text, its width).
#[derive(Debug, Clone)]
pub struct ColSpec {
    pub model: &'static ColumnModel,
    pub code: char,
    pub repeat: usize,
}

impl ColSpec {
    fn bytes(&self) -> usize {
        self.repeat
            * match self.code {
                'A' | 'L' | 'B' => 1,
                'I' => 2,
                'J' | 'E' => 4,
                _ => 8,
            }
    }

    /// Appends the packed cell (big-endian, FITS binary-table layout).
    pub fn pack(&self, cell: &Cell, out: &mut Vec<u8>) {
        let n = self.repeat;
        match self.code {
            'A' => {
                let text = cell.to_text();
                let bytes = truncate(&text, n).as_bytes();
                out.extend_from_slice(bytes);
                out.resize(out.len() + n - bytes.len(), b' ');
            }
            'L' => (0..n).for_each(|k| out.push(if cell.bool_at(k) { b'T' } else { b'F' })),
            'B' => (0..n).for_each(|k| out.push(cell.int_at(k).clamp(0, 255) as u8)),
            'I' => (0..n).for_each(|k| {
                let v = cell
                    .int_at(k)
                    .clamp(i64::from(i16::MIN), i64::from(i16::MAX));
                out.extend_from_slice(&(v as i16).to_be_bytes());
            }),
            'J' => (0..n).for_each(|k| {
                let v = cell
                    .int_at(k)
                    .clamp(i64::from(i32::MIN), i64::from(i32::MAX));
                out.extend_from_slice(&(v as i32).to_be_bytes());
            }),
            'K' if self.model.unsigned => (0..n).for_each(|k| {
                let v = match cell {
                    Cell::U64(v) => *v,
                    other => other.int_at(k).max(0) as u64,
                };
                out.extend_from_slice(&((v ^ (1 << 63)) as i64).to_be_bytes());
            }),
            'K' => (0..n).for_each(|k| out.extend_from_slice(&cell.int_at(k).to_be_bytes())),
            'E' => {
                (0..n).for_each(|k| out.extend_from_slice(&(cell.real_at(k) as f32).to_be_bytes()))
            }
            _ => (0..n).for_each(|k| out.extend_from_slice(&cell.real_at(k).to_be_bytes())),
        }
    }
}

/// The longest prefix of `s` of at most `width` bytes that ends on a character boundary.
fn truncate(s: &str, width: usize) -> &str {
    if s.len() <= width {
        return s;
    }
    let mut end = width;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The columns of a model table, with text columns at least `min_width(name)` wide (the pipeline
/// sizes them to their content: the all-epoch spec names are longer than the example's).
#[derive(Debug, Clone)]
pub struct Layout {
    pub columns: Vec<ColSpec>,
    pub row_bytes: usize,
}

impl Layout {
    pub fn new(hdu: &'static HduModel, min_width: impl Fn(&str) -> usize) -> Result<Self> {
        ensure!(
            !hdu.image,
            "HDU {} of the data model is an image",
            hdu.label()
        );
        let columns = hdu
            .columns
            .iter()
            .map(|m| {
                let (code, mut repeat) = m.shape()?;
                if code == 'A' {
                    repeat = repeat.max(min_width(&m.name));
                }
                Ok(ColSpec {
                    model: m,
                    code,
                    repeat,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        ensure!(!columns.is_empty(), "table {} has no columns", hdu.label());
        let row_bytes = columns.iter().map(ColSpec::bytes).sum();
        Ok(Self { columns, row_bytes })
    }

    /// The columns as cfitsio creates them (names, TFORMs, TUNITs; no data).
    pub fn fits_columns(&self) -> Vec<Column> {
        self.columns
            .iter()
            .map(|c| Column {
                name: c.model.name.clone(),
                tform: match (c.code, c.model.unsigned) {
                    ('K', true) => "W".to_string(),
                    ('A', _) => format!("{}A", c.repeat),
                    _ => c.model.tform.clone(),
                },
                unit: c.model.unit.as_deref(),
                data: ColData::U8(Vec::new()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, tform: &str, unsigned: bool) -> ColSpec {
        let model = Box::leak(Box::new(ColumnModel {
            name: name.into(),
            tform: tform.into(),
            unit: None,
            unsigned,
        }));
        let (code, repeat) = model.shape().unwrap();
        ColSpec {
            model,
            code,
            repeat,
        }
    }

    #[test]
    fn cells_convert_to_every_form() {
        let mut out = Vec::new();
        spec("A", "6A", false).pack(&Cell::Int(27), &mut out);
        assert_eq!(out, b"27    ");
        out.clear();
        spec("M", "E", false).pack(&Cell::text("45.5 46.5"), &mut out);
        assert_eq!(out, 46f32.to_be_bytes());
        out.clear();
        spec("F", "3L", false).pack(&Cell::Bools(vec![true, false]), &mut out);
        assert_eq!(out, b"TFF");
        out.clear();
        spec("S", "K", true).pack(&Cell::U64(1 << 63), &mut out);
        assert_eq!(out, 0i64.to_be_bytes());
        out.clear();
        spec("N", "I", false).pack(&Cell::Int(70_000), &mut out);
        assert_eq!(out, i16::MAX.to_be_bytes());
        out.clear();
        spec("V", "2D", false).pack(&Cell::Real(1.5), &mut out);
        assert_eq!(out.len(), 16);
    }
}
