//! `RangeCache` behaviour on locmem: logical expiry on an injected clock,
//! fail-open reads, returned write errors, XFetch, metrics.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use backend_locmem::LocmemBackend;
use cache_core::aside::{LoadError, RangeCache};
use cache_core::strategy::Stamped;
use cache_core::CacheOptions;
use cache_core::{async_trait, Backend, Bytes, Capabilities, Change, Clock, Error, Key, ManualClock, Op, Result, Ttl};
use cache_testkit::strategy_suite::{october_view, range, scope, SEED_DAY_UNIX_MILLIS};

fn clock() -> (ManualClock, Arc<dyn Clock>) {
    let c = ManualClock::at_unix_millis(SEED_DAY_UNIX_MILLIS);
    let shared: Arc<dyn Clock> = Arc::new(c.clone());
    (c, shared)
}

fn cache(backend: Arc<dyn Backend>, strategy: &str, clock: Arc<dyn Clock>, beta: Option<f64>, seed: u64) -> RangeCache {
    let options = CacheOptions::default()
        .with_clock(clock)
        .with_seed(seed)
        .with_xfetch(beta);
    RangeCache::builder(backend)
        .options(options)
        .strategy(strategy)
        .build()
        .unwrap()
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
            let m = c.metrics();
            assert_eq!(
                (m.invalidation_errors, m.bumps_queued),
                (1, 1),
                "{strategy}: queued for retry"
            );
            assert_eq!(c.pending_bumps(), 1);
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
async fn with_fail_open_off_a_backend_error_ends_the_read_without_a_load() {
    for strategy in cache_core::strategy::NAMES {
        let c = RangeCache::builder(Arc::new(Down))
            .strategy(strategy)
            .fail_open(false)
            .build()
            .unwrap();
        let r = c
            .get_or_load(&october_view("cal:1"), || async {
                Ok::<_, Error>(Bytes::from_static(b"db"))
            })
            .await;
        assert!(
            matches!(r, Err(LoadError::Cache(Error::Unavailable { .. }))),
            "{strategy}: {r:?}"
        );
        let m = c.metrics();
        assert_eq!(
            (m.loader_calls, m.cache_failures, m.read_errors),
            (0, 1, 1),
            "{strategy}: {m:?}"
        );
    }
    // The same cache on a working store reads through as usual.
    let c = RangeCache::builder(Arc::new(LocmemBackend::new()))
        .fail_open(false)
        .build()
        .unwrap();
    assert_eq!(load(&c, b"v").await, Bytes::from_static(b"v"));
    assert_eq!(load(&c, b"w").await, Bytes::from_static(b"v"));
}

#[test]
fn the_builder_names_the_bad_setting() {
    let b = || RangeCache::builder(Arc::new(LocmemBackend::new()));
    let setting = |r: Result<RangeCache>| match r {
        Err(Error::Setting { setting, .. }) => setting,
        other => panic!("{other:?}"),
    };
    assert_eq!(setting(b().ttl(Duration::ZERO).build()), "ttl");
    assert_eq!(setting(b().xfetch(f64::INFINITY).build()), "xfetch");
    assert_eq!(setting(b().xfetch(0.0).build()), "xfetch");
    assert_eq!(setting(b().namespace("a*b").build()), "namespace");
    assert_eq!(setting(b().name("").build()), "name");
    assert_eq!(setting(b().name("feeds prod").build()), "name");
    assert_eq!(setting(b().name("x".repeat(65)).build()), "name");
    match b().strategy("lru").build() {
        Err(Error::Config { message, .. }) => assert!(message.contains("stamped"), "{message}"),
        other => panic!("{other:?}"),
    }
    // By name, by type and shared; the default is `stamped`.
    assert_eq!(b().build().unwrap().strategy().name(), "stamped");
    let typed = b().strategy_with(Stamped::new).name("feeds.v2").build().unwrap();
    assert_eq!((typed.strategy().name(), typed.name()), ("stamped", "feeds.v2"));
    let shared = b().strategy("bucketed").build().unwrap().strategy().clone();
    assert_eq!(
        b().shared_strategy(shared).build().unwrap().strategy().name(),
        "bucketed"
    );
}

#[tokio::test]
async fn metrics_split_read_and_write_round_trips() {
    let c = cache(Arc::new(LocmemBackend::new()), "versioned", clock().1, None, 0);
    load(&c, b"x").await;
    load(&c, b"x").await;
    c.invalidate(&change()).await.unwrap();
    let m = c.metrics();
    let (reads, writes) = (c.read_stats(), c.write_stats());
    // Two reads: 2 generation gets + 2 view gets, one add (seeding), one set.
    assert_eq!(reads.op(Op::Get).calls, 4, "{reads:?}");
    assert_eq!(reads.op(Op::Add).calls, 1);
    assert_eq!(reads.op(Op::Set).calls, 1);
    assert_eq!(reads.op(Op::Incr).calls, 0);
    assert_eq!(writes.total_calls(), 1, "one incr per write");
    assert_eq!(writes.op(Op::Incr).calls, 1);
    assert_eq!((m.hits, m.misses, m.invalidations), (1, 1, 1));
}

#[tokio::test]
async fn loader_errors_are_returned_and_nothing_is_cached() {
    let c = cache(Arc::new(LocmemBackend::new()), "versioned", clock().1, None, 0);
    let err = c
        .get_or_load(&october_view("cal:1"), || async { Err::<Bytes, _>("db down") })
        .await;
    assert!(matches!(err, Err(LoadError::Loader("db down"))), "{err:?}");
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

/// The `metrics` facade sees what the cache did, under the documented
/// names and labels, and only through the recorder installed when the
/// cache was built.
#[tokio::test]
async fn metrics_reach_the_installed_recorder_under_their_names() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let c = metrics::with_local_recorder(&recorder, || {
        RangeCache::builder(Arc::new(LocmemBackend::new()))
            .name("feeds")
            .build()
            .unwrap()
    });
    load(&c, b"v").await;
    load(&c, b"v").await;
    c.invalidate(&change()).await.unwrap();
    let mut counters = std::collections::BTreeMap::new();
    let mut histograms = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => {
                counters.insert(name, n);
            }
            DebugValue::Histogram(v) => {
                histograms.insert(name, v.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    let at = |name: &str| {
        counters
            .get(&format!("{name}{{cache=feeds,strategy=stamped}}"))
            .copied()
    };
    assert_eq!(at("range_cache_hits_total"), Some(1), "{counters:#?}");
    assert_eq!(at("range_cache_misses_total"), Some(1));
    assert_eq!(at("range_cache_loads_total"), Some(1));
    assert_eq!(at("range_cache_invalidations_total"), Some(1));
    assert_eq!(at("range_cache_load_errors_total"), Some(0), "registered, never moved");
    assert_eq!(
        histograms.get("range_cache_load_seconds{cache=feeds,strategy=stamped}"),
        Some(&1)
    );
    assert_eq!(
        histograms.get("range_cache_backend_seconds{cache=feeds,step=plan,strategy=stamped}"),
        Some(&2),
        "{histograms:#?}"
    );
    // A cache built with no recorder installed reports nowhere, and works.
    let quiet = RangeCache::builder(Arc::new(LocmemBackend::new())).build().unwrap();
    load(&quiet, b"w").await;
    assert_eq!(quiet.metrics().misses, 1);
}

/// `tracing` spans carry the decision each read took.
#[tokio::test]
async fn spans_say_what_each_read_decided() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let c = RangeCache::builder(Arc::new(LocmemBackend::new()))
        .name("feeds")
        .build()
        .unwrap();
    load(&c, b"v").await;
    load(&c, b"v").await;
    c.invalidate(&change()).await.unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        out.contains("range_cache.get_or_load") && out.contains("outcome=\"loaded\""),
        "{out}"
    );
    assert!(out.contains("outcome=\"hit\""), "{out}");
    assert!(
        out.contains("range_cache.invalidate") && out.contains("scope=cal:1") && out.contains("ok=true"),
        "{out}"
    );
}

/// `get_or_load_json` stores the loader's value as JSON and reads it back;
/// an entry that no longer decodes as the asked type goes to the loader.
#[tokio::test]
async fn json_values_round_trip_and_a_changed_type_is_loaded_again() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Event {
        id: u64,
        title: String,
    }
    let c = RangeCache::builder(Arc::new(LocmemBackend::new())).build().unwrap();
    let v = october_view("cal:1");
    let standup = || {
        vec![Event {
            id: 1,
            title: "Standup".into(),
        }]
    };
    let first: Vec<Event> = c
        .get_or_load_json(&v, || async { Ok::<_, Error>(standup()) })
        .await
        .unwrap();
    let second: Vec<Event> = c
        .get_or_load_json(&v, || async { Ok::<_, Error>(Vec::new()) })
        .await
        .unwrap();
    assert_eq!(
        (first, second),
        (standup(), standup()),
        "the second read is the stored value"
    );
    assert_eq!((c.metrics().hits, c.metrics().loader_calls), (1, 1));
    // The stored JSON is not a `u64`: the loader answers, uncached.
    let n: u64 = c.get_or_load_json(&v, || async { Ok::<_, Error>(7) }).await.unwrap();
    assert_eq!(n, 7);
    assert_eq!(c.metrics().corrupt_entries, 1);
}
