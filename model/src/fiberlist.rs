//! Fiber lists given to `boss-query --fibers`: CSV with a `plate,mjd,fiber` header (any order, other
//! columns ignored) or H5Boss's space-separated format with the header `plates mjds fibers`.

use std::collections::BTreeSet;
use std::path::Path;

use crate::key::FiberId;

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
    #[error("{path}: line {line}: {why}: {text:?}")]
    Line {
        path: String,
        line: usize,
        text: String,
        why: String,
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
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ListError::Io {
        path: name.clone(),
        source,
    })?;
    parse_fiber_list(&text, &name)
}

/// Parses list text; `name` is used in messages.
pub fn parse_fiber_list(text: &str, name: &str) -> Result<FiberList, ListError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
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
    let csv = header.contains(',');
    let split = |l: &str| -> Vec<String> {
        if csv {
            l.split(',')
                .map(|f| f.trim().trim_matches('"').to_string())
                .collect()
        } else {
            l.split_whitespace().map(str::to_string).collect()
        }
    };
    let names: Vec<String> = split(header)
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let find = |wanted: &[&str]| names.iter().position(|n| wanted.contains(&n.as_str()));
    let (plate_col, mjd_col, fiber_col) = if csv {
        (
            find(&["plate"]),
            find(&["mjd"]),
            find(&["fiber", "fiberid"]),
        )
    } else {
        (find(&["plates"]), find(&["mjds"]), find(&["fibers"]))
    };
    let (Some(p), Some(m), Some(f)) = (plate_col, mjd_col, fiber_col) else {
        let expected = if csv {
            "a CSV header with plate,mjd,fiber"
        } else {
            "the header 'plates mjds fibers'"
        };
        return Err(line_err(
            header_line,
            header,
            format!("expected {expected}"),
        ));
    };
    let mut set = BTreeSet::new();
    let mut duplicates = 0;
    for (line, text) in lines {
        let fields = split(text);
        let get = |i: usize, what: &str| -> Result<i32, ListError> {
            let v = fields
                .get(i)
                .ok_or_else(|| line_err(line, text, format!("no {what} value")))?;
            v.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                line_err(
                    line,
                    text,
                    format!("{what} {v:?} is not a non-negative integer"),
                )
            })
        };
        let id = FiberId::new(get(p, "plate")?, get(m, "mjd")?, get(f, "fiber")?);
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
    }
}
