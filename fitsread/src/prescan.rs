//! A look at every header card before cfitsio parses the file: cfitsio 4.2 copies an unquoted
//! keyword value into fixed 70-byte column buffers without a bound (`ffgtbp`, reached from
//! `ffthdu`), so a card such as `TTYPE1  =eeee…` or `TTYPE1=  9999…` (71 characters; cfitsio takes
//! an `=` before column 9 for a value indicator too) aborts the process. Headers are
//! walked HDU by HDU as the FITS standard lays them out (2880-byte blocks, cards up to `END`, data
//! of |BITPIX|/8 × GCOUNT × (PCOUNT + NAXIS1 × … × NAXISn) bytes; where that cannot be told, every
//! later block starting with `XTENSION`), and such a card is refused.
//! Anything else — structure cfitsio itself rejects, truncated files — is left to cfitsio and the
//! reader's own checks.

use std::io::{Read, Seek, SeekFrom};

const BLOCK: u64 = 2880;
const CARD: usize = 80;
/// The longest unquoted value cfitsio can copy into its column buffers (70 bytes with the NUL).
const LONGEST_UNQUOTED: usize = 68;

/// A card that cfitsio cannot parse safely: HDU index (0-based), card number (1-based), keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCard {
    pub hdu: usize,
    pub card: usize,
    pub keyword: String,
}

/// What a walk over the headers found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// The first card cfitsio cannot parse safely.
    pub bad: Option<BadCard>,
    /// The number of HDUs, when the walk could tell it exactly: every header starts as the
    /// standard has it (`SIMPLE`, then `XTENSION`), ends with `END`, sizes its data with keywords
    /// read here, and the last HDU's data ends at the end of the file. None: cfitsio must count.
    pub hdus: Option<usize>,
}

/// Walks the headers of `file` (`size` bytes); the first unsafe card, if any. Where a header's
/// data size cannot be told (a keyword cfitsio may read more leniently), every later block that
/// starts with `XTENSION` is taken for a header, so that nothing cfitsio may parse goes unchecked.
pub fn check<R: Read + Seek>(file: &mut R, size: u64) -> std::io::Result<Scan> {
    let mut start = 0u64;
    let mut hdu = 0;
    let mut exact = true;
    let mut block = vec![0u8; BLOCK as usize];
    // Every header so far began as the standard has it.
    let mut standard = true;
    while start + CARD as u64 <= size {
        file.seek(SeekFrom::Start(start))?;
        if !exact {
            let mut first = [0u8; 8];
            file.read_exact(&mut first)?;
            if &first != b"XTENSION" {
                start += BLOCK;
                continue;
            }
            file.seek(SeekFrom::Start(start))?;
        }
        let mut header = Header::default();
        let mut blocks = 0u64;
        let mut ended = false;
        // A last partial block is read too: its cards are checked like any other.
        while !ended && start + blocks * BLOCK < size {
            let n = (size - start - blocks * BLOCK).min(BLOCK) as usize;
            file.read_exact(&mut block[..n])?;
            blocks += 1;
            if blocks == 1 {
                let first: &[u8] = if hdu == 0 { b"SIMPLE  " } else { b"XTENSION" };
                standard &= block[..n].starts_with(first);
            }
            for (i, card) in block[..n - n % CARD].chunks(CARD).enumerate() {
                let number = (blocks as usize - 1) * (BLOCK as usize / CARD) + i + 1;
                if card.starts_with(b"END     ") || card == b"END" {
                    ended = true;
                    break;
                }
                if let Some(keyword) = header.take(card) {
                    return Ok(Scan {
                        bad: Some(BadCard {
                            hdu,
                            card: number,
                            keyword,
                        }),
                        hdus: None,
                    });
                }
            }
        }
        if !ended {
            return Ok(Scan::default());
        }
        start += blocks * BLOCK;
        match header.data_bytes() {
            Some(data) if exact => start += data.div_ceil(BLOCK).saturating_mul(BLOCK),
            _ => exact = false,
        }
        hdu += 1;
    }
    Ok(Scan {
        bad: None,
        hdus: (exact && standard && start == size).then_some(hdu),
    })
}

/// Where a card's `=` is: column 9 as the standard has it, or — as cfitsio also reads
/// `TTYPE8=  999…` (a value indicator before column 9, the long-keyword form) — the first `=` of a
/// card that is not commentary (COMMENT, HISTORY, CONTINUE, a blank keyword). None: no value.
fn value_indicator(card: &[u8]) -> Option<usize> {
    if card.len() < 10 {
        return None;
    }
    if card[8] == b'=' {
        return Some(8);
    }
    let commentary = [b"COMMENT ", b"HISTORY ", b"CONTINUE", b"        "];
    if commentary.iter().any(|k| card.starts_with(*k)) {
        return None;
    }
    card.iter()
        .position(|&c| c == b'=')
        .filter(|&i| i + 1 < card.len())
}

/// The keywords of one header that size its data.
#[derive(Default)]
struct Header {
    bitpix: Option<i64>,
    naxis: Option<usize>,
    axes: Vec<(usize, u64)>,
    pcount: u64,
    gcount: Option<u64>,
}

impl Header {
    /// Records the card; the keyword if its value is unsafe for cfitsio.
    fn take(&mut self, card: &[u8]) -> Option<String> {
        let eq = value_indicator(card)?;
        let keyword = String::from_utf8_lossy(&card[..eq.min(8)])
            .trim_end()
            .to_string();
        let value = &card[eq + 1..];
        // Only blanks separate a value from `=` for cfitsio (a form feed is part of the value).
        let text = &value[value.iter().take_while(|&&c| c == b' ').count()..];
        if !text.starts_with(b"'") {
            let token = text.iter().take_while(|&&c| c != b' ' && c != b'/').count();
            if token > LONGEST_UNQUOTED {
                return Some(keyword);
            }
        }
        let number = || -> Option<i64> {
            let t = std::str::from_utf8(text).ok()?;
            t.split('/').next()?.trim().parse().ok()
        };
        match keyword.as_str() {
            "BITPIX" => self.bitpix = number(),
            "NAXIS" => self.naxis = number().and_then(|n| usize::try_from(n).ok()),
            "PCOUNT" => self.pcount = number().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            "GCOUNT" => self.gcount = number().and_then(|n| u64::try_from(n).ok()),
            k if k.starts_with("NAXIS") => {
                if let (Ok(i), Some(n)) = (k[5..].parse::<usize>(), number()) {
                    self.axes.push((i, u64::try_from(n).unwrap_or(0)));
                }
            }
            _ => {}
        }
        None
    }

    /// Data bytes announced by the header (None if it cannot be told: cfitsio decides).
    fn data_bytes(&self) -> Option<u64> {
        let bytes = self.bitpix?.unsigned_abs() / 8;
        let naxis = self.naxis?;
        if naxis == 0 {
            return Some(0);
        }
        let mut product: u64 = 1;
        for i in 1..=naxis {
            let n = self.axes.iter().find(|(k, _)| *k == i)?.1;
            product = product.checked_mul(n)?;
        }
        let gcount = self.gcount.unwrap_or(1);
        bytes
            .checked_mul(gcount)?
            .checked_mul(product.checked_add(self.pcount)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(text: &str) -> String {
        format!("{text:<80}")
    }

    fn file(cards: &[String]) -> Vec<u8> {
        let mut h: String = cards.concat();
        h.push_str(&card("END"));
        while !h.len().is_multiple_of(2880) {
            h.push(' ');
        }
        h.into_bytes()
    }

    /// A primary HDU and an empty binary table whose header ends with `extra` cards (from card 8);
    /// the first unsafe card `check` finds in it.
    fn first_bad_card(extra: &[String]) -> Option<BadCard> {
        let mut bytes = file(&[
            card("SIMPLE  =                    T"),
            card("BITPIX  =                    8"),
            card("NAXIS   =                    0"),
            card("EXTEND  =                    T"),
        ]);
        let mut table = vec![
            card("XTENSION= 'BINTABLE'"),
            card("BITPIX  =                    8"),
            card("NAXIS   =                    2"),
            card("NAXIS1  =                    0"),
            card("NAXIS2  =                    0"),
            card("PCOUNT  =                    0"),
            card("GCOUNT  =                    1"),
        ];
        table.extend_from_slice(extra);
        bytes.extend(file(&table));
        let size = bytes.len() as u64;
        check(&mut std::io::Cursor::new(bytes), size).unwrap().bad
    }

    #[test]
    fn a_long_unquoted_value_is_refused_with_its_place() {
        let bad = first_bad_card(&[card(&format!("TTYPE1  ={}", "e".repeat(71)))]);
        assert_eq!(
            bad,
            Some(BadCard {
                hdu: 1,
                card: 8,
                keyword: "TTYPE1".into()
            })
        );
    }

    #[test]
    fn a_value_indicator_before_column_9_is_checked_too() {
        // The fuzzer's fourth crash: `TTYPE8=  9…` (71 nines) aborted cfitsio 4.2 in ffgtbp; a
        // commentary card with a long `a=…` is no value and passes.
        let bad = first_bad_card(&[
            card(&format!("HISTORY a={}", "h".repeat(69))),
            card(&format!("TTYPE8=  {}", "9".repeat(71))),
        ]);
        assert_eq!(
            bad,
            Some(BadCard {
                hdu: 1,
                card: 9,
                keyword: "TTYPE8".into()
            })
        );
    }

    #[test]
    fn a_header_of_unknown_size_does_not_hide_the_next_ones() {
        let mut bytes = file(&[
            card("SIMPLE  =                    T"),
            card("BITPIX  =                    8"),
            card("NAXIS   =                      / empty: cfitsio reads on"),
        ]);
        bytes.extend(vec![b' '; 2880]);
        bytes.extend(file(&[
            card("XTENSION= 'BINTABLE'"),
            card(&format!("TTYPE8  ={}", "9".repeat(71))),
        ]));
        let size = bytes.len() as u64;
        let bad = check(&mut std::io::Cursor::new(bytes), size).unwrap().bad;
        assert_eq!(bad.map(|b| b.keyword).as_deref(), Some("TTYPE8"));
    }

    #[test]
    fn ordinary_headers_pass() {
        let mut bytes = file(&[
            card("SIMPLE  =                    T"),
            card("BITPIX  =                  -32"),
            card("NAXIS   =                    2"),
            card("NAXIS1  =                   10"),
            card("NAXIS2  =                    3"),
            card(&format!("LONGSTR = '{}'", "x".repeat(68))),
            card("COMMENT a comment with = signs = and a very long text ......................."),
        ]);
        bytes.extend(vec![0u8; 2880]);
        let size = bytes.len() as u64;
        let scan = check(&mut std::io::Cursor::new(bytes.clone()), size).unwrap();
        assert_eq!(
            scan,
            Scan {
                bad: None,
                hdus: Some(1)
            }
        );
        // Trailing bytes, a second header that is not an extension, a header of unknown data size:
        // the count is left to cfitsio.
        let count = |b: &[u8]| {
            check(&mut std::io::Cursor::new(b), b.len() as u64)
                .unwrap()
                .hdus
        };
        let mut trailing = bytes.clone();
        trailing.extend(vec![0u8; 100]);
        assert_eq!(count(&trailing), None);
        let mut not_an_extension = bytes.clone();
        not_an_extension.extend(file(&[card("SIMPLE  =                    T")]));
        assert_eq!(count(&not_an_extension), None);
        let mut extension = bytes.clone();
        extension.extend(file(&[
            card("XTENSION= 'IMAGE   '"),
            card("BITPIX  =                    8"),
            card("NAXIS   =                    0"),
        ]));
        assert_eq!(count(&extension), Some(2));
        let unknown = file(&[
            card("SIMPLE  =                    T"),
            card("BITPIX  =                    8"),
            card("NAXIS   =                      / empty"),
        ]);
        assert_eq!(count(&unknown), None);
    }
}
