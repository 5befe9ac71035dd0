//! A model table ready to fill: its layout and the getter of every column, resolved once; rows are
//! packed from [`Facts`] and written to cfitsio in one call per table (or per chunk).

use anyhow::{anyhow, ensure, Result};

use super::cells::Layout;
use super::columns::{self, Get};
use super::datamodel::HduModel;
use super::facts::Facts;
use super::group::Group;
use crate::fits::{Card, FitsWriter};

/// The kind of rows of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// One row per target or per fit of a target (spAll, SPALL, ZALL, spZbest, plug map).
    Target,
    /// One row per emission line of a target (spZline, ZLINE).
    Line,
}

/// A table of the data model with a getter per column.
pub struct Table {
    pub hdu: &'static HduModel,
    pub layout: Layout,
    getters: Vec<Get>,
}

/// The width a text column needs at least for this group's values (the spec file names of the
/// all-epoch coadd are longer than the model example's).
pub fn min_width(g: &Group, name: &str) -> usize {
    let spec = g.spec_name(g.catalogid(1)).len();
    match name {
        "SPEC_FILE" => spec,
        // "<HEALPIXGRP>/<HEALPIX>/<spec file>", NSIDE 128: at most 3 + 1 + 6 + 1 digits and slashes.
        "HEALPIX_PATH" => spec + 11,
        _ => 0,
    }
}

impl Table {
    pub fn new(hdu: &'static HduModel, rows: Rows, g: &Group) -> Result<Self> {
        let layout = Layout::new(hdu, |name| min_width(g, name))?;
        let getters = layout
            .columns
            .iter()
            .map(|c| {
                let get = match rows {
                    Rows::Target => columns::resolve(c.model),
                    Rows::Line => columns::resolve_line(c.model),
                };
                get.ok_or_else(|| {
                    anyhow!(
                        "no value for column {} of the data model's {} table",
                        c.model.name,
                        hdu.label()
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            hdu,
            layout,
            getters,
        })
    }

    /// Appends the packed row of target `f` (fit or line `k`).
    pub fn pack_row(&self, f: &Facts<'_>, k: usize, out: &mut Vec<u8>) {
        for (c, get) in self.layout.columns.iter().zip(&self.getters) {
            c.pack(&get(f, k), out);
        }
    }

    /// Creates the table with `nrows` rows and these cards, without data.
    pub fn create(&self, w: &mut FitsWriter, nrows: usize, cards: &[Card]) -> Result<()> {
        w.create_table(
            self.hdu.extname(),
            &self.layout.fits_columns(),
            nrows,
            cards,
        )
    }

    /// Writes the whole table: one row per (target, fit or line).
    pub fn write<'a, 'g: 'a>(
        &self,
        w: &mut FitsWriter,
        cards: &[Card],
        rows: impl IntoIterator<Item = (&'a Facts<'g>, usize)>,
    ) -> Result<()> {
        let mut buf = Vec::new();
        let mut n = 0;
        for (f, k) in rows {
            self.pack_row(f, k, &mut buf);
            n += 1;
        }
        ensure!(
            buf.len() == n * self.layout.row_bytes,
            "table {}: {} bytes packed for {n} rows of {}",
            self.hdu.label(),
            buf.len(),
            self.layout.row_bytes
        );
        self.create(w, n, cards)?;
        if n > 0 {
            w.write_packed_rows(self.hdu.label(), 1, &buf)?;
        }
        Ok(())
    }
}
