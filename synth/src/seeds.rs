//! Deterministic random streams: one independent generator per (seed, plate, purpose, item), so
//! plates and fibers can be simulated in any order and in parallel with byte-identical results.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// What a random stream is used for; each purpose draws from its own stream.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Plate-level quantities (sky lines, observing conditions).
    Plate = 1,
    /// A fiber's target: class, redshift, position, photometry.
    Target = 2,
    /// A fiber's coadded pixels: noise and masks.
    Pixels = 3,
    /// A fiber's emission-line measurements.
    Lines = 4,
    /// A fiber's per-exposure spectra (item = fiber * 16 + exposure * 2 + arm).
    Exposure = 5,
}

/// SplitMix64 finaliser: a good 64-bit mixer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator of one stream.
pub fn rng(seed: u64, plate_index: usize, stream: Stream, item: u64) -> StdRng {
    let mut h = mix(seed);
    h = mix(h ^ plate_index as u64);
    h = mix(h ^ stream as u64);
    h = mix(h ^ item);
    StdRng::seed_from_u64(h)
}
