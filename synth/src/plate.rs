//! One plate-MJD: its observing parameters and headers, the simulation of all its fibers, and the
//! plate-level files spPlate (7 HDUs), spZbest (table + MODEL image) and spZline.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use model::layout::fits_names;
use model::PlateMjd;
use rand::Rng;
use rayon::prelude::*;

use crate::astrometry::{airmass, plate_centre};
use crate::fits::{write_atomically, Card, FitsWriter};
use crate::seeds::{rng, Stream};
use crate::spectrum::{observe_coadd, FiberSpectrum, SkyModel, COEFF1, INSTRUMENT_SIGMA};
use crate::tables::{self, Summary};
use crate::targets::{make_target, Target};
use crate::zline::{self, ZlineRow};
use crate::{spec_file, Output};

/// Reduction versions written into headers and tables.
pub const RUN2D: &str = "v5_7_0";
pub const RUN1D: &str = "v5_7_0";
/// Science exposures per plate, and their length in seconds.
pub const NEXP: usize = 2;
const EXPOSURE_SECONDS: f64 = 900.0;
/// Cameras in the order the spPlate EXPIDnn keys list them.
const CAMERAS: [&str; 4] = ["b1", "b2", "r1", "r2"];

/// What to generate (from the command line).
#[derive(Debug, Clone)]
pub struct Config {
    pub out: PathBuf,
    pub plates: usize,
    pub fibers: usize,
    pub npix: usize,
    pub first_plate: i32,
    pub seed: u64,
    pub spec_files: bool,
    /// `Some(k)`: fibers 1..=k get exposure HDUs; `None`: fibers whose number is divisible by 10.
    pub exposures: Option<usize>,
    /// Which variant of the per-fiber spec files to write.
    pub flavor: Flavor,
}

/// The variants of real spec files (`data-model.md`) the generator can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Flavor {
    /// BOSS full files (DR12+): EXTNAMEs, lower-case COADD/exposure columns, HDU2 `SPALL`.
    #[default]
    Boss,
    /// eBOSS lite files as picca ships them: no EXTNAME on any extension, UPPER-case columns,
    /// HDUs 0-3 only (no exposures).
    Eboss,
    /// SDSS-I/II files of the current reprocessing (RUN2D 26): HDU2 `SPECOBJ`, and exposure HDUs with
    /// 7 columns (no `x`) running in decreasing wavelength.
    Legacy,
    /// SDSS-V (DR19, v6_1_3) full spec files and spField/spZbest/spZline, written by
    /// [`crate::sdss5`] (not by [`crate::generate`]).
    Sdss5,
    /// SDSS-V lite spec files (no exposure HDUs), written by [`crate::sdss5`].
    Sdss5Lite,
    /// DESI (DR1) HEALPix coadds with their redrock files, made after the real pair in
    /// data-samples/real/desi by [`crate::desi`] (`--plates` files of `--fibers` targets).
    Desi,
}

impl Flavor {
    /// Whether the flavor is one of SDSS-V's (written by [`crate::sdss5::generate`]).
    pub fn is_sdss5(self) -> bool {
        matches!(self, Self::Sdss5 | Self::Sdss5Lite)
    }
}

impl Config {
    /// Whether the spec file of `fiber` carries the per-exposure HDUs.
    pub fn has_exposures(&self, fiber: i32) -> bool {
        match self.exposures {
            Some(k) => fiber as usize <= k,
            None => fiber % 10 == 0,
        }
    }
}

/// Observing parameters of one plate-MJD.
#[derive(Debug, Clone)]
pub struct PlateInfo {
    pub index: usize,
    pub pm: PlateMjd,
    pub tile: i32,
    pub nfiber: usize,
    pub npix: usize,
    pub coeff0: f64,
    pub ra: f64,
    pub dec: f64,
    pub seed: u64,
    pub expids: [u32; NEXP],
    pub flat_id: u32,
    pub arc_id: u32,
    pub tai_beg: f64,
    pub airmass: f64,
    pub seeing: f64,
    pub ebv: f64,
    pub cartid: i32,
    pub helio_rv: f64,
}

impl PlateInfo {
    pub fn new(cfg: &Config, index: usize) -> Self {
        let mut r = rng(cfg.seed, index, Stream::Plate, 0);
        let (ra, dec) = plate_centre(index);
        let mjd = 55_000 + 7 * index as i32;
        // COEFF0 on the 1e-4 grid, as a decimal that round-trips through the header.
        let coeff0 = f64::from(35_528 + ((index * 3) % 4) as u32) / 10_000.0;
        let block = 100_000 + 10 * index as u32;
        let hour_angle = r.random_range(-20.0..20.0);
        Self {
            index,
            pm: PlateMjd {
                plate: cfg.first_plate + index as i32,
                mjd,
            },
            tile: 10_000 + index as i32,
            nfiber: cfg.fibers,
            npix: cfg.npix,
            coeff0,
            ra,
            dec,
            seed: cfg.seed,
            expids: [block, block + 1],
            flat_id: block + 2,
            arc_id: block + 3,
            tai_beg: (f64::from(mjd) + 0.15 + 0.2 * r.random::<f64>()) * 86_400.0,
            airmass: airmass(dec, hour_angle),
            seeing: r.random_range(1.0..2.2),
            ebv: 0.04 * (0.6 * r.random::<f64>() - 0.3).exp(),
            cartid: r.random_range(1..=17),
            helio_rv: r.random_range(-30.0..30.0),
        }
    }

    /// log10 λ of the coadd pixels: `COEFF0 + COEFF1 * i`.
    pub fn grid(&self) -> Vec<f64> {
        (0..self.npix)
            .map(|i| self.coeff0 + COEFF1 * i as f64)
            .collect()
    }

    /// Total science exposure time, s.
    pub fn exptime(&self) -> f64 {
        NEXP as f64 * EXPOSURE_SECONDS
    }

    /// `CHUNK` of the catalog.
    pub fn chunk(&self) -> String {
        format!("boss{}", 1 + self.index / 50)
    }

    /// Name of an exposure: camera, then the 8-digit science, flat and arc exposure numbers,
    /// e.g. `B1-00104927-00104934-00104935` (camera case as given).
    pub fn exposure_name(&self, camera: &str, exposure: usize) -> String {
        format!(
            "{camera}-{:08}-{:08}-{:08}",
            self.expids[exposure], self.flat_id, self.arc_id
        )
    }

    /// Primary-header cards shared by spPlate, spZbest, spZline and spec files (no dates: the output
    /// must be byte-identical for the same arguments).
    pub fn header(&self) -> Vec<Card> {
        let exptime = self.exptime();
        let tai_end = self.tai_beg + exptime + (NEXP as f64 - 1.0) * 120.0;
        let mut c = vec![
            Card::str("TELESCOP", "SDSS 2.5-M", "Sloan Digital Sky Survey"),
            Card::str("OBSERVAT", "APO", "Apache Point Observatory"),
            Card::str("FLAVOR", "science", "exposure type"),
            Card::int("PLATEID", i64::from(self.pm.plate), "plate number"),
            Card::int(
                "MJD",
                i64::from(self.pm.mjd),
                "modified Julian date of the night",
            ),
            Card::int("TILEID", i64::from(self.tile), "tile number"),
            Card::int("CARTID", i64::from(self.cartid), "cartridge"),
            Card::real("RA", self.ra, "RA of the plate centre (deg)"),
            Card::real("DEC", self.dec, "DEC of the plate centre (deg)"),
            Card::real("RADEG", self.ra, "RA of the plate centre (deg)"),
            Card::real("DECDEG", self.dec, "DEC of the plate centre (deg)"),
            Card::real("EQUINOX", 2000.0, ""),
            Card::real(
                "AIRMASS",
                (self.airmass * 1e4).round() / 1e4,
                "airmass at mid exposure",
            ),
            Card::real(
                "TAI",
                0.5 * (self.tai_beg + tai_end),
                "mid-exposure TAI (s)",
            ),
            Card::real("TAI-BEG", self.tai_beg, "start TAI (s)"),
            Card::real("TAI-END", tai_end, "end TAI (s)"),
            Card::real("EXPTIME", exptime, "total science exposure time (s)"),
            Card::real(
                "SEEING50",
                (self.seeing * 1e3).round() / 1e3,
                "median seeing (arcsec)",
            ),
            Card::real(
                "HELIO_RV",
                (self.helio_rv * 1e3).round() / 1e3,
                "heliocentric correction (km/s)",
            ),
            Card::int(
                "NEXP",
                (NEXP * CAMERAS.len()) as i64,
                "exposures x cameras in the coadd",
            ),
        ];
        let mut k = 0;
        for cam in CAMERAS {
            for e in 0..NEXP {
                k += 1;
                c.push(Card::str(
                    format!("EXPID{k:02}"),
                    self.exposure_name(cam, e),
                    "camera-exposure-flat-arc",
                ));
            }
        }
        for cam in CAMERAS {
            c.push(Card::int(
                format!("NEXP_{}", cam.to_uppercase()),
                NEXP as i64,
                "exposures of this camera",
            ));
            c.push(Card::real(
                format!("EXPT_{}", cam.to_uppercase()),
                exptime,
                "exposure time of this camera (s)",
            ));
        }
        c.extend([
            Card::str("RUN2D", RUN2D, "2D reduction version"),
            Card::real("COEFF0", self.coeff0, "log10 wavelength (A) of pixel 0"),
            Card::real("COEFF1", COEFF1, "log10 wavelength step per pixel"),
            Card::str("BUNIT", "1E-17 erg/cm^2/s/Ang", "flux unit"),
        ]);
        c
    }

    /// The linear WCS cards of the spPlate and MODEL images (the axis is in fact log10 λ).
    pub fn wcs(&self) -> Vec<Card> {
        vec![
            Card::real(
                "CRVAL1",
                self.coeff0,
                "central wavelength (log10) of first pixel",
            ),
            Card::real("CD1_1", COEFF1, "log10 dispersion per pixel"),
            Card::real("CRPIX1", 1.0, "starting pixel (1-indexed)"),
            Card::str("CTYPE1", "LINEAR", ""),
            Card::int("DC-FLAG", 1, "log-linear flag"),
        ]
    }
}

/// Everything simulated for one fiber.
#[derive(Debug, Clone)]
pub struct FiberData {
    pub target: Target,
    pub spec: FiberSpectrum,
    pub zlines: Vec<ZlineRow>,
    pub summary: Summary,
}

/// Simulates all fibers of a plate (in parallel; each fiber has its own random streams).
pub fn simulate(info: &PlateInfo, grid: &[f64], plate_sky: &[f64]) -> Vec<FiberData> {
    (1..=info.nfiber as i32)
        .into_par_iter()
        .map(|fiber| {
            let item = fiber as u64;
            let target = make_target(
                info,
                fiber,
                &mut rng(info.seed, info.index, Stream::Target, item),
            );
            let spec = observe_coadd(
                &target.model,
                grid,
                plate_sky,
                &target.conditions,
                &mut rng(info.seed, info.index, Stream::Pixels, item),
            );
            let zlines = zline::measure(
                &target,
                grid,
                &spec,
                &mut rng(info.seed, info.index, Stream::Lines, item),
            );
            let summary = Summary::new(grid, &target, &spec);
            FiberData {
                target,
                spec,
                zlines,
                summary,
            }
        })
        .collect()
}

/// Rows of all fibers stacked into one NFIBER x NPIX image.
fn stack<T: Copy>(fibers: &[FiberData], row: impl Fn(&FiberSpectrum) -> &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(fibers.iter().map(|f| row(&f.spec).len()).sum());
    for f in fibers {
        out.extend_from_slice(row(&f.spec));
    }
    out
}

fn write_spplate(w: &mut FitsWriter, info: &PlateInfo, fibers: &[FiberData]) -> Result<()> {
    let (width, height) = (info.npix, fibers.len());
    let mut header = info.header();
    header.extend(info.wcs());
    w.image(None, width, height, &header, &stack(fibers, |s| &s.flux))?;
    let ivar_unit = [Card::str("BUNIT", "1/(1E-17 erg/cm^2/s/Ang)^2", "")];
    w.image(
        Some("IVAR"),
        width,
        height,
        &ivar_unit,
        &stack(fibers, |s| &s.ivar),
    )?;
    w.image(
        Some("ANDMASK"),
        width,
        height,
        &[],
        &stack(fibers, |s| &s.and_mask),
    )?;
    w.image(
        Some("ORMASK"),
        width,
        height,
        &[],
        &stack(fibers, |s| &s.or_mask),
    )?;
    let disp_unit = [Card::str("BUNIT", "pixel", "")];
    w.image(
        Some("WAVEDISP"),
        width,
        height,
        &disp_unit,
        &stack(fibers, |s| &s.wdisp),
    )?;
    w.table(Some("PLUGMAP"), &tables::plugmap(info, fibers), &[])?;
    let sky_unit = [Card::str("BUNIT", "1E-17 erg/cm^2/s/Ang", "")];
    w.image(
        Some("SKY"),
        width,
        height,
        &sky_unit,
        &stack(fibers, |s| &s.sky),
    )
}

fn write_spzbest(w: &mut FitsWriter, info: &PlateInfo, fibers: &[FiberData]) -> Result<()> {
    let mut header = info.header();
    header.push(Card::str("RUN1D", RUN1D, "1D reduction version"));
    w.empty_primary(&header)?;
    w.table(Some("ZBEST"), &tables::zbest(info, fibers), &[])?;
    let mut model_header = info.wcs();
    model_header.extend([
        Card::real("COEFF0", info.coeff0, "log10 wavelength (A) of pixel 0"),
        Card::real("COEFF1", COEFF1, "log10 wavelength step per pixel"),
        Card::str("BUNIT", "1E-17 erg/cm^2/s/Ang", "flux unit"),
    ]);
    w.image(
        Some("MODEL"),
        info.npix,
        fibers.len(),
        &model_header,
        &stack(fibers, |s| &s.model),
    )
}

fn write_spzline(w: &mut FitsWriter, info: &PlateInfo, fibers: &[FiberData]) -> Result<()> {
    let mut header = info.header();
    header.push(Card::str("RUN1D", RUN1D, "1D reduction version"));
    w.empty_primary(&header)?;
    let rows: Vec<&ZlineRow> = fibers.iter().flat_map(|f| &f.zlines).collect();
    w.table(Some("ZLINE"), &tables::zline(info, &rows), &[])
}

/// Writes the HDUs of one plate-level file.
type PlateFileWriter = fn(&mut FitsWriter, &PlateInfo, &[FiberData]) -> Result<()>;

/// Folder of a plate's files under the output root (4-digit plate number, like the SDSS tree).
pub fn plate_dir(out: &Path, plate: i32) -> PathBuf {
    out.join(format!("{plate:04}"))
}

/// Generates every file of the plate with this 0-based index.
pub fn generate(cfg: &Config, index: usize) -> Result<Output> {
    let info = PlateInfo::new(cfg, index);
    let dir = plate_dir(&cfg.out, info.pm.plate);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let grid = info.grid();
    let sky_model = SkyModel::new(&mut rng(cfg.seed, index, Stream::Plate, 1));
    let plate_sky = sky_model.render(&grid, INSTRUMENT_SIGMA, 1.0);
    let fibers = simulate(&info, &grid, &plate_sky);
    drop(plate_sky);

    let pm = info.pm;
    let jobs: [(String, PlateFileWriter); 3] = [
        (fits_names::spplate(pm), write_spplate),
        (fits_names::spzbest(pm), write_spzbest),
        (fits_names::spzline(pm), write_spzline),
    ];
    let sizes = jobs
        .par_iter()
        .map(|(name, write)| write_atomically(&dir.join(name), |w| write(w, &info, &fibers)))
        .collect::<Result<Vec<u64>>>()?;
    let mut out = Output {
        files: sizes.len(),
        bytes: sizes.iter().sum(),
    };

    if cfg.spec_files {
        let sizes = fibers
            .par_iter()
            .map(|f| {
                spec_file::write(
                    &dir,
                    &info,
                    &grid,
                    f,
                    &sky_model,
                    cfg.has_exposures(f.target.fiber),
                    cfg.flavor,
                )
            })
            .collect::<Result<Vec<u64>>>()?;
        out.files += sizes.len();
        out.bytes += sizes.iter().sum::<u64>();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fitsio::FitsFile;

    fn config(out: &Path) -> Config {
        Config {
            out: out.to_path_buf(),
            plates: 1,
            fibers: 12,
            npix: 400,
            first_plate: 4000,
            seed: 7,
            spec_files: true,
            exposures: Some(2),
            flavor: Flavor::Boss,
        }
    }

    #[test]
    fn plate_files_read_back_and_are_reproducible() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let out = generate(&config(a.path()), 0).unwrap();
        assert_eq!(out.files, 3 + 12);
        generate(&config(b.path()), 0).unwrap();
        let pm = PlateMjd {
            plate: 4000,
            mjd: 55_000,
        };
        let dir_a = plate_dir(a.path(), 4000);
        let dir_b = plate_dir(b.path(), 4000);
        for name in [
            fits_names::spplate(pm),
            fits_names::spzbest(pm),
            fits_names::spec(pm, 3),
        ] {
            let x = std::fs::read(dir_a.join(&name)).unwrap();
            let y = std::fs::read(dir_b.join(&name)).unwrap();
            assert!(x == y, "{name} differs between two runs");
        }

        let mut f = FitsFile::open(dir_a.join(fits_names::spplate(pm))).unwrap();
        assert_eq!(f.num_hdus().unwrap(), 7);
        let flux: Vec<f32> = f.primary_hdu().unwrap().read_image(&mut f).unwrap();
        assert_eq!(flux.len(), 12 * 400);
        let plug = f.hdu("PLUGMAP").unwrap();
        let fibers: Vec<i32> = plug.read_col(&mut f, "FIBERID").unwrap();
        assert_eq!(fibers, (1..=12).collect::<Vec<_>>());
        let ivar: Vec<f32> = f.hdu("IVAR").unwrap().read_image(&mut f).unwrap();

        // Fiber 3's spec file holds its spPlate row, without the ivar = 0 ends.
        let mut s = FitsFile::open(dir_a.join(fits_names::spec(pm, 3))).unwrap();
        let coadd = s.hdu("COADD").unwrap();
        let sflux: Vec<f32> = coadd.read_col(&mut s, "flux").unwrap();
        let row = &ivar[2 * 400..3 * 400];
        let first = row.iter().position(|&v| v > 0.0).unwrap();
        let end = row.iter().rposition(|&v| v > 0.0).unwrap() + 1;
        assert_eq!(sflux.as_slice(), &flux[2 * 400 + first..2 * 400 + end]);
        // Fibers 1..=2 carry 2 exposures x 2 cameras.
        assert_eq!(s.num_hdus().unwrap(), 4);
        let mut s1 = FitsFile::open(dir_a.join(fits_names::spec(pm, 1))).unwrap();
        assert_eq!(s1.num_hdus().unwrap(), 8);
        assert!(s1.hdu("B1-00100000-00100002-00100003").is_ok());
    }
}
