//! A wrapper backend that counts what reaches the backend under it.
//!
//! The simulator and the benchmarks report "backend cost" from these counts:
//! round trips per operation kind, keys touched (a `get_many` of 12 keys is 1
//! call and 12 keys), errors, and latency (a log2 histogram, enough for p50 and
//! p99 without allocating per call).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use crate::backend::{Backend, Capabilities, Ttl};
use crate::error::Result;
use crate::key::Key;

/// Operation kinds, one per [`Backend`] primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Op {
    /// [`Backend::get`]
    Get,
    /// [`Backend::get_many`]
    GetMany,
    /// [`Backend::set`]
    Set,
    /// [`Backend::set_many`]
    SetMany,
    /// [`Backend::add`]
    Add,
    /// [`Backend::incr`]
    Incr,
    /// [`Backend::delete`]
    Delete,
    /// [`Backend::delete_many`]
    DeleteMany,
    /// [`Backend::delete_prefix`]
    DeletePrefix,
}

impl Op {
    /// Every operation kind, in declaration order.
    pub const ALL: [Op; 9] = [
        Op::Get,
        Op::GetMany,
        Op::Set,
        Op::SetMany,
        Op::Add,
        Op::Incr,
        Op::Delete,
        Op::DeleteMany,
        Op::DeletePrefix,
    ];

    /// The operation's name as used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetMany => "get_many",
            Op::Set => "set",
            Op::SetMany => "set_many",
            Op::Add => "add",
            Op::Incr => "incr",
            Op::Delete => "delete",
            Op::DeleteMany => "delete_many",
            Op::DeletePrefix => "delete_prefix",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const BUCKETS: usize = 40; // 2^40 ns ≈ 18 minutes: plenty.

#[derive(Debug)]
struct OpCounter {
    calls: AtomicU64,
    keys: AtomicU64,
    errors: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
    histogram: [AtomicU64; BUCKETS],
}

impl Default for OpCounter {
    fn default() -> Self {
        OpCounter {
            calls: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            total_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
            histogram: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Live counters shared between an [`Instrumented`] backend and whoever
/// reads them. Cheap to clone (an `Arc`).
#[derive(Debug, Clone)]
pub struct OpStats {
    counters: Arc<[OpCounter; 9]>,
    /// Whether calls are timed (latency fields); counts are always kept.
    timed: bool,
    /// Value bytes that `get` and `get_many` brought back (what crossed
    /// the wire for a remote backend, keys and framing aside).
    bytes_read: Arc<AtomicU64>,
    /// What a value counts as in `bytes_read` (its length by default).
    value_size: fn(&[u8]) -> usize,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            counters: Arc::default(),
            timed: true,
            bytes_read: Arc::default(),
            value_size: <[u8]>::len,
        }
    }
}

impl OpStats {
    /// Fresh, zeroed counters; calls are timed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fresh counters that count calls, keys and errors but do not time
    /// them: the latency fields of snapshots stay 0.
    ///
    /// Why: timing reads the clock twice per call, a few percent of a call
    /// to an in-process store; a simulation that only needs round-trip
    /// counts (`ops/read`) runs that much faster without it.
    pub fn counts_only() -> Self {
        OpStats {
            counters: Arc::default(),
            timed: false,
            bytes_read: Arc::default(),
            value_size: <[u8]>::len,
        }
    }

    /// Whether calls are timed (see [`OpStats::counts_only`]).
    pub fn is_timed(&self) -> bool {
        self.timed
    }

    fn count(&self, op: Op, keys: usize, ok: bool) {
        let c = &self.counters[op.index()];
        c.calls.fetch_add(1, Ordering::Relaxed);
        c.keys.fetch_add(keys as u64, Ordering::Relaxed);
        if !ok {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn record(&self, op: Op, keys: usize, elapsed: Duration, ok: bool) {
        self.count(op, keys, ok);
        let c = &self.counters[op.index()];
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        c.total_nanos.fetch_add(nanos, Ordering::Relaxed);
        c.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        let bucket = (64 - nanos.leading_zeros() as usize).min(BUCKETS - 1);
        c.histogram[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// A consistent-enough copy of the counters (each number is read once).
    pub fn snapshot(&self) -> StatsSnapshot {
        let ops = Op::ALL
            .iter()
            .map(|&op| {
                let c = &self.counters[op.index()];
                let hist: Vec<u64> = c.histogram.iter().map(|h| h.load(Ordering::Relaxed)).collect();
                OpSnapshot {
                    op,
                    calls: c.calls.load(Ordering::Relaxed),
                    keys: c.keys.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    total_nanos: c.total_nanos.load(Ordering::Relaxed),
                    max_nanos: c.max_nanos.load(Ordering::Relaxed),
                    p50_nanos: quantile(&hist, 0.50),
                    p99_nanos: quantile(&hist, 0.99),
                }
            })
            .collect();
        StatsSnapshot {
            ops,
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
        }
    }

    /// Counts `size` as what a value read counts for in
    /// [`StatsSnapshot::bytes_read`] (builder style): the simulator's
    /// declared feed sizes, whose padding is not stored.
    #[must_use]
    pub fn with_value_size(mut self, size: fn(&[u8]) -> usize) -> Self {
        self.value_size = size;
        self
    }

    fn add_bytes_read<'a>(&self, values: impl IntoIterator<Item = &'a Bytes>) {
        let n: usize = values.into_iter().map(|v| (self.value_size)(v)).sum();
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        self.bytes_read.store(0, Ordering::Relaxed);
        for c in self.counters.iter() {
            c.calls.store(0, Ordering::Relaxed);
            c.keys.store(0, Ordering::Relaxed);
            c.errors.store(0, Ordering::Relaxed);
            c.total_nanos.store(0, Ordering::Relaxed);
            c.max_nanos.store(0, Ordering::Relaxed);
            for h in &c.histogram {
                h.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// Upper bound of the log2 bucket holding quantile `q` (0 when empty).
fn quantile(hist: &[u64], q: f64) -> u64 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &n) in hist.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return if i == 0 { 0 } else { 1u64 << i };
        }
    }
    u64::MAX
}

/// Counters of one operation kind at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OpSnapshot {
    /// Which operation.
    pub op: Op,
    /// Calls that reached the backend (round trips).
    pub calls: u64,
    /// Keys those calls touched (1 per single-key call, N per batch).
    pub keys: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Sum of latencies, nanoseconds.
    pub total_nanos: u64,
    /// Slowest call, nanoseconds.
    pub max_nanos: u64,
    /// Median latency (upper bound of its power-of-two bucket), nanoseconds.
    pub p50_nanos: u64,
    /// 99th percentile latency (same resolution), nanoseconds.
    pub p99_nanos: u64,
}

/// Counters of every operation kind at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// One entry per [`Op`], in [`Op::ALL`] order.
    pub ops: Vec<OpSnapshot>,
    /// Value bytes `get` and `get_many` returned.
    pub bytes_read: u64,
}

impl StatsSnapshot {
    /// The counters of `op`.
    pub fn op(&self, op: Op) -> &OpSnapshot {
        // `ops` is built from `Op::ALL`, so the index is always present.
        &self.ops[op.index()]
    }

    /// Round trips of every kind.
    pub fn total_calls(&self) -> u64 {
        self.ops.iter().map(|o| o.calls).sum()
    }

    /// Keys touched by every kind.
    pub fn total_keys(&self) -> u64 {
        self.ops.iter().map(|o| o.keys).sum()
    }

    /// Errors of every kind.
    pub fn total_errors(&self) -> u64 {
        self.ops.iter().map(|o| o.errors).sum()
    }

    /// `self - earlier`, counter by counter (latency maxima and quantiles are
    /// taken from `self`). Useful to attribute cost to one phase of a run.
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        let ops = self
            .ops
            .iter()
            .zip(&earlier.ops)
            .map(|(a, b)| OpSnapshot {
                op: a.op,
                calls: a.calls.saturating_sub(b.calls),
                keys: a.keys.saturating_sub(b.keys),
                errors: a.errors.saturating_sub(b.errors),
                total_nanos: a.total_nanos.saturating_sub(b.total_nanos),
                max_nanos: a.max_nanos,
                p50_nanos: a.p50_nanos,
                p99_nanos: a.p99_nanos,
            })
            .collect();
        StatsSnapshot {
            ops,
            bytes_read: self.bytes_read.saturating_sub(earlier.bytes_read),
        }
    }
}

/// Wraps a backend and counts every call that reaches it.
///
/// ```
/// # async fn demo(inner: std::sync::Arc<dyn cache_core::Backend>) -> cache_core::Result<()> {
/// use cache_core::{Backend, Instrumented, Key, Op};
/// let counted = Instrumented::new(inner);
/// counted.get(&Key::new("k")?).await?;
/// assert_eq!(counted.stats().snapshot().op(Op::Get).calls, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Instrumented<B> {
    inner: B,
    stats: OpStats,
}

impl<B: Backend> Instrumented<B> {
    /// Wraps `inner` with fresh counters.
    pub fn new(inner: B) -> Self {
        Self::with_stats(inner, OpStats::new())
    }

    /// Wraps `inner`, adding to existing counters (several wrappers can feed
    /// one set of counters, e.g. one per simulated app process).
    pub fn with_stats(inner: B, stats: OpStats) -> Self {
        Instrumented { inner, stats }
    }

    /// The live counters.
    pub fn stats(&self) -> &OpStats {
        &self.stats
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    async fn timed<T, F>(&self, op: Op, keys: usize, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send,
    {
        if !self.stats.timed {
            let out = fut.await;
            self.stats.count(op, keys, out.is_ok());
            return out;
        }
        let start = Instant::now();
        let out = fut.await;
        self.stats.record(op, keys, start.elapsed(), out.is_ok());
        out
    }
}

#[async_trait]
impl<B: Backend> Backend for Instrumented<B> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let got = self.timed(Op::Get, 1, self.inner.get(key)).await;
        if let Ok(Some(v)) = &got {
            self.stats.add_bytes_read([v]);
        }
        got
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let got = self.timed(Op::GetMany, keys.len(), self.inner.get_many(keys)).await;
        if let Ok(values) = &got {
            self.stats.add_bytes_read(values.iter().flatten());
        }
        got
    }
    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.timed(Op::Set, 1, self.inner.set(key, value, ttl)).await
    }
    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        self.timed(Op::SetMany, entries.len(), self.inner.set_many(entries, ttl))
            .await
    }
    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.timed(Op::Add, 1, self.inner.add(key, value, ttl)).await
    }
    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        self.timed(Op::Incr, 1, self.inner.incr(key, delta)).await
    }
    async fn delete(&self, key: &Key) -> Result<bool> {
        self.timed(Op::Delete, 1, self.inner.delete(key)).await
    }
    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.timed(Op::DeleteMany, keys.len(), self.inner.delete_many(keys))
            .await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        // Keys touched are unknown up front; count the ones deleted.
        let start = Instant::now();
        let out = self.inner.delete_prefix(prefix).await;
        let keys = out.as_ref().map(|&n| n as usize).unwrap_or(0);
        self.stats.record(Op::DeletePrefix, keys, start.elapsed(), out.is_ok());
        out
    }
    async fn server_stats(&self) -> Result<Option<crate::backend::ServerStats>> {
        // Not cache traffic: forwarded, not counted.
        self.inner.server_stats().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_histogram() {
        let stats = OpStats::new();
        for _ in 0..99 {
            stats.record(Op::Get, 1, Duration::from_nanos(1000), true);
        }
        stats.record(Op::Get, 3, Duration::from_millis(5), false);
        let snap = stats.snapshot();
        let get = snap.op(Op::Get);
        assert_eq!((get.calls, get.keys, get.errors), (100, 102, 1));
        assert_eq!(get.p50_nanos, 1024);
        assert_eq!(get.p99_nanos, 1024);
        assert_eq!(get.max_nanos, 5_000_000);
        assert_eq!(snap.total_calls(), 100);
        let later = stats.snapshot();
        assert_eq!(later.since(&snap).total_calls(), 0);
        stats.reset();
        assert_eq!(stats.snapshot().total_keys(), 0);
    }

    /// A backend whose `get` takes at least a millisecond; nothing else is called.
    #[derive(Debug)]
    struct Slow;

    #[async_trait]
    impl Backend for Slow {
        fn name(&self) -> &str {
            "slow"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities::new()
        }
        async fn get(&self, _key: &Key) -> Result<Option<Bytes>> {
            std::thread::sleep(Duration::from_millis(1));
            Ok(None)
        }
        async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
            Ok(vec![None; keys.len()])
        }
        async fn set(&self, _key: &Key, _value: Bytes, _ttl: Ttl) -> Result<()> {
            Ok(())
        }
        async fn set_many(&self, _entries: &[(Key, Bytes)], _ttl: Ttl) -> Result<()> {
            Ok(())
        }
        async fn add(&self, _key: &Key, _value: Bytes, _ttl: Ttl) -> Result<bool> {
            Ok(true)
        }
        async fn incr(&self, _key: &Key, _delta: u64) -> Result<u64> {
            Ok(1)
        }
        async fn delete(&self, _key: &Key) -> Result<bool> {
            Ok(false)
        }
        async fn delete_many(&self, _keys: &[Key]) -> Result<u64> {
            Ok(0)
        }
        async fn delete_prefix(&self, _prefix: &str) -> Result<u64> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn counts_only_counts_but_does_not_time() {
        let key = Key::new("k").unwrap();
        let timed = Instrumented::new(Slow);
        let counted = Instrumented::with_stats(Slow, OpStats::counts_only());
        assert!(timed.stats().is_timed() && !counted.stats().is_timed());
        for b in [&timed, &counted] {
            b.get(&key).await.unwrap();
            b.get_many(&[key.clone(), key.clone()]).await.unwrap();
        }
        let (t, c) = (timed.stats().snapshot(), counted.stats().snapshot());
        assert_eq!((c.op(Op::Get).calls, c.op(Op::GetMany).keys), (1, 2));
        assert_eq!((t.op(Op::Get).calls, t.op(Op::GetMany).keys), (1, 2));
        assert!(t.op(Op::Get).total_nanos >= 1_000_000, "{:?}", t.op(Op::Get));
        assert_eq!((c.op(Op::Get).total_nanos, c.op(Op::Get).max_nanos), (0, 0));
    }
}
