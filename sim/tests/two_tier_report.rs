//! The report's two-tier columns on a real `redis-server`: the same
//! `multi-process-two-tier` traffic replayed on Redis alone and on locmem
//! L1s in front of it, without and with a (modelled) backplane, and with
//! Redis's own client tracking and a modelled one. What the
//! README's "Several processes" section and issue #18's goals rest on:
//! 0 stale reads, L2 bytes per read ≤ 5% of Redis alone, one round trip
//! per L1 hit without a backplane and almost none with one.

use std::sync::Arc;

use cache_testkit::redis::RedisServer;
use sim::backends::BackendSpec;
use sim::report::Report;
use sim::runner::{registry, run, RunConfig};
use sim::scenarios::{self, TWO_TIER};

fn report(url: &str) -> Report {
    // The scenario's faults too (a dropped connection, a lost notice).
    let mut cfg = RunConfig::for_scenario(TWO_TIER);
    cfg.strategies = vec!["stamped".into()];
    cfg.backends = [
        url.to_owned(),
        format!("two-tier:locmem+{url}"),
        format!("two-tier/backplane=2000:locmem+{url}"),
        format!("two-tier/tracking:locmem+{url}"),
        format!("two-tier/tracking=200:locmem+{url}"),
    ]
    .iter()
    .map(|b| BackendSpec::parse(b).unwrap())
    .collect();
    run(&cfg, Arc::new(|| scenarios::source(TWO_TIER, 1)), registry(), None).unwrap()
}

#[test]
fn two_tiers_read_a_twentieth_of_the_bytes_and_stay_correct() {
    let redis = RedisServer::new().unwrap();
    let r = report(&redis.url());
    let [l2, two, bp, tracked, modelled] = [0, 1, 2, 3, 4].map(|i| &r.results[i]);
    assert!(l2.tier.is_none() && two.tier.is_some() && bp.tier.is_some());
    // Fenced writes: nothing stale without a backplane, nor with tracking
    // (its invalidation arrives before the first probe); with a backplane,
    // only the probes before the fence's notice arrives (2 ms; for the
    // second delete, whose fence notice is lost, before its end notice:
    // 1 ms later), + the probe's plan step.
    assert_eq!(
        (
            l2.stale_reads,
            two.stale_reads,
            tracked.stale_reads,
            modelled.stale_reads
        ),
        (0, 0, 0, 0)
    );
    assert!(bp.stale_reads > 0 && bp.max_staleness_ms <= 3.3, "{bp:?}");
    assert_eq!(two.hits, l2.hits);
    // Bytes: a payload crosses the wire once per process and write.
    let t = two.tier.unwrap();
    assert!(l2.bytes_per_read > 1000.0, "the feed itself: {}", l2.bytes_per_read);
    assert!(
        t.l2_bytes_per_read * 20.0 <= l2.bytes_per_read,
        "{} vs {}",
        t.l2_bytes_per_read,
        l2.bytes_per_read
    );
    assert!(t.l1_hits > 0);
    assert!((t.round_trips_per_l1_hit - 1.0).abs() < 1e-9, "{t:?}");
    let b = bp.tier.unwrap();
    assert!(b.round_trips_per_l1_hit < 0.05, "{b:?}");
    assert!(b.zero_trip_reads > 0 && b.published > 0, "{b:?}");
    // Tracking, Redis's own (a RedisTracker per process) and modelled:
    // no round trip per L1 hit while tracked.
    for c in [tracked, modelled] {
        let t = c.tier.unwrap();
        assert!(t.round_trips_per_l1_hit < 0.01 && t.zero_trip_reads > 0, "{c:?}");
        assert_eq!(c.hits, two.hits, "{c:?}");
    }
    // And the report carries them in every format.
    let md = r.to_markdown();
    assert!(md.contains("| L2 bytes/read |"), "{md}");
    assert!(r.to_csv().lines().next().unwrap().contains(",l1_hits,zero_trip_reads,"));
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["results"][1]["tier"]["l2_bytes_per_read"].is_number());
}
