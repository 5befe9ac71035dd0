//! One SDSS-V field-MJD coadd ("group"): its identity (FIELD, MJD, coadd kind), coadd grid,
//! exposures and observing conditions, the identifiers of its targets, and where its files go in
//! the tree SDSS distributes (`<OUT>` = `$BOSS_SPECTRO_REDUX/<RUN2D>`).

use std::path::{Path, PathBuf};

use model::PlateMjd;
use rand::Rng;

use super::{CoaddKind, Config, NEXP, RUN2D, SPECOBJID_TAG};
use crate::astrometry::{airmass, plate_centre};
use crate::plate::PlateInfo;
use crate::seeds::{rng, Stream};

/// Salt of the SDSS-V random streams (they never coincide with the SDSS-I–IV ones of a seed).
const SALT: u64 = 0x5D55_0005_0000_0013;
/// Length of one science exposure, s.
pub const EXPOSURE_SECONDS: f64 = 900.0;
/// Seconds between two exposures (readout and overheads).
const OVERHEAD_SECONDS: f64 = 120.0;

/// The seed of the SDSS-V streams of a run.
pub fn seed5(seed: u64) -> u64 {
    seed ^ SALT
}

/// One field-MJD coadd.
#[derive(Debug, Clone)]
pub struct Group {
    /// 0-based: the generated groups first, then the field-MJDs only the spAll rows name.
    pub index: usize,
    pub coadd: CoaddKind,
    /// FIELD of the tables (0 for the all-epoch coadd).
    pub field: i32,
    /// The FPS field of the exposures (FIELDID of the exposure HDUs): FIELD, or for the
    /// all-epoch coadd the field it would have had.
    pub obs_field: i32,
    pub mjd: i32,
    /// The field as names spell it: six digits, or `allepoch_apo`.
    pub field_str: String,
    /// FIELDID of the primary headers: the decimal field, or `allepoch_apo`.
    pub fieldid: String,
    pub ntargets: usize,
    pub npix: usize,
    pub coeff0: f64,
    /// Field centre, degrees.
    pub ra: f64,
    pub dec: f64,
    pub expids: [i64; NEXP],
    pub flat_id: i64,
    pub arc_id: i64,
    pub designs: [i64; NEXP],
    pub configs: [i64; NEXP],
    /// TAI at the start of each exposure, s.
    pub tai_beg: [f64; NEXP],
    pub airmass: [f64; NEXP],
    pub seeing: [f64; NEXP],
    /// (S/N)² of each exposure in g, r, i.
    pub sn2: [[f64; 3]; NEXP],
    pub moon_dist: f64,
    pub moon_phase: f64,
    pub ebv: f64,
    pub helio_rv: f64,
    pub seed: u64,
}

impl Group {
    /// The group of this index (for `index >= cfg.groups`, a field-MJD only spAll rows name).
    pub fn new(cfg: &Config, index: usize) -> Self {
        let seed = seed5(cfg.seed);
        let mut r = rng(seed, index, Stream::Plate, 0);
        let i = index as i32;
        let obs_field = cfg.first_field + i;
        let mjd = 60_000 + 7 * i;
        let (field, field_str, fieldid) = match cfg.coadd {
            CoaddKind::Allepoch => (0, "allepoch_apo".to_string(), "allepoch_apo".to_string()),
            _ => (obs_field, format!("{obs_field:06}"), obs_field.to_string()),
        };
        let (ra, dec) = plate_centre(index);
        // On the 1e-4 log-lambda grid, as a decimal that round-trips through the header.
        let coeff0 = f64::from(35_523 + (index % 3) as u32) / 10_000.0;
        let base = 400_000 + 10 * index as i64;
        let start = (f64::from(mjd) + 0.15 + 0.2 * r.random::<f64>()) * 86_400.0;
        let hour_angle: f64 = r.random_range(-20.0..20.0);
        let seeing0: f64 = r.random_range(1.0..2.0);
        let sn0: f64 = r.random_range(0.6..1.4);
        Self {
            index,
            coadd: cfg.coadd,
            field,
            obs_field,
            mjd,
            field_str,
            fieldid,
            ntargets: cfg.targets,
            npix: cfg.npix,
            coeff0,
            ra,
            dec,
            expids: std::array::from_fn(|e| base + e as i64),
            flat_id: base + 8,
            arc_id: base + 9,
            designs: std::array::from_fn(|e| 108_452 + 4 * index as i64 + e as i64),
            configs: std::array::from_fn(|e| 8_872 + 4 * index as i64 + e as i64),
            tai_beg: std::array::from_fn(|e| {
                start + e as f64 * (EXPOSURE_SECONDS + OVERHEAD_SECONDS)
            }),
            airmass: std::array::from_fn(|e| round(airmass(dec, hour_angle + 4.0 * e as f64), 1e5)),
            seeing: std::array::from_fn(|e| round(seeing0 * (1.0 + 0.05 * e as f64), 1e3)),
            sn2: std::array::from_fn(|e| {
                let s = sn0 * (1.0 - 0.1 * e as f64);
                [
                    round(1.5 * s, 1e4),
                    round(5.2 * s, 1e4),
                    round(4.4 * s, 1e4),
                ]
            }),
            moon_dist: r.random_range(30.0..150.0),
            moon_phase: r.random_range(0.0..0.4),
            ebv: 0.04 * (0.6 * r.random::<f64>() - 0.3).exp(),
            helio_rv: r.random_range(-30.0..30.0),
            seed,
        }
    }

    /// log10 λ of the coadd pixels: `COEFF0 + COEFF1 * i`.
    pub fn grid(&self) -> Vec<f64> {
        (0..self.npix)
            .map(|i| self.coeff0 + super::COEFF1 * i as f64)
            .collect()
    }

    /// Total exposure time, s.
    pub fn exptime(&self) -> f64 {
        NEXP as f64 * EXPOSURE_SECONDS
    }

    /// TAI at the middle of exposure `e`, s.
    pub fn tai_mid(&self, e: usize) -> f64 {
        self.tai_beg[e] + 0.5 * EXPOSURE_SECONDS
    }

    /// The observing parameters the SDSS-I–IV target and spectrum simulation reads.
    pub fn plate_info(&self) -> PlateInfo {
        PlateInfo {
            index: self.index,
            pm: PlateMjd {
                plate: self.obs_field,
                mjd: self.mjd,
            },
            tile: -1,
            nfiber: self.ntargets,
            npix: self.npix,
            coeff0: self.coeff0,
            ra: self.ra,
            dec: self.dec,
            seed: self.seed,
            expids: [self.expids[0] as u32, self.expids[NEXP - 1] as u32],
            flat_id: self.flat_id as u32,
            arc_id: self.arc_id as u32,
            tai_beg: self.tai_beg[0],
            airmass: self.airmass[0],
            seeing: self.seeing[0],
            ebv: self.ebv,
            cartid: 0,
            helio_rv: self.helio_rv,
        }
    }

    /// `EXPIDnn` of camera-exposure `k` (0-based; b1 exposures first, then r1).
    pub fn expid_string(&self, k: usize) -> String {
        let camera = if k < NEXP { "b1" } else { "r1" };
        format!(
            "{camera}-{:08}-{:08}-{:08}",
            self.expids[k % NEXP],
            self.flat_id,
            self.arc_id
        )
    }

    /// CATALOGID of a target: 64-bit, beyond 2^53 like SDSS-V's, unique over every group.
    pub fn catalogid(&self, target_index: i32) -> i64 {
        27_021_598_150_000_000 + self.index as i64 * 1_000_000 + i64::from(target_index) * 97
    }

    /// SDSS_ID of a target: unique and positive.
    pub fn sdss_id(&self, target_index: i32) -> i64 {
        100_000_000 + self.index as i64 * 10_000 + i64::from(target_index)
    }

    /// SPECOBJID as the SDSS-V pipeline encodes it (`specobjid.encode_V`): SDSS_ID, the field in
    /// 7 digits, the MJD, the coadd's 2-digit id and the 6-digit tag of RUN2D.
    pub fn specobjid(&self, sdss_id: i64) -> String {
        format!(
            "{sdss_id}{:07}{}{}{SPECOBJID_TAG}",
            self.field,
            self.mjd,
            self.coadd.specobjid_id()
        )
    }

    /// The CAS-style 64-bit SPECOBJID of spZbest (idlutils `sdss_specobjid` with plate = FIELD,
    /// fiber = TARGET_INDEX, rerun = 10103 for v6_1_3; each part masked to its bits as there).
    pub fn cas_specobjid(&self, target_index: i32) -> u64 {
        let plate = (self.field as u64) & ((1 << 18) - 1);
        let fiber = (target_index as u64) & ((1 << 12) - 1);
        let mjd = ((self.mjd - 50_000).max(0) as u64) & ((1 << 14) - 1);
        // v6_1_3 -> (6 - 5) * 10_000 + 1 * 100 + 3
        let rerun: u64 = 10_103;
        (plate << 50) | (fiber << 38) | (mjd << 24) | (rerun << 10)
    }

    /// `<OUT>/<FIELD>` (daily, all-epoch) or `<OUT>/<FIELD>/epoch`.
    pub fn field_dir(&self, out: &Path) -> PathBuf {
        let dir = out.join(&self.field_str);
        match self.coadd {
            CoaddKind::Epoch => dir.join("epoch"),
            _ => dir,
        }
    }

    /// `<field dir>/spField-<FIELD>-<MJD>.fits`.
    pub fn spfield_path(&self, out: &Path) -> PathBuf {
        self.field_dir(out)
            .join(format!("spField-{}-{}.fits", self.field_str, self.mjd))
    }

    /// `<field dir>/<RUN1D>/sp<KIND>-<FIELD>-<MJD>.fits` (`kind` = `Zbest`, `Zline`).
    pub fn sp1d_path(&self, out: &Path, kind: &str) -> PathBuf {
        self.field_dir(out)
            .join(RUN2D)
            .join(format!("sp{kind}-{}-{}.fits", self.field_str, self.mjd))
    }

    /// `<OUT>[/epoch]/spectra/<full|lite>/<FIELD>/<MJD>`.
    pub fn spec_dir(&self, out: &Path, lite: bool) -> PathBuf {
        let base = match self.coadd {
            CoaddKind::Epoch => out.join("epoch"),
            _ => out.to_path_buf(),
        };
        base.join("spectra")
            .join(if lite { "lite" } else { "full" })
            .join(&self.field_str)
            .join(self.mjd.to_string())
    }

    /// `spec-<FIELD>-<MJD>-<CATALOGID>.fits`.
    pub fn spec_name(&self, catalogid: i64) -> String {
        format!("spec-{}-{}-{catalogid}.fits", self.field_str, self.mjd)
    }
}

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(coadd: CoaddKind) -> Config {
        Config {
            out: PathBuf::from("/out"),
            groups: 2,
            targets: 4,
            npix: 4648,
            first_field: 15_000,
            seed: 3,
            spec_files: true,
            exposures: None,
            lite: false,
            coadd,
        }
    }

    #[test]
    fn names_and_ids_follow_the_pipeline() {
        let g = Group::new(&config(CoaddKind::Daily), 1);
        assert_eq!(
            (g.field, g.mjd, g.fieldid.as_str()),
            (15_001, 60_007, "15001")
        );
        assert_eq!(g.coeff0, 3.5524);
        let out = Path::new("/out");
        assert_eq!(
            g.spfield_path(out),
            Path::new("/out/015001/spField-015001-60007.fits")
        );
        assert_eq!(
            g.sp1d_path(out, "Zbest"),
            Path::new("/out/015001/v6_1_3/spZbest-015001-60007.fits")
        );
        assert_eq!(
            g.spec_dir(out, false).join(g.spec_name(g.catalogid(3))),
            Path::new("/out/spectra/full/015001/60007/spec-015001-60007-27021598151000291.fits")
        );
        let sid = g.sdss_id(3);
        assert_eq!(sid, 100_010_003);
        assert_eq!(g.specobjid(sid), "10001000300150016000700060103");
        assert!(g.catalogid(1) > 1 << 53);

        let e = Group::new(&config(CoaddKind::Epoch), 0);
        assert_eq!(
            e.spfield_path(out),
            Path::new("/out/015000/epoch/spField-015000-60000.fits")
        );
        assert_eq!(
            e.spec_dir(out, true),
            Path::new("/out/epoch/spectra/lite/015000/60000")
        );
        assert!(e.specobjid(1).ends_with("01060103"));

        let a = Group::new(&config(CoaddKind::Allepoch), 0);
        assert_eq!((a.field, a.fieldid.as_str()), (0, "allepoch_apo"));
        assert_eq!(
            a.sp1d_path(out, "Zline"),
            Path::new("/out/allepoch_apo/v6_1_3/spZline-allepoch_apo-60000.fits")
        );
        assert_eq!(a.specobjid(7), "700000006000003060103");
    }

    #[test]
    fn cas_specobjid_packs_the_bits() {
        let g = Group::new(&config(CoaddKind::Daily), 0);
        let id = g.cas_specobjid(5);
        assert_eq!(id >> 50, 15_000);
        assert_eq!((id >> 38) & 0xFFF, 5);
        assert_eq!((id >> 24) & 0x3FFF, 10_000);
        assert_eq!((id >> 10) & 0x3FFF, 10_103);
    }
}
