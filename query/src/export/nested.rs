//! The nested form of the export (`--nested`), as LSDB / nested-pandas keep spectra: each row's
//! spectral arrays are one struct-of-lists column — `spectrum` {wave, flux, ivar, …} for SDSS, and
//! one per DESI arm, `spectrum_b`, `spectrum_r`, `spectrum_z` {wave, flux, ivar, mask} (each arm has
//! its own grid, and a nested column's lists have one length per row; plain `z` is the redshift).
//! `nested_pandas.read_parquet` opens each as a nested column; a row of another survey has that
//! column null, and a field only some spectra of a column have (SDSS-V's `wresl`) is NaN on the
//! others.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Builder, ListBuilder, RecordBatch, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::Float32Type;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};

/// The nested column of SDSS spectra.
pub const SPECTRUM: &str = "spectrum";

/// The nested column a flat list column goes into, and its name there (`b_flux` →
/// (`spectrum_b`, `flux`), `flux` → (`spectrum`, `flux`)).
fn nest_of(name: &str) -> (String, &str) {
    for arm in model::desi::ARMS {
        if let Some(rest) = name.strip_prefix(arm).and_then(|r| r.strip_prefix('_')) {
            return (format!("{SPECTRUM}_{arm}"), rest);
        }
    }
    (SPECTRUM.to_string(), name)
}

/// The nested columns of a flat schema's list columns (those after its first `catalog_columns`), in
/// order of first appearance: (nested column, [(flat index, field in the struct)]).
fn groups(flat: &Schema, catalog_columns: usize) -> Vec<(String, Vec<(usize, Field)>)> {
    let mut out: Vec<(String, Vec<(usize, Field)>)> = Vec::new();
    for (i, f) in flat.fields().iter().enumerate().skip(catalog_columns) {
        let (nest, name) = nest_of(f.name());
        let child = f.as_ref().clone().with_name(name).with_nullable(true);
        match out.iter_mut().find(|(n, _)| *n == nest) {
            Some((_, children)) => children.push((i, child)),
            None => out.push((nest, vec![(i, child)])),
        }
    }
    out
}

/// The schema of the nested form of `flat`: its catalog columns, then one nullable struct column per
/// nested column.
pub fn nested_schema(flat: &Schema, catalog_columns: usize) -> SchemaRef {
    let mut fields: Vec<Field> = flat.fields()[..catalog_columns]
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (name, children) in groups(flat, catalog_columns) {
        let children: Fields = children.into_iter().map(|(_, f)| f).collect();
        fields.push(Field::new(name, DataType::Struct(children), true));
    }
    Arc::new(Schema::new(fields))
}

/// A list column whose null rows become lists of NaN of the length `lengths` gives (a field only some
/// spectra have, such as SDSS-V's `wresl` beside SDSS-I–IV spectra: a nested column's fields have
/// one length per row). Columns without nulls, or not of floats, are returned as they are.
fn nan_filled(list: &ArrayRef, lengths: &[Option<usize>]) -> ArrayRef {
    let Some(l) = list.as_list_opt::<i32>() else {
        return list.clone();
    };
    if l.null_count() == 0 || l.value_type() != DataType::Float32 {
        return list.clone();
    }
    let mut b = ListBuilder::new(Float32Builder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Float32, false)));
    for (r, n) in lengths.iter().enumerate() {
        if l.is_valid(r) {
            b.values()
                .append_slice(l.value(r).as_primitive::<Float32Type>().values());
            b.append(true);
        } else if let Some(n) = n {
            b.values().append_slice(&vec![f32::NAN; *n]);
            b.append(true);
        } else {
            b.append(false);
        }
    }
    Arc::new(b.finish())
}

/// The nested form of a flat batch: a struct row is null where all its lists are null.
pub fn nest(
    flat: &RecordBatch,
    nested: &SchemaRef,
    catalog_columns: usize,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut arrays: Vec<ArrayRef> = flat.columns()[..catalog_columns].to_vec();
    for (_, children) in groups(&flat.schema(), catalog_columns) {
        let fields: Fields = children.iter().map(|(_, f)| f.clone()).collect();
        let values: Vec<ArrayRef> = children
            .iter()
            .map(|(i, _)| flat.column(*i).clone())
            .collect();
        // The pixels of each row's spectrum (None: no spectrum of this kind).
        let lengths: Vec<Option<usize>> = (0..flat.num_rows())
            .map(|r| {
                values
                    .iter()
                    .filter_map(|a| a.as_list_opt::<i32>())
                    .find(|a| a.is_valid(r))
                    .map(|a| a.value_length(r) as usize)
            })
            .collect();
        let values: Vec<ArrayRef> = values.iter().map(|a| nan_filled(a, &lengths)).collect();
        let valid: Vec<bool> = lengths.iter().map(Option::is_some).collect();
        let nulls = (!valid.iter().all(|&v| v)).then(|| NullBuffer::from(valid));
        arrays.push(Arc::new(StructArray::try_new(fields, values, nulls)?));
    }
    RecordBatch::try_new(nested.clone(), arrays)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_columns_group_by_survey_and_arm() {
        assert_eq!(nest_of("flux"), ("spectrum".into(), "flux"));
        assert_eq!(nest_of("b_flux"), ("spectrum_b".into(), "flux"));
        assert_eq!(nest_of("z_wave"), ("spectrum_z".into(), "wave"));
        assert_eq!(nest_of("and_mask"), ("spectrum".into(), "and_mask"));
    }
}
