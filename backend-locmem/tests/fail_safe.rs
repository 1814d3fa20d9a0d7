//! Fail-safe and the loader's timeouts through `RangeCache` on locmem: the
//! flow's decisions driven with real awaits, Tokio's (paused) clock for the
//! timeouts and a `ManualClock` for the entries' logical expiry.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backend_locmem::LocmemBackend;
use cache_core::aside::{LoadError, RangeCache};
use cache_core::{Answer, Bytes, CacheOptions, Change, Clock, Error, FailSafe, ManualClock, Result};
use cache_testkit::strategy_suite::{october_view, range, scope, SEED_DAY_UNIX_MILLIS};

const TTL: Duration = Duration::from_secs(60);

fn cache(strategy: &str, configure: impl FnOnce(CacheOptions) -> CacheOptions) -> (ManualClock, RangeCache) {
    let manual = ManualClock::at_unix_millis(SEED_DAY_UNIX_MILLIS);
    let clock: Arc<dyn Clock> = Arc::new(manual.clone());
    let options = configure(
        CacheOptions::default()
            .with_clock(clock)
            .with_ttl(TTL)
            .with_short_ttl(TTL),
    );
    let c = RangeCache::builder(Arc::new(LocmemBackend::new()))
        .options(options)
        .strategy(strategy)
        .build()
        .unwrap();
    (manual, c)
}

fn change() -> Change {
    let r = range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00");
    Change::new(scope("cal:1"), [r]).unwrap()
}

async fn ok(c: &RangeCache, payload: &'static [u8]) -> std::result::Result<Answer, LoadError<&'static str>> {
    c.fetch(
        &october_view("cal:1"),
        || async move { Ok(Bytes::from_static(payload)) },
    )
    .await
}

async fn down(c: &RangeCache) -> std::result::Result<Answer, LoadError<&'static str>> {
    c.fetch(&october_view("cal:1"), || async { Err("db down") }).await
}

fn value<'a>(a: &'a std::result::Result<Answer, LoadError<&'static str>>) -> (&'a [u8], Option<FailSafe>) {
    match a {
        Ok(a) => (&a.value[..], a.fail_safe),
        Err(e) => panic!("{e:?}"),
    }
}

/// What every strategy offers when the database fails after the entry
/// expired, and after a write to its scope: the table in `flow`'s docs.
#[tokio::test]
async fn each_strategy_answers_by_fail_safe_what_it_keeps() {
    for strategy in cache_core::strategy::NAMES {
        let (clock, c) = cache(strategy, |o| o.with_fail_safe(Some(Duration::from_secs(600))));
        ok(&c, b"v1").await.unwrap();
        clock.advance(TTL + Duration::from_secs(1));
        let expired = down(&c).await;
        assert_eq!(value(&expired), (&b"v1"[..], Some(FailSafe::Current)), "{strategy}");
        // A write to the view's scope, then the database fails.
        c.begin_write(&change()).await.unwrap();
        c.end_write(&change()).await.unwrap();
        let after_write = down(&c).await;
        let expected = match strategy {
            // The stable key keeps the entry, with its old stamps.
            "stamped" => Some(FailSafe::Stale),
            // The bump moved the view to a new key; the delete named it.
            "versioned" | "bucketed" | "naive-versioned" | "wildcard" => None,
            // Nothing deleted it (no invalidation, or the wrong keys: the
            // seed's bug), so it answers, as `current`: no stamps to tell.
            "short-ttl" | "fixed-month" | "range-expansion" => Some(FailSafe::Current),
            other => panic!("a new strategy: say what it keeps ({other})"),
        };
        match expected {
            Some(kind) => assert_eq!(
                after_write.as_ref().ok().and_then(|a| a.fail_safe),
                Some(kind),
                "{strategy}"
            ),
            None => assert!(
                matches!(after_write, Err(LoadError::Loader("db down"))),
                "{strategy}: {after_write:?}"
            ),
        }
        let m = c.metrics();
        let served = 1 + u64::from(expected.is_some());
        assert_eq!(m.fail_safe_served, served, "{strategy}: {m:?}");
        assert_eq!(
            m.fail_safe_stale,
            u64::from(expected == Some(FailSafe::Stale)),
            "{strategy}"
        );
        assert_eq!(m.failed_reads, 2 - served, "{strategy}");
        assert_eq!(m.loader_errors, 2, "{strategy}: every failed load is counted");
    }
}

#[tokio::test]
async fn without_fail_safe_or_past_the_max_age_the_error_is_returned() {
    let (clock, off) = cache("stamped", |o| o);
    ok(&off, b"v1").await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    assert!(matches!(down(&off).await, Err(LoadError::Loader("db down"))));
    assert_eq!((off.metrics().failed_reads, off.metrics().fail_safe_served), (1, 0));
    let (clock, on) = cache("stamped", |o| o.with_fail_safe(Some(Duration::from_secs(30))));
    ok(&on, b"v1").await.unwrap();
    clock.advance(TTL + Duration::from_secs(29));
    assert_eq!(value(&down(&on).await), (&b"v1"[..], Some(FailSafe::Current)));
    clock.advance(Duration::from_secs(1));
    assert!(
        matches!(down(&on).await, Err(LoadError::Loader("db down"))),
        "expired 30 s ago: too old"
    );
    // The database is back: a normal load, stored, then a hit.
    assert_eq!(value(&ok(&on, b"v2").await), (&b"v2"[..], None));
    assert_eq!(value(&ok(&on, b"v3").await), (&b"v2"[..], None));
}

/// A read inside an open write (`stamped`'s fence) never hits, but when
/// the database fails then, fail-safe answers it from the entry, marked
/// stale (the write may have committed), and without fail-safe it fails.
#[tokio::test]
async fn inside_an_open_write_fail_safe_answers_stale_and_nothing_hits() {
    for fail_safe in [true, false] {
        let (_clock, c) = cache("stamped", |o| {
            o.with_fail_safe(fail_safe.then_some(Duration::from_secs(30)))
        });
        ok(&c, b"v1").await.unwrap();
        c.begin_write(&change()).await.unwrap();
        let answered = down(&c).await;
        if fail_safe {
            assert_eq!(
                value(&answered),
                (&b"v1"[..], Some(FailSafe::Stale)),
                "never as current"
            );
        } else {
            assert!(matches!(answered, Err(LoadError::Loader("db down"))));
        }
        // The database answers: the fenced read loads and does not hit.
        assert_eq!(value(&ok(&c, b"v2").await), (&b"v2"[..], None));
        let m = c.metrics();
        assert_eq!((m.hits, m.bypassed, m.fail_safe_stale), (0, 2, u64::from(fail_safe)));
    }
}

/// A loader that takes `delay` of Tokio time, counting its calls.
fn slow(
    calls: &Arc<AtomicU32>,
    delay: Duration,
    payload: &'static [u8],
) -> impl std::future::Future<Output = std::result::Result<Bytes, &'static str>> {
    let calls = calls.clone();
    async move {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        Ok(Bytes::from_static(payload))
    }
}

#[tokio::test(start_paused = true)]
async fn past_the_hard_timeout_the_load_is_given_up_for_everyone_waiting() {
    let (_, c) = cache("stamped", |o| o.with_load_timeouts(None, Some(Duration::from_secs(1))));
    let calls = Arc::new(AtomicU32::new(0));
    let view = october_view("cal:1");
    let t = tokio::time::Instant::now();
    let (a, b) = tokio::join!(
        c.fetch(&view, || slow(&calls, Duration::from_secs(3600), b"late")),
        c.fetch(&view, || slow(&calls, Duration::from_secs(3600), b"late")),
    );
    assert_eq!(t.elapsed(), Duration::from_secs(1), "one hard timeout, not two");
    for r in [&a, &b] {
        assert!(
            matches!(r, Err(LoadError::Timeout { after }) if *after == Duration::from_secs(1)),
            "{r:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the follower did not query again");
    let m = c.metrics();
    assert_eq!((m.load_timeouts, m.failed_reads, m.loader_calls), (1, 2, 1), "{m:?}");
}

#[tokio::test(start_paused = true)]
async fn past_the_hard_timeout_fail_safe_answers_when_it_can() {
    let (clock, c) = cache("stamped", |o| {
        o.with_fail_safe(Some(Duration::from_secs(600)))
            .with_load_timeouts(None, Some(Duration::from_secs(1)))
    });
    ok(&c, b"v1").await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let calls = Arc::new(AtomicU32::new(0));
    let r = c
        .fetch(&october_view("cal:1"), || {
            slow(&calls, Duration::from_secs(3600), b"late")
        })
        .await;
    assert_eq!(value(&r), (&b"v1"[..], Some(FailSafe::Current)));
    assert_eq!(c.metrics().load_timeouts, 1);
}

/// A `stamped` cache with fail-safe, a soft timeout of `soft` (hard 10 s)
/// and October's feed `v1` stored and expired.
async fn expired_with_soft_timeout(soft: Duration) -> RangeCache {
    let (clock, c) = cache("stamped", |o| {
        o.with_fail_safe(Some(Duration::from_secs(600)))
            .with_load_timeouts(Some(soft), Some(Duration::from_secs(10)))
    });
    ok(&c, b"v1").await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    c
}

/// `fetch` (a loader borrowed from the caller): past the soft timeout the
/// request waiting on the load is answered by fail-safe; the leader waits
/// for its loader and stores the fresh value.
#[tokio::test(start_paused = true)]
async fn a_soft_timeout_answers_the_waiters_while_the_leader_loads() {
    let soft = Duration::from_millis(50);
    let c = expired_with_soft_timeout(soft).await;
    let calls = Arc::new(AtomicU32::new(0));
    let view = october_view("cal:1");
    let t = tokio::time::Instant::now();
    let leader = async {
        let r = c.fetch(&view, || slow(&calls, Duration::from_secs(2), b"v2")).await;
        (r, t.elapsed())
    };
    let follower = async {
        tokio::task::yield_now().await;
        let r = c.fetch(&view, || slow(&calls, Duration::from_secs(2), b"v2")).await;
        (r, t.elapsed())
    };
    let ((lr, lt), (fr, ft)) = tokio::join!(leader, follower);
    assert_eq!(value(&fr), (&b"v1"[..], Some(FailSafe::Current)));
    assert_eq!(ft, soft, "the follower waited the soft timeout");
    assert_eq!(value(&lr), (&b"v2"[..], None));
    assert_eq!(lt, Duration::from_secs(2), "the leader waited for its own loader");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(value(&ok(&c, b"v3").await), (&b"v2"[..], None), "refreshed: a hit");
    let m = c.metrics();
    assert_eq!((m.soft_timeouts, m.fail_safe_served, m.hits), (1, 1, 1), "{m:?}");
}

/// `fetch_detached` (a `Send + 'static` loader, run as its own task): the
/// leader too is answered at the soft timeout; the task finishes the load
/// and refreshes the entry.
#[tokio::test(start_paused = true)]
async fn a_detached_load_answers_the_leader_at_the_soft_timeout_and_refreshes_later() {
    let soft = Duration::from_millis(50);
    let c = expired_with_soft_timeout(soft).await;
    let calls = Arc::new(AtomicU32::new(0));
    let t = tokio::time::Instant::now();
    let loader = slow(&calls, Duration::from_secs(2), b"v2");
    let r = c.fetch_detached(&october_view("cal:1"), move || loader).await;
    assert_eq!(t.elapsed(), soft);
    assert_eq!(value(&r), (&b"v1"[..], Some(FailSafe::Current)));
    let m = c.metrics();
    assert_eq!(
        (m.soft_timeouts, m.background_refreshes, m.loader_calls),
        (1, 0, 2),
        "{m:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.metrics().background_refreshes, 1);
    assert_eq!(
        value(&ok(&c, b"v3").await),
        (&b"v2"[..], None),
        "the background load stored it"
    );
    // Without a fail-safe entry there is nothing to answer early with: the
    // read waits for its load.
    let t = tokio::time::Instant::now();
    let other = october_view("cal:2");
    let loader = slow(&calls, Duration::from_secs(2), b"w");
    let r = c.fetch_detached(&other, move || loader).await;
    assert_eq!((value(&r), t.elapsed()), ((&b"w"[..], None), Duration::from_secs(2)));
}

#[tokio::test(start_paused = true)]
async fn a_detached_load_that_fails_after_the_answer_keeps_the_entry() {
    let (clock, c) = cache("versioned", |o| {
        o.with_fail_safe(Some(Duration::from_secs(600)))
            .with_load_timeouts(Some(Duration::from_millis(50)), None)
    });
    ok(&c, b"v1").await.unwrap();
    clock.advance(TTL + Duration::from_secs(1));
    let r = c
        .fetch_detached(&october_view("cal:1"), || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Err::<Bytes, _>("db down")
        })
        .await;
    assert_eq!(value(&r), (&b"v1"[..], Some(FailSafe::Current)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = c.metrics();
    assert_eq!((m.loader_errors, m.background_refreshes), (1, 0), "{m:?}");
    assert_eq!(
        value(&down(&c).await),
        (&b"v1"[..], Some(FailSafe::Current)),
        "still there"
    );
}

#[test]
fn the_builder_names_the_bad_timeout() {
    let b = || RangeCache::builder(Arc::new(LocmemBackend::new()));
    let setting = |r: Result<RangeCache>| match r {
        Err(Error::Setting { setting, .. }) => setting,
        other => panic!("{other:?}"),
    };
    let ms = Duration::from_millis;
    assert_eq!(
        setting(b().soft_timeout(ms(50)).build()),
        "soft_timeout",
        "needs fail-safe"
    );
    assert_eq!(
        setting(
            b().fail_safe(ms(1000))
                .soft_timeout(ms(50))
                .hard_timeout(ms(50))
                .build()
        ),
        "soft_timeout"
    );
    assert_eq!(setting(b().hard_timeout(Duration::ZERO).build()), "hard_timeout");
    assert_eq!(setting(b().fail_safe(Duration::ZERO).build()), "fail_safe");
    b().fail_safe(ms(1000))
        .soft_timeout(ms(50))
        .hard_timeout(ms(500))
        .build()
        .unwrap();
}

/// The `metrics` facade counts fail-safe answers by kind, failed reads
/// and timeouts, under the documented names.
#[tokio::test]
async fn fail_safe_reaches_the_installed_recorder() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let manual = ManualClock::at_unix_millis(SEED_DAY_UNIX_MILLIS);
    let c = metrics::with_local_recorder(&recorder, || {
        RangeCache::builder(Arc::new(LocmemBackend::new()))
            .name("feeds")
            .clock(Arc::new(manual.clone()))
            .ttl(TTL)
            .fail_safe(Duration::from_secs(600))
            .build()
            .unwrap()
    });
    ok(&c, b"v1").await.unwrap();
    manual.advance(TTL + Duration::from_secs(1));
    down(&c).await.unwrap();
    c.invalidate(&change()).await.unwrap();
    down(&c).await.unwrap();
    c.fetch(&october_view("cal:9"), || async { Err::<Bytes, _>("db down") })
        .await
        .unwrap_err();
    let counters: std::collections::BTreeMap<String, u64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            match value {
                DebugValue::Counter(n) => Some((format!("{}{{{}}}", key.name(), labels.join(",")), n)),
                _ => None,
            }
        })
        .collect();
    let at = |name: &str| counters.get(name).copied();
    assert_eq!(
        at("range_cache_fail_safe_total{cache=feeds,kind=current,strategy=stamped}"),
        Some(1),
        "{counters:#?}"
    );
    assert_eq!(
        at("range_cache_fail_safe_total{cache=feeds,kind=stale,strategy=stamped}"),
        Some(1)
    );
    assert_eq!(
        at("range_cache_failed_reads_total{cache=feeds,strategy=stamped}"),
        Some(1)
    );
    assert_eq!(
        at("range_cache_load_errors_total{cache=feeds,strategy=stamped}"),
        Some(3)
    );
    assert_eq!(
        at("range_cache_load_timeouts_total{cache=feeds,strategy=stamped}"),
        Some(0)
    );
}
