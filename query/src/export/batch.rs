//! One store group's batch of the export: its catalog rows, then its spectra as list columns, read
//! from the store file (SDSS-I–IV per-fiber coadds, the merged layouts of SDSS-V and DESI).

use std::path::Path;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::{ArrayRef, Float32Array, Int32Array, ListArray, RecordBatch};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::Int64Type;
use arrow::datatypes::{DataType, Field, SchemaRef};
use model::{GroupId, SpectrumId};

use super::columns::{arm_fields, CoaddColumns, SpectralColumn, ARM_COLUMNS};
use crate::error::{QueryError, Result};

/// The spectra of catalog rows.
pub(crate) fn spectra_of(rows: &RecordBatch) -> Vec<SpectrumId> {
    rows.column_by_name(catalog::columns::KEY)
        .expect("catalog rows have a key")
        .as_primitive::<Int64Type>()
        .values()
        .iter()
        .filter_map(|&k| SpectrumId::from_key(k))
        .collect()
}

/// One list column from the flat values of its spectra and their offsets.
fn list(
    path: &Path,
    item: DataType,
    offsets: &OffsetBuffer<i32>,
    values: ArrayRef,
) -> Result<ArrayRef> {
    let item = Arc::new(Field::new_list_field(item, false));
    ListArray::try_new(item, offsets.clone(), values, None)
        .map(|l| Arc::new(l) as ArrayRef)
        .map_err(|source| QueryError::Arrow {
            path: path.to_path_buf(),
            source,
        })
}

/// A list column of nulls (a field a survey's spectra do not have).
fn null_list(c: SpectralColumn, rows: usize) -> ArrayRef {
    arrow::array::new_null_array(c.field().data_type(), rows)
}

fn offsets_of(path: &Path, lengths: impl Iterator<Item = usize>) -> Result<OffsetBuffer<i32>> {
    let mut offsets = vec![0i32];
    let mut total = 0usize;
    for n in lengths {
        total += n;
        offsets
            .push(i32::try_from(total).map_err(|_| {
                QueryError::store(path, "more than 2^31 pixels in one store group")
            })?);
    }
    Ok(OffsetBuffer::new(offsets.into()))
}

/// Builds the batch of one store group: the catalog rows `subset` (all of that group) and spectra.
pub(crate) fn build_batch(
    store: &Path,
    group: GroupId,
    subset: &RecordBatch,
    schema: &SchemaRef,
    columns: &[SpectralColumn],
    desi: bool,
) -> Result<RecordBatch> {
    let path = store.join(group.store_file_name());
    let rows: Vec<i64> = spectra_of(subset).iter().map(|s| s.row).collect();
    let mut arrays: Vec<ArrayRef> = subset.columns().to_vec();
    match group {
        GroupId::Plate(pm) => {
            let err = |e: hdf5::Error| QueryError::hdf5(&path, "cannot read a coadd", e);
            let file = hdf5::File::open(&path).map_err(err)?;
            let fibers: Vec<i32> = rows.iter().map(|&r| r as i32).collect();
            let coadds = store::reader::coadds(&file, pm, &fibers).map_err(err)?;
            let offsets = offsets_of(&path, coadds.iter().map(Vec::len))?;
            let pixels = coadds.iter().map(Vec::len).sum();
            let mut values = CoaddColumns::gather(coadds.iter().map(Vec::as_slice), pixels);
            drop(coadds);
            for c in columns {
                arrays.push(match values.take(*c) {
                    Some(values) => list(&path, c.item_type(), &offsets, values)?,
                    None => null_list(*c, rows.len()),
                });
            }
        }
        GroupId::Field(_) => {
            let spectra = store::merged::read_rows(&path, group, &rows)
                .map_err(|e| QueryError::store(&path, format!("cannot read the spectra: {e}")))?;
            let offsets = offsets_of(&path, spectra.lengths.iter().copied())?;
            for c in columns {
                arrays.push(match spectra.column(c.store_name()) {
                    Some(bits) => {
                        let values: ArrayRef = if c.item_type() == DataType::Int32 {
                            Arc::new(Int32Array::from_iter_values(bits.iter().map(|&b| b as i32)))
                        } else {
                            Arc::new(Float32Array::from_iter_values(
                                bits.iter().map(|&b| f32::from_bits(b)),
                            ))
                        };
                        list(&path, c.item_type(), &offsets, values)?
                    }
                    None if c.optional() => null_list(*c, rows.len()),
                    None => {
                        return Err(QueryError::store(
                            &path,
                            format!("the coadds have no {} array", c.store_name()),
                        ))
                    }
                });
            }
        }
        GroupId::Desi(_) => {
            for c in columns {
                arrays.push(null_list(*c, rows.len()));
            }
        }
    }
    if desi {
        arrays.extend(arm_arrays(&path, group, &rows)?);
    }
    RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|source| QueryError::Arrow { path, source })
}

/// DESI's per-arm list columns of the rows `rows` of `group` (nulls for groups of other surveys):
/// the arm's shared wavelength grid on every row, the row's FLUX, IVAR and MASK.
fn arm_arrays(path: &Path, group: GroupId, rows: &[i64]) -> Result<Vec<ArrayRef>> {
    let n = rows.len();
    if !matches!(group, GroupId::Desi(_)) {
        return Ok(arm_fields()
            .iter()
            .map(|f| arrow::array::new_null_array(f.data_type(), n))
            .collect());
    }
    let mut out = Vec::new();
    for arm in model::desi::ARMS {
        let block = store::merged::read_block_rows(path, group, arm, rows)
            .map_err(|e| QueryError::store(path, format!("cannot read arm {arm}: {e}")))?;
        for (_, store_name, item) in &ARM_COLUMNS {
            let a = block
                .iter()
                .find(|a| a.name == *store_name)
                .ok_or_else(|| {
                    QueryError::store(path, format!("arm {arm} has no {store_name} array"))
                })?;
            let shared = a.attrs.iter().any(|(k, v)| {
                k == model::layout::sdss5::SHARED_ATTR && *v == store::attrs::AttrValue::Bool(true)
            });
            let npix = if shared {
                a.shape[0] as usize
            } else {
                a.shape.get(1).copied().unwrap_or(0) as usize
            };
            let offsets = offsets_of(path, std::iter::repeat_n(npix, n))?;
            let values: ArrayRef = match item {
                DataType::Float64 => {
                    let v: Vec<f64> = bytemuck::pod_collect_to_vec(&a.bytes);
                    let v = if shared { v.repeat(n) } else { v };
                    Arc::new(arrow::array::Float64Array::from(v))
                }
                DataType::Int32 => Arc::new(Int32Array::from(bytemuck::pod_collect_to_vec::<
                    u8,
                    i32,
                >(&a.bytes))),
                _ => Arc::new(Float32Array::from(bytemuck::pod_collect_to_vec::<u8, f32>(
                    &a.bytes,
                ))),
            };
            if values.len() != npix * n {
                return Err(QueryError::store(
                    path,
                    format!(
                        "arm {arm}: {store_name} has {} values, expected {}",
                        values.len(),
                        npix * n
                    ),
                ));
            }
            out.push(list(path, item.clone(), &offsets, values)?);
        }
    }
    Ok(out)
}
