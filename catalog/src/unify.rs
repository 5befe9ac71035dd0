//! Putting catalog batches together: the schema of a catalog is the union of its store files' columns
//! (so a new spAll release with new columns needs no code change), with final names
//! ([`crate::columns::final_names`]) and one type per column when plates differ:
//!
//! - integers (and booleans) of different widths → Int64; with an unsigned 64-bit one → UInt64, the
//!   same bits (FITS writes unsigned 64-bit integers as signed ones with an offset);
//! - integers with floats → Float64; floats of both widths → Float64;
//! - fixed-size lists of different lengths → lists; a list with a scalar, or a string with anything
//!   else → strings (the values as text).
//!
//! A column a plate does not have is null there.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt64Array,
};
use arrow::buffer::ScalarBuffer;
use arrow::compute::{can_cast_types, cast};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::columns::{self, final_names, Origin};
use crate::error::CatalogError;

/// The one type for a column that has type `a` in some plates and `b` in others.
pub fn common_type(a: &DataType, b: &DataType) -> DataType {
    use DataType as D;
    if a == b {
        return a.clone();
    }
    let item = |f: &Arc<Field>| f.data_type().clone();
    let list = |t: DataType| D::List(Arc::new(Field::new_list_field(t, false)));
    match (a, b) {
        (D::FixedSizeList(fa, na), D::FixedSizeList(fb, nb)) => {
            let t = common_type(&item(fa), &item(fb));
            if na == nb {
                D::FixedSizeList(Arc::new(Field::new_list_field(t, false)), *na)
            } else {
                list(t)
            }
        }
        (D::FixedSizeList(fa, _) | D::List(fa), D::FixedSizeList(fb, _) | D::List(fb)) => {
            list(common_type(&item(fa), &item(fb)))
        }
        _ if is_integer(a) && is_integer(b) => {
            if matches!(a, D::UInt64) || matches!(b, D::UInt64) {
                D::UInt64
            } else {
                D::Int64
            }
        }
        _ if a.is_numeric() && b.is_numeric()
            || (is_integer(a) || is_integer(b)) && (a.is_floating() || b.is_floating()) =>
        {
            D::Float64
        }
        _ => D::Utf8,
    }
}

fn is_integer(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Boolean)
}

/// The origin of every field of a catalog schema (an error for a field without one: a catalog of
/// an older version, or not written by this crate).
pub fn origins(schema: &Schema) -> Result<Vec<Origin>, String> {
    schema
        .fields()
        .iter()
        .map(|f| {
            Origin::of(f).ok_or_else(|| format!("column {:?} has no origin metadata", f.name()))
        })
        .collect()
}

/// The union of several catalog schemas: derived columns first (in their order), then the table
/// columns (tables in order of precedence; within a table by their smallest position in it, then by
/// name), each with its common type and final name. The order depends only on the schemas' columns,
/// not on the order in which they come.
pub fn union_schema<'a>(
    schemas: impl IntoIterator<Item = &'a Schema>,
) -> Result<SchemaRef, CatalogError> {
    // Per origin: common type, nullable, smallest position.
    let mut seen: HashMap<Origin, (DataType, bool, usize)> = HashMap::new();
    for schema in schemas {
        let origins = origins(schema).map_err(CatalogError::Schema)?;
        for (o, f) in origins.into_iter().zip(schema.fields()) {
            let position = columns::position(f);
            match seen.get_mut(&o) {
                Some((t, nullable, p)) => {
                    *t = common_type(t, f.data_type());
                    *nullable |= f.is_nullable();
                    *p = (*p).min(position);
                }
                None => {
                    seen.insert(o, (f.data_type().clone(), f.is_nullable(), position));
                }
            }
        }
    }
    let mut order: Vec<Origin> = seen.keys().cloned().collect();
    order.sort_by_cached_key(|o| {
        let name = match o {
            Origin::Derived(n) => n.to_string(),
            Origin::Table(_, c) => c.clone(),
        };
        (o.rank(), seen[o].2, name)
    });
    let names = final_names(&order);
    let fields: Vec<Field> = order
        .iter()
        .zip(names)
        .map(|(o, name)| {
            let (t, nullable, position) = &seen[o];
            // A table column is null in plates without it.
            let nullable = *nullable || matches!(o, Origin::Table(..));
            let field = o.field(t.clone(), nullable).with_name(name);
            match o {
                Origin::Table(..) => columns::with_position(field, *position),
                Origin::Derived(_) => field,
            }
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The batch with the columns of `schema` (matched by origin): cast to its types, null where the
/// batch has no such column.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, CatalogError> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let have: HashMap<Origin, usize> = origins(&batch.schema())
        .map_err(CatalogError::Schema)?
        .into_iter()
        .enumerate()
        .map(|(i, o)| (o, i))
        .collect();
    let mut arrays = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let o = Origin::of(f)
            .ok_or_else(|| CatalogError::Schema(format!("{}: no origin", f.name())))?;
        arrays.push(match have.get(&o) {
            Some(&i) => convert(batch.column(i), f.data_type())
                .map_err(|e| CatalogError::Schema(format!("column {}: {e}", f.name())))?,
            None => new_null_array(f.data_type(), batch.num_rows()),
        });
    }
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| CatalogError::Schema(e.to_string()))
}

/// An array converted to the common type of its column.
fn convert(a: &ArrayRef, to: &DataType) -> Result<ArrayRef, arrow::error::ArrowError> {
    if a.data_type() == to {
        return Ok(a.clone());
    }
    match to {
        DataType::UInt64 if a.data_type().is_integer() || *a.data_type() == DataType::Boolean => {
            // The same bits: a signed 64-bit ID and its unsigned reading are one value.
            let signed = cast(a, &DataType::Int64)?;
            let signed = signed.as_primitive::<Int64Type>();
            let bits = ScalarBuffer::<u64>::new(signed.values().inner().clone(), 0, signed.len());
            Ok(Arc::new(UInt64Array::new(bits, signed.nulls().cloned())))
        }
        _ if can_cast_types(a.data_type(), to) => cast(a, to),
        DataType::Utf8 => {
            let fmt = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default())?;
            Ok(Arc::new(StringArray::from_iter(
                (0..a.len()).map(|i| a.is_valid(i).then(|| fmt.value(i).to_string())),
            )))
        }
        _ => Err(arrow::error::ArrowError::CastError(format!(
            "cannot convert {} to {to}",
            a.data_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeListArray, Float32Array, Int16Array, Int64Array};
    use arrow::datatypes::UInt64Type;
    use model::layout::PlateTable;

    fn field(o: &Origin, t: DataType) -> Field {
        o.field(t, true)
    }

    #[test]
    fn common_types() {
        use DataType as D;
        assert_eq!(common_type(&D::Int16, &D::Int32), D::Int64);
        assert_eq!(common_type(&D::Int64, &D::UInt64), D::UInt64);
        assert_eq!(common_type(&D::Int32, &D::Float32), D::Float64);
        assert_eq!(common_type(&D::Float32, &D::Float64), D::Float64);
        assert_eq!(common_type(&D::Utf8, &D::Int32), D::Utf8);
        assert_eq!(common_type(&D::Boolean, &D::UInt8), D::Int64);
        let fsl = |t: D, n| D::FixedSizeList(Arc::new(Field::new_list_field(t, false)), n);
        assert_eq!(
            common_type(&fsl(D::Float32, 5), &fsl(D::Float32, 5)),
            fsl(D::Float32, 5)
        );
        assert_eq!(
            common_type(&fsl(D::Float32, 5), &fsl(D::Float64, 5)),
            fsl(D::Float64, 5)
        );
        assert!(matches!(
            common_type(&fsl(D::Float32, 5), &fsl(D::Float32, 3)),
            D::List(_)
        ));
        assert_eq!(common_type(&fsl(D::Float32, 5), &D::Float32), D::Utf8);
    }

    #[test]
    fn union_and_conform_fill_nulls_and_cast() {
        let z = Origin::Table(PlateTable::Zbest, "Z".into());
        let a = Origin::Table(PlateTable::Spall, "SPECOBJID".into());
        let m = Origin::Table(PlateTable::Spall, "MAG".into());
        let only = Origin::Table(PlateTable::Plugmap, "HOLE".into());
        // Table columns are ordered by their smallest position: SPECOBJID (5 here, 1 in s2) before
        // MAG (3), whichever schema comes first.
        let at = columns::with_position;
        let s1 = Arc::new(Schema::new(vec![
            field(&z, DataType::Float32),
            at(field(&a, DataType::Int64), 5),
            at(
                field(
                    &m,
                    DataType::FixedSizeList(
                        Arc::new(Field::new_list_field(DataType::Float32, false)),
                        2,
                    ),
                ),
                3,
            ),
        ]));
        let s2 = Arc::new(Schema::new(vec![
            field(&only, DataType::Int16),
            at(field(&a, DataType::UInt64), 1),
            field(&z, DataType::Float64),
        ]));
        let u = union_schema([s1.as_ref(), s2.as_ref()]).unwrap();
        let swapped = union_schema([s2.as_ref(), s1.as_ref()]).unwrap();
        assert_eq!(u, swapped, "the order of the schemas does not matter");
        let names: Vec<&str> = u.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["SPECOBJID", "MAG", "Z", "HOLE"]);
        let mags = FixedSizeListArray::new(
            Arc::new(Field::new_list_field(DataType::Float32, false)),
            2,
            Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0, 4.0])),
            None,
        );
        let b1 = RecordBatch::try_new(
            s1,
            vec![
                Arc::new(Float32Array::from(vec![0.5, 1.5])),
                Arc::new(Int64Array::from(vec![-2, 3])),
                Arc::new(mags),
            ],
        )
        .unwrap();
        let c = conform(&b1, &u).unwrap();
        assert_eq!(
            c.column(0).as_primitive::<UInt64Type>().value(0),
            (-2i64) as u64
        );
        assert_eq!(c.column(2).data_type(), &DataType::Float64);
        assert_eq!(c.column(3).null_count(), 2);
        let b2 = RecordBatch::try_new(
            s2,
            vec![
                Arc::new(Int16Array::from(vec![4])),
                Arc::new(UInt64Array::from(vec![u64::MAX])),
                Arc::new(arrow::array::Float64Array::from(vec![2.5])),
            ],
        )
        .unwrap();
        let c2 = conform(&b2, &u).unwrap();
        assert_eq!(c2.column(1).null_count(), 1);
        assert_eq!(c2.column(3).data_type(), &DataType::Int16);
    }
}
