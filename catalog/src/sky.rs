//! Positions on the sky: cones (`--cone`, the SQL function `in_cone`), great-circle distances
//! (`sky_distance`), unit vectors for the crossmatch, and angles with units (`2arcsec`).

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

/// The unit vector of a position (degrees), for the k-d tree of the crossmatch.
pub fn unit_vector(ra: f64, dec: f64) -> [f64; 3] {
    let c = cos_deg(dec);
    let ra = ra.to_radians();
    [c * ra.cos(), c * ra.sin(), dec.to_radians().sin()]
}

/// The squared chord between two unit vectors `angle` degrees apart: what the k-d tree compares.
pub fn chord_squared(angle: f64) -> f64 {
    let c = 2.0 * (angle.to_radians() * 0.5).sin();
    c * c
}

/// An angle given with its unit, as users type it: `2arcsec`, `1.5 arcmin`, `0.01deg`, `2"`, `1'`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Angle {
    pub degrees: f64,
}

impl Angle {
    /// Parses a positive angle of at most 180 degrees with a unit (arcsec, arcmin or deg).
    pub fn parse(s: &str) -> Result<Angle, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("angle {s:?}: expected a number and a unit, like 2arcsec"))?;
        let per_degree = match unit.trim().to_ascii_lowercase().as_str() {
            "arcsec" | "asec" | "as" | "\"" => 3600.0,
            "arcmin" | "amin" | "'" => 60.0,
            "deg" | "d" | "degree" | "degrees" => 1.0,
            "" => {
                return Err(format!(
                    "angle {s:?}: give a unit (arcsec, arcmin or deg), like 2arcsec"
                ))
            }
            other => {
                return Err(format!(
                    "angle {s:?}: unknown unit {other:?} (use arcsec, arcmin or deg)"
                ))
            }
        };
        let degrees = value / per_degree;
        if !degrees.is_finite() || degrees <= 0.0 || degrees > 180.0 {
            return Err(format!(
                "angle {s:?} must be more than 0 and at most 180 degrees"
            ));
        }
        Ok(Angle { degrees })
    }

    pub fn arcsec(self) -> f64 {
        self.degrees * 3600.0
    }
}

impl std::str::FromStr for Angle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Angle::parse(s)
    }
}

impl std::fmt::Display for Angle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}arcsec", self.arcsec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Indices of the points inside the cone `s`.
    fn inside(points: &[(f64, f64)], s: &str) -> Vec<usize> {
        let m = Cone::parse(s).unwrap().matcher();
        (0..points.len())
            .filter(|&i| m.contains(points[i].0, points[i].1))
            .collect()
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
        let p = [
            (359.8, 0.0),
            (1.2, 0.0),
            (2.0, 0.0),
            (0.5, 0.99),
            (0.5, -1.01),
            (359.2, 0.5),
            (180.5, 0.0),
        ];
        assert_eq!(inside(&p, "0.5,0,1"), vec![0, 1, 3]);
        // From the other side of RA = 0: 1.2 is now 1.3° away, (359.2, 0.5) 0.86°.
        assert_eq!(inside(&p, "359.9,0,1"), vec![0, 5]);
        assert_eq!(inside(&p, "359.9,0,1.35"), vec![0, 1, 3, 4, 5]);
        assert!(Cone::parse("0,0,1").unwrap().contains(360.0, 0.0));
    }

    #[test]
    fn cone_around_the_poles() {
        const RAS: [f64; 9] = [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0, 359.9];
        let decs = [89.0, 88.0, 90.0, 89.7];
        let p: Vec<(f64, f64)> = decs
            .iter()
            .flat_map(|&d| RAS.iter().map(move |&ra| (ra, d)))
            .collect();
        let of = |dec: f64| -> Vec<usize> {
            (0..p.len()).filter(|&i| p[i].1 == dec).collect::<Vec<_>>()
        };
        // Centred on the pole: dec 89.0 at every RA is in (exactly 1° away), dec 88.0 out.
        let mut want: Vec<usize> = [of(89.0), of(90.0), of(89.7)].concat();
        want.sort();
        assert_eq!(inside(&p, "123,90,1"), want);
        // Centred at dec 89.5: dec 89.7 and the pole everywhere, dec 89.0 only towards RA 0.
        let got = inside(&p, "0,89.5,1");
        for (i, &(ra, dec)) in p.iter().enumerate() {
            let (d1, d2, dra) = (89.5f64.to_radians(), dec.to_radians(), ra.to_radians());
            let d = (d1.sin() * d2.sin() + d1.cos() * d2.cos() * dra.cos())
                .acos()
                .to_degrees();
            assert_eq!(got.contains(&i), d <= 1.0 + 1e-9, "({ra}, {dec}) at {d}");
        }
        let south = [(10.0, -89.0), (190.0, -89.0), (0.0, -88.0)];
        assert_eq!(inside(&south, "77,-90,1"), vec![0, 1]);
        assert_eq!(inside(&south, "10,-89.5,1"), vec![0]);
    }

    #[test]
    fn cone_boundary_is_inclusive() {
        let p = [
            (11.0, 0.0),
            (9.0, 0.0),
            (10.0, 1.0),
            (10.0, -1.0),
            (11.0 + 1e-9, 0.0),
            (10.0, 1.0 + 1e-9),
        ];
        assert_eq!(inside(&p, "10,0,1"), vec![0, 1, 2, 3]);
        let p = [(359.5, 0.0), (1.5, 0.0), (1.5000001, 0.0)];
        assert_eq!(inside(&p, "0.5,0,1"), vec![0, 1]);
        // Radius 180 takes every position, including the antipode.
        assert_eq!(
            inside(&[(190.0, -30.0), (0.0, 90.0)], "10,30,180"),
            vec![0, 1]
        );
    }

    /// Distance from unit vectors with atan2 (Vincenty form): independent of the haversine code.
    fn reference_distance(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
        let (a, b) = (unit_vector(ra1, dec1), unit_vector(ra2, dec2));
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
    fn cone_and_distance_match_brute_force_on_random_points() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let p: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                let ra: f64 = rng.random_range(0.0..360.0);
                (ra, rng.random_range(-1.0f64..1.0).asin().to_degrees())
            })
            .collect();
        let mut cones = vec![
            Cone::new(0.0, 0.0, 5.0).unwrap(),
            Cone::new(359.0, 89.0, 3.0).unwrap(),
            Cone::new(180.0, -88.0, 10.0).unwrap(),
            Cone::new(90.0, 0.0, 90.0).unwrap(),
            Cone::new(10.0, 10.0, 179.0).unwrap(),
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
            let m = c.matcher();
            for &(ra, dec) in &p {
                let d = reference_distance(c.ra, c.dec, ra, dec);
                assert!((angular_distance(c.ra, c.dec, ra, dec) - d).abs() < 1e-9);
                if (d - c.radius).abs() < 1e-9 {
                    continue; // too close to the boundary for two formulas to agree
                }
                assert_eq!(m.contains(ra, dec), d < c.radius, "cone {c} ({ra}, {dec})");
                total += usize::from(d < c.radius);
            }
        }
        assert!(total > 1000, "the cones should select something: {total}");
    }

    #[test]
    fn chord_grows_with_the_angle() {
        let (a, b) = (unit_vector(10.0, 20.0), unit_vector(10.0, 21.0));
        let d2: f64 = (0..3).map(|i| (a[i] - b[i]).powi(2)).sum();
        assert!((d2 - chord_squared(1.0)).abs() < 1e-15);
        assert!((chord_squared(180.0) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn angles_need_a_unit() {
        assert_eq!(Angle::parse("2arcsec").unwrap().degrees, 2.0 / 3600.0);
        assert_eq!(Angle::parse(" 1.5 arcmin").unwrap().degrees, 0.025);
        assert_eq!(Angle::parse("0.5deg").unwrap().degrees, 0.5);
        assert_eq!(Angle::parse("3\"").unwrap().degrees, 3.0 / 3600.0);
        assert_eq!(Angle::parse("1e-3deg").unwrap().degrees, 1e-3);
        for bad in [
            "2",
            "arcsec",
            "-2arcsec",
            "0deg",
            "200deg",
            "2 parsecs",
            "nanarcsec",
        ] {
            assert!(Angle::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
