//! Decoding of one FITS input file into the records and table rows it contributes to its plate-MJD.
//! Runs on rayon threads: no HDF5 here.

use std::path::{Path, PathBuf};

use model::layout::{fits_names, Arm, PlateTable};
use model::{FiberId, KeyError, PlateMjd};
use store::records::wave_from_loglam;
use store::{AttrValue, CoaddRecord, ExposureColumns, ExposureField, FieldSet, Table, TableError};

use crate::names::{col, hdu, key};
use fitsread::{Fits, FitsError, HduKind};

/// The kinds of input file the ingest understands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
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
    /// An SDSS-V input (DR18 and later).
    Sdss5(crate::sdss5::Kind),
    /// A DESI input (coadd or redrock file).
    Desi(crate::desi::Kind),
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

/// What is wrong with one input file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Fits(#[from] FitsError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("{hdu}: {source}")]
    Key {
        hdu: String,
        #[source]
        source: KeyError,
    },
    #[error("no such file or directory")]
    NoSuchFile,
    #[error("not a regular file ({0}): skipped")]
    NotRegular(&'static str),
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "not a BOSS file name (expected spPlate-*, spec-*, spZbest-*, spZline-* or spAll*.fits)"
    )]
    NotBossName,
    #[error("a DESI file under an SDSS name: DESI files are named coadd-<SURVEY>-<PROGRAM>-<PIXNUM>.fits, coadd-<PETAL>-<TILEID>-thru<NIGHT>.fits (and redrock-…)")]
    DesiUnderSdssName,
    #[error("{0}")]
    Sdss5(String),
    #[error("{0}")]
    Desi(String),
    #[error("an SDSS-V (DR18 and later) file under an SDSS-I–IV name: SDSS-V files are named spec-<FIELD>-<MJD>-<CATALOGID>.fits, spField-<FIELD>-<MJD>.fits")]
    Sdss5UnderSdss4Name,
    #[error("the header says {header} but the file name says {name}")]
    Identity { header: String, name: String },
    #[error("HDU {position} ({name}) is missing{why}")]
    MissingHdu {
        name: &'static str,
        position: usize,
        why: &'static str,
    },
    #[error("{hdu} is an image, expected a table")]
    NotATable { hdu: String },
    #[error("{hdu}: column {column} is missing or is not {kind}")]
    Column {
        hdu: String,
        column: &'static str,
        kind: &'static str,
    },
    #[error("{hdu}: column {column} has {found} rows, {expected} expected")]
    ColumnLength {
        hdu: String,
        column: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{hdu}: not an exposure name (expected e.g. B1-00104927-...)")]
    ExposureName { hdu: String },
    #[error("{hdu}: exposure HDU without EXTNAME")]
    NoExtname { hdu: String },
    #[error("{hdu} is {found_rows}×{found_cols} but FLUX is {rows}×{cols}")]
    Shape {
        hdu: String,
        found_rows: usize,
        found_cols: usize,
        rows: usize,
        cols: usize,
    },
    #[error("HDU 5 (PLUGMAP): {0}")]
    Plugmap(&'static str),
    #[error("HDU 5 (PLUGMAP) has {rows} rows for {fibers} fibers")]
    PlugmapRows { rows: usize, fibers: usize },
    #[error("fiber {fiber}: {source} (the v2 layout needs it)")]
    Grid {
        fiber: i32,
        #[source]
        source: store::v2::GridError,
    },
}

/// A problem with one input file: the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct InputError {
    pub file: PathBuf,
    pub problem: Problem,
}

impl InputError {
    pub fn new(file: &Path, problem: impl Into<Problem>) -> Self {
        Self {
            file: file.to_path_buf(),
            problem: problem.into(),
        }
    }
}

type Result<T> = std::result::Result<T, InputError>;

fn ctx<E: Into<Problem>>(file: &Path) -> impl Fn(E) -> InputError + '_ {
    move |e| InputError::new(file, e)
}

/// One exposure of one camera of one fiber.
#[derive(Debug, Clone)]
pub struct Exposure {
    pub expid: u32,
    pub arm: Arm,
    pub spectrograph: i64,
    pub extname: String,
    pub data: ExposureColumns,
}

/// The coadds of an spPlate as its images: row `r` of every field is fiber `fibers[r]`, on the
/// grid `COEFF0 + COEFF1 * i`. Kept as images so that the v2 layout writes them as they are; v1
/// records are made per fiber when written.
#[derive(Debug)]
pub struct PlateImages {
    pub coeff0: f64,
    pub coeff1: f64,
    pub npix: usize,
    pub fibers: Vec<i32>,
    /// WAVE of each column (the same for every row).
    pub wave: Vec<f32>,
    pub flux: Vec<f32>,
    pub ivar: Vec<f32>,
    pub and_mask: Vec<i32>,
    pub or_mask: Vec<i32>,
    pub wavedisp: Vec<f32>,
    pub sky: Vec<f32>,
    /// From the sibling spZbest (0 without one).
    pub model: Vec<f32>,
}

impl PlateImages {
    /// The coadd of image row `row` as v1 records.
    pub fn records(&self, row: usize) -> Vec<CoaddRecord> {
        let o = row * self.npix;
        (0..self.npix)
            .map(|i| CoaddRecord {
                wave: self.wave[i],
                flux: self.flux[o + i],
                ivar: self.ivar[o + i],
                and_mask: self.and_mask[o + i],
                or_mask: self.or_mask[o + i],
                wavedisp: self.wavedisp[o + i],
                sky: self.sky[o + i],
                model: self.model[o + i],
            })
            .collect()
    }

    /// The images as raw 4-byte values in coadd field order, taken without a copy (WAVE: the one
    /// grid row, which the v2 layout repeats itself).
    pub fn into_fields(self) -> [Vec<u32>; 8] {
        use bytemuck::cast_vec as bits;
        [
            bits(self.wave),
            bits(self.flux),
            bits(self.ivar),
            bits(self.and_mask),
            bits(self.or_mask),
            bits(self.wavedisp),
            bits(self.sky),
            bits(self.model),
        ]
    }
}

/// Everything one input file contributes to its plate-MJD.
#[derive(Debug, Default)]
pub struct Contribution {
    /// Primary header cards, and whether they come from an spPlate (which takes precedence).
    pub header: Option<(Vec<(String, AttrValue)>, bool)>,
    /// Flux unit (BUNIT) of the source.
    pub flux_unit: Option<String>,
    /// Coadds of single fibers (spec files).
    pub coadds: Vec<(i32, Vec<CoaddRecord>)>,
    /// The coadds of an spPlate, all its fibers.
    pub plate: Option<std::sync::Arc<PlateImages>>,
    pub exposures: Vec<(i32, Exposure)>,
    pub tables: Vec<(PlateTable, Table)>,
}

/// The plate-MJD of a primary header (PLATEID, MJD), range checked.
fn header_plate_mjd(f: &mut Fits, path: &Path) -> Result<PlateMjd> {
    let plate = f.require_i64(key::PLATEID).map_err(ctx(path))?;
    let mjd = f.require_i64(key::MJD).map_err(ctx(path))?;
    PlateMjd::checked(plate, mjd).map_err(|source| {
        InputError::new(
            path,
            Problem::Key {
                hdu: "HDU 0".into(),
                source,
            },
        )
    })
}

/// Reads the plate-MJD (and fiber, for spec files) an input belongs to: from the pipeline file
/// name when it has one, else from its primary header.
pub fn identify(path: &Path, kind: InputKind) -> Result<(PlateMjd, Option<i32>)> {
    if let Some(id) = parse_pipeline_name(path, kind) {
        return Ok(id);
    }
    let mut f = Fits::open_for_headers(path).map_err(ctx(path))?;
    f.select(0).map_err(ctx(path))?;
    match other_survey(&mut f) {
        Some(Other::Desi) => return Err(InputError::new(path, Problem::DesiUnderSdssName)),
        Some(Other::Sdss5) => return Err(InputError::new(path, Problem::Sdss5UnderSdss4Name)),
        None => {}
    }
    let pm = header_plate_mjd(&mut f, path)?;
    let fiber = match kind {
        InputKind::Spec => {
            let fiber = f.require_i64(key::FIBERID).map_err(ctx(path))?;
            let id = FiberId::checked(pm.plate.into(), pm.mjd.into(), fiber).map_err(|source| {
                InputError::new(
                    path,
                    Problem::Key {
                        hdu: "HDU 0".into(),
                        source,
                    },
                )
            })?;
            Some(id.fiber)
        }
        _ => None,
    };
    Ok((pm, fiber))
}

/// The survey of a file from a later survey than SDSS-I–IV, told by its primary header (the current
/// HDU): SDSS-V files have a FIELDID and a RUN2D of v6 or later; DESI files group spectra (SPGRP:
/// healpix or a tile grouping, HPXPIXEL) or name the instrument. (TILEID is no sign: BOSS headers
/// have one too.)
fn other_survey(f: &mut Fits) -> Option<Other> {
    // Present as a string, or present with a value that is not a string (an error, where an absent
    // keyword is Ok(None)).
    let has = |f: &mut Fits, k: &str| f.key_str(k).map_or(true, |v| v.is_some());
    let desi = ["SPGRP", "HPXPIXEL"].iter().any(|k| has(f, k))
        || f.key_str("INSTRUME")
            .ok()
            .flatten()
            .is_some_and(|i| i.trim().eq_ignore_ascii_case("DESI"));
    if desi {
        return Some(Other::Desi);
    }
    crate::sdss5::identify::is_sdss5_header(f).then_some(Other::Sdss5)
}

/// A file of a later survey than SDSS-I–IV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Other {
    Sdss5,
    Desi,
}

/// The later survey a file is of, told by its primary header (None: SDSS-I–IV, or not FITS).
pub fn survey_of(path: &Path) -> Option<Other> {
    let mut f = Fits::open_for_headers(path).ok()?;
    f.select(0).ok()?;
    other_survey(&mut f)
}

/// (plate-MJD, fiber) from a pipeline file name, when it is one with in-range numbers.
fn parse_pipeline_name(path: &Path, kind: InputKind) -> Option<(PlateMjd, Option<i32>)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split('.').next()?;
    let mut parts = stem.split('-').skip(1).map(|p| p.parse::<i64>().ok());
    let plate = parts.next()??;
    let mjd = parts.next()??;
    let fiber = parts.next().flatten();
    let pm = PlateMjd::checked(plate, mjd).ok()?;
    match kind {
        InputKind::Spec => {
            let id = FiberId::checked(plate, mjd, fiber?).ok()?;
            Some((pm, Some(id.fiber)))
        }
        InputKind::Plate | InputKind::Zbest | InputKind::Zline => Some((pm, None)),
        InputKind::SpAll | InputKind::Sdss5(_) | InputKind::Desi(_) => None,
    }
}

/// Decodes a spec file: coadd, exposures, SPALL/SPECOBJ row, SPZLINE rows.
pub fn decode_spec(path: &Path, expected: FiberId) -> Result<Contribution> {
    let e = ctx(path);
    let mut f = Fits::open(path).map_err(&e)?;
    f.select(0).map_err(&e)?;
    refuse_later_surveys(&mut f, path)?;
    let header = f.header_cards().map_err(&e)?;
    check_identity(&mut f, path, expected)?;
    let flux_unit = f.key_str(key::BUNIT).map_err(&e)?;

    select_required(&mut f, path, hdu::COADD, "")?;
    let coadd_table = read_table(&mut f, path)?;
    let coadd = coadd_records(&coadd_table, &f.hdu_label()).map_err(ctx(path))?;

    let spall = match f.select_named(hdu::SPALL.0, hdu::SPALL.1).map_err(&e)? {
        Some(_) => read_table(&mut f, path)?,
        None => {
            if f.select_named(hdu::SPECOBJ.0, hdu::SPECOBJ.1)
                .map_err(&e)?
                .is_none()
            {
                return Err(InputError::new(
                    path,
                    Problem::MissingHdu {
                        name: "SPALL or SPECOBJ",
                        position: 2,
                        why: "",
                    },
                ));
            }
            read_table(&mut f, path)?
        }
    };
    let mut tables = vec![(PlateTable::Spall, spall)];
    if f.num_hdus() > hdu::SPZLINE.1 {
        select_required(&mut f, path, hdu::SPZLINE, "")?;
        tables.push((PlateTable::Zline, read_table(&mut f, path)?));
    }

    let mut exposures = Vec::new();
    for i in hdu::FIRST_EXPOSURE..f.num_hdus() {
        f.select(i).map_err(&e)?;
        let label = f.hdu_label();
        let name = f
            .extname()
            .ok_or_else(|| InputError::new(path, Problem::NoExtname { hdu: label.clone() }))?;
        let (arm, spectrograph, expid) = parse_exposure_name(&name)
            .ok_or_else(|| InputError::new(path, Problem::ExposureName { hdu: label.clone() }))?;
        let table = read_table(&mut f, path)?;
        let data = exposure_columns(&table, &label).map_err(ctx(path))?;
        exposures.push((
            expected.fiber,
            Exposure {
                expid,
                arm,
                spectrograph,
                extname: name,
                data,
            },
        ));
    }
    Ok(Contribution {
        header: Some((header, false)),
        flux_unit,
        coadds: vec![(expected.fiber, coadd)],
        exposures,
        tables,
        plate: None,
    })
}

/// A file of a later survey named like an SDSS-I–IV one is refused with a message saying so.
fn refuse_later_surveys(f: &mut Fits, path: &Path) -> Result<()> {
    match other_survey(f) {
        Some(Other::Desi) => Err(InputError::new(path, Problem::DesiUnderSdssName)),
        Some(Other::Sdss5) => Err(InputError::new(path, Problem::Sdss5UnderSdss4Name)),
        None => Ok(()),
    }
}

/// Selects a named HDU that must be there; a missing one is an error saying so.
fn select_required(
    f: &mut Fits,
    path: &Path,
    (name, position): (&'static str, usize),
    why: &'static str,
) -> Result<()> {
    match f.select_named(name, position).map_err(ctx(path))? {
        Some(_) => Ok(()),
        None => Err(InputError::new(
            path,
            Problem::MissingHdu {
                name,
                position,
                why,
            },
        )),
    }
}

/// Checks the primary header agrees with the plate-MJD-fiber the file was filed under.
fn check_identity(f: &mut Fits, path: &Path, expected: FiberId) -> Result<()> {
    let pm = header_plate_mjd(f, path)?;
    let fiber = f
        .key_i64(key::FIBERID)
        .map_err(ctx(path))?
        .unwrap_or(expected.fiber.into());
    let found = format!("{pm}-{fiber}");
    if found != expected.to_string() {
        return Err(InputError::new(
            path,
            Problem::Identity {
                header: found,
                name: expected.to_string(),
            },
        ));
    }
    Ok(())
}

fn read_table(f: &mut Fits, path: &Path) -> Result<Table> {
    if f.select(f.current()).map_err(ctx(path))? != HduKind::Table {
        return Err(InputError::new(
            path,
            Problem::NotATable { hdu: f.hdu_label() },
        ));
    }
    f.read_table().map_err(ctx(path))
}

fn required<T>(
    v: Option<T>,
    hdu: &str,
    column: &'static str,
    kind: &'static str,
) -> std::result::Result<T, Problem> {
    v.ok_or_else(|| Problem::Column {
        hdu: hdu.to_string(),
        column,
        kind,
    })
}

fn coadd_records(t: &Table, hdu: &str) -> std::result::Result<Vec<CoaddRecord>, Problem> {
    let f32s = |name| required(t.f32_column(name), hdu, name, "float32");
    let i32s = |name| required(t.i32_column(name), hdu, name, "int32");
    let loglam = f32s(col::LOGLAM)?;
    let flux = f32s(col::FLUX)?;
    let ivar = f32s(col::IVAR)?;
    let and_mask = i32s(col::AND_MASK)?;
    let or_mask = i32s(col::OR_MASK)?;
    let wdisp = f32s(col::WDISP)?;
    let sky = f32s(col::SKY)?;
    let model = f32s(col::MODEL)?;
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

/// The FITS column each exposure field comes from (WAVE is computed from LOGLAM).
fn exposure_source(f: ExposureField) -> &'static str {
    match f {
        ExposureField::Wave => col::LOGLAM,
        ExposureField::Flux => col::FLUX,
        ExposureField::Ivar => col::IVAR,
        ExposureField::Mask => col::MASK,
        ExposureField::Wavedisp => col::WDISP,
        ExposureField::Sky => col::SKY,
        ExposureField::X => col::X,
        ExposureField::Calib => col::CALIB,
    }
}

/// The fields an exposure HDU has, exactly as it has them: LOGLAM and FLUX are required, every
/// other field is kept when its column exists (and must then have the right type). Pixels keep the
/// file's order (SDSS-I/II exposures run in decreasing wavelength).
fn exposure_columns(t: &Table, hdu: &str) -> std::result::Result<ExposureColumns, Problem> {
    let mut fields = FieldSet::default();
    let mut columns = Vec::new();
    for f in ExposureField::ALL {
        let name = exposure_source(f);
        let present = t.column_index(name).is_some();
        let needed = matches!(f, ExposureField::Wave | ExposureField::Flux);
        if !present && !needed {
            continue;
        }
        let values: Vec<u32> = if f.is_int() {
            required(t.i32_column(name), hdu, name, "int32")?
                .into_iter()
                .map(|v| v as u32)
                .collect()
        } else {
            let v = required(t.f32_column(name), hdu, name, "float32")?;
            match f {
                ExposureField::Wave => v
                    .iter()
                    .map(|&l| wave_from_loglam(l as f64).to_bits())
                    .collect(),
                _ => v.iter().map(|x| x.to_bits()).collect(),
            }
        };
        fields = fields.with(f);
        columns.push(values);
    }
    Ok(ExposureColumns { fields, columns })
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
    refuse_later_surveys(&mut f, path)?;
    let header = f.header_cards().map_err(&e)?;
    let found = header_plate_mjd(&mut f, path)?;
    if found != pm {
        return Err(InputError::new(
            path,
            Problem::Identity {
                header: found.to_string(),
                name: pm.to_string(),
            },
        ));
    }
    let coeff0 = f.require_f64(key::COEFF0).map_err(&e)?;
    let coeff1 = f.require_f64(key::COEFF1).map_err(&e)?;
    let flux_unit = f.key_str(key::BUNIT).map_err(&e)?;
    // Check every HDU is there before reading the large images.
    for h in [
        hdu::IVAR,
        hdu::ANDMASK,
        hdu::ORMASK,
        hdu::WAVEDISP,
        hdu::PLUGMAP,
        hdu::SKY,
    ] {
        select_required(&mut f, path, h, ": not a complete spPlate")?;
    }
    f.select(0).map_err(&e)?;
    let (flux, nfiber, npix) = f.image_f32().map_err(&e)?;
    let image_f32 = |f: &mut Fits, h: (&'static str, usize)| -> Result<Vec<f32>> {
        select_required(f, path, h, "")?;
        let (data, rows, cols) = f.image_f32().map_err(&e)?;
        same_shape(path, f, (rows, cols), (nfiber, npix))?;
        Ok(data)
    };
    let ivar = image_f32(&mut f, hdu::IVAR)?;
    let wavedisp = image_f32(&mut f, hdu::WAVEDISP)?;
    let sky = image_f32(&mut f, hdu::SKY)?;
    let image_i32 = |f: &mut Fits, h: (&'static str, usize)| -> Result<Vec<i32>> {
        select_required(f, path, h, "")?;
        let (data, rows, cols) = f.image_i32().map_err(&e)?;
        same_shape(path, f, (rows, cols), (nfiber, npix))?;
        Ok(data)
    };
    let and_mask = image_i32(&mut f, hdu::ANDMASK)?;
    let or_mask = image_i32(&mut f, hdu::ORMASK)?;
    select_required(&mut f, path, hdu::PLUGMAP, "")?;
    let plugmap = read_table(&mut f, path)?;
    let fibers = plugmap
        .fiber_ids()
        .ok_or_else(|| InputError::new(path, Problem::Plugmap("column FIBERID is missing")))?;
    if fibers.len() != nfiber {
        return Err(InputError::new(
            path,
            Problem::PlugmapRows {
                rows: fibers.len(),
                fibers: nfiber,
            },
        ));
    }
    for &fiber in &fibers {
        FiberId::checked(pm.plate.into(), pm.mjd.into(), fiber.into()).map_err(|source| {
            InputError::new(
                path,
                Problem::Key {
                    hdu: "HDU 5 (PLUGMAP)".into(),
                    source,
                },
            )
        })?;
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
    let model = model.unwrap_or_else(|| vec![0.0; nfiber * npix]);
    let images = PlateImages {
        coeff0,
        coeff1,
        npix,
        fibers,
        wave,
        flux,
        ivar,
        and_mask,
        or_mask,
        wavedisp,
        sky,
        model,
    };
    Ok(Contribution {
        header: Some((header, true)),
        flux_unit,
        plate: Some(std::sync::Arc::new(images)),
        tables,
        ..Default::default()
    })
}

fn same_shape(
    path: &Path,
    f: &mut Fits,
    found: (usize, usize),
    expected: (usize, usize),
) -> Result<()> {
    if found != expected {
        return Err(InputError::new(
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
    same_shape(path, &mut f, (rows, cols), shape)?;
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
/// Rows whose numbers are out of range cannot belong to a store fiber and are left out.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpAllIndex {
    #[serde(with = "crate::plan::path_bytes")]
    pub path: PathBuf,
    pub rows: Vec<(FiberId, u64)>,
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
            .filter_map(|i| {
                FiberId::checked(plate[i], mjd[i], fiber[i])
                    .ok()
                    .map(|id| (id, i as u64))
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// Keeps only the rows of these plate-MJDs (what the plan needs to carry to every rank).
    pub fn retain_plate_mjds(&mut self, keep: &std::collections::BTreeSet<PlateMjd>) {
        self.rows.retain(|(id, _)| keep.contains(&id.plate_mjd()));
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
            .map(|&(_, r)| r as usize)
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
        // Out-of-range numbers in a name are not trusted: the header decides (and is checked).
        let big = Path::new("/x/spec-99999999999-55240-0002.fits");
        assert_eq!(parse_pipeline_name(big, InputKind::Spec), None);
        assert_eq!(
            parse_exposure_name("B1-00104927-00104934-00104935"),
            Some((Arm::Blue, 1, 104927))
        );
        assert_eq!(parse_exposure_name("R2-00000012"), Some((Arm::Red, 2, 12)));
        assert_eq!(parse_exposure_name("COADD"), None);
    }
}
