//! Per-fiber `spec-PPPP-MMMMM-FFFF.fits`: HDU0 header, COADD (the fiber's spPlate row without the
//! ivar = 0 pixels at both ends), SPALL (or SPECOBJ), SPZLINE, and optionally one table per camera
//! per exposure (`B1-00100000-00100002-00100003`, ...), in one of the [`Flavor`]s of real files.

use std::path::Path;

use anyhow::{ensure, Result};
use model::layout::fits_names;

use crate::fits::{write_atomically, Card, Column};
use crate::plate::{FiberData, Flavor, PlateInfo, NEXP};
use crate::seeds::{rng, Stream};
use crate::spectrum::{observe_exposure, Arm, SkyModel};
use crate::tables;
use crate::zline::ZlineRow;

/// Column names in the case the flavor writes them.
fn cased(mut columns: Vec<Column>, upper: bool) -> Vec<Column> {
    for c in &mut columns {
        c.name = if upper {
            c.name.to_ascii_uppercase()
        } else {
            c.name.to_ascii_lowercase()
        };
    }
    columns
}

/// Writes the spec file of one fiber into `dir`; returns its size in bytes.
pub fn write(
    dir: &Path,
    info: &PlateInfo,
    grid: &[f64],
    fiber: &FiberData,
    sky_model: &SkyModel,
    with_exposures: bool,
    flavor: Flavor,
) -> Result<u64> {
    ensure!(
        !(with_exposures && flavor == Flavor::Eboss),
        "eBOSS lite spec files have no exposure HDUs (they carry no EXTNAME to name them)"
    );
    let t = &fiber.target;
    let path = dir.join(fits_names::spec(info.pm, t.fiber));
    let named = |n: &'static str| (flavor != Flavor::Eboss).then_some(n);
    let upper = flavor == Flavor::Eboss;
    write_atomically(&path, |w| {
        let mut header = info.header();
        header.extend([
            Card::int("FIBERID", i64::from(t.fiber), "fiber number (1-indexed)"),
            Card::real("PLUG_RA", t.ra, "RA of the fiber (deg)"),
            Card::real("PLUG_DEC", t.dec, "DEC of the fiber (deg)"),
        ]);
        w.empty_primary(&header)?;
        let (first, end) = fiber.spec.good_range();
        let coadd = cased(tables::coadd(grid, &fiber.spec, first, end), upper);
        w.table(named("COADD"), &coadd, &[])?;
        let hdu2 = if flavor == Flavor::Legacy {
            "SPECOBJ"
        } else {
            "SPALL"
        };
        w.table(named(hdu2), &tables::spall(info, fiber), &[])?;
        let rows: Vec<&ZlineRow> = fiber.zlines.iter().collect();
        w.table(
            named("SPZLINE"),
            &cased(tables::zline(info, &rows), true),
            &[],
        )?;
        if with_exposures {
            let half = info.nfiber.div_ceil(2).max(1);
            let slot = (t.fiber as usize - 1) % half;
            let x0 = 20.0 + slot as f64 * (4050.0 / half as f64);
            for (a, (arm, letter)) in [(Arm::Blue, "B"), (Arm::Red, "R")].into_iter().enumerate() {
                let camera = format!("{letter}{}", t.spectrograph);
                for e in 0..NEXP {
                    let item = t.fiber as u64 * 16 + e as u64 * 2 + a as u64;
                    let mut r = rng(info.seed, info.index, Stream::Exposure, item);
                    let ex = observe_exposure(&t.model, sky_model, arm, x0, NEXP, &mut r);
                    let cards = [
                        Card::int(
                            "EXPOSURE",
                            i64::from(info.expids[e]),
                            "science exposure number",
                        ),
                        Card::int("SPECTROGRAPH", i64::from(t.spectrograph), ""),
                        Card::real("EXPTIME", 900.0, "exposure time (s)"),
                    ];
                    let columns = match flavor {
                        Flavor::Legacy => tables::legacy_exposure(ex),
                        _ => tables::exposure(ex),
                    };
                    w.table(Some(&info.exposure_name(&camera, e)), &columns, &cards)?;
                }
            }
        }
        Ok(())
    })
}
