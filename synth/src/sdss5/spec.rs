//! Per-target spec files (`spec-<FIELD>-<MJD>-<CATALOGID>.fits`, full or lite): the primary
//! header, COADD (the target's spField/spZbest rows on the whole grid), SPALL (its spAll row),
//! ZALL (its fits, best first), ZLINE (its spZline rows) and, in full files of the targets that
//! have them, one `MJD_EXP_<MJD>-<nn>` HDU per exposure.

use anyhow::{bail, ensure, Context, Result};
use rayon::prelude::*;

use super::datamodel::{model, ColumnModel, FileModel, HduModel};
use super::exposure;
use super::facts::Simulated;
use super::group::Group;
use super::header::{self, Context as HeaderContext};
use super::table::{Rows, Table};
use super::{Config, NEXP};
use crate::fits::{write_atomically_in_memory, ColData, Column, FitsWriter};
use crate::seeds::{rng, Stream};

/// The tables of a spec file, resolved once per group.
struct SpecTables {
    file: &'static FileModel,
    spall: Table,
    zall: Table,
    zline: Table,
}

impl SpecTables {
    fn new(file: &'static FileModel, g: &Group) -> Result<Self> {
        let find = |name: &str| -> Result<&'static HduModel> {
            file.hdus
                .iter()
                .find(|h| h.extname.as_deref() == Some(name))
                .with_context(|| format!("the data model's spec file has no {name} HDU"))
        };
        Ok(Self {
            file,
            spall: Table::new(find("SPALL")?, Rows::Target, g)?,
            zall: Table::new(find("ZALL")?, Rows::Target, g)?,
            zline: Table::new(find("ZLINE")?, Rows::Line, g)?,
        })
    }
}

/// Writes the spec files of every target of `g`; returns (files, bytes).
pub fn write_all(
    cfg: &Config,
    g: &Group,
    grid: &[f64],
    targets: &[Simulated<'_>],
) -> Result<(usize, u64)> {
    let m = &model()?.files;
    let file = if cfg.lite { &m.spec_lite } else { &m.spec_full };
    let tables = SpecTables::new(file, g)?;
    let dir = g.spec_dir(&cfg.out, cfg.lite);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let loglam: Vec<f32> = grid.iter().map(|&l| l as f32).collect();
    let sizes = targets
        .par_iter()
        .map(|t| {
            let path = dir.join(g.spec_name(t.facts.catalogid));
            let exposures = cfg.has_exposures(t.facts.ti);
            write_atomically_in_memory(&path, |w| write(w, &tables, g, &loglam, t, exposures))
        })
        .collect::<Result<Vec<u64>>>()?;
    Ok((sizes.len(), sizes.iter().sum()))
}

/// A per-pixel column of the model with its data, whose type must be the TFORM's.
fn pixel_column(c: &'static ColumnModel, data: ColData) -> Result<Column> {
    let ok = matches!(
        (c.tform.as_str(), &data),
        ("E", ColData::F32(_)) | ("J", ColData::I32(_))
    );
    ensure!(ok, "column {} of the data model is {}", c.name, c.tform);
    Ok(Column {
        name: c.name.clone(),
        tform: c.tform.clone(),
        unit: c.unit.as_deref(),
        data,
    })
}

fn write(
    w: &mut FitsWriter,
    tables: &SpecTables,
    g: &Group,
    loglam: &[f32],
    t: &Simulated<'_>,
    with_exposures: bool,
) -> Result<()> {
    let f = &t.facts;
    let s = &t.spec;
    for hdu in &tables.file.hdus {
        match hdu.label() {
            "PRIMARY" => {
                let ctx = HeaderContext {
                    target: Some((f.t.ra, f.t.dec)),
                    ..Default::default()
                };
                w.empty_primary(&header::cards(hdu, g, ctx))?;
            }
            "COADD" => {
                let columns = hdu
                    .columns
                    .iter()
                    .map(|c| {
                        let data = match c.name.as_str() {
                            "FLUX" => ColData::F32(s.flux.clone()),
                            "LOGLAM" => ColData::F32(loglam.to_vec()),
                            "IVAR" => ColData::F32(s.ivar.clone()),
                            "AND_MASK" => ColData::I32(s.and_mask.clone()),
                            "OR_MASK" => ColData::I32(s.or_mask.clone()),
                            "WDISP" => ColData::F32(s.wdisp.clone()),
                            "SKY" => ColData::F32(s.sky.clone()),
                            "MODEL" => ColData::F32(s.model.clone()),
                            "WRESL" => ColData::F32(t.wresl.clone()),
                            name => bail!("boss-synth has no COADD column {name}"),
                        };
                        pixel_column(c, data)
                    })
                    .collect::<Result<Vec<_>>>()?;
                let cards = header::cards(hdu, g, HeaderContext::default());
                w.table(hdu.extname(), &columns, &cards)?;
            }
            "SPALL" => {
                let cards = header::cards(hdu, g, HeaderContext::default());
                tables.spall.write(w, &cards, [(f, 0)])?;
            }
            "ZALL" => {
                let cards = header::cards(hdu, g, HeaderContext::default());
                tables
                    .zall
                    .write(w, &cards, (0..f.fits.len()).map(|k| (f, k)))?;
            }
            "ZLINE" => {
                let cards = header::cards(hdu, g, HeaderContext::default());
                tables
                    .zline
                    .write(w, &cards, (0..f.lines.len()).map(|k| (f, k)))?;
            }
            name => bail!("boss-synth writes no HDU {name} in spec files"),
        }
    }
    if with_exposures {
        for e in 0..NEXP {
            write_exposure(w, tables.file, g, loglam, t, e)?;
        }
    }
    Ok(())
}

/// The data model's HDU of exposure `e` of NEXP: the example's HDU of that number, the last
/// exposure its last one (the example's exposure HDUs differ: all but the last carry the column
/// names as TUNIT, as v6_1_3 wrote them).
fn exposure_model(file: &'static FileModel, e: usize) -> Result<&'static HduModel> {
    let n = file.exposures.len();
    ensure!(n > 0, "the data model's spec file has no exposure HDU");
    Ok(if e + 1 == NEXP {
        &file.exposures[n - 1]
    } else {
        &file.exposures[e.min(n.saturating_sub(2))]
    })
}

fn write_exposure(
    w: &mut FitsWriter,
    file: &'static FileModel,
    g: &Group,
    loglam: &[f32],
    t: &Simulated<'_>,
    e: usize,
) -> Result<()> {
    let hdu = exposure_model(file, e)?;
    let item = ((t.facts.ti as u64) << 4) | e as u64;
    let x = exposure::observe(
        &t.spec,
        &t.wresl,
        &mut rng(g.seed, g.index, Stream::Exposure, item),
    );
    let columns = hdu
        .columns
        .iter()
        .map(|c| {
            let data = match c.name.as_str() {
                "FLUX" => ColData::F32(x.flux.clone()),
                "LOGLAM" => ColData::F32(loglam.to_vec()),
                "IVAR" => ColData::F32(x.ivar.clone()),
                "AND_MASK" => ColData::I32(x.and_mask.clone()),
                "OR_MASK" => ColData::I32(x.or_mask.clone()),
                "WDISP" => ColData::F32(x.wdisp.clone()),
                "SKY" => ColData::F32(x.sky.clone()),
                "WRESL" => ColData::F32(x.wresl.clone()),
                name => bail!("boss-synth has no exposure column {name}"),
            };
            pixel_column(c, data)
        })
        .collect::<Result<Vec<_>>>()?;
    let ctx = HeaderContext {
        exposure: Some(e),
        ..Default::default()
    };
    let name = format!("MJD_EXP_{}-{e:02}", g.mjd);
    w.table(Some(&name), &columns, &header::cards(hdu, g, ctx))
}
