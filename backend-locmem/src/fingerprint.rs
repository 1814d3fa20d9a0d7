//! moka's key: a seeded 64-bit fingerprint of the real key, and the
//! pass-through hasher that hands it to moka's table unchanged.

use std::hash::BuildHasher;

/// How keys are hashed into their [`Fingerprint`]: foldhash, randomly
/// seeded per store by default, or with a fixed seed.
///
/// Why foldhash and not std's SipHash: every operation hashes its key, and
/// SipHash was ~17% of a simulated feed request. foldhash keeps the property
/// the default needs (a per-process random seed, so callers who put user
/// input into keys cannot aim collisions at one bucket) at a fraction of the
/// cost. A fixed seed makes hashing, and with it moka's eviction choices,
/// the same in every run, which a simulation needs for byte-identical
/// reports.
pub(crate) type KeyHasher = foldhash::quality::SeedableRandomState;

pub(crate) fn key_hasher(seed: Option<u64>) -> KeyHasher {
    match seed {
        Some(seed) => KeyHasher::with_seed(seed, foldhash::SharedSeed::global_fixed()),
        None => KeyHasher::random(),
    }
}

/// moka's key: a 64-bit seeded hash of the real key, which the entry
/// carries in full.
///
/// Why not the `String` itself: moka's table keeps no hashes, so whenever it
/// grows, or sheds the tombstones that eviction churn leaves (every few
/// hundred removals per segment), it re-hashes every key, and each probe
/// compares whole keys; with keys on the heap each of those is a cache miss
/// on the key's bytes. Profiling the simulator put that re-hashing at ~19% of
/// a request. A fixed-size fingerprint is hashed and compared in place.
///
/// Two live keys with the same fingerprint (with a random seed, chance
/// about n²/2⁶⁵ for n keys: ~3·10⁻⁸ for a million) share one slot: writing
/// one replaces the other, which then reads as missing, as if evicted,
/// which any cache may do. A read never returns another key's value, because
/// the entry's full key is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub(crate) u64);

impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Already a well-mixed hash: moka's table needs no more mixing.
        state.write_u64(self.0);
    }
}

/// Passes a [`Fingerprint`] through as the table hash.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassThrough;

/// The hasher [`PassThrough`] builds.
#[derive(Debug, Default)]
pub(crate) struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else still gets a stable mix.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}
