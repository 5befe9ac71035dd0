//! The named filters of `boss-query` (`--cone`, `--z-min`, `--z-max`, `--class`, `--zwarning-zero`,
//! `--primary`) as the SQL they stand for, combined with any `--where` expressions by AND: one
//! expression, run by the SQL engine like any other.

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
        self.to_sql().is_some()
    }

    /// The filters as one SQL boolean expression (None: no filter). NULLs never pass: a row without
    /// a redshift is outside every redshift range.
    pub fn to_sql(&self) -> Option<String> {
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
        for w in &self.wheres {
            terms.push(format!("({w})"));
        }
        match terms.len() {
            0 => None,
            _ => Some(terms.join(" AND ")),
        }
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
        assert_eq!(Filters::default().to_sql(), None);
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
            f.to_sql().unwrap(),
            "in_cone(ra, dec, 10.0, -5.5, 0.25) AND z >= 0.5 AND upper(trim(class)) IN ('QSO', 'O''BRIEN') AND zwarning = 0 AND specprimary = true AND (sn_median_all > 5 OR z IS NULL)"
        );
        assert_eq!(number(1e-7), "1e-7");
    }
}
