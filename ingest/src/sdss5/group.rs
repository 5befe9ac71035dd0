//! One SDSS-V field-MJD in memory — coadds and exposures by TARGET_INDEX, tables, header — and its
//! form in the merged layout (docs/store-layout.md): the batch of a run is merged into what the
//! store file holds by the same rules as for SDSS-I–IV, and the file is written anew.
//!
//! Which copy of a target's coadd is kept: an spField's wins over a spec file's (a later spField
//! replaces coadds that came from spec files); otherwise the copy already in the store wins, then
//! the first input in path order. Two copies that differ are a conflict, reported. Table rows: the
//! first source of a target's rows wins, and rows that differ are a conflict.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;
use model::layout::{self, sdss5, PlateTable};
use model::{FieldMjd, GroupId, SpectrumId};
use store::merged::{Array, Block, MergedGroup};
use store::records::{coadd_units, DEFAULT_FLUX_UNIT};

use store::{AttrValue, Table};

use super::decode::{Contribution, Exposure, Pixels};
use super::names::store as names;
use crate::writer::{Conflict, ConflictRule, HEADER_SOURCE_ATTR};

/// The coadds block and the exposures parent group.
const COADDS: &str = layout::COADDS;
const EXPOSURES: &str = layout::EXPOSURES;
const PIX0: &str = layout::PIX0;
const NPIX: &str = layout::NPIX;
const HEADER_FROM_FIELD: &str = "spField";
const HEADER_FROM_SPEC: &str = "spec";

/// A coadd and where it came from.
#[derive(Debug, Clone)]
pub struct CoaddEntry {
    pub catalogid: i64,
    pub pixels: Pixels,
    pub from_field: bool,
    pub file: PathBuf,
}

/// One exposure's rows.
#[derive(Debug, Clone, Default)]
pub struct ExposureBlock {
    pub header: Vec<(String, AttrValue)>,
    /// TARGET_INDEX → (HDU name, pixels).
    pub rows: BTreeMap<i64, (String, Pixels)>,
}

/// A field-MJD's content (what a store file holds, or what a run adds).
#[derive(Debug, Default)]
pub struct Content {
    /// The primary header and whether it is an spField's.
    pub header: Option<(Vec<(String, AttrValue)>, bool)>,
    pub flux_unit: Option<String>,
    pub coadds: BTreeMap<i64, CoaddEntry>,
    pub exposures: BTreeMap<i64, ExposureBlock>,
    pub tables: BTreeMap<PlateTable, Table>,
    /// The file each target's table rows came from (for conflict messages).
    pub table_origin: HashMap<(PlateTable, i64), PathBuf>,
    /// Per table, its rows by TARGET_INDEX and the row count that index covers (rebuilt when the
    /// table has another count): a run adds a thousand spec files' rows one file at a time.
    key_index: HashMap<PlateTable, (usize, HashMap<i64, Vec<usize>>)>,
}

/// What merging a run into the store changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Changes {
    pub added: usize,
    pub replaced: usize,
    pub changed: bool,
}

fn spectrum(group: FieldMjd, target: i64) -> String {
    SpectrumId::new(group, target).to_string()
}

/// The row numbers of each TARGET_INDEX of a table.
fn rows_by_key(t: &Table) -> (usize, HashMap<i64, Vec<usize>>) {
    let mut index: HashMap<i64, Vec<usize>> = HashMap::new();
    for (r, k) in t
        .key_values(sdss5::TARGET_INDEX)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        index.entry(k).or_default().push(r);
    }
    (t.num_rows(), index)
}

/// What adding a table's rows to the kept table of the same name did.
struct RowsMerged {
    /// Keys whose rows differ from the kept ones (tables of one schema only), sorted.
    differing: Vec<i64>,
    /// Whether rows of new keys were appended.
    appended: bool,
}

/// Appends to `kept` the rows of `new` whose TARGET_INDEX it lacks (the first source of a target's
/// rows wins) and reports the targets whose rows differ. `index` is `kept`'s rows by key, kept
/// current as rows are appended.
fn merge_rows(
    kept: &mut Table,
    index: &mut HashMap<i64, Vec<usize>>,
    new: &Table,
    name: PlateTable,
) -> Result<RowsMerged, store::TableError> {
    let keys = new.key_values(sdss5::TARGET_INDEX).unwrap_or_default();
    let same_schema = kept.same_schema(new);
    let mut new_rows: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (r, &k) in keys.iter().enumerate() {
        new_rows.entry(k).or_default().push(r);
    }
    let differing = new_rows
        .iter()
        .filter(|(k, rows)| {
            same_schema
                && index.get(k).is_some_and(|kr| {
                    kr.len() != rows.len()
                        || kr
                            .iter()
                            .zip(*rows)
                            .any(|(&a, &b)| kept.row(a) != new.row(b))
                })
        })
        .map(|(k, _)| *k)
        .collect();
    let fresh: Vec<usize> = (0..keys.len())
        .filter(|&r| !index.contains_key(&keys[r]))
        .collect();
    let appended = !fresh.is_empty();
    if appended {
        let base = kept.num_rows();
        let mut take = fresh.iter().copied().peekable();
        kept.append(
            &new.filter_rows(|r| take.next_if_eq(&r).is_some()),
            name.name(),
        )?;
        for (i, r) in fresh.into_iter().enumerate() {
            index.entry(keys[r]).or_default().push(base + i);
        }
    }
    Ok(RowsMerged {
        differing,
        appended,
    })
}

impl Content {
    /// Adds one file's contribution to a run's batch (first input wins, spField over spec).
    pub fn add(
        &mut self,
        group: FieldMjd,
        file: &Path,
        c: Contribution,
        conflicts: &mut Vec<Conflict>,
    ) -> Result<(), store::TableError> {
        let from_field = c.header.as_ref().is_some_and(|h| h.1);
        for (name, table) in c.tables {
            self.add_table(group, file, name, table, conflicts)?;
        }
        if let Some((cards, from_field)) = c.header {
            if self.header.as_ref().is_none_or(|(_, f)| from_field && !f) {
                self.header = Some((cards, from_field));
            }
        }
        if self.flux_unit.is_none() {
            self.flux_unit = c.flux_unit;
        }
        for coadd in c.coadds {
            let new = CoaddEntry {
                catalogid: coadd.catalogid,
                pixels: coadd.pixels,
                from_field,
                file: file.to_path_buf(),
            };
            match self.coadds.get(&coadd.target_index) {
                None => {
                    self.coadds.insert(coadd.target_index, new);
                }
                Some(old) if same_pixels(&old.pixels, &new.pixels) => {}
                Some(old) => {
                    let field_wins = new.from_field && !old.from_field;
                    let rule = if field_wins || (old.from_field && !new.from_field) {
                        ConflictRule::SpfieldOverSpec
                    } else {
                        ConflictRule::FirstInput
                    };
                    let (kept, dropped) = if field_wins {
                        (&new.file, &old.file)
                    } else {
                        (&old.file, &new.file)
                    };
                    conflicts.push(Conflict {
                        fiber: spectrum(group, coadd.target_index),
                        kept: kept.display().to_string(),
                        dropped: dropped.display().to_string(),
                        rule,
                        table: None,
                    });
                    if field_wins {
                        self.coadds.insert(coadd.target_index, new);
                    }
                }
            }
        }
        for (target, e) in c.exposures {
            self.add_exposure(target, e);
        }
        Ok(())
    }

    fn add_exposure(&mut self, target: i64, e: Exposure) {
        let block = self.exposures.entry(e.number).or_default();
        if block.header.is_empty() {
            block.header = e.header;
        }
        block.rows.entry(target).or_insert((e.extname, e.pixels));
    }

    fn add_table(
        &mut self,
        group: FieldMjd,
        file: &Path,
        name: PlateTable,
        table: Table,
        conflicts: &mut Vec<Conflict>,
    ) -> Result<(), store::TableError> {
        let key = sdss5::TARGET_INDEX;
        let keys = table.key_values(key).unwrap_or_default();
        for &k in &keys {
            self.table_origin
                .entry((name, k))
                .or_insert_with(|| file.to_path_buf());
        }
        match self.tables.get_mut(&name) {
            None => {
                self.tables.insert(name, table);
            }
            Some(t) => {
                let entry = self.key_index.entry(name).or_default();
                if entry.0 != t.num_rows() {
                    *entry = rows_by_key(t);
                }
                let (indexed, index) = entry;
                for k in merge_rows(t, index, &table, name)?.differing {
                    let kept = self.table_origin.get(&(name, k));
                    conflicts.push(Conflict {
                        fiber: spectrum(group, k),
                        kept: kept.map_or(String::new(), |p| p.display().to_string()),
                        dropped: file.display().to_string(),
                        rule: ConflictRule::FirstInput,
                        table: Some(name.name().to_string()),
                    });
                }
                *indexed = t.num_rows();
            }
        }
        Ok(())
    }

    /// The targets that have a row in table `t`.
    pub fn table_keys(&self, t: PlateTable) -> BTreeSet<i64> {
        self.tables
            .get(&t)
            .and_then(|t| t.key_values(sdss5::TARGET_INDEX))
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    /// Merges a run's batch into this (the store's) content; returns what changed.
    pub fn merge(
        &mut self,
        group: FieldMjd,
        store_path: &Path,
        batch: Content,
        conflicts: &mut Vec<Conflict>,
    ) -> Result<Changes, store::TableError> {
        let mut ch = Changes::default();
        let store_name = store_path.display().to_string();
        for (target, new) in batch.coadds {
            match self.coadds.get(&target) {
                None => {
                    self.coadds.insert(target, new);
                    ch.added += 1;
                    ch.changed = true;
                }
                Some(old)
                    if same_pixels(&old.pixels, &new.pixels) && old.catalogid == new.catalogid => {}
                Some(old) => {
                    let field_wins = new.from_field && !old.from_field;
                    conflicts.push(Conflict {
                        fiber: spectrum(group, target),
                        kept: if field_wins {
                            new.file.display().to_string()
                        } else {
                            store_name.clone()
                        },
                        dropped: if field_wins {
                            store_name.clone()
                        } else {
                            new.file.display().to_string()
                        },
                        rule: if field_wins || old.from_field {
                            ConflictRule::SpfieldOverSpec
                        } else {
                            ConflictRule::StoreFirst
                        },
                        table: None,
                    });
                    if field_wins {
                        self.coadds.insert(target, new);
                        ch.replaced += 1;
                        ch.changed = true;
                    }
                }
            }
        }
        for (number, block) in batch.exposures {
            let mine = self.exposures.entry(number).or_default();
            if mine.header.is_empty() {
                mine.header = block.header;
            }
            for (target, row) in block.rows {
                if let std::collections::btree_map::Entry::Vacant(v) = mine.rows.entry(target) {
                    v.insert(row);
                    ch.changed = true;
                }
            }
        }
        for (name, table) in batch.tables {
            match self.tables.get_mut(&name) {
                None => {
                    self.tables.insert(name, table);
                    ch.changed = true;
                }
                Some(t) => {
                    let merged = merge_rows(t, &mut rows_by_key(t).1, &table, name)?;
                    for k in merged.differing {
                        let dropped = batch.table_origin.get(&(name, k));
                        conflicts.push(Conflict {
                            fiber: spectrum(group, k),
                            kept: store_name.clone(),
                            dropped: dropped.map_or(String::new(), |d| d.display().to_string()),
                            rule: ConflictRule::StoreFirst,
                            table: Some(name.name().to_string()),
                        });
                    }
                    ch.changed |= merged.appended;
                }
            }
        }
        let header_needed = match (&batch.header, &self.header) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((_, new_field)), Some((_, old_field))) => *new_field && !old_field,
        };
        if header_needed {
            self.header = batch.header;
            self.flux_unit = batch.flux_unit;
            ch.changed = true;
        } else if self.flux_unit.is_none() {
            self.flux_unit = batch.flux_unit;
        }
        Ok(ch)
    }

    /// The content in the merged layout.
    pub fn to_merged(&self, group: FieldMjd) -> MergedGroup {
        let mut attrs: Vec<(String, AttrValue)> = self
            .header
            .as_ref()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        let source = match &self.header {
            Some((_, true)) => HEADER_FROM_FIELD,
            _ => HEADER_FROM_SPEC,
        };
        attrs.push((
            HEADER_SOURCE_ATTR.to_string(),
            AttrValue::Str(source.into()),
        ));
        let flux_unit = self.flux_unit.as_deref().unwrap_or(DEFAULT_FLUX_UNIT);
        for (field, unit) in coadd_units(flux_unit)
            .into_iter()
            .chain([(names::WRESL, store::records::WAVE_UNIT.to_string())])
        {
            attrs.push((layout::coadd_unit_attr(field), AttrValue::Str(unit)));
        }
        let mut blocks = Vec::new();
        let coadds: Vec<(i64, i64, &Pixels, Option<&str>)> = self
            .coadds
            .iter()
            .map(|(t, c)| (*t, c.catalogid, &c.pixels, None))
            .collect();
        if !coadds.is_empty() {
            blocks.push(rows_block(COADDS, Vec::new(), &coadds, true));
        }
        if !self.exposures.is_empty() {
            blocks.push(Block {
                path: EXPOSURES.to_string(),
                ..Block::default()
            });
            for (number, e) in &self.exposures {
                let rows: Vec<(i64, i64, &Pixels, Option<&str>)> = e
                    .rows
                    .iter()
                    .map(|(t, (name, p))| (*t, 0, p, Some(name.as_str())))
                    .collect();
                blocks.push(rows_block(
                    &format!("{EXPOSURES}/{number}"),
                    e.header.clone(),
                    &rows,
                    false,
                ));
            }
        }
        let tables = self
            .tables
            .iter()
            .map(|(name, t)| {
                let mut t = t.clone();
                t.sort_by_key(sdss5::TARGET_INDEX);
                (name.name().to_string(), t)
            })
            .collect();
        MergedGroup {
            group: GroupId::Field(group),
            row_key: sdss5::TARGET_INDEX.to_string(),
            attrs,
            blocks,
            tables,
        }
    }

    /// The content of a store file in the merged layout (what [`Content::to_merged`] wrote).
    pub fn from_merged(g: MergedGroup, path: &Path) -> Result<Self, String> {
        let mut c = Content::default();
        let mut header = Vec::new();
        let mut from_field = false;
        for (k, v) in g.attrs {
            if k == HEADER_SOURCE_ATTR {
                from_field = v == AttrValue::Str(HEADER_FROM_FIELD.into());
            } else if k.starts_with("COADD_") && k.ends_with("_UNIT") {
                if k == layout::coadd_unit_attr(names::FLUX) {
                    if let AttrValue::Str(u) = v {
                        c.flux_unit = Some(u);
                    }
                }
            } else {
                header.push((k, v));
            }
        }
        c.header = Some((header, from_field));
        for b in &g.blocks {
            if b.path == COADDS {
                for (target, catalogid, pixels, _) in read_rows_block(b)? {
                    c.coadds.insert(
                        target,
                        CoaddEntry {
                            catalogid,
                            pixels,
                            from_field,
                            file: path.to_path_buf(),
                        },
                    );
                }
            } else if let Some(n) = b.path.strip_prefix(&format!("{EXPOSURES}/")) {
                let number: i64 = n
                    .parse()
                    .map_err(|_| format!("{}: not an exposure number", b.path))?;
                let mut header = b.attrs.clone();
                header.retain(|(k, _)| k != layout::LOGLAM0_ATTR && k != layout::COEFF1_ATTR);
                let mut block = ExposureBlock {
                    header,
                    rows: BTreeMap::new(),
                };
                for (target, _, pixels, name) in read_rows_block(b)? {
                    block
                        .rows
                        .insert(target, (name.unwrap_or_default(), pixels));
                }
                c.exposures.insert(number, block);
            }
        }
        for (name, t) in g.tables {
            let Some(pt) = PlateTable::ALL.into_iter().find(|p| p.name() == name) else {
                continue;
            };
            c.tables.insert(pt, t);
        }
        Ok(c)
    }
}

/// Two copies of a spectrum are the same when they sit at the same place on the grid and every
/// measured column they both have is equal; a column only one has must hold nothing but padding (a
/// store block has the union of its rows' columns). WAVE is not compared: it is computed from the
/// grid position (spField: COEFF0 + COEFF1 i in float64; spec file: its float32 LOGLAM), and the
/// same position gives wavelengths that differ in the last bits.
pub fn same_pixels(a: &Pixels, b: &Pixels) -> bool {
    if a.i0 != b.i0 || a.len != b.len {
        return false;
    }
    let measured = |name: &str| name != names::WAVE;
    let only_padding = |name: &str, (int, v): &(bool, Vec<u32>)| {
        v.iter()
            .enumerate()
            .all(|(k, &x)| x == pad(name, *int, a.i0 + k as i64))
    };
    a.columns
        .iter()
        .filter(|(name, _)| measured(name))
        .all(|(name, x)| match b.columns.get(name) {
            Some(y) => x == y,
            None => only_padding(name, x),
        })
        && b.columns
            .iter()
            .filter(|(name, _)| measured(name))
            .all(|(name, y)| a.columns.contains_key(name) || only_padding(name, y))
}

/// The padding value of a column at grid index `i` (the v2 layout's one rule).
fn pad(name: &str, int: bool, i: i64) -> u32 {
    store::v2::pad_value(name, int, i)
}

/// A block of rows on the tightest grid holding them all: TARGET_INDEX, PIX0, NPIX (and CATALOGID
/// for coadds, EXTNAME for exposures), and one rows × width array per column.
fn rows_block(
    path: &str,
    mut attrs: Vec<(String, AttrValue)>,
    rows: &[(i64, i64, &Pixels, Option<&str>)],
    catalogid: bool,
) -> Block {
    let index0 = rows.iter().map(|r| r.2.i0).min().unwrap_or(0);
    let end = rows
        .iter()
        .map(|r| r.2.i0 + r.2.len as i64)
        .max()
        .unwrap_or(index0);
    let width = (end - index0) as usize;
    let n = rows.len();
    let mut columns: BTreeMap<&str, bool> = BTreeMap::new();
    for r in rows {
        for (name, (int, _)) in &r.2.columns {
            columns.insert(name, *int);
        }
    }
    attrs.retain(|(k, _)| k != layout::LOGLAM0_ATTR && k != layout::COEFF1_ATTR);
    attrs.extend(store::v2::grid_attrs(index0));
    let mut arrays = Vec::with_capacity(columns.len() + 5);
    let targets: Vec<i32> = rows.iter().map(|r| r.0 as i32).collect();
    arrays.push(Array::of::<i32>(
        sdss5::TARGET_INDEX,
        vec![n as u64],
        &targets,
    ));
    if catalogid {
        let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
        arrays.push(Array::of::<i64>(sdss5::CATALOGID, vec![n as u64], &ids));
    } else {
        let names: Vec<String> = rows
            .iter()
            .map(|r| r.3.unwrap_or_default().to_string())
            .collect();
        arrays.push(Array::strings(sdss5::EXTNAME, &names));
    }
    let pix0: Vec<i32> = rows.iter().map(|r| (r.2.i0 - index0) as i32).collect();
    let npix: Vec<i32> = rows.iter().map(|r| r.2.len as i32).collect();
    arrays.push(Array::of::<i32>(PIX0, vec![n as u64], &pix0));
    arrays.push(Array::of::<i32>(NPIX, vec![n as u64], &npix));
    // One array per column: each row is the column's pad values (one row of them, computed once:
    // WAVE's are powers) around the row's own pixels.
    let column_arrays: Vec<Array> = columns
        .into_iter()
        .map(|(name, int)| {
            let pad_row: Vec<u32> = (0..width as i64)
                .map(|j| pad(name, int, index0 + j))
                .collect();
            let mut bytes: Vec<u8> = Vec::with_capacity(n * width * 4);
            for r in rows {
                match r.2.columns.get(name) {
                    Some((_, v)) => {
                        let p0 = (r.2.i0 - index0) as usize;
                        bytes.extend_from_slice(bytemuck::cast_slice(&pad_row[..p0]));
                        bytes.extend_from_slice(bytemuck::cast_slice(v));
                        bytes.extend_from_slice(bytemuck::cast_slice(&pad_row[p0 + v.len()..]));
                    }
                    None => bytes.extend_from_slice(bytemuck::cast_slice(&pad_row)),
                }
            }
            let shape = vec![n as u64, width as u64];
            let mut a = if int {
                Array::of_bytes::<i32>(name, shape, bytes)
            } else {
                Array::of_bytes::<f32>(name, shape, bytes)
            };
            a.dtype = if int {
                TypeDescriptor::Integer(hdf5::types::IntSize::U4)
            } else {
                TypeDescriptor::Float(hdf5::types::FloatSize::U4)
            };
            a
        })
        .collect();
    arrays.extend(column_arrays);
    Block {
        path: path.to_string(),
        attrs,
        arrays,
    }
}

type RowOf = (i64, i64, Pixels, Option<String>);

/// The rows of a block written by [`rows_block`].
fn read_rows_block(b: &Block) -> Result<Vec<RowOf>, String> {
    let missing = |what: &str| format!("{}: no {what}", b.path);
    let ints = |name: &str| -> Result<Vec<i64>, String> {
        b.array(name)
            .and_then(Array::int_values)
            .ok_or_else(|| missing(name))
    };
    let targets = ints(sdss5::TARGET_INDEX)?;
    let pix0 = ints(PIX0)?;
    let npix = ints(NPIX)?;
    let catalogids = b.array(sdss5::CATALOGID).and_then(Array::int_values);
    let extnames = b.array(sdss5::EXTNAME).and_then(Array::string_values);
    let index0 = store::v2::grid_index0(&b.attrs).ok_or_else(|| missing(layout::LOGLAM0_ATTR))?;
    let n = targets.len();
    let skip = [
        sdss5::TARGET_INDEX,
        sdss5::CATALOGID,
        sdss5::EXTNAME,
        PIX0,
        NPIX,
    ];
    let mut columns: Vec<(&str, bool, usize, &[u8])> = Vec::new();
    for a in &b.arrays {
        if skip.contains(&a.name.as_str()) {
            continue;
        }
        let int = matches!(a.dtype, TypeDescriptor::Integer(_));
        if a.shape.len() != 2 || a.shape[0] as usize != n {
            return Err(format!("{}/{}: not one row per target", b.path, a.name));
        }
        columns.push((&a.name, int, a.shape[1] as usize, &a.bytes));
    }
    let mut out = Vec::with_capacity(n);
    for r in 0..n {
        let p0 = pix0[r].max(0) as usize;
        let len = npix[r].max(0) as usize;
        let mut cols = BTreeMap::new();
        for (name, int, width, bytes) in &columns {
            if p0 + len > *width {
                return Err(format!("{}/{name}: row {r} runs past the array", b.path));
            }
            let start = 4 * (r * width + p0);
            let values: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes[start..start + 4 * len]);
            cols.insert(name.to_string(), (*int, values));
        }
        out.push((
            targets[r],
            catalogids.as_ref().map_or(0, |c| c[r]),
            Pixels {
                i0: index0 + p0 as i64,
                len,
                columns: cols,
            },
            extnames.as_ref().map(|e| e[r].clone()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Coadd as Kind;
    use store::v2::grid_wave;

    fn pixels(i0: i64, values: &[f32], model: Option<f32>) -> Pixels {
        let mut columns = BTreeMap::new();
        let wave: Vec<u32> = (0..values.len() as i64)
            .map(|k| grid_wave(i0 + k).to_bits())
            .collect();
        columns.insert(names::WAVE.to_string(), (false, wave));
        columns.insert(
            names::FLUX.to_string(),
            (false, values.iter().map(|v| v.to_bits()).collect()),
        );
        columns.insert(
            names::AND_MASK.to_string(),
            (true, values.iter().map(|&v| v as u32).collect()),
        );
        if let Some(m) = model {
            columns.insert(
                names::MODEL.to_string(),
                (false, vec![m.to_bits(); values.len()]),
            );
        }
        Pixels {
            i0,
            len: values.len(),
            columns,
        }
    }

    fn contribution(field: bool, coadds: &[(i64, Pixels)]) -> Contribution {
        Contribution {
            header: Some((vec![("MJD".into(), AttrValue::Int(60_000))], field)),
            flux_unit: None,
            coadds: coadds
                .iter()
                .map(|(t, p)| super::super::decode::Coadd {
                    target_index: *t,
                    catalogid: 27_021_598_150_202_000 + t,
                    pixels: p.clone(),
                })
                .collect(),
            exposures: Vec::new(),
            tables: Vec::new(),
        }
    }

    #[test]
    fn blocks_round_trip_with_padding_and_columns_a_row_lacks() {
        let g = FieldMjd::checked(Kind::Daily, 112_360, 60_000).unwrap();
        let mut c = Content::default();
        let mut conflicts = Vec::new();
        let a = pixels(35_523, &[1.0, 2.0, 3.0], Some(7.0));
        let b = pixels(35_525, &[4.0, 5.0], None);
        c.add(
            g,
            Path::new("a.fits"),
            contribution(false, &[(3, a.clone())]),
            &mut conflicts,
        )
        .unwrap();
        c.add(
            g,
            Path::new("b.fits"),
            contribution(false, &[(1, b.clone())]),
            &mut conflicts,
        )
        .unwrap();
        assert!(conflicts.is_empty());
        let m = c.to_merged(g);
        let block = m.block(COADDS).unwrap();
        assert_eq!(block.array(PIX0).unwrap().int_values(), Some(vec![2, 0]));
        assert_eq!(block.array(NPIX).unwrap().int_values(), Some(vec![2, 3]));
        let flux = block.array(names::FLUX).unwrap();
        assert_eq!(flux.shape, [2, 4]);
        let back = Content::from_merged(m, Path::new("store.h5")).unwrap();
        assert!(same_pixels(&back.coadds[&3].pixels, &a));
        assert!(same_pixels(&back.coadds[&1].pixels, &b));
        assert_eq!(back.coadds[&1].catalogid, 27_021_598_150_202_001);
    }

    #[test]
    fn spfield_wins_over_spec_files_and_the_store_over_later_spec_files() {
        let g = FieldMjd::checked(Kind::Daily, 15_000, 59_000).unwrap();
        let spec = pixels(35_523, &[1.0, 2.0], None);
        let field = pixels(35_523, &[1.5, 2.0], None);
        let mut store = Content::default();
        let mut conflicts = Vec::new();
        store
            .add(
                g,
                Path::new("spec.fits"),
                contribution(false, &[(5, spec.clone())]),
                &mut conflicts,
            )
            .unwrap();
        // The same spec file again: nothing changes.
        let mut again = Content::default();
        again
            .add(
                g,
                Path::new("spec.fits"),
                contribution(false, &[(5, spec.clone())]),
                &mut conflicts,
            )
            .unwrap();
        let ch = store
            .merge(g, Path::new("s.h5"), again, &mut conflicts)
            .unwrap();
        assert!(!ch.changed && conflicts.is_empty());
        // An spField replaces the spec file's coadd.
        let mut batch = Content::default();
        batch
            .add(
                g,
                Path::new("spField.fits"),
                contribution(true, &[(5, field.clone()), (6, field.clone())]),
                &mut conflicts,
            )
            .unwrap();
        let ch = store
            .merge(g, Path::new("s.h5"), batch, &mut conflicts)
            .unwrap();
        assert_eq!((ch.added, ch.replaced, ch.changed), (1, 1, true));
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].rule, ConflictRule::SpfieldOverSpec);
        assert!(conflicts[0]
            .to_string()
            .starts_with("field 015000-59000 TARGET_INDEX 5:"));
        assert!(same_pixels(&store.coadds[&5].pixels, &field));
        // A later, different spec file loses to the store's spField copy.
        let mut late = Content::default();
        late.add(
            g,
            Path::new("late.fits"),
            contribution(false, &[(5, spec)]),
            &mut conflicts,
        )
        .unwrap();
        let ch = store
            .merge(g, Path::new("s.h5"), late, &mut conflicts)
            .unwrap();
        assert!(!ch.changed);
        assert_eq!(conflicts.len(), 2);
        assert!(same_pixels(&store.coadds[&5].pixels, &field));
    }
}
