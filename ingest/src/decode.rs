//! Decoding of one FITS input file into the records and table rows it contributes to its plate-MJD.
//! Runs on rayon threads: no HDF5 here.

use std::path::{Path, PathBuf};

use catalog::layout::{fits_names, Arm, PlateTable};
use catalog::{FiberId, PlateMjd};
use store::records::wave_from_loglam;
use store::{AttrValue, CoaddRecord, ExposureRecord, Table};

use crate::fits::{Fits, FitsError, HduKind};
use crate::names::{col, hdu, key};

/// The kinds of input file the ingest understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InputKind {
    /// `spPlate-PPPP-MMMMM.fits`: all fibers of a plate-MJD.
    Plate,
    /// `spec-PPPP-MMMMM-FFFF.fits`: one fiber (lite or full).
    Spec,
    /// `spZbest-PPPP-MMMMM.fits`: redshifts and best-fit models.
    Zbest,
    /// `spZline-PPPP-MMMMM.fits`: emission-line fits.
    Zline,
    /// `spAll*.fits`: the survey catalog.
    SpAll,
}

impl InputKind {
    /// The kind named by a pipeline file name, if it is one.
    pub fn from_file_name(name: &str) -> Option<Self> {
        use fits_names::*;
        let name = name.strip_suffix(".gz").unwrap_or(name);
        if !(name.ends_with(".fits") || name.ends_with(".fit")) {
            return None;
        }
        [
            (SPPLATE_PREFIX, Self::Plate),
            (SPEC_PREFIX, Self::Spec),
            (SPZBEST_PREFIX, Self::Zbest),
            (SPZLINE_PREFIX, Self::Zline),
            (SPALL_PREFIX, Self::SpAll),
        ]
        .into_iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, kind)| kind)
    }
}

/// A problem with one input file: the file and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct InputError {
    pub file: PathBuf,
    pub message: String,
}

impl InputError {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, InputError>;

fn ctx(file: &Path) -> impl Fn(FitsError) -> InputError + '_ {
    move |e| InputError::new(file, e.0)
}

/// One exposure of one camera of one fiber.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub expid: u32,
    pub arm: Arm,
    pub spectrograph: i64,
    pub extname: String,
    pub records: Vec<ExposureRecord>,
}

/// Everything one input file contributes to its plate-MJD.
#[derive(Debug, Default)]
pub struct Contribution {
    /// Primary header cards, and whether they come from an spPlate (which takes precedence).
    pub header: Option<(Vec<(String, AttrValue)>, bool)>,
    /// Flux unit (BUNIT) of the source.
    pub flux_unit: Option<String>,
    pub coadds: Vec<(i32, Vec<CoaddRecord>)>,
    pub exposures: Vec<(i32, Exposure)>,
    pub tables: Vec<(PlateTable, Table)>,
}

/// Reads the plate-MJD (and fiber, for spec files) an input belongs to: from the pipeline file
/// name when it has one, else from its primary header.
pub fn identify(path: &Path, kind: InputKind) -> Result<(PlateMjd, Option<i32>)> {
    if let Some(id) = parse_pipeline_name(path, kind) {
        return Ok(id);
    }
    let mut f = Fits::open(path).map_err(ctx(path))?;
    f.select(0).map_err(ctx(path))?;
    let plate = f.require_i64(key::PLATEID).map_err(ctx(path))? as i32;
    let mjd = f.require_i64(key::MJD).map_err(ctx(path))? as i32;
    let fiber = match kind {
        InputKind::Spec => Some(f.require_i64(key::FIBERID).map_err(ctx(path))? as i32),
        _ => None,
    };
    Ok((PlateMjd { plate, mjd }, fiber))
}

fn parse_pipeline_name(path: &Path, kind: InputKind) -> Option<(PlateMjd, Option<i32>)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split('.').next()?;
    let mut parts = stem.split('-').skip(1).map(|p| p.parse::<i32>().ok());
    let plate = parts.next()??;
    let mjd = parts.next()??;
    let fiber = parts.next().flatten();
    let pm = PlateMjd { plate, mjd };
    match kind {
        InputKind::Spec => fiber.map(|f| (pm, Some(f))),
        InputKind::Plate | InputKind::Zbest | InputKind::Zline => Some((pm, None)),
        InputKind::SpAll => None,
    }
}

/// Decodes a spec file: coadd, exposures, SPALL/SPECOBJ row, SPZLINE rows.
pub fn decode_spec(path: &Path, expected: FiberId) -> Result<Contribution> {
    let e = ctx(path);
    let mut f = Fits::open(path).map_err(&e)?;
    f.select(0).map_err(&e)?;
    let header = f.header_cards().map_err(&e)?;
    check_identity(&mut f, path, expected)?;
    let flux_unit = f.key_str(key::BUNIT).map_err(&e)?;

    f.select_named(hdu::COADD.0, hdu::COADD.1).map_err(&e)?;
    let coadd_table = read_table(&mut f, path)?;
    let coadd = coadd_records(&coadd_table)
        .map_err(|m| InputError::new(path, format!("{}: {m}", f.hdu_label())))?;

    let spall = match f.select_named(hdu::SPALL.0, hdu::SPALL.1) {
        Ok(_) => read_table(&mut f, path)?,
        Err(_) => {
            f.select_named(hdu::SPECOBJ.0, hdu::SPECOBJ.1)
                .map_err(|_| InputError::new(path, "HDU 2 (SPALL or SPECOBJ) is missing"))?;
            read_table(&mut f, path)?
        }
    };
    let mut tables = vec![(PlateTable::Spall, spall)];
    if f.num_hdus() > hdu::SPZLINE.1 {
        f.select_named(hdu::SPZLINE.0, hdu::SPZLINE.1).map_err(&e)?;
        tables.push((PlateTable::Zline, read_table(&mut f, path)?));
    }

    let mut exposures = Vec::new();
    for i in hdu::FIRST_EXPOSURE..f.num_hdus() {
        f.select(i).map_err(&e)?;
        let label = f.hdu_label();
        let name = f.extname().ok_or_else(|| {
            InputError::new(path, format!("{label}: exposure HDU without EXTNAME"))
        })?;
        let (arm, spectrograph, expid) = parse_exposure_name(&name).ok_or_else(|| {
            InputError::new(
                path,
                format!("{label}: not an exposure name (expected e.g. B1-00104927-...)"),
            )
        })?;
        let table = read_table(&mut f, path)?;
        let records =
            exposure_records(&table).map_err(|m| InputError::new(path, format!("{label}: {m}")))?;
        exposures.push((
            expected.fiber,
            Exposure {
                expid,
                arm,
                spectrograph,
                extname: name,
                records,
            },
        ));
    }
    Ok(Contribution {
        header: Some((header, false)),
        flux_unit,
        coadds: vec![(expected.fiber, coadd)],
        exposures,
        tables,
    })
}

/// Checks the primary header agrees with the plate-MJD-fiber the file was filed under.
fn check_identity(f: &mut Fits, path: &Path, expected: FiberId) -> Result<()> {
    let e = ctx(path);
    let plate = f.require_i64(key::PLATEID).map_err(&e)? as i32;
    let mjd = f.require_i64(key::MJD).map_err(&e)? as i32;
    let fiber = f
        .key_i64(key::FIBERID)
        .map_err(&e)?
        .map(|v| v as i32)
        .unwrap_or(expected.fiber);
    let found = FiberId::new(plate, mjd, fiber);
    if found != expected {
        return Err(InputError::new(
            path,
            format!("the header says {found} but the file name says {expected}"),
        ));
    }
    Ok(())
}

fn read_table(f: &mut Fits, path: &Path) -> Result<Table> {
    if f.select(f.current()).map_err(ctx(path))? != HduKind::Table {
        let label = f.hdu_label();
        return Err(InputError::new(
            path,
            format!("{label} is an image, expected a table"),
        ));
    }
    f.read_table().map_err(ctx(path))
}

fn required<T>(v: Option<T>, name: &str, kind: &str) -> std::result::Result<T, String> {
    v.ok_or_else(|| format!("column {name} is missing or is not {kind}"))
}

fn coadd_records(t: &Table) -> std::result::Result<Vec<CoaddRecord>, String> {
    let loglam = required(t.f32_column(col::LOGLAM), col::LOGLAM, "float32")?;
    let flux = required(t.f32_column(col::FLUX), col::FLUX, "float32")?;
    let ivar = required(t.f32_column(col::IVAR), col::IVAR, "float32")?;
    let and_mask = required(t.i32_column(col::AND_MASK), col::AND_MASK, "int32")?;
    let or_mask = required(t.i32_column(col::OR_MASK), col::OR_MASK, "int32")?;
    let wdisp = required(t.f32_column(col::WDISP), col::WDISP, "float32")?;
    let sky = required(t.f32_column(col::SKY), col::SKY, "float32")?;
    let model = required(t.f32_column(col::MODEL), col::MODEL, "float32")?;
    Ok((0..t.num_rows())
        .map(|i| CoaddRecord {
            wave: wave_from_loglam(loglam[i] as f64),
            flux: flux[i],
            ivar: ivar[i],
            and_mask: and_mask[i],
            or_mask: or_mask[i],
            wavedisp: wdisp[i],
            sky: sky[i],
            model: model[i],
        })
        .collect())
}

fn exposure_records(t: &Table) -> std::result::Result<Vec<ExposureRecord>, String> {
    let loglam = required(t.f32_column(col::LOGLAM), col::LOGLAM, "float32")?;
    let flux = required(t.f32_column(col::FLUX), col::FLUX, "float32")?;
    let ivar = required(t.f32_column(col::IVAR), col::IVAR, "float32")?;
    let mask = required(t.i32_column(col::MASK), col::MASK, "int32")?;
    let wdisp = required(t.f32_column(col::WDISP), col::WDISP, "float32")?;
    let sky = required(t.f32_column(col::SKY), col::SKY, "float32")?;
    let x = required(t.f32_column(col::X), col::X, "float32")?;
    let calib = required(t.f32_column(col::CALIB), col::CALIB, "float32")?;
    Ok((0..t.num_rows())
        .map(|i| ExposureRecord {
            wave: wave_from_loglam(loglam[i] as f64),
            flux: flux[i],
            ivar: ivar[i],
            mask: mask[i],
            wavedisp: wdisp[i],
            sky: sky[i],
            x: x[i],
            calib: calib[i],
        })
        .collect())
}

/// `B1-00104927-00104934-00104935` → (Blue, 1, 104927).
pub fn parse_exposure_name(name: &str) -> Option<(Arm, i64, u32)> {
    let mut parts = name.trim().split('-');
    let camera = parts.next()?;
    let expid = parts.next()?.parse().ok()?;
    let mut chars = camera.chars();
    let arm = match chars.next()?.to_ascii_uppercase() {
        'B' => Arm::Blue,
        'R' => Arm::Red,
        _ => return None,
    };
    let spectrograph = chars.as_str().parse().ok()?;
    Some((arm, spectrograph, expid))
}

/// Decodes an spPlate (all 7 HDUs) with its sibling spZbest (MODEL, zbest) and spZline (zline).
pub fn decode_plate(path: &Path, pm: PlateMjd) -> Result<Contribution> {
    let e = ctx(path);
    let mut f = Fits::open(path).map_err(&e)?;
    f.select(0).map_err(&e)?;
    let header = f.header_cards().map_err(&e)?;
    let plate = f.require_i64(key::PLATEID).map_err(&e)? as i32;
    let mjd = f.require_i64(key::MJD).map_err(&e)? as i32;
    if (PlateMjd { plate, mjd }) != pm {
        return Err(InputError::new(
            path,
            format!("the header says {plate}-{mjd} but the file name says {pm}"),
        ));
    }
    let coeff0 = f.require_f64(key::COEFF0).map_err(&e)?;
    let coeff1 = f.require_f64(key::COEFF1).map_err(&e)?;
    let flux_unit = f.key_str(key::BUNIT).map_err(&e)?;
    // Check every HDU is there before reading the large images.
    for (name, pos) in [
        hdu::IVAR,
        hdu::ANDMASK,
        hdu::ORMASK,
        hdu::WAVEDISP,
        hdu::PLUGMAP,
        hdu::SKY,
    ] {
        f.select_named(name, pos).map_err(|_| {
            InputError::new(
                path,
                format!("HDU {pos} ({name}) is missing: not a complete spPlate"),
            )
        })?;
    }
    f.select(0).map_err(&e)?;
    let (flux, nfiber, npix) = f.image_f32().map_err(&e)?;
    let image_f32 = |f: &mut Fits, (name, pos): (&str, usize)| -> Result<Vec<f32>> {
        f.select_named(name, pos).map_err(&e)?;
        let (data, rows, cols) = f.image_f32().map_err(&e)?;
        same_shape(path, name, (rows, cols), (nfiber, npix))?;
        Ok(data)
    };
    let ivar = image_f32(&mut f, hdu::IVAR)?;
    let wavedisp = image_f32(&mut f, hdu::WAVEDISP)?;
    let sky = image_f32(&mut f, hdu::SKY)?;
    let image_i32 = |f: &mut Fits, (name, pos): (&str, usize)| -> Result<Vec<i32>> {
        f.select_named(name, pos).map_err(&e)?;
        let (data, rows, cols) = f.image_i32().map_err(&e)?;
        same_shape(path, name, (rows, cols), (nfiber, npix))?;
        Ok(data)
    };
    let and_mask = image_i32(&mut f, hdu::ANDMASK)?;
    let or_mask = image_i32(&mut f, hdu::ORMASK)?;
    f.select_named(hdu::PLUGMAP.0, hdu::PLUGMAP.1).map_err(&e)?;
    let plugmap = read_table(&mut f, path)?;
    let fibers = plugmap
        .fiber_ids()
        .ok_or_else(|| InputError::new(path, "HDU 5 (PLUGMAP): column FIBERID is missing"))?;
    if fibers.len() != nfiber {
        return Err(InputError::new(
            path,
            format!(
                "HDU 5 (PLUGMAP) has {} rows for {nfiber} fibers",
                fibers.len()
            ),
        ));
    }
    drop(f);

    let mut tables = vec![(PlateTable::Plugmap, plugmap)];
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut model = None;
    if let Some(zbest_path) = sibling(dir, &fits_names::spzbest(pm)) {
        let (table, image) = decode_zbest(&zbest_path, Some((nfiber, npix)))?;
        tables.push((PlateTable::Zbest, table));
        model = image;
    }
    if let Some(zline_path) = sibling(dir, &fits_names::spzline(pm)) {
        tables.push((PlateTable::Zline, decode_table_file(&zline_path)?));
    }

    let wave: Vec<f32> = (0..npix)
        .map(|i| wave_from_loglam(coeff0 + coeff1 * i as f64))
        .collect();
    let coadds = fibers
        .iter()
        .enumerate()
        .map(|(row, &fiber)| {
            let o = row * npix;
            let records = (0..npix)
                .map(|i| CoaddRecord {
                    wave: wave[i],
                    flux: flux[o + i],
                    ivar: ivar[o + i],
                    and_mask: and_mask[o + i],
                    or_mask: or_mask[o + i],
                    wavedisp: wavedisp[o + i],
                    sky: sky[o + i],
                    model: model.as_ref().map_or(0.0, |m: &Vec<f32>| m[o + i]),
                })
                .collect();
            (fiber, records)
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

fn same_shape(
    path: &Path,
    name: &str,
    found: (usize, usize),
    expected: (usize, usize),
) -> Result<()> {
    if found != expected {
        return Err(InputError::new(
            path,
            format!(
                "HDU {name} is {}×{} but FLUX is {}×{}",
                found.0, found.1, expected.0, expected.1
            ),
        ));
    }
    Ok(())
}

/// A companion file next to an spPlate, plain or gzipped.
fn sibling(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// Path of the spPlate's sibling companions, so that the planner does not ingest them twice.
pub fn plate_siblings(plate_path: &Path, pm: PlateMjd) -> Vec<PathBuf> {
    let dir = plate_path.parent().unwrap_or(Path::new("."));
    [fits_names::spzbest(pm), fits_names::spzline(pm)]
        .iter()
        .filter_map(|n| sibling(dir, n))
        .collect()
}

/// spZbest: HDU1 table, and HDU2 MODEL image when its shape is the expected one.
pub fn decode_zbest(
    path: &Path,
    shape: Option<(usize, usize)>,
) -> Result<(Table, Option<Vec<f32>>)> {
    let e = ctx(path);
    let mut f = Fits::open(path).map_err(&e)?;
    f.select(hdu::ZBEST_TABLE).map_err(&e)?;
    let table = read_table(&mut f, path)?;
    let Some(shape) = shape else {
        return Ok((table, None));
    };
    if f.num_hdus() <= hdu::ZBEST_MODEL {
        return Ok((table, None));
    }
    f.select(hdu::ZBEST_MODEL).map_err(&e)?;
    let (model, rows, cols) = f.image_f32().map_err(&e)?;
    same_shape(path, "2 (MODEL)", (rows, cols), shape)?;
    Ok((table, Some(model)))
}

/// A file whose content is one table in HDU1 (spZline).
pub fn decode_table_file(path: &Path) -> Result<Table> {
    let mut f = Fits::open(path).map_err(ctx(path))?;
    f.select(hdu::TABLE).map_err(ctx(path))?;
    read_table(&mut f, path)
}

/// A decoded companion file given on its own (spZbest or spZline without its spPlate).
pub fn decode_companion(path: &Path, kind: InputKind) -> Result<Contribution> {
    let (table, name) = match kind {
        InputKind::Zbest => (decode_zbest(path, None)?.0, PlateTable::Zbest),
        _ => (decode_table_file(path)?, PlateTable::Zline),
    };
    Ok(Contribution {
        tables: vec![(name, table)],
        ..Default::default()
    })
}

/// The (PLATE, MJD, FIBERID) index of an spAll file, read column by column (cheap on large files).
pub struct SpAllIndex {
    pub path: PathBuf,
    pub rows: Vec<(FiberId, usize)>,
}

impl SpAllIndex {
    pub fn read(path: &Path) -> Result<Self> {
        let e = ctx(path);
        let mut f = Fits::open(path).map_err(&e)?;
        f.select(hdu::TABLE).map_err(&e)?;
        let plate = f.int_column(col::PLATE).map_err(&e)?;
        let mjd = f.int_column(col::MJD).map_err(&e)?;
        let fiber = f.int_column(col::FIBERID).map_err(&e)?;
        let rows = (0..plate.len())
            .map(|i| {
                (
                    FiberId::new(plate[i] as i32, mjd[i] as i32, fiber[i] as i32),
                    i,
                )
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// Reads the full rows for these fibers (those present in the file).
    pub fn read_rows(&self, fibers: &std::collections::HashSet<FiberId>) -> Result<Table> {
        let e = ctx(&self.path);
        let mut f = Fits::open(&self.path).map_err(&e)?;
        f.select(hdu::TABLE).map_err(&e)?;
        let layout = f.table_layout().map_err(&e)?;
        let rows: Vec<usize> = self
            .rows
            .iter()
            .filter(|(id, _)| fibers.contains(id))
            .map(|&(_, r)| r)
            .collect();
        f.read_table_rows(&layout, &rows).map_err(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names() {
        assert_eq!(
            InputKind::from_file_name("spPlate-3655-55240.fits"),
            Some(InputKind::Plate)
        );
        assert_eq!(
            InputKind::from_file_name("spec-3655-55240-0002.fits.gz"),
            Some(InputKind::Spec)
        );
        assert_eq!(
            InputKind::from_file_name("spAll-v5_13_0.fits"),
            Some(InputKind::SpAll)
        );
        assert_eq!(InputKind::from_file_name("notes.txt"), None);
        let p = Path::new("/x/spec-3655-55240-0002.fits");
        assert_eq!(
            parse_pipeline_name(p, InputKind::Spec),
            Some((
                PlateMjd {
                    plate: 3655,
                    mjd: 55240
                },
                Some(2)
            ))
        );
        assert_eq!(
            parse_exposure_name("B1-00104927-00104934-00104935"),
            Some((Arm::Blue, 1, 104927))
        );
        assert_eq!(parse_exposure_name("R2-00000012"), Some((Arm::Red, 2, 12)));
        assert_eq!(parse_exposure_name("COADD"), None);
    }
}
