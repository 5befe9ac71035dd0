//! Catalog rows of one store file: one per fiber, from its datasets (npix, exposures) and the
//! plate-level tables (spall first, then zbest and plugmap for what spall lacks).

use std::collections::HashMap;
use std::path::Path;

use crate::index::CatalogRow;
use model::layout::{self, PlateTable};
use model::{FiberId, PlateMjd};

use store::Table;

/// Where each catalog column is looked for, in order of preference (table, column).
const RA: &[(PlateTable, &str)] = &[
    (PlateTable::Spall, "PLUG_RA"),
    (PlateTable::Spall, "RA"),
    (PlateTable::Zbest, "PLUG_RA"),
    (PlateTable::Plugmap, "RA"),
];
const DEC: &[(PlateTable, &str)] = &[
    (PlateTable::Spall, "PLUG_DEC"),
    (PlateTable::Spall, "DEC"),
    (PlateTable::Zbest, "PLUG_DEC"),
    (PlateTable::Plugmap, "DEC"),
];
const CLASS: &[(PlateTable, &str)] = &[(PlateTable::Spall, "CLASS"), (PlateTable::Zbest, "CLASS")];
const SUBCLASS: &[(PlateTable, &str)] = &[
    (PlateTable::Spall, "SUBCLASS"),
    (PlateTable::Zbest, "SUBCLASS"),
];
const Z: &[(PlateTable, &str)] = &[(PlateTable::Spall, "Z"), (PlateTable::Zbest, "Z")];
const Z_ERR: &[(PlateTable, &str)] = &[(PlateTable::Spall, "Z_ERR"), (PlateTable::Zbest, "Z_ERR")];
const ZWARNING: &[(PlateTable, &str)] = &[
    (PlateTable::Spall, "ZWARNING"),
    (PlateTable::Zbest, "ZWARNING"),
];
const OBJTYPE: &[(PlateTable, &str)] = &[
    (PlateTable::Spall, "OBJTYPE"),
    (PlateTable::Zbest, "OBJTYPE"),
    (PlateTable::Plugmap, "OBJTYPE"),
];
const SPECPRIMARY: &[(PlateTable, &str)] = &[
    (PlateTable::Spall, "SPECPRIMARY"),
    (PlateTable::Zbest, "SPECPRIMARY"),
];
const SN_MEDIAN_ALL: &[(PlateTable, &str)] = &[
    (PlateTable::Spall, "SN_MEDIAN_ALL"),
    (PlateTable::Zbest, "SN_MEDIAN_ALL"),
];

/// The plate-level tables of one plate-MJD, indexed by fiber.
struct Tables {
    tables: HashMap<PlateTable, (Table, HashMap<i32, usize>)>,
}

impl Tables {
    fn read(group: &hdf5::Group) -> hdf5::Result<Self> {
        let mut tables = HashMap::new();
        for t in PlateTable::ALL {
            let Ok(ds) = group.dataset(t.name()) else {
                continue;
            };
            let table = Table::read(&ds).map_err(|e| e.to_string())?;
            let Some(ids) = table.fiber_ids() else {
                continue;
            };
            let mut first = HashMap::new();
            for (row, fiber) in ids.into_iter().enumerate() {
                first.entry(fiber).or_insert(row);
            }
            tables.insert(t, (table, first));
        }
        Ok(Self { tables })
    }

    /// The first (table, column) in `order` that exists and has a value for this fiber.
    fn find<T>(
        &self,
        fiber: i32,
        order: &[(PlateTable, &str)],
        get: impl Fn(&Table, usize, usize) -> Option<T>,
    ) -> Option<T> {
        order.iter().find_map(|(t, col)| {
            let (table, rows) = self.tables.get(t)?;
            let row = *rows.get(&fiber)?;
            get(table, row, table.column_index(col)?)
        })
    }
}

/// One catalog row per fiber of the store file of `pm`.
pub fn catalog_rows(path: &Path, pm: PlateMjd) -> hdf5::Result<Vec<CatalogRow>> {
    let file = hdf5::File::open(path)?;
    let group = file.group(&layout::plate_mjd_group(pm))?;
    let tables = Tables::read(&group)?;
    let file_name = layout::store_file_name(pm);
    let entries = store::reader::inventory(&file, pm)?;
    let mut rows = Vec::with_capacity(entries.len());
    for store::reader::FiberEntry { fiber, npix, nexp } in entries {
        let f = |order| tables.find(fiber, order, Table::float_value);
        // An empty string is unknown: the next table in the order is asked.
        let s = |order| {
            tables.find(fiber, order, |t: &Table, r, c| {
                t.str_value(r, c).filter(|s| !s.is_empty())
            })
        };
        let i = |order| tables.find(fiber, order, Table::int_value);
        rows.push(CatalogRow {
            key: FiberId::new(pm.plate, pm.mjd, fiber).key(),
            plate: pm.plate,
            mjd: pm.mjd,
            fiber,
            file: file_name.clone(),
            npix: npix as i32,
            nexp: nexp as i32,
            ra: f(RA),
            dec: f(DEC),
            class: s(CLASS),
            subclass: s(SUBCLASS),
            z: f(Z).map(|v| v as f32),
            z_err: f(Z_ERR).map(|v| v as f32),
            zwarning: i(ZWARNING).map(|v| v as i32),
            objtype: s(OBJTYPE),
            specprimary: i(SPECPRIMARY).map(|v| v != 0),
            sn_median_all: f(SN_MEDIAN_ALL).map(|v| v as f32),
        });
    }
    Ok(rows)
}
