//! Binary-table layouts: the spPlate PLUGMAP (35 DR12 columns), the spZbest and spZline tables, the
//! one-row SPALL table and the COADD / exposure tables of spec files, built column by column.

use crate::fits::{ColData, Column};
use crate::plate::{FiberData, PlateInfo, RUN1D, RUN2D};
use crate::spectrum::{Class, ExposureSpectrum, FiberSpectrum};
use crate::targets::{flux_err, nanomaggies, Target};
use crate::zline::ZlineRow;

/// Builder of a column list; TFORMs follow from the method (`j` → `J`, `ev(.., 5, ..)` → `5E`, ...).
#[derive(Default)]
pub struct Cols(Vec<Column>);

impl Cols {
    fn push(mut self, name: &str, tform: String, data: ColData) -> Self {
        self.0.push(Column {
            name: name.to_string(),
            tform,
            unit: None,
            data,
        });
        self
    }
    pub fn b(self, name: &str, v: Vec<u8>) -> Self {
        self.push(name, "B".into(), ColData::U8(v))
    }
    pub fn j(self, name: &str, v: Vec<i32>) -> Self {
        self.push(name, "J".into(), ColData::I32(v))
    }
    pub fn jv(self, name: &str, n: usize, v: Vec<i32>) -> Self {
        self.push(name, format!("{n}J"), ColData::I32(v))
    }
    pub fn k(self, name: &str, v: Vec<i64>) -> Self {
        self.push(name, "K".into(), ColData::I64(v))
    }
    /// Unsigned 64-bit (cfitsio's `W`: TFORM `K` with TZERO = 2^63).
    pub fn w(self, name: &str, v: Vec<u64>) -> Self {
        self.push(name, "W".into(), ColData::U64(v))
    }
    pub fn e(self, name: &str, v: Vec<f32>) -> Self {
        self.push(name, "E".into(), ColData::F32(v))
    }
    pub fn ev(self, name: &str, n: usize, v: Vec<f32>) -> Self {
        self.push(name, format!("{n}E"), ColData::F32(v))
    }
    pub fn d(self, name: &str, v: Vec<f64>) -> Self {
        self.push(name, "D".into(), ColData::F64(v))
    }
    pub fn a(self, name: &str, width: usize, v: Vec<String>) -> Self {
        self.push(name, format!("{width}A"), ColData::Str(v))
    }
    /// Sets TUNIT of the last column.
    pub fn unit(mut self, unit: &'static str) -> Self {
        if let Some(c) = self.0.last_mut() {
            c.unit = Some(unit);
        }
        self
    }
    pub fn build(self) -> Vec<Column> {
        self.0
    }
}

fn col<T, U>(items: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
    items.iter().map(f).collect()
}

fn colv<T, U, const N: usize>(items: &[T], f: impl Fn(&T) -> [U; N]) -> Vec<U> {
    items.iter().flat_map(f).collect()
}

fn text<T>(items: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|t| f(t).to_string()).collect()
}

/// Per-fiber quantities derived from the coadd that spZbest and SPALL both report.
#[derive(Debug, Clone)]
pub struct Summary {
    pub dof: i32,
    pub any_and: i32,
    pub any_or: i32,
    pub wavemin: f32,
    pub wavemax: f32,
    pub wcoverage: f32,
    pub spectroflux: [f32; 5],
    pub spectroflux_ivar: [f32; 5],
}

impl Summary {
    pub fn new(grid: &[f64], target: &Target, spec: &FiberSpectrum) -> Self {
        let good = spec.ivar.iter().filter(|&&v| v > 0.0).count();
        let (first, end) = spec.good_range();
        let (lo, hi) = if end > first {
            (grid[first], grid[end - 1])
        } else {
            (0.0, 0.0)
        };
        let npoly = 3;
        let mut spectroflux = [0f32; 5];
        let mut spectroflux_ivar = [0f32; 5];
        for b in 0..5 {
            let f = nanomaggies(f64::from(target.spectro_mags[b]));
            let err = flux_err(f, 0.03).max(1e-3);
            spectroflux[b] = f as f32;
            spectroflux_ivar[b] = (1.0 / (err * err)) as f32;
        }
        Self {
            dof: (good as i32 - npoly - 10).max(0),
            any_and: spec.and_mask.iter().fold(0, |a, &m| a | m),
            any_or: spec.or_mask.iter().fold(0, |a, &m| a | m),
            wavemin: if end > first {
                10f64.powf(lo) as f32
            } else {
                0.0
            },
            wavemax: if end > first {
                10f64.powf(hi) as f32
            } else {
                0.0
            },
            wcoverage: (hi - lo) as f32,
            spectroflux,
            spectroflux_ivar,
        }
    }
}

/// spPlate HDU5: the DR12 plug map, one row per fiber.
pub fn plugmap(info: &PlateInfo, fibers: &[FiberData]) -> Vec<Column> {
    let t: Vec<&Target> = fibers.iter().map(|f| &f.target).collect();
    let profile = |t: &Target| -> [f32; 3] {
        match t.class {
            Class::Galaxy => {
                let exp = (t.thing_id % 1000) as f32 / 1000.0;
                [0.0, exp, 1.0 - exp]
            }
            _ => [1.0, 0.0, 0.0],
        }
    };
    let calibflux = |t: &Target| -> [f32; 5] {
        std::array::from_fn(|b| nanomaggies(f64::from(t.mags[b])) as f32)
    };
    let calibflux_ivar = |t: &Target| -> [f32; 5] {
        std::array::from_fn(|b| {
            let f = nanomaggies(f64::from(t.mags[b]));
            let err = flux_err(f, f64::from(t.mag_errs[b])).max(1e-4);
            (1.0 / (err * err)) as f32
        })
    };
    let qso = |t: &Target| t.class == Class::Qso;
    Cols::default()
        .jv("OBJID", 5, colv(&t, |t| t.objid()))
        .a("HOLETYPE", 6, col(&t, |_| "OBJECT".to_string()))
        .d("RA", col(&t, |t| t.ra))
        .unit("deg")
        .d("DEC", col(&t, |t| t.dec))
        .unit("deg")
        .ev("MAG", 5, colv(&t, |t| t.mags))
        .e("STARL", col(&t, |t| profile(t)[0]))
        .e("EXPL", col(&t, |t| profile(t)[1]))
        .e("DEVAUCL", col(&t, |t| profile(t)[2]))
        .a("OBJTYPE", 16, text(&t, |t| t.objtype))
        .d("XFOCAL", col(&t, |t| t.xfocal))
        .d("YFOCAL", col(&t, |t| t.yfocal))
        .j("SPECTROGRAPHID", col(&t, |t| t.spectrograph))
        .j("FIBERID", col(&t, |t| t.fiber))
        .j("THROUGHPUT", col(&t, |_| 0))
        .j("PRIMTARGET", col(&t, |_| 0))
        .j("SECTARGET", col(&t, |_| 0))
        .j("OFFSETID", col(&t, |_| 0))
        .e("SCI_EXPTIME", col(&t, |_| info.exptime() as f32))
        .a("SOURCETYPE", 21, text(&t, |t| t.sourcetype))
        .e(
            "LAMBDA_EFF",
            col(&t, |t| if qso(t) { 4000.0 } else { 5400.0 }),
        )
        .e("ZOFFSET", col(&t, |t| if qso(t) { 300.0 } else { 0.0 }))
        .j("BLUEFIBER", col(&t, |t| i32::from(qso(t))))
        .k("BOSS_TARGET1", col(&t, |t| t.boss_target1))
        .k("BOSS_TARGET2", col(&t, |_| 0))
        .k("ANCILLARY_TARGET1", col(&t, |t| t.ancillary_target1))
        .k("ANCILLARY_TARGET2", col(&t, |_| 0))
        .j("RUN", col(&t, |t| t.run))
        .a("RERUN", 4, col(&t, |_| "301".to_string()))
        .j("CAMCOL", col(&t, |t| t.camcol))
        .j("FIELD", col(&t, |t| t.field))
        .j("ID", col(&t, |t| t.id))
        .ev("CALIBFLUX", 5, colv(&t, |t| calibflux(t)))
        .ev("CALIBFLUX_IVAR", 5, colv(&t, |t| calibflux_ivar(t)))
        .jv("CALIB_STATUS", 5, colv(&t, |_| [1; 5]))
        .e("SFD_EBV", col(&t, |t| t.sfd_ebv))
        .build()
}

/// spZbest HDU1: the redshift table, one row per fiber.
pub fn zbest(info: &PlateInfo, fibers: &[FiberData]) -> Vec<Column> {
    let f = fibers;
    Cols::default()
        .j("PLATE", col(f, |_| info.pm.plate))
        .j("TILE", col(f, |_| info.tile))
        .j("MJD", col(f, |_| info.pm.mjd))
        .j("FIBERID", col(f, |f| f.target.fiber))
        .a("RUN2D", 12, col(f, |_| RUN2D.to_string()))
        .a("RUN1D", 12, col(f, |_| RUN1D.to_string()))
        .jv("OBJID", 5, colv(f, |f| f.target.objid()))
        .a("OBJTYPE", 16, text(f, |f| f.target.objtype))
        .d("PLUG_RA", col(f, |f| f.target.ra))
        .unit("deg")
        .d("PLUG_DEC", col(f, |f| f.target.dec))
        .unit("deg")
        .a("CLASS", 6, text(f, |f| f.target.class.name()))
        .a("SUBCLASS", 21, text(f, |f| f.target.subclass))
        .e("Z", col(f, |f| f.target.z as f32))
        .e("Z_ERR", col(f, |f| f.target.z_err as f32))
        .e("RCHI2", col(f, |f| f.target.rchi2))
        .j("DOF", col(f, |f| f.summary.dof))
        .e("RCHI2DIFF", col(f, |f| f.target.rchi2diff))
        .a("TFILE", 24, text(f, |f| f.target.tfile()))
        .j("NPOLY", col(f, |_| 3))
        .e("VDISP", col(f, |f| f.target.vdisp))
        .e("VDISP_ERR", col(f, |f| f.target.vdisp_err))
        .j("ZWARNING", col(f, |f| f.target.zwarning))
        .e("SN_MEDIAN_ALL", col(f, |f| f.spec.sn_median_all))
        .ev("SN_MEDIAN", 5, colv(f, |f| f.spec.sn_median))
        .e("CHI68P", col(f, |f| f.target.rchi2.sqrt() * 1.02))
        .ev("SPECTROFLUX", 5, colv(f, |f| f.summary.spectroflux))
        .ev(
            "SPECTROFLUX_IVAR",
            5,
            colv(f, |f| f.summary.spectroflux_ivar),
        )
        .j("ANYANDMASK", col(f, |f| f.summary.any_and))
        .j("ANYORMASK", col(f, |f| f.summary.any_or))
        .e("WAVEMIN", col(f, |f| f.summary.wavemin))
        .e("WAVEMAX", col(f, |f| f.summary.wavemax))
        .e("WCOVERAGE", col(f, |f| f.summary.wcoverage))
        .b("SPECPRIMARY", col(f, |f| u8::from(f.target.specprimary)))
        .build()
}

/// spZline HDU1 (and spec-file HDU3): emission-line rows, in the order given.
pub fn zline(info: &PlateInfo, rows: &[&ZlineRow]) -> Vec<Column> {
    let r = rows;
    Cols::default()
        .j("PLATE", col(r, |_| info.pm.plate))
        .j("MJD", col(r, |_| info.pm.mjd))
        .j("FIBERID", col(r, |r| r.fiber))
        .a("LINENAME", 13, text(r, |r| r.name))
        .d("LINEWAVE", col(r, |r| r.wave))
        .e("LINEZ", col(r, |r| r.z))
        .e("LINEZ_ERR", col(r, |r| r.z_err))
        .e("LINESIGMA", col(r, |r| r.sigma))
        .e("LINESIGMA_ERR", col(r, |r| r.sigma_err))
        .e("LINEAREA", col(r, |r| r.area))
        .e("LINEAREA_ERR", col(r, |r| r.area_err))
        .e("LINEEW", col(r, |r| r.ew))
        .e("LINEEW_ERR", col(r, |r| r.ew_err))
        .e("LINECONTLEVEL", col(r, |r| r.cont))
        .e("LINECONTLEVEL_ERR", col(r, |r| r.cont_err))
        .j("LINENPIXLEFT", col(r, |r| r.npix_left))
        .j("LINENPIXRIGHT", col(r, |r| r.npix_right))
        .e("LINEDOF", col(r, |r| r.dof))
        .e("LINECHI2", col(r, |r| r.chi2))
        .build()
}

/// Spec-file HDU2: the fiber's one-row catalog entry, consistent with spZbest and the plug map.
pub fn spall(info: &PlateInfo, fiber: &FiberData) -> Vec<Column> {
    let f = std::slice::from_ref(fiber);
    Cols::default()
        .a("PROGRAMNAME", 16, col(f, |_| "boss".to_string()))
        .a("CHUNK", 16, col(f, |_| info.chunk()))
        .a("PLATEQUALITY", 8, col(f, |_| "good".to_string()))
        .w(
            "SPECOBJID",
            col(f, |f| {
                crate::spall::specobjid(info.pm.plate, info.pm.mjd, f.target.fiber) as u64
            }),
        )
        .j("PLATE", col(f, |_| info.pm.plate))
        .j("TILE", col(f, |_| info.tile))
        .j("MJD", col(f, |_| info.pm.mjd))
        .j("FIBERID", col(f, |f| f.target.fiber))
        .a("RUN2D", 12, col(f, |_| RUN2D.to_string()))
        .a("RUN1D", 12, col(f, |_| RUN1D.to_string()))
        .a("OBJTYPE", 16, text(f, |f| f.target.objtype))
        .d("PLUG_RA", col(f, |f| f.target.ra))
        .unit("deg")
        .d("PLUG_DEC", col(f, |f| f.target.dec))
        .unit("deg")
        .d("RA", col(f, |f| f.target.ra))
        .unit("deg")
        .d("DEC", col(f, |f| f.target.dec))
        .unit("deg")
        .a("CLASS", 6, text(f, |f| f.target.class.name()))
        .a("SUBCLASS", 21, text(f, |f| f.target.subclass))
        .e("Z", col(f, |f| f.target.z as f32))
        .e("Z_ERR", col(f, |f| f.target.z_err as f32))
        .e("RCHI2", col(f, |f| f.target.rchi2))
        .j("DOF", col(f, |f| f.summary.dof))
        .j("ZWARNING", col(f, |f| f.target.zwarning))
        .e("SN_MEDIAN_ALL", col(f, |f| f.spec.sn_median_all))
        .ev("SN_MEDIAN", 5, colv(f, |f| f.spec.sn_median))
        .j("SPECPRIMARY", col(f, |f| i32::from(f.target.specprimary)))
        .j("SPECBOSS", col(f, |f| i32::from(f.target.specprimary)))
        .j("NSPECOBS", col(f, |_| 1))
        .j("THING_ID", col(f, |f| f.target.thing_id))
        .k("BOSS_TARGET1", col(f, |f| f.target.boss_target1))
        .k("ANCILLARY_TARGET1", col(f, |f| f.target.ancillary_target1))
        .ev("SPECTROFLUX", 5, colv(f, |f| f.summary.spectroflux))
        .ev(
            "SPECTROFLUX_IVAR",
            5,
            colv(f, |f| f.summary.spectroflux_ivar),
        )
        .ev("MODELMAG", 5, colv(f, |f| f.target.mags))
        .build()
}

/// Spec-file HDU1 (COADD): pixels `first..end` of the fiber's spPlate rows, with
/// `loglam = float32(COEFF0 + COEFF1 * i)`.
pub fn coadd(grid: &[f64], spec: &FiberSpectrum, first: usize, end: usize) -> Vec<Column> {
    let r = first..end;
    Cols::default()
        .e("flux", spec.flux[r.clone()].to_vec())
        .e(
            "loglam",
            grid[r.clone()].iter().map(|&l| l as f32).collect(),
        )
        .e("ivar", spec.ivar[r.clone()].to_vec())
        .j("and_mask", spec.and_mask[r.clone()].to_vec())
        .j("or_mask", spec.or_mask[r.clone()].to_vec())
        .e("wdisp", spec.wdisp[r.clone()].to_vec())
        .e("sky", spec.sky[r.clone()].to_vec())
        .e("model", spec.model[r].to_vec())
        .build()
}

/// Spec-file HDU 4+ of an SDSS-I/II file: 7 columns (no `x`), pixels in decreasing wavelength.
pub fn legacy_exposure(e: ExposureSpectrum) -> Vec<Column> {
    let rev = |mut v: Vec<f32>| {
        v.reverse();
        v
    };
    let mut mask = e.mask;
    mask.reverse();
    Cols::default()
        .e("flux", rev(e.flux))
        .e("loglam", rev(e.loglam))
        .e("ivar", rev(e.ivar))
        .j("mask", mask)
        .e("wdisp", rev(e.wdisp))
        .e("sky", rev(e.sky))
        .e("calib", rev(e.calib))
        .build()
}

/// Spec-file HDU 4+: one camera in one exposure.
pub fn exposure(e: ExposureSpectrum) -> Vec<Column> {
    Cols::default()
        .e("flux", e.flux)
        .e("loglam", e.loglam)
        .e("ivar", e.ivar)
        .j("mask", e.mask)
        .e("wdisp", e.wdisp)
        .e("sky", e.sky)
        .e("calib", e.calib)
        .e("x", e.x)
        .build()
}
