//! Hit latency of two tiers against L2 alone, on a Redis server this suite
//! starts (`stamped`, a month view of one calendar, an 8 KiB feed):
//!
//! - `two_tier/hit/l2-only`: `RangeCache` on Redis: one `MGET` of the
//!   generation and the whole entry per hit.
//! - `two_tier/hit/two-tier`: [`TwoTier`] over locmem + Redis, no
//!   backplane: one `GET` of the generation (a few bytes); the entry comes
//!   from L1.
//! - `two_tier/hit/two-tier+backplane`: with a [`RedisBackplane`]: the
//!   generation is known in-process, so a hit makes no round trip.
//!
//! Goals (issue 18): ≥ 5× faster than `l2-only` with the backplane, ≥ 1.5×
//! without. After the groups the suite prints the L2 bytes each variant
//! read per hit (`bytes per hit: …`), the transfer two tiers save.
#![allow(missing_docs, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use backend_locmem::LocmemBackend;
use backend_redis::{RedisBackend, RedisBackplane};
use cache_core::aside::{RangeCache, RangeCacheOptions};
use cache_core::strategy::{by_name, StrategyOptions};
use cache_core::testkit::redis::RedisServer;
use cache_core::tier::TwoTier;
use cache_core::{Backend, Bytes, Scope, TimeRange, View};
use chrono::DateTime;
use criterion::{criterion_group, criterion_main, Criterion};

/// Feed size: a month of a busy calendar is 5–10 KB of JSON.
const FEED_BYTES: usize = 8 * 1024;

fn view() -> View {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
    View::new(
        [Scope::new("cal:7").unwrap()],
        TimeRange::new(at("2025-09-29T00:00:00+00:00"), at("2025-11-10T00:00:00+00:00")).unwrap(),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisServer::new().expect("starting redis-server (install it with .ci/install-deps)");
    let l2: Arc<dyn Backend> = Arc::new(rt.block_on(RedisBackend::connect(redis.url())).unwrap());
    let options = StrategyOptions::default().with_seed(7).with_namespace("bench-tier");
    let view = view();
    let value = Bytes::from(vec![b'x'; FEED_BYTES]);

    let plain = TwoTier::builder(Arc::new(LocmemBackend::new()), l2.clone())
        .build()
        .unwrap();
    let bus = rt
        .block_on(RedisBackplane::connect(&redis.url(), "bench-tier"))
        .unwrap();
    let with_bus = rt.block_on(async {
        let t = TwoTier::builder(Arc::new(LocmemBackend::new()), l2.clone())
            .backplane(Arc::new(bus))
            .build()
            .unwrap();
        while !t.known().unwrap().is_subscribed() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        t
    });
    let cases: Vec<(&str, Arc<dyn Backend>, Option<&TwoTier>)> = vec![
        ("l2-only", l2.clone(), None),
        ("two-tier", Arc::new(plain.clone()), Some(&plain)),
        ("two-tier+backplane", Arc::new(with_bus.clone()), Some(&with_bus)),
    ];
    let mut bytes = Vec::new();
    let mut g = c.benchmark_group("two_tier/hit");
    for (name, backend, tier) in cases {
        let cache = RangeCache::new(
            backend,
            by_name("stamped", &options).unwrap(),
            RangeCacheOptions::default(),
        );
        let filled = value.clone();
        rt.block_on(async {
            cache
                .get_or_load(&view, || async { Ok::<_, std::io::Error>(filled) })
                .await
                .unwrap();
            // A few hits, so the backplane variant has learnt the generation.
            for _ in 0..3 {
                cache
                    .get_or_load(&view, || async { Ok::<_, std::io::Error>(Bytes::new()) })
                    .await
                    .unwrap();
            }
        });
        let before = tier.map(TwoTier::stats);
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                cache
                    .get_or_load(&view, || async { panic!("a filled view must hit") })
                    .await
                    .map_err(|e: std::io::Error| e)
                    .unwrap()
            })
        });
        let per_hit = match (tier, before) {
            (Some(t), Some(b)) => {
                let a = t.stats();
                (a.l2_bytes_read - b.l2_bytes_read) as f64 / (a.reads - b.reads).max(1) as f64
            }
            // L2 alone: every hit reads the generation and the stored entry.
            _ => {
                let key_bytes = rt
                    .block_on(cache.backend().get_many(&stored_keys(&options, &view)))
                    .unwrap()
                    .iter()
                    .flatten()
                    .map(Bytes::len)
                    .sum::<usize>();
                key_bytes as f64
            }
        };
        bytes.push((name, per_hit));
    }
    g.finish();
    let base = bytes.first().map(|b| b.1).unwrap_or(1.0);
    let shown: Vec<String> = bytes
        .iter()
        .map(|(n, b)| format!("{n} {b:.0} B ({:.2}% of l2-only)", 100.0 * b / base))
        .collect();
    eprintln!("bytes per hit: {}", shown.join(", "));
    drop(redis);
}

/// The keys `stamped` reads for `view`: its generation and its entry (the
/// names as in `cache_core::strategy::stamped`).
fn stored_keys(options: &StrategyOptions, view: &View) -> Vec<cache_core::Key> {
    let strategy = by_name("stamped", options).unwrap();
    let mut keys = strategy.control_keys(view);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let scratch = LocmemBackend::new();
    let plan = rt.block_on(strategy.plan_read(&scratch, view)).unwrap();
    keys.push(plan.key);
    keys
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
