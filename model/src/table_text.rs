//! Tables in text files as people write them (fiber lists, target lists, ID lists): CSV, or
//! tab- or semicolon-separated from a spreadsheet, or whitespace-separated; a UTF-8 byte-order mark,
//! CRLF line endings, quoted values, blank lines and `#` comments are fine. Every record keeps its
//! line number, for messages.

use std::path::Path;

use crate::fiberlist::ListError;

/// Reads a user's text file: its name for messages and its text (an error naming the line for
/// bytes that are not UTF-8).
pub fn read_text(path: &Path) -> Result<(String, String), ListError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ListError::Io {
        path: name.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ListError::Line {
            path: name.clone(),
            line,
            text: String::from_utf8_lossy(e.as_bytes())
                .lines()
                .nth(line - 1)
                .unwrap_or("")
                .to_string(),
            why: "not UTF-8 text".into(),
        }
    })?;
    let text = match text.strip_prefix('\u{feff}') {
        Some(t) => t.to_string(),
        None => text,
    };
    Ok((name, text))
}

/// How the fields of a line are separated, from the header line.
fn delimiter(header: &str) -> Option<u8> {
    [b',', b'\t', b';']
        .into_iter()
        .find(|d| header.as_bytes().contains(d))
}

/// The non-blank, non-comment lines of a list as (line number, fields), in order. Delimited files
/// are read with one CSV reader (quoting understood); others are split on whitespace.
pub fn records(text: &str, name: &str) -> Result<Vec<(usize, String, Vec<String>)>, ListError> {
    let kept: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let Some(d) = kept.first().and_then(|(_, h)| delimiter(h)) else {
        return Ok(kept
            .iter()
            .map(|&(n, l)| {
                (
                    n,
                    l.to_string(),
                    l.split_whitespace().map(str::to_string).collect(),
                )
            })
            .collect());
    };
    // One CSV reader over the kept lines (a reader per line would rebuild its parser each time);
    // record i is kept line i.
    let filtered = kept.iter().map(|(_, l)| *l).collect::<Vec<_>>().join("\n");
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(d)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(filtered.as_bytes());
    // A quote after a blank (`1, "2"`) is not CSV quoting: strip it by hand.
    let unquote = |f: &str| {
        let f = f.trim();
        f.strip_prefix('"')
            .and_then(|g| g.strip_suffix('"'))
            .unwrap_or(f)
            .to_string()
    };
    let original = |filtered_line: u64| {
        kept.get((filtered_line as usize).saturating_sub(1))
            .copied()
            .unwrap_or((0, ""))
    };
    let mut out = Vec::with_capacity(kept.len());
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let (line, text) = original(e.position().map_or(0, |p| p.line()));
            ListError::Line {
                path: name.to_string(),
                line,
                text: text.to_string(),
                why: format!("not a CSV line ({e})"),
            }
        })?;
        let (line, text) = original(rec.position().map_or(0, |p| p.line()));
        out.push((line, text.to_string(), rec.iter().map(unquote).collect()));
    }
    Ok(out)
}
