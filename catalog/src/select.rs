//! Selections over the catalog: a fiber list, a sky cone, a redshift range, classes and quality flags,
//! all combined with AND.
//!
//! [`Selection::select`] runs one fused pass over the catalog's typed column slices (no allocation per
//! row): cheap tests first (flags, z, class code), then the cone, which rejects rows outside its
//! declination band before any trigonometry.

use std::collections::HashSet;

use crate::index::{Catalog, NULL_CODE};
use model::FiberId;

/// A cone on the sky, in degrees: centre (ra, dec) and radius.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cone {
    pub ra: f64,
    pub dec: f64,
    pub radius: f64,
}

impl Cone {
    /// A validated cone: ra in [0, 360], dec in [-90, 90], radius in (0, 180], all finite.
    pub fn new(ra: f64, dec: f64, radius: f64) -> Result<Cone, String> {
        if !ra.is_finite() || !(0.0..=360.0).contains(&ra) {
            return Err(format!("cone RA {ra} is not in [0, 360] degrees"));
        }
        if !dec.is_finite() || !(-90.0..=90.0).contains(&dec) {
            return Err(format!("cone DEC {dec} is not in [-90, 90] degrees"));
        }
        if !radius.is_finite() || radius <= 0.0 || radius > 180.0 {
            return Err(format!("cone radius {radius} is not in (0, 180] degrees"));
        }
        Ok(Cone { ra, dec, radius })
    }

    /// Parses `RA,DEC,RADIUS` (degrees, spaces allowed around the numbers) and validates it.
    pub fn parse(s: &str) -> Result<Cone, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(format!(
                "cone {s:?}: expected RA,DEC,RADIUS (three numbers in degrees)"
            ));
        }
        let num = |what: &str, v: &str| {
            v.parse::<f64>()
                .map_err(|e| format!("cone {s:?}: {what} {v:?} is not a number: {e}"))
        };
        let ra = num("RA", parts[0])?;
        let dec = num("DEC", parts[1])?;
        let radius = num("radius", parts[2])?;
        Cone::new(ra, dec, radius).map_err(|e| format!("cone {s:?}: {e}"))
    }

    /// True if (ra, dec) in degrees is within the cone (boundary included). Non-finite positions are
    /// never inside. For many points use [`Cone::matcher`].
    pub fn contains(&self, ra: f64, dec: f64) -> bool {
        self.matcher().contains(ra, dec)
    }

    /// The cone with its constants precomputed.
    pub fn matcher(&self) -> ConeMatcher {
        ConeMatcher::new(self)
    }
}

impl std::fmt::Display for Cone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{},{},{}", self.ra, self.dec, self.radius)
    }
}

impl std::str::FromStr for Cone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Cone::parse(s)
    }
}

/// `cos` of an angle in degrees, exactly 0 at ±90 (so that the poles behave exactly).
#[inline]
fn cos_deg(x: f64) -> f64 {
    if x.abs() == 90.0 {
        0.0
    } else {
        x.to_radians().cos()
    }
}

/// `sin²(x/2)` of an angle in degrees.
#[inline]
fn hav_deg(x: f64) -> f64 {
    let s = (x.to_radians() * 0.5).sin();
    s * s
}

/// RA difference folded into [-180, 180] degrees.
#[inline]
fn fold_ra(d: f64) -> f64 {
    let d = d % 360.0;
    if d > 180.0 {
        d - 360.0
    } else if d < -180.0 {
        d + 360.0
    } else {
        d
    }
}

/// Haversine of the great-circle distance between two points (degrees): `sin²(d/2)`, in [0, 1].
/// Accurate for small distances, at the poles and across RA = 0/360.
#[inline]
fn hav_distance(ra1: f64, dec1: f64, cos_dec1: f64, ra2: f64, dec2: f64) -> f64 {
    hav_deg(dec2 - dec1) + cos_dec1 * cos_deg(dec2) * hav_deg(fold_ra(ra2 - ra1))
}

/// Great-circle distance between two positions, in degrees (haversine formula).
pub fn angular_distance(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let h = hav_distance(ra1, dec1, cos_deg(dec1), ra2, dec2).clamp(0.0, 1.0);
    (2.0 * h.sqrt().asin()).to_degrees()
}

/// A [`Cone`] with its constants computed once: `cos(dec0)`, `sin²(radius/2)` and the declination
/// band that bounds it.
#[derive(Debug, Clone, Copy)]
pub struct ConeMatcher {
    ra0: f64,
    dec0: f64,
    cos_dec0: f64,
    /// `sin²(radius/2)`, widened by a few ulps so that a point exactly on the boundary is inside
    /// despite rounding.
    hav_r: f64,
    /// Points with `|dec - dec0|` above this cannot be inside (the distance is at least |Δdec|).
    dec_band: f64,
    /// When the cone contains no pole: points with `|ΔRA|` (folded) above this cannot be inside
    /// (`sin ΔRA_max = sin r / cos dec0`); infinite otherwise.
    ra_band: f64,
    /// Radius 180: every position is inside.
    everything: bool,
}

/// Relative widening of the haversine threshold: a few ulps of the computation, far below any
/// meaningful angle (1e-13 relative to the radius).
const HAV_SLACK: f64 = 1.0 + 32.0 * f64::EPSILON;

impl ConeMatcher {
    pub fn new(c: &Cone) -> Self {
        Self {
            ra0: c.ra,
            dec0: c.dec,
            cos_dec0: cos_deg(c.dec),
            hav_r: hav_deg(c.radius) * HAV_SLACK,
            dec_band: c.radius * (1.0 + 1e-12) + 1e-12,
            ra_band: if c.dec.abs() + c.radius < 89.9 {
                let s = c.radius.to_radians().sin() / c.dec.to_radians().cos();
                s.asin().to_degrees() * (1.0 + 1e-9) + 1e-9
            } else {
                f64::INFINITY
            },
            everything: c.radius >= 180.0,
        }
    }

    /// True if (ra, dec) in degrees is inside the cone (boundary included).
    #[inline]
    pub fn contains(&self, ra: f64, dec: f64) -> bool {
        self.in_band(dec) && self.contains_in_band(ra, dec)
    }

    /// The cheap necessary condition: `dec` is finite and within the cone's declination band.
    #[inline]
    fn in_band(&self, dec: f64) -> bool {
        (dec - self.dec0).abs() <= self.dec_band
    }

    /// The exact test, for a `dec` that passed [`ConeMatcher::in_band`].
    #[inline]
    fn contains_in_band(&self, ra: f64, dec: f64) -> bool {
        let dra = fold_ra(ra - self.ra0);
        dra.abs() <= self.ra_band
            && (self.everything || {
                let hav = hav_deg(dec - self.dec0) + self.cos_dec0 * cos_deg(dec) * hav_deg(dra);
                hav <= self.hav_r
            })
    }
}

/// Which fibers a query wants: every set criterion must hold (AND). The default selects everything.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    /// Only these fibers (those absent from the catalog are simply not selected).
    pub fibers: Option<HashSet<FiberId>>,
    /// Only positions inside this cone; rows with null ra/dec never match.
    pub cone: Option<Cone>,
    /// `z >= z_min`; rows with null z never match a z limit.
    pub z_min: Option<f64>,
    /// `z <= z_max`.
    pub z_max: Option<f64>,
    /// Only these classes (case-insensitive, surrounding blanks ignored); empty = any class.
    /// Rows with a null class never match a non-empty list.
    pub classes: Vec<String>,
    /// Only `zwarning == 0` (null never matches).
    pub zwarning_zero: bool,
    /// Only `specprimary == true` (null never matches).
    pub primary: bool,
}

impl Selection {
    /// True when no criterion is set: the selection is the whole catalog.
    pub fn is_empty_filter(&self) -> bool {
        self.fibers.is_none()
            && self.cone.is_none()
            && self.z_min.is_none()
            && self.z_max.is_none()
            && self.classes.is_empty()
            && !self.zwarning_zero
            && !self.primary
    }

    /// Row indices of the catalog that match, in key order.
    pub fn select(&self, cat: &Catalog) -> Vec<usize> {
        let pred = Predicate::new(self, cat);
        match &self.fibers {
            Some(set) => {
                let mut keys: Vec<i64> = set.iter().map(|f| f.key()).collect();
                keys.sort_unstable();
                keys.into_iter()
                    .filter_map(|k| cat.position(k))
                    .filter(|&i| pred.matches(i))
                    .collect()
            }
            None if pred.is_trivial() => (0..cat.len()).collect(),
            None => pred.scan(cat.len()),
        }
    }

    /// Number of matching rows.
    pub fn count(&self, cat: &Catalog) -> usize {
        match &self.fibers {
            Some(_) => self.select(cat).len(),
            None => Predicate::new(self, cat).scan(cat.len()).len(),
        }
    }

    /// True if row `i` of the catalog matches.
    pub fn matches(&self, cat: &Catalog, i: usize) -> bool {
        if let Some(set) = &self.fibers {
            if !set.contains(&cat.fiber_id(i)) {
                return false;
            }
        }
        Predicate::new(self, cat).matches(i)
    }
}

/// Rows per chunk of [`Predicate::scan`] (fits a `u16` index).
const SCAN_CHUNK: usize = 4096;

/// The non-fiber criteria of a selection bound to one catalog's columns.
struct Predicate<'a> {
    zwarning: Option<(&'a [i32], &'a [bool])>,
    primary: Option<(&'a [bool], &'a [bool])>,
    z: Option<(&'a [f32], &'a [bool], f64, f64)>,
    /// Class code -> accepted (indexed by the catalog's class dictionary).
    class: Option<(&'a [u32], Vec<bool>)>,
    cone: Option<ConeCols<'a>>,
}

/// A cone with the catalog's position columns.
struct ConeCols<'a> {
    m: ConeMatcher,
    ra: &'a [f64],
    ra_ok: &'a [bool],
    dec: &'a [f64],
    dec_ok: &'a [bool],
}

impl<'a> Predicate<'a> {
    fn new(sel: &Selection, cat: &'a Catalog) -> Self {
        let zwarning = sel
            .zwarning_zero
            .then(|| (cat.zwarning().values(), cat.zwarning().validity()));
        let primary = sel
            .primary
            .then(|| (cat.specprimary().values(), cat.specprimary().validity()));
        let z = (sel.z_min.is_some() || sel.z_max.is_some()).then(|| {
            (
                cat.z().values(),
                cat.z().validity(),
                // NaN limits match nothing, like NaN values.
                sel.z_min.unwrap_or(f64::NEG_INFINITY),
                sel.z_max.unwrap_or(f64::INFINITY),
            )
        });
        let class = (!sel.classes.is_empty()).then(|| {
            let wanted: Vec<&str> = sel.classes.iter().map(|c| c.trim()).collect();
            let ok = cat
                .class()
                .dict()
                .iter()
                .map(|d| wanted.iter().any(|w| w.eq_ignore_ascii_case(d.trim())))
                .collect();
            (cat.class().codes(), ok)
        });
        let cone = sel.cone.as_ref().map(|c| ConeCols {
            m: c.matcher(),
            ra: cat.ra().values(),
            ra_ok: cat.ra().validity(),
            dec: cat.dec().values(),
            dec_ok: cat.dec().validity(),
        });
        Self {
            zwarning,
            primary,
            z,
            class,
            cone,
        }
    }

    fn is_trivial(&self) -> bool {
        self.zwarning.is_none()
            && self.primary.is_none()
            && self.z.is_none()
            && self.class.is_none()
            && self.cone.is_none()
    }

    /// Indices in `0..n` that match: the catalog is taken in chunks, each criterion ANDs a
    /// branch-free mask over plain slices (the cone's band first, its trigonometry only for rows still
    /// in), then the mask is compacted without branches.
    fn scan(&self, n: usize) -> Vec<usize> {
        const CHUNK: usize = SCAN_CHUNK;
        let mut out = Vec::new();
        let mut mask = vec![true; CHUNK];
        let mut buf = vec![0usize; CHUNK];
        let mut start = 0;
        while start < n {
            let end = (start + CHUNK).min(n);
            let m = &mut mask[..end - start];
            m.fill(true);
            self.apply(start..end, m);
            let mut k = 0;
            for (j, &keep) in m.iter().enumerate() {
                buf[k] = start + j;
                k += keep as usize;
            }
            out.extend_from_slice(&buf[..k]);
            start = end;
        }
        out
    }

    /// ANDs every criterion for rows `r` into `m` (`m[j]` is row `r.start + j`).
    fn apply(&self, r: std::ops::Range<usize>, m: &mut [bool]) {
        if let Some((v, ok)) = self.zwarning {
            for ((m, &v), &ok) in m.iter_mut().zip(&v[r.clone()]).zip(&ok[r.clone()]) {
                *m &= ok & (v == 0);
            }
        }
        if let Some((v, ok)) = self.primary {
            for ((m, &v), &ok) in m.iter_mut().zip(&v[r.clone()]).zip(&ok[r.clone()]) {
                *m &= ok & v;
            }
        }
        if let Some((v, ok, lo, hi)) = self.z {
            for ((m, &v), &ok) in m.iter_mut().zip(&v[r.clone()]).zip(&ok[r.clone()]) {
                let z = v as f64;
                *m &= ok & (z >= lo) & (z <= hi);
            }
        }
        if let Some((codes, ok)) = &self.class {
            for (m, &c) in m.iter_mut().zip(&codes[r.clone()]) {
                // NULL_CODE is past the end of the table: never accepted.
                *m &= ok.get(c as usize).copied().unwrap_or(false);
            }
        }
        if let Some(c) = &self.cone {
            let (ra, dec) = (&c.ra[r.clone()], &c.dec[r.clone()]);
            for (((m, &d), &ra_ok), &dec_ok) in m
                .iter_mut()
                .zip(dec)
                .zip(&c.ra_ok[r.clone()])
                .zip(&c.dec_ok[r])
            {
                *m &= ra_ok & dec_ok & c.m.in_band(d);
            }
            // Only the rows in the band (usually few) get the trigonometry.
            let mut cand = [0u16; SCAN_CHUNK];
            let mut k = 0;
            for (j, &keep) in m.iter().enumerate() {
                cand[k] = j as u16;
                k += keep as usize;
            }
            for &j in &cand[..k] {
                let j = j as usize;
                m[j] = c.m.contains_in_band(ra[j], dec[j]);
            }
        }
    }

    #[inline]
    fn matches(&self, i: usize) -> bool {
        if let Some((v, ok)) = self.zwarning {
            if !(ok[i] && v[i] == 0) {
                return false;
            }
        }
        if let Some((v, ok)) = self.primary {
            if !(ok[i] && v[i]) {
                return false;
            }
        }
        if let Some((v, ok, lo, hi)) = self.z {
            let z = v[i] as f64;
            if !(ok[i] && z >= lo && z <= hi) {
                return false;
            }
        }
        if let Some((codes, ok)) = &self.class {
            let c = codes[i];
            if c == NULL_CODE || !ok[c as usize] {
                return false;
            }
        }
        if let Some(c) = &self.cone {
            if !(c.ra_ok[i] && c.dec_ok[i] && c.m.contains(c.ra[i], c.dec[i])) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::CatalogRow;
    use model::layout;
    use rand::{Rng, SeedableRng};

    fn at(fiber: i32, ra: f64, dec: f64) -> CatalogRow {
        let id = FiberId::new(4000, 55555, fiber);
        CatalogRow {
            key: id.key(),
            plate: id.plate,
            mjd: id.mjd,
            fiber,
            file: layout::store_file_name(id.plate_mjd()),
            npix: 4600,
            nexp: 4,
            ra: Some(ra),
            dec: Some(dec),
            ..Default::default()
        }
    }

    fn cone_sel(s: &str) -> Selection {
        Selection {
            cone: Some(Cone::parse(s).unwrap()),
            ..Default::default()
        }
    }

    fn fibers(cat: &Catalog, idx: &[usize]) -> Vec<i32> {
        idx.iter().map(|&i| cat.fibers()[i]).collect()
    }

    #[test]
    fn cone_parse_validates() {
        assert_eq!(
            Cone::parse("10.5, -20,0.25").unwrap(),
            Cone {
                ra: 10.5,
                dec: -20.0,
                radius: 0.25
            }
        );
        assert_eq!("0,90,180".parse::<Cone>().unwrap().radius, 180.0);
        for bad in [
            "",
            "1,2",
            "1,2,3,4",
            "a,2,3",
            "1,91,1",
            "1,-90.1,1",
            "1,0,0",
            "1,0,-1",
            "1,0,180.5",
            "361,0,1",
            "-1,0,1",
            "nan,0,1",
            "1,0,inf",
        ] {
            assert!(Cone::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let c = Cone::parse("1,2,3").unwrap();
        assert_eq!(Cone::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn cone_straddles_ra_zero() {
        let cat = Catalog::from_rows(vec![
            at(1, 359.8, 0.0),
            at(2, 1.2, 0.0),
            at(3, 2.0, 0.0),
            at(4, 0.5, 0.99),
            at(5, 0.5, -1.01),
            at(6, 359.2, 0.5),
            at(7, 180.5, 0.0),
        ]);
        let sel = cone_sel("0.5,0,1");
        assert_eq!(fibers(&cat, &sel.select(&cat)), vec![1, 2, 4]);
        // From the other side of RA = 0: 1.2 is now 1.3° away, (359.2, 0.5) 0.86°.
        let sel = cone_sel("359.9,0,1");
        assert_eq!(fibers(&cat, &sel.select(&cat)), vec![1, 6]);
        let sel = cone_sel("359.9,0,1.35");
        assert_eq!(fibers(&cat, &sel.select(&cat)), vec![1, 2, 4, 5, 6]);
        assert!(Cone::parse("0,0,1").unwrap().contains(360.0, 0.0));
    }

    #[test]
    fn cone_around_the_north_pole() {
        const RAS: [f64; 9] = [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0, 359.9];
        let mut rows = Vec::new();
        for (k, ra) in RAS.into_iter().enumerate() {
            let k = k as i32;
            rows.push(at(100 + k, ra, 89.0));
            rows.push(at(200 + k, ra, 88.0));
            rows.push(at(300 + k, ra, 90.0)); // the pole itself, at any RA
            rows.push(at(400 + k, ra, 89.7));
        }
        let cat = Catalog::from_rows(rows);
        // Centred on the pole: dec 89.0 at every RA is in (exactly 1° away), dec 88.0 out.
        let got = fibers(&cat, &cone_sel("123,90,1").select(&cat));
        let want: Vec<i32> = (100..109).chain(300..309).chain(400..409).collect();
        assert_eq!(got, want);
        // Centred at dec 89.5: every RA at dec 89.7 (at most 0.8° via the pole) and the pole are in,
        // dec 89.0 only towards the centre's RA (on the far side it is 0.5 + 1.0 = 1.5° away), 88.0 out.
        let got = fibers(&cat, &cone_sel("0,89.5,1").select(&cat));
        let mut want: Vec<i32> = (300..309).chain(400..409).collect();
        for (k, ra) in RAS.into_iter().enumerate() {
            // Distance from (0, 89.5) to (ra, 89.0) by the spherical law of cosines, in degrees.
            let (d1, d2, dra) = (89.5f64.to_radians(), 89.0f64.to_radians(), ra.to_radians());
            let d = (d1.sin() * d2.sin() + d1.cos() * d2.cos() * dra.cos())
                .acos()
                .to_degrees();
            if d <= 1.0 {
                want.push(100 + k as i32);
            }
        }
        want.sort();
        assert_eq!(got, want);
        assert!(got.contains(&100) && got.contains(&108) && !got.contains(&104));
        assert!(!got.iter().any(|f| (200..209).contains(f)));
        // Around the south pole.
        let cat = Catalog::from_rows(vec![
            at(1, 10.0, -89.0),
            at(2, 190.0, -89.0),
            at(3, 0.0, -88.0),
        ]);
        assert_eq!(fibers(&cat, &cone_sel("77,-90,1").select(&cat)), vec![1, 2]);
        assert_eq!(fibers(&cat, &cone_sel("10,-89.5,1").select(&cat)), vec![1]);
    }

    #[test]
    fn cone_boundary_is_inclusive() {
        // Points exactly one radius away along RA (on the equator) and along DEC.
        let cat = Catalog::from_rows(vec![
            at(1, 11.0, 0.0),
            at(2, 9.0, 0.0),
            at(3, 10.0, 1.0),
            at(4, 10.0, -1.0),
            at(5, 11.0 + 1e-9, 0.0),
            at(6, 10.0, 1.0 + 1e-9),
        ]);
        assert_eq!(
            fibers(&cat, &cone_sel("10,0,1").select(&cat)),
            vec![1, 2, 3, 4]
        );
        let cat = Catalog::from_rows(vec![
            at(1, 359.5, 0.0),
            at(2, 1.5, 0.0),
            at(3, 1.5000001, 0.0),
        ]);
        assert_eq!(fibers(&cat, &cone_sel("0.5,0,1").select(&cat)), vec![1, 2]);
        // Radius 180 takes every position, including the antipode.
        let cat = Catalog::from_rows(vec![at(1, 190.0, -30.0), at(2, 0.0, 90.0)]);
        assert_eq!(
            fibers(&cat, &cone_sel("10,30,180").select(&cat)),
            vec![1, 2]
        );
    }

    /// Distance from unit vectors with atan2 (Vincenty form): independent of the haversine code.
    fn reference_distance(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
        let v = |ra: f64, dec: f64| {
            let (ra, dec) = (ra.to_radians(), dec.to_radians());
            [dec.cos() * ra.cos(), dec.cos() * ra.sin(), dec.sin()]
        };
        let (a, b) = (v(ra1, dec1), v(ra2, dec2));
        let cross = [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ];
        let sin = (cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]).sqrt();
        let cos = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
        sin.atan2(cos).to_degrees()
    }

    #[test]
    fn cone_matches_brute_force_on_random_points() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut rows = Vec::new();
        for f in 0..20_000 {
            let ra: f64 = rng.random_range(0.0..360.0);
            let dec: f64 = (rng.random_range(-1.0f64..1.0)).asin().to_degrees();
            rows.push(at(f, ra, dec));
        }
        let cat = Catalog::from_rows(rows);
        let mut cones = vec![
            Cone::new(0.0, 0.0, 5.0).unwrap(),
            Cone::new(359.0, 89.0, 3.0).unwrap(),
            Cone::new(180.0, -88.0, 10.0).unwrap(),
            Cone::new(90.0, 0.0, 90.0).unwrap(),
            Cone::new(10.0, 10.0, 179.0).unwrap(),
            Cone::new(200.0, 40.0, 0.5).unwrap(),
        ];
        for _ in 0..30 {
            cones.push(
                Cone::new(
                    rng.random_range(0.0..360.0),
                    rng.random_range(-90.0..=90.0),
                    rng.random_range(0.01..60.0),
                )
                .unwrap(),
            );
        }
        let mut total = 0;
        for c in cones {
            let got: HashSet<usize> = Selection {
                cone: Some(c),
                ..Default::default()
            }
            .select(&cat)
            .into_iter()
            .collect();
            for i in 0..cat.len() {
                let (ra, dec) = (cat.ra().values()[i], cat.dec().values()[i]);
                let d = reference_distance(c.ra, c.dec, ra, dec);
                if (d - c.radius).abs() < 1e-9 {
                    continue; // too close to the boundary for two formulas to agree
                }
                assert_eq!(
                    got.contains(&i),
                    d < c.radius,
                    "cone {c} point ({ra}, {dec}) d={d}"
                );
                assert!((angular_distance(c.ra, c.dec, ra, dec) - d).abs() < 1e-9);
            }
            total += got.len();
        }
        assert!(total > 1000, "the cones should select something: {total}");
    }

    #[test]
    fn chunked_scan_agrees_with_a_naive_row_by_row_filter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let classes = ["GALAXY", "QSO", "STAR", "galaxy"];
        let rows: Vec<CatalogRow> = (0..30_000)
            .map(|f| {
                let mut r = at(
                    f,
                    rng.random_range(0.0..360.0),
                    rng.random_range(-90.0..=90.0),
                );
                let null = |rng: &mut rand::rngs::StdRng| rng.random_range(0..20) == 0;
                if null(&mut rng) {
                    r.ra = None;
                }
                if null(&mut rng) {
                    r.dec = None;
                }
                r.z = (!null(&mut rng)).then(|| rng.random_range(-0.01f32..4.0));
                r.class = (!null(&mut rng)).then(|| classes[rng.random_range(0..4)].to_string());
                r.zwarning = (!null(&mut rng)).then(|| [0, 0, 4][rng.random_range(0..3)]);
                r.specprimary = (!null(&mut rng)).then(|| rng.random_range(0..4) != 0);
                r
            })
            .collect();
        let cat = Catalog::from_rows(rows);
        let rows = cat.rows();
        for round in 0..120 {
            let cone = (round % 4 != 0).then(|| {
                Cone::new(
                    rng.random_range(0.0..360.0),
                    [rng.random_range(-90.0..=90.0), 89.0, -90.0, 0.0][round % 4],
                    rng.random_range(0.5..100.0),
                )
                .unwrap()
            });
            let sel = Selection {
                fibers: None,
                cone,
                z_min: (round % 3 == 0).then(|| rng.random_range(-0.1..2.0)),
                z_max: (round % 5 < 2).then(|| rng.random_range(0.5..4.0)),
                classes: match round % 6 {
                    0 => vec![],
                    1 => vec!["qso".into()],
                    2 => vec!["Galaxy".into(), "star".into()],
                    _ => vec![classes[round % 4].into()],
                },
                zwarning_zero: round % 7 < 3,
                primary: round % 2 == 0,
            };
            let got: HashSet<usize> = sel.select(&cat).into_iter().collect();
            let mut near_boundary = 0;
            for (i, r) in rows.iter().enumerate() {
                let mut want = (!sel.zwarning_zero || r.zwarning == Some(0))
                    && (!sel.primary || r.specprimary == Some(true))
                    && sel
                        .z_min
                        .is_none_or(|lo| r.z.is_some_and(|z| z as f64 >= lo))
                    && sel
                        .z_max
                        .is_none_or(|hi| r.z.is_some_and(|z| z as f64 <= hi))
                    && (sel.classes.is_empty()
                        || r.class.as_deref().is_some_and(|c| {
                            sel.classes
                                .iter()
                                .any(|w| w.to_uppercase() == c.to_uppercase())
                        }));
                if let (true, Some(c)) = (want, cone) {
                    want = match (r.ra, r.dec) {
                        (Some(ra), Some(dec)) => {
                            let d = reference_distance(c.ra, c.dec, ra, dec);
                            if (d - c.radius).abs() < 1e-9 {
                                near_boundary += 1;
                                continue;
                            }
                            d < c.radius
                        }
                        _ => false,
                    };
                }
                assert_eq!(got.contains(&i), want, "round {round} {sel:?} row {r:?}");
                assert_eq!(
                    sel.matches(&cat, i),
                    want,
                    "round {round} {sel:?} row {r:?}"
                );
            }
            assert!(near_boundary < 3);
        }
    }

    fn filter_rows() -> Catalog {
        let mut rows = Vec::new();
        type Spec = (Option<f32>, Option<&'static str>, Option<i32>, Option<bool>);
        let specs: [Spec; 8] = [
            (Some(0.1), Some("GALAXY"), Some(0), Some(true)), // 1
            (Some(0.5), Some("galaxy"), Some(4), Some(true)), // 2
            (Some(2.0), Some("QSO"), Some(0), Some(false)),   // 3
            (None, Some("STAR"), Some(0), Some(true)),        // 4
            (Some(0.0), None, None, None),                    // 5
            (Some(1.0), Some("QSO "), Some(0), Some(true)),   // 6
            (Some(-0.001), Some("STAR"), Some(16), Some(true)), // 7
            (Some(0.5), Some("GALAXY"), Some(0), None),       // 8
        ];
        for (k, (z, class, zw, sp)) in specs.into_iter().enumerate() {
            let mut r = at(k as i32 + 1, 10.0, 10.0);
            r.z = z;
            r.class = class.map(str::to_owned);
            r.zwarning = zw;
            r.specprimary = sp;
            rows.push(r);
        }
        Catalog::from_rows(rows)
    }

    #[test]
    fn z_class_flag_filters_with_nulls() {
        let cat = filter_rows();
        let run = |s: Selection| fibers(&cat, &s.select(&cat));
        let all = Selection::default();
        assert!(all.is_empty_filter());
        assert_eq!(run(all), (1..=8).collect::<Vec<_>>());
        assert_eq!(
            run(Selection {
                z_min: Some(0.1f32 as f64),
                z_max: Some(1.0),
                ..Default::default()
            }),
            vec![1, 2, 6, 8],
            "inclusive limits, null z never matches"
        );
        assert_eq!(
            run(Selection {
                z_min: Some(0.0),
                ..Default::default()
            }),
            vec![1, 2, 3, 5, 6, 8]
        );
        assert_eq!(
            run(Selection {
                z_max: Some(0.0),
                ..Default::default()
            }),
            vec![5, 7]
        );
        assert_eq!(
            run(Selection {
                classes: vec!["Galaxy".into()],
                ..Default::default()
            }),
            vec![1, 2, 8]
        );
        assert_eq!(
            run(Selection {
                classes: vec!["qso".into(), "STAR".into()],
                ..Default::default()
            }),
            vec![3, 4, 6, 7]
        );
        assert_eq!(
            run(Selection {
                classes: vec!["UNKNOWN".into()],
                ..Default::default()
            }),
            Vec::<i32>::new()
        );
        assert_eq!(
            run(Selection {
                zwarning_zero: true,
                ..Default::default()
            }),
            vec![1, 3, 4, 6, 8]
        );
        assert_eq!(
            run(Selection {
                primary: true,
                ..Default::default()
            }),
            vec![1, 2, 4, 6, 7]
        );
        let combined = Selection {
            z_min: Some(0.05),
            classes: vec!["galaxy".into(), "qso".into()],
            zwarning_zero: true,
            primary: true,
            ..Default::default()
        };
        assert!(!combined.is_empty_filter());
        assert_eq!(run(combined.clone()), vec![1, 6]);
        assert_eq!(combined.count(&cat), 2);
        assert!(combined.matches(&cat, 0) && !combined.matches(&cat, 1));
    }

    #[test]
    fn fiber_list_and_nulls_in_cone() {
        let mut rows: Vec<CatalogRow> = (1..=6).map(|f| at(f, 10.0, 10.0)).collect();
        rows[2].ra = None;
        rows[3].dec = None;
        rows[4].ra = Some(50.0);
        let cat = Catalog::from_rows(rows);
        let set: HashSet<FiberId> = [1, 3, 5, 6, 99]
            .into_iter()
            .map(|f| FiberId::new(4000, 55555, f))
            .chain([FiberId::new(1, 50000, 1)])
            .collect();
        let sel = Selection {
            fibers: Some(set.clone()),
            ..Default::default()
        };
        assert!(!sel.is_empty_filter());
        assert_eq!(fibers(&cat, &sel.select(&cat)), vec![1, 3, 5, 6]);
        assert_eq!(sel.count(&cat), 4);
        let sel = Selection {
            fibers: Some(set),
            cone: Some(Cone::new(10.0, 10.0, 1.0).unwrap()),
            ..Default::default()
        };
        assert_eq!(fibers(&cat, &sel.select(&cat)), vec![1, 6]);
        assert!(!sel.matches(&cat, 1) && sel.matches(&cat, 5));
        assert_eq!(
            fibers(&cat, &cone_sel("10,10,1").select(&cat)),
            vec![1, 2, 6],
            "null ra or dec never matches a cone"
        );
        let empty = Selection {
            fibers: Some(HashSet::new()),
            ..Default::default()
        };
        assert!(empty.select(&cat).is_empty());
        assert!(Selection::default().select(&Catalog::new()).is_empty());
    }
}
