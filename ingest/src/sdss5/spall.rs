//! SDSS-V summary catalogs (spAll and spAll-lite, DR19): which field-MJD and TARGET_INDEX each row
//! is of, read column by column (cheap on large files), and the full rows of the targets a store
//! group needs. One file holds one coadd kind, told by its rows' SPECOBJID.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use fitsread::Fits;
use model::{Coadd, FieldMjd, SpectrumId};
use store::Table;

use super::identify::coadd_of_specobjid;
use super::names::{col, TABLE};
use crate::decode::InputError;

/// The (field-MJD, TARGET_INDEX) index of an SDSS-V spAll file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpAllIndex {
    #[serde(with = "crate::plan::path_bytes")]
    pub path: PathBuf,
    pub rows: Vec<(FieldMjd, i64, u64)>,
}

impl SpAllIndex {
    /// True when the file's table is an SDSS-V spAll (FIELD, MJD, TARGET_INDEX, CATALOGID).
    pub fn is_sdss5(path: &Path) -> bool {
        let Ok(mut f) = Fits::open(path) else {
            return false;
        };
        if f.select(TABLE).is_err() {
            return false;
        }
        let Ok(layout) = f.table_layout() else {
            return false;
        };
        [col::FIELD, col::MJD, col::TARGET_INDEX, col::CATALOGID]
            .iter()
            .all(|c| layout.has_column(c))
    }

    pub fn read(path: &Path) -> Result<Self, InputError> {
        let e = |x| InputError::new(path, x);
        let mut f = Fits::open(path).map_err(e)?;
        f.select(TABLE).map_err(e)?;
        let layout = f.table_layout().map_err(e)?;
        let coadd = if f.num_rows().map_err(e)? > 0 && layout.has_column(col::SPECOBJID) {
            let first = f.read_table_rows(&layout, &[0]).map_err(e)?;
            let c = first.column_index(col::SPECOBJID).expect("checked");
            first
                .str_value(0, c)
                .and_then(|s| coadd_of_specobjid(&s))
                .unwrap_or(Coadd::Daily)
        } else {
            Coadd::Daily
        };
        let field = f.int_column(col::FIELD).map_err(e)?;
        let mjd = f.int_column(col::MJD).map_err(e)?;
        let target = f.int_column(col::TARGET_INDEX).map_err(e)?;
        let rows = (0..field.len())
            .filter_map(|i| {
                let g = FieldMjd::checked(coadd, field[i], mjd[i]).ok()?;
                SpectrumId::checked_field(g, target[i]).ok()?;
                Some((g, target[i], i as u64))
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// Keeps only the rows of these field-MJDs (what the plan carries to every rank).
    pub fn retain_groups(&mut self, keep: &BTreeSet<FieldMjd>) {
        self.rows.retain(|(g, _, _)| keep.contains(g));
    }

    /// The field-MJDs the file has rows of.
    pub fn groups(&self) -> BTreeSet<FieldMjd> {
        self.rows.iter().map(|r| r.0).collect()
    }

    /// The full rows of these targets (those present in the file).
    pub fn read_rows(&self, wanted: &HashSet<(FieldMjd, i64)>) -> Result<Table, InputError> {
        let e = |x| InputError::new(&self.path, x);
        let mut f = Fits::open(&self.path).map_err(e)?;
        f.select(TABLE).map_err(e)?;
        let layout = f.table_layout().map_err(e)?;
        let rows: Vec<usize> = self
            .rows
            .iter()
            .filter(|(g, t, _)| wanted.contains(&(*g, *t)))
            .map(|r| r.2 as usize)
            .collect();
        f.read_table_rows(&layout, &rows).map_err(e)
    }
}
