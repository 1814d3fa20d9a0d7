//! Consistent hashing of keys onto servers: a ketama-style ring.
//!
//! Each server owns [`POINTS_PER_SERVER`] points on a 64-bit ring. The
//! points of server `s` are the SHA-256 digests of `"{s}-{i}"` for
//! `i in 0..40`, each digest cut into four big-endian `u64`s (ketama does the
//! same with MD5 and `u32`s). A key (after the safe-key mapping) hashes to the
//! first 8 bytes of its SHA-256 and belongs to the first point at or after
//! that position, wrapping around. Hence:
//!
//! - routing depends only on the server strings and the key, so every
//!   process (and every version of this crate that keeps this scheme) agrees;
//!   list order does not matter;
//! - adding or removing one server of `n` moves only about `1/n` of the keys;
//! - with one server no hashing is done at all.
//!
//! SHA-256 rather than a faster hash because it is already a dependency
//! (for `safe_key`), is stable across platforms and Rust versions (unlike
//! `DefaultHasher`), and costs well under a microsecond, small next to a
//! network round trip.

use sha2::{Digest, Sha256};

/// Points per server on the ring (ketama's 160).
pub const POINTS_PER_SERVER: usize = 160;

/// The ring: sorted `(point, server index)` pairs.
#[derive(Debug, Clone)]
pub struct Ring {
    points: std::sync::Arc<[(u64, usize)]>,
    servers: usize,
}

impl Ring {
    /// Builds the ring for `servers` (their `host:port` strings).
    pub fn new(servers: &[String]) -> Self {
        let mut points = Vec::with_capacity(servers.len() * POINTS_PER_SERVER);
        for (index, server) in servers.iter().enumerate() {
            for i in 0..POINTS_PER_SERVER / 4 {
                let digest = Sha256::digest(format!("{server}-{i}").as_bytes());
                for chunk in digest.chunks_exact(8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(chunk);
                    points.push((u64::from_be_bytes(b), index));
                }
            }
        }
        // Sorting by (point, index) keeps the ring deterministic even if two
        // servers ever drew the same point.
        points.sort_unstable();
        Ring {
            points: points.into(),
            servers: servers.len(),
        }
    }

    /// Number of servers on the ring.
    pub fn len(&self) -> usize {
        self.servers
    }

    /// True for a ring without servers.
    pub fn is_empty(&self) -> bool {
        self.servers == 0
    }

    /// The index of the server that owns `key`.
    pub fn server_for(&self, key: &[u8]) -> usize {
        if self.servers <= 1 {
            return 0;
        }
        let digest = Sha256::digest(key);
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[..8]);
        let h = u64::from_be_bytes(b);
        let at = self.points.partition_point(|&(p, _)| p < h);
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map_or(0, |&(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:11211")).collect()
    }

    #[test]
    fn balanced_deterministic_and_minimal_movement() {
        let four = Ring::new(&servers(4));
        let again = Ring::new(&servers(4));
        let three = Ring::new(&servers(3));
        let mut counts = [0usize; 4];
        let mut moved = 0;
        for i in 0..20_000 {
            let key = format!("calendar_feed:{i}");
            let s = four.server_for(key.as_bytes());
            assert_eq!(s, again.server_for(key.as_bytes()));
            counts[s] += 1;
            let t = three.server_for(key.as_bytes());
            if s != 3 {
                // Removing server 3 moves only server 3's keys.
                assert_eq!(s, t, "{key}");
            } else {
                moved += 1;
            }
        }
        for c in counts {
            assert!((3_500..6_500).contains(&c), "unbalanced: {counts:?}");
        }
        assert_eq!(moved, counts[3]);
    }

    #[test]
    fn order_of_servers_does_not_matter_for_membership() {
        let a = Ring::new(&["x:1".to_owned(), "y:1".to_owned()]);
        let b = Ring::new(&["y:1".to_owned(), "x:1".to_owned()]);
        for i in 0..1000 {
            let k = format!("k{i}");
            assert_ne!(a.server_for(k.as_bytes()), b.server_for(k.as_bytes()));
        }
        assert_eq!(Ring::new(&servers(1)).server_for(b"anything"), 0);
    }
}
