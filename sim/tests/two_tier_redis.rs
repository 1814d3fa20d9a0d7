//! Two tiers on a real `redis-server`, three independent clients (each its
//! own L2 connection, L1 and Redis pub/sub backplane), as three app
//! processes would be:
//! - a write in one is seen by the others within the bound;
//! - killing one subscriber's connection makes it fall back to L2
//!   generations (it serves no stale data), and it catches up (no round trip
//!   per L1 hit again) once its subscription is back.

// The measured numbers are printed for the report (run with --nocapture).
#![allow(clippy::print_stderr)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_locmem::LocmemBackend;
use backend_redis::{RedisBackend, RedisBackplane};
use cache_core::tier::TwoTier;
use cache_core::{Bytes, Change, RangeCache, Scope, TimeRange, View};
use cache_testkit::redis::{command, RedisServer};
use chrono::{DateTime, FixedOffset};

/// How soon the others must see a write: Redis pub/sub on loopback
/// delivers in well under a millisecond; the bound leaves room for a busy
/// test machine.
const BOUND: Duration = Duration::from_millis(500);
/// How long a dropped subscriber waits before reconnecting: long enough
/// for the test to read while it is down.
const RECONNECT: Duration = Duration::from_millis(1_500);

struct Process {
    tier: TwoTier,
    cache: RangeCache,
}

async fn process(url: &str) -> Process {
    let l2 = Arc::new(RedisBackend::connect(url).await.unwrap());
    let bus = RedisBackplane::connect(url, "feeds-test")
        .await
        .unwrap()
        .with_reconnect_delay(RECONNECT);
    let tier = TwoTier::builder(Arc::new(LocmemBackend::builder().build()), l2)
        .backplane(Arc::new(bus))
        .build()
        .unwrap();
    wait_until("subscribed", || tier.known().unwrap().is_subscribed()).await;
    let cache = RangeCache::builder(Arc::new(tier.clone()))
        .strategy("stamped")
        .build()
        .unwrap();
    Process { tier, cache }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

/// The database: one version number; a feed shows it.
struct Db(AtomicU64);

impl Db {
    async fn read(&self, p: &Process, view: &View) -> String {
        let v = p
            .cache
            .get_or_load(view, || async {
                Ok::<_, std::convert::Infallible>(Bytes::from(format!("v{}", self.0.load(Ordering::SeqCst))))
            })
            .await
            .unwrap();
        String::from_utf8(v.to_vec()).unwrap()
    }

    async fn write(&self, p: &Process, change: &Change) {
        self.0.fetch_add(1, Ordering::SeqCst);
        p.cache.invalidate(change).await.unwrap();
    }

    /// Reads until a read is an L1 hit with no round trip (the notices of
    /// the last write, echoes included, have arrived and the generations
    /// are learnt again); fails after [`BOUND`].
    async fn read_until_zero_trip(&self, p: &Process, view: &View) {
        let start = Instant::now();
        loop {
            let before = p.tier.stats();
            assert_eq!(self.read(p, view).await, self.now());
            let after = p.tier.stats();
            if after.zero_trip_reads == before.zero_trip_reads + 1 {
                assert_eq!(after.l1_hits, before.l1_hits + 1);
                return;
            }
            assert!(
                start.elapsed() < BOUND,
                "no round-trip-free hit within {BOUND:?}: {after:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn now(&self) -> String {
        format!("v{}", self.0.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_stay_coherent_through_a_dropped_subscription() {
    let server = RedisServer::new().unwrap();
    let url = server.url();
    // One after another, so CLIENT LIST's ids (ascending) name them in order.
    let a = process(&url).await;
    let b = process(&url).await;
    let c = process(&url).await;
    let range = TimeRange::new(at("2025-09-29T00:00:00+08:00"), at("2025-11-10T00:00:00+08:00")).unwrap();
    let view = View::new([Scope::new("cal:1").unwrap()], range).unwrap();
    let change = Change::new(Scope::new("cal:1").unwrap(), [range]).unwrap();
    let db = Db(AtomicU64::new(1));

    // Warm: every process reads twice; the second read is an L1 hit
    // with no round trip (generations known through the backplane).
    for p in [&a, &b, &c] {
        assert_eq!(db.read(p, &view).await, "v1");
        db.read_until_zero_trip(p, &view).await;
    }

    // A write in A is seen by B and C within the bound.
    db.write(&a, &change).await;
    let written = Instant::now();
    for p in [&b, &c] {
        loop {
            if db.read(p, &view).await == db.now() {
                break;
            }
            assert!(written.elapsed() < BOUND, "not seen within {BOUND:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    eprintln!("write seen by B and C after {:?}", written.elapsed());

    // Kill B's subscriber connection (the second pub/sub client).
    let list = command(server.port(), &["CLIENT", "LIST", "TYPE", "pubsub"]).unwrap();
    let mut ids: Vec<u64> = list
        .lines()
        .filter_map(|l| l.strip_prefix("id=")?.split(' ').next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), 3, "{list}");
    command(server.port(), &["CLIENT", "KILL", "ID", &ids[1].to_string()]).unwrap();
    wait_until("B notices the drop", || !b.tier.known().unwrap().is_subscribed()).await;
    assert!(a.tier.known().unwrap().is_subscribed() && c.tier.known().unwrap().is_subscribed());

    // While B is deaf, A writes: B falls back to L2 generations and serves
    // the new value at once, never its stale L1 copy.
    db.write(&a, &change).await;
    let before = b.tier.stats();
    assert_eq!(db.read(&b, &view).await, db.now(), "B must not serve stale data");
    assert_eq!(db.read(&b, &view).await, db.now());
    let after = b.tier.stats();
    assert!(after.l2_round_trips >= before.l2_round_trips + 2, "each read asked L2");
    assert_eq!(
        after.zero_trip_reads, before.zero_trip_reads,
        "nothing served on unknown state"
    );
    assert!(
        !b.tier.known().unwrap().is_subscribed(),
        "still down: the test read in the gap"
    );

    // B re-subscribes, catches up, and hits with no round trip again.
    wait_until("B re-subscribed", || b.tier.known().unwrap().is_subscribed()).await;
    db.write(&c, &change).await;
    let written = Instant::now();
    loop {
        if db.read(&b, &view).await == db.now() {
            break;
        }
        assert!(written.elapsed() < BOUND, "B did not catch up within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    db.read_until_zero_trip(&b, &view).await;
    assert_eq!(db.read(&a, &view).await, db.now());
}
