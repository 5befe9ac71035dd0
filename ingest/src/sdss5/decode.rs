//! Decoding one SDSS-V input file into what it contributes to its field-MJD: coadds and
//! exposures on the group's log-lambda grid (every per-pixel column the HDU has, values as they
//! are), table rows keyed by TARGET_INDEX, and the primary header. Runs on rayon threads: no HDF5.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fitsread::{Columns, Fits, HduKind};
use model::layout::PlateTable;
use model::{FieldMjd, SpectrumId};
use store::records::wave_from_loglam;
use store::table::ScalarKind;
use store::v2::{grid_index, grid_index_of, GridError, COEFF1};
use store::{AttrValue, Table};

use super::names::{col, key, spec, spfield, store as names, ZBEST_MODEL, ZBEST_TABLE};
use crate::decode::{InputError, Problem};

type Result<T> = std::result::Result<T, InputError>;

fn err(path: &Path, p: impl Into<Problem>) -> InputError {
    InputError::new(path, p)
}

/// The per-pixel columns of one spectrum on the 1e-4 log-lambda grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    /// Grid index (log10 λ / 1e-4) of the first pixel.
    pub i0: i64,
    pub len: usize,
    /// Store name → (integer column?, raw 4-byte values).
    pub columns: BTreeMap<String, (bool, Vec<u32>)>,
}

/// One exposure of one target (a `MJD_EXP_` HDU): both cameras on one grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    /// The exposure number (EXPOSURE card).
    pub number: i64,
    pub extname: String,
    /// The HDU's header cards (kept once per exposure in the store).
    pub header: Vec<(String, AttrValue)>,
    pub pixels: Pixels,
}

/// One coadd of a target.
#[derive(Debug, Clone, PartialEq)]
pub struct Coadd {
    pub target_index: i64,
    pub catalogid: i64,
    pub pixels: Pixels,
}

/// Everything one file contributes to its field-MJD.
#[derive(Debug, Default)]
pub struct Contribution {
    /// The primary header, and whether it is an spField's (which takes precedence).
    pub header: Option<(Vec<(String, AttrValue)>, bool)>,
    pub flux_unit: Option<String>,
    pub coadds: Vec<Coadd>,
    /// (TARGET_INDEX, exposure).
    pub exposures: Vec<(i64, Exposure)>,
    pub tables: Vec<(PlateTable, Table)>,
}

/// The single row of the current table HDU.
fn one_row(path: &Path, f: &mut Fits) -> Result<Table> {
    let t = read_table(path, f)?;
    if t.num_rows() != 1 {
        return Err(err(
            path,
            Problem::Sdss5(format!(
                "{} has {} rows, 1 expected",
                f.hdu_label(),
                t.num_rows()
            )),
        ));
    }
    Ok(t)
}

fn read_table(path: &Path, f: &mut Fits) -> Result<Table> {
    require_table(path, f)?;
    f.read_table().map_err(|e| err(path, e))
}

/// The current table HDU read column by column (a COADD or exposure table).
fn read_pixel_table(path: &Path, f: &mut Fits) -> Result<Columns> {
    require_table(path, f)?;
    f.read_table_columns().map_err(|e| err(path, e))
}

fn require_table(path: &Path, f: &mut Fits) -> Result<()> {
    if f.select(f.current()).map_err(|e| err(path, e))? != HduKind::Table {
        return Err(err(path, Problem::NotATable { hdu: f.hdu_label() }));
    }
    Ok(())
}

fn select_required(
    f: &mut Fits,
    path: &Path,
    (name, position): (&'static str, usize),
) -> Result<()> {
    match f.select_named(name, position).map_err(|e| err(path, e))? {
        Some(_) => Ok(()),
        None => Err(err(
            path,
            Problem::MissingHdu {
                name,
                position,
                why: "",
            },
        )),
    }
}

/// An integer of the single row of a table.
fn row_int(path: &Path, t: &Table, hdu: &str, column: &'static str) -> Result<i64> {
    t.column_index(column)
        .and_then(|c| t.int_value(0, c))
        .ok_or_else(|| {
            err(
                path,
                Problem::Column {
                    hdu: hdu.to_string(),
                    column,
                    kind: "an integer",
                },
            )
        })
}

fn grid_err(path: &Path, hdu: &str, e: GridError) -> InputError {
    err(
        path,
        Problem::Sdss5(format!("{hdu}: {e} (the store keeps spectra on the grid)")),
    )
}

/// The per-pixel columns of a COADD or exposure table: LOGLAM becomes WAVE (Å, float32 of the
/// double-precision power, as for SDSS-I–IV), WDISP WAVEDISP; every other float32 or int32 column
/// is kept as it is. `required` columns must be there.
fn table_pixels(path: &Path, t: &Columns, hdu: &str, required: &[&'static str]) -> Result<Pixels> {
    for &c in required {
        if t.column_index(c).is_none() {
            return Err(err(
                path,
                Problem::Column {
                    hdu: hdu.to_string(),
                    column: c,
                    kind: "present",
                },
            ));
        }
    }
    let mut columns = BTreeMap::new();
    let mut i0 = None;
    for (i, c) in t.columns().iter().enumerate() {
        let name = c.name.to_ascii_uppercase();
        if c.count() != 1 {
            return Err(err(
                path,
                Problem::Sdss5(format!(
                    "{hdu}: column {name} has {} values per pixel, 1 expected",
                    c.count()
                )),
            ));
        }
        let words = || t.words(i).expect("a scalar column of 4-byte elements");
        match (name.as_str(), c.kind) {
            (col::LOGLAM, ScalarKind::F32) => {
                let wave: Vec<f32> = words()
                    .into_iter()
                    .map(|l| wave_from_loglam(f32::from_bits(l) as f64))
                    .collect();
                i0 = Some(grid_index(&wave).map_err(|e| grid_err(path, hdu, e))?);
                columns.insert(
                    names::WAVE.to_string(),
                    (false, wave.iter().map(|w| w.to_bits()).collect()),
                );
            }
            (_, ScalarKind::F32) => {
                columns.insert(store_name(&name), (false, words()));
            }
            (_, ScalarKind::I32) => {
                columns.insert(store_name(&name), (true, words()));
            }
            (_, kind) => {
                return Err(err(
                    path,
                    Problem::Sdss5(format!(
                        "{hdu}: column {name} is {kind:?}, not a per-pixel float32 or int32 column"
                    )),
                ))
            }
        }
    }
    let i0 = i0.ok_or_else(|| {
        err(
            path,
            Problem::Column {
                hdu: hdu.to_string(),
                column: col::LOGLAM,
                kind: "float32",
            },
        )
    })?;
    Ok(Pixels {
        i0,
        len: t.num_rows(),
        columns,
    })
}

fn store_name(fits: &str) -> String {
    if fits.eq_ignore_ascii_case(col::WDISP) {
        names::WAVEDISP.to_string()
    } else {
        fits.to_ascii_uppercase()
    }
}

/// Decodes an SDSS-V spec file (full or lite) of target `target_index` of `group`.
pub fn decode_spec(path: &Path, group: FieldMjd, target_index: i64) -> Result<Contribution> {
    let e = |x| err(path, x);
    let mut f = Fits::open(path).map_err(e)?;
    f.select(0).map_err(e)?;
    let header = f.header_cards().map_err(e)?;
    let flux_unit = f.key_str(key::BUNIT).map_err(e)?;

    select_required(&mut f, path, spec::SPALL)?;
    let spall_label = f.hdu_label();
    let spall = one_row(path, &mut f)?;
    let found = row_int(path, &spall, &spall_label, col::TARGET_INDEX)?;
    if found != target_index {
        return Err(err(
            path,
            Problem::Identity {
                header: format!("{spall_label} TARGET_INDEX {found}"),
                name: format!("TARGET_INDEX {target_index}"),
            },
        ));
    }
    let catalogid = row_int(path, &spall, &spall_label, col::CATALOGID)?;
    SpectrumId::checked_field(group, target_index).map_err(|source| {
        err(
            path,
            Problem::Key {
                hdu: spall_label.clone(),
                source,
            },
        )
    })?;

    select_required(&mut f, path, spec::COADD)?;
    let label = f.hdu_label();
    let coadd_table = read_pixel_table(path, &mut f)?;
    let pixels = table_pixels(
        path,
        &coadd_table,
        &label,
        &[col::LOGLAM, names::FLUX, names::IVAR],
    )?;

    let mut tables = vec![(PlateTable::Spall, spall)];
    for (h, t) in [
        (spec::ZALL, PlateTable::Zall),
        (spec::ZLINE, PlateTable::Zline),
    ] {
        if f.select_named(h.0, h.1).map_err(e)?.is_some() {
            let rows = read_table(path, &mut f)?;
            check_rows_are_of(path, &rows, &f.hdu_label(), target_index)?;
            tables.push((t, rows));
        }
    }

    let mut exposures = Vec::new();
    for i in spec::FIRST_EXPOSURE..f.num_hdus() {
        f.select(i).map_err(e)?;
        let label = f.hdu_label();
        let Some(name) = f.extname() else { continue };
        if !name.to_ascii_uppercase().starts_with(spec::EXPOSURE_PREFIX) {
            continue;
        }
        let number = f.require_i64(key::EXPOSURE).map_err(e)?;
        let ecards = f.header_cards().map_err(e)?;
        let t = read_pixel_table(path, &mut f)?;
        let pixels = table_pixels(path, &t, &label, &[col::LOGLAM, names::FLUX])?;
        exposures.push((
            target_index,
            Exposure {
                number,
                extname: name,
                header: ecards,
                pixels,
            },
        ));
    }
    Ok(Contribution {
        header: Some((header, false)),
        flux_unit,
        coadds: vec![Coadd {
            target_index,
            catalogid,
            pixels,
        }],
        exposures,
        tables,
    })
}

/// Rows of a spec file's per-target table must all be of its target.
fn check_rows_are_of(path: &Path, t: &Table, hdu: &str, target_index: i64) -> Result<()> {
    let Some(keys) = t.key_values(col::TARGET_INDEX) else {
        return Err(err(
            path,
            Problem::Column {
                hdu: hdu.to_string(),
                column: col::TARGET_INDEX,
                kind: "an integer",
            },
        ));
    };
    if let Some(other) = keys.iter().find(|&&k| k != target_index) {
        return Err(err(
            path,
            Problem::Sdss5(format!(
                "{hdu} has a row of TARGET_INDEX {other}; the file is of TARGET_INDEX {target_index}"
            )),
        ));
    }
    Ok(())
}

/// A companion of an spField: beside it, or in a RUN1D directory below it, plain or gzipped.
pub fn sibling(dir: &Path, name: &str) -> Option<PathBuf> {
    let here = [dir.join(name), dir.join(format!("{name}.gz"))];
    let mut below: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .flat_map(|d| [d.join(name), d.join(format!("{name}.gz"))])
        .collect();
    below.sort();
    here.into_iter().chain(below).find(|p| p.is_file())
}

/// The spZbest and spZline of an spField (paths), so that the planner does not read them twice.
pub fn field_siblings(field_path: &Path, group: FieldMjd) -> Vec<PathBuf> {
    let dir = field_path.parent().unwrap_or(Path::new("."));
    [
        model::layout::sdss5::fits_names::spzbest(group),
        model::layout::sdss5::fits_names::spzline(group),
    ]
    .iter()
    .filter_map(|n| sibling(dir, n))
    .collect()
}

/// Decodes an spField (8 HDUs) with its spZbest (zbest rows, MODEL) and spZline (zline rows).
pub fn decode_field(path: &Path, group: FieldMjd) -> Result<Contribution> {
    let e = |x| err(path, x);
    let mut f = Fits::open(path).map_err(e)?;
    f.select(0).map_err(e)?;
    let header = f.header_cards().map_err(e)?;
    let coeff0 = f.require_f64(key::COEFF0).map_err(e)?;
    let coeff1 = f.require_f64(key::COEFF1).map_err(e)?;
    let flux_unit = f.key_str(key::BUNIT).map_err(e)?;
    if (coeff1 - COEFF1).abs() > 1e-12 {
        return Err(grid_err(path, "HDU 0", GridError::Step(coeff1)));
    }
    let i0 = grid_index_of(coeff0).ok_or_else(|| {
        grid_err(
            path,
            "HDU 0",
            GridError::OffGrid {
                pixel: 0,
                loglam: coeff0,
                nearest: (coeff0 / COEFF1).round() * COEFF1,
            },
        )
    })?;
    for h in [
        spfield::IVAR,
        spfield::ANDMASK,
        spfield::ORMASK,
        spfield::WAVEDISP,
        spfield::PLUGMAP,
        spfield::SKY,
        spfield::SPECRESL,
    ] {
        select_required(&mut f, path, h).map_err(|x| match x.problem {
            Problem::MissingHdu { name, position, .. } => err(
                path,
                Problem::MissingHdu {
                    name,
                    position,
                    why: ": not a complete spField",
                },
            ),
            _ => x,
        })?;
    }
    f.select(0).map_err(e)?;
    let (flux, ntarget, npix) = f.image_f32().map_err(e)?;
    let mut images: Vec<(&str, bool, Vec<u32>)> =
        vec![(names::FLUX, false, bytemuck::cast_vec(flux))];
    for (h, name, int) in [
        (spfield::IVAR, names::IVAR, false),
        (spfield::ANDMASK, names::AND_MASK, true),
        (spfield::ORMASK, names::OR_MASK, true),
        (spfield::WAVEDISP, names::WAVEDISP, false),
        (spfield::SKY, names::SKY, false),
        (spfield::SPECRESL, names::WRESL, false),
    ] {
        select_required(&mut f, path, h)?;
        let (data, rows, cols): (Vec<u32>, usize, usize) = if int {
            let (d, r, c) = f.image_i32().map_err(e)?;
            (bytemuck::cast_vec(d), r, c)
        } else {
            let (d, r, c) = f.image_f32().map_err(e)?;
            (bytemuck::cast_vec(d), r, c)
        };
        same_shape(path, &mut f, (rows, cols), (ntarget, npix))?;
        images.push((name, int, data));
    }
    select_required(&mut f, path, spfield::PLUGMAP)?;
    let plug_label = f.hdu_label();
    let plugmap = read_table(path, &mut f)?;
    let targets = plugmap.key_values(col::TARGET_INDEX).ok_or_else(|| {
        err(
            path,
            Problem::Column {
                hdu: plug_label.clone(),
                column: col::TARGET_INDEX,
                kind: "an integer",
            },
        )
    })?;
    if targets.len() != ntarget {
        return Err(err(
            path,
            Problem::Sdss5(format!(
                "{plug_label} has {} rows for {ntarget} targets",
                targets.len()
            )),
        ));
    }
    let catalogids = plug_catalogids(&plugmap);
    for &t in &targets {
        SpectrumId::checked_field(group, t).map_err(|source| {
            err(
                path,
                Problem::Key {
                    hdu: plug_label.clone(),
                    source,
                },
            )
        })?;
    }
    drop(f);

    let mut tables = vec![(PlateTable::Plugmap, plugmap)];
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Some(zbest) = sibling(dir, &model::layout::sdss5::fits_names::spzbest(group)) {
        let (table, model) = decode_zbest(&zbest, Some((ntarget, npix)))?;
        tables.push((PlateTable::Zbest, table));
        if let Some(m) = model {
            images.push((names::MODEL, false, bytemuck::cast_vec(m)));
        }
    }
    if let Some(zline) = sibling(dir, &model::layout::sdss5::fits_names::spzline(group)) {
        tables.push((PlateTable::Zline, decode_table_file(&zline)?));
    }

    let wave: Vec<u32> = (0..npix)
        .map(|i| wave_from_loglam(coeff0 + COEFF1 * i as f64).to_bits())
        .collect();
    let coadds = targets
        .iter()
        .enumerate()
        .map(|(r, &target_index)| {
            let mut columns = BTreeMap::new();
            columns.insert(names::WAVE.to_string(), (false, wave.clone()));
            for (name, int, data) in &images {
                columns.insert(
                    name.to_string(),
                    (*int, data[r * npix..(r + 1) * npix].to_vec()),
                );
            }
            Coadd {
                target_index,
                catalogid: catalogids.as_ref().map_or(0, |c| c[r]),
                pixels: Pixels {
                    i0,
                    len: npix,
                    columns,
                },
            }
        })
        .collect();
    Ok(Contribution {
        header: Some((header, true)),
        flux_unit,
        coadds,
        exposures: Vec::new(),
        tables,
    })
}

/// The CATALOGID of each PLUGMAP row: ICATALOGID, else the CATALOGID column (a string in DR19).
fn plug_catalogids(t: &Table) -> Option<Vec<i64>> {
    if let Some(v) = t.key_values(col::ICATALOGID) {
        return Some(v);
    }
    let c = t.column_index(col::CATALOGID)?;
    (0..t.num_rows())
        .map(|r| {
            t.int_value(r, c)
                .or_else(|| t.str_value(r, c).and_then(|s| s.trim().parse().ok()))
                .or(Some(0))
        })
        .collect()
}

fn same_shape(
    path: &Path,
    f: &mut Fits,
    found: (usize, usize),
    expected: (usize, usize),
) -> Result<()> {
    if found != expected {
        return Err(err(
            path,
            Problem::Shape {
                hdu: f.hdu_label(),
                found_rows: found.0,
                found_cols: found.1,
                rows: expected.0,
                cols: expected.1,
            },
        ));
    }
    Ok(())
}

/// spZbest: HDU1 table, and the HDU2 model image when its shape is the expected one.
pub fn decode_zbest(
    path: &Path,
    shape: Option<(usize, usize)>,
) -> Result<(Table, Option<Vec<f32>>)> {
    let e = |x| err(path, x);
    let mut f = Fits::open(path).map_err(e)?;
    f.select(ZBEST_TABLE).map_err(e)?;
    let table = read_table(path, &mut f)?;
    let Some(shape) = shape else {
        return Ok((table, None));
    };
    if f.num_hdus() <= ZBEST_MODEL {
        return Ok((table, None));
    }
    f.select(ZBEST_MODEL).map_err(e)?;
    let (model, rows, cols) = f.image_f32().map_err(e)?;
    same_shape(path, &mut f, (rows, cols), shape)?;
    Ok((table, Some(model)))
}

/// A file whose content is one table in HDU1 (spZline).
pub fn decode_table_file(path: &Path) -> Result<Table> {
    let mut f = Fits::open(path).map_err(|x| err(path, x))?;
    f.select(super::names::TABLE).map_err(|x| err(path, x))?;
    read_table(path, &mut f)
}

/// An spZbest or spZline given without its spField: its table rows.
pub fn decode_companion(path: &Path, kind: super::identify::Kind) -> Result<Contribution> {
    let table = match kind {
        super::identify::Kind::Zbest => (PlateTable::Zbest, decode_zbest(path, None)?.0),
        _ => (PlateTable::Zline, decode_table_file(path)?),
    };
    Ok(Contribution {
        tables: vec![table],
        ..Default::default()
    })
}
