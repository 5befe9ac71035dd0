//! The keywords of one header, read once when its HDU is selected: lookups by name are answered
//! from a map instead of a cfitsio scan of the header per keyword (SDSS-V headers hold thousands
//! of cards, and a header is consulted many times per HDU). A card's value is split from it (by
//! cfitsio's `ffpsvc`, which the caller passes) only when it is looked up: most cards never are.
//! Values are converted as cfitsio's `ffgkys`/`ffgky` convert them: strings unquoted with `''` as a
//! quote and trailing blanks dropped, numbers with a `D` exponent, logicals as 1/0, quoted numbers
//! as numbers.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// What the index knows of a keyword.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    /// Present with this value text (as cfitsio splits it from the card: quotes kept, comment dropped).
    Value(&'a str),
    /// Certainly not in the header.
    Absent,
    /// A name the index does not decide (HIERARCH, longer than 8 characters, a card without a
    /// value indicator such as COMMENT, or a value cfitsio cannot split): ask cfitsio.
    Ask,
}

/// A keyword name of at most 8 bytes, upper-cased and blank-padded.
type Name = [u8; 8];

fn name_of(text: &[u8]) -> Name {
    let mut n = [b' '; 8];
    for (d, s) in n.iter_mut().zip(text) {
        *d = s.to_ascii_uppercase();
    }
    n
}

/// A hash of keyword names: two multiply-mix rounds over the 8 name bytes (std's SipHash was 8%
/// of reading SDSS-V spec files, whose headers hold hundreds of cards). Names come from files,
/// but a header's cards are bounded by its size, so a crafted collision costs only time.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(23) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn finish(&self) -> u64 {
        let x = self.0 ^ (self.0 >> 32);
        x.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (x >> 29)
    }
}

type NameMap<V> = HashMap<Name, V, BuildHasherDefault<NameHasher>>;
type NameSet = HashSet<Name, BuildHasherDefault<NameHasher>>;

/// The first valued card of a name: where its text is, and its value once split.
#[derive(Debug)]
struct Valued {
    card: std::ops::Range<usize>,
    value: OnceCell<Option<String>>,
}

/// The keyword names of one header, and for each the first card with a value indicator.
#[derive(Debug, Default)]
pub struct HeaderIndex {
    text: Vec<u8>,
    values: NameMap<Valued>,
    names: NameSet,
}

impl HeaderIndex {
    /// Adds one card: its upper-cased name (the first 8 bytes) and, for a card with a value
    /// indicator, where its text is (the value is split on lookup).
    pub fn add(&mut self, card: &[u8]) {
        let name = name_of(&card[..card.len().min(8)]);
        let valued = card.len() >= 10 && &card[8..10] == b"= ";
        if valued && &name != b"HIERARCH" && !self.values.contains_key(&name) {
            let at = self.text.len();
            self.text.extend_from_slice(card);
            self.values.insert(
                name,
                Valued {
                    card: at..self.text.len(),
                    value: OnceCell::new(),
                },
            );
        }
        self.names.insert(name);
        // cfitsio names a card by its text up to the first blank or `=`, and reads `BITPIX=  -32`
        // (a value indicator before column 9) as BITPIX: such a name is left to cfitsio (Ask).
        let short = card.iter().take_while(|&&b| b != b' ' && b != b'=').count();
        if short < 8 && card.get(short) == Some(&b'=') {
            let name = name_of(&card[..short]);
            if !self.values.contains_key(&name) {
                self.names.insert(name);
            }
        }
    }

    /// What the header holds of `key`; `split` gives a card's value text (cfitsio's `ffpsvc`),
    /// called once per card looked up.
    pub fn lookup(&self, key: &str, split: impl FnOnce(&[u8]) -> Option<String>) -> Lookup<'_> {
        let k = key.trim();
        let standard = k.len() <= 8
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !standard {
            return Lookup::Ask;
        }
        let k = name_of(k.as_bytes());
        match self.values.get(&k) {
            Some(v) => match v.value.get_or_init(|| split(&self.text[v.card.clone()])) {
                Some(text) => Lookup::Value(text),
                None => Lookup::Ask,
            },
            None if self.names.contains(&k) => Lookup::Ask,
            None => Lookup::Absent,
        }
    }
}

/// The text of a value: a quoted string unquoted (`''` is one quote, trailing blanks dropped), any
/// other value as it is. `None` for an undefined (empty) value.
pub fn string_value(v: &str) -> Option<String> {
    let v = v.trim_start();
    if v.is_empty() {
        return None;
    }
    let Some(body) = v.strip_prefix('\'') else {
        return Some(v.trim_end().to_string());
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
                continue;
            }
            break;
        }
        out.push(c);
    }
    Some(out.trim_end().to_string())
}

/// A value as a number: integers and reals (`E` or `D` exponent), logicals T/F as 1/0, a quoted
/// number as that number. `None` when it is not a number.
pub fn number_value(v: &str) -> Option<Number> {
    let s = string_value(v)?;
    let s = s.trim();
    match s {
        "T" => return Some(Number::Int(1)),
        "F" => return Some(Number::Int(0)),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Number::Int(i));
    }
    let real = s.replace(['D', 'd'], "E");
    if !real.bytes().any(|b| b.is_ascii_digit()) {
        return None; // "NaN", "inf" and the like are not numbers to cfitsio
    }
    real.parse::<f64>().ok().map(Number::Real)
}

/// A numeric value, integer or real as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Real(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Real(f) => f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_unquote_as_cfitsio_does() {
        assert_eq!(string_value("'SPALL   '").as_deref(), Some("SPALL"));
        assert_eq!(string_value("'it''s'").as_deref(), Some("it's"));
        assert_eq!(string_value("'  lead'").as_deref(), Some("  lead"));
        assert_eq!(string_value("''").as_deref(), Some(""));
        assert_eq!(string_value("  42").as_deref(), Some("42"));
        assert_eq!(string_value(""), None);
    }

    #[test]
    fn numbers_as_written() {
        assert_eq!(number_value("7000"), Some(Number::Int(7000)));
        assert_eq!(number_value("7000.5"), Some(Number::Real(7000.5)));
        assert_eq!(number_value("1.5D3"), Some(Number::Real(1500.0)));
        assert_eq!(number_value("-2.0E-1"), Some(Number::Real(-0.2)));
        assert_eq!(number_value("T"), Some(Number::Int(1)));
        assert_eq!(number_value("'12'"), Some(Number::Int(12)));
        assert_eq!(number_value("'abc'"), None);
        assert_eq!(number_value("NaN"), None);
    }

    #[test]
    fn lookups_tell_absent_from_undecided() {
        let mut h = HeaderIndex::default();
        let card = |s: &str| format!("{s:<80}").into_bytes();
        // A stand-in for ffpsvc: the text after `= ` up to a `/`.
        let split = |c: &[u8]| {
            let t = String::from_utf8_lossy(&c[10..]).to_string();
            Some(t.split('/').next().unwrap_or("").trim().to_string())
        };
        h.add(&card("NAXIS   =                    2"));
        h.add(&card("NAXIS   =                    3"));
        h.add(&card("COMMENT a comment"));
        h.add(&card("HIERARCH ESO X = 1"));
        h.add(&card("BAD     = 'unsplittable"));
        assert_eq!(h.lookup("naxis", split), Lookup::Value("2"));
        assert_eq!(h.lookup("TZERO1", split), Lookup::Absent);
        assert_eq!(h.lookup("COMMENT", split), Lookup::Ask);
        assert_eq!(h.lookup("ESO X", split), Lookup::Ask);
        assert_eq!(h.lookup("LONGKEYWORD", split), Lookup::Ask);
        // A value cfitsio cannot split is left to cfitsio; the split is asked once per card.
        let calls = std::cell::Cell::new(0);
        let failing = |_: &[u8]| {
            calls.set(calls.get() + 1);
            None
        };
        assert_eq!(h.lookup("BAD", failing), Lookup::Ask);
        assert_eq!(h.lookup("BAD", failing), Lookup::Ask);
        assert_eq!(calls.get(), 1);
        // The value indicator before column 9, which cfitsio reads: not "absent", ask cfitsio.
        h.add(&card("BITPIX=                -32"));
        assert_eq!(h.lookup("BITPIX", split), Lookup::Ask);
    }
}
