//! Helpers the strategies share: key layout, the deterministic PRNG behind
//! generation starts, and reading / bumping generation counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use chrono::SecondsFormat;

use crate::backend::{format_counter, parse_counter, Backend};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::key::{encode_part, Key};
use crate::view::{Scope, TimeRange, View};

/// Generation starts stay below 2^62 so that 2^62 bumps fit before
/// `i64::MAX`, the contract's counter ceiling.
pub(crate) const GENERATION_MASK: u64 = (1 << 62) - 1;

/// How many times a generation read or bump retries when a concurrent
/// eviction or seed makes its first answer useless. Two races in a row on one
/// key are already unlikely; a bound keeps a misbehaving backend from looping.
const ATTEMPTS: usize = 3;

/// `{encoded scope}`: the scope as a Redis Cluster hash tag. `encode_part`
/// escapes braces and `:`, so the tag ends exactly where we say it does.
pub(crate) fn scope_tag(scope: &Scope) -> String {
    format!("{{{}}}", encode_part(scope.as_str()))
}

/// RFC 3339 with the client's own offset kept (`+08:00`; UTC as `Z`), so
/// the same instant sent with different offsets gives different keys, as it
/// does for a real feed endpoint keyed on the raw request.
pub(crate) fn fmt_instant(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The user-controlled parts of a view's key: start, end, then each
/// parameter as name, value. Start and end have fixed positions and the rest
/// come in pairs, so two different views never give the same part list.
pub(crate) fn view_parts(range: &TimeRange, params: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    let mut parts = Vec::with_capacity(2 + 2 * params.len());
    parts.push(fmt_instant(&range.start()));
    parts.push(fmt_instant(&range.end()));
    for (name, value) in params {
        parts.push(name.clone());
        parts.push(value.clone());
    }
    parts
}

/// `trusted:…:user parts of the view`.
pub(crate) fn view_key(trusted: &[&str], view: &View) -> Result<Key> {
    let parts = view_parts(&view.range, &view.params);
    Key::from_parts(trusted.iter().copied(), parts.iter().map(String::as_str))
}

/// splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed step function.
/// Hand-written because a PRNG crate would be the only new dependency and we
/// need nothing but reproducible 64-bit values from a seed.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bit: a hash that is stable across Rust versions and
/// platforms (std's `DefaultHasher` promises neither), for mixing key names
/// into seeds.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Produces random generation starts: deterministic for a given seed and
/// order of operations, yet different every time a generation key has to be
/// created again (the per-instance counter and the clock reading move on).
#[derive(Debug)]
pub(crate) struct GenerationSource {
    seed: u64,
    clock: Arc<dyn Clock>,
    counter: AtomicU64,
}

impl GenerationSource {
    pub(crate) fn new(seed: u64, clock: Arc<dyn Clock>) -> Self {
        GenerationSource {
            seed,
            clock,
            counter: AtomicU64::new(0),
        }
    }

    /// A fresh start for the generation under `key`, in `1..2^62`.
    pub(crate) fn fresh(&self, key: &Key) -> u64 {
        let nanos = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut state = self.seed ^ fnv1a(key.as_str().as_bytes());
        let _ = splitmix64(&mut state);
        state ^= nanos;
        let _ = splitmix64(&mut state);
        state ^= n;
        (splitmix64(&mut state) & GENERATION_MASK).max(1)
    }
}

/// Reads the generations under `keys` (one `get`, or one `get_many` for
/// several), creating missing ones with `add` and a fresh random start.
///
/// A value that is not a counter (someone else's data under our key) is
/// replaced by a fresh start: any fresh start is a new generation, so this
/// can only cause misses, never stale reads.
pub(crate) async fn read_generations(
    backend: &dyn Backend,
    keys: &[Key],
    source: &GenerationSource,
) -> Result<Vec<u64>> {
    let values = match keys {
        [one] => vec![backend.get(one).await?],
        many => backend.get_many(many).await?,
    };
    let mut out = Vec::with_capacity(keys.len());
    for (key, value) in keys.iter().zip(values) {
        let generation = match value.as_deref().map(parse_counter) {
            Some(Some(g)) => g,
            Some(None) => {
                let g = source.fresh(key);
                backend.set(key, format_counter(g), None).await?;
                g
            }
            None => seed_generation(backend, key, source).await?,
        };
        out.push(generation);
    }
    Ok(out)
}

/// Creates the generation under `key` with a fresh start, or reads the one a
/// concurrent caller created first.
async fn seed_generation(backend: &dyn Backend, key: &Key, source: &GenerationSource) -> Result<u64> {
    for _ in 0..ATTEMPTS {
        let g = source.fresh(key);
        if backend.add(key, format_counter(g), None).await? {
            return Ok(g);
        }
        // Someone else seeded it between our read and our add: use theirs.
        if let Some(g) = backend.get(key).await?.as_deref().and_then(parse_counter) {
            return Ok(g);
        }
    }
    Err(Error::Backend {
        backend: backend.name().to_owned(),
        key: Some(key.to_string()),
        message: "generation key kept disappearing while it was being created".to_owned(),
    })
}

/// Moves the generation under `key` to a value no reader has used: one
/// atomic `incr`; when the key is missing, `add` of a fresh random start
/// (never `set 1`, which could bring back a generation still present in old
/// entries); on overflow or a non-counter, `set` of a fresh start.
pub(crate) async fn bump_generation(backend: &dyn Backend, key: &Key, source: &GenerationSource) -> Result<()> {
    for _ in 0..ATTEMPTS {
        match backend.incr(key, 1).await {
            Ok(_) => return Ok(()),
            Err(Error::NotFound { .. }) => {
                if backend.add(key, format_counter(source.fresh(key)), None).await? {
                    return Ok(());
                }
                // A reader seeded it concurrently; that reader may have read
                // the database before our commit, so bump past its value.
            }
            Err(Error::Overflow { .. } | Error::NotACounter { .. }) => {
                return backend.set(key, format_counter(source.fresh(key)), None).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Backend {
        backend: backend.name().to_owned(),
        key: Some(key.to_string()),
        message: "generation key kept disappearing while it was being bumped".to_owned(),
    })
}

/// `Bytes` of a key list stored as an index: one key per line (keys built by
/// the strategies never contain a newline: `encode_part` escapes whitespace
/// and the namespace is validated).
pub(crate) fn encode_index(keys: &[String]) -> Bytes {
    Bytes::from(keys.join("\n"))
}

/// Parses an index written by [`encode_index`]; undecodable lines are
/// skipped (they cannot name a key we wrote).
pub(crate) fn decode_index(bytes: &[u8]) -> Vec<String> {
    std::str::from_utf8(bytes)
        .map(|s| s.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn fresh_starts_are_deterministic_and_distinct() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix_millis(1_000));
        let key = Key::new("feed:v:{a}:gen").unwrap();
        let a = GenerationSource::new(7, clock.clone());
        let b = GenerationSource::new(7, clock.clone());
        let first = a.fresh(&key);
        assert_eq!(first, b.fresh(&key), "same seed, same order, same value");
        assert_ne!(first, a.fresh(&key), "the counter moves on");
        assert_ne!(first, GenerationSource::new(8, clock).fresh(&key));
        assert!(first <= GENERATION_MASK);
    }

    #[test]
    fn index_roundtrip() {
        let keys = vec!["a:b".to_owned(), "c".to_owned()];
        assert_eq!(decode_index(&encode_index(&keys)), keys);
        assert!(decode_index(b"").is_empty());
    }
}
