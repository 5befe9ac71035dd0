//! Generic tables: any FITS binary table as packed rows of an HDF5 compound type (plugmap, spall,
//! zline, zbest), with row selection, merging and sorting by fiber.

use hdf5::types::{CompoundField, CompoundType, FloatSize, IntSize, TypeDescriptor};
use hdf5::{Dataset, Datatype, Group};
use std::collections::HashMap;

use crate::raw;
use model::layout;

/// The key column of SDSS-I–IV tables.
const FIBERID: &str = "FIBERID";

/// Element type of a table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ScalarKind {
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    /// A fixed-length byte string of this many bytes.
    Str(usize),
}

impl ScalarKind {
    /// Size in bytes of one element.
    pub fn size(self) -> usize {
        match self {
            Self::Bool | Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
            Self::Str(n) => n,
        }
    }

    /// True for the integer kinds.
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Self::I8
                | Self::U8
                | Self::I16
                | Self::U16
                | Self::I32
                | Self::U32
                | Self::I64
                | Self::U64
        )
    }

    fn descriptor(self) -> TypeDescriptor {
        use TypeDescriptor as T;
        match self {
            Self::Bool => T::Boolean,
            Self::I8 => T::Integer(IntSize::U1),
            Self::U8 => T::Unsigned(IntSize::U1),
            Self::I16 => T::Integer(IntSize::U2),
            Self::U16 => T::Unsigned(IntSize::U2),
            Self::I32 => T::Integer(IntSize::U4),
            Self::U32 => T::Unsigned(IntSize::U4),
            Self::I64 => T::Integer(IntSize::U8),
            Self::U64 => T::Unsigned(IntSize::U8),
            Self::F32 => T::Float(FloatSize::U4),
            Self::F64 => T::Float(FloatSize::U8),
            Self::Str(n) => T::FixedAscii(n),
        }
    }

    fn from_descriptor(d: &TypeDescriptor) -> Option<Self> {
        use TypeDescriptor as T;
        Some(match d {
            T::Boolean => Self::Bool,
            T::Integer(IntSize::U1) => Self::I8,
            T::Unsigned(IntSize::U1) => Self::U8,
            T::Integer(IntSize::U2) => Self::I16,
            T::Unsigned(IntSize::U2) => Self::U16,
            T::Integer(IntSize::U4) => Self::I32,
            T::Unsigned(IntSize::U4) => Self::U32,
            T::Integer(IntSize::U8) => Self::I64,
            T::Unsigned(IntSize::U8) => Self::U64,
            T::Float(FloatSize::U4) => Self::F32,
            T::Float(FloatSize::U8) => Self::F64,
            T::FixedAscii(n) | T::FixedUnicode(n) => Self::Str(*n),
            _ => return None,
        })
    }
}

/// One column: name (upper case), element kind, shape of one cell (numpy order, empty for a scalar).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: ScalarKind,
    pub dims: Vec<usize>,
    pub unit: Option<String>,
}

/// The index of the column `name` among `columns`, matched case-insensitively (as FITS matches
/// TTYPE names).
pub fn column_position(columns: &[Column], name: &str) -> Option<usize> {
    columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
}

impl Column {
    /// Number of elements in one cell.
    pub fn count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Bytes of one cell.
    pub fn size(&self) -> usize {
        self.kind.size() * self.count()
    }

    fn descriptor(&self) -> TypeDescriptor {
        self.dims
            .iter()
            .rev()
            .fold(self.kind.descriptor(), |inner, &n| {
                TypeDescriptor::FixedArray(Box::new(inner), n)
            })
    }
}

/// Error for a table whose HDF5 type this module cannot represent.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    Hdf5(#[from] hdf5::Error),
    #[error("dataset {path} is not a table of a supported compound type ({why})")]
    NotATable { path: String, why: String },
    #[error("table {table}: the columns differ from the table already in the store ({why})")]
    SchemaMismatch { table: String, why: String },
}

/// Rows of packed bytes (native endian, no padding) with their column schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    columns: Vec<Column>,
    offsets: Vec<usize>,
    row_size: usize,
    data: Vec<u8>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: Vec<Column>) -> Self {
        let mut offsets = Vec::with_capacity(columns.len());
        let mut row_size = 0;
        for c in &columns {
            offsets.push(row_size);
            row_size += c.size();
        }
        Self {
            columns,
            offsets,
            row_size,
            data: Vec::new(),
        }
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Byte offset of each column within a row.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    pub fn row_size(&self) -> usize {
        self.row_size
    }

    pub fn num_rows(&self) -> usize {
        self.data.len().checked_div(self.row_size).unwrap_or(0)
    }

    /// The packed bytes of row `i`.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.data[i * self.row_size..(i + 1) * self.row_size]
    }

    /// All rows, packed.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Appends one packed row (its length must be [`Table::row_size`]).
    pub fn push_row(&mut self, row: &[u8]) {
        assert_eq!(row.len(), self.row_size, "row of the wrong size");
        self.data.extend_from_slice(row);
    }

    /// Appends `n` rows of zeros and gives their bytes to fill (a reader converting cells in place).
    pub fn push_zeroed_rows(&mut self, n: usize) -> &mut [u8] {
        let at = self.data.len();
        self.data.resize(at + n * self.row_size, 0);
        &mut self.data[at..]
    }

    /// Index of a column, matched case-insensitively.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        column_position(&self.columns, name)
    }

    /// Integer value of a scalar integer column in row `i`.
    pub fn int_value(&self, row: usize, col: usize) -> Option<i64> {
        let c = &self.columns[col];
        if c.count() != 1 {
            return None;
        }
        let b = &self.row(row)[self.offsets[col]..self.offsets[col] + c.size()];
        Some(match c.kind {
            ScalarKind::Bool => b[0] as i64,
            ScalarKind::I8 => b[0] as i8 as i64,
            ScalarKind::U8 => b[0] as i64,
            ScalarKind::I16 => i16::from_ne_bytes(b.try_into().ok()?) as i64,
            ScalarKind::U16 => u16::from_ne_bytes(b.try_into().ok()?) as i64,
            ScalarKind::I32 => i32::from_ne_bytes(b.try_into().ok()?) as i64,
            ScalarKind::U32 => u32::from_ne_bytes(b.try_into().ok()?) as i64,
            ScalarKind::I64 => i64::from_ne_bytes(b.try_into().ok()?),
            ScalarKind::U64 => u64::from_ne_bytes(b.try_into().ok()?) as i64,
            _ => return None,
        })
    }

    /// Float value of a scalar numeric column in row `i`.
    pub fn float_value(&self, row: usize, col: usize) -> Option<f64> {
        let c = &self.columns[col];
        let b = &self.row(row)[self.offsets[col]..self.offsets[col] + c.size()];
        match c.kind {
            ScalarKind::F32 if c.count() == 1 => {
                Some(f32::from_ne_bytes(b.try_into().ok()?) as f64)
            }
            ScalarKind::F64 if c.count() == 1 => Some(f64::from_ne_bytes(b.try_into().ok()?)),
            _ => self.int_value(row, col).map(|v| v as f64),
        }
    }

    /// String value of a string column in row `i`, without trailing NULs and blanks.
    pub fn str_value(&self, row: usize, col: usize) -> Option<String> {
        let c = &self.columns[col];
        let ScalarKind::Str(n) = c.kind else {
            return None;
        };
        let b = &self.row(row)[self.offsets[col]..self.offsets[col] + n];
        let s = String::from_utf8_lossy(b);
        Some(s.trim_end_matches(['\0', ' ']).to_string())
    }

    /// Values of a scalar float32 column, None when the column is missing or of another type.
    pub fn f32_column(&self, name: &str) -> Option<Vec<f32>> {
        self.scalar_column(name, ScalarKind::F32, f32::from_ne_bytes)
    }

    /// Values of a scalar int32 column, None when the column is missing or of another type.
    pub fn i32_column(&self, name: &str) -> Option<Vec<i32>> {
        self.scalar_column(name, ScalarKind::I32, i32::from_ne_bytes)
    }

    fn scalar_column<T, const N: usize>(
        &self,
        name: &str,
        kind: ScalarKind,
        from: fn([u8; N]) -> T,
    ) -> Option<Vec<T>> {
        let col = self.column_index(name)?;
        let c = &self.columns[col];
        if c.kind != kind || c.count() != 1 {
            return None;
        }
        let off = self.offsets[col];
        Some(
            self.data
                .chunks_exact(self.row_size)
                .map(|row| from(row[off..off + N].try_into().expect("N bytes")))
                .collect(),
        )
    }

    /// The values of a scalar integer key column (FIBERID, TARGET_INDEX, TARGETID), None when the
    /// table has no such column.
    pub fn key_values(&self, key: &str) -> Option<Vec<i64>> {
        let col = self.column_index(key)?;
        (0..self.num_rows())
            .map(|r| self.int_value(r, col))
            .collect()
    }

    /// The rows of each key value, as bytes in table order.
    pub fn key_rows(&self, key: &str) -> Option<HashMap<i64, Vec<&[u8]>>> {
        let ids = self.key_values(key)?;
        let mut out: HashMap<i64, Vec<&[u8]>> = HashMap::new();
        for (r, k) in ids.into_iter().enumerate() {
            out.entry(k).or_default().push(self.row(r));
        }
        Some(out)
    }

    /// Sorts the rows by a key column (stable: rows of one key keep their order).
    pub fn sort_by_key(&mut self, key: &str) {
        let Some(keys) = self.key_values(key) else {
            return;
        };
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&r| keys[r]);
        let mut data = Vec::with_capacity(self.data.len());
        for r in order {
            data.extend_from_slice(self.row(r));
        }
        self.data = data;
    }

    /// A new table of the rows `order` (indices of this table's rows, in the new order) with a
    /// leading int32 column `name` whose value in new row `j` is `keys[j]`.
    pub fn reordered_with_key(&self, name: &str, order: &[usize], keys: &[i32]) -> Table {
        let mut columns = vec![Column {
            name: name.to_ascii_uppercase(),
            kind: ScalarKind::I32,
            dims: Vec::new(),
            unit: None,
        }];
        columns.extend(
            self.columns
                .iter()
                .filter(|c| !c.name.eq_ignore_ascii_case(name))
                .cloned(),
        );
        let kept: Vec<usize> = (0..self.columns.len())
            .filter(|&c| !self.columns[c].name.eq_ignore_ascii_case(name))
            .collect();
        let mut out = Table::new(columns);
        out.data.reserve(order.len() * out.row_size);
        for (&r, &k) in order.iter().zip(keys) {
            out.data.extend_from_slice(&k.to_ne_bytes());
            let row = self.row(r);
            for &c in &kept {
                let at = self.offsets[c];
                out.data
                    .extend_from_slice(&row[at..at + self.columns[c].size()]);
            }
        }
        out
    }

    /// The FIBERID of every row (SDSS-I–IV tables), None without a FIBERID column.
    pub fn fiber_ids(&self) -> Option<Vec<i32>> {
        Some(
            self.key_values(FIBERID)?
                .into_iter()
                .map(|v| v as i32)
                .collect(),
        )
    }

    /// The rows of each fiber, as bytes in table order.
    pub fn fiber_rows(&self) -> Option<HashMap<i32, Vec<&[u8]>>> {
        Some(
            self.key_rows(FIBERID)?
                .into_iter()
                .map(|(k, v)| (k as i32, v))
                .collect(),
        )
    }

    /// True when both tables have the same columns (names, kinds, shapes).
    pub fn same_schema(&self, other: &Table) -> bool {
        self.columns.len() == other.columns.len()
            && self
                .columns
                .iter()
                .zip(&other.columns)
                .all(|(a, b)| a.name == b.name && a.kind == b.kind && a.dims == b.dims)
    }

    /// A table with the same columns holding the rows for which `keep(row_index)` is true.
    pub fn filter_rows(&self, mut keep: impl FnMut(usize) -> bool) -> Table {
        let mut out = Table {
            data: Vec::new(),
            ..self.clone_schema()
        };
        for r in (0..self.num_rows()).filter(|&r| keep(r)) {
            out.push_row(self.row(r));
        }
        out
    }

    /// Appends every row of `other`. The columns must match by name, kind and shape, except that
    /// fixed-length strings may differ in width (FITS writers size them per file): the wider wins.
    pub fn append(&mut self, other: &Table, table_name: &str) -> Result<(), TableError> {
        if self.same_schema(other) {
            self.data.extend_from_slice(&other.data);
            return Ok(());
        }
        let columns = unified_columns(&self.columns, &other.columns).map_err(|why| {
            TableError::SchemaMismatch {
                table: table_name.to_string(),
                why,
            }
        })?;
        let mut merged = self.repack(&columns);
        merged.data.extend_from_slice(&other.repack(&columns).data);
        *self = merged;
        Ok(())
    }

    /// The same rows laid out with `columns` (the same names in any order; strings as wide or
    /// wider, NUL padded).
    fn repack(&self, columns: &[Column]) -> Table {
        let mut out = Table::new(columns.to_vec());
        if out.columns == self.columns {
            out.data = self.data.clone();
            return out;
        }
        let sources: Vec<usize> = columns
            .iter()
            .map(|c| {
                self.column_index(&c.name)
                    .expect("unified columns come from both tables")
            })
            .collect();
        let mut row = vec![0u8; out.row_size];
        for r in 0..self.num_rows() {
            row.fill(0);
            let src = self.row(r);
            for (i, &j) in sources.iter().enumerate() {
                let c = &self.columns[j];
                let cell = &src[self.offsets[j]..self.offsets[j] + c.size()];
                let dst = out.offsets[i];
                match (c.kind, out.columns[i].kind) {
                    (ScalarKind::Str(from), ScalarKind::Str(to)) => {
                        for e in 0..c.count() {
                            row[dst + e * to..dst + e * to + from]
                                .copy_from_slice(&cell[e * from..(e + 1) * from]);
                        }
                    }
                    _ => row[dst..dst + cell.len()].copy_from_slice(cell),
                }
            }
            out.push_row(&row);
        }
        out
    }

    /// Sorts the rows by FIBERID (stable).
    pub fn sort_by_fiber(&mut self) {
        self.sort_by_key(FIBERID);
    }

    fn clone_schema(&self) -> Table {
        Table::new(self.columns.clone())
    }

    /// The HDF5 compound type of one row.
    pub fn descriptor(&self) -> TypeDescriptor {
        let fields = self
            .columns
            .iter()
            .zip(&self.offsets)
            .enumerate()
            .map(|(index, (c, &offset))| CompoundField {
                name: c.name.clone(),
                ty: c.descriptor(),
                offset,
                index,
            })
            .collect();
        TypeDescriptor::Compound(CompoundType {
            fields,
            size: self.row_size,
        })
    }

    /// Writes the table as dataset `name` of `group`, replacing any dataset of that name.
    pub fn write(&self, group: &Group, name: &str) -> Result<Dataset, TableError> {
        if group.link_exists(name) {
            group.unlink(name)?;
        }
        let ds = Self::create_dataset(group, name, &self.columns, self.num_rows())?;
        let dtype = Datatype::from_descriptor(&self.descriptor())?;
        raw::write_all(&ds, &dtype, &self.data)?;
        Ok(ds)
    }

    /// Creates an empty table dataset of `rows` rows with these columns: the file type is packed
    /// exactly like [`Table::bytes`] (so writes need no conversion), and the unit of each column is
    /// the attribute `<COLUMN>_UNIT`.
    pub fn create_dataset(
        group: &Group,
        name: &str,
        columns: &[Column],
        rows: usize,
    ) -> Result<Dataset, TableError> {
        let descriptor = Table::new(columns.to_vec()).descriptor();
        let ds = group
            .new_dataset_builder()
            .packed(true)
            .fill_time(crate::tuning::FILL_TIME)
            .empty_as(&descriptor)
            .shape(rows)
            .create(name)?;
        for c in columns {
            if let Some(unit) = &c.unit {
                crate::attrs::write_attr(
                    &ds,
                    &layout::unit_attr(&c.name),
                    &crate::attrs::AttrValue::Str(unit.clone()),
                )?;
            }
        }
        Ok(ds)
    }

    /// Reads a table written by [`Table::write`] (or any 1-D compound dataset of supported types).
    pub fn read(ds: &Dataset) -> Result<Table, TableError> {
        let path = ds.name();
        let not_table = |why: &str| TableError::NotATable {
            path: path.clone(),
            why: why.to_string(),
        };
        let TypeDescriptor::Compound(compound) = ds.dtype()?.to_descriptor()? else {
            return Err(not_table("not a compound"));
        };
        let mut columns = Vec::with_capacity(compound.fields.len());
        for f in &compound.fields {
            let mut dims = Vec::new();
            let mut ty = &f.ty;
            while let TypeDescriptor::FixedArray(inner, n) = ty {
                dims.push(*n);
                ty = inner;
            }
            let kind = ScalarKind::from_descriptor(ty)
                .ok_or_else(|| not_table(&format!("field {} has type {ty:?}", f.name)))?;
            let unit = crate::attrs::read_str_attr(ds, &layout::unit_attr(&f.name));
            columns.push(Column {
                name: f.name.clone(),
                kind,
                dims,
                unit,
            });
        }
        let mut table = Table::new(columns);
        let dtype = Datatype::from_descriptor(&table.descriptor())?;
        table.data = raw::read_all(ds, &dtype, ds.size() * table.row_size)?;
        Ok(table)
    }
}

/// The common schema of two tables with the same column names (in any order) and kinds, except that
/// strings may differ in width (the wider wins) and integers of one size in signedness (the first
/// table's kind wins: the bits are the same, as for SPECOBJID with or without TZERO); or what differs.
fn unified_columns(a: &[Column], b: &[Column]) -> Result<Vec<Column>, String> {
    if a.len() != b.len() {
        return Err(format!("{} columns against {}", b.len(), a.len()));
    }
    a.iter()
        .map(|x| {
            let y = b
                .iter()
                .find(|y| y.name == x.name)
                .ok_or_else(|| format!("no column {}", x.name))?;
            if x.dims != y.dims {
                return Err(format!(
                    "column {} has shape {:?}, not {:?}",
                    x.name, y.dims, x.dims
                ));
            }
            match (x.kind, y.kind) {
                (ScalarKind::Str(m), ScalarKind::Str(n)) => Ok(Column {
                    kind: ScalarKind::Str(m.max(n)),
                    ..x.clone()
                }),
                (k, l) if k == l || (k.is_integer() && l.is_integer() && k.size() == l.size()) => {
                    Ok(x.clone())
                }
                (k, l) => Err(format!("column {} is {l:?}, not {k:?}", x.name)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let cols = vec![
            Column {
                name: "FIBERID".into(),
                kind: ScalarKind::I32,
                dims: vec![],
                unit: None,
            },
            Column {
                name: "CLASS".into(),
                kind: ScalarKind::Str(6),
                dims: vec![],
                unit: None,
            },
            Column {
                name: "MAG".into(),
                kind: ScalarKind::F32,
                dims: vec![5],
                unit: Some("nmgy".into()),
            },
        ];
        let mut t = Table::new(cols);
        for (fiber, class) in [(7i32, "QSO"), (3, "GALAXY"), (7, "STAR")] {
            let mut row = fiber.to_ne_bytes().to_vec();
            let mut s = class.as_bytes().to_vec();
            s.resize(6, 0);
            row.extend(s);
            (0..5).for_each(|i| row.extend((i as f32 + fiber as f32).to_ne_bytes()));
            t.push_row(&row);
        }
        t
    }

    #[test]
    fn sorts_by_fiber_stably_and_filters() {
        let mut t = sample();
        assert_eq!(t.row_size(), 4 + 6 + 20);
        t.sort_by_fiber();
        assert_eq!(t.fiber_ids().unwrap(), [3, 7, 7]);
        assert_eq!(t.str_value(1, 1).unwrap(), "QSO");
        assert_eq!(t.str_value(2, 1).unwrap(), "STAR");
        let f = t.filter_rows(|r| r != 0);
        assert_eq!(f.fiber_ids().unwrap(), [7, 7]);
    }

    #[test]
    fn appends_widen_strings() {
        let mut a = sample();
        let cols = vec![
            Column {
                name: "FIBERID".into(),
                kind: ScalarKind::I32,
                dims: vec![],
                unit: None,
            },
            Column {
                name: "CLASS".into(),
                kind: ScalarKind::Str(9),
                dims: vec![],
                unit: None,
            },
            Column {
                name: "MAG".into(),
                kind: ScalarKind::F32,
                dims: vec![5],
                unit: Some("nmgy".into()),
            },
        ];
        let mut b = Table::new(cols);
        let mut row = 1i32.to_ne_bytes().to_vec();
        row.extend(b"SUPERNOVA");
        row.extend([0u8; 20]);
        b.push_row(&row);
        a.append(&b, "t").unwrap();
        assert_eq!(a.num_rows(), 4);
        assert_eq!(a.columns()[1].kind, ScalarKind::Str(9));
        assert_eq!(a.str_value(0, 1).unwrap(), "QSO");
        assert_eq!(a.str_value(3, 1).unwrap(), "SUPERNOVA");
        assert_eq!(a.float_value(0, 2), None);
        let mut bad = Table::new(vec![Column {
            name: "X".into(),
            kind: ScalarKind::I32,
            dims: vec![],
            unit: None,
        }]);
        bad.push_row(&[0; 4]);
        assert!(a.append(&bad, "t").is_err());
    }

    #[test]
    fn round_trips_through_hdf5() {
        let dir = std::env::temp_dir().join(format!("store-table-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.h5");
        let t = sample();
        {
            let f = hdf5::File::create(&path).unwrap();
            t.write(&f, "tab").unwrap();
        }
        let f = hdf5::File::open(&path).unwrap();
        let back = Table::read(&f.dataset("tab").unwrap()).unwrap();
        assert_eq!(back, t);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
