//! [`TwoTier`]: the backend wrapper, its builder and its counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::backplane::Backplane;
use super::known::{KnownGenerations, Notice};
use crate::backend::{format_counter, parse_counter, Backend, Capabilities, Ttl};
use crate::clock::{system_clock, Clock};
use crate::error::Result;
use crate::key::Key;
use crate::strategy::{StampedForm, StoredEntry, StoredForm};

/// Default longest life of an entry copy in L1.
pub const DEFAULT_L1_TTL: Duration = Duration::from_secs(300);
/// Default longest trust in a known generation without a notice.
pub const DEFAULT_TRUST_FOR: Duration = Duration::from_secs(30);

/// Live counters of one [`TwoTier`].
#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    l1_hits: AtomicU64,
    l1_hit_round_trips: AtomicU64,
    zero_trip_reads: AtomicU64,
    l2_round_trips: AtomicU64,
    l2_keys_read: AtomicU64,
    l2_bytes_read: AtomicU64,
    l2_writes: AtomicU64,
    published: AtomicU64,
    l1_errors: AtomicU64,
}

/// What a [`TwoTier`] has done so far (reads are `get`/`get_many` calls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TierStats {
    /// `get` / `get_many` calls.
    pub reads: u64,
    /// Entries served from L1 (stamps matched the current generations).
    pub l1_hits: u64,
    /// L2 calls made by the reads that served an L1 entry: 1 per L1 hit
    /// without a backplane, 0 with one (while generations are known).
    pub l1_hit_round_trips: u64,
    /// Reads answered without any L2 call (backplane-known generations).
    pub zero_trip_reads: u64,
    /// L2 calls made by reads.
    pub l2_round_trips: u64,
    /// Keys those calls asked for.
    pub l2_keys_read: u64,
    /// Value bytes they brought back (what crossed the wire, keys aside).
    pub l2_bytes_read: u64,
    /// L2 calls made by writes (`set`, `add`, `incr`, deletes).
    pub l2_writes: u64,
    /// Notices published on the backplane.
    pub published: u64,
    /// L1 calls that failed (the read went to L2 instead).
    pub l1_errors: u64,
}

impl std::ops::Add for TierStats {
    type Output = TierStats;

    /// Counter by counter: the tiers of several processes as one.
    fn add(self, o: TierStats) -> TierStats {
        TierStats {
            reads: self.reads + o.reads,
            l1_hits: self.l1_hits + o.l1_hits,
            l1_hit_round_trips: self.l1_hit_round_trips + o.l1_hit_round_trips,
            zero_trip_reads: self.zero_trip_reads + o.zero_trip_reads,
            l2_round_trips: self.l2_round_trips + o.l2_round_trips,
            l2_keys_read: self.l2_keys_read + o.l2_keys_read,
            l2_bytes_read: self.l2_bytes_read + o.l2_bytes_read,
            l2_writes: self.l2_writes + o.l2_writes,
            published: self.published + o.published,
            l1_errors: self.l1_errors + o.l1_errors,
        }
    }
}

/// An in-process L1 in front of a shared L2; see the [tier docs](crate::tier).
/// Cheap to clone (an `Arc`); clones share tiers, table and counters.
#[derive(Debug, Clone)]
pub struct TwoTier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    l1: Arc<dyn Backend>,
    l2: Arc<dyn Backend>,
    name: String,
    l1_ttl: Duration,
    known: Option<Arc<KnownGenerations>>,
    backplane: Option<Arc<dyn Backplane>>,
    counters: Counters,
    clock: Arc<dyn Clock>,
    form: Arc<dyn StoredForm>,
}

/// Builds a [`TwoTier`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cache_core::tier::{LocalBackplane, TwoTier};
/// # fn demo(l1: Arc<dyn cache_core::Backend>, l2: Arc<dyn cache_core::Backend>) -> cache_core::Result<()> {
/// // Without a backplane: one small L2 round trip per hit, no payload bytes.
/// let cache = TwoTier::builder(l1.clone(), l2.clone()).build()?;
/// // With one (Redis pub/sub in production): an L1 hit makes no round trip.
/// let bus = LocalBackplane::new(Duration::ZERO, cache_core::system_clock());
/// let cache = TwoTier::builder(l1, l2).backplane(Arc::new(bus)).build()?;
/// # let _ = cache; Ok(()) }
/// ```
#[must_use]
#[derive(Debug)]
pub struct TwoTierBuilder {
    l1: Arc<dyn Backend>,
    l2: Arc<dyn Backend>,
    backplane: Option<Arc<dyn Backplane>>,
    l1_ttl: Duration,
    trust_for: Duration,
    clock: Arc<dyn Clock>,
    form: Arc<dyn StoredForm>,
}

impl TwoTierBuilder {
    /// Subscribes to `backplane`: generations are kept in L1 and an L1 hit
    /// needs no round trip (staleness: up to the backplane's delivery
    /// latency after a bump).
    pub fn backplane(mut self, backplane: Arc<dyn Backplane>) -> Self {
        self.backplane = Some(backplane);
        self
    }

    /// Longest life of an entry copy in L1 (default [`DEFAULT_L1_TTL`]);
    /// the entry's own TTL applies when shorter.
    pub fn l1_ttl(mut self, ttl: Duration) -> Self {
        self.l1_ttl = ttl;
        self
    }

    /// Longest trust in a generation learnt while subscribed (or last
    /// extended by a bump notice) without a newer notice (default
    /// [`DEFAULT_TRUST_FOR`], 30 s).
    ///
    /// It bounds staleness only when a notice is lost while the
    /// subscription stays up: a writer that bumped and died before
    /// publishing, or a publish that failed. With fenced writes
    /// (`RangeCache::begin_write` / `end_write`) a writer's death cannot
    /// serve stale data (before its commit nothing changed; after it the
    /// fence's notice already makes every process bypass), so only failed
    /// publishes remain. The price is round trips: a process asks L2 for a
    /// generation again at least once per `trust_for`, so an L1 hit on a
    /// view read less often than that makes one. On the simulator's
    /// 3-process `realistic` trace (fenced writes, 2 ms delivery): 0.50 L2
    /// round trips per L1 hit at 30 s, 0.004 at 300 s, 0.0006 at an hour,
    /// 0 stale reads in each. Raise it when writes are fenced and hit
    /// latency matters; keep it short when they are not.
    pub fn trust_for(mut self, d: Duration) -> Self {
        self.trust_for = d;
        self
    }

    /// The clock for trust ages (default: the system clock; the simulator
    /// passes its virtual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How the strategy above stores its entries (default
    /// `stamped`'s form: the tiers are for `stamped`). Only entries this form
    /// opens with stamps are copied into L1, because only they can be
    /// checked against the generations without the strategy's plan.
    pub fn stored_form(mut self, form: Arc<dyn StoredForm>) -> Self {
        self.form = form;
        self
    }

    /// The two-tier backend; subscribes to the backplane if one was given.
    pub fn build(self) -> Result<TwoTier> {
        let known = match &self.backplane {
            Some(bp) => {
                let table = Arc::new(KnownGenerations::new(self.clock.clone(), self.trust_for));
                bp.subscribe(table.clone())?;
                Some(table)
            }
            None => None,
        };
        let name = format!(
            "two-tier({}+{}{})",
            self.l1.name(),
            self.l2.name(),
            self.backplane
                .as_ref()
                .map(|b| format!("+{}", b.name()))
                .unwrap_or_default()
        );
        Ok(TwoTier {
            inner: Arc::new(Inner {
                l1: self.l1,
                l2: self.l2,
                name,
                l1_ttl: self.l1_ttl,
                known,
                backplane: self.backplane,
                counters: Counters::default(),
                clock: self.clock,
                form: self.form,
            }),
        })
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl TwoTier {
    /// A builder over `l1` (in-process, one per process: locmem) and `l2`
    /// (shared by every process).
    pub fn builder(l1: Arc<dyn Backend>, l2: Arc<dyn Backend>) -> TwoTierBuilder {
        TwoTierBuilder {
            l1,
            l2,
            backplane: None,
            l1_ttl: DEFAULT_L1_TTL,
            trust_for: DEFAULT_TRUST_FOR,
            clock: system_clock(),
            form: Arc::new(StampedForm),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> TierStats {
        let c = &self.inner.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TierStats {
            reads: g(&c.reads),
            l1_hits: g(&c.l1_hits),
            l1_hit_round_trips: g(&c.l1_hit_round_trips),
            zero_trip_reads: g(&c.zero_trip_reads),
            l2_round_trips: g(&c.l2_round_trips),
            l2_keys_read: g(&c.l2_keys_read),
            l2_bytes_read: g(&c.l2_bytes_read),
            l2_writes: g(&c.l2_writes),
            published: g(&c.published),
            l1_errors: g(&c.l1_errors),
        }
    }

    /// The known-generation table (only with a backplane).
    pub fn known(&self) -> Option<&Arc<KnownGenerations>> {
        self.inner.known.as_ref()
    }

    /// The L1 store.
    pub fn l1(&self) -> &Arc<dyn Backend> {
        &self.inner.l1
    }

    /// The L2 store.
    pub fn l2(&self) -> &Arc<dyn Backend> {
        &self.inner.l2
    }

    fn l1_ttl(&self, ttl: Ttl) -> Ttl {
        Some(ttl.map_or(self.inner.l1_ttl, |t| t.min(self.inner.l1_ttl)))
    }

    async fn l2_read(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let c = &self.inner.counters;
        bump(&c.l2_round_trips, 1);
        bump(&c.l2_keys_read, keys.len() as u64);
        let values = match keys {
            [one] => vec![self.inner.l2.get(one).await?],
            many => self.inner.l2.get_many(many).await?,
        };
        let bytes: usize = values.iter().flatten().map(Bytes::len).sum();
        bump(&c.l2_bytes_read, bytes as u64);
        Ok(values)
    }

    /// Forgets `notices` here at once, then tells the other processes.
    async fn announce(&self, notices: Vec<Notice>) -> Result<()> {
        let (Some(known), Some(bp)) = (&self.inner.known, &self.inner.backplane) else {
            return Ok(());
        };
        for n in notices {
            known.notice(&n);
            bump(&self.inner.counters.published, 1);
            bp.publish(&n).await?;
        }
        Ok(())
    }

    /// `value` opened by the strategy's form when it is a stamped entry
    /// (one L1 can hold and check); `None` for anything else.
    fn stamped(&self, value: &Bytes) -> Option<StoredEntry> {
        self.inner.form.open(value).filter(StoredEntry::is_stamped)
    }

    /// How long a stamped entry stays logically fresh: `None` when it has
    /// expired, `Some(None)` when it does not expire. An L1 copy is never
    /// served past its logical expiry: another process may have refilled
    /// L2 meanwhile, and serving the expired copy would make the read path
    /// reload what L2 holds.
    fn fresh_for(&self, entry: &StoredEntry) -> Option<Option<Duration>> {
        match entry.envelope().expires_at {
            None => Some(None),
            Some(t) => t
                .duration_since(self.inner.clock.now())
                .ok()
                .filter(|d| !d.is_zero())
                .map(Some),
        }
    }

    /// Puts fresh stamped entries read from L2 into L1, each for as long as
    /// it stays fresh (best effort: an L1 failure only costs a later L2
    /// read).
    async fn fill_l1(&self, entries: Vec<(Key, Bytes, StoredEntry)>) {
        for (key, value, entry) in entries {
            let Some(life) = self.fresh_for(&entry) else {
                continue;
            };
            if self.inner.l1.set(&key, value, self.l1_ttl(life)).await.is_err() {
                bump(&self.inner.counters.l1_errors, 1);
            }
        }
    }
}

/// The generations of a batch: the counters among `values` at the
/// positions that are neither L1 `candidates` nor stamped entries
/// (`entry`), in order; `None` when one of them is missing or not a
/// counter (the strategy will seed it; serve nothing from L1 meanwhile).
fn batch_generations(values: &[Option<Bytes>], candidate: &[bool], entry: impl Fn(&Bytes) -> bool) -> Option<Vec<u64>> {
    values
        .iter()
        .zip(candidate)
        .filter(|(v, c)| !**c && !v.as_ref().is_some_and(&entry))
        .map(|(v, _)| v.as_deref().and_then(parse_counter))
        .collect()
}

#[async_trait]
impl Backend for TwoTier {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.l2.capabilities()
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        let mut v = self.get_many(std::slice::from_ref(key)).await?;
        Ok(v.pop().flatten())
    }

    /// The read path: see the tier docs, "How a read works".
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let c = &self.inner.counters;
        bump(&c.reads, 1);
        let local = match self.inner.l1.get_many(keys).await {
            Ok(v) => v,
            Err(_) => {
                bump(&c.l1_errors, 1);
                vec![None; keys.len()]
            }
        };
        let opened: Vec<Option<StoredEntry>> = local.iter().map(|v| v.as_ref().and_then(|v| self.stamped(v))).collect();
        let candidate: Vec<bool> = opened.iter().map(Option::is_some).collect();
        let known = self.inner.known.as_deref();
        let epoch = known.and_then(KnownGenerations::begin_read);

        // Everything but the L1 entry candidates: from the known table, or
        // from L2. With no candidate at all, L2 serves the whole batch in
        // its one round trip (a cold L1 costs what L2 alone costs).
        let mut out: Vec<Option<Bytes>> = vec![None; keys.len()];
        let mut missing: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if candidate[i] {
                continue;
            }
            match known.and_then(|k| k.get(key.as_str())) {
                Some(g) if candidate.iter().any(|c| *c) => out[i] = Some(format_counter(g)),
                _ => missing.push(i),
            }
        }
        let no_candidate = !candidate.iter().any(|c| *c);
        let fetch: Vec<usize> = if no_candidate {
            (0..keys.len()).collect()
        } else {
            missing.clone()
        };
        let mut trips = 0;
        if !fetch.is_empty() {
            let ks: Vec<Key> = fetch.iter().map(|&i| keys[i].clone()).collect();
            trips += 1;
            for (&i, v) in fetch.iter().zip(self.l2_read(&ks).await?) {
                out[i] = v;
            }
        }
        let generations = batch_generations(&out, &candidate, |v| self.stamped(v).is_some());

        // L1 candidates: served when their stamps are the batch's current
        // generations and they are logically fresh; otherwise the L2 entry
        // is fetched (a second trip, after a bump or an expiry, or with a
        // foreign batch layout).
        let mut stale: Vec<usize> = Vec::new();
        let mut served_l1 = false;
        for (i, e) in opened.iter().enumerate() {
            let Some(e) = e else { continue };
            let current = generations.as_deref().is_some_and(|g| e.stamped_with(g));
            if current && self.fresh_for(e).is_some() {
                out[i] = local[i].clone();
                bump(&c.l1_hits, 1);
                served_l1 = true;
            } else {
                stale.push(i);
            }
        }
        if !stale.is_empty() {
            let ks: Vec<Key> = stale.iter().map(|&i| keys[i].clone()).collect();
            trips += 1;
            for (&i, v) in stale.iter().zip(self.l2_read(&ks).await?) {
                out[i] = v;
            }
        }
        if trips == 0 {
            bump(&c.zero_trip_reads, 1);
        }
        if served_l1 {
            bump(&c.l1_hit_round_trips, trips);
        }

        // Fill L1 with fresh entries L2 sent, and remember the generations
        // L2 sent (only if no notice overtook this read).
        let mut fills = Vec::new();
        let mut learnt = Vec::new();
        for &i in fetch.iter().chain(&stale) {
            let Some(v) = &out[i] else { continue };
            if let Some(e) = self.stamped(v) {
                if generations.as_deref().is_some_and(|g| e.stamped_with(g)) {
                    fills.push((keys[i].clone(), v.clone(), e));
                }
            } else if let Some(g) = parse_counter(v) {
                learnt.push((keys[i].as_str().to_owned(), g));
            }
        }
        if let (Some(k), Some(e)) = (known, epoch) {
            k.learn(e, learnt);
        }
        self.fill_l1(fills).await;
        Ok(out)
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.set_many(&[(key.clone(), value)], ttl).await
    }

    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        bump(&self.inner.counters.l2_writes, 1);
        match entries {
            [(k, v)] => self.inner.l2.set(k, v.clone(), ttl).await?,
            many => self.inner.l2.set_many(many, ttl).await?,
        }
        // Stamped entries go to L1 too (their stamps guard them); anything
        // else lives only in L2, and the other processes are told.
        let (stamped, other): (Vec<_>, Vec<_>) = entries.iter().cloned().partition(|(_, v)| self.stamped(v).is_some());
        if crate::backend::is_expired_ttl(ttl) {
            let ks: Vec<Key> = stamped.into_iter().map(|(k, _)| k).collect();
            if !ks.is_empty() && self.inner.l1.delete_many(&ks).await.is_err() {
                bump(&self.inner.counters.l1_errors, 1);
            }
        } else if !stamped.is_empty() && self.inner.l1.set_many(&stamped, self.l1_ttl(ttl)).await.is_err() {
            bump(&self.inner.counters.l1_errors, 1);
        }
        self.announce(
            other
                .into_iter()
                .map(|(k, _)| Notice::Changed(k.as_str().to_owned()))
                .collect(),
        )
        .await
    }

    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        bump(&self.inner.counters.l2_writes, 1);
        let stamped = self.stamped(&value).is_some();
        let added = self.inner.l2.add(key, value, ttl).await?;
        if added && !stamped {
            self.announce(vec![Notice::Changed(key.as_str().to_owned())]).await?;
        }
        Ok(added)
    }

    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        bump(&self.inner.counters.l2_writes, 1);
        let n = self.inner.l2.incr(key, delta).await?;
        let key = key.as_str().to_owned();
        // The value before is exact: `incr` is atomic and returned `n`.
        let notice = match n.checked_sub(delta) {
            Some(from) => Notice::Bumped { key, from, to: n },
            None => Notice::Changed(key),
        };
        self.announce(vec![notice]).await?;
        Ok(n)
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        Ok(self.delete_many(std::slice::from_ref(key)).await? > 0)
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        bump(&self.inner.counters.l2_writes, 1);
        let n = self.inner.l2.delete_many(keys).await?;
        if self.inner.l1.delete_many(keys).await.is_err() {
            bump(&self.inner.counters.l1_errors, 1);
        }
        self.announce(keys.iter().map(|k| Notice::Changed(k.as_str().to_owned())).collect())
            .await?;
        Ok(n)
    }

    /// The shared L2's: an evicting L2 is what matters to correctness
    /// (L1 copies are checked against L2's generations).
    async fn server_stats(&self) -> Result<Option<crate::backend::ServerStats>> {
        self.inner.l2.server_stats().await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        bump(&self.inner.counters.l2_writes, 1);
        let n = self.inner.l2.delete_prefix(prefix).await?;
        // L1 copies are guarded by their stamps; drop them anyway where L1
        // can, so the memory goes back.
        let _ = self.inner.l1.delete_prefix(prefix).await;
        self.announce(vec![Notice::All]).await?;
        Ok(n)
    }
}
