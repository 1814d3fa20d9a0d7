//! How the cost of one `invalidate` grows with the number of cached keys, for
//! `versioned`, `bucketed` and `wildcard`, on locmem and Redis: the curve
//! that shows O(1) against O(N) and where `wildcard` stops being acceptable.
//!
//! For each size N (1k, 10k, 100k, 1M; `--quick`: 1k only) and shape:
//!
//! - `scope`: N views of the changed calendar (one month grid, N filter
//!   values), so a prefix deletion has N keys to delete;
//! - `keyspace`: N views over N/100 calendars, so the changed calendar holds
//!   100 and only the rest of the keyspace grows (what a Redis SCAN walks).
//!
//! Each point fills an empty store with the keys the strategy's own
//! `plan_read` derives (stored with `set_many`, which is what `store` does
//! for these single-scope views on backends with prefix deletion), then
//! applies the change: an item moved from 14 October to 3 November, which
//! touches 2 month buckets.
//! Measured per invalidation: wall time, backend calls and keys
//! (`Instrumented`), and on Redis the commands the server processed.
//!
//! `versioned` and `bucketed` leave the keyspace as it was (old entries
//! become unreachable, not deleted), so they are invalidated 20 times per
//! fill and averaged; `wildcard` deletes what it measures, so each of its
//! measurements needs a fresh fill (3 for N ≤ 10k, the median is kept; 1
//! above). Results: `target/bench-results/curves/invalidation_curve.jsonl`
//! (rendered as a table by bench-report) and LoadResult lines (invalidations
//! per second) in `target/bench-results/invalidation_curve.jsonl`.
//!
//! `CURVE_ONLY=redis/keyspace` (a prefix of backend/shape/strategy) runs a
//! subset. Memcached is left out: it has no prefix deletion, and `wildcard`'s
//! key index there holds at most `index_cap` (1000) keys per scope.
#![allow(missing_docs, clippy::print_stderr)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_locmem::LocmemBackend;
use backend_redis::RedisBackend;
use benches::CurvePoint;
use cache_core::strategy::{by_name, Strategy};
use cache_core::CacheOptions;
use cache_core::{Backend, Bytes, Change, Instrumented, Key, Scope, TimeRange, View};
use cache_testkit::redis::{command, RedisServer};
use chrono::DateTime;
use futures::{StreamExt, TryStreamExt};

const SUITE: &str = "invalidation_curve";
const STRATEGIES: [&str; 3] = ["versioned", "bucketed", "wildcard"];
/// Keys per scope in the `keyspace` shape.
const PER_SCOPE: u64 = 100;
/// Buckets the change touches (October and November).
const BUCKETS_TOUCHED: u64 = 2;
/// Entries written per `set_many` while filling.
const FILL_BATCH: usize = 1000;

fn range(start: &str, end: &str) -> TimeRange {
    TimeRange::new(
        DateTime::parse_from_rfc3339(start).unwrap(),
        DateTime::parse_from_rfc3339(end).unwrap(),
    )
    .unwrap()
}

fn scope(i: u64) -> Scope {
    Scope::new(format!("cal:{i}")).unwrap()
}

/// The `i`-th view of the fill: October 2025's month grid of its calendar,
/// with a filter value that makes its key distinct.
fn view(shape: Shape, i: u64) -> View {
    let (cal, filter) = match shape {
        Shape::Scope => (0, i),
        Shape::Keyspace => (i / PER_SCOPE, i % PER_SCOPE),
    };
    View::new(
        [scope(cal)],
        range("2025-09-29T00:00:00+00:00", "2025-11-10T00:00:00+00:00"),
    )
    .unwrap()
    .with_param("work_type", filter.to_string())
}

/// Calendar 0's item moved from 14 October to 3 November (`r` shifts the
/// hour so that repeated changes differ; the buckets stay the same).
fn change(r: u64) -> Change {
    let h = r % 20;
    Change::new(
        scope(0),
        [
            range(
                &format!("2025-10-14T{h:02}:00:00+00:00"),
                &format!("2025-10-14T{:02}:00:00+00:00", h + 1),
            ),
            range(
                &format!("2025-11-03T{h:02}:00:00+00:00"),
                &format!("2025-11-03T{:02}:00:00+00:00", h + 1),
            ),
        ],
    )
    .unwrap()
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Scope,
    Keyspace,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Shape::Scope => "scope",
            Shape::Keyspace => "keyspace",
        }
    }
}

/// A backend under test and how to empty it between points.
enum Target {
    /// A fresh store per point (dropping the old one frees its memory).
    Locmem,
    /// One server, flushed between points.
    Redis {
        server: RedisServer,
        backend: Arc<dyn Backend>,
    },
}

impl Target {
    fn label(&self) -> &'static str {
        match self {
            Target::Locmem => "locmem",
            Target::Redis { .. } => "redis",
        }
    }

    /// An empty backend.
    fn fresh(&self) -> Arc<dyn Backend> {
        match self {
            // 1M entries of ~100-byte keys and 64-byte values need more than
            // the default 256 MiB; nothing may be evicted during a point.
            Target::Locmem => Arc::new(LocmemBackend::builder().max_capacity_bytes(4 << 30).build()),
            Target::Redis { server, backend } => {
                command(server.port(), &["FLUSHALL"]).expect("FLUSHALL");
                backend.clone()
            }
        }
    }

    /// Plans derived at once while filling. On Redis each plan may fetch
    /// generations (one round trip), so 64 in flight keep the multiplexed
    /// connection busy. locmem gains nothing from concurrency on this
    /// single-threaded runtime: its operations finish in their first poll.
    /// (An earlier locmem, on moka's async cache with async stripe locks,
    /// was once seen to stall here with 64 `bucketed` plans in flight, the
    /// consumer awaiting `set_many` while paused plans might hold stripes; it
    /// did not reproduce since, and the current one holds no lock across an
    /// `.await`, so it cannot.)
    fn fill_concurrency(&self) -> usize {
        match self {
            Target::Locmem => 1,
            Target::Redis { .. } => 64,
        }
    }

    /// Commands the server has processed so far (Redis only).
    fn server_commands(&self) -> Option<u64> {
        let Target::Redis { server, .. } = self else {
            return None;
        };
        let info = command(server.port(), &["INFO", "stats"]).expect("INFO stats");
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Stores the `n` views of `shape` under the keys `strategy` plans for them.
async fn fill(backend: &dyn Backend, strategy: &dyn Strategy, shape: Shape, n: u64, concurrency: usize) {
    let value = Bytes::from(vec![b'x'; 64]);
    let ttl = Some(Duration::from_secs(3600));
    let mut plans = futures::stream::iter(0..n)
        .map(|i| async move {
            let v = view(shape, i);
            strategy.plan_read(backend, &v).await.map(|p| p.key)
        })
        .buffered(concurrency)
        .try_chunks(FILL_BATCH);
    while let Some(keys) = plans.next().await {
        let keys: Vec<Key> = keys.expect("plan_read during fill");
        let entries: Vec<(Key, Bytes)> = keys.into_iter().map(|k| (k, value.clone())).collect();
        backend.set_many(&entries, ttl).await.expect("set_many during fill");
    }
}

struct Sample {
    nanos: f64,
    calls: u64,
    keys: u64,
    server: Option<u64>,
}

/// Runs `reps` invalidations on a filled `backend`; totals.
async fn invalidate(
    target: &Target,
    backend: Arc<dyn Backend>,
    strategy: &dyn Strategy,
    reps: u64,
    calibration: u64,
) -> Sample {
    let counted = Instrumented::new(backend);
    let before = target.server_commands();
    let start = Instant::now();
    for r in 0..reps {
        strategy.invalidate(&counted, &change(r)).await.expect("invalidate");
    }
    let nanos = start.elapsed().as_nanos() as f64;
    let after = target.server_commands();
    let snap = counted.stats().snapshot();
    Sample {
        nanos,
        calls: snap.total_calls(),
        keys: snap.total_keys(),
        server: before
            .zip(after)
            .map(|(b, a)| a.saturating_sub(b).saturating_sub(calibration)),
    }
}

async fn point(target: &Target, name: &str, shape: Shape, n: u64, calibration: u64) -> CurvePoint {
    let options = CacheOptions::default().with_seed(7).with_namespace("curve");
    let strategy = by_name(name, &options).unwrap();
    let fill_start = Instant::now();
    let (reps, samples) = if name == "wildcard" {
        let fills = if common::quick() || n > 10_000 { 1 } else { 3 };
        let mut samples = Vec::new();
        for _ in 0..fills {
            let backend = target.fresh();
            fill(&*backend, &*strategy, shape, n, target.fill_concurrency()).await;
            // Unmeasured: a prefix deletion that matches nothing. locmem
            // builds its prefix index on its first one (a full scan); an app
            // pays that once per process, not per change.
            backend
                .delete_prefix("curve:warm-up:{none}:")
                .await
                .expect("warm-up delete_prefix");
            samples.push(invalidate(target, backend, &*strategy, 1, calibration).await);
        }
        // The median fill by time; its counts go with it.
        samples.sort_by(|a, b| a.nanos.total_cmp(&b.nanos));
        let mid = samples.swap_remove(samples.len() / 2);
        (1, mid)
    } else {
        let backend = target.fresh();
        fill(&*backend, &*strategy, shape, n, target.fill_concurrency()).await;
        // One unmeasured change first (it leaves the keyspace as it is), so
        // the first measured one does not pay for cold caches after the fill.
        strategy.invalidate(&*backend, &change(99)).await.expect("invalidate");
        let reps = if common::quick() { 5 } else { 20 };
        (reps, invalidate(target, backend, &*strategy, reps, calibration).await)
    };
    let r = reps as f64;
    let p = CurvePoint {
        backend: target.label().to_owned(),
        strategy: name.to_owned(),
        shape: shape.label().to_owned(),
        keys: n,
        reps,
        nanos: samples.nanos / r,
        calls: samples.calls as f64 / r,
        keys_touched: samples.keys as f64 / r,
        server_commands: samples.server.map(|c| c as f64 / r),
        bound: match name {
            "versioned" => Some(1),
            "bucketed" => Some(BUCKETS_TOUCHED),
            _ => None,
        },
    };
    eprintln!(
        "{:<7} {:<9} {:<9} {:>8} keys: {:>10.1} µs, {} calls, {} keys, server commands {:?} (fill + measure {:.2} s)",
        p.backend,
        p.shape,
        p.strategy,
        p.keys,
        p.nanos / 1e3,
        p.calls,
        p.keys_touched,
        p.server_commands,
        fill_start.elapsed().as_secs_f64()
    );
    p
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sizes: &[u64] = if common::quick() {
        &[1_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000]
    };
    let server = RedisServer::new().expect("starting redis-server (install it with .ci/install-deps)");
    let backend: Arc<dyn Backend> = Arc::new(rt.block_on(RedisBackend::connect(server.url())).expect("RedisBackend"));
    let targets = [Target::Locmem, Target::Redis { server, backend }];
    let target_dir = common::target_dir();
    // `CURVE_ONLY=redis/keyspace/wildcard` (any prefix of
    // backend/shape/strategy) runs a subset, to look at one curve.
    let only = std::env::var("CURVE_ONLY").unwrap_or_default();
    for target in &targets {
        // Two INFO calls with nothing between: what the measuring itself
        // adds to the server's count.
        let calibration = match (target.server_commands(), target.server_commands()) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        // Load the Redis backend's `incr` script now, so no point pays (and
        // counts) the one-time SCRIPT LOAD after a NOSCRIPT reply.
        rt.block_on(async {
            let backend = target.fresh();
            let k = Key::new("curve:warm-up").unwrap();
            backend.set(&k, Bytes::from_static(b"0"), None).await.unwrap();
            backend.incr(&k, 1).await.unwrap();
        });
        for shape in [Shape::Scope, Shape::Keyspace] {
            for name in STRATEGIES {
                if !format!("{}/{}/{name}", target.label(), shape.label()).starts_with(&only) {
                    continue;
                }
                for &n in sizes {
                    let p = rt.block_on(point(target, name, shape, n, calibration));
                    p.append(&target_dir, SUITE).expect("writing curve point");
                    common::record(
                        SUITE,
                        &format!("invalidate/{}/{}/{}", p.backend, p.shape, p.strategy),
                        &format!("{} keys", n),
                        1e9 / p.nanos.max(1.0),
                        format!(
                            "{} calls, {} keys touched per invalidation, {} reps",
                            p.calls, p.keys_touched, p.reps
                        ),
                    );
                }
            }
        }
    }
}
