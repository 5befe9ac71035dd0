//! DESI redshift catalogs (HDU ZCATALOG) of HEALPix coadds (`zpix-<SURVEY>-<PROGRAM>.fits`,
//! `zall-pix-<SPECPROD>.fits`) and of cumulative tile coadds (`ztile-<SURVEY>-<PROGRAM>-cumulative.fits`,
//! `zall-tilecumulative-<SPECPROD>.fits`): which coadd and TARGETID each row is of (read column by
//! column: SURVEY, PROGRAM, HEALPIX, or TILEID, PETAL_LOC, LASTNIGHT), and the full rows of the
//! targets a store group needs. Their rows become the group's `zcatalog` table.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use fitsread::Fits;
use model::desi::{DesiProgram, DesiSurvey, TARGETID};
use model::DesiGroup;
use store::Table;

use crate::decode::{InputError, Problem};

/// The HDU of a zcatalog file.
pub const ZCATALOG: &str = "ZCATALOG";

/// The columns that name a row's coadd in a HEALPix zcatalog.
const HEALPIX_KEY: [&str; 3] = ["SURVEY", "PROGRAM", "HEALPIX"];
/// The columns that name a row's coadd in a cumulative tile zcatalog (LASTNIGHT: the night the
/// coadd runs through, the `thru<NIGHT>` of its file name).
const TILE_KEY: [&str; 3] = ["TILEID", "PETAL_LOC", "LASTNIGHT"];

/// True for the file names DESI gives its zcatalogs of HEALPix and tile coadds.
pub fn claims_name(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    ["zpix-", "zall-pix-", "ztile-", "zall-tilecumulative-"]
        .iter()
        .any(|p| name.starts_with(p))
        && name.ends_with(".fits")
}

/// The (coadd, TARGETID) index of a zcatalog file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ZcatIndex {
    #[serde(with = "crate::plan::path_bytes")]
    pub path: PathBuf,
    pub rows: Vec<(DesiGroup, i64, u64)>,
}

fn err(path: &Path, why: String) -> InputError {
    InputError::new(path, Problem::Desi(why))
}

/// The values of two string columns, trimmed, read in blocks of rows (memory stays bounded on
/// the 2 GB zall files).
fn str_columns(
    path: &Path,
    f: &mut Fits,
    names: [&str; 2],
) -> Result<[Vec<String>; 2], InputError> {
    const BLOCK: usize = 65_536;
    let e = |x| InputError::new(path, x);
    let layout = f.table_layout().map_err(e)?;
    let n = f.num_rows().map_err(e)?;
    let mut out = [Vec::with_capacity(n), Vec::with_capacity(n)];
    let mut first = 0;
    while first < n {
        let rows: Vec<usize> = (first..(first + BLOCK).min(n)).collect();
        let t = f.read_table_rows(&layout, &rows).map_err(e)?;
        for (k, name) in names.iter().enumerate() {
            let c = t
                .column_index(name)
                .ok_or_else(|| err(path, format!("HDU {ZCATALOG}: column {name} is missing")))?;
            out[k].extend(
                (0..rows.len()).map(|r| t.str_value(r, c).unwrap_or_default().trim().to_string()),
            );
        }
        first += rows.len();
    }
    Ok(out)
}

impl ZcatIndex {
    /// Reads the key columns (SURVEY, PROGRAM, HEALPIX or TILEID, PETAL_LOC, LASTNIGHT, and
    /// TARGETID); rows of unknown surveys, programs, pixels or tiles are skipped.
    pub fn read(path: &Path) -> Result<Self, InputError> {
        let e = |x| InputError::new(path, x);
        let mut f = Fits::open(path).map_err(e)?;
        if f.select_named(ZCATALOG, usize::MAX).map_err(e)?.is_none() {
            return Err(err(path, format!("HDU {ZCATALOG} is missing")));
        }
        let layout = f.table_layout().map_err(e)?;
        let missing = |cols: &[&'static str]| -> Vec<&'static str> {
            cols.iter()
                .copied()
                .filter(|c| !layout.has_column(c))
                .collect()
        };
        let (healpix_missing, tile_missing) = (missing(&HEALPIX_KEY), missing(&TILE_KEY));
        if !layout.has_column(TARGETID) {
            return Err(err(
                path,
                format!("HDU {ZCATALOG}: column {TARGETID} is missing"),
            ));
        }
        let tid = f.int_column(TARGETID).map_err(e)?;
        let rows = if healpix_missing.is_empty() {
            let pix = f.int_column("HEALPIX").map_err(e)?;
            let [survey, program] = str_columns(path, &mut f, ["SURVEY", "PROGRAM"])?;
            (0..tid.len())
                .filter_map(|i| {
                    let g = DesiGroup::healpix(
                        DesiSurvey::from_name(&survey[i])?,
                        DesiProgram::from_name(&program[i])?,
                        pix[i],
                    )
                    .ok()?;
                    Some((g, tid[i], i as u64))
                })
                .collect()
        } else if tile_missing.is_empty() {
            let [tile, petal, night] = TILE_KEY.map(|c| f.int_column(c).map_err(e));
            let (tile, petal, night) = (tile?, petal?, night?);
            (0..tid.len())
                .filter_map(|i| {
                    let g = DesiGroup::tile(tile[i], petal[i], night[i]).ok()?;
                    Some((g, tid[i], i as u64))
                })
                .collect()
        } else {
            return Err(err(
                path,
                format!(
                    "HDU {ZCATALOG} is neither a HEALPix zcatalog (missing {}) nor a cumulative tile \
                     zcatalog (missing {}; per-night and per-exposure tile catalogs have no coadds here)",
                    healpix_missing.join(", "),
                    tile_missing.join(", ")
                ),
            ));
        };
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// Keeps only the rows of these groups (what the plan carries to every rank).
    pub fn retain_groups(&mut self, keep: &BTreeSet<DesiGroup>) {
        self.rows.retain(|(g, _, _)| keep.contains(g));
    }

    /// The groups the file has rows of.
    pub fn groups(&self) -> BTreeSet<DesiGroup> {
        self.rows.iter().map(|r| r.0).collect()
    }

    /// The full rows of `group`'s targets in `targets` (None when the file has none).
    pub fn read_rows(
        &self,
        group: DesiGroup,
        targets: &HashSet<i64>,
    ) -> Result<Option<Table>, InputError> {
        let rows: Vec<usize> = self
            .rows
            .iter()
            .filter(|(g, t, _)| *g == group && targets.contains(t))
            .map(|r| r.2 as usize)
            .collect();
        if rows.is_empty() {
            return Ok(None);
        }
        let e = |x| InputError::new(&self.path, x);
        let mut f = Fits::open(&self.path).map_err(e)?;
        f.select_named(ZCATALOG, usize::MAX).map_err(e)?;
        let layout = f.table_layout().map_err(e)?;
        f.read_table_rows(&layout, &rows).map(Some).map_err(e)
    }
}
