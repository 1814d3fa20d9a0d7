//! Two tiers in the simulator: `stamped` on per-process locmem, on a shared
//! L2 alone, and on `two-tier` with and without a modelled backplane, on
//! `multi-process-locmem` traffic and on `multi-process-two-tier`.
//!
//! The shared L2 here is one in-process locmem store standing in for a
//! server (what `two-tier:…+locmem` uses), so no server is needed; the
//! engine charges every step its modelled latency either way.

// The measured numbers are printed for the report (run with --nocapture).
#![allow(clippy::print_stderr)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use backend_locmem::LocmemBackend;
use cache_core::strategy::by_name;
use cache_core::tier::TierStats;
use cache_core::{async_trait, Backend, Bytes, CacheOptions, Capabilities, Key, ManualClock, Result, Ttl};
use sim::backends::{connect, BackendSpec};
use sim::engine::{run_cell, Cell, Latencies, Metrics};
use sim::scenarios::{
    self, TWO_TIER, TWO_TIER_COMMIT_US, TWO_TIER_OTHER_WRITE_US, TWO_TIER_PROBES_US, TWO_TIER_SECOND_COMMIT_US,
};

/// A shared store that counts the value bytes its reads return: the
/// L2-only baseline's "bytes over the wire".
#[derive(Debug)]
struct CountingL2 {
    inner: LocmemBackend,
    bytes: AtomicU64,
    reads: AtomicU64,
}

#[async_trait]
impl Backend for CountingL2 {
    fn name(&self) -> &str {
        "counting-l2"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        Ok(self.get_many(std::slice::from_ref(key)).await?.pop().flatten())
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        let v = self.inner.get_many(keys).await?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let n: usize = v.iter().flatten().map(Bytes::len).sum();
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(v)
    }
    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.inner.set(key, value, ttl).await
    }
    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        self.inner.set_many(entries, ttl).await
    }
    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.inner.add(key, value, ttl).await
    }
    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        self.inner.incr(key, delta).await
    }
    async fn delete(&self, key: &Key) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }
}

/// What one run measured.
struct Run {
    m: Metrics,
    /// Per-process two-tier counters, summed (two-tier specs only).
    tier: TierStats,
    /// L2 value bytes read (every spec but per-process locmem).
    l2_bytes: u64,
    /// L2 read calls.
    l2_reads: u64,
}

/// Runs `stamped` over `scenario` on `spec`; `"l2-only"` is one shared
/// store for every process. Writes are fenced (the default).
fn run(scenario: &str, spec: &str) -> Run {
    run_with(scenario, spec, true)
}

/// [`run`], with writes fenced (`begin_write` before the commit) or only
/// invalidated after it.
fn run_with(scenario: &str, spec: &str, fenced: bool) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let source = scenarios::source(scenario, 1).unwrap();
        let start_ms = u64::try_from(source.header.start.timestamp_millis()).unwrap();
        let clock = ManualClock::at_unix_millis(start_ms);
        let mut opts = CacheOptions::default();
        opts.clock = Arc::new(clock.clone());
        let strategy = by_name("stamped", &opts).unwrap();
        let mut tier_faults = Vec::new();
        let (backends, tiers, counting) = if spec == "l2-only" {
            let l2 = Arc::new(CountingL2 {
                inner: LocmemBackend::builder().clock(Arc::new(clock.clone())).build(),
                bytes: AtomicU64::new(0),
                reads: AtomicU64::new(0),
            });
            (vec![l2.clone() as Arc<dyn Backend>], Vec::new(), Some(l2))
        } else {
            let stores = connect(&BackendSpec::parse(spec).unwrap(), source.header.processes, &clock)
                .await
                .unwrap();
            tier_faults = stores.tier_faults;
            (stores.backends, stores.tiers, None)
        };
        let mut cell = Cell::new(strategy, backends, clock);
        cell.fenced_writes = fenced;
        // The scenario's own faults (a dropped connection, a lost notice).
        cell.faults = scenarios::faults(scenario);
        cell.tier_faults = tier_faults;
        let m = run_cell(source, &cell, None).await.unwrap();
        let tier = tiers.iter().map(|t| t.stats()).fold(TierStats::default(), |a, b| a + b);
        let (l2_bytes, l2_reads) = match &counting {
            Some(c) => (c.bytes.load(Ordering::Relaxed), c.reads.load(Ordering::Relaxed)),
            None => (tier.l2_bytes_read, tier.l2_round_trips),
        };
        Run {
            m,
            tier,
            l2_bytes,
            l2_reads,
        }
    })
}

fn print(label: &str, r: &Run) {
    eprintln!(
        "{label}: reads {} hits {} stale {} max_staleness_us {} db {} | L2 bytes/read {:.1} L2 trips/read {:.3} \
         | L1 hits {} trips/L1 hit {:.3} zero-trip reads {} | published {} resyncs {}",
        r.m.reads,
        r.m.hits,
        r.m.stale_reads,
        r.m.max_staleness_us,
        r.m.db_queries,
        r.l2_bytes as f64 / r.m.reads as f64,
        r.l2_reads as f64 / r.m.reads as f64,
        r.tier.l1_hits,
        r.tier.l1_hit_round_trips as f64 / r.tier.l1_hits.max(1) as f64,
        r.tier.zero_trip_reads,
        r.tier.published,
        r.tier.resyncs,
    );
}

#[test]
fn two_tiers_without_backplane_on_multi_process_locmem_traffic() {
    let scenario = "multi-process-locmem";
    let per_process = run(scenario, "locmem");
    let l2 = run(scenario, "l2-only");
    let two = run(scenario, "two-tier:locmem+locmem");
    for (l, r) in [("locmem", &per_process), ("l2-only", &l2), ("two-tier", &two)] {
        print(l, r);
    }
    assert!(per_process.m.stale_reads > 0, "the hazard two tiers fix");
    assert_eq!(l2.m.stale_reads, 0);
    assert_eq!(two.m.stale_reads, 0, "two tiers are as correct as L2 alone");
    assert_eq!(two.m.hits, l2.m.hits, "and hit as often");
    assert_eq!(two.m.db_queries, l2.m.db_queries);
    // Every L1 hit cost exactly one small round trip (the generations).
    assert!(two.tier.l1_hits > 0);
    assert_eq!(two.tier.l1_hit_round_trips, two.tier.l1_hits);
    // Bytes: this traffic reads each view only twice per process per phase,
    // so the cold L1s still fetch the entry once per process and phase; the
    // steady-state ratio is measured on multi-process-two-tier below.
    assert!(two.l2_bytes < l2.l2_bytes / 2, "{} vs {}", two.l2_bytes, l2.l2_bytes);
}

/// Probes after a commit that read before `us` after it, over both deletes'
/// probes of processes 1 and 2 (`deletes` of them).
fn probes_before(us: u64, deletes: u64) -> u64 {
    TWO_TIER_PROBES_US.iter().filter(|d| **d < us).count() as u64 * 2 * deletes
}

/// Steady reads of processes 1 and 2 between the second delete and the
/// notice of process 0's next write (other calendar) arriving after `late_us`.
fn steady_reads_until(late_us: u64) -> u64 {
    // Process p reads at 10.05 s + p·10 ms + i·100 ms.
    (0..150u64)
        .flat_map(|i| (1..3u64).map(move |p| TWO_TIER_COMMIT_US + 50_000 + p * 10_000 + i * 100_000))
        .filter(|t| *t > TWO_TIER_SECOND_COMMIT_US && *t < TWO_TIER_OTHER_WRITE_US + late_us)
        .count() as u64
}

#[test]
fn two_tiers_on_multi_process_two_tier_unfenced() {
    // An app that only invalidates after the commit: the window is open.
    let run = |scenario: &str, spec: &str| run_with(scenario, spec, false);
    let l2 = run(TWO_TIER, "l2-only");
    let two = run(TWO_TIER, "two-tier:locmem+locmem");
    let delivery_us = 2_000;
    let bp = run(TWO_TIER, &format!("two-tier/backplane={delivery_us}:locmem+locmem"));
    let tracked = run(TWO_TIER, "two-tier/tracking:locmem+locmem");
    let per_process = run(TWO_TIER, "locmem");
    for (l, r) in [
        ("locmem", &per_process),
        ("l2-only", &l2),
        ("two-tier", &two),
        ("two-tier+backplane", &bp),
        ("two-tier+tracking", &tracked),
    ] {
        print(l, r);
    }
    let lat = Latencies::default();
    // Per-process stores never learn of the writes.
    assert!(per_process.m.stale_reads > 100);
    // L2 alone and two tiers: stale only inside the commit-to-bump window
    // (the 0.5 ms probes of processes 1 and 2), by the same reads.
    let window = lat.invalidate_us + lat.plan_us;
    let in_window = probes_before(lat.invalidate_us, 2);
    assert_eq!(l2.m.stale_reads, in_window);
    assert_eq!(two.m.stale_reads, l2.m.stale_reads);
    assert!(two.m.max_staleness_us <= window, "{}", two.m.max_staleness_us);
    assert_eq!(two.m.hits, l2.m.hits);
    // Steady state: the entry crosses the wire about once per process and
    // write, the generations every read: ≤ 5 % of the L2-only bytes.
    assert!(
        two.l2_bytes * 20 <= l2.l2_bytes,
        "two-tier {} bytes vs L2-only {}",
        two.l2_bytes,
        l2.l2_bytes
    );
    assert_eq!(two.tier.l1_hit_round_trips, two.tier.l1_hits, "1 round trip per L1 hit");
    // With the backplane: an L1 hit needs no round trip while generations
    // are known (the first hit after each fill or notice still asks L2).
    assert!(bp.tier.zero_trip_reads * 10 >= bp.m.reads * 9, "{:?}", bp.tier);
    assert!(bp.tier.l1_hit_round_trips * 20 <= bp.tier.l1_hits);
    // ... and serves stale until the notice arrives: after the first
    // delete, the probes planned before bump + delivery. The second
    // delete's only notice is lost: processes 1 and 2 serve their copy
    // until process 0's next notice (its write to another calendar) shows
    // the skipped number, and then forget everything. Without numbers
    // they would serve it until `trust_for` (an hour).
    let notice = lat.invalidate_us + delivery_us;
    let lost = probes_before(u64::MAX, 1) + steady_reads_until(notice);
    assert_eq!(bp.m.stale_reads, probes_before(notice, 1) + lost);
    let bound = TWO_TIER_OTHER_WRITE_US - TWO_TIER_SECOND_COMMIT_US + notice + lat.plan_us;
    assert!(bp.m.max_staleness_us <= bound, "{} > {bound}", bp.m.max_staleness_us);
    assert!(
        bp.m.max_staleness_us > 100_000,
        "the lost notice really went unseen until the next"
    );
    assert!(
        bp.tier.resyncs >= 3,
        "1 and 2 saw the gap, 1 lost its subscription: {:?}",
        bp.tier
    );
    // Tracking: the server invalidates `tracking`'s default delivery after
    // the bump, before the second probes; the first are inside the
    // commit-to-bump window as for L2 alone. No notice can be lost.
    assert_eq!(tracked.m.stale_reads, in_window);
    assert!(tracked.m.max_staleness_us <= window);
    assert!(
        tracked.tier.l1_hit_round_trips * 100 <= tracked.tier.l1_hits,
        "{:?}",
        tracked.tier
    );
    assert!(
        tracked.tier.zero_trip_reads * 10 >= tracked.m.reads * 9,
        "{:?}",
        tracked.tier
    );
    assert_eq!(tracked.tier.resyncs, 1, "process 1's connection dropped once");
}

#[test]
fn two_tiers_on_multi_process_two_tier_fenced() {
    let l2 = run(TWO_TIER, "l2-only");
    let two = run(TWO_TIER, "two-tier:locmem+locmem");
    let delivery_us = 2_000;
    let bp = run(TWO_TIER, &format!("two-tier/backplane={delivery_us}:locmem+locmem"));
    let tracked = run(TWO_TIER, "two-tier/tracking:locmem+locmem");
    let slow = run(TWO_TIER, &format!("two-tier/tracking={delivery_us}:locmem+locmem"));
    for (l, r) in [
        ("l2-only", &l2),
        ("two-tier", &two),
        ("two-tier+backplane", &bp),
        ("two-tier+tracking", &tracked),
        ("two-tier+tracking=2000", &slow),
    ] {
        print(l, r);
    }
    // The fence closes the commit-to-bump window: L2 alone and two tiers
    // without a backplane serve nothing stale.
    assert_eq!(l2.m.stale_reads, 0);
    assert_eq!(two.m.stale_reads, 0);
    assert_eq!(two.m.db_queries, l2.m.db_queries);
    // With the backplane, a process learns of the fence when its notice
    // arrives: until then (the delivery latency after the commit) it
    // serves L1 hits. The second delete's fence notice is lost; its end
    // notice (a commit-to-bump later) shows the skipped number.
    let lat = Latencies::default();
    let ended = lat.invalidate_us + delivery_us;
    assert_eq!(
        bp.m.stale_reads,
        probes_before(delivery_us, 1) + probes_before(ended, 1)
    );
    let bound = ended + lat.plan_us;
    assert!(bp.m.max_staleness_us <= bound, "{} > {bound}", bp.m.max_staleness_us);
    // With tracking, the fence's invalidation comes from the server, which
    // loses none: stale only until it arrives, after both deletes alike.
    assert_eq!(slow.m.stale_reads, probes_before(delivery_us, 2));
    assert!(slow.m.max_staleness_us <= delivery_us + lat.plan_us);
    // At its default delivery (loopback Redis), before the first probe.
    assert_eq!(tracked.m.stale_reads, 0);
    assert_eq!(tracked.m.db_queries, l2.m.db_queries);
    assert!(
        tracked.tier.l1_hit_round_trips * 100 <= tracked.tier.l1_hits,
        "{:?}",
        tracked.tier
    );
}

/// `multi-process-two-tier` with no backend given compares the five
/// setups side by side (`stamped`): what the docs' "Several processes"
/// table says of each.
#[test]
fn the_scenario_compares_its_default_backends() {
    use sim::runner::{registry, run as run_all, RunConfig};
    let mut cfg = RunConfig::for_scenario(TWO_TIER);
    cfg.strategies = vec!["stamped".into()];
    let labels: Vec<String> = cfg.backends.iter().map(BackendSpec::label).collect();
    assert_eq!(labels, scenarios::TWO_TIER_BACKENDS);
    let r = run_all(&cfg, Arc::new(|| scenarios::source(TWO_TIER, 1)), registry(), None).unwrap();
    let [locmem, shared, two, bp, tracked] = [0, 1, 2, 3, 4].map(|i| &r.results[i]);
    for c in [locmem, shared, two, bp, tracked] {
        eprintln!(
            "{}: stale {} max {} ms hits {} tier {:?}",
            c.backend, c.stale_reads, c.max_staleness_ms, c.hits, c.tier
        );
    }
    assert!(locmem.stale_reads > 100, "each process its own store: stale for ever");
    assert_eq!((shared.stale_reads, two.stale_reads, tracked.stale_reads), (0, 0, 0));
    assert!(bp.stale_reads > 0 && bp.max_staleness_ms <= 3.3, "{bp:?}");
    assert!(shared.tier.is_none() && shared.bytes_per_read > 1000.0, "{shared:?}");
    let [t2, tb, tt] = [two, bp, tracked].map(|c| c.tier.unwrap());
    assert!((t2.round_trips_per_l1_hit - 1.0).abs() < 1e-9);
    assert!(
        tb.round_trips_per_l1_hit < 0.01 && tt.round_trips_per_l1_hit < 0.01,
        "{tb:?} {tt:?}"
    );
    assert!(tt.l2_bytes_per_read * 20.0 <= shared.bytes_per_read, "{tt:?}");
    assert!(r.to_markdown().contains("two-tier/tracking:locmem+locmem"));
}

#[test]
fn the_two_tier_spec_parses_and_rejects() {
    for ok in [
        "two-tier:locmem+locmem",
        "two-tier:locmem:64+redis://127.0.0.1:6379",
        "two-tier/backplane=2000:locmem+redis+cluster://a:1,b:2",
        "two-tier:locmem+memcache://127.0.0.1:11211",
        "two-tier/backplane=2000,trust=300:locmem+locmem",
        "two-tier/trust=300,backplane=0:locmem+locmem",
    ] {
        let s = BackendSpec::parse(ok).unwrap();
        assert_eq!(s.label(), ok);
    }
    assert!(BackendSpec::parse("two-tier:locmem+locmem")
        .unwrap()
        .isolated_per_cell());
    assert!(!BackendSpec::parse("two-tier:locmem+redis://x:1")
        .unwrap()
        .isolated_per_cell());
    for bad in [
        "two-tier",
        "two-tier:locmem",
        "two-tier:redis://x:1+locmem",
        "two-tier/backplane=x:locmem+locmem",
        "two-tier/oops=1:locmem+locmem",
        "two-tier/trust=300:locmem+locmem",
        "two-tier/backplane=1,backplane=2:locmem+locmem",
        "two-tier/backplane=1,trust:locmem+locmem",
        "two-tier/backplane=1,trust=-3:locmem+locmem",
        "two-tier:locmem+two-tier:locmem+locmem",
        "two-tier:locmem+nonsense",
    ] {
        assert!(BackendSpec::parse(bad).is_err(), "{bad}");
    }
    // One grammar with backend-any (backend_any::spec): the same
    // words for the same mistake; what only one side honours is refused
    // with the reason, or ignored where it means nothing.
    let e = BackendSpec::parse("two-tier/gossip:locmem+locmem")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown option \"gossip\"") && e.ends_with(backend_any::spec::SYNTAX),
        "{e}"
    );
    let e = BackendSpec::parse("two-tier/backplane:locmem+locmem")
        .unwrap_err()
        .to_string();
    assert!(e.contains("give its latency, backplane=<µs>"), "{e}");
    assert!(BackendSpec::parse("two-tier/backplane=2000,channel=feeds:locmem+locmem").is_ok());
    let e = BackendSpec::parse("two-tier:locmem+redis://app:hunter2@h:1/nope")
        .map(|s| s.label())
        .unwrap();
    assert!(!e.contains("hunter2"), "{e}");
}

/// The fallback rules without a server: a process whose subscription is
/// down reads generations from L2 (never its known ones), and trusts
/// them again only after re-subscribing.
#[test]
fn a_lost_subscription_falls_back_to_l2_generations() {
    use cache_core::tier::{LocalBackplane, TwoTier};
    use cache_core::{Change, RangeCache, Scope, TimeRange, View};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = ManualClock::at_unix_millis(1_760_000_000_000);
        let l2: Arc<dyn Backend> = Arc::new(LocmemBackend::builder().clock(Arc::new(clock.clone())).build());
        let bus = LocalBackplane::new(std::time::Duration::ZERO, Arc::new(clock.clone()));
        let mut opts = CacheOptions::default();
        opts.clock = Arc::new(clock.clone());
        let process = || {
            let tier = TwoTier::builder(
                Arc::new(LocmemBackend::builder().clock(Arc::new(clock.clone())).build()),
                l2.clone(),
            )
            .clock(Arc::new(clock.clone()))
            .backplane(Arc::new(bus.clone()))
            .build()
            .unwrap();
            let cache = RangeCache::builder(Arc::new(tier.clone()))
                .options(opts.clone())
                .clock(Arc::new(clock.clone()))
                .strategy("stamped")
                .build()
                .unwrap();
            (tier, cache)
        };
        let ((_, a), (b_tier, b)) = (process(), process());
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        let range = TimeRange::new(at("2025-09-29T00:00:00+08:00"), at("2025-11-10T00:00:00+08:00")).unwrap();
        let view = View::new([Scope::new("cal:1").unwrap()], range).unwrap();
        let change = Change::new(Scope::new("cal:1").unwrap(), [range]).unwrap();
        let db = AtomicU64::new(1);
        async fn get(c: &RangeCache, view: &View, db: &AtomicU64) -> String {
            let v = db.load(Ordering::SeqCst);
            let got = c
                .get_or_load(
                    view,
                    || async move { Ok::<_, std::io::Error>(Bytes::from(v.to_string())) },
                )
                .await
                .unwrap();
            String::from_utf8(got.to_vec()).unwrap()
        }
        let read = |c| get(c, &view, &db);
        assert_eq!(read(&a).await, "1");
        for _ in 0..3 {
            assert_eq!(read(&b).await, "1");
        }
        let s = b_tier.stats();
        assert_eq!(read(&b).await, "1");
        assert_eq!(
            b_tier.stats().zero_trip_reads,
            s.zero_trip_reads + 1,
            "known generations, no trip"
        );

        // A bump's notice carries its new value: B, which knew the old
        // one, knows the new one without asking L2. Its next read makes one
        // trip (for the entry, since its L1 copy's stamps are old), not two,
        // and the one after is free again.
        db.store(2, Ordering::SeqCst);
        a.invalidate(&change).await.unwrap();
        let s = b_tier.stats();
        assert_eq!(read(&b).await, "2");
        let after = b_tier.stats();
        assert_eq!(
            after.l2_round_trips,
            s.l2_round_trips + 1,
            "no generation fetch: {after:?}"
        );
        assert_eq!(read(&b).await, "2");
        assert_eq!(b_tier.stats().zero_trip_reads, after.zero_trip_reads + 1, "free again");
        // The writer itself knows too: its next read makes one trip, and
        // finds B's refill in L2.
        assert_eq!(read(&a).await, "2");

        bus.drop_subscriptions();
        db.store(3, Ordering::SeqCst);
        a.invalidate(&change).await.unwrap();
        let s = b_tier.stats();
        assert_eq!(
            read(&b).await,
            "3",
            "down: the generation comes from L2, so no stale read"
        );
        assert_eq!(read(&b).await, "3");
        let after = b_tier.stats();
        assert_eq!(after.zero_trip_reads, s.zero_trip_reads, "{after:?}");
        assert!(after.l2_round_trips >= s.l2_round_trips + 2);

        bus.restore_subscriptions();
        assert_eq!(read(&b).await, "3"); // learns again
        let s = b_tier.stats();
        assert_eq!(read(&b).await, "3");
        assert_eq!(b_tier.stats().zero_trip_reads, s.zero_trip_reads + 1, "caught up");
    });
}

/// A publish that fails is offered again; one that never gets through
/// makes the writer forget, and the others catch the lost number at its
/// next notice. No server: [`LocalBackplane`]'s faults.
#[test]
fn failed_publishes_are_retried_then_forgotten_and_caught_by_number() {
    use cache_core::tier::{LocalBackplane, TwoTier};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let clock = ManualClock::at_unix_millis(1_760_000_000_000);
        let l2: Arc<dyn Backend> = Arc::new(LocmemBackend::builder().clock(Arc::new(clock.clone())).build());
        let bus = LocalBackplane::new(std::time::Duration::ZERO, Arc::new(clock.clone()));
        let process = |bus: &LocalBackplane| {
            TwoTier::builder(Arc::new(LocmemBackend::builder().build()), l2.clone())
                .clock(Arc::new(clock.clone()))
                .backplane(Arc::new(bus.clone()))
                .build()
                .unwrap()
        };
        let (bus_a, bus_b) = (bus.endpoint(), bus.endpoint());
        let (a, b) = (process(&bus_a), process(&bus_b));
        let g = Key::new("g:{cal:1}").unwrap();
        let h = Key::new("h:{cal:2}").unwrap();
        for k in [&g, &h] {
            a.add(k, Bytes::from_static(b"5"), None).await.unwrap();
        }
        // Two failures, then through: nobody forgets anything.
        bus_a.fail_next(2);
        assert_eq!(a.incr(&g, 1).await.unwrap(), 6);
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.publish_failures, sa.resyncs, sb.resyncs), (0, 0, 0), "{sa:?}");
        // Three: the bump stands in L2, the write reports the error, and
        // the writer forgets what it knew.
        bus_a.fail_next(3);
        assert!(a.incr(&g, 1).await.is_err());
        assert_eq!(l2.get(&g).await.unwrap().as_deref(), Some(&b"7"[..]));
        let sa = a.stats();
        assert_eq!((sa.publish_failures, sa.resyncs), (1, 1), "{sa:?}");
        assert_eq!(b.stats().resyncs, 0, "B cannot know yet");
        // A's next notice, for another key, shows B the skipped number.
        a.incr(&h, 1).await.unwrap();
        assert_eq!(b.stats().resyncs, 1);
        // A lost notice (every connection up) is caught the same way.
        bus_a.lose_next(1);
        a.incr(&g, 1).await.unwrap();
        assert_eq!(b.stats().resyncs, 1);
        a.incr(&h, 1).await.unwrap();
        assert_eq!(b.stats().resyncs, 2);
        assert_eq!(
            a.stats().published,
            7,
            "every notice numbered, the failed and the lost one too"
        );
    });
}
