//! Recognising DESI files — coadd and redrock files of HEALPix pixels and cumulative tiles — by
//! their names (`coadd-main-dark-27247.fits`, `redrock-3-80605-thru20210205.fits`) and by their
//! content (the primary header's SPGRP and its group keywords, the HDU names).

use std::path::Path;

use fitsread::Fits;
use model::desi::{DesiProgram, DesiSurvey};
use model::DesiGroup;

use crate::decode::{InputError, Problem};

/// The role of a DESI file in its group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Kind {
    /// `coadd-*.fits`: FIBERMAP, EXP_FIBERMAP, the B/R/Z arms, SCORES.
    Coadd,
    /// `redrock-*.fits`: REDSHIFTS, FIBERMAP, EXP_FIBERMAP, TSNR2.
    Redrock,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Coadd => "coadd-",
            Self::Redrock => "redrock-",
        }
    }
}

/// Header keywords of DESI primary headers.
mod key {
    pub const SPGRP: &str = "SPGRP";
    pub const SPGRPVAL: &str = "SPGRPVAL";
    pub const SURVEY: &str = "SURVEY";
    pub const PROGRAM: &str = "PROGRAM";
    pub const HPXPIXEL: &str = "HPXPIXEL";
    pub const TILEID: &str = "TILEID";
    pub const PETAL: &str = "PETAL";
    pub const NIGHT: &str = "NIGHT";
}

/// The role and group a DESI pipeline file name names (`coadd-<SURVEY>-<PROGRAM>-<PIXNUM>.fits`,
/// `coadd-<PETAL>-<TILEID>-thru<NIGHT>.fits`, and the same for `redrock-`), if it is one.
pub fn parse_name(name: &str) -> Option<(Kind, DesiGroup)> {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let stem = name
        .strip_suffix(".fits")
        .or_else(|| name.strip_suffix(".fit"))?;
    let (kind, rest) = [Kind::Coadd, Kind::Redrock]
        .into_iter()
        .find_map(|k| stem.strip_prefix(k.prefix()).map(|r| (k, r)))?;
    let parts: Vec<&str> = rest.split('-').collect();
    let group = match parts.as_slice() {
        [petal, tileid, night] if night.starts_with("thru") => DesiGroup::tile(
            tileid.parse().ok()?,
            petal.parse().ok()?,
            night.strip_prefix("thru")?.parse().ok()?,
        )
        .ok()?,
        [survey, program, pixnum] => DesiGroup::healpix(
            DesiSurvey::from_name(survey)?,
            DesiProgram::from_name(program)?,
            pixnum.parse().ok()?,
        )
        .ok()?,
        _ => return None,
    };
    Some((kind, group))
}

fn err(path: &Path, p: impl Into<Problem>) -> InputError {
    InputError::new(path, p)
}

fn desi(path: &Path, why: String) -> InputError {
    err(path, Problem::Desi(why))
}

/// A string keyword of the primary header, required.
fn header_str(path: &Path, f: &mut Fits, k: &str) -> Result<String, InputError> {
    f.key_str(k)
        .map_err(|e| err(path, e))?
        .map(|s| s.trim().to_string())
        .ok_or_else(|| desi(path, format!("HDU 0: keyword {k} is missing")))
}

/// The group of a DESI primary header: SPGRP `healpix` (SURVEY, PROGRAM, HPXPIXEL) or
/// `cumulative` (TILEID, PETAL, NIGHT).
fn header_group(path: &Path, f: &mut Fits) -> Result<DesiGroup, InputError> {
    let spgrp = header_str(path, f, key::SPGRP)?.to_ascii_lowercase();
    let int = |f: &mut Fits, k: &str| -> Result<i64, InputError> {
        f.require_i64(k).map_err(|e| err(path, e))
    };
    let bad_key = |e| {
        err(
            path,
            Problem::Key {
                hdu: "HDU 0".into(),
                source: e,
            },
        )
    };
    match spgrp.as_str() {
        "healpix" => {
            let survey = header_str(path, f, key::SURVEY)?;
            let program = header_str(path, f, key::PROGRAM)?;
            let survey = DesiSurvey::from_name(&survey).ok_or_else(|| {
                desi(
                    path,
                    format!("HDU 0: SURVEY {survey:?} is not a DESI survey"),
                )
            })?;
            let program = DesiProgram::from_name(&program).ok_or_else(|| {
                desi(
                    path,
                    format!("HDU 0: PROGRAM {program:?} is not a DESI program"),
                )
            })?;
            let pixel = match f.key_i64(key::HPXPIXEL).map_err(|e| err(path, e))? {
                Some(p) => p,
                None => int(f, key::SPGRPVAL)?,
            };
            DesiGroup::healpix(survey, program, pixel).map_err(bad_key)
        }
        "cumulative" => {
            let tileid = int(f, key::TILEID)?;
            let petal = int(f, key::PETAL)?;
            let night = match f.key_i64(key::NIGHT).map_err(|e| err(path, e))? {
                Some(n) => n,
                None => int(f, key::SPGRPVAL)?,
            };
            DesiGroup::tile(tileid, petal, night).map_err(bad_key)
        }
        other => Err(desi(
            path,
            format!(
                "HDU 0: SPGRP {} coadds are not supported (healpix and cumulative tile coadds are)",
                model::message::excerpt(other)
            ),
        )),
    }
}

/// Identifies a DESI file by its content: its group from the primary header, its role from its
/// HDU names; a pipeline name must agree with both.
pub fn identify(path: &Path) -> Result<(Kind, DesiGroup), InputError> {
    let mut f = Fits::open_for_headers(path).map_err(|e| err(path, e))?;
    f.select(0).map_err(|e| err(path, e))?;
    let group = header_group(path, &mut f)?;
    let mut names = Vec::new();
    for i in 1..f.num_hdus() {
        f.select(i).map_err(|e| err(path, e))?;
        names.push(f.extname().unwrap_or_default().trim().to_ascii_uppercase());
    }
    let has = |n: &str| names.iter().any(|x| x == n);
    let kind = if has("REDSHIFTS") {
        Kind::Redrock
    } else if has("FIBERMAP") {
        Kind::Coadd
    } else {
        return Err(desi(
            path,
            "neither a coadd (no FIBERMAP HDU) nor a redrock file (no REDSHIFTS HDU)".into(),
        ));
    };
    let name = crate::plan::file_name(path);
    if let Some((named_kind, named_group)) = parse_name(&name) {
        if named_group != group || named_kind != kind {
            return Err(err(
                path,
                Problem::Identity {
                    header: format!("a {kind:?} file of {group}"),
                    name: format!("a {named_kind:?} file of {named_group}"),
                },
            ));
        }
    }
    Ok((kind, group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_both_groupings() {
        let (k, g) = parse_name("coadd-special-dark-27247.fits").unwrap();
        assert_eq!(k, Kind::Coadd);
        assert_eq!(g.coadd_file_name(), "coadd-special-dark-27247.fits");
        let (k, g) = parse_name("redrock-3-80605-thru20210205.fits").unwrap();
        assert_eq!(k, Kind::Redrock);
        assert_eq!(g.redrock_file_name(), "redrock-3-80605-thru20210205.fits");
        assert!(parse_name("coadd-3-80605-20210205.fits").is_none());
        assert!(parse_name("coadd-main-grey-1.fits").is_none());
        assert!(parse_name("spec-3655-55240-0001.fits").is_none());
    }
}
