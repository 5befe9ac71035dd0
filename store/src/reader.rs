//! Reading the spectra of one store file in either layout: which fibers it has (with their pixel
//! and exposure counts) and their coadds as v1 records.

use std::collections::BTreeMap;

use model::layout::{self, Layout};
use model::PlateMjd;

use crate::attrs::read_str_attr;
use crate::v2;
use crate::CoaddRecord;

/// The layout of an open store file (None for a file that is not one of ours).
pub fn layout_of(file: &hdf5::File) -> Option<Layout> {
    read_str_attr(file, layout::FORMAT_ATTR).and_then(|f| Layout::from_format(&f))
}

/// One fiber of a store file: its coadd's pixel count and its number of exposures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FiberEntry {
    pub fiber: i32,
    pub npix: usize,
    pub nexp: usize,
}

/// The fibers of the plate-MJD `pm` in a store file, sorted.
pub fn inventory(file: &hdf5::File, pm: PlateMjd) -> hdf5::Result<Vec<FiberEntry>> {
    let group = file.group(&layout::plate_mjd_group(pm))?;
    match layout_of(file) {
        Some(Layout::V2) => {
            if !group.link_exists(layout::COADDS) {
                return Ok(Vec::new());
            }
            let (fiberid, npix) = v2::read_index(&group.group(layout::COADDS)?)?;
            let mut nexp: BTreeMap<i32, std::collections::BTreeSet<u32>> = BTreeMap::new();
            for ((expid, _), fibers) in v2::exposure_fibers(&group)? {
                for f in fibers {
                    nexp.entry(f).or_default().insert(expid);
                }
            }
            Ok(fiberid
                .iter()
                .zip(&npix)
                .map(|(&fiber, &n)| FiberEntry {
                    fiber,
                    npix: n as usize,
                    nexp: nexp.get(&fiber).map_or(0, |s| s.len()),
                })
                .collect())
        }
        Some(Layout::V1) => {
            let mut fibers: Vec<i32> = group
                .member_names()?
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect();
            fibers.sort_unstable();
            let mut out = Vec::with_capacity(fibers.len());
            for fiber in fibers {
                // Absent is "no spectrum of this fiber"; present but unreadable is an error of the
                // file, never a smaller answer.
                let fiber_group = group.group(&fiber.to_string())?;
                if !fiber_group.link_exists(layout::COADD) {
                    continue;
                }
                let coadd = fiber_group.dataset(layout::COADD)?;
                let nexp = if fiber_group.link_exists(layout::EXPOSURES) {
                    fiber_group.group(layout::EXPOSURES)?.member_names()?.len()
                } else {
                    0
                };
                out.push(FiberEntry {
                    fiber,
                    npix: coadd.size(),
                    nexp,
                });
            }
            Ok(out)
        }
        None => Err(format!(
            "the file has no readable {} attribute naming its layout",
            layout::FORMAT_ATTR
        )
        .into()),
    }
}

/// The coadds of these fibers (sorted) of the plate-MJD `pm`, as v1 records, in the given order.
pub fn coadds(
    file: &hdf5::File,
    pm: PlateMjd,
    fibers: &[i32],
) -> hdf5::Result<Vec<Vec<CoaddRecord>>> {
    match layout_of(file) {
        Some(Layout::V2) => {
            let group = file.group(&layout::plate_mjd_group(pm))?;
            let c = v2::read_coadds(&group)?.unwrap_or_default();
            let rows: BTreeMap<i32, usize> =
                c.fiberid.iter().enumerate().map(|(r, &f)| (f, r)).collect();
            fibers
                .iter()
                .map(|f| {
                    rows.get(f).map(|&r| c.row(r)).ok_or_else(|| {
                        format!("fiber {f} is not in {}", layout::coadds_group(pm)).into()
                    })
                })
                .collect()
        }
        _ => fibers
            .iter()
            .map(|&f| {
                file.dataset(&layout::coadd_path(pm, f))?
                    .read_raw::<CoaddRecord>()
            })
            .collect(),
    }
}
