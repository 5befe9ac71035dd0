//! Object ID lists (`--ids FILE`): a header naming SPECOBJID, THING_ID or TARGETID, then one ID per
//! line. IDs are matched by their bits in the catalog column's type, so a SPECOBJID read as unsigned
//! from a spec file and as signed from spAll is the same object.

use std::path::Path;

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use model::message::excerpt;
use model::table_text::{read_text, records};

use crate::columns::ID_COLUMNS;
use crate::error::CatalogError;

/// The IDs of a list, in the type of the catalog column they are matched against.
#[derive(Debug, Clone)]
pub struct IdList {
    /// The catalog column (upper case, as in the header's choice).
    pub column: String,
    pub values: Vec<ScalarValue>,
    /// Lines naming an ID already listed.
    pub duplicates: usize,
}

/// Reads an ID list; `column_type` says the type of a catalog column (None when the catalog has no
/// such column). The first header column that names an ID column of the catalog is used.
pub fn read_ids(
    path: &Path,
    column_type: impl Fn(&str) -> Option<DataType>,
) -> Result<IdList, CatalogError> {
    let input = CatalogError::Input;
    let (name, text) = read_text(path).map_err(|e| input(e.to_string()))?;
    let recs = records(&text, &name).map_err(|e| input(e.to_string()))?;
    let Some(((_, _, header), body)) = recs.split_first() else {
        return Err(input(format!("{name}: the ID list is empty")));
    };
    let named: Vec<(usize, &str)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| {
            ID_COLUMNS
                .iter()
                .find(|c| c.eq_ignore_ascii_case(h))
                .map(|c| (i, *c))
        })
        .collect();
    if named.is_empty() {
        return Err(input(format!(
            "{name}: line 1: the header names no ID column ({}); it has {}",
            ID_COLUMNS.join(", "),
            excerpt(&header.join(", "))
        )));
    }
    let Some((col, column, ty)) = named
        .iter()
        .find_map(|&(i, c)| column_type(c).map(|t| (i, c, t)))
    else {
        let asked: Vec<&str> = named.iter().map(|n| n.1).collect();
        let has: Vec<&str> = ID_COLUMNS
            .iter()
            .copied()
            .filter(|c| column_type(c).is_some())
            .collect();
        return Err(input(format!(
            "{name}: the catalog has no {} column (it has {})",
            asked.join(" or "),
            if has.is_empty() {
                "no ID column".to_string()
            } else {
                has.join(", ")
            }
        )));
    };
    let mut seen = std::collections::HashSet::new();
    let mut list = IdList {
        column: column.to_string(),
        values: Vec::new(),
        duplicates: 0,
    };
    for (line, text, fields) in body {
        let raw = fields.get(col).map(|s| s.trim()).unwrap_or("");
        let value = raw
            .strip_prefix('+')
            .unwrap_or(raw)
            .parse::<i128>()
            .map_err(|_| {
                input(format!(
                    "{name}: line {line}: {column} {} is not an integer: {}",
                    excerpt(raw),
                    excerpt(text)
                ))
            })?;
        let v = as_type(value, &ty).ok_or_else(|| {
            input(format!(
                "{name}: line {line}: {column} {value} does not fit the catalog's {ty} column: {}",
                excerpt(text)
            ))
        })?;
        if seen.insert(value_bits(&v)) {
            list.values.push(v);
        } else {
            list.duplicates += 1;
        }
    }
    if list.values.is_empty() {
        return Err(input(format!(
            "{name}: the ID list has no IDs after its header"
        )));
    }
    Ok(list)
}

/// An ID in the column's type: 64-bit IDs by their bits (a value above i64::MAX is the unsigned
/// reading of a negative signed one, and back), narrower ones only if they fit.
fn as_type(v: i128, ty: &DataType) -> Option<ScalarValue> {
    let bits64 = || -> Option<u64> {
        if v < 0 {
            i64::try_from(v).ok().map(|x| x as u64)
        } else {
            u64::try_from(v).ok()
        }
    };
    Some(match ty {
        DataType::UInt64 => ScalarValue::UInt64(Some(bits64()?)),
        DataType::Int64 => ScalarValue::Int64(Some(bits64()? as i64)),
        DataType::Int32 => ScalarValue::Int32(Some(i32::try_from(v).ok()?)),
        DataType::UInt32 => ScalarValue::UInt32(Some(u32::try_from(v).ok()?)),
        DataType::Int16 => ScalarValue::Int16(Some(i16::try_from(v).ok()?)),
        DataType::Utf8 => ScalarValue::Utf8(Some(v.to_string())),
        _ => return None,
    })
}

fn value_bits(v: &ScalarValue) -> String {
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_by_bits_and_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.csv");
        let types = |c: &str| match c {
            "SPECOBJID" => Some(DataType::UInt64),
            "THING_ID" => Some(DataType::Int32),
            _ => None,
        };
        std::fs::write(
            &p,
            "specobjid\n-6449053924126863360\n11997690149582688256\n4115164797179547648\n",
        )
        .unwrap();
        let l = read_ids(&p, types).unwrap();
        assert_eq!(l.column, "SPECOBJID");
        assert_eq!(
            l.values,
            vec![
                ScalarValue::UInt64(Some(11997690149582688256)),
                ScalarValue::UInt64(Some(4115164797179547648))
            ]
        );
        assert_eq!(l.duplicates, 1);
        std::fs::write(&p, "TARGETID,THING_ID\n1,77\n").unwrap();
        assert_eq!(
            read_ids(&p, types).unwrap().values,
            vec![ScalarValue::Int32(Some(77))]
        );
        for (text, words) in [
            (
                "TARGETID\n5\n",
                "no TARGETID column (it has SPECOBJID, THING_ID)",
            ),
            ("plate\n5\n", "names no ID column"),
            ("THING_ID\nx\n", "line 2: THING_ID \"x\" is not an integer"),
            (
                "THING_ID\n9999999999\n",
                "line 2: THING_ID 9999999999 does not fit",
            ),
            ("THING_ID\n", "no IDs"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_ids(&p, types).unwrap_err().to_string();
            assert!(e.contains(words), "{text:?}: {e}");
        }
    }
}
