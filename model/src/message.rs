//! Messages about user input: quoted short and safe (no control bytes reach a terminal, no 100 MB
//! line is echoed), one line each.

/// The most characters of user input quoted in a message.
pub const EXCERPT_CHARS: usize = 80;

/// User text as quoted in a message: in double quotes with control characters and quotes escaped,
/// at most [`EXCERPT_CHARS`] characters of it, and its size when it was cut. A 100 MB line gives a
/// short message, and an escape byte never reaches the terminal.
pub fn excerpt(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_none() {
        format!("{head:?}")
    } else {
        format!("{head:?}… ({} bytes in all)", text.len())
    }
}

/// A message on one line: line breaks (HDF5 errors span several) become "; ", and other control
/// characters (an escape byte from a FITS header, say) are shown escaped.
pub fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_quoted_whole() {
        assert_eq!(excerpt("3655,55240,x"), "\"3655,55240,x\"");
        assert_eq!(excerpt("a\u{1b}[31mb"), "\"a\\u{1b}[31mb\"");
    }

    #[test]
    fn one_line_escapes_control_characters() {
        assert_eq!(one_line("a\n  b\n\nKEY\u{1b}X"), "a; b; KEY\\u{1b}X");
    }

    #[test]
    fn long_text_is_cut() {
        let long = "1".repeat(100_000_000 / 1000);
        let e = excerpt(&long);
        assert!(e.len() < 120, "{e}");
        assert!(e.ends_with("… (100000 bytes in all)"), "{e}");
    }
}
