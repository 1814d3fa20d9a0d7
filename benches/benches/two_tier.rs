//! Hit latency of two tiers against L2 alone, on a Redis server this suite
//! starts (`stamped`, a month view of one calendar, one task, subjects
//! alternating round by round, the median round reported; see `common`):
//!
//! | group | `baseline` | `two-tier` | `two-tier+backplane` | `two-tier+tracking` |
//! |---|---|---|---|---|
//! | `two_tier/hit/8KiB` (the feed), `…/64KiB`, `…/512KiB` | `RangeCache` on Redis: one `MGET` of the generation and the whole entry per hit | [`TwoTier`] over locmem + Redis, no backplane: one `GET` of the generation (a few bytes); the entry comes from L1 | with a [`RedisBackplane`]: the generation is known in-process, no round trip | with a [`RedisTracker`] (Redis client tracking): the generation is tracked, no round trip |
//!
//! Goals (checked in BENCHMARKS.md on the 8 KiB group): ≥ 5× faster than L2
//! alone with the backplane, ≥ 1.5× without (issue 18); ≥ 50× with
//! tracking (issue 28). Every result's
//! detail gives the L2 bytes each variant read per hit, the transfer two
//! tiers save; the larger feeds show how the gain without a backplane
//! grows once moving the feed costs a noticeable part of a round trip
//! (on loopback it costs little).
//!
//! Last, it measures how long Redis takes to deliver an invalidation on
//! loopback (from sending a `SET` of a tracked key on one connection until
//! the push arrives on the tracking connection, an upper bound on the
//! staleness window tracking leaves), and prints the percentiles: what the
//! simulator's default `tracking` latency stands for.
#![allow(missing_docs, clippy::print_stderr)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use backend_locmem::LocmemBackend;
use backend_redis::{RedisBackend, RedisBackplane, RedisTracker};
use cache_core::aside::RangeCache;
use cache_core::strategy::by_name;
use cache_core::tier::TwoTier;
use cache_core::CacheOptions;
use cache_core::{Backend, Bytes, Scope, TimeRange, View};
use cache_testkit::redis::RedisServer;
use chrono::DateTime;
use common::{measure, measure_time, record_rounds, rounds};

const SUITE: &str = "two_tier";

/// Feed sizes: a month of a busy calendar is 5–10 KB of JSON (the goals'
/// size); the larger ones are a year of it, or a dashboard.
const FEEDS: [(&str, usize); 3] = [("8KiB", 8 * 1024), ("64KiB", 64 * 1024), ("512KiB", 512 * 1024)];

fn view(calendar: usize) -> View {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    View::new(
        [Scope::new(format!("cal:{calendar}")).unwrap()],
        TimeRange::new(at("2025-09-29T00:00:00+00:00"), at("2025-11-10T00:00:00+00:00")).unwrap(),
    )
    .unwrap()
}

/// One subject: a cache over some backend, and the tier behind it (none
/// for L2 alone).
struct Subject {
    name: &'static str,
    cache: Arc<RangeCache>,
    tier: Option<TwoTier>,
}

fn main() {
    let rt = common::runtime();
    rt.block_on(suite());
}

async fn suite() {
    let redis = RedisServer::new().expect("starting redis-server (install it with .ci/install-deps)");
    let l2: Arc<dyn Backend> = Arc::new(RedisBackend::connect(redis.url()).await.unwrap());
    let options = CacheOptions::default().with_seed(7).with_namespace("bench-tier");
    let plain = TwoTier::builder(Arc::new(LocmemBackend::new()), l2.clone())
        .build()
        .unwrap();
    let bus = RedisBackplane::connect(&redis.url(), "bench-tier").await.unwrap();
    let with_bus = TwoTier::builder(Arc::new(LocmemBackend::new()), l2.clone())
        .backplane(Arc::new(bus))
        .build()
        .unwrap();
    let tracker = RedisTracker::connect(&redis.url()).await.unwrap();
    let tracked = TwoTier::builder(Arc::new(LocmemBackend::new()), l2.clone())
        .tracking(Arc::new(tracker))
        .build()
        .unwrap();
    while !with_bus.known().unwrap().is_subscribed() || !tracked.known().unwrap().is_connected(0) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cache = |b: Arc<dyn Backend>| {
        Arc::new(
            RangeCache::builder(b)
                .options(options.clone())
                .strategy("stamped")
                .build()
                .unwrap(),
        )
    };
    let subjects = [
        Subject {
            name: "baseline",
            cache: cache(l2.clone()),
            tier: None,
        },
        Subject {
            name: "two-tier",
            cache: cache(Arc::new(plain.clone())),
            tier: Some(plain),
        },
        Subject {
            name: "two-tier+backplane",
            cache: cache(Arc::new(with_bus.clone())),
            tier: Some(with_bus),
        },
        Subject {
            name: "two-tier+tracking",
            cache: cache(Arc::new(tracked.clone())),
            tier: Some(tracked),
        },
    ];
    for (calendar, (label, size)) in FEEDS.into_iter().enumerate() {
        let view = view(calendar);
        let feed = Bytes::from(vec![b'x'; size]);
        for s in &subjects {
            let f = feed.clone();
            s.cache
                .get_or_load(&view, || async { Ok::<_, std::io::Error>(f) })
                .await
                .unwrap();
            // A few hits, so every tier holds the entry in L1 and the
            // backplane and tracking variants have learnt the generation.
            for _ in 0..3 {
                hit(&s.cache, &view, size).await;
            }
        }
        let mut rates = vec![Vec::new(); subjects.len()];
        let mut bytes = vec![(0u64, 0u64); subjects.len()];
        for _ in 0..rounds() {
            for (i, s) in subjects.iter().enumerate() {
                let before = s.tier.as_ref().map(TwoTier::stats);
                let (c, v) = (s.cache.clone(), view.clone());
                rates[i].push(
                    measure(1, measure_time(), move |_, _| {
                        let (c, v) = (c.clone(), v.clone());
                        async move { hit(&c, &v, size).await }
                    })
                    .await,
                );
                if let (Some(t), Some(b)) = (&s.tier, before) {
                    let a = t.stats();
                    bytes[i].0 += a.l2_bytes_read - b.l2_bytes_read;
                    bytes[i].1 += a.reads - b.reads;
                }
            }
        }
        let group = format!("{SUITE}/hit/{label}");
        for (i, s) in subjects.iter().enumerate() {
            let per_hit = match s.tier {
                Some(_) => bytes[i].0 as f64 / bytes[i].1.max(1) as f64,
                // L2 alone reads the generation and the stored entry.
                None => l2_bytes_per_hit(&l2, &options, &view).await,
            };
            let what = match s.name {
                "baseline" => "a stamped hit on Redis alone",
                "two-tier" => "a stamped hit on TwoTier(locmem + Redis), no backplane",
                "two-tier+tracking" => "a stamped hit on TwoTier(locmem + Redis) with Redis client tracking",
                _ => "a stamped hit on TwoTier(locmem + Redis) with a Redis pub/sub backplane",
            };
            record_rounds(
                SUITE,
                &group,
                s.name,
                &rates[i],
                &format!("{what}, {label} feed, L2 bytes per hit {per_hit:.0}, 1 task"),
            );
        }
    }
    delivery(&redis.url()).await;
    drop(redis);
}

/// Times invalidations on loopback: a RESP3 connection tracks a key (a
/// `GET`), another sets it, and the time from sending the `SET` to the
/// push reaching the tracking connection's handler is one sample.
async fn delivery(url: &str) {
    use redis::{AsyncConnectionConfig, PushInfo, PushKind};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::time::Instant>();
    let config = AsyncConnectionConfig::new().set_push_sender(move |p: PushInfo| {
        if p.kind == PushKind::Invalidate {
            let _ = tx.send(std::time::Instant::now());
        }
        Ok::<(), std::convert::Infallible>(())
    });
    let client = redis::Client::open(format!("{url}?protocol=resp3")).unwrap();
    let mut tracking = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .query_async::<()>(&mut tracking)
        .await
        .unwrap();
    let mut writer = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let samples = if common::quick() { 200 } else { 5_000 };
    let mut us = Vec::with_capacity(samples);
    for i in 0..samples {
        let _: Option<String> = redis::cmd("GET")
            .arg("bench:tracked")
            .query_async(&mut tracking)
            .await
            .unwrap();
        let sent = std::time::Instant::now();
        let () = redis::cmd("SET")
            .arg("bench:tracked")
            .arg(i)
            .query_async(&mut writer)
            .await
            .unwrap();
        let arrived = rx.recv().await.unwrap();
        us.push(arrived.saturating_duration_since(sent).as_secs_f64() * 1e6);
    }
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{SUITE}: invalidation delivery on loopback, {samples} samples: p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

async fn hit(cache: &RangeCache, view: &View, size: usize) {
    let got = cache
        .get_or_load(view, || async { Err(std::io::Error::other("a filled view must hit")) })
        .await
        .unwrap();
    assert_eq!(got.len(), size);
}

/// What one hit on L2 alone reads: `stamped`'s generation and its entry
/// (the keys as in `cache_core::strategy::stamped`).
async fn l2_bytes_per_hit(l2: &Arc<dyn Backend>, options: &CacheOptions, view: &View) -> f64 {
    let strategy = by_name("stamped", options).unwrap();
    let mut keys = strategy.control_keys(view);
    let plan = strategy.plan_read(&LocmemBackend::new(), view).await.unwrap();
    keys.push(plan.key);
    let values = l2.get_many(&keys).await.unwrap();
    values.iter().flatten().map(Bytes::len).sum::<usize>() as f64
}
