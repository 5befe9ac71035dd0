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

/// One arm (B, R or Z) of a coadd: its wavelength grid and per-target arrays, rows in TARGETID
/// order, as the native-endian bytes of their values.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmData {
    /// `b`, `r` or `z`.
    pub name: &'static str,
    pub wave: Vec<f64>,
    /// float32 `[target, pixel]`.
    pub flux: Vec<u8>,
    /// float32 `[target, pixel]`.
    pub ivar: Vec<u8>,
    /// int32 `[target, pixel]`.
    pub mask: Vec<u8>,
    /// float32 `[target, diagonal, pixel]`.
    pub resolution: Vec<u8>,
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
    /// The file's rows in TARGETID order: `order[i]` is the file row of the i-th target.
    pub order: Vec<usize>,
    /// The primary header.
    pub header: Vec<(String, AttrValue)>,
    /// The arms, their rows in `order`.
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

/// Selects the image HDU `name`, checks its shape against `want` (numpy order; None: any 1-D
/// shape) and returns its BUNIT.
fn image_hdu(
    path: &Path,
    f: &mut Fits,
    name: &str,
    want: Option<&[usize]>,
) -> Result<Option<String>, InputError> {
    select(path, f, name, HduKind::Image)?;
    let dims = f.image_dims().map_err(fits_err(path))?;
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
    Ok(bunit(f))
}

/// Reads the rows of the image HDU `name` (of shape `want`) in `order`, as bytes of `T`.
fn rows<T: fitsread::Pixel>(
    path: &Path,
    f: &mut Fits,
    name: &str,
    want: &[usize],
    order: &[usize],
) -> Result<(Vec<u8>, Option<String>), InputError> {
    let unit = image_hdu(path, f, name, Some(want))?;
    let bytes = f.image_rows_bytes::<T>(order).map_err(fits_err(path))?;
    Ok((bytes, unit))
}

/// Reads arm `arm` (`b`) of a coadd whose FIBERMAP rows are `order` in TARGETID order, its shapes
/// checked against FIBERMAP and the arm's WAVELENGTH; the rows in TARGETID order.
fn read_arm(
    path: &Path,
    f: &mut Fits,
    arm: &'static str,
    order: &[usize],
) -> Result<ArmData, InputError> {
    let n = order.len();
    let hdu = |q: &str| format!("{}_{q}", arm.to_ascii_uppercase());
    let mut units = Vec::new();
    let mut unit = |q: &'static str, u: Option<String>| {
        if let Some(u) = u {
            units.push((q, u));
        }
    };
    let wave_unit = image_hdu(path, f, &hdu("WAVELENGTH"), None)?;
    let (wave, _) = f.image_nd_f64().map_err(fits_err(path))?;
    unit("WAVELENGTH", wave_unit);
    let npix = wave.len();
    let shape = [n, npix];
    let (flux, u) = rows::<f32>(path, f, &hdu("FLUX"), &shape, order)?;
    unit("FLUX", u);
    let (ivar, u) = rows::<f32>(path, f, &hdu("IVAR"), &shape, order)?;
    unit("IVAR", u);
    let (mask, _) = rows::<i32>(path, f, &hdu("MASK"), &shape, order)?;
    let name = hdu("RESOLUTION");
    select(path, f, &name, HduKind::Image)?;
    let dims = f.image_dims().map_err(fits_err(path))?;
    if dims.len() != 3 || dims[0] != n || dims[2] != npix || dims[1] == 0 {
        return Err(desi(
            path,
            format!(
                "HDU {name} has shape {dims:?}, expected [{n}, NDIAG, {npix}] (FIBERMAP rows, diagonals, the pixels of {})",
                hdu("WAVELENGTH")
            ),
        ));
    }
    let resolution = f.image_rows_bytes::<f32>(order).map_err(fits_err(path))?;
    Ok(ArmData {
        name: arm,
        wave,
        flux,
        ivar,
        mask,
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
    let mut order: Vec<usize> = (0..targetids.len()).collect();
    order.sort_by_key(|&r| targetids[r]);
    // The arms are 99% of the bytes: with a reentrant cfitsio each is read on its own rayon
    // thread through its own handle; the first failing arm in B, R, Z order is reported.
    let arms: Vec<ArmData> = if fitsread::cfitsio_reentrant() {
        ARMS.par_iter()
            .map(|&arm| {
                read_arm(
                    path,
                    &mut Fits::open(path).map_err(fits_err(path))?,
                    arm,
                    &order,
                )
            })
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<_, _>>()?
    } else {
        ARMS.iter()
            .map(|&arm| read_arm(path, &mut f, arm, &order))
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
        order,
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
