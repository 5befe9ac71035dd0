//! Fiber lists given to `boss-query --fibers`, as people really write them: CSV with a
//! `plate,mjd,fiber` header (any order, other columns ignored, `FIBERID` accepted, quoted values),
//! tab-separated files from a spreadsheet, or H5Boss's whitespace-separated `plates mjds fibers`.
//! A UTF-8 byte-order mark, CRLF line endings, blank lines and `#` comments are fine.

use std::collections::BTreeSet;
use std::path::Path;

use crate::key::{FiberId, KeyError};
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

/// The fibers of a list: sorted, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiberList {
    pub fibers: Vec<FiberId>,
    /// Lines naming a fiber already listed.
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
    let (Some(p), Some(m), Some(f)) = (
        find(&["plate", "plates", "plateid"]),
        find(&["mjd", "mjds"]),
        find(&["fiber", "fibers", "fiberid"]),
    ) else {
        return Err(line_err(
            header_line,
            &header,
            "expected a header naming the plate, mjd and fiber columns (plate,mjd,fiber or H5Boss's 'plates mjds fibers')".into(),
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
