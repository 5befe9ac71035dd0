//! The catalog rows of one store file, as one Arrow record batch: one row per spectrum (an
//! SDSS-I–IV fiber, an SDSS-V target of a field-MJD), the derived columns, then every column of the
//! group's spall, zbest and plugmap tables (the spectrum's first row in each, found by the group's
//! row key — FIBERID or TARGET_INDEX; null where a table has no row for it). Names are provisional (`spall:Z`) until the
//! batches of a catalog are put together ([`crate::unify`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, BooleanBuilder, FixedSizeListArray, Float32Builder, Float64Builder,
    Int32Array, Int32Builder, Int64Array, PrimitiveArray, RecordBatch, StringArray, StringBuilder,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Schema, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use model::layout::{sdss5, PlateTable};
use model::{GroupId, PlateMjd, SpectrumId};
use ranks::{partition_by_weight, Job};
use store::files::StoreFile;
use store::table::{Column, ScalarKind};
use store::Table;

use crate::columns::{self, DerivedType, Origin, Source, DERIVED, TABLES};
use crate::error::CatalogError;
use crate::ipc;

/// The tables of one store group, each with the row of every spectrum it has.
struct Tables {
    tables: Vec<(PlateTable, Table, HashMap<i64, usize>)>,
}

/// One spectrum of a store file: its row key (fiber, TARGET_INDEX), pixel and exposure counts, and
/// its CATALOGID (SDSS-V).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub row: i64,
    pub npix: usize,
    pub nexp: usize,
    pub catalogid: Option<i64>,
}

impl From<&store::reader::FiberEntry> for Entry {
    fn from(e: &store::reader::FiberEntry) -> Self {
        Self {
            row: e.fiber.into(),
            npix: e.npix,
            nexp: e.nexp,
            catalogid: None,
        }
    }
}

/// The column that keys the rows of a group's tables.
fn row_key(group: GroupId) -> &'static str {
    match group {
        GroupId::Plate(_) => "FIBERID",
        GroupId::Field(_) => sdss5::TARGET_INDEX,
        GroupId::Desi(_) => model::desi::TARGET_ROW,
    }
}

impl Tables {
    fn read(group: &hdf5::Group, key: &str) -> Result<Self, store::table::TableError> {
        let mut tables = Vec::new();
        for t in TABLES {
            // Absent is "no such table"; present but unreadable is an error of the file.
            if group.link_exists(t.name()) {
                tables.push((t, Table::read(&group.dataset(t.name())?)?));
            }
        }
        Ok(Self::new(tables, key))
    }

    /// The tables with a key column, each with the first row of every spectrum.
    fn new(tables: Vec<(PlateTable, Table)>, key: &str) -> Self {
        let tables = tables
            .into_iter()
            .filter_map(|(t, table)| {
                let ids = table.key_values(key)?;
                let mut first = HashMap::new();
                for (row, k) in ids.into_iter().enumerate() {
                    first.entry(k).or_insert(row);
                }
                Some((t, table, first))
            })
            .collect();
        Self { tables }
    }

    fn get(&self, t: PlateTable) -> Option<(&Table, &HashMap<i64, usize>)> {
        self.tables
            .iter()
            .find(|x| x.0 == t)
            .map(|(_, table, rows)| (table, rows))
    }

    /// The first (table, column) in `order` that exists and has a value for this fiber.
    fn find<T>(
        &self,
        fiber: i64,
        order: &[(PlateTable, &str)],
        get: impl Fn(&Table, usize, usize) -> Option<T>,
    ) -> Option<T> {
        order.iter().find_map(|(t, col)| {
            let (table, rows) = self.get(*t)?;
            let row = *rows.get(&fiber)?;
            get(table, row, table.column_index(col)?)
        })
    }
}

/// The catalog batch of the store file of `group` (provisional names; see [`crate::unify`]).
pub fn file_batch(path: &Path, group: GroupId) -> Result<RecordBatch, CatalogError> {
    let h5 = |source| CatalogError::Store {
        path: path.to_path_buf(),
        source,
    };
    let file = hdf5::File::open(path).map_err(h5)?;
    let g = file.group(&group.path()).map_err(h5)?;
    let tables = Tables::read(&g, row_key(group)).map_err(|e| CatalogError::Table {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let entries: Vec<Entry> = match group {
        GroupId::Plate(pm) => store::reader::inventory(&file, pm)
            .map_err(h5)?
            .iter()
            .map(Entry::from)
            .collect(),
        GroupId::Field(_) | GroupId::Desi(_) => store::merged::inventory(&file, group)
            .map_err(h5)?
            .into_iter()
            .map(|e| Entry {
                row: e.row,
                npix: e.npix,
                nexp: e.nexp,
                catalogid: matches!(group, GroupId::Field(_)).then_some(e.catalogid),
            })
            .collect(),
    };
    rows_batch(group, &entries, tables).map_err(|source| CatalogError::Arrow {
        path: path.to_path_buf(),
        source,
    })
}

/// The catalog batch of the fibers `entries` of plate-MJD `pm`, with its plate tables.
pub fn batch_of(
    pm: PlateMjd,
    entries: &[store::reader::FiberEntry],
    tables: Vec<(PlateTable, Table)>,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let group = GroupId::Plate(pm);
    let entries: Vec<Entry> = entries.iter().map(Entry::from).collect();
    rows_batch(group, &entries, Tables::new(tables, row_key(group)))
}

fn rows_batch(
    group: GroupId,
    entries: &[Entry],
    tables: Tables,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    let fibers: Vec<i64> = entries.iter().map(|e| e.row).collect();
    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    let file_name = group.store_file_name();
    for d in &DERIVED {
        fields.push(Origin::Derived(d.name).field(d.data_type.arrow(), d.nullable));
        arrays.push(match d.source {
            Source::Fiber => fiber_column(d.name, group, entries, &file_name),
            Source::Tables(order) => derived_column(d.data_type, &fibers, &tables, order),
        });
    }
    for (t, table, rows) in &tables.tables {
        let rows: Vec<Option<usize>> = fibers.iter().map(|f| rows.get(f).copied()).collect();
        for (c, col) in table.columns().iter().enumerate() {
            if columns::is_merged(*t, &col.name) {
                continue;
            }
            let array = table_column(table, c, &rows, unsigned_id(&col.name));
            fields.push(columns::with_position(
                Origin::Table(*t, col.name.to_ascii_uppercase())
                    .field(array.data_type().clone(), true),
                c,
            ));
            arrays.push(array);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

/// What the ranks built: the batches of the store files (on rank 0) and, per file that could not
/// be read, the error.
#[derive(Debug, Default)]
pub struct Built {
    pub batches: Vec<RecordBatch>,
    pub errors: Vec<String>,
}

/// The catalog batches of these store files, built by the ranks in parallel (each its share by
/// size) and gathered on rank 0 (None on the other ranks). Collective.
pub fn build_on_ranks(job: &Job, files: &[StoreFile]) -> Result<Option<Built>, CatalogError> {
    let owner = partition_by_weight(
        &files.iter().map(|f| f.bytes).collect::<Vec<_>>(),
        job.size(),
    );
    let mut local: (Vec<Vec<u8>>, Vec<String>) = (Vec::new(), Vec::new());
    let mut kept: Vec<RecordBatch> = Vec::new();
    for (f, o) in files.iter().zip(owner) {
        if o != job.rank() {
            continue;
        }
        match file_batch(&f.path, f.group) {
            // Rank 0 keeps its own batches; the others send theirs as bytes.
            Ok(b) if job.is_root() => kept.push(b),
            Ok(b) => local.0.push(ipc::to_bytes(&b)?),
            Err(e) => local.1.push(e.to_string()),
        }
    }
    let parts = job
        .gather_to_root(&local)
        .map_err(|e| CatalogError::Exchange(e.to_string()))?;
    let Some(parts) = parts else {
        return Ok(None);
    };
    let mut built = Built {
        batches: kept,
        errors: Vec::new(),
    };
    for (bytes, errors) in parts {
        for b in bytes {
            built.batches.push(ipc::from_bytes(&b)?);
        }
        built.errors.extend(errors);
    }
    Ok(Some(built))
}

fn unsigned_id(name: &str) -> bool {
    columns::UNSIGNED_IDS
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

fn fiber_column(name: &str, group: GroupId, entries: &[Entry], file_name: &str) -> ArrayRef {
    let i32s = |f: &dyn Fn(&Entry) -> i32| {
        Arc::new(Int32Array::from_iter_values(entries.iter().map(f))) as ArrayRef
    };
    let opt_i32s = |f: &dyn Fn(&Entry) -> Option<i32>| {
        Arc::new(Int32Array::from_iter(entries.iter().map(f))) as ArrayRef
    };
    let (plate, field, mjd) = match group {
        GroupId::Plate(pm) => (Some(pm.plate), None, Some(pm.mjd)),
        GroupId::Field(f) => (None, Some(f.field), Some(f.mjd)),
        // A DESI coadd has no one MJD (its FIBERMAP has MIN_MJD, MAX_MJD, MEAN_MJD).
        GroupId::Desi(_) => (None, None, None),
    };
    match name {
        columns::KEY => Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|e| SpectrumId::new(group, e.row).key()),
        )),
        columns::PLATE => opt_i32s(&|_| plate),
        columns::MJD => opt_i32s(&|_| mjd),
        columns::FIBER => opt_i32s(&|e| plate.map(|_| e.row as i32)),
        columns::NPIX => i32s(&|e| e.npix as i32),
        columns::NEXP => i32s(&|e| e.nexp as i32),
        columns::FILE => Arc::new(StringArray::from_iter_values(
            entries.iter().map(|_| file_name),
        )),
        columns::SURVEY => Arc::new(StringArray::from_iter_values(
            entries.iter().map(|_| group.survey().name()),
        )),
        columns::FIELDID => opt_i32s(&|_| field),
        columns::CATALOGID => Arc::new(Int64Array::from_iter(entries.iter().map(|e| e.catalogid))),
        other => unreachable!("{other} is not a spectrum column"),
    }
}

fn derived_column(
    ty: DerivedType,
    fibers: &[i64],
    tables: &Tables,
    order: &[(PlateTable, &str)],
) -> ArrayRef {
    let n = fibers.len();
    match ty {
        DerivedType::Float64 | DerivedType::Float32 => {
            let values = fibers
                .iter()
                .map(|&f| tables.find(f, order, Table::float_value));
            if ty == DerivedType::Float64 {
                let mut b = Float64Builder::with_capacity(n);
                values.for_each(|v| b.append_option(v));
                Arc::new(b.finish())
            } else {
                let mut b = Float32Builder::with_capacity(n);
                values.for_each(|v| b.append_option(v.map(|v| v as f32)));
                Arc::new(b.finish())
            }
        }
        DerivedType::Int32 | DerivedType::Int64 => {
            let mut b = Int32Builder::with_capacity(n);
            for &f in fibers {
                b.append_option(tables.find(f, order, Table::int_value).map(|v| v as i32));
            }
            Arc::new(b.finish())
        }
        DerivedType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for &f in fibers {
                b.append_option(tables.find(f, order, Table::int_value).map(|v| v != 0));
            }
            Arc::new(b.finish())
        }
        DerivedType::Utf8 => {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for &f in fibers {
                // An empty string is unknown: the next table in the order is asked, and an
                // empty string is the value only if no table has another.
                let non_empty = tables.find(f, order, |t: &Table, r, c| {
                    t.str_value(r, c).filter(|s| !s.is_empty())
                });
                b.append_option(non_empty.or_else(|| tables.find(f, order, Table::str_value)));
            }
            Arc::new(b.finish())
        }
    }
}

/// One column of a table for the catalog rows (`rows[i]`: the table row of catalog row `i`).
/// Scalars become Arrow scalars of the same type (strings without trailing blanks and NULs),
/// cells of several values a fixed-size list of their count (multi-dimensional cells flattened).
pub fn table_column(table: &Table, c: usize, rows: &[Option<usize>], unsigned: bool) -> ArrayRef {
    let col: &Column = &table.columns()[c];
    let offset = table.offsets()[c];
    let count = col.count();
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<bool>>());
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    // Cell bytes of every catalog row (zeros for rows without a table row), `count` values each.
    let size = col.kind.size();
    let cell = |i: usize, k: usize| -> &[u8] {
        match rows[i] {
            Some(r) => &table.row(r)[offset + k * size..offset + (k + 1) * size],
            None => &ZEROS[..size],
        }
    };
    let n = rows.len();
    let values: ArrayRef = match col.kind {
        ScalarKind::Str(len) => {
            let mut b = StringBuilder::with_capacity(n * count, n * count * len);
            for row in rows {
                for k in 0..count {
                    match *row {
                        Some(r) => {
                            let raw = &table.row(r)[offset + k * len..offset + (k + 1) * len];
                            let s = String::from_utf8_lossy(raw);
                            b.append_value(s.trim_end_matches(['\0', ' ']));
                        }
                        None if count == 1 => b.append_null(),
                        None => b.append_value(""),
                    }
                }
            }
            Arc::new(b.finish())
        }
        ScalarKind::Bool => Arc::new(BooleanArray::from_iter(
            (0..n)
                .flat_map(|i| (0..count).map(move |k| (i, k)))
                .map(|(i, k)| (count > 1 || rows[i].is_some()).then(|| cell(i, k)[0] != 0)),
        )),
        ScalarKind::I8 => prim::<Int8Type>(n, count, &cell, |b| b[0] as i8),
        ScalarKind::U8 => prim::<UInt8Type>(n, count, &cell, |b| b[0]),
        ScalarKind::I16 => prim::<Int16Type>(n, count, &cell, |b| {
            i16::from_ne_bytes(b.try_into().expect("2 bytes"))
        }),
        ScalarKind::U16 => prim::<UInt16Type>(n, count, &cell, |b| {
            u16::from_ne_bytes(b.try_into().expect("2 bytes"))
        }),
        ScalarKind::I32 => prim::<Int32Type>(n, count, &cell, |b| {
            i32::from_ne_bytes(b.try_into().expect("4 bytes"))
        }),
        ScalarKind::U32 => prim::<UInt32Type>(n, count, &cell, |b| {
            u32::from_ne_bytes(b.try_into().expect("4 bytes"))
        }),
        // Signed or unsigned, the same bits: an ID matches whichever file it was read from.
        ScalarKind::I64 | ScalarKind::U64 if unsigned => prim::<UInt64Type>(n, count, &cell, |b| {
            u64::from_ne_bytes(b.try_into().expect("8 bytes"))
        }),
        ScalarKind::I64 => prim::<Int64Type>(n, count, &cell, |b| {
            i64::from_ne_bytes(b.try_into().expect("8 bytes"))
        }),
        ScalarKind::U64 => prim::<UInt64Type>(n, count, &cell, |b| {
            u64::from_ne_bytes(b.try_into().expect("8 bytes"))
        }),
        ScalarKind::F32 => prim::<Float32Type>(n, count, &cell, |b| {
            f32::from_ne_bytes(b.try_into().expect("4 bytes"))
        }),
        ScalarKind::F64 => prim::<Float64Type>(n, count, &cell, |b| {
            f64::from_ne_bytes(b.try_into().expect("8 bytes"))
        }),
    };
    if count == 1 {
        // Scalars carry the row nulls themselves (strings and booleans did it while building).
        return match nulls {
            Some(nulls) if !matches!(col.kind, ScalarKind::Str(_) | ScalarKind::Bool) => {
                arrow::array::make_array(
                    values
                        .to_data()
                        .into_builder()
                        .nulls(Some(nulls))
                        .build()
                        .expect("same length"),
                )
            }
            _ => values,
        };
    }
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), false));
    Arc::new(FixedSizeListArray::new(item, count as i32, values, nulls))
}

/// Zero bytes for the cells of rows a table does not have (masked by the null buffer).
static ZEROS: [u8; 8] = [0; 8];

/// A primitive array of `n * count` values decoded from the cells.
fn prim<'a, T: ArrowPrimitiveType>(
    n: usize,
    count: usize,
    cell: &dyn Fn(usize, usize) -> &'a [u8],
    decode: impl Fn(&[u8]) -> T::Native,
) -> ArrayRef {
    let values = (0..n).flat_map(|i| (0..count).map(move |k| (i, k)));
    Arc::new(PrimitiveArray::<T>::from_iter_values(
        values.map(|(i, k)| decode(cell(i, k))),
    ))
}

/// The data type of a table column in the catalog (what [`table_column`] builds).
pub fn column_type(col: &Column) -> DataType {
    let scalar = match col.kind {
        ScalarKind::Bool => DataType::Boolean,
        ScalarKind::I8 => DataType::Int8,
        ScalarKind::U8 => DataType::UInt8,
        ScalarKind::I16 => DataType::Int16,
        ScalarKind::U16 => DataType::UInt16,
        ScalarKind::I32 => DataType::Int32,
        ScalarKind::U32 => DataType::UInt32,
        ScalarKind::I64 if unsigned_id(&col.name) => DataType::UInt64,
        ScalarKind::I64 => DataType::Int64,
        ScalarKind::U64 => DataType::UInt64,
        ScalarKind::F32 => DataType::Float32,
        ScalarKind::F64 => DataType::Float64,
        ScalarKind::Str(_) => DataType::Utf8,
    };
    match col.count() {
        1 => scalar,
        n => DataType::FixedSizeList(Arc::new(Field::new_list_field(scalar, false)), n as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float32Type, UInt64Type};

    fn table() -> Table {
        let cols = vec![
            Column {
                name: "FIBERID".into(),
                kind: ScalarKind::I32,
                dims: vec![],
                unit: None,
            },
            Column {
                name: "SPECOBJID".into(),
                kind: ScalarKind::I64,
                dims: vec![],
                unit: None,
            },
            Column {
                name: "MAG".into(),
                kind: ScalarKind::F32,
                dims: vec![5],
                unit: None,
            },
            Column {
                name: "CLASS".into(),
                kind: ScalarKind::Str(6),
                dims: vec![],
                unit: None,
            },
        ];
        let mut t = Table::new(cols);
        for f in [7i32, 9] {
            let mut row = Vec::new();
            row.extend(f.to_ne_bytes());
            row.extend((-(f as i64)).to_ne_bytes());
            for k in 0..5 {
                row.extend((f as f32 + k as f32 / 10.0).to_ne_bytes());
            }
            row.extend(b"QSO\0\0\0");
            t.push_row(&row);
        }
        t
    }

    #[test]
    fn columns_follow_the_table_with_nulls_for_missing_rows() {
        let t = table();
        let rows = [Some(1), None, Some(0)];
        let id = table_column(&t, 1, &rows, true);
        let id = id.as_primitive::<UInt64Type>();
        assert_eq!(id.value(0), (-9i64) as u64);
        assert!(id.is_null(1));
        assert_eq!(id.value(2) as i64, -7);
        let mag = table_column(&t, 2, &rows, false);
        assert_eq!(mag.data_type(), &column_type(&t.columns()[2]));
        let mag = mag.as_fixed_size_list();
        assert!(mag.is_null(1));
        let third = mag.value(2);
        let third = third.as_primitive::<Float32Type>();
        assert_eq!(third.values().to_vec(), vec![7.0, 7.1, 7.2, 7.3, 7.4]);
        let class = table_column(&t, 3, &rows, false);
        let class = class.as_string::<i32>();
        assert_eq!(class.value(0), "QSO");
        assert!(class.is_null(1));
        assert_eq!(column_type(&t.columns()[1]), DataType::UInt64);
    }
}
