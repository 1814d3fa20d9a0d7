//! An injectable clock.
//!
//! Expiry in this framework is *logical*: an entry records the instant it
//! stops being valid according to a [`Clock`], and reads compare against the
//! same clock. With [`system_clock`] that is ordinary wall time; with
//! [`ManualClock`] a test or the simulator moves time by hand, so a week of
//! traffic replays in seconds and a 300 s TTL expires at exactly 300 s.
//!
//! Backends keep their own server-side TTL as a garbage-collection bound only
//! (moka cannot take a custom clock, and Redis or Memcached certainly cannot).

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now". Object-safe, so it can be shared as `Arc<dyn Clock>`.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current instant.
    fn now(&self) -> SystemTime;

    /// True when this clock advances with real time. Backends only derive
    /// real-time garbage-collection TTLs from logical TTLs when it does: with a
    /// manual clock, real time says nothing about logical expiry.
    fn tracks_real_time(&self) -> bool {
        true
    }
}

/// Wall-clock time (`SystemTime::now()`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to. Cloning shares the same time.
///
/// ```
/// use cache_core::{Clock, ManualClock};
/// use std::time::{Duration, UNIX_EPOCH};
/// let clock = ManualClock::at_unix_millis(1_000);
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_millis(1_500));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    // Microseconds since the Unix epoch. An atomic rather than a mutex: the
    // simulator reads the clock on every cache operation from many tasks.
    micros: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `unix_millis` milliseconds after the Unix epoch.
    pub fn at_unix_millis(unix_millis: u64) -> Self {
        ManualClock {
            micros: Arc::new(AtomicU64::new(unix_millis.saturating_mul(1_000))),
        }
    }

    /// A clock reading `t` (instants before the epoch read as the epoch).
    pub fn at(t: SystemTime) -> Self {
        let micros = t.duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        ManualClock {
            micros: Arc::new(AtomicU64::new(u64::try_from(micros).unwrap_or(u64::MAX))),
        }
    }

    /// Moves time forward by `d` (microsecond resolution).
    pub fn advance(&self, d: Duration) {
        let add = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(add, Ordering::SeqCst);
    }

    /// Sets the time to `t` if it is later than the current reading; time never
    /// goes backwards, so concurrent callers cannot undo each other.
    pub fn advance_to(&self, t: SystemTime) {
        let target = t
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.micros.fetch_max(target, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.micros.load(Ordering::SeqCst))
    }

    fn tracks_real_time(&self) -> bool {
        false
    }
}

/// The default clock, shared.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_never_goes_back() {
        let c = ManualClock::at_unix_millis(10_000);
        c.advance_to(UNIX_EPOCH + Duration::from_secs(5));
        assert_eq!(c.now(), UNIX_EPOCH + Duration::from_secs(10));
        let shared = c.clone();
        shared.advance(Duration::from_secs(1));
        assert_eq!(c.now(), UNIX_EPOCH + Duration::from_secs(11));
    }
}
