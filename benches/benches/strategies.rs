//! Per-operation cost of every invalidation strategy on every backend.
//!
//! - `strategy/read/<backend>`: the application's read path of a hit,
//!   `RangeCache::get_or_load` on a filled view (the strategy's plan, its
//!   generation fetches, the entry's `get` unless the plan read it, the
//!   envelope check), for a month view of one calendar; `<name>-2scopes`
//!   for a view over two calendars; `stamped-buckets` for `stamped` with a
//!   generation per (calendar, month). `baseline` is a bare `get` of a stored
//!   value of the same size: the floor every strategy adds its round trips
//!   to.
//! - `strategy/write/<backend>`: `invalidate` for a one-day change of that
//!   calendar; `stamped-fenced` is a fenced write (`begin_write` +
//!   `end_write`). `baseline` is a single `delete`: one round trip.
//! - `redis-cluster`: a three-master cluster, `stamped` and `versioned`
//!   only, on one calendar and on two (whose keys sit in different slots).
//!
//! A ratio below 1 is the price of the strategy relative to that floor (for
//! `versioned` on a network backend about 0.5×: two round trips instead of
//! one). The strategies' round trips are in `cache_core::strategy`'s table;
//! how `invalidate` scales with the number of cached keys is the
//! `invalidation_curve` suite. Backends: locmem, and the Redis and Memcached
//! servers this suite starts.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use backend_locmem::LocmemBackend;
use backend_memcached::{MemcachedBackend, MemcachedOptions};
use backend_redis::RedisBackend;
use cache_core::aside::RangeCache;
use cache_core::strategy::{by_name, StampGranularity, NAMES};
use cache_core::CacheOptions;
use cache_core::{Backend, Bytes, Change, Key, Scope, TimeRange, View};
use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::redis::{RedisCluster, RedisServer};
use chrono::DateTime;
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

fn range(start: &str, end: &str) -> TimeRange {
    TimeRange::new(
        DateTime::parse_from_rfc3339(start).unwrap(),
        DateTime::parse_from_rfc3339(end).unwrap(),
    )
    .unwrap()
}

/// October 2025's month grid (firstDay = 1), as FullCalendar requests it.
fn view() -> View {
    View::new(
        [Scope::new("cal:7").unwrap()],
        range("2025-09-29T00:00:00+00:00", "2025-11-10T00:00:00+00:00"),
    )
    .unwrap()
}

/// An item created on 14 October.
fn change() -> Change {
    Change::new(
        Scope::new("cal:7").unwrap(),
        [range("2025-10-14T09:00:00+00:00", "2025-10-14T10:00:00+00:00")],
    )
    .unwrap()
}

/// The cases a Redis Cluster runs: the one-round-trip read on one slot and
/// across two (the 2-scope view's calendars hash to different slots, so the
/// multi-get is split by slot and the groups sent concurrently), against
/// `versioned`'s.
const CLUSTER_CASES: &[&str] = &["stamped", "stamped-2scopes", "versioned", "versioned-2scopes"];

fn bench_backend(c: &mut Criterion, rt: &Runtime, label: &str, backend: Arc<dyn Backend>, only: Option<&[&str]>) {
    let options = CacheOptions::default().with_seed(7).with_namespace("bench");
    let value = Bytes::from(vec![b'x'; 2048]);
    let (view, change) = (view(), change());
    let floor_key = Key::new("bench:floor:cal-7").unwrap();
    rt.block_on(backend.set(&floor_key, value.clone(), Some(Duration::from_secs(300))))
        .unwrap();

    let mut g = c.benchmark_group(format!("strategy/read/{label}"));
    g.bench_function("baseline", |b| {
        b.to_async(rt)
            .iter(|| async { backend.get(&floor_key).await.unwrap().unwrap() })
    });
    let two_scopes = View::new(
        [Scope::new("cal:7").unwrap(), Scope::new("team:1").unwrap()],
        view.range,
    )
    .unwrap();
    let buckets = options.clone().with_stamp_granularity(StampGranularity::Bucket);
    let mut cases: Vec<(String, &str, &CacheOptions, &View)> =
        NAMES.iter().map(|n| ((*n).to_owned(), *n, &options, &view)).collect();
    for name in ["versioned", "stamped"] {
        cases.push((format!("{name}-2scopes"), name, &options, &two_scopes));
    }
    // One generation per (scope, month): the October grid spans 3 months.
    cases.push(("stamped-buckets".to_owned(), "stamped", &buckets, &view));
    cases.retain(|(case, ..)| only.is_none_or(|o| o.contains(&case.as_str())));
    for (case, name, opts, v) in cases {
        let cache = RangeCache::builder(backend.clone())
            .options(opts.clone())
            .strategy(name)
            .build()
            .unwrap();
        // Fill the view once, so every measured read is a hit.
        let filled = value.clone();
        rt.block_on(cache.get_or_load(v, || async { Ok::<_, std::io::Error>(filled) }))
            .unwrap();
        g.bench_function(case.as_str(), |b| {
            b.to_async(rt).iter(|| async {
                cache
                    .get_or_load(v, || async { panic!("a filled view must hit") })
                    .await
                    .map_err(|e: cache_core::LoadError<std::io::Error>| e)
                    .unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("strategy/write/{label}"));
    g.bench_function("baseline", |b| {
        b.to_async(rt)
            .iter(|| async { backend.delete(&floor_key).await.unwrap() })
    });
    for name in NAMES.iter().filter(|n| only.is_none_or(|o| o.contains(n))) {
        let strategy = by_name(name, &options).unwrap();
        g.bench_function(*name, |b| {
            b.to_async(rt)
                .iter(|| async { strategy.invalidate(&*backend, &change).await.unwrap() })
        });
    }
    // A fenced write: `begin_write` before the commit, `end_write` after.
    let stamped = by_name("stamped", &options).unwrap();
    g.bench_function("stamped-fenced", |b| {
        b.to_async(rt).iter(|| async {
            stamped.begin_write(&*backend, &change).await.unwrap();
            stamped.end_write(&*backend, &change).await.unwrap()
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    bench_backend(c, &rt, "locmem", Arc::new(LocmemBackend::new()), None);

    let redis = RedisServer::new().expect("starting redis-server (install it with .ci/install-deps)");
    let backend = rt.block_on(RedisBackend::connect(redis.url())).unwrap();
    bench_backend(c, &rt, "redis", Arc::new(backend), None);
    drop(redis);

    let cluster = RedisCluster::new().expect("starting a Redis Cluster (install redis-server with .ci/install-deps)");
    let backend = rt.block_on(RedisBackend::connect(cluster.url())).unwrap();
    bench_backend(c, &rt, "redis-cluster", Arc::new(backend), Some(CLUSTER_CASES));
    drop(cluster);

    let memcached = MemcachedServer::spawn(&MemcachedConfig::default().threads(4))
        .expect("starting memcached (install it with .ci/install-deps)");
    let backend = rt
        .block_on(MemcachedBackend::connect(MemcachedOptions::new([memcached
            .addr()
            .to_string()])))
        .unwrap();
    bench_backend(c, &rt, "memcached", Arc::new(backend), None);
    drop(memcached);
}

// 16 figures per backend: shorter than criterion's defaults (3 s + 5 s) keeps
// the full run within its ~20 minutes; the per-call costs here are µs-scale,
// so 2 s still collects thousands of iterations per sample set.
criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
