//! Two tiers on a real `redis-server`, independent clients (each its own
//! L2 connection, L1, and Redis pub/sub backplane or tracking connection),
//! as app processes would be:
//! - backplane: a write in one is seen by the others within the bound;
//!   killing one subscriber's connection makes it fall back to L2
//!   generations (it serves no stale data), and it catches up (no round
//!   trip per L1 hit again) once its subscription is back;
//! - tracking (`RedisTracker`): the race between a read and an
//!   invalidation of what it read, `CLIENT KILL` of a tracking connection,
//!   a Redis restart, and a 3-master cluster whose masters are tracked each
//!   on their own.

// The measured numbers are printed for the report (run with --nocapture).
#![allow(clippy::print_stderr)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_locmem::LocmemBackend;
use backend_redis::{RedisBackend, RedisBackplane, RedisTracker};
use cache_core::tier::{KnownGenerations, TrackedValue, Tracker, TwoTier};
use cache_core::{async_trait, Bytes, Change, Key, RangeCache, Scope, TimeRange, View};
use cache_testkit::redis::{command, RedisCluster, RedisServer};
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
    /// With tracking: the tracker (behind the test's [`Held`] gate).
    tracker: Option<Arc<Held>>,
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
    Process {
        tier,
        cache,
        tracker: None,
    }
}

/// A process whose two tiers are kept coherent by Redis client tracking
/// on `url` (one server or a cluster), remaking a dropped tracking
/// connection after `reconnect`.
async fn tracked_process(url: &str, reconnect: Duration) -> Process {
    let l2 = Arc::new(RedisBackend::connect(url).await.unwrap());
    let tracker = Arc::new(Held {
        inner: RedisTracker::connect_with(url, reconnect).await.unwrap(),
        gate: std::sync::Mutex::new(None),
    });
    let tier = TwoTier::builder(Arc::new(LocmemBackend::builder().build()), l2)
        .tracking(tracker.clone())
        .build()
        .unwrap();
    let cache = RangeCache::builder(Arc::new(tier.clone()))
        .strategy("stamped")
        .build()
        .unwrap();
    Process {
        tier,
        cache,
        tracker: Some(tracker),
    }
}

impl Process {
    fn tracker(&self) -> &RedisTracker {
        &self.tracker.as_ref().unwrap().inner
    }

    fn known(&self) -> &KnownGenerations {
        self.tier.known().unwrap()
    }
}

/// A [`RedisTracker`] whose next read, once armed, stops between the
/// server's reply and its return to the two tiers (before they learn what
/// it read), so that a test can change what it read meanwhile.
#[derive(Debug)]
struct Held {
    inner: RedisTracker,
    /// (tell the test the reply is in, wait for the test to let it go).
    gate: std::sync::Mutex<Option<(tokio::sync::oneshot::Sender<()>, tokio::sync::oneshot::Receiver<()>)>>,
}

impl Held {
    /// Arms the gate: returns (the reply is in, let it go).
    fn arm(&self) -> (tokio::sync::oneshot::Receiver<()>, tokio::sync::oneshot::Sender<()>) {
        let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        *self.gate.lock().unwrap() = Some((reached_tx, release_rx));
        (reached_rx, release_tx)
    }
}

#[async_trait]
impl Tracker for Held {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn attach(&self, table: Arc<KnownGenerations>) -> cache_core::Result<()> {
        self.inner.attach(table)
    }
    async fn read(&self, keys: &[Key]) -> cache_core::Result<Option<Vec<TrackedValue>>> {
        let read = self.inner.read(keys).await;
        let gate = self.gate.lock().unwrap().take();
        if let Some((reached, release)) = gate {
            reached.send(()).unwrap();
            release.await.unwrap();
        }
        read
    }
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

/// October 2025's month grid over `scope`, and a write to it.
fn october(scope: &str) -> (View, Change) {
    let range = TimeRange::new(at("2025-09-29T00:00:00+08:00"), at("2025-11-10T00:00:00+08:00")).unwrap();
    (
        View::new([Scope::new(scope).unwrap()], range).unwrap(),
        Change::new(Scope::new(scope).unwrap(), [range]).unwrap(),
    )
}

/// The tracking connection stays up long enough for a test to act while
/// it is down.
const SLOW_RECONNECT: Duration = Duration::from_millis(1_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_never_learns_what_was_invalidated_while_the_read_was_in_flight() {
    let server = RedisServer::new().unwrap();
    let url = server.url();
    let a = tracked_process(&url, SLOW_RECONNECT).await;
    let b = tracked_process(&url, SLOW_RECONNECT).await;
    let (view, change) = october("cal:1");
    let db = Db(AtomicU64::new(1));

    // A holds the entry (v1) and its tracked generation.
    assert_eq!(db.read(&a, &view).await, "v1");
    db.read_until_zero_trip(&a, &view).await;

    // B writes (v2) and reads, refilling L2 with v2 under the new
    // generation; the invalidation makes A forget the generation.
    db.write(&b, &change).await;
    assert_eq!(db.read(&b, &view).await, "v2");
    a.tracker().settle().await.unwrap();

    // A reads: its tracked read of the generation answers, and is held
    // there, before A learns it. Meanwhile B writes again (v3) and the
    // server's invalidation of that generation reaches A.
    let (reached, release) = a.tracker.as_ref().unwrap().arm();
    let before = a.tier.stats();
    let held_read = db.read(&a, &view);
    let meanwhile = async {
        reached.await.unwrap();
        db.write(&b, &change).await;
        a.tracker().settle().await.unwrap();
        release.send(()).unwrap();
    };
    let (served, ()) = tokio::join!(held_read, meanwhile);
    // It began before v3 committed: v2 is what it may serve.
    assert_eq!(served, "v2");
    assert_eq!(
        a.tier.stats().l2_round_trips,
        before.l2_round_trips + 2,
        "generations, then the entry"
    );

    // The generation it read is not trusted: the next read asks L2, sees
    // the new generation and serves v3. Had the held read learnt it, this
    // read would be a zero-trip L1 hit serving v2, stale.
    let before = a.tier.stats();
    assert_eq!(
        db.read(&a, &view).await,
        "v3",
        "a value the server had invalidated was trusted"
    );
    let after = a.tier.stats();
    assert_eq!(after.zero_trip_reads, before.zero_trip_reads);
    assert!(after.l2_round_trips > before.l2_round_trips);
    // And tracking carries on: A hits with no round trip again.
    db.read_until_zero_trip(&a, &view).await;
    assert_eq!(a.tier.stats().tracking_fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracking_connection_reads_l2_until_tracked_again() {
    let server = RedisServer::new().unwrap();
    let url = server.url();
    let a = tracked_process(&url, SLOW_RECONNECT).await;
    let b = tracked_process(&url, SLOW_RECONNECT).await;
    let (view, change) = october("cal:1");
    let db = Db(AtomicU64::new(1));
    for p in [&a, &b] {
        assert_eq!(db.read(p, &view).await, "v1");
        db.read_until_zero_trip(p, &view).await;
    }

    // A write in B is seen by A within the bound (the invalidation).
    db.write(&b, &change).await;
    let written = Instant::now();
    while db.read(&a, &view).await != db.now() {
        assert!(written.elapsed() < BOUND, "not seen within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eprintln!("write seen by A after {:?}", written.elapsed());

    // Kill A's tracking connection.
    let conns = a.tracker().connections();
    assert_eq!(conns.len(), 1, "{conns:?}");
    let (source, _, id) = conns[0].clone();
    command(server.port(), &["CLIENT", "KILL", "ID", &id.to_string()]).unwrap();
    wait_until("A notices the drop", || !a.known().is_connected(source)).await;
    assert_eq!(a.tier.stats().resyncs, 1);

    // While A is not tracked, B writes: A reads L2 (untracked) and serves
    // the new value at once, never its L1 copy under forgotten stamps.
    db.write(&b, &change).await;
    let before = a.tier.stats();
    assert_eq!(db.read(&a, &view).await, db.now(), "A must not serve stale data");
    assert_eq!(db.read(&a, &view).await, db.now());
    let after = a.tier.stats();
    assert_eq!(
        after.zero_trip_reads, before.zero_trip_reads,
        "nothing served on untracked state"
    );
    assert!(after.tracking_fallbacks >= before.tracking_fallbacks + 2, "{after:?}");
    assert!(!a.known().is_connected(source), "still down: the test read in the gap");

    // Tracking comes back on a new connection; A hits with no round trip
    // again and sees B's next write.
    wait_until("A tracked again", || a.known().is_connected(source)).await;
    assert_ne!(a.tracker().connections()[0].2, id, "a new connection");
    db.read_until_zero_trip(&a, &view).await;
    db.write(&b, &change).await;
    let written = Instant::now();
    while db.read(&a, &view).await != db.now() {
        assert!(written.elapsed() < BOUND, "not seen within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_survives_a_redis_restart_without_stale_reads() {
    let mut server = RedisServer::new().unwrap();
    let url = server.url();
    let a = tracked_process(&url, Duration::from_millis(100)).await;
    let b = tracked_process(&url, Duration::from_millis(100)).await;
    let (view, change) = october("cal:1");
    let db = Db(AtomicU64::new(1));
    for p in [&a, &b] {
        assert_eq!(db.read(p, &view).await, "v1");
        db.read_until_zero_trip(p, &view).await;
    }

    // Redis restarts empty (no persistence): every connection drops and
    // every generation is gone.
    server.stop();
    wait_until("A notices the restart", || !a.known().is_connected(0)).await;
    server.start().unwrap();

    // B writes once its L2 connection is back; A never serves v1 again.
    let restarted = Instant::now();
    loop {
        db.0.fetch_add(1, Ordering::SeqCst);
        if b.cache.invalidate(&change).await.is_ok() {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(10), "B never reconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        match a
            .cache
            .get_or_load(&view, || async {
                Ok::<_, std::convert::Infallible>(Bytes::from(db.now()))
            })
            .await
        {
            Ok(v) => {
                assert_eq!(
                    String::from_utf8(v.to_vec()).unwrap(),
                    db.now(),
                    "stale after a restart"
                );
                break;
            }
            Err(_) => {
                assert!(restarted.elapsed() < Duration::from_secs(10), "A never reconnected");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    wait_until("A tracked again", || a.known().is_connected(0)).await;
    db.read_until_zero_trip(&a, &view).await;
    db.write(&b, &change).await;
    let written = Instant::now();
    while db.read(&a, &view).await != db.now() {
        assert!(written.elapsed() < BOUND, "not seen within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_each_master_is_tracked_on_its_own() {
    let cluster = RedisCluster::new().unwrap();
    let url = cluster.url();
    let a = tracked_process(&url, SLOW_RECONNECT).await;
    let b = tracked_process(&url, SLOW_RECONNECT).await;
    assert_eq!(a.tracker().connections().len(), RedisCluster::MASTERS);
    // Two calendars whose keys live on different masters.
    let source = |n: u32| a.tracker().source_of(&format!("{{cal:{n}}}")).unwrap();
    let x = 1;
    let y = (2..100).find(|n| source(*n) != source(x)).unwrap();
    let (vx, cx) = october(&format!("cal:{x}"));
    let (vy, _) = october(&format!("cal:{y}"));
    let db = Db(AtomicU64::new(1));
    for v in [&vx, &vy] {
        assert_eq!(db.read(&a, v).await, "v1");
        db.read_until_zero_trip(&a, v).await;
    }

    // Kill A's tracking connection to x's master only.
    let (_, addr, id) = a
        .tracker()
        .connections()
        .into_iter()
        .find(|(s, _, _)| *s == source(x))
        .unwrap();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    command(port, &["CLIENT", "KILL", "ID", &id.to_string()]).unwrap();
    wait_until("A notices the drop", || !a.known().is_connected(source(x))).await;
    assert!(a.known().is_connected(source(y)));

    // y's master still vouches for y: a hit with no round trip.
    let before = a.tier.stats();
    assert_eq!(db.read(&a, &vy).await, db.now());
    assert_eq!(
        a.tier.stats().zero_trip_reads,
        before.zero_trip_reads + 1,
        "y is still tracked"
    );
    // x is not tracked: B's write to x is read from L2 at once.
    db.write(&b, &cx).await;
    let before = a.tier.stats();
    assert_eq!(db.read(&a, &vx).await, db.now(), "stale on the untracked master");
    assert!(a.tier.stats().tracking_fallbacks > before.tracking_fallbacks);

    // x's master is tracked again; a write there reaches A.
    wait_until("x tracked again", || a.known().is_connected(source(x))).await;
    db.read_until_zero_trip(&a, &vx).await;
    db.write(&b, &cx).await;
    let written = Instant::now();
    while db.read(&a, &vx).await != db.now() {
        assert!(written.elapsed() < BOUND, "not seen within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
