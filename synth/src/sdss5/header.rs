//! Header cards from the data model: every card of the model's HDU, in its order, with its
//! comment; the value is the generator's where it has one (FIELDID, MJD, COEFF0, EXPIDnn, …),
//! else the model's example value. Cards that enumerate exposures are kept for the exposures
//! that exist.

use super::datamodel::{CardModel, HduModel, ModelValue};
use super::group::{Group, EXPOSURE_SECONDS};
use super::{COEFF1, NEXP, RUN2D};
use crate::fits::{Card, Value};

/// What a header is about, beyond its group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// Position (RA, DEC) of the target of a spec file.
    pub target: Option<(f64, f64)>,
    /// The exposure of a per-exposure HDU.
    pub exposure: Option<usize>,
    /// Rows of the file's image or table (DIMS1 of spZline).
    pub rows: usize,
    /// Emission lines per target (DIMS0 of spZline).
    pub lines: usize,
}

/// The cards of `hdu` for this group.
pub fn cards(hdu: &'static HduModel, g: &Group, ctx: Context) -> Vec<Card> {
    hdu.cards
        .iter()
        .filter(|c| applies(&c.key))
        .map(|c| Card {
            name: c.key.clone(),
            value: value(c, g, ctx).unwrap_or_else(|| c.value.to_value()),
            comment: &c.comment,
        })
        .collect()
}

/// False for the cards of exposures that do not exist: `EXPIDnn` beyond the 2 × NEXP
/// camera-exposures, and the per-exposure S/N fits (`SNC01G03`, `SN2_1R05`, …) beyond NEXP.
pub fn applies(key: &str) -> bool {
    let b = key.as_bytes();
    let num = |s: &[u8]| -> Option<usize> { std::str::from_utf8(s).ok()?.parse().ok() };
    if let Some(n) = key.strip_prefix("EXPID").and_then(|s| num(s.as_bytes())) {
        return (1..=2 * NEXP).contains(&n);
    }
    let per_exposure = b.len() == 8
        && (key.starts_with("SNC") || key.starts_with("SN2_"))
        && b[6].is_ascii_digit()
        && b[7].is_ascii_digit()
        && matches!(b[5], b'G' | b'R' | b'I');
    if per_exposure {
        return num(&b[6..]).is_some_and(|e| e < NEXP);
    }
    true
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The generator's value of a card, if it has one.
fn value(c: &CardModel, g: &Group, ctx: Context) -> Option<Value> {
    let e = ctx.exposure;
    let exp = e.unwrap_or(0);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let int = |v: i64| Some(Value::Int(v));
    let real = |v: f64| Some(Value::Real(v));
    let text = |v: String| Some(Value::Str(v));
    let sdr = |id: i64| text(format!("sdR-b1-{id:08}.fit"));
    match c.key.as_str() {
        "FIELDID" => match c.value {
            ModelValue::Int(_) => int(i64::from(g.obs_field)),
            _ => text(g.fieldid.clone()),
        },
        "MJD" => int(i64::from(g.mjd)),
        "RUN2D" | "RUN1D" | "VERS2D" | "VERS1D" | "VERSREAD" | "VERSCOMB" | "VERSLINE" => {
            text(RUN2D.to_string())
        }
        "COEFF0" | "CRVAL1" => real(g.coeff0),
        "COEFF1" | "CD1_1" => real(COEFF1),
        "NEXP" | "NEXP_B1" | "NEXP_R1" => int(NEXP as i64),
        "NEXP_B2" | "NEXP_R2" => int(0),
        "EXPT_B1" | "EXPT_R1" => real(g.exptime()),
        "EXPT_B2" | "EXPT_R2" => real(0.0),
        "EXPTIME" | "REQTIME" if e.is_some() => real(EXPOSURE_SECONDS),
        "EXPTIME" => real(g.exptime()),
        "BESTEXP" => int(g.expids[NEXP / 2]),
        k if k.starts_with("EXPID") => {
            let n: usize = k[5..].parse().ok()?;
            text(g.expid_string(n - 1))
        }
        "RA" | "RADEG" => real(g.ra),
        "DEC" | "DECDEG" => real(g.dec),
        "PLUG_RA" => ctx.target.map(|t| Value::Real(t.0)),
        "PLUG_DEC" => ctx.target.map(|t| Value::Real(t.1)),
        "TAI-BEG" => real(g.tai_beg[exp]),
        "TAI-END" => real(match e {
            Some(x) => g.tai_beg[x] + EXPOSURE_SECONDS,
            None => g.tai_beg[NEXP - 1] + EXPOSURE_SECONDS,
        }),
        "TAI" => real(mean(&std::array::from_fn::<_, NEXP, _>(|x| g.tai_mid(x)))),
        "DATE-OBS" => text(iso_date(g.tai_beg[exp])),
        "MJDLIST" => text(g.mjd.to_string()),
        "DESIGNS" => text(list(g.designs)),
        "CONFIGS" => text(list(g.configs)),
        "DESIGNID" => int(g.designs[exp]),
        "CONFID" => int(g.configs[exp]),
        "CONFSFIL" => text(format!("confSummaryF-{}.par", g.configs[exp])),
        "EXPOSURE" => int(g.expids[exp]),
        "FILENAME" | "OBJFILE" => sdr(g.expids[exp]),
        "FLATFILE" => sdr(g.flat_id),
        "ARCFILE" => sdr(g.arc_id),
        "AIRMASS" => real(match e {
            Some(x) => g.airmass[x],
            None => mean(&g.airmass),
        }),
        "SEEING50" => real(match e {
            Some(x) => g.seeing[x],
            None => mean(&g.seeing),
        }),
        "HELIO_RV" | "V_RAD" => real((g.helio_rv * 1e6).round() / 1e6),
        "MOONFRAC" => real((g.moon_phase * 1e6).round() / 1e6),
        "DIMS0" => int(ctx.lines as i64),
        "DIMS1" => int(ctx.rows as i64),
        _ => None,
    }
}

/// `YYYY-MM-DDThh:mm:ss` of a TAI in MJD seconds (leap seconds ignored).
pub fn iso_date(tai: f64) -> String {
    let secs = tai.max(0.0) as i64;
    // MJD 0 is 1858-11-17; days from 1970-01-01 (civil-from-days, H. Hinnant).
    let days = secs.div_euclid(86_400) - 40_587;
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_cards_are_kept_for_existing_exposures() {
        assert!(applies("EXPID01") && applies("EXPID04"));
        assert!(!applies("EXPID05") && !applies("EXPID16"));
        assert!(applies("SNC01G00") && applies("SN2_1R01"));
        assert!(!applies("SNC11I02") && !applies("SN2_2G07"));
        assert!(applies("SNC01G") && applies("REDDEN05") && applies("RMSOFF20"));
    }

    #[test]
    fn dates_of_the_model_example() {
        // The model's exposure: TAI-BEG 5184019757.0 is DATE-OBS 2023-02-25T05:29:17 (TAI).
        assert_eq!(iso_date(5_184_019_757.0), "2023-02-25T05:29:17");
    }
}
