//! Sky positions: plate centres, fiber positions within the 1.49° plate radius (proper spherical
//! offsets, RA wrapped into [0, 360)), focal-plane coordinates and airmass at Apache Point.

/// Radius of a BOSS plate on the sky, degrees.
pub const PLATE_RADIUS_DEG: f64 = 1.49;
/// Plate scale of the SDSS 2.5 m telescope, mm per degree.
pub const PLATE_SCALE_MM_PER_DEG: f64 = 217.7358;
/// Latitude of Apache Point Observatory, degrees.
const APO_LATITUDE_DEG: f64 = 32.7803;
/// Plate index whose centre is put near the north celestial pole (when there are that many plates).
pub const POLAR_PLATE_INDEX: usize = 3;

/// Centre (RA, DEC) in degrees of the plate with this 0-based index: RA = 47.3·i mod 360,
/// DEC = -10 + (13.7·i mod 90); plate 0 sits at RA = 0 (fibers straddle the RA wrap) and plate
/// [`POLAR_PLATE_INDEX`] at DEC = +88 (fibers spread over a wide range of RA).
pub fn plate_centre(index: usize) -> (f64, f64) {
    let i = index as f64;
    // Rounded to 1e-6 deg so the header shows 3.7, not 3.6999999999999993.
    let round = |x: f64| (x * 1e6).round() / 1e6;
    let ra = wrap_ra(round(wrap_ra(i * 47.3)));
    let dec = if index == POLAR_PLATE_INDEX {
        88.0
    } else {
        round(-10.0 + (i * 13.7).rem_euclid(90.0))
    };
    (ra, dec)
}

/// RA wrapped into [0, 360).
pub fn wrap_ra(ra: f64) -> f64 {
    let r = ra.rem_euclid(360.0);
    if r >= 360.0 {
        0.0
    } else {
        r
    }
}

/// The point at angular distance `radius_deg` from (ra0, dec0) in the direction of position angle
/// `pa_deg` (east of north), on the sphere. Returns (RA, DEC) in degrees.
pub fn offset(ra0: f64, dec0: f64, radius_deg: f64, pa_deg: f64) -> (f64, f64) {
    let (ra0, dec0) = (ra0.to_radians(), dec0.to_radians());
    let (r, pa) = (radius_deg.to_radians(), pa_deg.to_radians());
    let sin_dec = dec0.sin() * r.cos() + dec0.cos() * r.sin() * pa.cos();
    let dec = sin_dec.clamp(-1.0, 1.0).asin();
    let dra = (pa.sin() * r.sin() * dec0.cos()).atan2(r.cos() - dec0.sin() * sin_dec);
    (wrap_ra((ra0 + dra).to_degrees()), dec.to_degrees())
}

/// Focal-plane position (XFOCAL, YFOCAL) in mm of a fiber at this radius and position angle.
pub fn focal_xy(radius_deg: f64, pa_deg: f64) -> (f64, f64) {
    let pa = pa_deg.to_radians();
    let r = radius_deg * PLATE_SCALE_MM_PER_DEG;
    (r * pa.sin(), r * pa.cos())
}

/// Airmass of a field at declination `dec` observed `hour_angle_deg` from the meridian at APO.
pub fn airmass(dec: f64, hour_angle_deg: f64) -> f64 {
    let (lat, dec, ha) = (
        APO_LATITUDE_DEG.to_radians(),
        dec.to_radians(),
        hour_angle_deg.to_radians(),
    );
    let cos_z = lat.sin() * dec.sin() + lat.cos() * dec.cos() * ha.cos();
    // Plates are only observed above ~30° altitude; keep the value finite for any input.
    1.0 / cos_z.max(0.5)
}

/// Angular distance in degrees between two points.
#[cfg(test)]
pub fn separation(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (a1, d1, a2, d2) = (
        ra1.to_radians(),
        dec1.to_radians(),
        ra2.to_radians(),
        dec2.to_radians(),
    );
    let c = d1.sin() * d2.sin() + d1.cos() * d2.cos() * (a1 - a2).cos();
    c.clamp(-1.0, 1.0).acos().to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_within_the_plate_and_wrap() {
        for &(ra0, dec0) in &[(0.0, -10.0), (359.9, 5.0), (120.0, 88.0), (200.0, -80.0)] {
            for k in 0..36 {
                let pa = k as f64 * 10.0;
                let (ra, dec) = offset(ra0, dec0, 1.49, pa);
                assert!((0.0..360.0).contains(&ra), "ra {ra}");
                assert!((-90.0..=90.0).contains(&dec));
                let sep = separation(ra0, dec0, ra, dec);
                assert!((sep - 1.49).abs() < 1e-9, "sep {sep}");
            }
        }
        // North is +DEC, east is +RA.
        let (_, dec) = offset(10.0, 0.0, 1.0, 0.0);
        assert!((dec - 1.0).abs() < 1e-12);
        let (ra, _) = offset(10.0, 0.0, 1.0, 90.0);
        assert!((ra - 11.0).abs() < 1e-9);
    }

    #[test]
    fn centres_cover_the_edge_cases() {
        assert_eq!(plate_centre(0), (0.0, -10.0));
        assert_eq!(plate_centre(POLAR_PLATE_INDEX).1, 88.0);
        for i in 0..100 {
            let (ra, dec) = plate_centre(i);
            assert!((0.0..360.0).contains(&ra) && (-10.0..=88.0).contains(&dec));
        }
    }
}
