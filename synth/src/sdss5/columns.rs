//! The value of every column of the SDSS-V tables, by column name: one getter per name, resolved
//! once per table (spAll, the spec files' SPALL/ZALL/ZLINE, spZbest, spZline, the spField plug
//! map). A name means the same in every table it appears in; [`super::cells`] converts the value
//! to each table's TFORM. A model column without a getter is an error, so every column of the
//! data model is generated on purpose.

use super::cells::Cell;
use super::datamodel::ColumnModel;
use super::facts::{velocity, Facts, Fit};
use super::{NEXP, RUN2D};
use crate::spectrum::Class;
use crate::targets::nanomaggies;

/// The value of a column for a target; the `usize` is the fit (ZALL row) for target columns and
/// the line for emission-line columns.
pub type Get = fn(&Facts<'_>, usize) -> Cell;

fn fit<'a>(f: &'a Facts<'_>, k: usize) -> &'a Fit {
    &f.fits[k.min(f.fits.len() - 1)]
}

/// Numbers as the pipeline lists per-exposure values: separated by spaces.
fn list(values: impl IntoIterator<Item = f64>, decimals: usize) -> Cell {
    let parts: Vec<String> = values
        .into_iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect();
    Cell::text(parts.join(" "))
}

fn per_exposure(v: f64, decimals: usize) -> Cell {
    list([v; NEXP], decimals)
}

fn reals<const N: usize>(v: [f32; N]) -> Cell {
    Cell::Reals(v.iter().map(|&x| f64::from(x)).collect())
}

fn mags(f: &Facts<'_>, offset: f32) -> Cell {
    reals(f.t.mags.map(|m| m + offset))
}

fn mean<const N: usize>(v: [f64; N]) -> f64 {
    v.iter().sum::<f64>() / N as f64
}

/// (PROGRAMNAME, FIRSTCARTON, SURVEY, CATEGORY) of a target.
fn targeting(f: &Facts<'_>) -> (&'static str, &'static str, &'static str, &'static str) {
    if f.t.objtype == "SPECTROPHOTO_STD" {
        return ("ops_std", "ops_std_boss", "BHM", "standard_boss");
    }
    match f.t.class {
        Class::Qso => ("bhm_rm", "bhm_rm_core", "BHM", "science"),
        Class::Galaxy => ("bhm_csc", "bhm_csc_boss", "BHM", "science"),
        Class::Star => ("mwm_wd", "mwm_wd_core", "MWM", "science"),
    }
}

/// HEALPix pixel (RING scheme) of a position, for `nside` a power of 2.
pub fn healpix_ring(nside: i64, ra: f64, dec: f64) -> i64 {
    let z = dec.to_radians().sin();
    let za = z.abs();
    let tt = (ra.rem_euclid(360.0) / 90.0).rem_euclid(4.0);
    let n = nside as f64;
    if za <= 2.0 / 3.0 {
        let t1 = n * (0.5 + tt);
        let t2 = n * z * 0.75;
        let jp = (t1 - t2) as i64;
        let jm = (t1 + t2) as i64;
        let ir = nside + 1 + jp - jm;
        let kshift = 1 - (ir & 1);
        let ip = ((jp + jm - nside + kshift + 1) / 2).rem_euclid(4 * nside);
        2 * nside * (nside - 1) + (ir - 1) * 4 * nside + ip
    } else {
        let tp = tt - tt.floor();
        let tmp = n * (3.0 * (1.0 - za)).sqrt();
        let jp = (tp * tmp) as i64;
        let jm = ((1.0 - tp) * tmp) as i64;
        let ir = (jp + jm + 1).max(1);
        let ip = ((tt * ir as f64) as i64).rem_euclid(4 * ir);
        if z > 0.0 {
            2 * ir * (ir - 1) + ip
        } else {
            12 * nside * nside - 2 * ir * (ir + 1) + ip
        }
    }
}

const NSIDE: i64 = 128;

fn healpix(f: &Facts<'_>) -> i64 {
    healpix_ring(NSIDE, f.t.ra, f.t.dec)
}

/// The getter of a target-level column (spAll, SPALL, ZALL, spZbest, the plug map).
pub fn resolve(col: &ColumnModel) -> Option<Get> {
    identity(&col.name)
        .or_else(|| observation(&col.name))
        .or_else(|| targeting_columns(&col.name))
        .or_else(|| photometry(&col.name))
        .or_else(|| redshift(&col.name, col.unsigned))
        .or_else(|| spectrum(&col.name))
        .or_else(|| plugmap(&col.name))
}

/// The getter of an emission-line table column (spZline, ZLINE): `usize` is the line.
pub fn resolve_line(col: &ColumnModel) -> Option<Get> {
    let get: Get = match col.name.as_str() {
        "LINENAME" => |f, k| Cell::text(f.lines[k].name),
        "LINEWAVE" => |f, k| Cell::Real(f.lines[k].wave),
        "LINEZ" => |f, k| Cell::Real(f64::from(f.lines[k].z)),
        "LINEZ_ERR" => |f, k| Cell::Real(f64::from(f.lines[k].z_err)),
        "LINESIGMA" => |f, k| Cell::Real(f64::from(f.lines[k].sigma)),
        "LINESIGMA_ERR" => |f, k| Cell::Real(f64::from(f.lines[k].sigma_err)),
        "LINEAREA" => |f, k| Cell::Real(f64::from(f.lines[k].area)),
        "LINEAREA_ERR" => |f, k| Cell::Real(f64::from(f.lines[k].area_err)),
        "LINEEW" => |f, k| Cell::Real(f64::from(f.lines[k].ew)),
        "LINEEW_ERR" => |f, k| Cell::Real(f64::from(f.lines[k].ew_err)),
        "LINECONTLEVEL" => |f, k| Cell::Real(f64::from(f.lines[k].cont)),
        "LINECONTLEVEL_ERR" => |f, k| Cell::Real(f64::from(f.lines[k].cont_err)),
        "LINENPIXLEFT" => |f, k| Cell::Int(i64::from(f.lines[k].npix_left)),
        "LINENPIXRIGHT" => |f, k| Cell::Int(i64::from(f.lines[k].npix_right)),
        "LINEDOF" => |f, k| Cell::Real(f64::from(f.lines[k].dof)),
        "LINECHI2" => |f, k| Cell::Real(f64::from(f.lines[k].chi2)),
        name => return identity(name),
    };
    Some(get)
}

/// Who and where: the columns every table shares.
fn identity(name: &str) -> Option<Get> {
    let get: Get = match name {
        "FIELD" => |f, _| Cell::Int(i64::from(f.g.field)),
        "MJD" => |f, _| Cell::Int(i64::from(f.g.mjd)),
        "TARGET_INDEX" => |f, _| Cell::Int(i64::from(f.ti)),
        "CATALOGID" | "ICATALOGID" => |f, _| Cell::Int(f.catalogid),
        "SDSS_ID" => |f, _| Cell::Int(f.sdss_id),
        _ => return None,
    };
    Some(get)
}

/// The observation: exposures, conditions, fiber positions.
fn observation(name: &str) -> Option<Get> {
    let get: Get = match name {
        "OBS" => |_, _| Cell::text("APO"),
        "RUN2D" | "RUN1D" => |_, _| Cell::text(RUN2D),
        "MJD_FINAL" => |f, _| {
            Cell::Real(mean(std::array::from_fn::<_, NEXP, _>(|e| {
                f.g.tai_mid(e) / 86_400.0
            })))
        },
        "MJD_LIST" | "MJDLIST" => |f, _| per_exposure(f64::from(f.g.mjd), 0),
        "TAI_LIST" => |f, _| list((0..NEXP).map(|e| f.g.tai_mid(e)), 2),
        "DESIGNS" => |f, _| list(f.g.designs.map(|d| d as f64), 0),
        "CONFIGS" => |f, _| list(f.g.configs.map(|d| d as f64), 0),
        "NEXP" => |_, _| Cell::Int(NEXP as i64),
        "EXPTIME" | "SCI_EXPTIME" => |f, _| Cell::Real(f.g.exptime()),
        "FIBERID_LIST" => |f, _| per_exposure(f64::from(f.misc.fiberid), 0),
        "CONFFIBERID" => |f, _| Cell::Int(i64::from(f.misc.fiberid)),
        "SPEC_FILE" => |f, _| Cell::text(f.g.spec_name(f.catalogid)),
        "FIBER_RA" | "RA" => |f, _| Cell::Real(f.misc.fiber_ra[0]),
        "FIBER_DEC" | "DEC" => |f, _| Cell::Real(f.misc.fiber_dec[0]),
        "PLUG_RA" | "RACAT" => |f, _| Cell::Real(f.t.ra),
        "PLUG_DEC" | "DECCAT" => |f, _| Cell::Real(f.t.dec),
        "COORD_EPOCH" => |_, _| Cell::Real(2015.5),
        "RA_LIST" => |f, _| list(f.misc.fiber_ra, 6),
        "DEC_LIST" => |f, _| list(f.misc.fiber_dec, 6),
        "DELTA_RA_LIST" | "DELTA_DEC_LIST" => |_, _| per_exposure(0.0, 1),
        "DELTA_RA" | "DELTA_DEC" | "ZOFFSET" => |_, _| Cell::Real(0.0),
        "XFOCAL" | "XFOCAL_LIST" => |f, _| list(f.misc.xfocal, 4),
        "YFOCAL" | "YFOCAL_LIST" => |f, _| list(f.misc.yfocal, 4),
        "LAMBDA_EFF" => |_, _| Cell::Real(5400.0),
        "FIBER_OFFSET" | "BLUEFIBER" => |_, _| Cell::Int(0),
        "HEALPIX" => |f, _| Cell::Int(healpix(f)),
        "HEALPIXGRP" => |f, _| Cell::Int(healpix(f) / 1000),
        "HEALPIX_PATH" => |f, _| {
            let hp = healpix(f);
            Cell::text(format!("{}/{hp}/{}", hp / 1000, f.g.spec_name(f.catalogid)))
        },
        "FIELDQUALITY" => |_, _| Cell::text("good"),
        "EXP_DISP_MED" => |f, _| Cell::Real(0.02 + 0.001 * f64::from(f.ti % 50)),
        "FIELDSN2" => |f, _| Cell::Real(f.g.sn2.iter().map(|s| s[1]).sum()),
        "FIELDSNR2G_LIST" => |f, _| list(f.g.sn2.map(|s| s[0]), 4),
        "FIELDSNR2R_LIST" => |f, _| list(f.g.sn2.map(|s| s[1]), 4),
        "FIELDSNR2I_LIST" => |f, _| list(f.g.sn2.map(|s| s[2]), 4),
        "SPEC1_G" => |f, _| Cell::Real(f.g.sn2.iter().map(|s| s[0]).sum()),
        "SPEC1_R" => |f, _| Cell::Real(f.g.sn2.iter().map(|s| s[1]).sum()),
        "SPEC1_I" => |f, _| Cell::Real(f.g.sn2.iter().map(|s| s[2]).sum()),
        "SPEC2_G" | "SPEC2_R" | "SPEC2_I" => |_, _| Cell::Real(0.0),
        "AIRMASS" => |f, _| Cell::Real(mean(f.g.airmass)),
        "AIRMASS_LIST" => |f, _| list(f.g.airmass, 5),
        "SEEING20" => |f, _| Cell::Real(0.9 * mean(f.g.seeing)),
        "SEEING50" => |f, _| Cell::Real(mean(f.g.seeing)),
        "SEEING80" => |f, _| Cell::Real(1.2 * mean(f.g.seeing)),
        "SEEING20_LIST" => |f, _| list(f.g.seeing.map(|s| 0.9 * s), 4),
        "SEEING50_LIST" => |f, _| list(f.g.seeing, 4),
        "SEEING80_LIST" => |f, _| list(f.g.seeing.map(|s| 1.2 * s), 4),
        "RMSOFF20" => |f, _| Cell::Real(0.06 * mean(f.g.seeing)),
        "RMSOFF50" => |f, _| Cell::Real(0.09 * mean(f.g.seeing)),
        "RMSOFF80" => |f, _| Cell::Real(0.12 * mean(f.g.seeing)),
        "RMSOFF20_LIST" => |f, _| list(f.g.seeing.map(|s| 0.06 * s), 5),
        "RMSOFF50_LIST" => |f, _| list(f.g.seeing.map(|s| 0.09 * s), 5),
        "RMSOFF80_LIST" => |f, _| list(f.g.seeing.map(|s| 0.12 * s), 5),
        "MOON_DIST" => |f, _| {
            let d = f.g.moon_dist + (f.t.ra - f.g.ra).clamp(-2.0, 2.0);
            list([d, d + 0.1], 3)
        },
        "MOON_PHASE" => |f, _| list([f.g.moon_phase, f.g.moon_phase + 0.004], 4),
        "ASSIGNED" | "ON_TARGET" | "VALID" | "ASSIGNED_LIST" | "ON_TARGET_LIST" | "VALID_LIST" => {
            |_, _| per_exposure(1.0, 0)
        }
        "DECOLLIDED" | "DECOLLIDED_LIST" => |_, _| per_exposure(0.0, 0),
        _ => return None,
    };
    Some(get)
}

/// Targeting: programs, cartons, flags, identifiers of other catalogs.
fn targeting_columns(name: &str) -> Option<Get> {
    let get: Get = match name {
        "PROGRAMNAME" | "PROGRAM" => |f, _| Cell::text(targeting(f).0),
        "FIRSTCARTON" | "CARTONNAME" | "FIRSTCARTON_LIST" => |f, _| Cell::text(targeting(f).1),
        "SURVEY" => |f, _| Cell::text(targeting(f).2),
        "MAPPER" => |f, _| Cell::text(targeting(f).2),
        "CATEGORY" => |f, _| Cell::text(targeting(f).3),
        "CADENCE" => |_, _| Cell::text("dark_1x2"),
        "FIELDCADENCE" => |_, _| Cell::text("dark_174x8_v1"),
        "CARTON_TO_TARGET_PK" | "CARTON_TO_TARGET_PK_LIST" => |f, _| Cell::Int(f.misc.carton_pk),
        "SDSS5_TARGET_FLAGS" => |f, _| Cell::Bools(f.misc.target_flags.to_vec()),
        "OBJTYPE" => |f, _| {
            Cell::text(if f.t.objtype == "SPECTROPHOTO_STD" {
                "SPECTROPHOTO_STD"
            } else {
                "science"
            })
        },
        "CATALOGID_V0" => |f, _| Cell::Int(f.misc.catalogid_v0),
        "CATALOGID_V0P5" => |f, _| Cell::Int(f.misc.catalogid_v0p5),
        "CATVERSION" => |_, _| Cell::text("1.0.0"),
        "SDSSC2BV" => |_, _| Cell::text("1"),
        "GAIA_ID" => |f, _| Cell::Int(f.misc.gaia_id),
        "FIBERTYPE" => |_, _| Cell::text("BOSS"),
        "SPECTROGRAPHID" => |_, _| Cell::Int(1),
        "OBJID" => |f, _| Cell::Ints(f.t.objid().map(i64::from).to_vec()),
        "RUN" => |f, _| Cell::Int(i64::from(f.t.run)),
        "CAMCOL" => |f, _| Cell::Int(i64::from(f.t.camcol)),
        "ID" => |f, _| Cell::Int(i64::from(f.t.id)),
        // One-character columns of the model, blank in its example.
        "HOLETYPE" | "SOURCETYPE" | "RERUN" => |_, _| Cell::text(""),
        "SPECPRIMARY" | "SPECBOSS" => |f, _| Cell::Int(i64::from(f.misc.specprimary)),
        "BOSS_SPECOBJ_ID" => |f, _| Cell::Int(i64::from(f.ti)),
        "NSPECOBS" => |_, _| Cell::Int(1),
        _ => return None,
    };
    Some(get)
}

/// Photometry and extinction.
fn photometry(name: &str) -> Option<Get> {
    let get: Get = match name {
        "CALIBFLUX" => |f, _| reals(f.t.mags.map(|m| nanomaggies(f64::from(m)) as f32)),
        "CALIBFLUX_IVAR" => |f, _| {
            reals(std::array::from_fn::<_, 5, _>(|b| {
                let flux = nanomaggies(f64::from(f.t.mags[b]));
                let err = crate::targets::flux_err(flux, f64::from(f.t.mag_errs[b])).max(1e-4);
                (1.0 / (err * err)) as f32
            }))
        },
        "OPTICAL_PROV" => |_, _| Cell::text("sdss_psfmag"),
        "MAG" | "PSFMAG" | "CATDB_MAG" => |f, _| mags(f, 0.0),
        "FIBER2MAG" => |f, _| mags(f, 0.35),
        "GAIA_G_MAG" => |f, _| Cell::Real(f64::from(f.t.mags[2]) - 0.15),
        "BP_MAG" => |f, _| Cell::Real(f64::from(f.t.mags[1]) + 0.1),
        "RP_MAG" => |f, _| Cell::Real(f64::from(f.t.mags[3]) - 0.3),
        "GRI_GAIA_TRANSFORM" | "V05_REV_MAG" => |_, _| Cell::Int(0),
        "WISE_MAG" => |f, _| reals([1.4, 1.6, 2.5, 4.0].map(|d| f.t.mags[2] - d)),
        "TWOMASS_MAG" => |f, _| reals([0.8, 1.2, 1.4].map(|d| f.t.mags[3] - d)),
        "H_MAG" => |f, _| Cell::Real(f64::from(f.t.mags[3]) - 1.2),
        "GUVCAT_MAG" => |f, _| reals([2.5, 1.2].map(|d| f.t.mags[0] + d)),
        "EBV" | "EBV_SIMPLEDUST2023" | "EBV_3D" => |f, _| Cell::Real(f64::from(f.t.sfd_ebv)),
        "EBV_TYPE" | "EBV_3DSRC" => |_, _| Cell::text("SFD"),
        "PMRA" => |f, _| Cell::Real(f64::from(f.misc.pmra)),
        "PMDEC" => |f, _| Cell::Real(f64::from(f.misc.pmdec)),
        "PARALLAX" => |f, _| Cell::Real(f64::from(f.misc.parallax)),
        "CALIB_STATUS" => |_, _| Cell::Ints(vec![1; 5]),
        _ => return None,
    };
    Some(get)
}

/// The redshift fits (ZALL row `k`; 0 is the best, the one spAll and spZbest report).
fn redshift(name: &str, unsigned: bool) -> Option<Get> {
    let get: Get = match name {
        // spZbest's SPECOBJID is the CAS-style unsigned integer; elsewhere the SDSS-V string.
        "SPECOBJID" if unsigned => |f, _| Cell::U64(f.g.cas_specobjid(f.ti)),
        "SPECOBJID" => |f, _| Cell::text(f.specobjid.clone()),
        "TILE" => |_, _| Cell::Int(-1),
        "CLASS" => |f, k| Cell::text(fit(f, k).class.name()),
        "SUBCLASS" => |f, k| Cell::text(fit(f, k).subclass),
        "Z" | "VDISPZ" => |f, k| Cell::Real(fit(f, k).z),
        "Z_ERR" | "VDISPZ_ERR" => |f, k| Cell::Real(fit(f, k).z_err),
        "ZWARNING" => |f, k| Cell::Int(i64::from(fit(f, k).zwarning)),
        "RCHI2" => |f, k| Cell::Real(f64::from(fit(f, k).rchi2)),
        "DOF" => |f, _| Cell::Int(i64::from(f.summary.dof)),
        "RCHI2DIFF" => |f, k| Cell::Real(f64::from(fit(f, k).rchi2diff)),
        "TFILE" => |f, k| Cell::text(fit(f, k).tfile),
        "TCOLUMN" => |f, k| Cell::Ints(fit(f, k).tcolumn.map(i64::from).to_vec()),
        "NPOLY" => |f, k| Cell::Int(i64::from(fit(f, k).npoly)),
        "THETA" => |f, k| reals(fit(f, k).theta),
        "THETA_COVAR" => |f, k| {
            let theta = fit(f, k).theta;
            Cell::Reals(
                (0..100)
                    .map(|i| {
                        let (a, b) = (i / 10, i % 10);
                        if a == b && theta[a] != 0.0 {
                            1e-3 * (1.0 + f64::from(theta[a].abs()))
                        } else {
                            0.0
                        }
                    })
                    .collect(),
            )
        },
        "VDISP" => |f, k| Cell::Real(f64::from(fit(f, k).vdisp)),
        "VDISP_ERR" => |f, k| Cell::Real(f64::from(fit(f, k).vdisp_err)),
        "VDISPCHI2" => |f, k| Cell::Real(f64::from(fit(f, k).rchi2) * f.misc.good_pixels as f64),
        "VDISPNPIX" => |f, _| Cell::Real(f.misc.good_pixels as f64),
        "VDISPDOF" => |f, _| Cell::Int(f.misc.good_pixels as i64 - 5),
        "CHI68P" => |f, k| Cell::Real(f64::from(fit(f, k).rchi2).sqrt() * 1.02),
        "FRACNSIGMA" => |f, k| frac_sigma(fit(f, k), 1.0),
        "FRACNSIGHI" | "FRACNSIGLO" => |f, k| frac_sigma(fit(f, k), 0.5),
        "Z_NOQSO" => |f, _| Cell::Real(f.noqso().1.z),
        "Z_ERR_NOQSO" => |f, _| Cell::Real(f.noqso().1.z_err),
        "ZNUM_NOQSO" => |f, _| Cell::Int(f.noqso().0 as i64),
        "ZWARNING_NOQSO" => |f, _| Cell::Int(i64::from(f.noqso().1.zwarning)),
        "CLASS_NOQSO" => |f, _| Cell::text(f.noqso().1.class.name()),
        "SUBCLASS_NOQSO" => |f, _| Cell::text(f.noqso().1.subclass),
        "RCHI2DIFF_NOQSO" => |f, _| Cell::Real(f64::from(f.noqso().1.rchi2diff)),
        n if n.starts_with("XCSAO_") => return xcsao(n),
        n if n.starts_with("ELODIE_") => return elodie(n),
        _ => return None,
    };
    Some(get)
}

/// Fractions of pixels beyond 1..10 sigma for a fit of this reduced chi².
fn frac_sigma(fit: &Fit, scale: f64) -> Cell {
    let width = f64::from(fit.rchi2).sqrt().max(0.5);
    Cell::Reals(
        (1..=10)
            .map(|n| scale * libm_erfc(n as f64 / (width * std::f64::consts::SQRT_2)))
            .collect(),
    )
}

/// erfc(x) for x >= 0 (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn libm_erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    poly * (-x * x).exp()
}

/// The stellar parameters of the XCSAO cross-correlation (stars; -999 for the others).
fn xcsao(name: &str) -> Option<Get> {
    let get: Get = match name {
        "XCSAO_RV" => |f, _| star(f, |f, _| velocity(f.t.z)),
        "XCSAO_ERV" => |f, _| star(f, |f, _| velocity(f.t.z_err).max(1.0)),
        "XCSAO_RXC" => |f, _| star(f, |f, _| 8.0 + f64::from(f.sn_median_all).min(20.0)),
        "XCSAO_TEFF" => |f, _| star(f, |_, t| t),
        "XCSAO_ETEFF" => |f, _| star(f, |_, t| 0.02 * t),
        "XCSAO_LOGG" => |f, _| star(f, |_, t| if t < 4000.0 { 4.7 } else { 4.3 }),
        "XCSAO_ELOGG" => |f, _| star(f, |_, _| 0.25),
        "XCSAO_FEH" => |f, _| star(f, |f, _| -0.2 - 0.01 * f64::from(f.ti % 60)),
        "XCSAO_EFEH" => |f, _| star(f, |_, _| 0.15),
        _ => return None,
    };
    Some(get)
}

fn star(f: &Facts<'_>, value: impl Fn(&Facts<'_>, f64) -> f64) -> Cell {
    Cell::Real(f.temperature().map_or(-999.0, |t| value(f, t)))
}

/// The best-fit ELODIE star of spZbest.
fn elodie(name: &str) -> Option<Get> {
    let get: Get = match name {
        "ELODIE_FILENAME" => |f, _| Cell::text(format!("HD{:06}.fits", elodie_star(f))),
        "ELODIE_OBJECT" => |f, _| Cell::text(format!("HD{:06}", elodie_star(f))),
        "ELODIE_SPTYPE" => |f, _| {
            Cell::text(match f.t.class {
                Class::Star if !f.t.subclass.is_empty() => format!("{}V", f.t.subclass),
                _ => "G2V".to_string(),
            })
        },
        "ELODIE_BV" => |f, _| Cell::Real(f.temperature().map_or(0.65, |t| 7090.0 / t - 0.53)),
        "ELODIE_TEFF" => |f, _| Cell::Real(f.temperature().unwrap_or(5800.0)),
        "ELODIE_LOGG" => |_, _| Cell::Real(4.3),
        "ELODIE_FEH" => |_, _| Cell::Real(-0.2),
        "ELODIE_Z" => |f, _| Cell::Real(if f.t.class == Class::Star { f.t.z } else { 0.0 }),
        "ELODIE_Z_ERR" => |f, _| Cell::Real(f.t.z_err.max(1e-5)),
        "ELODIE_Z_MODELERR" => |_, _| Cell::Real(2e-5),
        "ELODIE_RCHI2" => |f, _| Cell::Real(f64::from(f.t.rchi2) * 1.1),
        "ELODIE_DOF" => |f, _| Cell::Int(f.misc.good_pixels as i64 - 5),
        _ => return None,
    };
    Some(get)
}

fn elodie_star(f: &Facts<'_>) -> i64 {
    1_000 + (f.catalogid % 200_000)
}

/// The summary of the coadd.
fn spectrum(name: &str) -> Option<Get> {
    let get: Get = match name {
        "SN_MEDIAN" => |f, _| reals(f.sn_median),
        "SN_MEDIAN_ALL" => |f, _| Cell::Real(f64::from(f.sn_median_all)),
        "ANYANDMASK" => |f, _| Cell::Int(i64::from(f.summary.any_and)),
        "ANYORMASK" => |f, _| Cell::Int(i64::from(f.summary.any_or)),
        "SPECTROFLUX" => |f, _| reals(f.summary.spectroflux),
        "SPECTROFLUX_IVAR" | "SPECTROSYNFLUX_IVAR" => |f, _| reals(f.summary.spectroflux_ivar),
        "SPECTROSYNFLUX" => |f, _| reals(f.summary.spectroflux.map(|v| 0.99 * v)),
        "SPECTROSKYFLUX" => |f, _| reals(f.misc.skyflux),
        "WAVEMIN" => |f, _| Cell::Real(f64::from(f.summary.wavemin)),
        "WAVEMAX" => |f, _| Cell::Real(f64::from(f.summary.wavemax)),
        "WCOVERAGE" => |f, _| Cell::Real(f64::from(f.summary.wcoverage)),
        _ => return None,
    };
    Some(get)
}

/// The plug-map columns of plate-era targeting (zero for FPS targets) and fiber states.
fn plugmap(name: &str) -> Option<Get> {
    let get: Get = match name {
        "FIBERMASK"
        | "BADSTDMASK"
        | "THROUGHPUT"
        | "OFFSETID"
        | "SDSSV_BOSS_TARGET0"
        | "SDSSV_APOGEE_TARGET0"
        | "BOSS_TARGET1"
        | "BOSS_TARGET2"
        | "ANCILLARY_TARGET1"
        | "ANCILLARY_TARGET2"
        | "EBOSS_TARGET0"
        | "EBOSS_TARGET1"
        | "EBOSS_TARGET2"
        | "EBOSS_TARGET_ID"
        | "THING_ID_TARGETING"
        | "PRIMTARGET"
        | "SECTARGET" => |_, _| Cell::Int(0),
        "STARL" | "EXPL" | "DEVAUCL" => |_, _| Cell::Real(0.0),
        _ => return None,
    };
    Some(get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healpix_ring_matches_known_pixels() {
        // healpy.ang2pix(128, ..., lonlat=True) values.
        assert_eq!(healpix_ring(128, 0.0, 90.0), 0);
        assert_eq!(healpix_ring(128, 0.0, -90.0), 12 * 128 * 128 - 4);
        assert!((0..12 * 128 * 128).contains(&healpix_ring(128, 150.0, 2.2)));
    }

    #[test]
    fn erfc_is_close() {
        assert!((libm_erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((libm_erfc(1.0) - 0.157_299_2).abs() < 1e-6);
    }
}
