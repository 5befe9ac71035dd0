//! A large synthetic spAll file shaped like DR17's (105 of its columns, the same names and forms):
//! rows for the fibers of the generated plates first, then as many rows of other plate-MJDs as
//! asked, written in packed chunks so that millions of rows never sit in memory at once.

use std::path::Path;

use anyhow::{ensure, Result};

use crate::fits::{ColData, Column, FitsWriter};
use crate::plate::{Config, PlateInfo};

/// Name and TFORM of every column, in the order of DR17's spAll.
pub const DR17_COLUMNS: &[(&str, &str)] = &[
    ("PROGRAMNAME", "27A"),
    ("CHUNK", "14A"),
    ("PLATEQUALITY", "4A"),
    ("PLATESN2", "E"),
    ("DEREDSN2", "E"),
    ("PRIMTARGET", "J"),
    ("SECTARGET", "J"),
    ("LAMBDA_EFF", "E"),
    ("BLUEFIBER", "J"),
    ("ZOFFSET", "E"),
    ("XFOCAL", "E"),
    ("YFOCAL", "E"),
    ("BOSS_TARGET1", "K"),
    ("BOSS_TARGET2", "K"),
    ("ANCILLARY_TARGET1", "K"),
    ("ANCILLARY_TARGET2", "K"),
    ("EBOSS_TARGET0", "K"),
    ("EBOSS_TARGET1", "K"),
    ("EBOSS_TARGET2", "K"),
    ("EBOSS_TARGET_ID", "K"),
    ("THING_ID_TARGETING", "K"),
    ("SPECPRIMARY", "B"),
    ("SPECBOSS", "B"),
    ("BOSS_SPECOBJ_ID", "J"),
    ("NSPECOBS", "I"),
    ("CALIBFLUX", "5E"),
    ("CALIBFLUX_IVAR", "5E"),
    ("PLATE", "J"),
    ("TILE", "J"),
    ("MJD", "J"),
    ("FIBERID", "J"),
    ("RUN2D", "7A"),
    ("RUN1D", "7A"),
    ("OBJTYPE", "16A"),
    ("PLUG_RA", "D"),
    ("PLUG_DEC", "D"),
    ("CLASS", "6A"),
    ("SUBCLASS", "21A"),
    ("Z", "E"),
    ("Z_ERR", "E"),
    ("RCHI2", "E"),
    ("DOF", "J"),
    ("RCHI2DIFF", "E"),
    ("TFILE", "24A"),
    ("TCOLUMN", "10J"),
    ("NPOLY", "J"),
    ("THETA", "10E"),
    ("VDISP", "E"),
    ("VDISP_ERR", "E"),
    ("VDISPZ", "E"),
    ("VDISPZ_ERR", "E"),
    ("VDISPCHI2", "E"),
    ("VDISPNPIX", "E"),
    ("VDISPDOF", "J"),
    ("WAVEMIN", "E"),
    ("WAVEMAX", "E"),
    ("WCOVERAGE", "E"),
    ("ZWARNING", "J"),
    ("SN_MEDIAN", "5E"),
    ("SN_MEDIAN_ALL", "E"),
    ("CHI68P", "E"),
    ("FRACNSIGMA", "10E"),
    ("FRACNSIGHI", "10E"),
    ("FRACNSIGLO", "10E"),
    ("SPECTROFLUX", "5E"),
    ("SPECTROFLUX_IVAR", "5E"),
    ("SPECTROSYNFLUX", "5E"),
    ("SPECTROSYNFLUX_IVAR", "5E"),
    ("SPECTROSKYFLUX", "5E"),
    ("ANYANDMASK", "J"),
    ("ANYORMASK", "J"),
    ("SPEC1_G", "E"),
    ("SPEC1_R", "E"),
    ("SPEC1_I", "E"),
    ("SPEC2_G", "E"),
    ("SPEC2_R", "E"),
    ("SPEC2_I", "E"),
    ("ELODIE_FILENAME", "16A"),
    ("ELODIE_OBJECT", "9A"),
    ("ELODIE_SPTYPE", "12A"),
    ("ELODIE_BV", "E"),
    ("ELODIE_TEFF", "E"),
    ("ELODIE_LOGG", "E"),
    ("ELODIE_FEH", "E"),
    ("ELODIE_Z", "E"),
    ("ELODIE_Z_ERR", "E"),
    ("ELODIE_Z_MODELERR", "E"),
    ("ELODIE_RCHI2", "E"),
    ("ELODIE_DOF", "J"),
    ("Z_NOQSO", "E"),
    ("Z_ERR_NOQSO", "E"),
    ("ZNUM_NOQSO", "J"),
    ("ZWARNING_NOQSO", "J"),
    ("CLASS_NOQSO", "6A"),
    ("SUBCLASS_NOQSO", "21A"),
    ("RCHI2DIFF_NOQSO", "E"),
    ("VDISP_LNL", "35E"),
    ("SPECOBJID", "K"),
    ("OBJID", "19A"),
    ("PARENTID", "19A"),
    ("RA", "D"),
    ("DEC", "D"),
    ("EXTINCTION", "5E"),
    ("PSFMAG", "5E"),
    ("THING_ID", "J"),
];

/// Rows packed per write.
const CHUNK_ROWS: usize = 32 * 1024;

/// Element size and count of a TFORM (`5E` → (4, 5); for `16A`, (1, 16)).
pub fn tform_shape(tform: &str) -> (char, usize, usize) {
    let digits: String = tform.chars().take_while(char::is_ascii_digit).collect();
    let code = tform[digits.len()..].chars().next().unwrap_or('A');
    let count = digits.parse().unwrap_or(1);
    let size = match code {
        'A' | 'B' | 'L' => 1,
        'I' => 2,
        'J' | 'E' => 4,
        _ => 8,
    };
    (code, size, count)
}

/// A deterministic pseudo-random number for (row, column): splitmix64.
pub fn hash(row: u64, col: u64) -> u64 {
    let mut z = row
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(col.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in [0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The plate-MJD and fiber of row `row` of the file: the generated plates first, then plates
/// 20000, 20001, … (MJD 56000 + i) that no store holds.
pub fn row_fiber(plates: &[(i32, i32)], fibers: usize, row: usize) -> (i32, i32, i32) {
    let p = row / fibers;
    let fiber = (row % fibers) as i32 + 1;
    match plates.get(p) {
        Some(&(plate, mjd)) => (plate, mjd, fiber),
        None => {
            let i = (p - plates.len()) as i32;
            (20000 + i, 56000 + i, fiber)
        }
    }
}

/// The class of a row (60% galaxies, 25% quasars, 15% stars).
pub fn row_class(row: u64) -> &'static str {
    match hash(row, 1_000_001) % 100 {
        0..60 => "GALAXY",
        60..85 => "QSO",
        _ => "STAR",
    }
}

/// The value of a numeric cell, by column name (the columns queries use get realistic values).
pub fn numeric(name: &str, row: u64, k: usize, col: u64, pmf: (i32, i32, i32)) -> f64 {
    let h = hash(row, col * 64 + k as u64);
    let u = unit(h);
    let class = row_class(row);
    match name {
        "PLATE" => pmf.0 as f64,
        "MJD" => pmf.1 as f64,
        "FIBERID" => pmf.2 as f64,
        "PLUG_RA" | "RA" => 360.0 * unit(hash(row, 7)),
        "PLUG_DEC" | "DEC" => (2.0 * unit(hash(row, 8)) - 1.0).asin().to_degrees(),
        "Z" => match class {
            "GALAXY" => 0.8 * u,
            "QSO" => 0.1 + 4.9 * u,
            _ => 0.001 * (u - 0.5),
        },
        "Z_ERR" => 1e-4 * (1.0 + u),
        "ZWARNING" => {
            if h.is_multiple_of(10) {
                4.0
            } else {
                0.0
            }
        }
        "SN_MEDIAN_ALL" => 20.0 * u,
        "SPECPRIMARY" | "SPECBOSS" => (!h.is_multiple_of(5)) as u8 as f64,
        "THING_ID" => row as f64,
        _ => match tform_shape(DR17_COLUMNS[col as usize].1).0 {
            'B' | 'L' => (h % 2) as f64,
            'I' => (h % 1000) as f64,
            'J' => (h % 100_000) as f64,
            _ => 100.0 * u,
        },
    }
}

/// The SDSS SPECOBJID of a fiber (plate, fiber, MJD and run2d bits), as the signed 64-bit integer
/// spAll stores.
pub fn specobjid(plate: i32, mjd: i32, fiber: i32) -> i64 {
    let (p, f, m) = (plate as u64, fiber as u64, (mjd - 50000).max(0) as u64);
    ((p << 50) | (f << 38) | (m << 24) | (26 << 10)) as i64
}

/// Appends the big-endian cells of row `row` to `out`.
fn pack_row(out: &mut Vec<u8>, row: usize, plates: &[(i32, i32)], fibers: usize) {
    let pmf = row_fiber(plates, fibers, row);
    let r = row as u64;
    for (c, (name, tform)) in DR17_COLUMNS.iter().enumerate() {
        let (code, _, count) = tform_shape(tform);
        if code == 'A' {
            let text = match *name {
                "CLASS" | "CLASS_NOQSO" => row_class(r).to_string(),
                "SUBCLASS" | "SUBCLASS_NOQSO" => String::new(),
                "PROGRAMNAME" => "boss".into(),
                "RUN2D" => "v5_13_2".into(),
                "OBJTYPE" => match row_class(r) {
                    "STAR" => "SPECTROPHOTO_STD".into(),
                    _ => "NA".into(),
                },
                _ => format!("{}", hash(r, c as u64) % 10_000_000_000),
            };
            let mut b = text.into_bytes();
            b.resize(count, b' ');
            out.extend_from_slice(&b);
            continue;
        }
        for k in 0..count {
            if *name == "SPECOBJID" {
                out.extend_from_slice(&specobjid(pmf.0, pmf.1, pmf.2).to_be_bytes());
                continue;
            }
            let v = numeric(name, r, k, c as u64, pmf);
            match code {
                'B' | 'L' => out.push(v as u8),
                'I' => out.extend_from_slice(&(v as i16).to_be_bytes()),
                'J' => out.extend_from_slice(&(v as i32).to_be_bytes()),
                'K' => out.extend_from_slice(
                    &(hash(r, c as u64 * 64 + k as u64) as i64 >> 4).to_be_bytes(),
                ),
                'E' => out.extend_from_slice(&(v as f32).to_be_bytes()),
                _ => out.extend_from_slice(&v.to_be_bytes()),
            }
        }
    }
}

/// Writes `<path>`: an spAll of `rows` rows (at least the fibers of the plates of `cfg`).
pub fn write(cfg: &Config, path: &Path, rows: usize) -> Result<u64> {
    let plates: Vec<(i32, i32)> = (0..cfg.plates)
        .map(|i| {
            let pm = PlateInfo::new(cfg, i).pm;
            (pm.plate, pm.mjd)
        })
        .collect();
    ensure!(
        rows >= plates.len() * cfg.fibers,
        "--spall-rows {rows} is fewer than the {} fibers of the plates",
        plates.len() * cfg.fibers
    );
    let columns: Vec<Column> = DR17_COLUMNS
        .iter()
        .map(|(name, tform)| Column {
            name: name.to_string(),
            tform: tform.to_string(),
            unit: None,
            data: ColData::U8(Vec::new()),
        })
        .collect();
    let tmp = path.with_extension("fits.tmp");
    let mut w = FitsWriter::create(&tmp)?;
    w.empty_primary(&[])?;
    w.create_table(Some("SPALL"), &columns, rows, &[])?;
    let mut buf = Vec::new();
    for first in (0..rows).step_by(CHUNK_ROWS) {
        buf.clear();
        for row in first..(first + CHUNK_ROWS).min(rows) {
            pack_row(&mut buf, row, &plates, cfg.fibers);
        }
        w.write_packed_rows("SPALL", first + 1, &buf)?;
    }
    w.close()?;
    std::fs::rename(&tmp, path)?;
    Ok(std::fs::metadata(path)?.len())
}
