//! The event-driven replay of one (strategy, backend) cell in virtual time.
//!
//! A feed request is the app's cache-aside steps, each executed at one
//! virtual instant and taking a configurable latency before the next:
//!
//! ```text
//! plan_read ──plan──▶ get ──get──▶ hit: served
//!                           └────▶ miss: DB query ──db──▶ store (served at the DB answer)
//! ```
//!
//! A write commits to the database at its trace time and runs the strategy's
//! `invalidate` `invalidate` µs later. Steps of all requests sit in one
//! priority queue ordered by (time, sequence number), so concurrent requests
//! interleave deterministically and races such as the stale-set race happen
//! by themselves. Trace events go before queued steps at the same instant.
//!
//! Why steps are awaited one at a time rather than spawned: the simulation is
//! sequential in virtual time by definition, so there is nothing to gain from
//! concurrency inside a cell, and awaiting an already-complete locmem future
//! costs nothing, while remote backends still work (each step just waits).
//! Parallelism comes from running independent cells on separate threads.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use cache_core::envelope::Envelope;
use cache_core::{
    Backend, Change, Clock, Instrumented, ManualClock, OpStats, ReadPlan, Scope, StatsSnapshot, Strategy, TimeRange,
    View,
};
use chrono::{DateTime, FixedOffset};

use crate::db::{Answer, Db, Memo, Query};
use crate::error::{Error, Result};
use crate::trace::{Event, Source};

/// Virtual duration of each step, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Latencies {
    /// `plan_read` (generation fetches).
    pub plan_us: u64,
    /// The cache `get`.
    pub get_us: u64,
    /// The database query of a miss.
    pub db_us: u64,
    /// The cache fill after a miss.
    pub store_us: u64,
    /// From a write's commit to its invalidation (the app's post-commit hook).
    pub invalidate_us: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        // Same-datacenter cache round trips, a feed query of a few ms, and a
        // post-commit hook that runs right after the transaction.
        Latencies {
            plan_us: 300,
            get_us: 300,
            db_us: 8_000,
            store_us: 300,
            invalidate_us: 1_000,
        }
    }
}

/// A function listing the live keys of one process's store with their value
/// sizes (e.g. [`backend_locmem::LocmemBackend::live_entries`]); used to
/// count dead keys at the end. Backends that cannot enumerate have none.
pub type LiveKeys = Arc<dyn Fn() -> Vec<(String, usize)> + Send + Sync>;

/// Everything one cell needs.
#[derive(Clone)]
#[non_exhaustive]
pub struct Cell {
    /// The strategy under test.
    pub strategy: Arc<dyn Strategy>,
    /// One store per app process; a single entry is shared by all processes.
    pub backends: Vec<Arc<dyn Backend>>,
    /// Live-key listers, parallel to `backends` (empty when unavailable).
    pub live_keys: Vec<LiveKeys>,
    /// The virtual clock the backends and the strategy read.
    pub clock: ManualClock,
    /// Step latencies.
    pub latencies: Latencies,
    /// Bytes of payload per feed item (a feed's JSON is about this big per event).
    pub item_bytes: usize,
    /// Width of the staleness-over-time buckets, µs.
    pub bucket_us: u64,
    /// Time every backend call (for `--timings`); off, calls are only
    /// counted, which is all the report needs and a few percent faster.
    pub time_calls: bool,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell")
            .field("strategy", &self.strategy.name())
            .field("backends", &self.backends)
            .field("latencies", &self.latencies)
            .finish_non_exhaustive()
    }
}

impl Cell {
    /// A cell with default latencies, 160 bytes per item, one-minute buckets.
    pub fn new(strategy: Arc<dyn Strategy>, backends: Vec<Arc<dyn Backend>>, clock: ManualClock) -> Self {
        Cell {
            strategy,
            backends,
            live_keys: Vec::new(),
            clock,
            latencies: Latencies::default(),
            item_bytes: 160,
            bucket_us: 60_000_000,
            time_calls: false,
        }
    }
}

/// What one cell measured. Every field is a function of the trace, the seed
/// and the backend's semantics: no wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Feed requests served.
    pub reads: u64,
    /// Writes committed (creates, edits, deletes; not initial loads).
    pub writes: u64,
    /// Feeds served from the cache.
    pub hits: u64,
    /// Feeds served from the database.
    pub misses: u64,
    /// Hits whose content missed a write committed before the request started.
    pub stale_reads: u64,
    /// Longest lag of a stale response behind the first write it missed, µs.
    pub max_staleness_us: u64,
    /// Feed queries the database answered.
    pub db_queries: u64,
    /// Backend or strategy errors (the request fell back to the database).
    pub errors: u64,
    /// Control-key evictions the trace asked for.
    pub control_evictions: u64,
    /// Backend calls made by reads.
    pub read_ops: StatsSnapshot,
    /// Backend calls made by invalidations.
    pub write_ops: StatsSnapshot,
    /// Stored feed entries no current key can read, when countable.
    pub dead_keys: Option<u64>,
    /// Their size (key + value bytes).
    pub dead_bytes: Option<u64>,
    /// Live entries at the end, when countable.
    pub live_keys: Option<u64>,
    /// Per bucket of `bucket_us` since the start: (reads, stale reads).
    pub timeline: Vec<(u64, u64)>,
    /// Virtual duration of the run, µs.
    pub duration_us: u64,
}

const MAGIC: &[u8; 4] = b"SIMF";
/// Commits between two prunings of the database history: often enough that
/// history stays a small multiple of one TTL's writes, rarely enough that the
/// pass over all items costs nothing per write.
const PRUNE_EVERY: u64 = 4096;
const PAYLOAD_HEADER: usize = 4 + 8 + 8 + 4 + 8 + 4;

/// The simulator's feed payload: what the DB answered, as of when, for which
/// view (so dead keys can be recognised at the end), padded to a realistic
/// feed size.
struct Payload<'a> {
    as_of_excl: i64,
    answer: Answer,
    view_digest: u64,
    view_json: &'a [u8],
}

impl Payload<'_> {
    /// The stored entry: `envelope`'s header followed by this payload, built
    /// in one buffer.
    ///
    /// Why not [`Envelope::encode`]: it copies the payload into a second
    /// buffer, and the payload is padded to a realistic feed size (kilobytes),
    /// so every cache fill paid for two allocations and a large copy. The
    /// layout is cache-core's (checked against [`Envelope::encode`] in a
    /// test).
    fn encode_entry(&self, envelope: &EntryHeader, item_bytes: usize) -> Bytes {
        let pad = self.answer.items as usize * item_bytes;
        let mut b = BytesMut::with_capacity(ENVELOPE_HEADER_LEN + PAYLOAD_HEADER + self.view_json.len() + pad);
        envelope.put(&mut b);
        b.put_slice(MAGIC);
        b.put_i64(self.as_of_excl);
        b.put_u64(self.answer.fingerprint);
        b.put_u32(self.answer.items);
        b.put_u64(self.view_digest);
        b.put_u32(self.view_json.len() as u32);
        b.put_slice(self.view_json);
        b.put_bytes(b' ', pad);
        b.freeze()
    }

    fn decode(b: &[u8]) -> Option<Payload<'_>> {
        if b.len() < PAYLOAD_HEADER || &b[..4] != MAGIC {
            return None;
        }
        let u64_at = |i: usize| -> Option<u64> { Some(u64::from_be_bytes(b.get(i..i + 8)?.try_into().ok()?)) };
        let u32_at = |i: usize| -> Option<u32> { Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?)) };
        let as_of_excl = u64_at(4)? as i64;
        let fingerprint = u64_at(12)?;
        let items = u32_at(20)?;
        let view_digest = u64_at(24)?;
        let len = u32_at(32)? as usize;
        let view_json = b.get(PAYLOAD_HEADER..PAYLOAD_HEADER + len)?;
        Some(Payload {
            as_of_excl,
            answer: Answer { items, fingerprint },
            view_digest,
            view_json,
        })
    }
}

/// The envelope fields written in front of a payload (see
/// [`cache_core::envelope`] for the layout).
struct EntryHeader {
    expires_at: Option<SystemTime>,
    load_time: Duration,
}

impl EntryHeader {
    fn put(&self, b: &mut BytesMut) {
        // Same arithmetic as `Envelope::encode`, so the bytes are identical.
        let expires = self.expires_at.map_or(u64::MAX, |t| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1))
                .unwrap_or(0)
        });
        b.put_slice(ENVELOPE_MAGIC);
        b.put_u64(expires);
        b.put_u64(u64::try_from(self.load_time.as_micros()).unwrap_or(u64::MAX));
    }
}

const ENVELOPE_MAGIC: &[u8; 4] = b"RCE1";
const ENVELOPE_HEADER_LEN: usize = cache_core::envelope::HEADER_LEN;

/// What the engine derives once per distinct view and shares between the
/// requests for it: the DB query, the digest and JSON form stored in
/// payloads.
///
/// Why: the same few thousand views are requested over and over; resolving
/// scopes, hashing the view and serialising it per request were a large
/// share of a request's cost.
struct ViewInfo {
    view: View,
    query: Query,
    /// The database's last answer about the present (see [`Db::query_memo`]).
    memo: std::cell::Cell<Option<Memo>>,
    digest: u64,
    json: Vec<u8>,
}

/// Interned views, bounded: when full it starts over (in-flight requests
/// hold their own `Rc`), which only costs recomputation, never changes a
/// result.
struct ViewTable {
    map: HashMap<ViewKey, Rc<ViewInfo>, WordHashBuilder>,
}

/// A view as a table key, offsets included.
///
/// Why not `View` itself: chrono's `DateTime` compares and hashes the instant
/// only, so `2025-09-29T00:00:00+08:00` and `2025-09-28T16:00:00Z` are equal
/// `View`s, yet clients sending them get different cache keys (the
/// `timezone-variants` hazard). Interning them together would plan one with
/// the other's key.
#[derive(PartialEq, Eq, Hash)]
struct ViewKey {
    view: View,
    offsets: (i32, i32),
}

impl ViewKey {
    fn new(view: View) -> Self {
        let offsets = (
            view.range.start().offset().local_minus_utc(),
            view.range.end().offset().local_minus_utc(),
        );
        ViewKey { view, offsets }
    }
}

/// Distinct views kept interned (a few hundred bytes each).
const VIEW_TABLE_CAP: usize = 1 << 14;

impl ViewTable {
    fn get(&mut self, view: View, db: &mut Db) -> Result<Rc<ViewInfo>> {
        let key = ViewKey::new(view);
        if let Some(info) = self.map.get(&key) {
            return Ok(info.clone());
        }
        let view = &key.view;
        if self.map.len() >= VIEW_TABLE_CAP {
            self.map.clear();
        }
        let info = Rc::new(ViewInfo {
            query: db.intern(view),
            memo: std::cell::Cell::new(None),
            digest: view_digest(view),
            json: serde_json::to_vec(view).map_err(|e| Error::Invalid(e.to_string()))?,
            view: view.clone(),
        });
        self.map.insert(key, info.clone());
        Ok(info)
    }
}

/// A word-at-a-time multiply-rotate hasher (FxHash's step, SplitMix64's
/// finaliser) for the view table.
///
/// Why not std's SipHash: it was the largest single cost of interning, and
/// the table needs no protection against crafted keys. It is never iterated,
/// so its order cannot reach a report.
#[derive(Debug, Default, Clone, Copy)]
struct WordHashBuilder;

impl std::hash::BuildHasher for WordHashBuilder {
    type Hasher = WordHasher;
    fn build_hasher(&self) -> WordHasher {
        WordHasher(0)
    }
}

struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// FNV-1a as a `Hasher`: a fixed algorithm, so digests are the same in every
/// run and build (std's `DefaultHasher` makes no such promise).
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn view_digest(view: &View) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    view.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Get,
    Db,
    Store,
}

enum Slot {
    Free,
    Read {
        info: Rc<ViewInfo>,
        start_us: i64,
        process: usize,
        stage: Stage,
        plan: Option<ReadPlan>,
        answer: Option<(Answer, i64)>,
    },
    Invalidate {
        process: usize,
        change: Change,
    },
}

fn utc_range(start_us: i64, end_us: i64) -> Result<TimeRange> {
    let utc = FixedOffset::east_opt(0).ok_or_else(|| Error::Invalid("UTC offset".into()))?;
    let at = |us: i64| {
        DateTime::from_timestamp_micros(us)
            .map(|t| t.with_timezone(&utc))
            .ok_or_else(|| Error::Invalid(format!("instant {us}µs out of range")))
    };
    Ok(TimeRange::new(at(start_us)?, at(end_us)?)?)
}

struct Run<'a> {
    cell: &'a Cell,
    read: Vec<Instrumented<Arc<dyn Backend>>>,
    write: Vec<Instrumented<Arc<dyn Backend>>>,
    db: Db,
    views: ViewTable,
    /// Longest TTL any fill used so far, µs; `None` before the first fill.
    max_ttl_us: Option<u64>,
    /// A fill without TTL happened: its payload may be judged at any later
    /// time, so history can never be pruned.
    unbounded_ttl: bool,
    commits_since_prune: u64,
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
    seq: u64,
    slots: Vec<Slot>,
    free: Vec<u32>,
    base_us: i64,
    m: Metrics,
}

impl Run<'_> {
    fn now_us(&self) -> i64 {
        self.cell
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    }

    fn set_time(&self, t_us: i64) {
        self.cell
            .clock
            .advance_to(UNIX_EPOCH + Duration::from_micros(u64::try_from(t_us).unwrap_or(0)));
    }

    fn alloc(&mut self, slot: Slot) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, i: u32) {
        self.slots[i as usize] = Slot::Free;
        self.free.push(i);
    }

    fn schedule(&mut self, at_us: i64, slot: u32) {
        self.seq += 1;
        self.heap.push(Reverse((at_us, self.seq, slot)));
    }

    fn proc_index(&self, process: u32) -> usize {
        // One shared store serves every process.
        process as usize % self.read.len()
    }

    fn served(&mut self, at_us: i64, stale: bool) {
        let bucket = (u64::try_from(at_us - self.base_us).unwrap_or(0) / self.cell.bucket_us.max(1)) as usize;
        if self.m.timeline.len() <= bucket {
            self.m.timeline.resize(bucket + 1, (0, 0));
        }
        self.m.timeline[bucket].0 += 1;
        if stale {
            self.m.timeline[bucket].1 += 1;
        }
    }

    async fn on_event(&mut self, ev: Event) -> Result<()> {
        let t = self.base_us + ev.t_us() as i64;
        self.set_time(t);
        match ev {
            Event::Read { process, view, .. } => {
                self.m.reads += 1;
                let info = self.views.get(view, &mut self.db)?;
                let process = self.proc_index(process);
                let slot = self.alloc(Slot::Read {
                    info,
                    start_us: t,
                    process,
                    stage: Stage::Get,
                    plan: None,
                    answer: None,
                });
                self.plan(slot, t).await;
            }
            Event::Write { process, write, .. } => {
                let c = self.db.commit(&write, t)?;
                self.commits_since_prune += 1;
                if self.commits_since_prune >= PRUNE_EVERY {
                    self.commits_since_prune = 0;
                    self.prune(t);
                }
                if write.kind == crate::db::WriteKind::Load {
                    return Ok(());
                }
                self.m.writes += 1;
                let mut ranges = Vec::with_capacity(2);
                for (s, e) in c.old.into_iter().chain(c.new) {
                    ranges.push(utc_range(s, e)?);
                }
                let change = Change::new(Scope::new(c.scope)?, ranges)?;
                let process = self.proc_index(process);
                let slot = self.alloc(Slot::Invalidate { process, change });
                self.schedule(t + self.cell.latencies.invalidate_us as i64, slot);
            }
            Event::EvictControl { process, view, .. } => {
                self.m.control_evictions += 1;
                let keys = self.cell.strategy.control_keys(&view);
                if !keys.is_empty() {
                    let p = self.proc_index(process);
                    // The raw store: an eviction is not app traffic.
                    if self.cell.backends[p].delete_many(&keys).await.is_err() {
                        self.m.errors += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops database history no later question can reach: judgements ask
    /// about instants from the start of an in-flight request, or from the
    /// query time of a payload that is still fresh, which is at most the
    /// longest TTL (plus the DB and fill latencies) ago.
    fn prune(&mut self, now: i64) {
        if self.unbounded_ttl {
            return;
        }
        let lat = self.cell.latencies;
        // A second of slack covers the envelope's millisecond rounding.
        let reach = self.max_ttl_us.unwrap_or(0) + lat.db_us + lat.store_us + lat.get_us + lat.plan_us + 1_000_000;
        let mut horizon = now.saturating_sub(i64::try_from(reach).unwrap_or(i64::MAX));
        for s in &self.slots {
            if let Slot::Read { start_us, .. } = s {
                horizon = horizon.min(*start_us);
            }
        }
        self.db.prune(horizon);
    }

    async fn plan(&mut self, slot: u32, now: i64) {
        let Slot::Read { info, process, .. } = &self.slots[slot as usize] else {
            return;
        };
        let result = self.cell.strategy.plan_read(&self.read[*process], &info.view).await;
        let lat = self.cell.latencies.plan_us as i64;
        let Slot::Read { plan, stage, .. } = &mut self.slots[slot as usize] else {
            return;
        };
        match result {
            Ok(p) => {
                *plan = Some(p);
                *stage = Stage::Get;
            }
            Err(_) => {
                // Cache-aside falls back to the database when the cache fails.
                self.m.errors += 1;
                self.m.misses += 1;
                *stage = Stage::Db;
            }
        }
        self.schedule(now + lat, slot);
    }

    async fn step(&mut self, slot: u32, now: i64) -> Result<()> {
        let lat = self.cell.latencies;
        match &mut self.slots[slot as usize] {
            Slot::Free => {}
            Slot::Invalidate { process, change } => {
                let r = self.cell.strategy.invalidate(&self.write[*process], change).await;
                if r.is_err() {
                    self.m.errors += 1;
                }
                self.release(slot);
            }
            Slot::Read {
                info,
                start_us,
                process,
                stage,
                plan,
                answer,
            } => match *stage {
                Stage::Get => {
                    let Some(p) = plan.as_ref() else {
                        *stage = Stage::Db;
                        self.schedule(now, slot);
                        return Ok(());
                    };
                    let got = self.read[*process].get(&p.key).await;
                    let served_at = now + lat.get_us as i64;
                    let hit = match got {
                        Ok(Some(bytes)) => Envelope::decode(&p.key, &bytes)
                            .ok()
                            .filter(|e| e.is_fresh(self.cell.clock.now()))
                            .map(|e| e.payload),
                        Ok(None) => None,
                        Err(_) => {
                            self.m.errors += 1;
                            None
                        }
                    };
                    let judged = hit.as_ref().and_then(|b| {
                        let p = Payload::decode(b)?;
                        Some(judge(&self.db, info, *start_us, served_at, &p))
                    });
                    match judged {
                        Some(staleness) => {
                            self.m.hits += 1;
                            if let Some(s) = staleness {
                                self.m.stale_reads += 1;
                                self.m.max_staleness_us = self.m.max_staleness_us.max(s);
                            }
                            self.served(served_at, staleness.is_some());
                            self.release(slot);
                        }
                        None => {
                            self.m.misses += 1;
                            *stage = Stage::Db;
                            self.schedule(served_at, slot);
                        }
                    }
                }
                Stage::Db => {
                    let mut memo = info.memo.get();
                    let a = self.db.query_memo(&info.query, now, &mut memo);
                    info.memo.set(memo);
                    *answer = Some((a, now + 1));
                    let served_at = now + lat.db_us as i64;
                    if plan.is_some() {
                        *stage = Stage::Store;
                        self.schedule(served_at, slot);
                    } else {
                        self.release(slot);
                    }
                    self.served(served_at, false);
                }
                Stage::Store => {
                    let (Some(p), Some((a, as_of_excl))) = (plan.as_ref(), *answer) else {
                        self.release(slot);
                        return Ok(());
                    };
                    match p.ttl {
                        Some(d) => {
                            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                            self.max_ttl_us = Some(self.max_ttl_us.unwrap_or(0).max(us));
                        }
                        None => self.unbounded_ttl = true,
                    }
                    let header = EntryHeader {
                        expires_at: p.ttl.map(|d| self.cell.clock.now() + d),
                        load_time: Duration::from_micros(lat.db_us),
                    };
                    let entry = Payload {
                        as_of_excl,
                        answer: a,
                        view_digest: info.digest,
                        view_json: &info.json,
                    }
                    .encode_entry(&header, self.cell.item_bytes);
                    let r = self
                        .cell
                        .strategy
                        .store(&self.read[*process], &info.view, p, entry)
                        .await;
                    if r.is_err() {
                        self.m.errors += 1;
                    }
                    self.release(slot);
                }
            },
        }
        Ok(())
    }

    /// Dead keys: live feed entries whose view's current key is another key,
    /// or whose logical expiry has passed.
    async fn count_dead(&mut self) -> Result<()> {
        if self.cell.live_keys.is_empty() {
            return Ok(());
        }
        let now = self.cell.clock.now();
        let (mut dead, mut bytes, mut live) = (0u64, 0u64, 0u64);
        for (p, lister) in self.cell.live_keys.iter().enumerate() {
            let Some(raw) = self.cell.backends.get(p) else { continue };
            let mut entries = lister();
            entries.sort();
            live += entries.len() as u64;
            for (key, len) in entries {
                let Ok(k) = cache_core::Key::new(key.clone()) else {
                    continue;
                };
                let Ok(Some(value)) = raw.get(&k).await else { continue };
                let Ok(env) = Envelope::decode(&k, &value) else {
                    continue;
                };
                let Some(payload) = Payload::decode(&env.payload) else {
                    continue;
                };
                let is_dead = if !env.is_fresh(now) {
                    true
                } else {
                    match serde_json::from_slice::<View>(payload.view_json) {
                        Ok(view) => match self.cell.strategy.plan_read(raw.as_ref(), &view).await {
                            Ok(plan) => plan.key != k,
                            Err(_) => false,
                        },
                        Err(_) => false,
                    }
                };
                if is_dead {
                    dead += 1;
                    bytes += (key.len() + len) as u64;
                }
            }
        }
        self.m.dead_keys = Some(dead);
        self.m.dead_bytes = Some(bytes);
        self.m.live_keys = Some(live);
        Ok(())
    }
}

/// Judges a hit: `None` when fresh, `Some(staleness µs)` when it misses a
/// write committed before the request started.
fn judge(db: &Db, info: &ViewInfo, start_us: i64, served_at: i64, p: &Payload<'_>) -> Option<u64> {
    let q = &info.query;
    // A payload stored for another view (a key collision) proves nothing by
    // its timestamp: only a content comparison can clear it.
    let same_view = p.view_digest == info.digest;
    if same_view {
        if p.as_of_excl >= start_us {
            return None; // queried after the request started: reflects every earlier write
        }
        if !db.any_write_between(q, p.as_of_excl, start_us) {
            return None;
        }
    }
    if db.answer(q, start_us) == p.answer {
        return None; // writes in between did not change this feed
    }
    let from = p.as_of_excl.min(start_us);
    let first = db.first_relevant_write(q, from, start_us).unwrap_or(from);
    Some(u64::try_from(served_at - first).unwrap_or(0))
}

/// Replays `source` through `cell`. `progress` (if given) is advanced by one
/// per trace event, for a progress bar on another thread.
pub async fn run_cell(source: Source, cell: &Cell, progress: Option<&AtomicU64>) -> Result<Metrics> {
    if cell.backends.is_empty() {
        return Err(Error::Invalid("a cell needs at least one backend".into()));
    }
    let stats = || {
        if cell.time_calls {
            OpStats::new()
        } else {
            OpStats::counts_only()
        }
    };
    let (read_stats, write_stats) = (stats(), stats());
    let base_us = source.header.start_us();
    let mut run = Run {
        cell,
        read: cell
            .backends
            .iter()
            .map(|b| Instrumented::with_stats(b.clone(), read_stats.clone()))
            .collect(),
        write: cell
            .backends
            .iter()
            .map(|b| Instrumented::with_stats(b.clone(), write_stats.clone()))
            .collect(),
        db: Db::new(),
        views: ViewTable {
            map: HashMap::with_hasher(WordHashBuilder),
        },
        max_ttl_us: None,
        unbounded_ttl: false,
        commits_since_prune: 0,
        heap: BinaryHeap::new(),
        seq: 0,
        slots: Vec::new(),
        free: Vec::new(),
        base_us,
        m: Metrics {
            reads: 0,
            writes: 0,
            hits: 0,
            misses: 0,
            stale_reads: 0,
            max_staleness_us: 0,
            db_queries: 0,
            errors: 0,
            control_evictions: 0,
            read_ops: read_stats.snapshot(),
            write_ops: write_stats.snapshot(),
            dead_keys: None,
            dead_bytes: None,
            live_keys: None,
            timeline: Vec::new(),
            duration_us: 0,
        },
    };
    run.set_time(base_us);
    let mut events = source.events;
    let mut next = events.next().transpose()?;
    let mut pending_progress = 0u64;
    loop {
        let next_t = next.as_ref().map(|e| base_us + e.t_us() as i64);
        let top = run.heap.peek().map(|r| r.0 .0);
        match (next_t, top) {
            (Some(te), th) if th.is_none_or(|th| te <= th) => {
                if let Some(ev) = next.take() {
                    run.on_event(ev).await?;
                }
                next = events.next().transpose()?;
                pending_progress += 1;
                if pending_progress == 4096 {
                    if let Some(p) = progress {
                        p.fetch_add(pending_progress, Ordering::Relaxed);
                    }
                    pending_progress = 0;
                }
            }
            (_, Some(_)) => {
                if let Some(Reverse((t, _, slot))) = run.heap.pop() {
                    run.set_time(t);
                    run.step(slot, t).await?;
                }
            }
            (Some(_), None) | (None, None) => break,
        }
    }
    if let Some(p) = progress {
        p.fetch_add(pending_progress, Ordering::Relaxed);
    }
    run.m.duration_us = u64::try_from(run.now_us() - base_us).unwrap_or(0);
    run.m.db_queries = run.db.queries();
    run.m.read_ops = read_stats.snapshot();
    run.m.write_ops = write_stats.snapshot();
    run.count_dead().await?;
    Ok(run.m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_cache_core_envelopes_byte_for_byte() {
        let view_json = br#"{"scopes":["cal:1"]}"#;
        let payload = Payload {
            as_of_excl: 1_759_741_200_000_001,
            answer: Answer {
                items: 3,
                fingerprint: 0xfeed,
            },
            view_digest: 7,
            view_json,
        };
        for expires_at in [None, Some(UNIX_EPOCH + Duration::from_micros(1_759_741_500_123_456))] {
            let header = EntryHeader {
                expires_at,
                load_time: Duration::from_micros(8_000),
            };
            let entry = payload.encode_entry(&header, 16);
            // The payload on its own, wrapped by cache-core's encoder.
            let mut plain = BytesMut::new();
            plain.put_slice(&entry[ENVELOPE_HEADER_LEN..]);
            let wrapped = Envelope {
                expires_at,
                load_time: header.load_time,
                payload: plain.freeze(),
            }
            .encode();
            assert_eq!(entry, wrapped);
            let key = cache_core::Key::new("k").unwrap();
            let back = Envelope::decode(&key, &entry).unwrap();
            let p = Payload::decode(&back.payload).unwrap();
            assert_eq!(
                (p.as_of_excl, p.answer, p.view_digest),
                (payload.as_of_excl, payload.answer, 7)
            );
            assert_eq!(p.view_json, view_json);
            assert_eq!(back.payload.len(), PAYLOAD_HEADER + view_json.len() + 3 * 16);
        }
    }

    #[test]
    fn views_that_differ_in_one_field_or_offset_are_interned_apart() {
        use std::hash::BuildHasher;
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        let v = View::new(
            [cache_core::Scope::new("cal:1").unwrap()],
            TimeRange::new(at("2025-09-29T00:00:00+08:00"), at("2025-11-10T00:00:00+08:00")).unwrap(),
        )
        .unwrap();
        let w = v.clone().with_param("status", "open");
        let z = View::new(
            [cache_core::Scope::new("cal:1").unwrap()],
            TimeRange::new(at("2025-09-28T16:00:00Z"), at("2025-11-09T16:00:00Z")).unwrap(),
        )
        .unwrap();
        let h = |x: &View| WordHashBuilder.hash_one(ViewKey::new(x.clone()));
        assert_eq!(h(&v), h(&v.clone()));
        assert_ne!(h(&v), h(&w));
        assert_ne!(h(&v), h(&z), "same instants, other offset: another view");
        assert!(ViewKey::new(v.clone()) != ViewKey::new(z.clone()));
        let mut table = ViewTable {
            map: HashMap::with_hasher(WordHashBuilder),
        };
        let mut db = Db::new();
        let a = table.get(v.clone(), &mut db).unwrap();
        let b = table.get(z.clone(), &mut db).unwrap();
        assert!(!Rc::ptr_eq(&a, &b));
        assert_ne!(a.json, b.json);
        assert!(Rc::ptr_eq(&a, &table.get(v, &mut db).unwrap()));
    }
}
