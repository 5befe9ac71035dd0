//! A DESI coadd as a store group of the merged layout (docs/store-layout.md, "DESI"): rows in
//! TARGETID order, keyed by TARGET_ROW (the row, from 1); a `coadds` index block (TARGET_ROW,
//! TARGETID, PIX0, NPIX over the three arms); one block per arm (`b`, `r`, `z`) with its shared
//! wavelength grid and the per-target FLUX, IVAR, MASK and RESOLUTION; the tables FIBERMAP,
//! EXP_FIBERMAP and SCORES of the coadd and REDSHIFTS and TSNR2 of its redrock file, each with a
//! TARGET_ROW column first.

use std::collections::HashMap;
use std::path::Path;

use model::desi::{TARGETID, TARGET_ROW};
use model::layout::{self, sdss5, PlateTable};
use model::{DesiGroup, GroupId};
use store::attrs::AttrValue;
use store::merged::{Array, Block, MergedGroup};
use store::Table;

use super::decode::{ArmData, CoaddFile, RedrockFile};
use crate::writer::HEADER_SOURCE_ATTR;

fn with_attrs(mut a: Array, attrs: Vec<(String, AttrValue)>) -> Array {
    a.attrs = attrs;
    a
}

/// The table with a TARGET_ROW column first, its rows in TARGET_ROW order (stable); Err(TARGETID)
/// for a row whose target the coadd does not have.
pub fn keyed(t: &Table, row_of: &HashMap<i64, i32>) -> Result<Table, i64> {
    let ids = t.key_values(TARGETID).ok_or(0)?;
    let rows: Vec<i32> = ids
        .iter()
        .map(|id| row_of.get(id).copied().ok_or(*id))
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&r| rows[r]);
    let keys: Vec<i32> = order.iter().map(|&r| rows[r]).collect();
    Ok(t.reordered_with_key(TARGET_ROW, &order, &keys))
}

/// The block of one arm (rows already in TARGETID order): its key, shared wavelength grid and
/// per-target arrays, whose bytes move into the block.
fn arm_block(arm: ArmData, rows: u64, key: Array) -> Block {
    let unit = |q: &str| -> Vec<(String, AttrValue)> {
        arm.units
            .iter()
            .filter(|(k, _)| *k == q)
            .map(|(_, u)| ("BUNIT".to_string(), AttrValue::Str(u.clone())))
            .collect()
    };
    let mut wave_attrs = unit("WAVELENGTH");
    wave_attrs.push((sdss5::SHARED_ATTR.to_string(), AttrValue::Bool(true)));
    let (flux_attrs, ivar_attrs) = (unit("FLUX"), unit("IVAR"));
    let p = arm.npix() as u64;
    let ndiag = arm.ndiag;
    Block {
        path: arm.name.to_string(),
        attrs: vec![("NDIAG".into(), AttrValue::Int(ndiag as i64))],
        arrays: vec![
            key,
            with_attrs(Array::of("WAVELENGTH", vec![p], &arm.wave), wave_attrs),
            with_attrs(
                Array::of_bytes::<f32>("FLUX", vec![rows, p], arm.flux),
                flux_attrs,
            ),
            with_attrs(
                Array::of_bytes::<f32>("IVAR", vec![rows, p], arm.ivar),
                ivar_attrs,
            ),
            Array::of_bytes::<i32>("MASK", vec![rows, p], arm.mask),
            Array::of_bytes::<f32>("RESOLUTION", vec![rows, ndiag as u64, p], arm.resolution),
        ],
    }
}

/// The store group of a coadd file (no redshifts yet); the file's arrays move into it.
pub fn coadd_group(group: DesiGroup, c: CoaddFile) -> MergedGroup {
    let n = c.targetids.len();
    let target_row: Vec<i32> = (1..=n as i32).collect();
    let sorted_ids: Vec<i64> = c.order.iter().map(|&r| c.targetids[r]).collect();
    let row_of: HashMap<i64, i32> = sorted_ids.iter().copied().zip(1..).collect();
    let total: usize = c.arms.iter().map(|a| a.npix()).sum();
    let rows = n as u64;
    let key = || Array::of(TARGET_ROW, vec![rows], &target_row);
    let mut blocks = vec![Block {
        path: layout::COADDS.to_string(),
        attrs: Vec::new(),
        arrays: vec![
            key(),
            Array::of(TARGETID, vec![rows], &sorted_ids),
            Array::of(layout::PIX0, vec![rows], &vec![0i32; n]),
            Array::of(layout::NPIX, vec![rows], &vec![total as i32; n]),
        ],
    }];
    blocks.extend(c.arms.into_iter().map(|arm| arm_block(arm, rows, key())));
    let tables = c
        .tables
        .iter()
        .filter_map(|(t, table)| Some((t.name().to_string(), keyed(table, &row_of).ok()?)))
        .collect();
    let mut attrs = c.header.clone();
    attrs.retain(|(k, _)| k != HEADER_SOURCE_ATTR && k != sdss5::ROW_KEY_ATTR);
    attrs.push((HEADER_SOURCE_ATTR.into(), AttrValue::Str("coadd".into())));
    MergedGroup {
        group: GroupId::Desi(group),
        row_key: TARGET_ROW.to_string(),
        attrs,
        blocks,
        tables,
    }
}

/// The TARGETIDs of a DESI store group, in row order.
pub fn targetids(g: &MergedGroup) -> Vec<i64> {
    g.block(layout::COADDS)
        .and_then(|b| b.array(TARGETID))
        .and_then(|a| a.values::<i64>())
        .unwrap_or_default()
}

/// Whether two groups hold the same spectra and coadd tables (same values; headers and
/// attributes may differ).
pub fn same_coadd(a: &MergedGroup, b: &MergedGroup) -> bool {
    type ArrayView<'a> = (&'a str, &'a str, &'a [u64], &'a [u8]);
    fn arrays(g: &MergedGroup) -> Vec<ArrayView<'_>> {
        let mut v: Vec<ArrayView<'_>> = g
            .blocks
            .iter()
            .flat_map(|blk| {
                blk.arrays.iter().map(move |x| {
                    (
                        blk.path.as_str(),
                        x.name.as_str(),
                        x.shape.as_slice(),
                        x.bytes.as_slice(),
                    )
                })
            })
            .collect();
        v.sort_unstable();
        v
    }
    fn tables(g: &MergedGroup) -> Vec<(&str, &[u8])> {
        let mut v: Vec<(&str, &[u8])> = g
            .tables
            .iter()
            .filter(|(n, _)| PlateTable::DESI_COADD.iter().any(|t| t.name() == n))
            .map(|(n, t)| (n.as_str(), t.bytes()))
            .collect();
        v.sort_unstable();
        v
    }
    arrays(a) == arrays(b) && tables(a) == tables(b)
}

/// The redrock file's tables keyed for the group `g`: its REDSHIFTS must hold exactly the
/// coadd's targets.
pub fn redrock_tables(
    path: &Path,
    g: &MergedGroup,
    r: &RedrockFile,
) -> Result<Vec<(String, Table)>, String> {
    let ids = targetids(g);
    let row_of: HashMap<i64, i32> = ids.iter().copied().zip(1..).collect();
    let mut out = Vec::new();
    for (t, table) in &r.tables {
        let keyed = keyed(table, &row_of).map_err(|id| {
            format!(
                "HDU {}: TARGETID {id} is not a target of the coadd {}",
                t.extname(),
                g.group.store_file_name()
            )
        })?;
        if *t == PlateTable::Redshifts && keyed.num_rows() != ids.len() {
            return Err(format!(
                "HDU REDSHIFTS has {} targets, the coadd {} (in {}) has {}",
                keyed.num_rows(),
                g.group,
                path.parent()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                ids.len()
            ));
        }
        out.push((t.name().to_string(), keyed));
    }
    Ok(out)
}
