//! Spectrum lists given to `boss-query --fibers`, as people really write them: CSV with a
//! `plate,mjd,fiber` header (any order, other columns ignored, `FIBERID` accepted, quoted values),
//! tab-separated files from a spreadsheet, or H5Boss's whitespace-separated `plates mjds fibers`;
//! for SDSS-V the columns of spAll-lite: `FIELD,MJD,CATALOGID` (`FIELDID` accepted; an optional
//! `COADD` column — daily, epoch, allepoch_apo, … — picks one kind of coadd, else every coadd of
//! that field, MJD and target is meant); for DESI a `TARGETID` column, optionally with `SURVEY` and
//! `PROGRAM` (HEALPix coadds) or `TILEID` and `PETAL` (tile coadds) to pick among the coadds of a
//! target. A UTF-8 byte-order mark, CRLF line endings, blank lines and `#` comments are fine.

use std::collections::BTreeSet;
use std::path::Path;

use crate::desi::{DesiGroup, DesiProgram, DesiSurvey, PETAL_RANGE, TILEID_RANGE};
use crate::group::{Coadd, FIELD_RANGE};
use crate::key::{checked_part, FiberId, KeyError, MJD_RANGE};
use crate::table_text::{read_text, records};

/// A problem with a fiber list, naming the line.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: the list is empty (no fibers after the header)")]
    Empty { path: String },
    #[error("{path}: line {line}: {why}: {}", crate::message::excerpt(.text))]
    Line {
        path: String,
        line: usize,
        text: String,
        why: String,
    },
    #[error("{path}: line {line}: {source}: {}", crate::message::excerpt(.text))]
    Range {
        path: String,
        line: usize,
        text: String,
        #[source]
        source: KeyError,
    },
}

/// An SDSS-V spectrum as users name it: field, MJD and CATALOGID, and maybe the coadd kind.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TargetRef {
    pub field: i32,
    pub mjd: i32,
    pub catalogid: i64,
    pub coadd: Option<Coadd>,
}

impl std::fmt::Display for TargetRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "field {} mjd {} catalogid {}",
            self.field, self.mjd, self.catalogid
        )?;
        if let Some(c) = self.coadd {
            write!(f, " ({})", c.name())?;
        }
        Ok(())
    }
}

/// DESI spectra as users name them: a TARGETID, and maybe which coadds (HEALPix coadds of a survey
/// and program, or tile coadds of a tile and petal). Every coadd of the target that fits is meant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct DesiRef {
    pub targetid: i64,
    pub survey: Option<DesiSurvey>,
    pub program: Option<DesiProgram>,
    pub tileid: Option<i32>,
    pub petal: Option<i32>,
}

impl DesiRef {
    /// Whether a coadd of the target is one this reference names.
    pub fn fits(&self, g: &DesiGroup) -> bool {
        match *g {
            DesiGroup::Healpix {
                survey, program, ..
            } => {
                self.tileid.is_none()
                    && self.petal.is_none()
                    && self.survey.is_none_or(|s| s == survey)
                    && self.program.is_none_or(|p| p == program)
            }
            DesiGroup::Tile { tileid, petal, .. } => {
                self.survey.is_none()
                    && self.program.is_none()
                    && self.tileid.is_none_or(|t| t == tileid)
                    && self.petal.is_none_or(|p| p == petal)
            }
        }
    }
}

impl std::fmt::Display for DesiRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TARGETID {}", self.targetid)?;
        if let Some(s) = self.survey {
            write!(f, " survey {}", s.name())?;
        }
        if let Some(p) = self.program {
            write!(f, " program {}", p.name())?;
        }
        if let Some(t) = self.tileid {
            write!(f, " tile {t}")?;
        }
        if let Some(p) = self.petal {
            write!(f, " petal {p}")?;
        }
        Ok(())
    }
}

/// A listed spectrum the store does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Missing {
    Fiber(FiberId),
    Target(TargetRef),
    Desi(DesiRef),
}

impl Missing {
    /// As the JSON summary lists it (`3655-55240-2`, `field 112360 mjd 60000 catalogid …`).
    pub fn id(&self) -> String {
        match self {
            Self::Fiber(f) => f.to_string(),
            Self::Target(t) => t.to_string(),
            Self::Desi(t) => t.to_string(),
        }
    }
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fiber(x) => write!(f, "plate {} mjd {} fiber {}", x.plate, x.mjd, x.fiber),
            Self::Target(t) => t.fmt(f),
            Self::Desi(t) => t.fmt(f),
        }
    }
}

/// The spectra of a list: sorted, each once. A list names SDSS-I–IV fibers, SDSS-V targets or
/// DESI targets (its header says which).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FiberList {
    pub fibers: Vec<FiberId>,
    pub targets: Vec<TargetRef>,
    pub desi: Vec<DesiRef>,
    /// Lines naming a spectrum already listed.
    pub duplicates: usize,
}

/// Reads and parses a list file.
pub fn read_fiber_list(path: &Path) -> Result<FiberList, ListError> {
    let (name, text) = read_text(path)?;
    parse_fiber_list(&text, &name)
}

/// Parses list text; `name` is used in messages.
pub fn parse_fiber_list(text: &str, name: &str) -> Result<FiberList, ListError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = records(text, name)?.into_iter();
    let Some((header_line, header, names)) = lines.next() else {
        return Err(ListError::Empty {
            path: name.to_string(),
        });
    };
    let line_err = |line: usize, text: &str, why: String| ListError::Line {
        path: name.to_string(),
        line,
        text: text.to_string(),
        why,
    };
    let names: Vec<String> = names.iter().map(|h| h.to_ascii_lowercase()).collect();
    let _ = &header;
    let find = |wanted: &[&str]| names.iter().position(|n| wanted.contains(&n.as_str()));
    let plate = find(&["plate", "plates", "plateid"]);
    let fiber = find(&["fiber", "fibers", "fiberid"]);
    let field = find(&["field", "fieldid"]);
    let catalogid = find(&["catalogid"]);
    let (Some(p), Some(m), Some(f)) = (plate, find(&["mjd", "mjds"]), fiber) else {
        if let (Some(fi), Some(m), Some(c)) = (field, find(&["mjd"]), catalogid) {
            let coadd = find(&["coadd"]);
            return parse_targets(lines, name, (fi, m, c, coadd));
        }
        if let Some(t) = find(&["targetid"]) {
            let cols = DesiColumns {
                targetid: t,
                survey: find(&["survey"]),
                program: find(&["program"]),
                tileid: find(&["tileid"]),
                petal: find(&["petal", "petal_loc"]),
            };
            return parse_desi(lines, name, cols);
        }
        return Err(line_err(
            header_line,
            &header,
            "expected a header naming the plate, mjd and fiber columns (plate,mjd,fiber or H5Boss's 'plates mjds fibers'), for SDSS-V field, mjd and catalogid, or for DESI targetid".into(),
        ));
    };
    let mut set = BTreeSet::new();
    let mut duplicates = 0;
    for (line, text, fields) in lines {
        let get = |i: usize, what: &str| -> Result<i64, ListError> {
            let v = fields
                .get(i)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| line_err(line, &text, format!("no {what} value")))?;
            v.parse::<i64>().map_err(|_| {
                line_err(
                    line,
                    &text,
                    format!("{what} {} is not an integer", crate::message::excerpt(v)),
                )
            })
        };
        let id = FiberId::checked(get(p, "plate")?, get(m, "mjd")?, get(f, "fiber")?).map_err(
            |source| ListError::Range {
                path: name.to_string(),
                line,
                text: text.clone(),
                source,
            },
        )?;
        if !set.insert(id) {
            duplicates += 1;
        }
    }
    if set.is_empty() {
        return Err(ListError::Empty {
            path: name.to_string(),
        });
    }
    Ok(FiberList {
        fibers: set.into_iter().collect(),
        duplicates,
        ..FiberList::default()
    })
}

type Lines = std::vec::IntoIter<(usize, String, Vec<String>)>;

/// The body of an SDSS-V list: (field, mjd, catalogid, coadd) column positions.
fn parse_targets(
    lines: Lines,
    name: &str,
    (fi, m, c, coadd): (usize, usize, usize, Option<usize>),
) -> Result<FiberList, ListError> {
    let mut set = BTreeSet::new();
    let mut duplicates = 0;
    for (line, text, fields) in lines {
        let line_err = |why: String| ListError::Line {
            path: name.to_string(),
            line,
            text: text.clone(),
            why,
        };
        let value = |i: usize, what: &str| -> Result<&str, ListError> {
            fields
                .get(i)
                .map(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| line_err(format!("no {what} value")))
        };
        let int = |i: usize, what: &str| -> Result<i64, ListError> {
            let v = value(i, what)?;
            v.parse::<i64>().map_err(|_| {
                line_err(format!(
                    "{what} {} is not an integer",
                    crate::message::excerpt(v)
                ))
            })
        };
        let range = |source: KeyError| ListError::Range {
            path: name.to_string(),
            line,
            text: text.clone(),
            source,
        };
        let catalogid = int(c, "catalogid")?;
        if catalogid < 0 {
            return Err(line_err(format!(
                "catalogid {catalogid} is negative (CATALOGIDs are positive 64-bit integers)"
            )));
        }
        let kind = match coadd.map(|i| value(i, "coadd")).transpose()? {
            Some(v) => Some(Coadd::from_name(v).ok_or_else(|| {
                line_err(format!(
                    "coadd {} is not one of daily, epoch, allepoch, allepoch_apo, allepoch_lco",
                    crate::message::excerpt(v)
                ))
            })?),
            None => None,
        };
        let t = TargetRef {
            field: checked_part("field", int(fi, "field")?, FIELD_RANGE).map_err(range)?,
            mjd: checked_part("mjd", int(m, "mjd")?, MJD_RANGE).map_err(range)?,
            catalogid,
            coadd: kind,
        };
        if !set.insert(t) {
            duplicates += 1;
        }
    }
    if set.is_empty() {
        return Err(ListError::Empty {
            path: name.to_string(),
        });
    }
    Ok(FiberList {
        targets: set.into_iter().collect(),
        duplicates,
        ..FiberList::default()
    })
}

/// Column positions of a DESI list.
struct DesiColumns {
    targetid: usize,
    survey: Option<usize>,
    program: Option<usize>,
    tileid: Option<usize>,
    petal: Option<usize>,
}

/// The body of a DESI list.
fn parse_desi(lines: Lines, name: &str, cols: DesiColumns) -> Result<FiberList, ListError> {
    let mut set = BTreeSet::new();
    let mut duplicates = 0;
    for (line, text, fields) in lines {
        let line_err = |why: String| ListError::Line {
            path: name.to_string(),
            line,
            text: text.clone(),
            why,
        };
        // An empty optional cell means "any".
        let value = |i: Option<usize>| -> Option<&str> {
            i.and_then(|i| fields.get(i))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let int = |v: &str, what: &str| -> Result<i64, ListError> {
            v.parse::<i64>().map_err(|_| {
                line_err(format!(
                    "{what} {} is not an integer",
                    crate::message::excerpt(v)
                ))
            })
        };
        let range = |source: KeyError| ListError::Range {
            path: name.to_string(),
            line,
            text: text.clone(),
            source,
        };
        let targetid = value(Some(cols.targetid))
            .ok_or_else(|| line_err("no targetid value".into()))
            .and_then(|v| int(v, "targetid"))?;
        let survey = value(cols.survey)
            .map(|v| {
                DesiSurvey::from_name(v).ok_or_else(|| {
                    line_err(format!(
                        "survey {} is not a DESI survey (cmx, special, sv1, sv2, sv3, main)",
                        crate::message::excerpt(v)
                    ))
                })
            })
            .transpose()?;
        let program = value(cols.program)
            .map(|v| {
                DesiProgram::from_name(v).ok_or_else(|| {
                    line_err(format!(
                        "program {} is not a DESI program (backup, bright, dark, other)",
                        crate::message::excerpt(v)
                    ))
                })
            })
            .transpose()?;
        let tileid = value(cols.tileid)
            .map(|v| checked_part("tileid", int(v, "tileid")?, TILEID_RANGE).map_err(range))
            .transpose()?;
        let petal = value(cols.petal)
            .map(|v| checked_part("petal", int(v, "petal")?, PETAL_RANGE).map_err(range))
            .transpose()?;
        if (survey.is_some() || program.is_some()) && (tileid.is_some() || petal.is_some()) {
            return Err(line_err(
                "survey/program name HEALPix coadds and tileid/petal tile coadds: give one pair"
                    .into(),
            ));
        }
        let r = DesiRef {
            targetid,
            survey,
            program,
            tileid,
            petal,
        };
        if !set.insert(r) {
            duplicates += 1;
        }
    }
    if set.is_empty() {
        return Err(ListError::Empty {
            path: name.to_string(),
        });
    }
    Ok(FiberList {
        desi: set.into_iter().collect(),
        duplicates,
        ..FiberList::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desi_lists_name_targetids_and_maybe_their_coadds() {
        let l = parse_fiber_list(
            "TARGETID,SURVEY,PROGRAM,Z\n39627,main,dark,1\n39627,,,2\n39627,main,dark,3\n",
            "l",
        )
        .unwrap();
        assert_eq!(l.desi.len(), 2);
        assert_eq!(l.duplicates, 1);
        let hp = DesiGroup::healpix(DesiSurvey::Main, DesiProgram::Dark, 5).unwrap();
        let tile = DesiGroup::tile(80_605, 3, 20_210_205).unwrap();
        assert!(l.desi.iter().all(|r| r.fits(&hp)));
        assert_eq!(l.desi.iter().filter(|r| r.fits(&tile)).count(), 1);
        let l = parse_fiber_list("targetid\ttileid\tpetal\n5\t80605\t3\n", "l").unwrap();
        assert!(l.desi[0].fits(&tile) && !l.desi[0].fits(&hp));
        for (text, words) in [
            ("targetid,survey\n5,grey\n", "grey"),
            ("targetid,petal\n5,10\n", "petal"),
            ("targetid\nx\n", "not an integer"),
            ("targetid,survey,tileid\n5,main,80605\n", "one pair"),
        ] {
            let e = parse_fiber_list(text, "l").unwrap_err().to_string();
            assert!(e.contains("line 2") && e.contains(words), "{e}");
        }
    }

    #[test]
    fn csv_any_order_with_extra_columns_and_duplicates() {
        let l = parse_fiber_list(
            "key,fiber,ra,mjd,plate\n1,4,1.0,55240,3655\n2,2,1.0,55240,3655\n3,4,0,55240,3655\n",
            "l",
        )
        .unwrap();
        assert_eq!(
            l.fibers,
            vec![FiberId::new(3655, 55240, 2), FiberId::new(3655, 55240, 4)]
        );
        assert_eq!(l.duplicates, 1);
    }

    #[test]
    fn sdss5_lists_name_field_mjd_and_catalogid() {
        let l = parse_fiber_list(
            "FIELD,MJD,CATALOGID,Z\n112360,60000,27021598150202075,0.5\n015000,59000,4,1\n112360,60000,27021598150202075,2\n",
            "l",
        )
        .unwrap();
        assert!(l.fibers.is_empty());
        assert_eq!(l.duplicates, 1);
        assert_eq!(
            l.targets[1],
            TargetRef {
                field: 112_360,
                mjd: 60_000,
                catalogid: 27_021_598_150_202_075,
                coadd: None
            }
        );
        let e = parse_fiber_list("fieldid,mjd,catalogid,coadd\n1,60000,5,weekly\n", "l")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("weekly"), "{e}");
        let e = parse_fiber_list("field,mjd,catalogid\n1000000,60000,5\n", "l")
            .unwrap_err()
            .to_string();
        assert!(e.contains("field 1000000 is out of range"), "{e}");
        let e = parse_fiber_list("field,mjd,catalogid\n1,60000,99999999999999999999\n", "l")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an integer"), "{e}");
        let e = parse_fiber_list("field,mjd,target\n1,60000,5\n", "l")
            .unwrap_err()
            .to_string();
        assert!(e.contains("field, mjd and catalogid"), "{e}");
    }

    #[test]
    fn h5boss_format() {
        let l =
            parse_fiber_list("plates mjds fibers\n3655 55240 2\n  10656 58163 366\n", "l").unwrap();
        assert_eq!(l.fibers.len(), 2);
        assert_eq!(l.fibers[1], FiberId::new(10656, 58163, 366));
    }

    #[test]
    fn lists_as_spreadsheets_write_them() {
        let want = vec![FiberId::new(3655, 55240, 2), FiberId::new(3655, 55240, 7)];
        for text in [
            "\u{feff}PLATE,MJD,FIBERID\r\n3655,55240,2\r\n3655,55240,7\r\n",
            "plate\tmjd\tfiber\n3655\t55240\t2\n3655\t55240\t7\n",
            "\"plate\",\"mjd\",\"fiber\"\n\"3655\",\"55240\",\"2\"\n\"3655\", \"55240\", \"7\"\n",
            "plate;mjd;fiber\n3655;55240;2\n3655;55240;7\n",
        ] {
            let l = parse_fiber_list(text, "l").unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(l.fibers, want, "{text:?}");
        }
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let e = parse_fiber_list("plate,mjd,fiber\n3655,55240,2\n3655,abc,3\n", "list.csv")
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("line 3") && msg.contains("abc") && msg.contains("list.csv"),
            "{msg}"
        );
        assert!(parse_fiber_list("a,b,c\n1,2,3\n", "l").is_err());
        assert!(matches!(
            parse_fiber_list("plate,mjd,fiber\n", "l"),
            Err(ListError::Empty { .. })
        ));
        assert!(parse_fiber_list("plate,mjd,fiber\n1,2\n", "l")
            .unwrap_err()
            .to_string()
            .contains("no fiber"));
        let big = parse_fiber_list("plate,mjd,fiber\n2147483648,55240,2\n", "l").unwrap_err();
        assert!(
            big.to_string()
                .contains("plate 2147483648 is out of range (0..=2147483647)"),
            "{big}"
        );
        let neg = parse_fiber_list("plate,mjd,fiber\n-3655,55240,2\n", "l").unwrap_err();
        assert!(neg.to_string().contains("out of range"), "{neg}");
    }
}
