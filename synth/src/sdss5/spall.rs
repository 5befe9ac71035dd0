//! `<OUT>/spAll-v6_1_3.fits` and `<OUT>/spAll-lite-v6_1_3.fits` (the full and lite spAll models):
//! the rows of every generated target first, in group then TARGET_INDEX order — the same values
//! as the SPALL HDU of its spec file — then rows of field-MJDs that are not generated, up to the
//! number asked. Both files are written under temporary names and renamed into place at the end;
//! rows go to them in packed chunks, so that millions of rows never sit in memory at once.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use model::atomic::AtomicFile;
use rayon::prelude::*;

use super::datamodel::{hdu, model, FileModel};
use super::facts::Facts;
use super::group::Group;
use super::header::{self, Context as HeaderContext};
use super::table::{Rows, Table};
use super::{CoaddKind, Config, RUN2D};
use crate::fits::FitsWriter;

/// Rows packed per write of the extra rows.
const CHUNK_ROWS: usize = 16 * 1024;

/// The full and lite spAll tables.
struct Tables {
    full: Table,
    lite: Table,
}

impl Tables {
    fn new(g: &Group) -> Result<Self> {
        let m = &model()?.files;
        Ok(Self {
            full: Table::new(hdu(&m.spall, 1, false)?, Rows::Target, g)?,
            lite: Table::new(hdu(&m.spall_lite, 1, false)?, Rows::Target, g)?,
        })
    }
}

/// The packed spAll rows (full and lite) of one group's targets.
pub struct GroupRows {
    full: Vec<u8>,
    lite: Vec<u8>,
    rows: usize,
}

impl GroupRows {
    pub fn pack<'a, 'g: 'a>(
        g: &Group,
        targets: impl IntoIterator<Item = &'a Facts<'g>>,
    ) -> Result<Self> {
        let t = Tables::new(g)?;
        let mut out = Self {
            full: Vec::new(),
            lite: Vec::new(),
            rows: 0,
        };
        for f in targets {
            t.full.pack_row(f, 0, &mut out.full);
            t.lite.pack_row(f, 0, &mut out.lite);
            out.rows += 1;
        }
        Ok(out)
    }
}

/// One spAll file being written.
struct Open {
    // Declared first: closed before its temporary file is removed on an error.
    w: FitsWriter,
    file: AtomicFile,
    path: PathBuf,
}

impl Open {
    fn create(
        cfg: &Config,
        g0: &Group,
        model: &'static FileModel,
        table: &Table,
        name: &str,
        rows: usize,
    ) -> Result<Self> {
        let path = cfg.out.join(name);
        let file = AtomicFile::new(&path);
        let mut w = FitsWriter::create(file.temp())
            .with_context(|| format!("writing {}", path.display()))?;
        let primary = hdu(model, 0, true)?;
        w.empty_primary(&header::cards(primary, g0, HeaderContext::default()))?;
        let cards = header::cards(table.hdu, g0, HeaderContext::default());
        table.create(&mut w, rows, &cards)?;
        Ok(Self { w, file, path })
    }

    fn finish(self) -> Result<u64> {
        let Self { w, file, path } = self;
        w.close()
            .with_context(|| format!("writing {}", path.display()))?;
        file.commit()
            .with_context(|| format!("renaming into place {}", path.display()))?;
        Ok(std::fs::metadata(&path)?.len())
    }
}

/// Both spAll files of a run.
pub struct SpallWriter {
    cfg: Config,
    total: usize,
    next: usize,
    full: Open,
    lite: Open,
}

impl SpallWriter {
    /// Creates both files for `rows` rows (at least the generated targets).
    pub fn create(cfg: &Config, rows: usize) -> Result<Self> {
        let generated = cfg.groups * cfg.targets;
        let total = rows.max(generated);
        let groups = total.div_ceil(cfg.targets);
        ensure!(
            cfg.coadd == CoaddKind::Allepoch
                || i64::from(cfg.first_field) + groups as i64 - 1 <= 999_999,
            "--spall-rows {rows}: the extra rows' fields would pass 999999"
        );
        ensure!(
            60_000 + 7 * (groups as i64 - 1) <= 99_999,
            "--spall-rows {rows}: the extra rows' MJDs would pass 99999"
        );
        let m = &model()?.files;
        let g0 = Group::new(cfg, 0);
        let t = Tables::new(&g0)?;
        let full = Open::create(
            cfg,
            &g0,
            &m.spall,
            &t.full,
            &format!("spAll-{RUN2D}.fits"),
            total,
        )?;
        let lite = Open::create(
            cfg,
            &g0,
            &m.spall_lite,
            &t.lite,
            &format!("spAll-lite-{RUN2D}.fits"),
            total,
        )?;
        Ok(Self {
            cfg: cfg.clone(),
            total,
            next: 0,
            full,
            lite,
        })
    }

    /// Appends the rows of the next group.
    pub fn write_group_rows(&mut self, rows: &GroupRows) -> Result<()> {
        if rows.rows == 0 {
            return Ok(());
        }
        self.full
            .w
            .write_packed_rows("SPALL", self.next + 1, &rows.full)?;
        self.lite
            .w
            .write_packed_rows("SPALL", self.next + 1, &rows.lite)?;
        self.next += rows.rows;
        Ok(())
    }

    /// Writes the rows of the field-MJDs that are not generated, closes and renames both files;
    /// returns (files, bytes).
    pub fn finish(mut self) -> Result<(usize, u64)> {
        let k = self.cfg.targets;
        let g0 = Group::new(&self.cfg, 0);
        let tables = Tables::new(&g0)?;
        while self.next < self.total {
            let first = self.next;
            let end = (first + CHUNK_ROWS).min(self.total);
            let (g_first, g_last) = (first / k, (end - 1) / k);
            let groups: Vec<Group> = (g_first..=g_last)
                .map(|i| Group::new(&self.cfg, i))
                .collect();
            let packed: Vec<(Vec<u8>, Vec<u8>)> = (first..end)
                .into_par_iter()
                .map(|row| {
                    let g = &groups[row / k - g_first];
                    let f = Facts::synthetic(g, (row % k) as i32 + 1);
                    let (mut full, mut lite) = (Vec::new(), Vec::new());
                    tables.full.pack_row(&f, 0, &mut full);
                    tables.lite.pack_row(&f, 0, &mut lite);
                    (full, lite)
                })
                .collect();
            let full: Vec<u8> = packed.iter().flat_map(|p| p.0.iter().copied()).collect();
            let lite: Vec<u8> = packed.iter().flat_map(|p| p.1.iter().copied()).collect();
            self.full.w.write_packed_rows("SPALL", first + 1, &full)?;
            self.lite.w.write_packed_rows("SPALL", first + 1, &lite)?;
            self.next = end;
        }
        let bytes = self.full.finish()? + self.lite.finish()?;
        Ok((2, bytes))
    }
}
