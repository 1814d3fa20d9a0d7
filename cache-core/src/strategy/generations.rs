//! Generation counters: random starts that never recur, reading them
//! (seeding missing ones with `add`), and bumping them with one `incr`.
//! Used by `versioned` and `bucketed`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use crate::backend::{format_counter, parse_counter, Backend, Ttl};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::hash::{fnv1a, splitmix64};
use crate::key::Key;

/// Generation starts stay below 2^62 so that 2^62 bumps fit before
/// `i64::MAX`, the contract's counter ceiling.
pub(crate) const GENERATION_MASK: u64 = (1 << 62) - 1;

/// How many times a generation read or bump retries when a concurrent
/// eviction or seed makes its first answer useless. Two races in a row on one
/// key are already unlikely; a bound keeps a misbehaving backend from looping.
const ATTEMPTS: usize = 3;

/// Produces random generation starts: deterministic for a given seed and
/// order of operations, yet different every time a generation key has to be
/// created again (the per-instance counter and the clock reading move on).
#[derive(Debug)]
pub(crate) struct GenerationSource {
    seed: u64,
    clock: Arc<dyn Clock>,
    counter: AtomicU64,
    /// TTL of the generation keys written (see
    /// [`CacheOptions::control_ttl`](super::CacheOptions::control_ttl)).
    ttl: Duration,
    /// Generations are [fenced](super::fence): starts have equal halves
    /// and a bump adds to both.
    fenced: bool,
}

impl GenerationSource {
    pub(crate) fn new(seed: u64, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        GenerationSource {
            seed,
            clock,
            counter: AtomicU64::new(0),
            ttl,
            fenced: false,
        }
    }

    /// The same source for [fenced](super::fence) generations.
    pub(crate) fn fenced(mut self) -> Self {
        self.fenced = true;
        self
    }

    /// What one bump adds: 1, or both halves of a fenced generation.
    pub(crate) fn bump_delta(&self) -> u64 {
        if self.fenced {
            super::fence::BEGIN + super::fence::END
        } else {
            1
        }
    }

    /// The TTL generation keys are written with.
    pub(crate) fn ttl(&self) -> Ttl {
        Some(self.ttl)
    }

    /// A fresh start for the generation under `key`, in `1..2^62` (fenced:
    /// a settled value with equal halves).
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
        let draw = splitmix64(&mut state) & GENERATION_MASK;
        if self.fenced {
            super::fence::settled_start(draw)
        } else {
            draw.max(1)
        }
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
    resolve_generations(backend, keys, values, source).await
}

/// The generations under `keys`, given the `values` already read for them
/// (in the same round trip as something else: `stamped` reads its entry
/// with them); missing ones are created as [`read_generations`] does.
pub(crate) async fn resolve_generations(
    backend: &dyn Backend,
    keys: &[Key],
    values: Vec<Option<Bytes>>,
    source: &GenerationSource,
) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(keys.len());
    for (key, value) in keys.iter().zip(values) {
        let generation = match value.as_deref().map(parse_counter) {
            Some(Some(g)) => g,
            Some(None) => {
                let g = source.fresh(key);
                backend.set(key, format_counter(g), source.ttl()).await?;
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
        if backend.add(key, format_counter(g), source.ttl()).await? {
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
        match backend.incr(key, source.bump_delta()).await {
            Ok(_) => return Ok(()),
            Err(Error::NotFound { .. }) => {
                if backend
                    .add(key, format_counter(source.fresh(key)), source.ttl())
                    .await?
                {
                    return Ok(());
                }
                // A reader seeded it concurrently; that reader may have read
                // the database before our commit, so bump past its value.
            }
            Err(Error::Overflow { .. } | Error::NotACounter { .. }) => {
                return backend.set(key, format_counter(source.fresh(key)), source.ttl()).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn fresh_starts_are_deterministic_and_distinct() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix_millis(1_000));
        let key = Key::new("feed:v:{a}:gen").unwrap();
        let a = GenerationSource::new(7, clock.clone(), Duration::from_secs(600));
        let b = GenerationSource::new(7, clock.clone(), Duration::from_secs(600));
        let first = a.fresh(&key);
        assert_eq!(first, b.fresh(&key), "same seed, same order, same value");
        assert_ne!(first, a.fresh(&key), "the counter moves on");
        assert_ne!(
            first,
            GenerationSource::new(8, clock, Duration::from_secs(600)).fresh(&key)
        );
        assert!(first <= GENERATION_MASK);
    }
}
