//! One field-MJD: the simulation of its targets, then its spField (FLUX, IVAR, ANDMASK, ORMASK,
//! WAVEDISP, PLUGMAP, SKY, SPECRESL), spZbest (redshift table, best-fit model, velocity-dispersion
//! model) and spZline (line table, line model) files, its spec files and its spAll rows — every
//! HDU in the data model's order, row r of every image and table being TARGET_INDEX r + 1.

use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;

use super::datamodel::{model, FileModel, HduModel};
use super::facts::{simulate, Simulated};
use super::group::Group;
use super::header::{self, Context as HeaderContext};
use super::lines::LINES;
use super::spall::GroupRows;
use super::table::{Rows, Table};
use super::{spec, Config, RUN2D};
use crate::fits::{write_atomically_in_memory, FitsWriter, Pixel};
use crate::seeds::{rng, Stream};
use crate::spectrum::{SkyModel, INSTRUMENT_SIGMA};
use crate::Output;

/// Simulates the targets of `g`, writes its files, and returns what was written and, when asked,
/// its packed spAll rows.
pub fn generate_group(
    cfg: &Config,
    g: &Group,
    spall_rows: bool,
) -> Result<(Output, Option<GroupRows>)> {
    let m = &model()?.files;
    let grid = g.grid();
    let sky = SkyModel::new(&mut rng(g.seed, g.index, Stream::Plate, 1)).render(
        &grid,
        INSTRUMENT_SIGMA,
        1.0,
    );
    let targets: Vec<Simulated<'_>> = (1..=g.ntargets as i32)
        .into_par_iter()
        .map(|ti| simulate(g, ti, &grid, &sky))
        .collect();
    drop(sky);

    let dir = g.field_dir(&cfg.out).join(RUN2D);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    type Writer = fn(&mut FitsWriter, &'static FileModel, &Group, &[Simulated<'_>]) -> Result<()>;
    let jobs: [(std::path::PathBuf, &'static FileModel, Writer); 3] = [
        (g.spfield_path(&cfg.out), &m.spfield, write_spfield),
        (g.sp1d_path(&cfg.out, "Zbest"), &m.spzbest, write_spzbest),
        (g.sp1d_path(&cfg.out, "Zline"), &m.spzline, write_spzline),
    ];
    let sizes = jobs
        .par_iter()
        .map(|(path, fm, write)| write_atomically_in_memory(path, |w| write(w, fm, g, &targets)))
        .collect::<Result<Vec<u64>>>()?;
    let mut out = Output {
        files: sizes.len(),
        bytes: sizes.iter().sum(),
    };
    if cfg.spec_files {
        let (files, bytes) = spec::write_all(cfg, g, &grid, &targets)?;
        out.files += files;
        out.bytes += bytes;
    }
    let rows = spall_rows
        .then(|| GroupRows::pack(g, targets.iter().map(|t| &t.facts)))
        .transpose()?;
    Ok((out, rows))
}

/// The rows of every target stacked into one NTARGETS x NPIX image.
fn stack<'g, T: Copy>(
    targets: &[Simulated<'g>],
    row: impl for<'a> Fn(&'a Simulated<'g>) -> &'a [T],
) -> Vec<T> {
    let mut out = Vec::with_capacity(targets.iter().map(|t| row(t).len()).sum());
    for t in targets {
        out.extend_from_slice(row(t));
    }
    out
}

/// Writes an image HDU of the model with the targets' rows, checking its BITPIX.
fn image<'g, T: Pixel>(
    w: &mut FitsWriter,
    hdu: &'static HduModel,
    g: &Group,
    targets: &[Simulated<'g>],
    row: impl for<'a> Fn(&'a Simulated<'g>) -> &'a [T],
) -> Result<()> {
    ensure!(
        hdu.bitpix == Some(T::BITPIX),
        "HDU {} of the data model has BITPIX {:?}, not {}",
        hdu.label(),
        hdu.bitpix,
        T::BITPIX
    );
    let ctx = HeaderContext {
        rows: targets.len(),
        ..Default::default()
    };
    w.image(
        hdu.extname(),
        g.npix,
        targets.len(),
        &header::cards(hdu, g, ctx),
        &stack(targets, row),
    )
}

/// The primary HDU of spZbest and spZline: a header without data.
fn empty_primary(
    w: &mut FitsWriter,
    hdu: &'static HduModel,
    g: &Group,
    lines: usize,
) -> Result<()> {
    ensure!(
        hdu.image && hdu.naxis == Some(0),
        "HDU 0 of the data model ({}) has data",
        hdu.label()
    );
    w.empty_primary(&header::cards(
        hdu,
        g,
        HeaderContext {
            lines,
            rows: g.ntargets,
            ..Default::default()
        },
    ))
}

fn write_spfield(
    w: &mut FitsWriter,
    file: &'static FileModel,
    g: &Group,
    targets: &[Simulated<'_>],
) -> Result<()> {
    for hdu in &file.hdus {
        match (hdu.image, hdu.label()) {
            (true, "PRIMARY") => image(w, hdu, g, targets, |t| &t.spec.flux)?,
            (true, "IVAR") => image(w, hdu, g, targets, |t| &t.spec.ivar)?,
            (true, "ANDMASK") => image(w, hdu, g, targets, |t| &t.spec.and_mask)?,
            (true, "ORMASK") => image(w, hdu, g, targets, |t| &t.spec.or_mask)?,
            (true, "WAVEDISP") => image(w, hdu, g, targets, |t| &t.spec.wdisp)?,
            (true, "SKY") => image(w, hdu, g, targets, |t| &t.spec.sky)?,
            (true, "SPECRESL") => image(w, hdu, g, targets, |t| &t.wresl)?,
            (false, "PLUGMAP") => {
                let table = Table::new(hdu, Rows::Target, g)?;
                let cards = header::cards(hdu, g, HeaderContext::default());
                table.write(w, &cards, targets.iter().map(|t| (&t.facts, 0)))?;
            }
            (_, name) => bail!("boss-synth writes no HDU {name} in spField files"),
        }
    }
    Ok(())
}

fn write_spzbest(
    w: &mut FitsWriter,
    file: &'static FileModel,
    g: &Group,
    targets: &[Simulated<'_>],
) -> Result<()> {
    let hdus = &file.hdus;
    ensure!(
        hdus.len() == 4,
        "the data model's spZbest has {} HDUs, not 4",
        hdus.len()
    );
    empty_primary(w, &hdus[0], g, 0)?;
    let table = Table::new(&hdus[1], Rows::Target, g)?;
    let cards = header::cards(&hdus[1], g, HeaderContext::default());
    table.write(w, &cards, targets.iter().map(|t| (&t.facts, 0)))?;
    // HDU2: the best-fit model; HDU3: the best fit at the measured velocity dispersion (the
    // simulation's model is both).
    image(w, &hdus[2], g, targets, |t| &t.spec.model)?;
    image(w, &hdus[3], g, targets, |t| &t.spec.model)
}

fn write_spzline(
    w: &mut FitsWriter,
    file: &'static FileModel,
    g: &Group,
    targets: &[Simulated<'_>],
) -> Result<()> {
    let hdus = &file.hdus;
    ensure!(
        hdus.len() == 3,
        "the data model's spZline has {} HDUs, not 3",
        hdus.len()
    );
    empty_primary(w, &hdus[0], g, LINES.len())?;
    let table = Table::new(&hdus[1], Rows::Line, g)?;
    let cards = header::cards(&hdus[1], g, HeaderContext::default());
    table.write(
        w,
        &cards,
        targets
            .iter()
            .flat_map(|t| (0..t.facts.lines.len()).map(move |k| (&t.facts, k))),
    )?;
    // HDU2: the best-fit model with the line fits added in.
    image(w, &hdus[2], g, targets, |t| &t.spec.model)
}
