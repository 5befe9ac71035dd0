//! The SDSS DR19 data model as boss-synth embeds it (`datamodel.json`, generated from
//! formats/sdss-v/*.yaml — the SDSS data model, BSD-3-Clause — by scripts/sdss5-datamodel.py):
//! per file kind the HDUs in order with EXTNAME, image BITPIX, header cards and table columns.

use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

use crate::fits::Value;

const JSON: &str = include_str!("datamodel.json");

/// The whole model.
#[derive(Debug, Deserialize)]
pub struct DataModel {
    /// Where it comes from (the SDSS data model, BSD-3-Clause).
    pub source: String,
    pub release: String,
    pub files: Files,
}

/// The file kinds boss-synth writes.
#[derive(Debug, Deserialize)]
pub struct Files {
    #[serde(rename = "specFull")]
    pub spec_full: FileModel,
    #[serde(rename = "specLite")]
    pub spec_lite: FileModel,
    #[serde(rename = "spField")]
    pub spfield: FileModel,
    #[serde(rename = "spZbest")]
    pub spzbest: FileModel,
    #[serde(rename = "spZline")]
    pub spzline: FileModel,
    #[serde(rename = "spAll")]
    pub spall: FileModel,
    #[serde(rename = "spAllLite")]
    pub spall_lite: FileModel,
}

/// One file kind: its path template, the fixed HDUs and (spec files) the exposure HDUs of the
/// model's example, in order.
#[derive(Debug, Deserialize)]
pub struct FileModel {
    pub template: String,
    pub example: String,
    pub hdus: Vec<HduModel>,
    #[serde(default)]
    pub exposures: Vec<HduModel>,
}

/// One HDU.
#[derive(Debug, Deserialize)]
pub struct HduModel {
    /// EXTNAME (`PRIMARY` for HDU 0; None where the model's HDU has none).
    pub extname: Option<String>,
    pub image: bool,
    #[serde(default)]
    pub description: String,
    /// BITPIX and NAXIS of images.
    pub bitpix: Option<i32>,
    pub naxis: Option<i32>,
    /// Header cards in order, structural keywords left out.
    pub cards: Vec<CardModel>,
    #[serde(default)]
    pub columns: Vec<ColumnModel>,
}

/// One header card of the model: key, example value (with its YAML type) and comment.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "(String, String, serde_json::Value, String)")]
pub struct CardModel {
    pub key: String,
    pub value: ModelValue,
    pub comment: String,
}

/// The example value of a card.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Commentary (COMMENT, HISTORY, blank keyword): its text.
    Text(String),
}

impl ModelValue {
    /// As a header value of the writer.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Str(s) => Value::Str(s.clone()),
            Self::Int(v) => Value::Int(*v),
            Self::Float(v) => Value::Real(*v),
            Self::Bool(v) => Value::Bool(*v),
            Self::Text(s) => Value::Text(s.clone()),
        }
    }
}

impl TryFrom<(String, String, serde_json::Value, String)> for CardModel {
    type Error = String;

    fn try_from(
        (key, ty, value, comment): (String, String, serde_json::Value, String),
    ) -> Result<Self, String> {
        let bad = || format!("card {key}: {ty} value {value}");
        let value = match ty.as_str() {
            "str" => ModelValue::Str(value.as_str().ok_or_else(bad)?.to_string()),
            "text" => ModelValue::Text(value.as_str().ok_or_else(bad)?.to_string()),
            "int" => ModelValue::Int(value.as_i64().ok_or_else(bad)?),
            "float" => ModelValue::Float(value.as_f64().ok_or_else(bad)?),
            "bool" => ModelValue::Bool(value.as_bool().ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        Ok(Self {
            key,
            value,
            comment,
        })
    }
}

/// One table column: name, FITS TFORM and TUNIT; `unsigned` for int64 columns stored with
/// TZERO = 2^63 (cfitsio's TFORM `W`).
#[derive(Debug, Clone, Deserialize)]
pub struct ColumnModel {
    pub name: String,
    pub tform: String,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub unsigned: bool,
}

impl ColumnModel {
    /// The TFORM's data type letter and repeat count (`5E` → ('E', 5); `18A` → ('A', 18)).
    pub fn shape(&self) -> Result<(char, usize)> {
        let digits: String = self
            .tform
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let rest = &self.tform[digits.len()..];
        let code = rest
            .chars()
            .next()
            .filter(|c| "LBIJKEDA".contains(*c) && rest.len() == 1)
            .ok_or_else(|| anyhow!("column {}: unknown TFORM {}", self.name, self.tform))?;
        let repeat = if digits.is_empty() {
            1
        } else {
            digits.parse()?
        };
        Ok((code, repeat))
    }
}

impl HduModel {
    /// The EXTNAME to write: none for the primary HDU and for HDUs the model names none.
    pub fn extname(&self) -> Option<&str> {
        self.extname.as_deref().filter(|n| *n != "PRIMARY")
    }

    /// A label for error messages.
    pub fn label(&self) -> &str {
        self.extname.as_deref().unwrap_or("(no EXTNAME)")
    }
}

/// The embedded model, parsed once.
pub fn model() -> Result<&'static DataModel> {
    static MODEL: OnceLock<Result<DataModel, String>> = OnceLock::new();
    MODEL
        .get_or_init(|| serde_json::from_str(JSON).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| anyhow!("the embedded SDSS-V data model does not parse: {e}"))
}

/// The HDU of `file` at `index`, which must be a table (or an image) as expected.
pub fn hdu(file: &FileModel, index: usize, image: bool) -> Result<&HduModel> {
    let Some(h) = file.hdus.get(index) else {
        bail!("the data model has no HDU {index} in {}", file.template);
    };
    if h.image != image {
        bail!(
            "the data model's HDU {index} ({}) of {} is {}",
            h.label(),
            file.template,
            if h.image { "an image" } else { "a table" }
        );
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_parses_and_has_every_file() {
        let m = model().unwrap();
        assert!(m.source.contains("BSD 3-Clause"));
        let f = &m.files;
        let names: Vec<_> = f.spec_full.hdus.iter().map(|h| h.label()).collect();
        assert_eq!(names, ["PRIMARY", "COADD", "SPALL", "ZALL", "ZLINE"]);
        assert_eq!(f.spec_full.exposures.len(), 8);
        assert_eq!(f.spec_lite.hdus.len(), 5);
        assert_eq!(f.spfield.hdus.len(), 8);
        assert_eq!(f.spzbest.hdus.len(), 4);
        assert_eq!(f.spzline.hdus.len(), 3);
        assert_eq!(f.spall.hdus[1].columns.len(), 144);
        assert_eq!(f.spall_lite.hdus[1].columns.len(), 122);
        let spec_obj = f.spzbest.hdus[1]
            .columns
            .iter()
            .find(|c| c.name == "SPECOBJID")
            .unwrap();
        assert!(spec_obj.unsigned && spec_obj.tform == "K");
        for file in [&f.spec_full, &f.spfield, &f.spzbest, &f.spzline, &f.spall] {
            for h in file.hdus.iter().chain(&file.exposures) {
                for c in &h.columns {
                    c.shape().unwrap();
                }
            }
        }
    }
}
