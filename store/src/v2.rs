//! The fiber-merged layout (H5Boss format v2) of one plate-MJD, in memory and in HDF5:
//! `coadds/<FIELD>` 2-D arrays (rows = fibers sorted by FIBERID, columns = the plate-MJD's
//! log-lambda grid) with `coadds/FIBERID`, `PIX0`, `NPIX`; and per exposure and camera
//! `exposures/<EXPID>/<b|r>/<FIELD>` rows padded to the longest, with `FIBERID`, `PIX0` (0), `NPIX`,
//! `SPECTROGRAPH` and `EXTNAME`. Padding: 0, masks [`layout::NODATA`], and in coadds WAVE the grid's
//! wavelength. Real pixels are bit-identical to v1.

use std::collections::BTreeMap;

use hdf5::types::TypeDescriptor;
use hdf5::{Datatype, Group, H5Type};
use model::layout::{self, Arm};

use crate::attrs::{read_attrs, AttrValue};
use crate::merged::{Array, Block};
use crate::records::{wave_from_loglam, COADD_FIELDS};
use crate::{CoaddRecord, ExposureColumns, ExposureField, FieldSet};

/// Step of the log10 λ grid every SDSS/BOSS coadd sits on.
pub const COEFF1: f64 = 1e-4;
/// How far (in log10 λ) a pixel may be from its grid point: 2% of a pixel, far above float32
/// rounding, far below any real shift.
const GRID_TOLERANCE: f64 = 2e-6;

/// A spectrum that is not on the 1e-4 log-lambda grid (the v2 layout cannot hold it exactly).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GridError {
    #[error("pixel {pixel} (log10 λ {loglam:.7}) is not on the 1e-4 log-lambda grid (nearest grid point {nearest:.7})")]
    OffGrid {
        pixel: usize,
        loglam: f64,
        nearest: f64,
    },
    #[error("COEFF1 is {0}, not 1e-4")]
    Step(f64),
    #[error("an empty spectrum has no place on the grid")]
    Empty,
    #[error("the exposures of one camera-exposure have different fields")]
    Fields,
}

/// The grid index (log10 λ = index × 1e-4) of log10 λ `loglam`, if it is on the grid.
pub fn grid_index_of(loglam: f64) -> Option<i64> {
    let i = (loglam / COEFF1).round();
    ((loglam - i * COEFF1).abs() <= GRID_TOLERANCE).then_some(i as i64)
}

/// The wavelength (Å) of grid index `i`, as v1 stores it.
pub fn grid_wave(i: i64) -> f32 {
    wave_from_loglam(i as f64 * COEFF1)
}

/// The grid index of the first pixel of a spectrum given its WAVE values (Å), after checking that
/// every pixel sits on consecutive grid points.
pub fn grid_index(wave: &[f32]) -> Result<i64, GridError> {
    let loglam = |k: usize| (wave[k] as f64).log10();
    let first = *wave.first().ok_or(GridError::Empty)?;
    let _ = first;
    let i0 = (loglam(0) / COEFF1).round() as i64;
    for k in 0..wave.len() {
        let expected = (i0 + k as i64) as f64 * COEFF1;
        if (loglam(k) - expected).abs() > GRID_TOLERANCE {
            return Err(GridError::OffGrid {
                pixel: k,
                loglam: loglam(k),
                nearest: expected,
            });
        }
    }
    Ok(i0)
}

/// The coadds of one plate-MJD on its grid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoaddArrays {
    /// Grid index of column 0.
    pub index0: i64,
    /// Number of columns.
    pub width: usize,
    pub fiberid: Vec<i32>,
    pub pix0: Vec<i32>,
    pub npix: Vec<i32>,
    /// One rows × width array per field, in [`COADD_FIELDS`] order, as raw 4-byte values.
    pub fields: Vec<Vec<u32>>,
}

/// The padding value of a per-pixel field at grid index `i` — the one padding rule of every
/// layout with rows on a grid (v2, the merged layout, and query outputs converted between
/// layouts): WAVE the grid's wavelength, integer fields (masks) NODATA, the others 0. `i` matters
/// only for WAVE.
pub fn pad_value(name: &str, int: bool, i: i64) -> u32 {
    if name == "WAVE" {
        grid_wave(i).to_bits()
    } else if int {
        layout::NODATA as u32
    } else {
        0
    }
}

/// The value an exposure row holds past its pixels: the mask's NODATA for integer fields,
/// 0 for every other (exposures have no grid, so WAVE is padded with 0 too).
pub fn exposure_pad_value(int: bool) -> u32 {
    if int {
        layout::NODATA as u32
    } else {
        0
    }
}

fn coadd_pad(field: usize, i: i64) -> u32 {
    let (name, int) = COADD_FIELDS[field];
    pad_value(name, int, i)
}

/// The attributes of a group of rows on the grid whose column 0 is grid index `index0`.
pub fn grid_attrs(index0: i64) -> Vec<(String, AttrValue)> {
    vec![
        (
            layout::LOGLAM0_ATTR.to_string(),
            AttrValue::Float(index0 as f64 * COEFF1),
        ),
        (layout::COEFF1_ATTR.to_string(), AttrValue::Float(COEFF1)),
    ]
}

/// The grid index of column 0 of a group of rows, from its attributes (the LOGLAM0 of
/// [`grid_attrs`]).
pub fn grid_index0(attrs: &[(String, AttrValue)]) -> Option<i64> {
    attrs.iter().find_map(|(k, v)| match (k.as_str(), v) {
        (layout::LOGLAM0_ATTR, AttrValue::Float(l)) => Some((l / COEFF1).round() as i64),
        _ => None,
    })
}

/// Fixed-length strings packed as HDF5 stores them (each as wide as the longest, at least 1,
/// NUL padded): the width and the bytes.
pub fn pack_strings(values: &[String]) -> (usize, Vec<u8>) {
    let w = values.iter().map(String::len).max().unwrap_or(0).max(1);
    let mut bytes = vec![0u8; w * values.len()];
    for (i, v) in values.iter().enumerate() {
        bytes[i * w..i * w + v.len()].copy_from_slice(v.as_bytes());
    }
    (w, bytes)
}

/// The inverse of [`pack_strings`].
pub fn unpack_strings(bytes: &[u8], width: usize) -> Vec<String> {
    bytes
        .chunks(width.max(1))
        .map(|c| {
            String::from_utf8_lossy(c)
                .trim_end_matches('\0')
                .to_string()
        })
        .collect()
}

impl CoaddArrays {
    pub fn rows(&self) -> usize {
        self.fiberid.len()
    }

    /// Coadds of fibers (any order; rows are sorted by FIBERID) placed on their common grid.
    pub fn from_rows(rows: &[(i32, &[CoaddRecord])]) -> Result<Self, (i32, GridError)> {
        let mut placed: Vec<(i32, i64, &[CoaddRecord])> = Vec::with_capacity(rows.len());
        for &(fiber, recs) in rows {
            let wave: Vec<f32> = recs.iter().map(|r| r.wave).collect();
            let i0 = grid_index(&wave).map_err(|e| (fiber, e))?;
            placed.push((fiber, i0, recs));
        }
        placed.sort_by_key(|p| p.0);
        let index0 = placed.iter().map(|p| p.1).min().unwrap_or(0);
        let end = placed
            .iter()
            .map(|p| p.1 + p.2.len() as i64)
            .max()
            .unwrap_or(index0);
        let width = (end - index0) as usize;
        let mut a = Self {
            index0,
            width,
            fiberid: Vec::with_capacity(placed.len()),
            pix0: Vec::with_capacity(placed.len()),
            npix: Vec::with_capacity(placed.len()),
            fields: (0..8)
                .map(|f| {
                    let mut v = Vec::with_capacity(placed.len() * width);
                    for _ in 0..placed.len() {
                        v.extend((0..width as i64).map(|j| coadd_pad(f, index0 + j)));
                    }
                    v
                })
                .collect(),
        };
        for (row, (fiber, i0, recs)) in placed.iter().enumerate() {
            let p0 = (i0 - index0) as usize;
            a.fiberid.push(*fiber);
            a.pix0.push(p0 as i32);
            a.npix.push(recs.len() as i32);
            let at = row * width + p0;
            for (k, r) in recs.iter().enumerate() {
                for (f, bits) in r.to_bits().into_iter().enumerate() {
                    a.fields[f][at + k] = bits;
                }
            }
        }
        Ok(a)
    }

    /// Coadds straight from an spPlate's images, taken as they are (no copy when the rows are
    /// already sorted): `images[f]` is the rows × width image of coadd field `f` as raw 4-byte
    /// values (WAVE is made from the grid), `fibers[row]` the fiber of each image row.
    pub fn from_images(
        coeff0: f64,
        coeff1: f64,
        width: usize,
        fibers: &[i32],
        images: [Vec<u32>; 8],
    ) -> Result<Self, GridError> {
        if (coeff1 - COEFF1).abs() > 1e-12 {
            return Err(GridError::Step(coeff1));
        }
        let index0 = grid_index_of(coeff0).ok_or(GridError::OffGrid {
            pixel: 0,
            loglam: coeff0,
            nearest: (coeff0 / COEFF1).round() * COEFF1,
        })?;
        let mut order: Vec<usize> = (0..fibers.len()).collect();
        order.sort_by_key(|&r| fibers[r]);
        let sorted = order.iter().enumerate().all(|(i, &r)| i == r);
        let wave_row: Vec<u32> = (0..width as i64)
            .map(|j| grid_wave(index0 + j).to_bits())
            .collect();
        let fields = images
            .into_iter()
            .enumerate()
            .map(|(f, image)| {
                if f == 0 {
                    return wave_row.repeat(fibers.len());
                }
                if sorted {
                    return image;
                }
                let mut v = Vec::with_capacity(image.len());
                for &r in &order {
                    v.extend_from_slice(&image[r * width..(r + 1) * width]);
                }
                v
            })
            .collect();
        Ok(Self {
            index0,
            width,
            fiberid: order.iter().map(|&r| fibers[r]).collect(),
            pix0: vec![0; fibers.len()],
            npix: vec![width as i32; fibers.len()],
            fields,
        })
    }

    /// The real pixels of row `r` as v1 records.
    pub fn row(&self, r: usize) -> Vec<CoaddRecord> {
        let at = r * self.width + self.pix0[r] as usize;
        (0..self.npix[r] as usize)
            .map(|k| {
                let mut b = [0u32; 8];
                for (f, v) in b.iter_mut().enumerate() {
                    *v = self.fields[f][at + k];
                }
                CoaddRecord::from_bits(b)
            })
            .collect()
    }

    /// Every row as (fiber, records).
    pub fn all_rows(&self) -> Vec<(i32, Vec<CoaddRecord>)> {
        (0..self.rows())
            .map(|r| (self.fiberid[r], self.row(r)))
            .collect()
    }
}

/// The rows of one exposure and camera (one row per fiber that has it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExposureArrays {
    pub fields: FieldSet,
    pub width: usize,
    pub fiberid: Vec<i32>,
    pub npix: Vec<i32>,
    pub spectrograph: Vec<i64>,
    pub extname: Vec<String>,
    /// One rows × width array per field present, in store order, as raw 4-byte values.
    pub columns: Vec<Vec<u32>>,
}

/// One fiber's exposure for [`ExposureArrays::from_rows`]: fiber, spectrograph, HDU name, pixels.
pub type ExposureRow<'a> = (i32, i64, &'a str, &'a ExposureColumns);

impl ExposureArrays {
    pub fn rows(&self) -> usize {
        self.fiberid.len()
    }

    /// Rows (any order; sorted by FIBERID) padded to the longest.
    pub fn from_rows(rows: &[ExposureRow]) -> Result<Self, GridError> {
        let mut rows: Vec<&ExposureRow> = rows.iter().collect();
        rows.sort_by_key(|r| r.0);
        let fields = rows.first().map_or(FieldSet::default(), |r| r.3.fields);
        if rows.iter().any(|r| r.3.fields != fields) {
            return Err(GridError::Fields);
        }
        let width = rows.iter().map(|r| r.3.len()).max().unwrap_or(0);
        let pad: Vec<u32> = fields
            .fields()
            .map(|f| exposure_pad_value(f.is_int()))
            .collect();
        let mut columns: Vec<Vec<u32>> = pad.iter().map(|&p| vec![p; rows.len() * width]).collect();
        for (row, r) in rows.iter().enumerate() {
            for (c, src) in r.3.columns.iter().enumerate() {
                columns[c][row * width..row * width + src.len()].copy_from_slice(src);
            }
        }
        Ok(Self {
            fields,
            width,
            fiberid: rows.iter().map(|r| r.0).collect(),
            npix: rows.iter().map(|r| r.3.len() as i32).collect(),
            spectrograph: rows.iter().map(|r| r.1).collect(),
            extname: rows.iter().map(|r| r.2.to_string()).collect(),
            columns,
        })
    }

    /// The real pixels of row `r`.
    pub fn row(&self, r: usize) -> ExposureColumns {
        let n = self.npix[r] as usize;
        ExposureColumns {
            fields: self.fields,
            columns: self
                .columns
                .iter()
                .map(|c| c[r * self.width..r * self.width + n].to_vec())
                .collect(),
        }
    }
}

/// Everything spectral of one plate-MJD in the v2 layout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlateArrays {
    pub coadds: CoaddArrays,
    pub exposures: BTreeMap<(u32, Arm), ExposureArrays>,
}

fn elem_of(int: bool) -> TypeDescriptor {
    if int {
        i32::type_descriptor()
    } else {
        f32::type_descriptor()
    }
}

/// A v2 array of 4-byte values: rows × width, or 1-D.
fn array4(name: &str, int: bool, rows: usize, width: Option<usize>, values: &[u32]) -> Array {
    let shape = match width {
        Some(w) => vec![rows as u64, w as u64],
        None => vec![rows as u64],
    };
    Array {
        name: name.to_string(),
        dtype: elem_of(int),
        shape,
        bytes: bytemuck::cast_slice(values).to_vec(),
        attrs: Vec::new(),
    }
}

/// The groups and arrays of a v2 plate-MJD group under it (`coadds`, `exposures/<EXPID>/<b|r>`),
/// for [`crate::merged::write_as`]: the one way store files and query outputs are created.
pub fn blocks(
    coadds: &CoaddArrays,
    exposures: &BTreeMap<(u32, Arm), ExposureArrays>,
) -> Vec<Block> {
    let rows = coadds.rows();
    let mut arrays: Vec<Array> = COADD_FIELDS
        .iter()
        .enumerate()
        .map(|(f, (name, int))| array4(name, *int, rows, Some(coadds.width), &coadds.fields[f]))
        .collect();
    for (name, values) in [
        (layout::FIBERID, &coadds.fiberid),
        (layout::PIX0, &coadds.pix0),
        (layout::NPIX, &coadds.npix),
    ] {
        arrays.push(array4(name, true, rows, None, bytemuck::cast_slice(values)));
    }
    let mut out = vec![Block {
        path: layout::COADDS.to_string(),
        attrs: grid_attrs(coadds.index0),
        arrays,
    }];
    if exposures.is_empty() {
        return out;
    }
    out.push(Block {
        path: layout::EXPOSURES.to_string(),
        ..Block::default()
    });
    let mut last = None;
    for ((expid, arm), e) in exposures {
        if last != Some(*expid) {
            out.push(Block {
                path: format!("{}/{expid}", layout::EXPOSURES),
                ..Block::default()
            });
            last = Some(*expid);
        }
        let rows = e.rows();
        let mut arrays: Vec<Array> = e
            .fields
            .fields()
            .zip(&e.columns)
            .map(|(f, c)| array4(f.name(), f.is_int(), rows, Some(e.width), c))
            .collect();
        arrays.push(array4(
            layout::FIBERID,
            true,
            rows,
            None,
            bytemuck::cast_slice(&e.fiberid),
        ));
        arrays.push(array4(layout::PIX0, true, rows, None, &vec![0; rows]));
        arrays.push(array4(
            layout::NPIX,
            true,
            rows,
            None,
            bytemuck::cast_slice(&e.npix),
        ));
        arrays.push(Array::of::<i64>(
            layout::SPECTROGRAPH_ATTR,
            vec![rows as u64],
            &e.spectrograph,
        ));
        let (n, names) = pack_strings(&e.extname);
        arrays.push(Array {
            name: layout::EXTNAME_ATTR.to_string(),
            dtype: TypeDescriptor::FixedAscii(n),
            shape: vec![rows as u64],
            bytes: names,
            attrs: Vec::new(),
        });
        out.push(Block {
            path: layout::exposure_rows_group(*expid, *arm),
            attrs: Vec::new(),
            arrays,
        });
    }
    out
}

fn read_u32s(ds: &hdf5::Dataset, int: bool) -> hdf5::Result<Vec<u32>> {
    let bytes = crate::raw::read_all(
        ds,
        &Datatype::from_descriptor(&elem_of(int))?,
        ds.size() * 4,
    )?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes(c.try_into().expect("4 bytes")))
        .collect())
}

fn read_i32s(g: &Group, name: &str) -> hdf5::Result<Vec<i32>> {
    Ok(read_u32s(&g.dataset(name)?, true)?
        .into_iter()
        .map(|v| v as i32)
        .collect())
}

/// The FIBERID and NPIX arrays of a v2 group (cheap: no pixels read).
pub fn read_index(g: &Group) -> hdf5::Result<(Vec<i32>, Vec<i32>)> {
    Ok((read_i32s(g, layout::FIBERID)?, read_i32s(g, layout::NPIX)?))
}

/// The fibers of each exposure group of a plate-MJD group (cheap: no pixels read).
pub fn exposure_fibers(plate: &Group) -> hdf5::Result<BTreeMap<(u32, Arm), Vec<i32>>> {
    let mut out = BTreeMap::new();
    if !plate.link_exists(layout::EXPOSURES) {
        return Ok(out);
    }
    let top = plate.group(layout::EXPOSURES)?;
    for name in top.member_names()? {
        let Ok(expid) = name.parse::<u32>() else {
            continue;
        };
        let eg = top.group(&name)?;
        for arm in [Arm::Blue, Arm::Red] {
            if eg.link_exists(arm.name()) {
                out.insert(
                    (expid, arm),
                    read_i32s(&eg.group(arm.name())?, layout::FIBERID)?,
                );
            }
        }
    }
    Ok(out)
}

/// Reads the coadds group of a plate-MJD group (None when there is none).
pub fn read_coadds(plate: &Group) -> hdf5::Result<Option<CoaddArrays>> {
    if !plate.link_exists(layout::COADDS) {
        return Ok(None);
    }
    let g = plate.group(layout::COADDS)?;
    let fiberid = read_i32s(&g, layout::FIBERID)?;
    let flux = g.dataset("FLUX")?;
    let shape = flux.shape();
    let width = shape.get(1).copied().unwrap_or(0);
    let index0 = grid_index0(&read_attrs(&g)?)
        .ok_or_else(|| hdf5::Error::from("coadds group without LOGLAM0"))?;
    let fields = COADD_FIELDS
        .iter()
        .map(|(name, int)| read_u32s(&g.dataset(name)?, *int))
        .collect::<hdf5::Result<Vec<_>>>()?;
    Ok(Some(CoaddArrays {
        index0,
        width,
        pix0: read_i32s(&g, layout::PIX0)?,
        npix: read_i32s(&g, layout::NPIX)?,
        fiberid,
        fields,
    }))
}

/// Reads the exposure groups of a plate-MJD group.
pub fn read_exposures(plate: &Group) -> hdf5::Result<BTreeMap<(u32, Arm), ExposureArrays>> {
    let mut out = BTreeMap::new();
    if !plate.link_exists(layout::EXPOSURES) {
        return Ok(out);
    }
    let top = plate.group(layout::EXPOSURES)?;
    for name in top.member_names()? {
        let Ok(expid) = name.parse::<u32>() else {
            continue;
        };
        let eg = top.group(&name)?;
        for arm in [Arm::Blue, Arm::Red] {
            if !eg.link_exists(arm.name()) {
                continue;
            }
            let g = eg.group(arm.name())?;
            let members = g.member_names()?;
            let mut fields = FieldSet::default();
            let mut columns = Vec::new();
            for f in ExposureField::ALL {
                if members.iter().any(|m| m == f.name()) {
                    fields = fields.with(f);
                    columns.push(read_u32s(&g.dataset(f.name())?, f.is_int())?);
                }
            }
            let sp = g.dataset(layout::SPECTROGRAPH_ATTR)?;
            let spectrograph: Vec<i64> = sp.read_raw::<i64>()?;
            let names = g.dataset(layout::EXTNAME_ATTR)?;
            let TypeDescriptor::FixedAscii(n) = names.dtype()?.to_descriptor()? else {
                return Err("EXTNAME is not a fixed-length string array".into());
            };
            let raw = crate::raw::read_all(
                &names,
                &Datatype::from_descriptor(&TypeDescriptor::FixedAscii(n))?,
                names.size() * n,
            )?;
            let extname = unpack_strings(&raw, n);
            let width = g.dataset(layout::FIBERID)?.size();
            let width = if width == 0 {
                0
            } else {
                columns.first().map_or(0, |c| c.len() / width)
            };
            out.insert(
                (expid, arm),
                ExposureArrays {
                    fields,
                    width,
                    fiberid: read_i32s(&g, layout::FIBERID)?,
                    npix: read_i32s(&g, layout::NPIX)?,
                    spectrograph,
                    extname,
                    columns,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spectrum(i0: i64, n: usize, seed: f32) -> Vec<CoaddRecord> {
        (0..n)
            .map(|k| CoaddRecord {
                wave: grid_wave(i0 + k as i64),
                flux: seed + k as f32,
                ivar: 1.0,
                and_mask: k as i32,
                or_mask: 7,
                wavedisp: 1.1,
                sky: 2.0,
                model: 3.0,
            })
            .collect()
    }

    #[test]
    fn rows_sit_at_their_grid_offset_with_documented_padding() {
        let a = spectrum(35528, 10, 1.0);
        let b = spectrum(35530, 12, 100.0);
        let arr = CoaddArrays::from_rows(&[(7, &b), (3, &a)]).unwrap();
        assert_eq!(arr.fiberid, [3, 7]);
        assert_eq!((arr.index0, arr.width), (35528, 14));
        assert_eq!(arr.pix0, [0, 2]);
        assert_eq!(arr.npix, [10, 12]);
        assert_eq!(arr.row(0), a);
        assert_eq!(arr.row(1), b);
        // Row 1 pixel 0 is padding: flux 0, masks NODATA, wave on the grid.
        assert_eq!(arr.fields[1][14], 0);
        assert_eq!(arr.fields[3][14] as i32, layout::NODATA);
        assert_eq!(f32::from_bits(arr.fields[0][14]), grid_wave(35528));
        let off = spectrum(35528, 3, 0.0)
            .into_iter()
            .map(|mut r| {
                r.wave *= 1.0001;
                r
            })
            .collect::<Vec<_>>();
        assert!(matches!(
            CoaddArrays::from_rows(&[(1, &off)]),
            Err((1, GridError::OffGrid { pixel: 0, .. }))
        ));
    }

    #[test]
    fn arrays_round_trip_through_hdf5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.h5");
        let a = spectrum(35528, 10, 1.0);
        let coadds = CoaddArrays::from_rows(&[(1, &a), (2, &spectrum(35529, 5, 9.0))]).unwrap();
        let legacy = FieldSet::ALL.0 & !(1 << ExposureField::X as u8);
        let cols = ExposureColumns {
            fields: FieldSet(legacy),
            columns: (0..7).map(|f| vec![f, 10 + f, 20 + f]).collect(),
        };
        let short = ExposureColumns {
            fields: FieldSet(legacy),
            columns: (0..7).map(|f| vec![f]).collect(),
        };
        let e = ExposureArrays::from_rows(&[
            (2, 1, "B1-00000001", &cols),
            (1, 1, "B1-00000001", &short),
        ])
        .unwrap();
        assert_eq!(e.fiberid, [1, 2]);
        assert_eq!(e.row(0), short);
        let mut exposures = BTreeMap::new();
        exposures.insert((1u32, Arm::Blue), e);
        let pm = model::PlateMjd {
            plate: 3655,
            mjd: 55240,
        };
        let group = crate::merged::MergedGroup {
            group: model::GroupId::Plate(pm),
            row_key: String::new(),
            attrs: Vec::new(),
            blocks: blocks(&coadds, &exposures),
            tables: Vec::new(),
        };
        crate::merged::write_as(&path, "test", layout::Layout::V2.format(), &group).unwrap();
        let f = hdf5::File::open(&path).unwrap();
        assert_eq!(crate::reader::layout_of(&f), Some(layout::Layout::V2));
        let g = f.group("3655/55240").unwrap();
        assert_eq!(read_coadds(&g).unwrap().unwrap(), coadds);
        assert_eq!(read_exposures(&g).unwrap(), exposures);
    }
}
