//! The named filters of `boss-query` (`--cone`, `--z-min`, `--z-max`, `--class`, `--zwarning-zero`,
//! `--primary`) as the SQL they stand for, beside any `--where` expressions: a list of terms, each
//! parsed on its own and combined with AND as expression trees (never pasted into one SQL text, so
//! no term can escape into another).

use crate::columns::{CLASS, DEC, RA, SPECPRIMARY, Z, ZWARNING};
use crate::sky::Cone;

/// The catalog filters of a query (all combine with AND).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Filters {
    pub cone: Option<Cone>,
    pub z_min: Option<f64>,
    pub z_max: Option<f64>,
    /// Any of these classes (case and surrounding blanks ignored).
    pub classes: Vec<String>,
    pub zwarning_zero: bool,
    pub primary: bool,
    /// SQL boolean expressions over any catalog columns.
    pub wheres: Vec<String>,
}

impl Filters {
    /// True when some filter is set.
    pub fn any(&self) -> bool {
        !self.terms().is_empty()
    }

    /// The filters as SQL boolean expressions, one per filter, to be parsed one by one and
    /// combined with AND. NULLs never pass: a row without a redshift is outside every redshift range.
    pub fn terms(&self) -> Vec<String> {
        let mut terms: Vec<String> = Vec::new();
        if let Some(c) = &self.cone {
            terms.push(format!(
                "in_cone({RA}, {DEC}, {:?}, {:?}, {:?})",
                c.ra, c.dec, c.radius
            ));
        }
        if let Some(z) = self.z_min {
            terms.push(format!("{Z} >= {}", number(z)));
        }
        if let Some(z) = self.z_max {
            terms.push(format!("{Z} <= {}", number(z)));
        }
        if !self.classes.is_empty() {
            let list: Vec<String> = self
                .classes
                .iter()
                .map(|c| quoted(&c.trim().to_ascii_uppercase()))
                .collect();
            terms.push(format!("upper(trim({CLASS})) IN ({})", list.join(", ")));
        }
        if self.zwarning_zero {
            terms.push(format!("{ZWARNING} = 0"));
        }
        if self.primary {
            terms.push(format!("{SPECPRIMARY} = true"));
        }
        terms.extend(self.wheres.iter().cloned());
        terms
    }
}

/// A float as SQL: NaN matches nothing, as a NaN limit always did.
fn number(v: f64) -> String {
    if v.is_nan() {
        "CAST('NaN' AS DOUBLE)".into()
    } else if v.is_infinite() {
        format!("CAST('{}' AS DOUBLE)", if v > 0.0 { "inf" } else { "-inf" })
    } else {
        format!("{v:?}")
    }
}

/// A SQL string literal.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_sql() {
        assert!(Filters::default().terms().is_empty());
        let f = Filters {
            cone: Some(Cone::new(10.0, -5.5, 0.25).unwrap()),
            z_min: Some(0.5),
            classes: vec![" qso".into(), "O'Brien".into()],
            zwarning_zero: true,
            primary: true,
            wheres: vec!["sn_median_all > 5 OR z IS NULL".into()],
            ..Default::default()
        };
        assert_eq!(
            f.terms(),
            [
                "in_cone(ra, dec, 10.0, -5.5, 0.25)",
                "z >= 0.5",
                "upper(trim(class)) IN ('QSO', 'O''BRIEN')",
                "zwarning = 0",
                "specprimary = true",
                "sn_median_all > 5 OR z IS NULL"
            ]
        );
        assert_eq!(number(1e-7), "1e-7");
    }
}
