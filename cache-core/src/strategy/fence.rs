//! Fenced generations: a generation counter that also says whether a write
//! to its scope is between its commit and its bump, so that `stamped` can
//! close the commit-to-bump window.
//!
//! A fenced generation is one counter with two halves, `begun << 32 |
//! ended`. A write announces itself before its commit (`begin`: +2³²) and
//! settles after it (`end`: +1); an unannounced bump adds both at once
//! (+2³² + 1), so it stays one `incr`. The generation is **settled** when
//! both halves are equal; while any write is open (`begun > ended`) readers
//! neither serve an entry nor join or fill one (they read the database
//! directly). Every begin and end changes the value, so an entry stamped
//! before a write never matches the generation after it.
//!
//! Fresh starts put the same random 30-bit number in both halves, so a
//! re-created generation matches an old stamp with chance 2⁻³⁰ (plain
//! generations: 2⁻⁶²), and about 2³⁰ writes fit before the counter's
//! ceiling (`i64::MAX`); overflow re-creates it at a fresh start, and the
//! key expires with [`CacheOptions::control_ttl`](super::CacheOptions::control_ttl)
//! long before either matters at realistic write rates.
//!
//! Losses: a generation lost mid-write (eviction) loses the write's fence;
//! that write then has the plain commit-to-bump window, no worse. If the
//! `end` finds the halves out of step (the key was re-created between the
//! begin and the end), it re-creates the generation at a fresh start, which
//! is a bump. A writer that dies between begin and end leaves the scope
//! fenced (uncached, never stale) until the key expires.

use crate::backend::{format_counter, Backend};
use crate::error::{Error, Result};
use crate::key::Key;

use super::generations::GenerationSource;

/// One half's unit: `begin` adds this.
pub(crate) const BEGIN: u64 = 1 << 32;
/// The other half's: `end` adds this.
pub(crate) const END: u64 = 1;
/// Fresh starts are below this (both halves).
const START_MASK: u64 = (1 << 30) - 1;
/// How many times a begin retries when the key keeps appearing and
/// disappearing under it (a concurrent seed, an eviction).
const ATTEMPTS: usize = 3;

/// A fresh settled value from a 62-bit random draw.
pub(crate) fn settled_start(draw: u64) -> u64 {
    let r = (draw & START_MASK).max(1);
    (r << 32) | r
}

/// True when no write is open on the generation `g`.
pub(crate) fn is_settled(g: u64) -> bool {
    g >> 32 == g & 0xffff_ffff
}

/// Before a write commits: opens the fence on the generation under `key`
/// (creating it open when it is missing, so that readers re-creating it
/// cannot see it settled).
pub(crate) async fn begin(backend: &dyn Backend, key: &Key, source: &GenerationSource) -> Result<()> {
    for _ in 0..ATTEMPTS {
        match backend.incr(key, BEGIN).await {
            Ok(_) => return Ok(()),
            Err(Error::NotFound { .. }) => {
                if backend
                    .add(key, format_counter(source.fresh(key) + BEGIN), source.ttl())
                    .await?
                {
                    return Ok(());
                }
            }
            Err(Error::Overflow { .. } | Error::NotACounter { .. }) => {
                return backend
                    .set(key, format_counter(source.fresh(key) + BEGIN), source.ttl())
                    .await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Backend {
        backend: backend.name().to_owned(),
        key: Some(key.to_string()),
        message: "generation key kept disappearing while a write was announced".to_owned(),
    })
}

/// After the write committed: closes its fence, which is also its bump.
pub(crate) async fn end(backend: &dyn Backend, key: &Key, source: &GenerationSource) -> Result<()> {
    match backend.incr(key, END).await {
        // Out of step (ended > begun): the key was re-created after this
        // write's begin. Re-create it once more: a bump, and back in step.
        Ok(g) if g & 0xffff_ffff > g >> 32 => backend.set(key, format_counter(source.fresh(key)), source.ttl()).await,
        Ok(_) => Ok(()),
        // Lost since the begin: readers re-create it at a fresh start,
        // which no entry carries; seed it now so that this write still
        // counts as a bump for any reader that re-created it meanwhile.
        Err(Error::NotFound { .. }) => backend
            .add(key, format_counter(source.fresh(key)), source.ttl())
            .await
            .map(|_| ()),
        Err(Error::Overflow { .. } | Error::NotACounter { .. }) => {
            backend.set(key, format_counter(source.fresh(key)), source.ttl()).await
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_track_open_writes() {
        let g = settled_start(0x1234_5678_9abc_def0);
        assert!(is_settled(g));
        assert!(!is_settled(g + BEGIN), "one open write");
        assert!(!is_settled(g + 2 * BEGIN + END), "two open, one ended");
        assert!(is_settled(g + 2 * BEGIN + 2 * END), "both ended");
        assert!(is_settled(g + BEGIN + END), "an unannounced bump stays settled");
        assert_ne!(g + BEGIN + END, g, "and still changes the value");
        assert!(settled_start(0) > 0 && settled_start(u64::MAX) < (1 << 62));
    }
}
