//! Scalar attributes (FITS header cards, units, format markers) written to and read from HDF5 objects.

use hdf5::types::{TypeDescriptor, VarLenUnicode};
use hdf5::Location;

/// A scalar attribute value: the kinds of value a FITS header card holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AttrValue {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

/// Writes (or replaces) one scalar attribute.
pub fn write_attr(loc: &Location, name: &str, value: &AttrValue) -> hdf5::Result<()> {
    if loc.attr_names()?.iter().any(|n| n == name) {
        loc.delete_attr(name)?;
    }
    create_attr(loc, name, value)
}

/// Creates one scalar attribute on an object that does not have it yet (no existence check: the
/// cheap path for freshly created objects).
pub fn create_attr(loc: &Location, name: &str, value: &AttrValue) -> hdf5::Result<()> {
    match value {
        AttrValue::Int(v) => loc.new_attr::<i64>().create(name)?.write_scalar(v),
        AttrValue::Float(v) => loc.new_attr::<f64>().create(name)?.write_scalar(v),
        AttrValue::Bool(v) => loc.new_attr::<bool>().create(name)?.write_scalar(v),
        AttrValue::Str(v) => {
            let s: VarLenUnicode = sanitize(v).parse().expect("no NUL after sanitize");
            loc.new_attr::<VarLenUnicode>()
                .create(name)?
                .write_scalar(&s)
        }
    }
}

/// Deletes every attribute of an object (before its attributes are replaced as a whole).
pub fn delete_all(loc: &Location) -> hdf5::Result<()> {
    for name in loc.attr_names()? {
        loc.delete_attr(&name)?;
    }
    Ok(())
}

/// Writes (or replaces) every attribute of a list, in order.
pub fn write_attrs(loc: &Location, attrs: &[(String, AttrValue)]) -> hdf5::Result<()> {
    attrs.iter().try_for_each(|(k, v)| write_attr(loc, k, v))
}

/// Creates every attribute of a list on an object that has none of them yet.
pub fn create_attrs(loc: &Location, attrs: &[(String, AttrValue)]) -> hdf5::Result<()> {
    attrs.iter().try_for_each(|(k, v)| create_attr(loc, k, v))
}

/// Reads every scalar attribute of an object, sorted by name; attributes of other kinds are skipped.
pub fn read_attrs(loc: &Location) -> hdf5::Result<Vec<(String, AttrValue)>> {
    let mut out = Vec::new();
    for name in loc.attr_names()? {
        let attr = loc.attr(&name)?;
        if !attr.is_scalar() {
            continue;
        }
        let value = match attr.dtype()?.to_descriptor()? {
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                AttrValue::Int(attr.read_scalar::<i64>()?)
            }
            TypeDescriptor::Float(_) => AttrValue::Float(attr.read_scalar::<f64>()?),
            TypeDescriptor::Boolean => AttrValue::Bool(attr.read_scalar::<bool>()?),
            TypeDescriptor::VarLenUnicode | TypeDescriptor::VarLenAscii => {
                AttrValue::Str(attr.read_scalar::<VarLenUnicode>()?.as_str().to_string())
            }
            _ => continue,
        };
        out.push((name, value));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads one string attribute, if present.
pub fn read_str_attr(loc: &Location, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    attr.read_scalar::<VarLenUnicode>()
        .ok()
        .map(|s| s.as_str().to_string())
}

/// HDF5 strings cannot hold NUL: FITS header strings never should, but user data might.
fn sanitize(s: &str) -> String {
    s.replace('\0', " ")
}
