//! `RangeCache` behaviour on locmem: logical expiry on an injected clock,
//! fail-open reads, returned write errors, XFetch, metrics.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use backend_locmem::LocmemBackend;
use cache_core::aside::{RangeCache, RangeCacheOptions};
use cache_core::strategy::{by_name, StrategyOptions};
use cache_core::{async_trait, Backend, Bytes, Capabilities, Change, Clock, Error, Key, ManualClock, Op, Result, Ttl};
use cache_testkit::strategy_suite::{october_view, range, scope, SEED_DAY_UNIX_MILLIS};

fn clock() -> (ManualClock, Arc<dyn Clock>) {
    let c = ManualClock::at_unix_millis(SEED_DAY_UNIX_MILLIS);
    let shared: Arc<dyn Clock> = Arc::new(c.clone());
    (c, shared)
}

fn cache(backend: Arc<dyn Backend>, strategy: &str, clock: Arc<dyn Clock>, beta: Option<f64>, seed: u64) -> RangeCache {
    let options = StrategyOptions::default().with_clock(clock.clone()).with_seed(seed);
    RangeCache::new(
        backend,
        by_name(strategy, &options).unwrap(),
        RangeCacheOptions::default()
            .with_clock(clock)
            .with_xfetch(beta)
            .with_seed(seed),
    )
}

fn change() -> Change {
    let r = range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00");
    Change::new(scope("cal:1"), [r]).unwrap()
}

async fn load(cache: &RangeCache, payload: &'static [u8]) -> Bytes {
    cache
        .get_or_load(&october_view("cal:1"), || async move {
            Ok::<_, Error>(Bytes::from_static(payload))
        })
        .await
        .unwrap()
}

/// A backend whose server is gone: every call is `Unavailable`.
#[derive(Debug)]
struct Down;

fn down() -> Error {
    Error::Unavailable {
        backend: "down".to_owned(),
        key: None,
        source: "connection refused".into(),
    }
}

#[async_trait]
impl Backend for Down {
    fn name(&self) -> &str {
        "down"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }
    async fn get(&self, _: &Key) -> Result<Option<Bytes>> {
        Err(down())
    }
    async fn get_many(&self, _: &[Key]) -> Result<Vec<Option<Bytes>>> {
        Err(down())
    }
    async fn set(&self, _: &Key, _: Bytes, _: Ttl) -> Result<()> {
        Err(down())
    }
    async fn set_many(&self, _: &[(Key, Bytes)], _: Ttl) -> Result<()> {
        Err(down())
    }
    async fn add(&self, _: &Key, _: Bytes, _: Ttl) -> Result<bool> {
        Err(down())
    }
    async fn incr(&self, _: &Key, _: u64) -> Result<u64> {
        Err(down())
    }
    async fn delete(&self, _: &Key) -> Result<bool> {
        Err(down())
    }
    async fn delete_many(&self, _: &[Key]) -> Result<u64> {
        Err(down())
    }
}

#[tokio::test]
async fn reads_fail_open_and_writes_report_errors() {
    let (_, clock) = clock();
    for strategy in cache_core::strategy::NAMES {
        let c = cache(Arc::new(Down), strategy, clock.clone(), None, 0);
        assert_eq!(load(&c, b"from db").await, Bytes::from_static(b"from db"), "{strategy}");
        let m = c.metrics();
        assert_eq!((m.hits, m.misses, m.loader_calls), (0, 1, 1), "{strategy}");
        assert!(m.read_errors >= 1, "{strategy}: {m:?}");
        let result = c.invalidate(&change()).await;
        if c.strategy().needs().invalidates {
            assert!(
                matches!(result, Err(Error::Unavailable { .. })),
                "{strategy}: {result:?}"
            );
            assert_eq!(c.metrics().invalidation_errors, 1);
        } else {
            assert!(result.is_ok());
        }
    }
}

#[tokio::test]
async fn entries_expire_on_the_injected_clock() {
    let (manual, clock) = clock();
    let backend: Arc<dyn Backend> = Arc::new(LocmemBackend::builder().clock(clock.clone()).build());
    let c = cache(backend, "versioned", clock, None, 0);
    assert_eq!(load(&c, b"v1").await, Bytes::from_static(b"v1"));
    manual.advance(Duration::from_secs(299));
    assert_eq!(load(&c, b"v2").await, Bytes::from_static(b"v1"), "still fresh at 299 s");
    manual.advance(Duration::from_secs(1));
    assert_eq!(load(&c, b"v3").await, Bytes::from_static(b"v3"), "expired at 300 s");
    let m = c.metrics();
    assert_eq!((m.hits, m.misses, m.loader_calls), (1, 2, 2));
}

#[tokio::test]
async fn metrics_split_read_and_write_round_trips() {
    let c = cache(Arc::new(LocmemBackend::new()), "versioned", clock().1, None, 0);
    load(&c, b"x").await;
    load(&c, b"x").await;
    c.invalidate(&change()).await.unwrap();
    let m = c.metrics();
    // Two reads: 2 generation gets + 2 view gets, one add (seeding), one set.
    assert_eq!(m.read_ops.op(Op::Get).calls, 4, "{m:?}");
    assert_eq!(m.read_ops.op(Op::Add).calls, 1);
    assert_eq!(m.read_ops.op(Op::Set).calls, 1);
    assert_eq!(m.read_ops.op(Op::Incr).calls, 0);
    assert_eq!(m.write_ops.total_calls(), 1, "one incr per write");
    assert_eq!(m.write_ops.op(Op::Incr).calls, 1);
    assert_eq!((m.hits, m.misses, m.invalidations), (1, 1, 1));
}

#[tokio::test]
async fn loader_errors_are_returned_and_nothing_is_cached() {
    let c = cache(Arc::new(LocmemBackend::new()), "versioned", clock().1, None, 0);
    let err = c
        .get_or_load(&october_view("cal:1"), || async { Err::<Bytes, _>("db down") })
        .await;
    assert_eq!(err, Err("db down"));
    assert_eq!(load(&c, b"ok").await, Bytes::from_static(b"ok"));
    let m = c.metrics();
    assert_eq!((m.loader_calls, m.loader_errors, m.hits), (2, 1, 0));
}

#[tokio::test]
async fn an_entry_that_is_not_an_envelope_is_a_miss() {
    let backend: Arc<dyn Backend> = Arc::new(LocmemBackend::new());
    let c = cache(backend.clone(), "short-ttl", clock().1, None, 0);
    let plan = c
        .strategy()
        .plan_read(backend.as_ref(), &october_view("cal:1"))
        .await
        .unwrap();
    backend.set(&plan.key, Bytes::from_static(b"junk"), None).await.unwrap();
    assert_eq!(load(&c, b"fresh").await, Bytes::from_static(b"fresh"));
    assert_eq!(c.metrics().corrupt_entries, 1);
    assert_eq!(
        load(&c, b"again").await,
        Bytes::from_static(b"fresh"),
        "overwritten by the load"
    );
}

/// XFetch with β = 1 and a 10 s load: one second before expiry a reader
/// refreshes with probability 1 − e^(−0.1) ≈ 0.9; 290 s before, e^(−29) ≈ 0.
#[tokio::test]
async fn xfetch_refreshes_early_near_expiry_only() {
    async fn early_refreshes(beta: Option<f64>, after_load: Duration) -> u64 {
        let mut total = 0;
        for seed in 0..40 {
            let (manual, clock) = clock();
            let c = cache(Arc::new(LocmemBackend::new()), "versioned", clock, beta, seed);
            let slow = manual.clone();
            c.get_or_load(&october_view("cal:1"), || async move {
                slow.advance(Duration::from_secs(10));
                Ok::<_, Error>(Bytes::from_static(b"x"))
            })
            .await
            .unwrap();
            manual.advance(after_load);
            load(&c, b"y").await;
            total += c.metrics().early_refreshes;
        }
        total
    }
    let near = early_refreshes(Some(1.0), Duration::from_secs(299)).await;
    assert!((28..=40).contains(&near), "near expiry: {near} of 40");
    assert_eq!(early_refreshes(Some(1.0), Duration::from_secs(10)).await, 0);
    assert_eq!(early_refreshes(None, Duration::from_secs(299)).await, 0);
}
