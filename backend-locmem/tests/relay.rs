//! Issue #25 on locmem: a bump that fails is queued, the writer's process
//! reads around it, a retry applies it once the store answers again; the
//! outbox relay applies the change of a writer that died between its
//! commit and its bump, and sets aside rows nobody can decode. The freeze
//! is `cache_core::fault::Frozen`; the outbox is an in-memory table with a
//! clock of its own (the application's database, not a cache server).
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_locmem::LocmemBackend;
use cache_core::fault::{FreezeSwitch, Frozen};
use cache_core::outbox::{encode, Outbox, OutboxId, OutboxRow};
use cache_core::{async_trait, Backend, BoxError, Bytes, CacheOptions, Change, Clock, ManualClock, RangeCache};
use cache_testkit::strategy_suite::{
    self as suite, october_view, range, scope, WithoutPrefixDelete, SEED_DAY_UNIX_MILLIS,
};

/// A row: its record, when it was recorded, why it was set aside.
type Row = (String, Duration, Option<String>);

/// The application's outbox table, in memory, aged by its own clock.
#[derive(Debug, Default)]
struct MemOutbox {
    rows: Mutex<BTreeMap<OutboxId, Row>>,
    now: Mutex<Duration>,
}

impl MemOutbox {
    /// Inserts a row "in the write's transaction".
    fn record(&self, record: String) -> OutboxId {
        let mut rows = self.rows.lock().unwrap();
        let id = rows.keys().next_back().map_or(1, |k| k + 1);
        rows.insert(id, (record, *self.now.lock().unwrap(), None));
        id
    }

    fn advance(&self, d: Duration) {
        *self.now.lock().unwrap() += d;
    }

    fn live(&self) -> Vec<OutboxId> {
        let rows = self.rows.lock().unwrap();
        rows.iter().filter(|(_, r)| r.2.is_none()).map(|(id, _)| *id).collect()
    }
}

#[async_trait]
impl Outbox for MemOutbox {
    async fn due(&self, older_than: Duration, limit: usize) -> Result<Vec<OutboxRow>, BoxError> {
        let now = *self.now.lock().unwrap();
        let rows = self.rows.lock().unwrap();
        Ok(rows
            .iter()
            .filter(|(_, (_, at, error))| error.is_none() && now.saturating_sub(*at) >= older_than)
            .take(limit)
            .map(|(id, (record, _, _))| OutboxRow::new(*id, record.clone()))
            .collect())
    }

    async fn done(&self, id: OutboxId) -> Result<(), BoxError> {
        self.rows.lock().unwrap().remove(&id);
        Ok(())
    }

    async fn quarantine(&self, id: OutboxId, reason: &str) -> Result<(), BoxError> {
        if let Some(row) = self.rows.lock().unwrap().get_mut(&id) {
            row.2 = Some(reason.to_owned());
        }
        Ok(())
    }
}

fn options() -> CacheOptions {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_unix_millis(SEED_DAY_UNIX_MILLIS));
    CacheOptions::default()
        .with_clock(clock)
        .with_namespace("relay")
        .with_outbox_timing(Duration::from_millis(50), Duration::from_secs(5))
}

fn cache(backend: Arc<dyn Backend>, strategy: &str, outbox: Option<Arc<MemOutbox>>) -> RangeCache {
    let mut b = RangeCache::builder(backend).options(options()).strategy(strategy);
    if let Some(o) = outbox {
        b = b.outbox(o);
    }
    b.build().unwrap()
}

fn change() -> Change {
    Change::new(
        scope("cal:1"),
        [range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00")],
    )
    .unwrap()
}

/// Reads October's view of `cal:1`, answering a miss with `db`.
async fn read(cache: &RangeCache, db: &'static str) -> Bytes {
    cache
        .get_or_load(&october_view("cal:1"), || async move {
            Ok::<_, std::convert::Infallible>(Bytes::from_static(db.as_bytes()))
        })
        .await
        .unwrap()
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn freeze_during_a_write_on_locmem_every_strategy() {
    suite::assert_freeze_during_write_on_every_strategy(Arc::new(LocmemBackend::new())).await;
    // `wildcard` on its key index, as on Memcached.
    let switch = FreezeSwitch::manual();
    let backend: Arc<dyn Backend> = Arc::new(Frozen::new(WithoutPrefixDelete(LocmemBackend::new()), switch.clone()));
    suite::assert_freeze_during_write_recovers(
        backend.clone(),
        backend,
        "wildcard",
        &switch,
        Duration::from_millis(200),
    )
    .await;
}

#[tokio::test]
async fn a_failed_bump_is_retried_and_its_views_bypass_the_cache_meanwhile() {
    let switch = FreezeSwitch::manual();
    let backend: Arc<dyn Backend> = Arc::new(Frozen::new(LocmemBackend::new(), switch.clone()));
    let writer = cache(backend.clone(), "versioned", None);
    let reader = cache(backend, "versioned", None);
    assert_eq!(read(&reader, "v1").await, "v1");
    assert_eq!(read(&reader, "v2").await, "v1", "cached");
    assert_eq!(read(&writer, "v2").await, "v1", "the writer's process shares the store");
    switch.freeze();
    assert!(writer.end_write(&change()).await.is_err());
    assert_eq!(writer.pending_bumps(), 1);
    switch.thaw();
    // Still pending until the next round: the writer reads around it, the
    // reader (another process, which cannot know) is served the old entry.
    let before = writer.metrics();
    assert_eq!(read(&writer, "v2").await, "v2", "the writer bypasses the cache");
    assert_eq!(read(&writer, "v3").await, "v3", "and stores nothing");
    let m = writer.metrics();
    assert_eq!(m.pending_bypassed - before.pending_bypassed, 2, "{m:?}");
    assert_eq!(m.loader_calls - before.loader_calls, 2);
    let took = until("the retry", Duration::from_secs(2), || writer.pending_bumps() == 0).await;
    assert!(took < Duration::from_millis(250), "re-applied {took:?} after the thaw");
    assert_eq!(read(&reader, "v4").await, "v4", "the bump reached the reader");
    assert_eq!(read(&writer, "v5").await, "v4", "and the writer uses the cache again");
    let m = writer.metrics();
    assert_eq!(
        (
            m.invalidation_errors,
            m.bumps_queued,
            m.bumps_reapplied,
            m.bumps_dropped
        ),
        (1, 1, 1, 0),
        "{m:?}"
    );
    assert!(m.bump_retries >= 1);
}

#[tokio::test]
async fn a_long_outage_backs_off_to_the_cap_and_probes_with_one_call() {
    let switch = FreezeSwitch::manual();
    let backend: Arc<dyn Backend> = Arc::new(Frozen::new(LocmemBackend::new(), switch.clone()));
    let writer = cache(backend, "stamped", None);
    switch.freeze();
    for _ in 0..20 {
        assert!(writer.end_write(&change()).await.is_err());
    }
    let refused = switch.refused();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Rounds at 10, 20, 40, 80, then every 100 ms: about 13 in the second,
    // each one refused call (the probe), not 20.
    let rounds = switch.refused() - refused;
    assert!((8..=16).contains(&rounds), "{rounds} probes in 1 s");
    switch.thaw();
    until("the catch-up", Duration::from_secs(2), || writer.pending_bumps() == 0).await;
    assert_eq!(writer.metrics().bumps_reapplied, 20);
}

#[tokio::test]
async fn a_writer_that_dies_after_its_commit_is_caught_up_by_any_relay() {
    for strategy in ["versioned", "stamped", "bucketed", "wildcard"] {
        let store: Arc<dyn Backend> = Arc::new(LocmemBackend::new());
        let outbox = Arc::new(MemOutbox::default());
        let writer = cache(store.clone(), strategy, Some(outbox.clone()));
        let other = cache(store, strategy, Some(outbox.clone()));
        read(&other, "before").await;
        assert_eq!(read(&other, "after").await, "before", "{strategy}: cached");
        // The write: announced, committed with its outbox row, then the
        // writer dies before its bump.
        writer.begin_write(&change()).await.unwrap();
        outbox.record(encode(&change()));
        drop(writer);
        let during = read(&other, "after").await;
        match strategy {
            // The fence left open keeps every process off the scope.
            "stamped" => assert_eq!(during, "after", "{strategy}"),
            _ => assert_eq!(during, "before", "{strategy}: stale until a relay runs"),
        }
        let relay = other.outbox_relay().unwrap();
        let young = relay.poll_once().await.unwrap();
        assert_eq!((young.rows, young.applied), (0, 0), "{strategy}: within the grace");
        outbox.advance(Duration::from_secs(5));
        let round = relay.poll_once().await.unwrap();
        assert_eq!((round.rows, round.applied, round.stopped), (1, 1, false), "{strategy}");
        assert!(outbox.live().is_empty(), "{strategy}: the row is deleted");
        assert_eq!(read(&other, "after").await, "after", "{strategy}: no stale read");
        assert_eq!(read(&other, "later").await, "after", "{strategy}: and cached again");
        assert_eq!(other.metrics().outbox_applied, 1);
    }
}

#[tokio::test]
async fn rows_follow_their_bump_and_bad_rows_are_set_aside() {
    let switch = FreezeSwitch::manual();
    let store: Arc<dyn Backend> = Arc::new(Frozen::new(LocmemBackend::new(), switch.clone()));
    let outbox = Arc::new(MemOutbox::default());
    let writer = cache(store, "stamped", Some(outbox.clone()));
    // A bump that succeeds deletes its row at once.
    let row = outbox.record(encode(&change()));
    writer.begin_write(&change()).await.unwrap();
    writer.end_recorded_write(&change(), row).await.unwrap();
    assert!(outbox.live().is_empty());
    // One that fails keeps it until its retry succeeds.
    writer.begin_write(&change()).await.unwrap();
    let row = outbox.record(encode(&change()));
    switch.freeze();
    assert!(writer.end_recorded_write(&change(), row).await.is_err());
    let relay = writer.outbox_relay().unwrap();
    outbox.advance(Duration::from_secs(10));
    let bad = outbox.record("c1|cal:1|yesterday/today".to_owned());
    outbox.advance(Duration::from_secs(10));
    let round = relay.poll_once().await.unwrap();
    assert_eq!(
        (round.rows, round.applied, round.stopped),
        (2, 0, true),
        "frozen: {round:?}"
    );
    assert_eq!(outbox.live(), [row, bad]);
    switch.thaw();
    until("the retry", Duration::from_secs(2), || writer.pending_bumps() == 0).await;
    assert_eq!(outbox.live(), [bad], "the retry deleted its row");
    let round = relay.poll_once().await.unwrap();
    assert_eq!((round.rows, round.quarantined), (1, 1));
    assert!(outbox.live().is_empty(), "set aside, not returned again");
    assert_eq!(outbox.rows.lock().unwrap().len(), 1, "and not deleted");
    let m = writer.metrics();
    assert_eq!((m.bumps_reapplied, m.outbox_quarantined), (1, 1), "{m:?}");
}
