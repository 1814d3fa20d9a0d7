//! [`Frozen`]: a backend that refuses every call while it is frozen, the
//! way a stopped server (`SIGSTOP`, a GC pause, a full network buffer)
//! looks to its clients: the data is still there afterwards, but nothing
//! gets through meanwhile.
//!
//! A wrapper, like [`Instrumented`](crate::Instrumented), rather than a
//! flag inside backends (object_store's `throttle.rs` is the model). Its
//! [`FreezeSwitch`] is flipped by hand ([`FreezeSwitch::freeze`],
//! [`FreezeSwitch::thaw`]: fault tests), or follows windows of a
//! [`Clock`] ([`FreezeSwitch::scheduled`]: the simulator's `--freeze`, in
//! virtual time). A refused call fails at once with
//! [`Error::Unavailable`]; a real frozen server makes the client wait for
//! its command timeout first, which only the real-server tests model.
//!
//! ```
//! use std::sync::Arc;
//! use cache_core::fault::{FreezeSwitch, Frozen};
//! use cache_core::{Backend, Key};
//! # async fn demo(store: Arc<dyn Backend>) {
//! let switch = FreezeSwitch::manual();
//! let frozen = Frozen::new(store, switch.clone());
//! let key = Key::new("k").unwrap();
//! switch.freeze();
//! assert!(frozen.get(&key).await.unwrap_err().is_transient());
//! switch.thaw();
//! assert!(frozen.get(&key).await.is_ok());
//! assert_eq!(switch.refused(), 1);
//! # }
//! ```

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::{Backend, Capabilities, Ttl};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::key::Key;

#[derive(Debug)]
struct State {
    manual: AtomicBool,
    /// Frozen while the clock reads inside one of these.
    windows: Vec<Range<SystemTime>>,
    clock: Option<Arc<dyn Clock>>,
    refused: AtomicU64,
}

/// Says whether a [`Frozen`] backend is frozen; cheap to clone (clones
/// share the state, so one switch can freeze several backends at once,
/// as one server stopping freezes all its clients).
#[derive(Debug, Clone)]
pub struct FreezeSwitch(Arc<State>);

impl FreezeSwitch {
    /// A switch flipped by hand; starts thawed.
    pub fn manual() -> Self {
        FreezeSwitch(Arc::new(State {
            manual: AtomicBool::new(false),
            windows: Vec::new(),
            clock: None,
            refused: AtomicU64::new(0),
        }))
    }

    /// A switch that is frozen whenever `clock` reads inside one of
    /// `windows` (start inclusive, end exclusive); [`Self::freeze`] still
    /// freezes it by hand on top.
    pub fn scheduled(clock: Arc<dyn Clock>, windows: Vec<Range<SystemTime>>) -> Self {
        FreezeSwitch(Arc::new(State {
            manual: AtomicBool::new(false),
            windows,
            clock: Some(clock),
            refused: AtomicU64::new(0),
        }))
    }

    /// Freezes every backend behind this switch.
    pub fn freeze(&self) {
        self.0.manual.store(true, Ordering::SeqCst);
    }

    /// Thaws them (scheduled windows still apply).
    pub fn thaw(&self) {
        self.0.manual.store(false, Ordering::SeqCst);
    }

    /// True while calls are refused.
    pub fn is_frozen(&self) -> bool {
        if self.0.manual.load(Ordering::SeqCst) {
            return true;
        }
        match &self.0.clock {
            Some(clock) if !self.0.windows.is_empty() => {
                let now = clock.now();
                self.0.windows.iter().any(|w| w.contains(&now))
            }
            _ => false,
        }
    }

    /// Calls refused so far.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }

    fn check(&self, backend: &str, key: Option<&str>) -> Result<()> {
        if !self.is_frozen() {
            return Ok(());
        }
        self.0.refused.fetch_add(1, Ordering::Relaxed);
        Err(Error::Unavailable {
            backend: backend.to_owned(),
            key: key.map(str::to_owned),
            source: "frozen (a fault injected by cache_core::fault::Frozen)".into(),
        })
    }
}

/// `B` behind a [`FreezeSwitch`]: every call fails with
/// [`Error::Unavailable`] while the switch is frozen, and reaches `B`
/// otherwise. See the [module docs](self).
#[derive(Debug)]
pub struct Frozen<B> {
    inner: B,
    switch: FreezeSwitch,
}

impl<B> Frozen<B> {
    /// `inner` behind `switch`.
    pub fn new(inner: B, switch: FreezeSwitch) -> Self {
        Frozen { inner, switch }
    }

    /// The switch.
    pub fn switch(&self) -> &FreezeSwitch {
        &self.switch
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

#[async_trait]
impl<B: Backend> Backend for Frozen<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.switch.check(self.name(), Some(key.as_str()))?;
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.switch.check(self.name(), keys.first().map(Key::as_str))?;
        self.inner.get_many(keys).await
    }
    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.switch.check(self.name(), Some(key.as_str()))?;
        self.inner.set(key, value, ttl).await
    }
    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        self.switch
            .check(self.name(), entries.first().map(|(k, _)| k.as_str()))?;
        self.inner.set_many(entries, ttl).await
    }
    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.switch.check(self.name(), Some(key.as_str()))?;
        self.inner.add(key, value, ttl).await
    }
    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        self.switch.check(self.name(), Some(key.as_str()))?;
        self.inner.incr(key, delta).await
    }
    async fn delete(&self, key: &Key) -> Result<bool> {
        self.switch.check(self.name(), Some(key.as_str()))?;
        self.inner.delete(key).await
    }
    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.switch.check(self.name(), keys.first().map(Key::as_str))?;
        self.inner.delete_many(keys).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.switch.check(self.name(), Some(prefix))?;
        self.inner.delete_prefix(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn scheduled_windows_follow_the_clock() {
        let clock = ManualClock::at_unix_millis(0);
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let switch = FreezeSwitch::scheduled(Arc::new(clock.clone()), vec![at(10)..at(15), at(20)..at(21)]);
        for (t, frozen) in [(0, false), (10, true), (14, true), (15, false), (20, true), (21, false)] {
            clock.advance_to(at(t));
            assert_eq!(switch.is_frozen(), frozen, "t = {t} s");
        }
        switch.freeze();
        assert!(switch.is_frozen());
        switch.thaw();
        assert!(!switch.is_frozen());
    }
}
