//! Recognising SDSS-V files by their content, and the field-MJD coadd each belongs to.
//!
//! A file is SDSS-V's when its primary header has a FIELDID or a RUN2D of v6 or later. What it is
//! comes from its HDUs (spec: `COADD`, `SPALL`, `ZALL`; spField: images with `PLUGMAP` and
//! `SPECRESL`; spZbest and spZline: a table with FIELD, MJD and TARGET_INDEX). The coadd kind
//! (daily, epoch, all-epoch) comes from the SPECOBJID of the file's rows when it has any (the
//! pipeline writes the coadd's number in it), else from where the pipeline puts the file: an
//! `epoch` directory, or a custom coadd's name (`allepoch_apo`) in place of the field.

use std::path::Path;

use fitsread::{Fits, HduKind};
use model::{Coadd, FieldMjd, KeyError};

use super::names::{col, key, spec, spfield, TABLE};
use crate::decode::{InputError, Problem};

/// The kinds of SDSS-V input.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Kind {
    /// `spec-<FIELD>-<MJD>-<CATALOGID>.fits` (full or lite): one target.
    Spec,
    /// `spField-<FIELD>-<MJD>.fits`: every target of a field-MJD.
    Field,
    /// `spZbest-<FIELD>-<MJD>.fits`: redshifts and best-fit models.
    Zbest,
    /// `spZline-<FIELD>-<MJD>.fits`: emission-line fits.
    Zline,
}

/// What an SDSS-V file is and where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identified {
    pub group: FieldMjd,
    pub kind: Kind,
    /// The target of a spec file (its TARGET_INDEX).
    pub target_index: Option<i64>,
}

fn err(path: &Path, p: impl Into<Problem>) -> InputError {
    InputError::new(path, p)
}

fn key_err(path: &Path, hdu: &str, source: KeyError) -> InputError {
    err(
        path,
        Problem::Key {
            hdu: hdu.to_string(),
            source,
        },
    )
}

/// True when a pipeline file name is SDSS-V's: `spField-*`, or `spec-`/`spZbest-`/`spZline-` with
/// a six-digit field or a custom coadd's name (SDSS-I–IV pads plates to four digits).
pub fn claims_name(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    if name.starts_with(model::layout::sdss5::fits_names::SPFIELD_PREFIX) {
        return true;
    }
    let Some(rest) = ["spec-", "spZbest-", "spZline-"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
    else {
        return false;
    };
    let field = rest.split('-').next().unwrap_or("");
    (field.len() == 6 && field.bytes().all(|b| b.is_ascii_digit()))
        || Coadd::from_name(field).is_some_and(Coadd::is_custom)
}

/// True when the current (primary) header is an SDSS-V one: a FIELDID card, or RUN2D v6 or later.
pub fn is_sdss5_header(f: &mut Fits) -> bool {
    let has_fieldid = f.key_str(key::FIELDID).map_or(true, |v| v.is_some());
    let run2d_v6 = f.key_str(key::RUN2D).ok().flatten().is_some_and(|r| {
        r.trim()
            .strip_prefix('v')
            .and_then(|v| v.split('_').next())
            .and_then(|major| major.parse::<u32>().ok())
            .is_some_and(|major| major >= 6)
    });
    has_fieldid || run2d_v6
}

/// The coadd named by a SPECOBJID of the SDSS-V pipeline: `<SDSS_ID><FIELD:7><MJD:5><COADD:2><TAG:6>`.
pub fn coadd_of_specobjid(specobjid: &str) -> Option<Coadd> {
    let s = specobjid.trim();
    if s.len() < 21 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Coadd::from_id(s[s.len() - 8..s.len() - 6].parse().ok()?)
}

/// The coadd of a file from where the pipeline puts it: a custom coadd's name as the field, an
/// `epoch` directory, else daily.
pub fn coadd_of_path(path: &Path, field: &str) -> Coadd {
    if let Some(c) = Coadd::from_name(field).filter(|c| c.is_custom()) {
        return c;
    }
    let epoch = path
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
        .any(|c| c.as_os_str() == "epoch");
    if epoch {
        Coadd::Epoch
    } else {
        Coadd::Daily
    }
}

/// The field string of a pipeline name (`spec-112360-…` → `112360`), if it is one.
fn name_field(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let mut parts = name.split('.').next()?.split('-');
    parts.next()?;
    parts.next().map(str::to_string)
}

/// Identifies an SDSS-V file by its content.
pub fn identify(path: &Path) -> Result<Identified, InputError> {
    let mut f = Fits::open_for_headers(path).map_err(|e| err(path, e))?;
    f.select(0).map_err(|e| err(path, e))?;
    if !is_sdss5_header(&mut f) {
        return Err(err(
            path,
            Problem::Sdss5("the primary header has no FIELDID and no RUN2D of v6 or later".into()),
        ));
    }
    if named(&mut f, spec::COADD) {
        return identify_spec(path, &mut f);
    }
    if named(&mut f, spfield::PLUGMAP) || named(&mut f, spfield::SPECRESL) {
        f.select(0).map_err(|e| err(path, e))?;
        let group = header_group(path, &mut f)?;
        return Ok(Identified {
            group,
            kind: Kind::Field,
            target_index: None,
        });
    }
    identify_table_file(path, &mut f)
}

/// The field-MJD of a primary header (FIELDID, MJD), its coadd from the path.
fn header_group(path: &Path, f: &mut Fits) -> Result<FieldMjd, InputError> {
    let field = f
        .key_str(key::FIELDID)
        .ok()
        .flatten()
        .or_else(|| {
            f.key_i64(key::FIELDID)
                .ok()
                .flatten()
                .map(|v| v.to_string())
        })
        .ok_or_else(|| {
            err(
                path,
                Problem::Column {
                    hdu: "HDU 0".into(),
                    column: key::FIELDID,
                    kind: "a header keyword",
                },
            )
        })?;
    let field = field.trim().trim_matches('\'').trim().to_string();
    let mjd = f.require_i64(key::MJD).map_err(|e| err(path, e))?;
    let coadd = coadd_of_path(path, &field);
    let number = if coadd.is_custom() {
        0
    } else {
        field.parse::<i64>().map_err(|_| {
            err(
                path,
                Problem::Sdss5(format!(
                    "HDU 0: FIELDID {} is neither a field number nor a custom coadd",
                    model::message::excerpt(&field)
                )),
            )
        })?
    };
    FieldMjd::checked(coadd, number, mjd).map_err(|e| key_err(path, "HDU 0", e))
}

/// True when the HDU at `at` is named `name`. Only the HDUs a kind is told by are looked at: each
/// one selected parses its header (a spec file's exposure HDUs are not needed to place it).
fn named(f: &mut Fits, (name, at): (&str, usize)) -> bool {
    at < f.num_hdus()
        && f.select(at).is_ok()
        && f.extname().is_some_and(|x| x.eq_ignore_ascii_case(name))
}

fn identify_spec(path: &Path, f: &mut Fits) -> Result<Identified, InputError> {
    let spall_at = spec::SPALL.1;
    if !named(f, spec::SPALL) {
        return Err(err(
            path,
            Problem::MissingHdu {
                name: spec::SPALL.0,
                position: spall_at,
                why: ": not a complete SDSS-V spec file",
            },
        ));
    }
    // Five cells of a one-row table of some 150 columns: read by cfitsio from the column
    // descriptions it parsed, without building the table's layout (decoding does, once).
    let kind = f.select(spall_at).map_err(|e| err(path, e))?;
    let label = f.hdu_label();
    if kind != HduKind::Table {
        return Err(err(path, Problem::NotATable { hdu: label }));
    }
    let rows = f.num_rows().map_err(|e| err(path, e))?;
    if rows != 1 {
        return Err(err(
            path,
            Problem::Sdss5(format!("{label} has {rows} rows, 1 expected")),
        ));
    }
    let mut int = |c: &'static str| -> Result<i64, InputError> {
        f.int_cell(c, 0).map_err(|e| err(path, e))?.ok_or_else(|| {
            err(
                path,
                Problem::Column {
                    hdu: label.clone(),
                    column: c,
                    kind: "an integer",
                },
            )
        })
    };
    let field = int(col::FIELD)?;
    let mjd = int(col::MJD)?;
    let target_index = int(col::TARGET_INDEX)?;
    let catalogid = int(col::CATALOGID)?;
    let specobjid = f
        .str_cell(col::SPECOBJID, 0)
        .map_err(|e| err(path, e))?
        .unwrap_or_default();
    let name_field = name_field(path).unwrap_or_default();
    let coadd = coadd_of_specobjid(&specobjid).unwrap_or_else(|| coadd_of_path(path, &name_field));
    let group = FieldMjd::checked(coadd, field, mjd).map_err(|e| key_err(path, &label, e))?;
    model::SpectrumId::checked_field(group, target_index).map_err(|e| key_err(path, &label, e))?;
    // A pipeline name must agree with the content.
    if let Some(n) = path.file_name().and_then(|n| n.to_str()) {
        let n = n.strip_suffix(".gz").unwrap_or(n);
        if claims_name(n) {
            let expected = model::layout::sdss5::fits_names::spec(group, catalogid);
            if n != expected {
                return Err(err(
                    path,
                    Problem::Identity {
                        header: format!("{label} says {expected}"),
                        name: n.to_string(),
                    },
                ));
            }
        }
    }
    Ok(Identified {
        group,
        kind: Kind::Spec,
        target_index: Some(target_index),
    })
}

/// spZbest or spZline: HDU1 a table of FIELD, MJD, TARGET_INDEX rows (all of one field-MJD).
fn identify_table_file(path: &Path, f: &mut Fits) -> Result<Identified, InputError> {
    if f.num_hdus() <= TABLE || f.select(TABLE).map_err(|e| err(path, e))? != HduKind::Table {
        return Err(err(
            path,
            Problem::Sdss5(
                "not an SDSS-V spec, spField, spZbest or spZline file (no COADD, PLUGMAP or table HDU)"
                    .into(),
            ),
        ));
    }
    let label = f.hdu_label();
    let layout = f.table_layout().map_err(|e| err(path, e))?;
    let has = |c: &str| layout.has_column(c);
    for c in [col::FIELD, col::MJD, col::TARGET_INDEX] {
        if !has(c) {
            return Err(err(
                path,
                Problem::Column {
                    hdu: label,
                    column: c,
                    kind: "an integer",
                },
            ));
        }
    }
    let kind = if has(col::LINENAME) {
        Kind::Zline
    } else {
        Kind::Zbest
    };
    let fields = f.int_column(col::FIELD).map_err(|e| err(path, e))?;
    let mjds = f.int_column(col::MJD).map_err(|e| err(path, e))?;
    let (Some(&field), Some(&mjd)) = (fields.first(), mjds.first()) else {
        return Err(err(path, Problem::Sdss5(format!("{label} has no rows"))));
    };
    if fields.iter().any(|&x| x != field) || mjds.iter().any(|&x| x != mjd) {
        return Err(err(
            path,
            Problem::Sdss5(format!("{label} holds rows of more than one field-MJD")),
        ));
    }
    let coadd = coadd_of_path(path, &name_field(path).unwrap_or_default());
    let group = FieldMjd::checked(coadd, field, mjd).map_err(|e| key_err(path, &label, e))?;
    Ok(Identified {
        group,
        kind,
        target_index: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_specobjids() {
        assert!(claims_name("spec-112360-60000-27021598150202075.fits"));
        assert!(claims_name(
            "spec-allepoch_apo-60130-27021598150202075.fits.gz"
        ));
        assert!(claims_name("spField-015000-59000.fits"));
        assert!(claims_name("spZbest-015000-59000.fits"));
        assert!(!claims_name("spec-3655-55240-0002.fits"));
        assert!(!claims_name("spZbest-10656-58163.fits"));
        assert_eq!(
            coadd_of_specobjid("100160005999900060103"),
            Some(Coadd::Daily)
        );
        assert_eq!(
            coadd_of_specobjid("12345601123606000001060103"),
            Some(Coadd::Epoch)
        );
        assert_eq!(coadd_of_specobjid(""), None);
        assert_eq!(
            coadd_of_path(
                Path::new("/r/v6_1_3/epoch/spectra/full/112360/60000/x.fits"),
                "112360"
            ),
            Coadd::Epoch
        );
        assert_eq!(
            coadd_of_path(
                Path::new("/r/spectra/full/allepoch_lco/60000/x.fits"),
                "allepoch_lco"
            ),
            Coadd::AllEpochLco
        );
        assert_eq!(
            coadd_of_path(Path::new("/r/spectra/full/112360/60000/x.fits"), "112360"),
            Coadd::Daily
        );
    }
}
