//! The store-only floor of a run: what a cell's stores cost with nothing
//! else running.
//!
//! [`record`] runs one cell alone with each of its stores behind a
//! recorder, which logs every backend call the cell makes (operation, keys,
//! the value's shape, TTL, the virtual instant it was made at, and what it
//! returned). [`Recording::replay`] makes the same calls, in the same order
//! and at the same virtual instants, against fresh stores of the same
//! configuration ([`Recording::stores`]), and times only that loop. The
//! ratio of the two is how far the simulator is above its store; the
//! `sim` benchmark reports it.
//!
//! A replay on the simulator's own (deterministic) configuration returns
//! exactly what the recorded run got, call for call
//! ([`Replayed::mismatches`] is 0): the stores see the same operations in
//! the same order at the same virtual times. Values are replayed as
//! stand-ins of the same stored and declared length
//! ([`crate::engine::declared_len`]), so the stores weigh and evict them as
//! the originals (their content is only read by the strategies, which do
//! not run here); values of up to [`VERBATIM`] bytes (generations,
//! counters, fences) are replayed as they were, since `incr` reads them.
//!
//! Only plain `locmem` cells can be recorded: a server's cost is its round
//! trips, and two-tier stores write real padding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_core::{async_trait, Backend, Bytes, Capabilities, Clock, Key, ManualClock, Result as CacheResult, Ttl};

use crate::backends::{locmem_stores, BackendSpec};
use crate::error::{Error, Result};
use crate::runner::{make_cell, RunConfig, SourceFactory, StrategyFactory};

/// Values up to this long are replayed byte for byte; longer ones as
/// stand-ins of the same length and declared length.
pub const VERBATIM: usize = 64;

/// One logged call: when (virtual µs since the epoch), on which store, what,
/// and a summary of what it returned (compared by a replay). 32 bytes: a
/// cell makes millions.
#[derive(Debug, Clone, Copy)]
struct Call {
    at_us: u64,
    op: CallOp,
    result: u32,
    store: u16,
}

const _: () = assert!(std::mem::size_of::<Call>() == 32);

/// A call's operation; keys, values, key lists, TTLs, increments and
/// prefixes are indexes into the recording's tables.
#[derive(Debug, Clone, Copy)]
enum CallOp {
    Get(u32),
    GetMany(u32),
    Set { key: u32, value: u32, ttl: u16 },
    SetMany { entries: u32, ttl: u16 },
    Add { key: u32, value: u32, ttl: u16 },
    Incr { key: u32, delta: u16 },
    Delete(u32),
    DeleteMany(u32),
    DeletePrefix(u32),
}

/// What the recorders of one cell share.
#[derive(Default)]
struct Log {
    calls: Vec<Call>,
    /// Keys by index, from `key_ids` when the recording ends (one copy of
    /// each key at a time).
    keys: Vec<Key>,
    key_ids: HashMap<Key, u32>,
    values: Vec<Bytes>,
    small_ids: HashMap<Bytes, u32>,
    /// Stand-ins by (stored length, declared length).
    shape_ids: HashMap<(usize, usize), u32>,
    /// Distinct key lists (`get_many`, `delete_many`) and entry lists
    /// (`set_many`): a cell asks for the same few over and over.
    key_lists: Vec<Vec<Key>>,
    key_list_ids: HashMap<Vec<u32>, u32>,
    entry_lists: Vec<Vec<(Key, Bytes)>>,
    entry_list_ids: HashMap<Vec<(u32, u32)>, u32>,
    ttls: Vec<Ttl>,
    deltas: Vec<u64>,
    prefixes: Vec<String>,
}

fn id(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The index of `x` in `table`, added if new: for the few distinct TTLs and
/// increments a cell uses.
fn small_id<T: PartialEq>(table: &mut Vec<T>, x: T) -> u16 {
    let i = table.iter().position(|t| *t == x).unwrap_or_else(|| {
        table.push(x);
        table.len() - 1
    });
    u16::try_from(i).unwrap_or(u16::MAX)
}

impl Log {
    fn key(&mut self, key: &Key) -> u32 {
        if let Some(&i) = self.key_ids.get(key) {
            return i;
        }
        let i = id(self.key_ids.len());
        self.key_ids.insert(key.clone(), i);
        i
    }

    /// Ends the recording: keys by index; the tables only recording needs
    /// are dropped.
    fn seal(&mut self) {
        let mut keys: Vec<(u32, Key)> = self.key_ids.drain().map(|(k, i)| (i, k)).collect();
        keys.sort_unstable_by_key(|(i, _)| *i);
        self.keys = keys.into_iter().map(|(_, k)| k).collect();
        self.key_ids = HashMap::new();
        self.small_ids = HashMap::new();
        self.shape_ids = HashMap::new();
        self.key_list_ids = HashMap::new();
        self.entry_list_ids = HashMap::new();
    }

    fn value(&mut self, value: &Bytes) -> u32 {
        if value.len() <= VERBATIM {
            if let Some(&i) = self.small_ids.get(value) {
                return i;
            }
            let i = id(self.values.len());
            self.values.push(value.clone());
            self.small_ids.insert(value.clone(), i);
            return i;
        }
        let shape = (value.len(), crate::engine::declared_len(value));
        if let Some(&i) = self.shape_ids.get(&shape) {
            return i;
        }
        let i = id(self.values.len());
        self.values.push(Bytes::from(crate::engine::stand_in(shape.0, shape.1)));
        self.shape_ids.insert(shape, i);
        i
    }

    fn ttl(&mut self, ttl: Ttl) -> u16 {
        small_id(&mut self.ttls, ttl)
    }

    fn delta(&mut self, delta: u64) -> u16 {
        small_id(&mut self.deltas, delta)
    }

    fn key_list(&mut self, keys: &[Key]) -> u32 {
        let ids: Vec<u32> = keys.iter().map(|k| self.key(k)).collect();
        if let Some(&i) = self.key_list_ids.get(&ids) {
            return i;
        }
        let i = id(self.key_lists.len());
        self.key_lists.push(keys.to_vec());
        self.key_list_ids.insert(ids, i);
        i
    }

    fn entry_list(&mut self, entries: &[(Key, Bytes)]) -> u32 {
        let ids: Vec<(u32, u32)> = entries.iter().map(|(k, v)| (self.key(k), self.value(v))).collect();
        if let Some(&i) = self.entry_list_ids.get(&ids) {
            return i;
        }
        let i = id(self.entry_lists.len());
        let list = ids
            .iter()
            .zip(entries)
            .map(|(&(_, v), (k, _))| (k.clone(), self.values[v as usize].clone()))
            .collect();
        self.entry_lists.push(list);
        self.entry_list_ids.insert(ids, i);
        i
    }
}

/// A store that logs every call before passing it on.
struct Recorder {
    inner: Arc<dyn Backend>,
    store: u16,
    clock: ManualClock,
    log: Arc<Mutex<Log>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    fn log(&self, op: impl FnOnce(&mut Log) -> CallOp, result: u32) {
        let at_us = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let op = op(&mut log);
        log.calls.push(Call {
            at_us,
            op,
            result,
            store: self.store,
        });
    }
}

/// What [`Recording`] compares: a call's outcome in a word (an error as
/// `u32::MAX`).
trait Summary {
    fn summary(&self) -> u32;
}

impl Summary for CacheResult<Option<Bytes>> {
    fn summary(&self) -> u32 {
        match self {
            Ok(v) => u32::from(v.is_some()),
            Err(_) => u32::MAX,
        }
    }
}

impl Summary for CacheResult<Vec<Option<Bytes>>> {
    fn summary(&self) -> u32 {
        match self {
            // Which keys hit, as bits (folded beyond 31 keys).
            Ok(values) => values
                .iter()
                .enumerate()
                .fold(0, |acc, (i, v)| acc ^ (u32::from(v.is_some()) << (i % 31))),
            Err(_) => u32::MAX,
        }
    }
}

impl Summary for CacheResult<()> {
    fn summary(&self) -> u32 {
        if self.is_ok() {
            0
        } else {
            u32::MAX
        }
    }
}

impl Summary for CacheResult<bool> {
    fn summary(&self) -> u32 {
        match self {
            Ok(b) => u32::from(*b),
            Err(_) => u32::MAX,
        }
    }
}

impl Summary for CacheResult<u64> {
    fn summary(&self) -> u32 {
        match self {
            // Folded: counts and counter values (a fence's halves included).
            Ok(n) => ((n ^ (n >> 32)) as u32).min(u32::MAX - 1),
            Err(_) => u32::MAX,
        }
    }
}

#[async_trait]
impl Backend for Recorder {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &Key) -> CacheResult<Option<Bytes>> {
        let r = self.inner.get(key).await;
        self.log(|l| CallOp::Get(l.key(key)), r.summary());
        r
    }

    async fn get_many(&self, keys: &[Key]) -> CacheResult<Vec<Option<Bytes>>> {
        let r = self.inner.get_many(keys).await;
        self.log(|l| CallOp::GetMany(l.key_list(keys)), r.summary());
        r
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> CacheResult<()> {
        // The value's shape is taken first: the value moves into the store.
        let op = {
            let mut l = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            CallOp::Set {
                key: l.key(key),
                value: l.value(&value),
                ttl: l.ttl(ttl),
            }
        };
        let r = self.inner.set(key, value, ttl).await;
        self.log(|_| op, r.summary());
        r
    }

    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> CacheResult<()> {
        let r = self.inner.set_many(entries, ttl).await;
        self.log(
            |l| CallOp::SetMany {
                entries: l.entry_list(entries),
                ttl: l.ttl(ttl),
            },
            r.summary(),
        );
        r
    }

    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> CacheResult<bool> {
        let op = {
            let mut l = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            CallOp::Add {
                key: l.key(key),
                value: l.value(&value),
                ttl: l.ttl(ttl),
            }
        };
        let r = self.inner.add(key, value, ttl).await;
        self.log(|_| op, r.summary());
        r
    }

    async fn incr(&self, key: &Key, delta: u64) -> CacheResult<u64> {
        let r = self.inner.incr(key, delta).await;
        self.log(
            |l| CallOp::Incr {
                key: l.key(key),
                delta: l.delta(delta),
            },
            r.summary(),
        );
        r
    }

    async fn delete(&self, key: &Key) -> CacheResult<bool> {
        let r = self.inner.delete(key).await;
        self.log(|l| CallOp::Delete(l.key(key)), r.summary());
        r
    }

    async fn delete_many(&self, keys: &[Key]) -> CacheResult<u64> {
        let r = self.inner.delete_many(keys).await;
        self.log(|l| CallOp::DeleteMany(l.key_list(keys)), r.summary());
        r
    }

    async fn delete_prefix(&self, prefix: &str) -> CacheResult<u64> {
        let r = self.inner.delete_prefix(prefix).await;
        self.log(
            |l| {
                l.prefixes.push(prefix.to_owned());
                CallOp::DeletePrefix(id(l.prefixes.len() - 1))
            },
            r.summary(),
        );
        r
    }
}

/// The backend calls one cell made, in order, ready to replay.
pub struct Recording {
    /// The cell's strategy.
    pub strategy: String,
    /// The cell's backend label.
    pub backend: String,
    /// Feed requests the cell replayed.
    pub reads: u64,
    capacity_bytes: u64,
    processes: u32,
    start: SystemTime,
    log: Log,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("strategy", &self.strategy)
            .field("backend", &self.backend)
            .field("calls", &self.log.calls.len())
            .finish_non_exhaustive()
    }
}

/// What a replay measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replayed {
    /// Wall time of the calls (making the stores not included).
    pub elapsed: Duration,
    /// Calls made.
    pub calls: u64,
    /// Calls whose outcome (hit or miss, added or not, count deleted,
    /// counter value) differed from the recorded run's.
    pub mismatches: u64,
}

impl Recording {
    /// Backend calls recorded.
    pub fn calls(&self) -> usize {
        self.log.calls.len()
    }

    /// Fresh stores of the recorded cell's configuration (the simulator's
    /// `locmem`: seeded hashing, declared padding, one store per app
    /// process), with moka's maintenance deterministic as in the simulator
    /// or, with `deterministic` false, in moka's default (batched, timed)
    /// mode; and their clock, at the recorded run's start.
    pub fn stores(&self, deterministic: bool) -> (Vec<Arc<dyn Backend>>, ManualClock) {
        let clock = ManualClock::at(self.start);
        let stores = locmem_stores(self.capacity_bytes, self.processes, &clock, deterministic)
            .into_iter()
            .map(|s| Arc::new(s) as Arc<dyn Backend>)
            .collect();
        (stores, clock)
    }

    /// Makes the recorded calls on `stores` (as [`Self::stores`] makes
    /// them), moving `clock` to each call's virtual instant first, on a
    /// single-threaded runtime, as a cell does.
    pub fn replay(&self, stores: &[Arc<dyn Backend>], clock: &ManualClock) -> Result<Replayed> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start a runtime: {e}")))?;
        if stores.len() < self.processes.max(1) as usize {
            return Err(Error::Invalid("fewer stores than the recorded cell had".into()));
        }
        Ok(rt.block_on(self.replay_calls(stores, clock)))
    }

    async fn replay_calls(&self, stores: &[Arc<dyn Backend>], clock: &ManualClock) -> Replayed {
        let log = &self.log;
        let key = |i: u32| &log.keys[i as usize];
        let value = |i: u32| log.values[i as usize].clone();
        let ttl = |i: u16| log.ttls[usize::from(i)];
        let mut mismatches = 0;
        let began = Instant::now();
        for c in &log.calls {
            clock.advance_to(UNIX_EPOCH + Duration::from_micros(c.at_us));
            let s = &stores[usize::from(c.store)];
            let got = match c.op {
                CallOp::Get(k) => s.get(key(k)).await.summary(),
                CallOp::GetMany(l) => s.get_many(&log.key_lists[l as usize]).await.summary(),
                CallOp::Set {
                    key: k,
                    value: v,
                    ttl: t,
                } => s.set(key(k), value(v), ttl(t)).await.summary(),
                CallOp::SetMany { entries, ttl: t } => {
                    s.set_many(&log.entry_lists[entries as usize], ttl(t)).await.summary()
                }
                CallOp::Add {
                    key: k,
                    value: v,
                    ttl: t,
                } => s.add(key(k), value(v), ttl(t)).await.summary(),
                CallOp::Incr { key: k, delta } => s.incr(key(k), log.deltas[usize::from(delta)]).await.summary(),
                CallOp::Delete(k) => s.delete(key(k)).await.summary(),
                CallOp::DeleteMany(l) => s.delete_many(&log.key_lists[l as usize]).await.summary(),
                CallOp::DeletePrefix(p) => s.delete_prefix(&log.prefixes[p as usize]).await.summary(),
            };
            mismatches += u64::from(got != c.result);
        }
        Replayed {
            elapsed: began.elapsed(),
            calls: log.calls.len() as u64,
            mismatches,
        }
    }
}

/// Runs the cell (`strategy`, `backend`) of `cfg` alone, recording every
/// call it makes to its stores. Only plain `locmem` backends.
pub fn record(
    cfg: &RunConfig,
    sources: &SourceFactory,
    strategies: &StrategyFactory,
    strategy: &str,
    backend: &BackendSpec,
) -> Result<Recording> {
    let BackendSpec::Locmem { capacity_bytes } = backend else {
        return Err(Error::Invalid(format!(
            "only locmem cells can be recorded, not {}",
            backend.label()
        )));
    };
    let source = sources()?;
    let header = source.header.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start a runtime: {e}")))?;
    let mut cell = rt
        .block_on(make_cell(cfg, &header, None, strategies, strategy, backend))?
        .cell;
    let log = Arc::new(Mutex::new(Log::default()));
    let start = cell.clock.now();
    cell.backends = cell
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Arc::new(Recorder {
                inner: b.clone(),
                store: u16::try_from(i).unwrap_or(u16::MAX),
                clock: cell.clock.clone(),
                log: log.clone(),
            }) as Arc<dyn Backend>
        })
        .collect();
    let metrics = rt.block_on(crate::engine::run_cell(source, &cell, None))?;
    drop(cell);
    let mut log = Arc::try_unwrap(log)
        .map_err(|_| Error::Invalid("a recorder outlived its cell".into()))?
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    log.seal();
    Ok(Recording {
        strategy: strategy.to_owned(),
        backend: backend.label(),
        reads: metrics.reads,
        capacity_bytes: *capacity_bytes,
        processes: header.processes.max(1),
        start,
        log,
    })
}
