//! SDSS-V (DR19, RUN2D v6_1_3) files that follow the SDSS data model exactly: per field-MJD the
//! spField, spZbest and spZline files, optionally the per-target spec files (full or lite), and
//! optionally spAll-v6_1_3.fits and spAll-lite-v6_1_3.fits, in the tree SDSS distributes, for the
//! daily, epoch or all-epoch (APO) coadds.
//!
//! Every HDU, EXTNAME, header keyword, column, TFORM and TUNIT comes from the embedded data model
//! ([`datamodel`], generated from formats/sdss-v/ by scripts/sdss5-datamodel.py); the values come
//! from the SDSS-I–IV simulation of this crate (targets, spectra, sky, noise).

mod cells;
mod columns;
pub mod datamodel;
mod exposure;
mod facts;
mod files;
mod group;
mod header;
mod lines;
mod spall;
mod spec;
mod table;

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use rayon::prelude::*;

pub use group::Group;

use crate::Output;

/// The reduction version of every file (RUN2D = RUN1D = VERS2D).
pub const RUN2D: &str = "v6_1_3";
/// RUN2D as the 6-digit tag that ends a SPECOBJID.
pub const SPECOBJID_TAG: &str = "060103";
/// Science exposures per field-MJD (the b1 and r1 cameras of each are coadded).
pub const NEXP: usize = 2;
/// Pixel size of the coadd grid in log10 λ.
pub const COEFF1: f64 = crate::spectrum::COEFF1;

/// The kind of coadd, as the pipeline names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CoaddKind {
    /// One night of a field (`<OUT>/<FIELD>/…`, SPECOBJID coadd id 00).
    #[default]
    Daily,
    /// A field's epoch (`<OUT>/<FIELD>/epoch/…`, `<OUT>/epoch/spectra/…`, id 01).
    Epoch,
    /// The custom all-epoch coadd of APO (`allepoch_apo` as the field, FIELD 0, id 03).
    Allepoch,
}

impl CoaddKind {
    /// The 2-digit coadd id of SPECOBJID (idlspec2d's `specobjid.coaddids`).
    pub fn specobjid_id(self) -> &'static str {
        match self {
            Self::Daily => "00",
            Self::Epoch => "01",
            Self::Allepoch => "03",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Config {
    /// `$BOSS_SPECTRO_REDUX/<RUN2D>`.
    pub out: PathBuf,
    /// Field-MJDs (MJDs for the all-epoch coadd).
    pub groups: usize,
    /// Targets per field-MJD (TARGET_INDEX 1..=targets).
    pub targets: usize,
    pub npix: usize,
    /// FIELD of the first group; the others follow.
    pub first_field: i32,
    pub seed: u64,
    pub spec_files: bool,
    /// `Some(k)`: targets 1..=k get exposure HDUs; `None`: every tenth. Full files only.
    pub exposures: Option<usize>,
    /// Lite spec files (no exposure HDUs) instead of full ones.
    pub lite: bool,
    pub coadd: CoaddKind,
}

impl Config {
    /// Whether the spec file of this target carries the exposure HDUs.
    pub fn has_exposures(&self, target_index: i32) -> bool {
        !self.lite
            && match self.exposures {
                Some(k) => target_index as usize <= k,
                None => target_index % 10 == 0,
            }
    }

    fn check(&self) -> Result<()> {
        ensure!(self.groups >= 1, "--plates must be at least 1");
        ensure!(
            (1..=9999).contains(&self.targets),
            "--fibers must be in 1..=9999"
        );
        ensure!(self.npix >= 100, "--npix must be at least 100");
        ensure!(self.first_field >= 1, "--first-plate must be positive");
        ensure!(
            i64::from(self.first_field) + self.groups as i64 - 1 <= 999_999,
            "--first-plate {} with --plates {}: SDSS-V fields have at most 6 digits (<= 999999)",
            self.first_field,
            self.groups
        );
        ensure!(
            !(self.lite && self.spec_files && self.exposures.is_some_and(|k| k > 0)),
            "--flavor sdss5-lite writes lite spec files: no --exposures"
        );
        Ok(())
    }
}

/// Checks the configuration, then writes every group (in parallel) and, with `spall_rows`, both
/// spAll files in `<OUT>`.
pub fn generate(cfg: &Config, spall_rows: Option<usize>) -> Result<Output> {
    cfg.check()?;
    datamodel::model()?;
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    let mut writer = spall_rows
        .map(|rows| spall::SpallWriter::create(cfg, rows))
        .transpose()?;
    let mut total = Output::default();
    // Groups in batches of as many as there are threads, so the spAll rows of a batch are
    // written before the next one runs (bounded memory whatever the number of groups).
    let batch = rayon::current_num_threads().max(2);
    for first in (0..cfg.groups).step_by(batch) {
        let want_rows = writer.is_some();
        let results = (first..(first + batch).min(cfg.groups))
            .into_par_iter()
            .map(|i| files::generate_group(cfg, &Group::new(cfg, i), want_rows))
            .collect::<Result<Vec<_>>>()?;
        for (out, rows) in results {
            total.files += out.files;
            total.bytes += out.bytes;
            if let (Some(w), Some(rows)) = (writer.as_mut(), rows) {
                w.write_group_rows(&rows)?;
            }
        }
    }
    if let Some(w) = writer {
        let (files, bytes) = w.finish()?;
        total.files += files;
        total.bytes += bytes;
    }
    Ok(total)
}
