//! Reading DESI coadd and redrock files (on rayon threads, no HDF5): every HDU by its EXTNAME,
//! never by position; shapes checked against FIBERMAP; values as the file holds them.

use std::collections::HashMap;
use std::path::Path;

use fitsread::{Fits, HduKind};
use model::desi::{ARMS, TARGETID};
use model::layout::PlateTable;
use rayon::prelude::*;
use store::attrs::AttrValue;
use store::Table;

use crate::decode::{InputError, Problem};

/// One arm (B, R or Z) of a coadd: its wavelength grid and per-target arrays, row-major in the
/// file's row order.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmData {
    /// `b`, `r` or `z`.
    pub name: &'static str,
    pub wave: Vec<f64>,
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
    pub mask: Vec<i32>,
    /// `[target, diagonal, pixel]`.
    pub resolution: Vec<f32>,
    pub ndiag: usize,
    /// BUNIT of each HDU of the arm (WAVELENGTH, FLUX, IVAR), when given.
    pub units: Vec<(&'static str, String)>,
}

impl ArmData {
    pub fn npix(&self) -> usize {
        self.wave.len()
    }
}

/// A coadd file, as read.
#[derive(Debug, Clone)]
pub struct CoaddFile {
    /// TARGETID of each row of the file, in the file's order.
    pub targetids: Vec<i64>,
    /// The primary header.
    pub header: Vec<(String, AttrValue)>,
    pub arms: Vec<ArmData>,
    /// FIBERMAP, EXP_FIBERMAP and SCORES (those present), keyed by TARGETID.
    pub tables: Vec<(PlateTable, Table)>,
}

/// A redrock file: REDSHIFTS and TSNR2 (its FIBERMAP and EXP_FIBERMAP are the coadd's).
#[derive(Debug, Clone)]
pub struct RedrockFile {
    pub tables: Vec<(PlateTable, Table)>,
}

fn desi(path: &Path, why: String) -> InputError {
    InputError::new(path, Problem::Desi(why))
}

fn fits_err(path: &Path) -> impl Fn(fitsread::FitsError) -> InputError + '_ {
    move |e| InputError::new(path, e)
}

/// Selects the HDU named `name`, which must be of `kind`.
fn select(path: &Path, f: &mut Fits, name: &str, kind: HduKind) -> Result<(), InputError> {
    match f.select_named(name, usize::MAX).map_err(fits_err(path))? {
        Some(k) if k == kind => Ok(()),
        Some(_) => Err(desi(
            path,
            format!(
                "HDU {name} is {}",
                match kind {
                    HduKind::Image => "a table, expected an image",
                    HduKind::Table => "an image, expected a table",
                }
            ),
        )),
        None => Err(desi(path, format!("HDU {name} is missing"))),
    }
}

/// Reads the table HDU `name` (None when the file has no such HDU and it is optional).
fn read_table(
    path: &Path,
    f: &mut Fits,
    name: &str,
    required: bool,
) -> Result<Option<Table>, InputError> {
    if !required
        && f.select_named(name, usize::MAX)
            .map_err(fits_err(path))?
            .is_none()
    {
        return Ok(None);
    }
    select(path, f, name, HduKind::Table)?;
    let t = f.read_table().map_err(fits_err(path))?;
    if t.column_index(TARGETID).is_none() {
        return Err(desi(
            path,
            format!("HDU {name}: column TARGETID is missing"),
        ));
    }
    Ok(Some(t))
}

fn bunit(f: &mut Fits) -> Option<String> {
    f.key_str("BUNIT")
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
}

type ImageRead<T> = fn(&mut Fits) -> fitsread::Result<(Vec<T>, Vec<usize>)>;

/// An image HDU's values and BUNIT.
struct Image<T> {
    values: Vec<T>,
    unit: Option<String>,
}

/// Reads the image HDU `name` of shape `want` (numpy order; None: any 1-D shape) and its BUNIT.
fn image<T>(
    path: &Path,
    f: &mut Fits,
    name: &str,
    want: Option<&[usize]>,
    read: ImageRead<T>,
) -> Result<Image<T>, InputError> {
    select(path, f, name, HduKind::Image)?;
    let (values, dims) = read(f).map_err(fits_err(path))?;
    let ok = match want {
        Some(w) => dims == w,
        None => dims.len() == 1,
    };
    if !ok {
        let want = want.map_or("1-D".to_string(), |w| format!("{w:?}"));
        return Err(desi(
            path,
            format!("HDU {name} has shape {dims:?}, expected {want} (FIBERMAP rows, then the pixels of the arm's WAVELENGTH)"),
        ));
    }
    Ok(Image {
        values,
        unit: bunit(f),
    })
}

/// Reads arm `arm` (`b`) of a coadd of `n` targets, its shapes checked against FIBERMAP and the
/// arm's WAVELENGTH.
fn read_arm(path: &Path, f: &mut Fits, arm: &'static str, n: usize) -> Result<ArmData, InputError> {
    let hdu = |q: &str| format!("{}_{q}", arm.to_ascii_uppercase());
    let mut units = Vec::new();
    let mut unit = |q: &'static str, u: Option<String>| {
        if let Some(u) = u {
            units.push((q, u));
        }
    };
    let wave = image(path, f, &hdu("WAVELENGTH"), None, Fits::image_nd_f64)?;
    unit("WAVELENGTH", wave.unit);
    let npix = wave.values.len();
    let rows = [n, npix];
    let flux = image(path, f, &hdu("FLUX"), Some(&rows), Fits::image_nd_f32)?;
    unit("FLUX", flux.unit);
    let ivar = image(path, f, &hdu("IVAR"), Some(&rows), Fits::image_nd_f32)?;
    unit("IVAR", ivar.unit);
    let mask = image(path, f, &hdu("MASK"), Some(&rows), Fits::image_nd_i32)?;
    let name = hdu("RESOLUTION");
    select(path, f, &name, HduKind::Image)?;
    let (resolution, dims) = f.image_nd_f32().map_err(fits_err(path))?;
    if dims.len() != 3 || dims[0] != n || dims[2] != npix || dims[1] == 0 {
        return Err(desi(
            path,
            format!(
                "HDU {name} has shape {dims:?}, expected [{n}, NDIAG, {npix}] (FIBERMAP rows, diagonals, the pixels of {})",
                hdu("WAVELENGTH")
            ),
        ));
    }
    Ok(ArmData {
        name: arm,
        wave: wave.values,
        flux: flux.values,
        ivar: ivar.values,
        mask: mask.values,
        resolution,
        ndiag: dims[1],
        units,
    })
}

/// The TARGETIDs of a table, each once (`what` names the HDU in the message).
fn unique_targetids(path: &Path, t: &Table, what: &str) -> Result<Vec<i64>, InputError> {
    let ids = t.key_values(TARGETID).ok_or_else(|| {
        desi(
            path,
            format!("HDU {what}: column TARGETID is not an integer"),
        )
    })?;
    let mut seen = HashMap::with_capacity(ids.len());
    for (row, &id) in ids.iter().enumerate() {
        if let Some(first) = seen.insert(id, row) {
            return Err(desi(
                path,
                format!(
                    "HDU {what}: TARGETID {id} is in rows {} and {} (one row per target expected)",
                    first + 1,
                    row + 1
                ),
            ));
        }
    }
    Ok(ids)
}

/// Reads a coadd file: FIBERMAP (one row per target), the three arms, EXP_FIBERMAP and SCORES.
pub fn decode_coadd(path: &Path) -> Result<CoaddFile, InputError> {
    let mut f = Fits::open(path).map_err(fits_err(path))?;
    f.select(0).map_err(fits_err(path))?;
    let header = f.header_cards().map_err(fits_err(path))?;
    let fibermap = read_table(path, &mut f, "FIBERMAP", true)?.expect("required");
    let targetids = unique_targetids(path, &fibermap, "FIBERMAP")?;
    let n = targetids.len();
    // The arms are 99% of the bytes: with a reentrant cfitsio each is read on its own rayon
    // thread through its own handle; the first failing arm in B, R, Z order is reported.
    let arms: Vec<ArmData> = if fitsread::cfitsio_reentrant() {
        ARMS.par_iter()
            .map(|&arm| read_arm(path, &mut Fits::open(path).map_err(fits_err(path))?, arm, n))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<_, _>>()?
    } else {
        ARMS.iter()
            .map(|&arm| read_arm(path, &mut f, arm, n))
            .collect::<Result<_, _>>()?
    };
    let mut tables = vec![(PlateTable::Fibermap, fibermap)];
    let known: std::collections::HashSet<i64> = targetids.iter().copied().collect();
    for t in [PlateTable::ExpFibermap, PlateTable::Scores] {
        let name = t.extname();
        if let Some(table) = read_table(path, &mut f, &name, false)? {
            let ids = table.key_values(TARGETID).ok_or_else(|| {
                desi(
                    path,
                    format!("HDU {name}: column TARGETID is not an integer"),
                )
            })?;
            if let Some(bad) = ids.iter().find(|i| !known.contains(i)) {
                return Err(desi(
                    path,
                    format!("HDU {name}: TARGETID {bad} is not in FIBERMAP"),
                ));
            }
            if t == PlateTable::Scores {
                unique_targetids(path, &table, &name)?;
            }
            tables.push((t, table));
        }
    }
    Ok(CoaddFile {
        targetids,
        header,
        arms,
        tables,
    })
}

/// Reads a redrock file: REDSHIFTS (one row per target) and TSNR2.
pub fn decode_redrock(path: &Path) -> Result<RedrockFile, InputError> {
    let mut f = Fits::open(path).map_err(fits_err(path))?;
    let redshifts = read_table(path, &mut f, "REDSHIFTS", true)?.expect("required");
    unique_targetids(path, &redshifts, "REDSHIFTS")?;
    let mut tables = vec![(PlateTable::Redshifts, redshifts)];
    if let Some(t) = read_table(path, &mut f, "TSNR2", false)? {
        unique_targetids(path, &t, "TSNR2")?;
        tables.push((PlateTable::Tsnr2, t));
    }
    Ok(RedrockFile { tables })
}
