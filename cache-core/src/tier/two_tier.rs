//! [`TwoTier`]: the backend wrapper and its builder.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::backplane::Backplane;
use super::known::KnownGenerations;
use super::notice::{Notice, Numbered};
use super::stats::{bump, Counters, TierStats};
use super::tracking::Tracker;
use crate::backend::{format_counter, parse_counter, Backend, Capabilities, Ttl};
use crate::clock::{system_clock, Clock};
use crate::error::Result;
use crate::key::Key;
use crate::strategy::{StampedForm, StoredEntry, StoredForm};

/// Default longest life of an entry copy in L1.
pub const DEFAULT_L1_TTL: Duration = Duration::from_secs(300);
/// Default longest trust in a generation a backplane vouches for without
/// a notice (see [`TwoTierBuilder::trust_for`]). Tracking trusts for as
/// long as the server tracks.
pub const DEFAULT_TRUST_FOR: Duration = Duration::from_secs(3600);

/// How many times a notice is offered to the backplane before this process
/// gives up on it (and forgets everything it knows: see the tier docs).
const PUBLISH_ATTEMPTS: usize = 3;

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
    tracker: Option<Arc<dyn Tracker>>,
    /// This process's id on the backplane.
    publisher: u64,
    /// The number of the last notice published; held while publishing,
    /// so that numbers reach the backplane in order.
    seq: tokio::sync::Mutex<u64>,
    counters: Counters,
    clock: Arc<dyn Clock>,
    form: Arc<dyn StoredForm>,
}

/// Builds a [`TwoTier`].
///
/// ```
/// use std::sync::Arc;
/// use cache_core::tier::{Backplane, TwoTier};
/// # fn demo(l1: Arc<dyn cache_core::Backend>, l2: Arc<dyn cache_core::Backend>, bus: Arc<dyn Backplane>) -> cache_core::Result<()> {
/// // Without a backplane: one small L2 round trip per hit, no payload bytes.
/// let cache = TwoTier::builder(l1.clone(), l2.clone()).build()?;
/// // With one (`backend_redis::RedisBackplane`): an L1 hit makes no round trip.
/// let cache = TwoTier::builder(l1, l2).backplane(bus).build()?;
/// // With Redis tracking instead (`backend_redis::RedisTracker`), the
/// // server itself tells each process what changed:
/// // TwoTier::builder(l1, l2).tracking(Arc::new(tracker)).build()?
/// # let _ = cache; Ok(()) }
/// ```
#[must_use]
#[derive(Debug)]
pub struct TwoTierBuilder {
    l1: Arc<dyn Backend>,
    l2: Arc<dyn Backend>,
    backplane: Option<Arc<dyn Backplane>>,
    tracker: Option<Arc<dyn Tracker>>,
    l1_ttl: Duration,
    trust_for: Option<Duration>,
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

    /// Reads generations through `tracker`, whose server reports every
    /// change of what was read (Redis `CLIENT TRACKING`): an L1 hit needs
    /// no round trip while its generations are tracked and unchanged
    /// (staleness: up to the invalidation's delivery after a bump). Instead
    /// of a backplane, not with one.
    pub fn tracking(mut self, tracker: Arc<dyn Tracker>) -> Self {
        self.tracker = Some(tracker);
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
    /// [`DEFAULT_TRUST_FOR`], an hour, with a backplane; no limit with
    /// tracking, whose server reports every change while the connection
    /// is up).
    ///
    /// Notices are numbered and a failed publish is retried, then makes
    /// its process forget (see the tier docs), so a lost notice is noticed
    /// at its publisher's next one and `trust_for` is no longer what keeps
    /// reads correct. What it still bounds: a writer that bumped without a
    /// fence and died before publishing, and a publisher's last notice lost
    /// with nothing after it. Its price is round trips: a process asks L2
    /// for a generation again once per `trust_for`, so an L1 hit on a view
    /// read less often than that makes one. On the simulator's 3-process
    /// `realistic` trace (fenced writes, 2 ms delivery): 0.508 L2 round
    /// trips per L1 hit at 30 s, 0.004 at 300 s, 0.0006 at an hour, 0
    /// stale reads in each.
    pub fn trust_for(mut self, d: Duration) -> Self {
        self.trust_for = Some(d);
        self
    }

    /// The clock for trust ages (default: the system clock; the simulator
    /// passes its virtual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The two-tier backend; subscribes to the backplane or attaches to
    /// the tracker if one was given. Both at once is a
    /// [`Error::Config`](crate::Error::Config).
    pub fn build(self) -> Result<TwoTier> {
        let trust_for = self.trust_for.unwrap_or(if self.tracker.is_some() {
            Duration::MAX
        } else {
            DEFAULT_TRUST_FOR
        });
        let known = match (&self.backplane, &self.tracker) {
            (Some(_), Some(_)) => {
                return Err(crate::Error::Config {
                    backend: "two-tier".to_owned(),
                    message: "give a backplane or tracking, not both: tracking alone keeps the tiers coherent".into(),
                })
            }
            (Some(bp), None) => {
                let table = Arc::new(KnownGenerations::new(self.clock.clone(), trust_for));
                bp.subscribe(table.clone())?;
                Some(table)
            }
            (None, Some(tr)) => {
                let table = Arc::new(KnownGenerations::new(self.clock.clone(), trust_for));
                tr.attach(table.clone())?;
                Some(table)
            }
            (None, None) => None,
        };
        let coherence = match (&self.backplane, &self.tracker) {
            (Some(b), _) => format!("+{}", b.name()),
            (_, Some(t)) => format!("+{}", t.name()),
            _ => String::new(),
        };
        let name = format!("two-tier({}+{}{coherence})", self.l1.name(), self.l2.name());
        Ok(TwoTier {
            inner: Arc::new(Inner {
                l1: self.l1,
                l2: self.l2,
                name,
                l1_ttl: self.l1_ttl,
                known,
                backplane: self.backplane,
                tracker: self.tracker,
                publisher: publisher_id(),
                seq: tokio::sync::Mutex::new(0),
                counters: Counters::default(),
                clock: self.clock,
                form: self.form,
            }),
        })
    }
}

/// An id for a new publisher, unique among the processes of an
/// application with overwhelming odds: a hash of this process's id, a
/// counter and the time, under a key the standard library draws at random
/// per process. Nothing a report shows depends on it.
fn publisher_id() -> u64 {
    use std::hash::BuildHasher;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::collections::hash_map::RandomState::new().hash_one((std::process::id(), n, std::time::SystemTime::now()))
}

impl TwoTier {
    /// A builder over `l1` (in-process, one per process: locmem) and `l2`
    /// (shared by every process).
    pub fn builder(l1: Arc<dyn Backend>, l2: Arc<dyn Backend>) -> TwoTierBuilder {
        TwoTierBuilder {
            l1,
            l2,
            backplane: None,
            tracker: None,
            l1_ttl: DEFAULT_L1_TTL,
            trust_for: None,
            clock: system_clock(),
            form: Arc::new(StampedForm),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> TierStats {
        let resyncs = self.inner.known.as_ref().map_or(0, |k| k.resyncs());
        self.inner.counters.snapshot(resyncs)
    }

    /// The known-generation table (only with a backplane or tracking).
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

    fn count_read(&self, keys: usize, values: &[Option<Bytes>]) {
        let c = &self.inner.counters;
        bump(&c.l2_round_trips, 1);
        bump(&c.l2_keys_read, keys as u64);
        let bytes: usize = values.iter().flatten().map(Bytes::len).sum();
        bump(&c.l2_bytes_read, bytes as u64);
    }

    async fn l2_read(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let values = match keys {
            [one] => vec![self.inner.l2.get(one).await?],
            many => self.inner.l2.get_many(many).await?,
        };
        self.count_read(keys.len(), &values);
        Ok(values)
    }

    /// Reads the batch's generations (or the whole batch) from L2: through
    /// the tracker when there is one and it tracks now, else plainly. The
    /// sources say what vouches for each value (`None`: nothing, learn
    /// nothing): the tracking connection it was read through, or the
    /// backplane's subscription while it is up (`subscribed`).
    async fn read_generations(&self, keys: &[Key], subscribed: bool) -> Result<(Vec<Option<Bytes>>, Option<Vec<u32>>)> {
        if let Some(tracker) = &self.inner.tracker {
            match tracker.read(keys).await {
                Ok(Some(read)) if read.len() == keys.len() => {
                    let (values, sources): (Vec<_>, Vec<_>) = read.into_iter().unzip();
                    self.count_read(keys.len(), &values);
                    return Ok((values, Some(sources)));
                }
                // Not tracking now, or the tracked read failed: L2 serves
                // the read, and nothing is learnt until it tracks again.
                _ => bump(&self.inner.counters.tracking_fallbacks, 1),
            }
            return Ok((self.l2_read(keys).await?, None));
        }
        let values = self.l2_read(keys).await?;
        let sources = (subscribed && self.inner.backplane.is_some()).then(|| vec![0; keys.len()]);
        Ok((values, sources))
    }

    /// Applies `notices` here at once, then tells the other processes.
    ///
    /// With tracking, here means forgetting only: a key this process wrote
    /// is no longer tracked for it (the server untracks a key once it has
    /// sent its invalidation), so a bump it made must not be chained into a
    /// value no server would report a change of. The server tells the
    /// other processes. With a backplane, each notice gets the next number
    /// and is offered up to [`PUBLISH_ATTEMPTS`] times; if it never gets
    /// through, this process forgets everything it knows (its own
    /// subscription is likely down too) and the error is returned; the
    /// others notice the lost number at this process's next notice.
    async fn announce(&self, notices: Vec<Notice>) -> Result<()> {
        let Some(known) = &self.inner.known else {
            return Ok(());
        };
        let Some(bp) = &self.inner.backplane else {
            for n in &notices {
                match n.key() {
                    Some(k) => known.notice(&Notice::Changed(k.to_owned())),
                    None => known.notice(&Notice::All),
                }
            }
            return Ok(());
        };
        for n in &notices {
            known.notice(n);
        }
        let c = &self.inner.counters;
        let mut seq = self.inner.seq.lock().await;
        for n in notices {
            *seq += 1;
            let numbered = Numbered::new(self.inner.publisher, *seq, n).encode();
            bump(&c.published, 1);
            let mut failure = None;
            for _ in 0..PUBLISH_ATTEMPTS {
                match bp.publish(&numbered).await {
                    Ok(()) => {
                        failure = None;
                        break;
                    }
                    Err(e) => failure = Some(e),
                }
            }
            if let Some(e) = failure {
                bump(&c.publish_failures, 1);
                known.resync();
                return Err(e);
            }
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
        let mut sources: Option<Vec<u32>> = None;
        if !fetch.is_empty() {
            let ks: Vec<Key> = fetch.iter().map(|&i| keys[i].clone()).collect();
            trips += 1;
            let (values, read_through) = self.read_generations(&ks, epoch.is_some()).await?;
            for (&i, v) in fetch.iter().zip(values) {
                out[i] = v;
            }
            sources = read_through;
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
        // L2 sent with what vouches for them (only if no notice overtook
        // this read).
        let mut fills = Vec::new();
        let mut learnt = Vec::new();
        for (n, &i) in fetch.iter().chain(&stale).enumerate() {
            let Some(v) = &out[i] else { continue };
            if let Some(e) = self.stamped(v) {
                if generations.as_deref().is_some_and(|g| e.stamped_with(g)) {
                    fills.push((keys[i].clone(), v.clone(), e));
                }
            } else if let Some(g) = parse_counter(v) {
                // Only the generation read (`fetch` comes first) has sources.
                if let Some(source) = sources.as_ref().and_then(|s| s.get(n)) {
                    learnt.push((keys[i].as_str().to_owned(), g, *source));
                }
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
