//! DESI (DR1) HEALPix coadds and their redrock files, made after the real pair in
//! data-samples/real/desi: every HDU, EXTNAME, header card, column, TFORM and unit is the real
//! file's (headers copied by cfitsio, new CHECKSUM/DATASUM), the template's table rows are cycled to
//! `targets` rows with new TARGETIDs (in shuffled order, as DESI's are not sorted), and the spectra
//! are random on the real grids (B/R/Z WAVELENGTH copied: 2751/2326/2881 pixels; FLUX, IVAR, MASK
//! and the 11-diagonal RESOLUTION per target). Files go into DESI's tree,
//! `healpix/<survey>/<program>/<pixnum/100>/<pixnum>/`, as `coadd-…` and `redrock-…`.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use rand::distr::{Distribution, Uniform};
use rand::seq::index::sample;
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::fits::{write_atomically, Card, ColData, Column, FitsWriter, Pixel};
use crate::seeds::{rng, Stream};
use crate::template::Template;
use crate::Output;

/// The real pair the files are made after (relative to the repository).
pub const TEMPLATE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data-samples/real/desi");
const TEMPLATE_STEM: &str = "special-dark-27247";
/// The spectrograph arms, in file order.
pub const ARMS: [&str; 3] = ["B", "R", "Z"];
/// Diagonals of the resolution matrix.
pub const NDIAG: usize = 11;
/// The first TARGETID of file `i` is `FIRST_TARGETID + i * 10^7` plus a random offset below 10^6.
const FIRST_TARGETID: i64 = 39_000_000_000_000_000;
/// Pixel values drawn per random stream (the chunks are filled in parallel).
const CHUNK: usize = 1 << 20;

/// What to write.
#[derive(Debug, Clone)]
pub struct Config {
    pub out: PathBuf,
    /// HEALPix coadd files (each with its redrock file).
    pub files: usize,
    /// Targets per file.
    pub targets: usize,
    /// HEALPix pixel (nside 64, nested) of the first file; the others follow.
    pub first_pixnum: i64,
    pub survey: String,
    pub program: String,
    pub seed: u64,
    /// The directory of the real coadd/redrock pair.
    pub template_dir: PathBuf,
}

impl Config {
    /// `files` files of `targets` targets each (main/dark, pixels from 9000) into `out`.
    pub fn new(out: &Path, files: usize, targets: usize, seed: u64) -> Self {
        Self {
            out: out.to_path_buf(),
            files,
            targets,
            first_pixnum: 9000,
            survey: "main".into(),
            program: "dark".into(),
            seed,
            template_dir: PathBuf::from(TEMPLATE_DIR),
        }
    }
}

/// The directory and stem of file `i`'s pair.
pub fn file_stem(cfg: &Config, i: usize) -> (PathBuf, String) {
    let pix = cfg.first_pixnum + i as i64;
    let dir = cfg
        .out
        .join("healpix")
        .join(&cfg.survey)
        .join(&cfg.program)
        .join((pix / 100).to_string())
        .join(pix.to_string());
    (dir, format!("{}-{}-{pix}", cfg.survey, cfg.program))
}

/// Writes every pair (in parallel).
pub fn generate(cfg: &Config) -> Result<Output> {
    ensure!(
        cfg.files >= 1,
        "--plates (DESI: coadd files) must be at least 1"
    );
    ensure!(
        (1..=1_000_000).contains(&cfg.targets),
        "--fibers (DESI: targets per file) must be in 1..=1000000"
    );
    ensure!(
        (0..12 * 64 * 64).contains(&cfg.first_pixnum)
            && cfg.first_pixnum + (cfg.files as i64) <= 12 * 64 * 64,
        "HEALPix pixels (nside 64) are 0..49151"
    );
    let outputs = (0..cfg.files)
        .into_par_iter()
        .map(|i| write_pair(cfg, i))
        .collect::<Result<Vec<Output>>>()?;
    Ok(outputs.iter().fold(Output::default(), |a, o| Output {
        files: a.files + o.files,
        bytes: a.bytes + o.bytes,
    }))
}

/// The TARGETIDs of file `i`: distinct, in random order.
fn target_ids(cfg: &Config, i: usize) -> Vec<i64> {
    let mut r = rng(cfg.seed, i, Stream::Target, 0);
    sample(&mut r, 1_000_000, cfg.targets)
        .into_iter()
        .map(|k| FIRST_TARGETID + i as i64 * 10_000_000 + k as i64)
        .collect()
}

fn write_pair(cfg: &Config, i: usize) -> Result<Output> {
    let (dir, stem) = file_stem(cfg, i);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ids = target_ids(cfg, i);
    let coadd = dir.join(format!("coadd-{stem}.fits"));
    let redrock = dir.join(format!("redrock-{stem}.fits"));
    let template = |kind: &str| {
        let p = cfg
            .template_dir
            .join(format!("{kind}-{TEMPLATE_STEM}.fits"));
        Template::open(&p)
    };
    let mut tc = template("coadd")?;
    let mut tr = template("redrock")?;
    let pix = cfg.first_pixnum + i as i64;
    let primary = [
        Card::str("SURVEY", cfg.survey.as_str(), ""),
        Card::str("PROGRAM", cfg.program.as_str(), ""),
        Card::int("SPGRPVAL", pix, ""),
        Card::int("HPXPIXEL", pix, ""),
    ];
    let mut bytes = write_atomically(&coadd, |w| {
        tc.primary()?;
        w.copy_header(&tc)?;
        w.update_cards(&primary)?;
        w.write_checksum()?;
        fibermaps(w, &mut tc, &ids, cfg, i)?;
        for (a, arm) in ARMS.iter().enumerate() {
            write_arm(w, &mut tc, arm, ids.len(), cfg.seed, i, a)?;
        }
        cycled_table(w, &mut tc, "SCORES", &ids, &[])?;
        Ok(())
    })?;
    bytes += write_atomically(&redrock, |w| {
        tr.primary()?;
        w.copy_header(&tr)?;
        w.update_cards(&primary)?;
        w.write_checksum()?;
        let mut r = rng(cfg.seed, i, Stream::Target, 1);
        let z: Vec<f64> = (0..ids.len()).map(|_| r.random_range(0.0..3.0)).collect();
        let spectype = (0..ids.len())
            .map(|k| if k % 2 == 0 { "QSO" } else { "GALAXY" }.to_string())
            .collect();
        let redshifts = [
            column("Z", ColData::F64(z)),
            column("SPECTYPE", ColData::Str(spectype)),
            column("ZWARN", ColData::I64(vec![0; ids.len()])),
        ];
        cycled_table(w, &mut tr, "REDSHIFTS", &ids, &redshifts)?;
        // The redrock template's own FIBERMAP and EXP_FIBERMAP headers (fewer cards than the
        // coadd's); the same rows and positions as the coadd's.
        fibermaps(w, &mut tr, &ids, cfg, i)?;
        cycled_table(w, &mut tr, "TSNR2", &ids, &[])?;
        Ok(())
    })?;
    Ok(Output { files: 2, bytes })
}

/// A column whose TFORM comes from the template (only its name and data are used).
fn column(name: &str, data: ColData) -> Column {
    Column {
        name: name.into(),
        tform: String::new(),
        unit: None,
        data,
    }
}

/// FIBERMAP (one row per target, positions spread over half a degree around the template's) and
/// EXP_FIBERMAP (two exposures per target).
fn fibermaps(
    w: &mut FitsWriter,
    t: &mut Template,
    ids: &[i64],
    cfg: &Config,
    file: usize,
) -> Result<()> {
    let mut r = rng(cfg.seed, file, Stream::Target, 2);
    let spread = Uniform::new(-0.25, 0.25).expect("a valid range");
    let (ra0, dec0) = (218.0, 51.4);
    let ra = (0..ids.len())
        .map(|_| ra0 + spread.sample(&mut r))
        .collect();
    let dec = (0..ids.len())
        .map(|_| dec0 + spread.sample(&mut r))
        .collect();
    let positions = [
        column("TARGET_RA", ColData::F64(ra)),
        column("TARGET_DEC", ColData::F64(dec)),
    ];
    cycled_table(w, t, "FIBERMAP", ids, &positions)?;
    let twice: Vec<i64> = ids.iter().flat_map(|&id| [id, id]).collect();
    cycled_table(w, t, "EXP_FIBERMAP", &twice, &[])
}

/// Appends the template's table `extname` with `ids.len()` rows — the template's rows cycled —
/// then sets TARGETID to `ids` and the columns of `set`.
fn cycled_table(
    w: &mut FitsWriter,
    t: &mut Template,
    extname: &str,
    ids: &[i64],
    set: &[Column],
) -> Result<()> {
    t.select(extname)?;
    let (rows, width) = t.raw_rows()?;
    ensure!(
        !rows.is_empty(),
        "the template's {extname} has no rows to cycle"
    );
    let n = ids.len();
    let bytes: Vec<u8> = rows.iter().copied().cycle().take(n * width).collect();
    w.copy_header(t)?;
    w.set_table_rows(n)?;
    w.write_packed_rows(extname, 1, &bytes)?;
    let ids = column("TARGETID", ColData::I64(ids.to_vec()));
    let columns: Vec<Column> = std::iter::once(ids).chain(set.iter().cloned()).collect();
    w.write_named_columns(extname, 1, &columns)?;
    w.write_checksum()
}

/// The five HDUs of one arm: the template's WAVELENGTH, then random FLUX, IVAR, MASK and
/// RESOLUTION of `targets` rows.
fn write_arm(
    w: &mut FitsWriter,
    t: &mut Template,
    arm: &str,
    targets: usize,
    seed: u64,
    file: usize,
    a: usize,
) -> Result<()> {
    t.select(&format!("{arm}_WAVELENGTH"))?;
    let wave = t.image_f64()?;
    let npix = wave.len();
    w.copy_header(t)?;
    w.write_pixels(&format!("{arm}_WAVELENGTH"), &wave)?;
    w.write_checksum()?;
    let stream = |q: u64| {
        move |chunk: u64| rng(seed, file, Stream::Pixels, (a as u64 * 8 + q) << 32 | chunk)
    };
    let normal = |r: &mut rand::rngs::StdRng| r.sample::<f32, _>(StandardNormal);
    let ivar = Uniform::new(0.0f32, 2.0).expect("a valid range");
    let res = Uniform::new(0.0f32, 1.0).expect("a valid range");
    let mask = Uniform::new(0i32, 1 << 20).expect("a valid range");
    image(w, t, arm, "FLUX", &[npix, targets], stream(0), normal)?;
    image(w, t, arm, "IVAR", &[npix, targets], stream(1), |r| {
        ivar.sample(r)
    })?;
    image(w, t, arm, "MASK", &[npix, targets], stream(2), |r| {
        mask.sample(r)
    })?;
    image(
        w,
        t,
        arm,
        "RESOLUTION",
        &[npix, NDIAG, targets],
        stream(3),
        |r| res.sample(r),
    )
}

/// Appends the template's image `<arm>_<quantity>` resized to `dims` and filled with `draw`, in
/// chunks of [`CHUNK`] values drawn in parallel, each from its own stream (deterministic).
fn image<T: Pixel + Default + Send>(
    w: &mut FitsWriter,
    t: &mut Template,
    arm: &str,
    quantity: &str,
    dims: &[usize],
    stream: impl Fn(u64) -> rand::rngs::StdRng + Sync,
    draw: impl Fn(&mut rand::rngs::StdRng) -> T + Sync,
) -> Result<()> {
    let name = format!("{arm}_{quantity}");
    t.select(&name)?;
    let mut data = vec![T::default(); dims.iter().product()];
    data.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut r = stream(c as u64);
            chunk.iter_mut().for_each(|v| *v = draw(&mut r));
        });
    w.copy_header(t)?;
    w.resize_image::<T>(dims)?;
    w.write_pixels(&name, &data)?;
    w.write_checksum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_ids_are_distinct_and_reproducible() {
        let cfg = Config::new(Path::new("/nonexistent"), 2, 500, 7);
        let a = target_ids(&cfg, 1);
        assert_eq!(a, target_ids(&cfg, 1));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 500);
        assert_ne!(a, sorted, "shuffled, not sorted");
        assert!(a
            .iter()
            .all(|&id| id / 10_000_000 == FIRST_TARGETID / 10_000_000 + 1));
        assert_eq!(
            file_stem(&cfg, 1),
            (
                PathBuf::from("/nonexistent/healpix/main/dark/90/9001"),
                "main-dark-9001".to_string()
            )
        );
    }
}
