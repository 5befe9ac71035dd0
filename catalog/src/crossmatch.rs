//! Crossmatch of a user's target list with the catalog: for each target the nearest fiber within a
//! radius (or every fiber within it). Positions are unit vectors in a k-d tree (kiddo), so RA 0/360
//! and the poles need no special case; the tree finds candidates by chord length and the reported
//! separation is the great-circle distance.

use std::path::Path;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use model::message::excerpt;
use model::table_text::{read_text, records};

use crate::error::CatalogError;
use crate::sky::{angular_distance, chord_squared, unit_vector, Angle};

/// A target list: `ra` and `dec` columns in degrees (any case), other columns carried along as text.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub header: Vec<String>,
    /// Every field of every target, as written.
    pub rows: Vec<Vec<String>>,
    /// Line of each target in the file.
    pub lines: Vec<usize>,
    pub ra: Vec<f64>,
    pub dec: Vec<f64>,
}

impl Targets {
    pub fn len(&self) -> usize {
        self.ra.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ra.is_empty()
    }
}

/// Reads a target list. Errors name the file and the line.
pub fn read_targets(path: &Path) -> Result<Targets, CatalogError> {
    let input = |m: String| CatalogError::Input(m);
    let (name, text) = read_text(path).map_err(|e| input(e.to_string()))?;
    let recs = records(&text, &name).map_err(|e| input(e.to_string()))?;
    let Some(((_, _, header), body)) = recs.split_first() else {
        return Err(input(format!("{name}: the target list is empty")));
    };
    let find = |want: &str| header.iter().position(|h| h.eq_ignore_ascii_case(want));
    let (Some(ra_col), Some(dec_col)) = (find("ra"), find("dec")) else {
        return Err(input(format!(
            "{name}: line 1: the header needs ra and dec columns (degrees); it has {}",
            excerpt(&header.join(", "))
        )));
    };
    let mut t = Targets {
        header: header.clone(),
        ..Default::default()
    };
    for (line, text, fields) in body {
        if fields.len() != header.len() {
            return Err(input(format!(
                "{name}: line {line}: {} fields, the header has {}: {}",
                fields.len(),
                header.len(),
                excerpt(text)
            )));
        }
        let number = |col: usize, what: &str| -> Result<f64, CatalogError> {
            let v = fields[col].trim();
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    input(format!(
                        "{name}: line {line}: {what} {} is not a number: {}",
                        excerpt(v),
                        excerpt(text)
                    ))
                })
        };
        let ra = number(ra_col, "ra")?;
        let dec = number(dec_col, "dec")?;
        if !(-360.0..=360.0).contains(&ra) {
            return Err(input(format!(
                "{name}: line {line}: ra {ra} is not in [0, 360] degrees: {}",
                excerpt(text)
            )));
        }
        if !(-90.0..=90.0).contains(&dec) {
            return Err(input(format!(
                "{name}: line {line}: dec {dec} is not in [-90, 90] degrees: {}",
                excerpt(text)
            )));
        }
        t.ra.push(ra.rem_euclid(360.0));
        t.dec.push(dec);
        t.rows.push(fields.clone());
        t.lines.push(*line);
    }
    if t.is_empty() {
        return Err(input(format!(
            "{name}: the target list has no targets after its header"
        )));
    }
    Ok(t)
}

/// One match: target `target` and catalog position `position` (an index into the positions given
/// to [`crossmatch`]), `separation` degrees apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub target: usize,
    pub position: usize,
    pub separation: f64,
}

/// How far f32 unit vectors may be from the true ones, as a chord (a few f32 roundings of each
/// component: ≈ 1e-7; this is ten times that).
const F32_SLACK: f64 = 1e-6;

/// Matches targets with catalog positions: for each target the nearest position within `radius`
/// (every one within it with `all`, nearest first). Matches are in target order.
pub fn crossmatch(
    positions: &[(f64, f64)],
    targets: &[(f64, f64)],
    radius: Angle,
    all: bool,
) -> Result<Vec<Match>, CatalogError> {
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    // The tree holds f32 unit vectors (half the memory and faster to build); it only proposes
    // candidates, within the radius's chord widened by f32 rounding (≈ 0.2"), and each candidate's
    // separation is then computed exactly in f64: the matches are those of an exact search.
    let points: Vec<[f32; 3]> = positions
        .iter()
        .map(|&(r, d)| unit_vector(r, d).map(|x| x as f32))
        .collect();
    let tree: ImmutableKdTree<f32, 3> = ImmutableKdTree::new_from_slice(&points)
        .map_err(|e| CatalogError::Input(format!("cannot index the catalog positions: {e:?}")))?;
    let reach = (chord_squared(radius.degrees).sqrt() + F32_SLACK).powi(2) as f32;
    let mut out = Vec::new();
    for (t, &(ra, dec)) in targets.iter().enumerate() {
        let q = unit_vector(ra, dec).map(|x| x as f32);
        let mut found: Vec<Match> = tree
            .query(&q)
            .within::<SquaredEuclidean<f32>>(reach)
            .execute()
            .into_iter()
            .map(|n| {
                let i = n.item as usize;
                Match {
                    target: t,
                    position: i,
                    separation: angular_distance(ra, dec, positions[i].0, positions[i].1),
                }
            })
            .filter(|m| m.separation <= radius.degrees)
            .collect();
        found.sort_by(|a, b| {
            a.separation
                .total_cmp(&b.separation)
                .then(a.position.cmp(&b.position))
        });
        if !all {
            found.truncate(1);
        }
        out.extend(found);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn brute(positions: &[(f64, f64)], t: (f64, f64), radius: f64) -> Vec<(usize, f64)> {
        let mut v: Vec<(usize, f64)> = positions
            .iter()
            .enumerate()
            .map(|(i, p)| (i, angular_distance(t.0, t.1, p.0, p.1)))
            .filter(|(_, d)| *d <= radius)
            .collect();
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        v
    }

    #[test]
    fn matches_brute_force_across_ra_zero_and_the_poles() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut positions: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                (
                    rng.random_range(0.0..360.0),
                    rng.random_range(-1.0f64..1.0).asin().to_degrees(),
                )
            })
            .collect();
        // Dense patches at RA 0/360 and at both poles.
        for _ in 0..2000 {
            positions.push((rng.random_range(359.9..360.0), rng.random_range(-0.1..0.1)));
            positions.push((rng.random_range(0.0..0.1), rng.random_range(-0.1..0.1)));
            positions.push((rng.random_range(0.0..360.0), rng.random_range(89.95..=90.0)));
            positions.push((
                rng.random_range(0.0..360.0),
                rng.random_range(-90.0..-89.95),
            ));
        }
        let mut targets: Vec<(f64, f64)> =
            vec![(0.0, 0.0), (359.99, 0.0), (0.0, 90.0), (123.0, -90.0)];
        for _ in 0..300 {
            let p = positions[rng.random_range(0..positions.len())];
            targets.push((
                (p.0 + rng.random_range(-0.01..0.01)).rem_euclid(360.0),
                (p.1 + rng.random_range(-0.01..0.01)).clamp(-90.0, 90.0),
            ));
        }
        let radius = Angle::parse("30arcsec").unwrap();
        let nearest = crossmatch(&positions, &targets, radius, false).unwrap();
        let every = crossmatch(&positions, &targets, radius, true).unwrap();
        let mut matched = 0;
        for (t, &target) in targets.iter().enumerate() {
            let want = brute(&positions, target, radius.degrees);
            let got_all: Vec<(usize, f64)> = every
                .iter()
                .filter(|m| m.target == t)
                .map(|m| (m.position, m.separation))
                .collect();
            assert_eq!(got_all.len(), want.len(), "target {t} {target:?}");
            let got: Vec<&Match> = nearest.iter().filter(|m| m.target == t).collect();
            match want.first() {
                Some(&(_, d)) => {
                    assert_eq!(got.len(), 1);
                    assert!((got[0].separation - d).abs() < 1e-12, "target {t}");
                    matched += 1;
                }
                None => assert!(got.is_empty()),
            }
        }
        assert!(matched > 200, "{matched}");
    }

    #[test]
    fn target_lists_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "\u{feff}name,RA,Dec\r\nq1,10.5,-3\nq2,359.9,89.5\n").unwrap();
        let t = read_targets(&p).unwrap();
        assert_eq!(
            (t.ra.clone(), t.dec.clone()),
            (vec![10.5, 359.9], vec![-3.0, 89.5])
        );
        assert_eq!(t.rows[1][0], "q2");
        assert_eq!(t.lines, vec![2, 3]);
        for (text, words) in [
            ("name,ra\nq,1\n", "needs ra and dec"),
            ("ra,dec\n1,x\n", "line 2: dec \"x\" is not a number"),
            ("ra,dec\n1,95\n", "line 2: dec 95"),
            ("ra,dec\n1,2,3\n", "line 2: 3 fields"),
            ("ra,dec\n", "no targets"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_targets(&p).unwrap_err().to_string();
            assert!(e.contains(words), "{text:?}: {e}");
        }
    }
}
