//! # backend-locmem
//!
//! An in-process [`Backend`] on [`moka::future::Cache`]: bounded by bytes,
//! per-entry TTL, atomic `incr` and `add`, prefix deletion. It is the
//! embedded default of the simulator and the reference the other backends are
//! compared with.
//!
//! ```
//! use backend_locmem::LocmemBackend;
//! use cache_core::{Backend, Bytes, Key};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! let cache = LocmemBackend::builder().max_capacity_bytes(64 << 20).build();
//! let key = Key::new("calendar_version:{cal:1}")?;
//! assert!(cache.add(&key, Bytes::from_static(b"0"), None).await?);
//! assert_eq!(cache.incr(&key, 1).await?, 1);
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Atomicity.** Every write (`set`, `add`, `incr`, `delete`) holds one of
//!   256 striped async mutexes, chosen by the key's hash, for its
//!   read-modify-write; reads take no lock. moka's own `and_compute_with`
//!   would serialise computes on a key, but its plain `insert` does not take
//!   that lock, so `set` would have to be a compute too, which measured ~1 µs
//!   slower per call than `insert` plus an uncontended stripe lock (~30 ns).
//! - **Time.** moka cannot take a custom clock, so each entry stores its
//!   logical expiry according to the backend's [`Clock`] and reads compare
//!   against it: with a [`cache_core::ManualClock`] a TTL expires exactly when
//!   the test (or simulator) moves time past it. moka's own per-entry expiry is
//!   set from the same TTL only when the clock follows real time, as a bound on
//!   how long dead entries occupy memory; with a manual clock, memory is bounded
//!   by capacity alone and [`LocmemBackend::purge_expired`] drops dead entries.
//! - **Capacity** is counted in bytes (key + value + a fixed per-entry
//!   overhead) by a weigher; moka evicts by TinyLFU when it is exceeded, as a
//!   cache may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cache_core::backend::{checked_counter_add, format_counter, is_expired_ttl, parse_counter};
use cache_core::{async_trait, system_clock, Backend, Bytes, Capabilities, Clock, Error, Key, Result, Ttl};
use moka::future::Cache;
use moka::Expiry;
use tokio::sync::Mutex;

/// Default capacity: 256 MiB.
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 << 20;
/// Default largest value: 1 MiB, Memcached's default item size, so that a
/// workload that fits here also fits a default Memcached.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 1 << 20;
/// Bytes charged per entry on top of key and value (moka's node, our header).
const ENTRY_OVERHEAD: usize = 96;
/// Write-lock stripes: enough that unrelated keys rarely share one on two cores.
const STRIPES: usize = 256;

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    /// Logical expiry per the backend's clock.
    expires_at: Option<SystemTime>,
    /// Real-time garbage-collection deadline handed to moka.
    gc_deadline: Option<Instant>,
}

impl Entry {
    fn live_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    /// Like [`Entry::live_at`] but reads the clock only when the entry has an
    /// expiry: most cached views and every generation key have none worth
    /// checking on the hot path, and a clock read is a noticeable share of a
    /// ~300 ns get.
    fn live(&self, clock: &dyn Clock) -> bool {
        self.expires_at.is_none_or(|t| clock.now() < t)
    }
}

/// How keys are hashed (moka's table and admission, our write stripes).
///
/// `Random` is the default: per-process random SipHash keys, so callers
/// who put user input into keys cannot aim collisions at one bucket. `Seeded`
/// makes hashing, and with it moka's eviction choices, the same in every run,
/// which a simulation needs for byte-identical reports.
#[derive(Debug, Clone)]
enum KeyHasher {
    Random(RandomState),
    Seeded(u64),
}

impl BuildHasher for KeyHasher {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        match self {
            KeyHasher::Random(r) => r.build_hasher(),
            KeyHasher::Seeded(seed) => {
                let mut h = DefaultHasher::new();
                h.write_u64(*seed);
                h
            }
        }
    }
}

/// moka expiry policy: each entry carries its own real-time deadline.
struct GcDeadline;

impl Expiry<String, Entry> for GcDeadline {
    fn expire_after_create(&self, _key: &String, value: &Entry, created_at: Instant) -> Option<Duration> {
        value.gc_deadline.map(|d| d.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.gc_deadline.map(|d| d.saturating_duration_since(updated_at))
    }
}

/// Builder for [`LocmemBackend`].
///
/// ```
/// use backend_locmem::LocmemBackend;
/// use cache_core::ManualClock;
/// use std::sync::Arc;
/// let clock = ManualClock::at_unix_millis(0);
/// let cache = LocmemBackend::builder()
///     .max_capacity_bytes(16 << 20)
///     .max_value_size(Some(64 << 10))
///     .clock(Arc::new(clock.clone()))
///     .name("locmem-process-1")
///     .build();
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LocmemBuilder {
    capacity: u64,
    max_value_size: Option<usize>,
    clock: Arc<dyn Clock>,
    name: String,
    hash_seed: Option<u64>,
}

impl LocmemBuilder {
    /// Total bytes the cache may hold (default 256 MiB).
    pub fn max_capacity_bytes(mut self, bytes: u64) -> Self {
        self.capacity = bytes;
        self
    }

    /// Largest value accepted (default 1 MiB); `None` for no limit beyond
    /// capacity.
    pub fn max_value_size(mut self, limit: Option<usize>) -> Self {
        self.max_value_size = limit;
        self
    }

    /// The clock logical TTLs follow (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Hash keys with a fixed seed instead of per-process random keys
    /// (default: random). Use it where runs must repeat exactly (the
    /// simulator): hashing decides which entries moka evicts. Do not use it
    /// for keys built from untrusted input in production: a known seed lets
    /// an attacker aim hash collisions.
    pub fn hash_seed(mut self, seed: Option<u64>) -> Self {
        self.hash_seed = seed;
        self
    }

    /// Name reported in errors and reports (default `"locmem"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Builds the backend.
    pub fn build(self) -> LocmemBackend {
        let hasher = match self.hash_seed {
            Some(seed) => KeyHasher::Seeded(seed),
            None => KeyHasher::Random(RandomState::new()),
        };
        let cache = Cache::builder()
            .max_capacity(self.capacity)
            .weigher(|k: &String, v: &Entry| {
                u32::try_from(k.len() + v.value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(GcDeadline)
            .build_with_hasher(hasher.clone());
        LocmemBackend {
            cache,
            stripes: Arc::new((0..STRIPES).map(|_| Mutex::new(())).collect()),
            hasher,
            clock: self.clock,
            max_value_size: self.max_value_size,
            name: self.name,
        }
    }
}

/// The in-process backend. Cloning shares the same store.
#[derive(Clone)]
pub struct LocmemBackend {
    cache: Cache<String, Entry, KeyHasher>,
    stripes: Arc<Vec<Mutex<()>>>,
    hasher: KeyHasher,
    clock: Arc<dyn Clock>,
    max_value_size: Option<usize>,
    name: String,
}

impl std::fmt::Debug for LocmemBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocmemBackend")
            .field("name", &self.name)
            .field("entries", &self.cache.entry_count())
            .field("weighted_bytes", &self.cache.weighted_size())
            .field("max_value_size", &self.max_value_size)
            .finish()
    }
}

impl Default for LocmemBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl LocmemBackend {
    /// A backend with default settings (256 MiB, 1 MiB values, system clock).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder with default settings.
    pub fn builder() -> LocmemBuilder {
        LocmemBuilder {
            capacity: DEFAULT_CAPACITY_BYTES,
            max_value_size: Some(DEFAULT_MAX_VALUE_SIZE),
            clock: system_clock(),
            name: "locmem".to_owned(),
            hash_seed: None,
        }
    }

    /// Entries currently held, live or logically expired (moka's count, which
    /// lags recent writes until [`Self::run_pending_tasks`]).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Bytes currently charged by the weigher (lags like [`Self::entry_count`]).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// Lets moka finish pending maintenance (evictions, counts).
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// Removes every entry whose logical expiry has passed; returns how many.
    pub async fn purge_expired(&self) -> u64 {
        let now = self.clock.now();
        let dead: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(_, e)| !e.live_at(now))
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for k in dead {
            if self.remove_if(k.as_str(), |e| !e.live_at(now)).await {
                n += 1;
            }
        }
        n
    }

    /// Live keys and value sizes, in no particular order. The simulator uses
    /// it to count dead keys and bytes at the end of a run.
    pub fn live_entries(&self) -> Vec<(String, usize)> {
        let now = self.clock.now();
        self.cache
            .iter()
            .filter(|(_, e)| e.live_at(now))
            .map(|(k, e)| (k.as_ref().clone(), e.value.len()))
            .collect()
    }

    fn entry(&self, value: Bytes, ttl: Ttl) -> Entry {
        let (expires_at, gc_deadline) = match ttl {
            None => (None, None),
            Some(d) => {
                let gc = self.clock.tracks_real_time().then(|| Instant::now() + d);
                (Some(self.clock.now() + d), gc)
            }
        };
        Entry {
            value,
            expires_at,
            gc_deadline,
        }
    }

    fn check_size(&self, key: &Key, value: &Bytes) -> Result<()> {
        match self.max_value_size {
            Some(limit) if value.len() > limit => Err(Error::ValueTooLarge {
                backend: self.name.clone(),
                key: key.to_string(),
                size: value.len(),
                limit,
            }),
            _ => Ok(()),
        }
    }

    fn stripe(&self, key: &str) -> &Mutex<()> {
        let i = (self.hasher.hash_one(key) as usize) % self.stripes.len();
        &self.stripes[i]
    }

    /// Removes `key` when `pred` holds for its entry; returns whether the
    /// removed entry was live. Caller holds the key's stripe lock.
    async fn remove_locked(&self, key: &str, pred: impl FnOnce(&Entry) -> bool) -> bool {
        match self.cache.get(key).await {
            Some(e) if pred(&e) => {
                self.cache.invalidate(key).await;
                e.live(self.clock.as_ref())
            }
            _ => false,
        }
    }

    async fn remove_if(&self, key: &str, pred: impl FnOnce(&Entry) -> bool) -> bool {
        let _guard = self.stripe(key).lock().await;
        self.remove_locked(key, pred).await
    }

    /// The incr read-modify-write; caller holds the key's stripe lock.
    async fn incr_locked(&self, key: &Key, delta: u64) -> Result<u64> {
        let current = self
            .cache
            .get(key.as_str())
            .await
            .filter(|e| e.live(self.clock.as_ref()))
            .ok_or_else(|| Error::NotFound {
                backend: self.name.clone(),
                key: key.to_string(),
            })?;
        let n = parse_counter(&current.value).ok_or_else(|| Error::NotACounter {
            backend: self.name.clone(),
            key: key.to_string(),
        })?;
        let next = checked_counter_add(n, delta).ok_or_else(|| Error::Overflow {
            backend: self.name.clone(),
            key: key.to_string(),
            delta,
        })?;
        if next != n {
            // Keep the entry's expiry: an increment does not refresh a TTL.
            let entry = Entry {
                value: format_counter(next),
                ..current
            };
            self.cache.insert(key.as_str().to_owned(), entry).await;
        }
        Ok(next)
    }
}

#[async_trait]
impl Backend for LocmemBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_prefix_delete(true)
            .with_max_value_size(self.max_value_size)
            .with_ttl_granularity(Duration::ZERO)
            .with_shared_between_processes(false)
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        Ok(self
            .cache
            .get(key.as_str())
            .await
            .filter(|e| e.live(self.clock.as_ref()))
            .map(|e| e.value))
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.check_size(key, &value)?;
        if is_expired_ttl(ttl) {
            self.remove_if(key.as_str(), |_| true).await;
            return Ok(());
        }
        let entry = self.entry(value, ttl);
        let _guard = self.stripe(key.as_str()).lock().await;
        self.cache.insert(key.as_str().to_owned(), entry).await;
        Ok(())
    }

    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        // Check every size first so a too-large value writes nothing.
        for (key, value) in entries {
            self.check_size(key, value)?;
        }
        for (key, value) in entries {
            self.set(key, value.clone(), ttl).await?;
        }
        Ok(())
    }

    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.check_size(key, &value)?;
        if is_expired_ttl(ttl) {
            return Ok(false);
        }
        let _guard = self.stripe(key.as_str()).lock().await;
        if let Some(e) = self.cache.get(key.as_str()).await {
            if e.live(self.clock.as_ref()) {
                return Ok(false);
            }
        }
        let entry = self.entry(value, ttl);
        self.cache.insert(key.as_str().to_owned(), entry).await;
        Ok(true)
    }

    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        let _guard = self.stripe(key.as_str()).lock().await;
        self.incr_locked(key, delta).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        Ok(self.remove_if(key.as_str(), |_| true).await)
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let mut n = 0;
        for key in keys {
            n += u64::from(self.remove_if(key.as_str(), |_| true).await);
        }
        Ok(n)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        // Collect first, then remove under each key's lock: iterating while
        // removing is allowed by moka but would make the count approximate.
        let keys: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for k in keys {
            n += u64::from(self.remove_if(k.as_str(), |_| true).await);
        }
        Ok(n)
    }
}
