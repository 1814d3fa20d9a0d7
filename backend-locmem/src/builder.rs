//! [`LocmemBuilder`]: the options of a [`LocmemBackend`].

use std::sync::{Arc, Mutex};

use cache_core::Clock;
use moka::sync::Cache;

use crate::backend::LocmemBackend;
use crate::entry::{Entry, GcDeadline, ENTRY_OVERHEAD};
use crate::fingerprint::{key_hasher, Fingerprint, PassThrough};
use crate::STRIPES;

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
    pub(crate) capacity: u64,
    pub(crate) max_value_size: Option<usize>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) name: String,
    pub(crate) hash_seed: Option<u64>,
    pub(crate) deterministic: bool,
    pub(crate) value_size: ValueSize,
}

/// How many bytes a stored value counts as (see [`LocmemBuilder::value_size`]).
pub type ValueSize = fn(&[u8]) -> usize;

/// The default [`ValueSize`]: a value counts as its length.
pub(crate) fn stored_len(value: &[u8]) -> usize {
    value.len()
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

    /// Make every eviction choice a function of the operations alone
    /// (default off). Use it, with [`Self::hash_seed`], where runs must
    /// repeat exactly: the simulator's reports.
    ///
    /// Why it is needed: moka batches its bookkeeping (recording reads,
    /// admitting writes, evicting) and applies a batch when one of its
    /// queues reaches 64 operations **or when 300 ms of wall time have
    /// passed** since the last batch. Where a batch boundary falls changes
    /// the order in which reads and writes reach its policy, so on a loaded
    /// machine two identical runs evicted different entries. With this on,
    /// the store applies the pending work after every write itself, so
    /// every write is applied after exactly the reads that preceded it and
    /// before any that follow: the order the operations happened in, which
    /// no timer can change (for a single-threaded caller, as the
    /// simulator's cells are).
    ///
    /// It changes what moka keeps, not only when: batched, a read that
    /// arrives just after an insert is counted before the insert is
    /// admitted, which favours new entries; in order, it is not. On the
    /// simulator's `realistic` scenario at 256 MiB this moved `versioned`'s
    /// hit rate from 21.1% (batched, varying slightly between runs) to
    /// 16.6% (in order, the same in every run).
    ///
    /// Why after every write, and not every N operations: moka checks its
    /// timer at the start of every operation, and a batch it applies then
    /// applies all the reads it holds before all the writes. Any schedule
    /// that leaves a write pending while another operation starts lets a
    /// stall of 300 ms (a preempted thread, a loaded VM) apply that write
    /// after reads that followed it, or split a run of writes differently:
    /// applying every 16 or 32 writes failed the stall test
    /// (`tests/deterministic.rs`) at once. After every write, what is
    /// pending when moka's timer fires is only reads, which it applies in
    /// their order with nothing in between, as the next write would. The
    /// price is moka's fixed cost per application (its locks, and a
    /// crossbeam-epoch flush that copies a 2 KiB bag) on every write
    /// instead of once per 64 operations: in the `locmem` bench a
    /// deterministic `set` measured 1.16× a default-mode one (BENCHMARKS.md),
    /// and replaying the simulator's own calls it is within the noise of
    /// the default mode (the `sim` bench's `store-only` pair).
    pub fn deterministic(mut self, on: bool) -> Self {
        self.deterministic = on;
        self
    }

    /// How many bytes a value counts as (default: its length), wherever the
    /// store measures one: the capacity weigher, [`Self::max_value_size`]
    /// and [`LocmemBackend::live_entries`]. Everything else (what `get`
    /// returns) sees the stored bytes.
    ///
    /// Why: a simulation models values of realistic size without writing
    /// them. The simulator stores its feeds with a trailer that declares
    /// their padding instead of the padding itself, and passes a function
    /// reading it back here, so the store charges, admits and evicts
    /// exactly as it would with the padded values, at a fraction of the
    /// memory traffic. A function, not a closure: it must be cheap and
    /// pure, since moka calls it under its maintenance.
    ///
    /// ```
    /// use backend_locmem::LocmemBackend;
    /// // Every value counts as at least 1 KiB.
    /// let cache = LocmemBackend::builder().value_size(|v| v.len().max(1024)).build();
    /// ```
    pub fn value_size(mut self, size: ValueSize) -> Self {
        self.value_size = size;
        self
    }

    /// Name reported in errors and reports (default `"locmem"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Builds the backend.
    pub fn build(self) -> LocmemBackend {
        let size = self.value_size;
        let builder = Cache::builder()
            .max_capacity(self.capacity)
            .weigher(move |_: &Fingerprint, v: &Entry| {
                u32::try_from(v.key.len() + size(&v.value) + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            });
        // Entries carry a real-time deadline only when the clock follows
        // real time; on another clock (a simulation's) moka's expiry policy
        // would have nothing to do but still run on every operation (a
        // callback per read and write, a timer wheel advanced on every
        // maintenance pass), so the store is built without one.
        let cache = if self.clock.tracks_real_time() {
            builder.expire_after(GcDeadline).build_with_hasher(PassThrough)
        } else {
            builder.build_with_hasher(PassThrough)
        };
        LocmemBackend {
            cache,
            stripes: Arc::new((0..STRIPES).map(|_| Mutex::new(())).collect()),
            index: Arc::default(),
            hasher: key_hasher(self.hash_seed),
            clock: self.clock,
            max_value_size: self.max_value_size,
            name: self.name,
            deterministic: self.deterministic,
            value_size: self.value_size,
        }
    }
}
