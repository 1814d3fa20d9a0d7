//! `stamped`'s goals, asserted in the simulator: correct in every hazard
//! scenario where any strategy is, as many hits as `wildcard` where
//! `versioned` loses capacity to orphans, and one round trip per read plus
//! the fill of a miss.

use std::sync::Arc;

use sim::backends::BackendSpec;
use sim::report::{CellResult, Report};
use sim::runner::{registry, run, RunConfig};
use sim::scenarios;
use sim::traffic::{Traffic, TrafficConfig};

fn cell<'a>(r: &'a Report, strategy: &str) -> &'a CellResult {
    r.results.iter().find(|c| c.strategy == strategy).unwrap()
}

#[test]
fn stamped_serves_no_stale_read_wherever_any_strategy_serves_none() {
    for s in scenarios::SCENARIOS.iter().filter(|s| s.name != "realistic") {
        let name = s.name;
        let cfg = RunConfig::new(name);
        let r = run(&cfg, Arc::new(move || scenarios::source(name, 1)), registry(), None).unwrap();
        let best = r.results.iter().map(|c| c.stale_reads).min().unwrap();
        let stamped = cell(&r, "stamped");
        if best == 0 {
            assert_eq!(stamped.stale_reads, 0, "{name}");
        }
        assert!(stamped.stale_reads <= cell(&r, "versioned").stale_reads, "{name}");
    }
}

/// Generated traffic on a store small enough that orphans matter.
fn realistic_small(store: &str) -> Report {
    realistic_small_with(store, |_| {})
}

/// [`realistic_small`], with `adjust` applied to the run's configuration.
fn realistic_small_with(store: &str, adjust: impl FnOnce(&mut RunConfig)) -> Report {
    let mut cfg = RunConfig::new("realistic-small");
    cfg.seed = 4;
    cfg.backends = vec![BackendSpec::parse(store).unwrap()];
    cfg.strategies = vec!["wildcard".into(), "versioned".into(), "stamped".into()];
    adjust(&mut cfg);
    let mut t = TrafficConfig::default();
    t.users = 80;
    t.actions = 30_000;
    t.days = 2;
    t.seed = 4;
    run(
        &cfg,
        Arc::new(move || {
            let (header, tr) = Traffic::new(t.clone(), "realistic")?;
            Ok(sim::trace::Source {
                header,
                events: Box::new(tr),
            })
        }),
        registry(),
        None,
    )
    .unwrap()
}

#[test]
fn stamped_keeps_wildcards_hit_rate_in_one_round_trip_without_orphans() {
    let r = realistic_small("locmem:4");
    let (w, v, s) = (cell(&r, "wildcard"), cell(&r, "versioned"), cell(&r, "stamped"));
    assert_eq!((s.stale_reads, w.stale_reads, v.stale_reads), (0, 0, 0));
    assert!(
        (s.hit_rate - w.hit_rate).abs() <= 0.005,
        "stamped {:.4} vs wildcard {:.4}",
        s.hit_rate,
        w.hit_rate
    );
    assert!(
        v.hit_rate + 0.02 < s.hit_rate,
        "the store must be small enough for orphans to cost versioned hits"
    );
    let miss_rate = 1.0 - s.hit_rate;
    assert!(
        s.ops_per_read <= 1.0 + miss_rate + 0.05,
        "{} round trips per read",
        s.ops_per_read
    );
    // Dead entries count for stamped too (stamps no longer current), but
    // none is an orphan: each sits under the key its view's next fill
    // overwrites. versioned's bumps orphan entries, so the count can see them.
    assert!(s.dead_keys.unwrap() > 0, "the count sees stamped's entries");
    assert_eq!(s.orphaned_keys, Some(0), "no orphans");
    assert!(v.orphaned_keys.unwrap() > 0, "versioned orphans entries");
}

/// The commit-to-bump window, stretched to 200 ms so that many reads land
/// in it: without the fence every invalidating strategy serves stale reads
/// there; with it `stamped` serves none (the others do not fence).
#[test]
fn the_fence_closes_the_commit_to_bump_window() {
    let run = |fenced: bool| {
        realistic_small_with("locmem:64", |cfg| {
            cfg.latencies.invalidate_us = 200_000;
            cfg.fenced_writes = fenced;
            cfg.strategies = vec!["versioned".into(), "stamped".into()];
        })
    };
    let (open, fenced) = (run(false), run(true));
    assert!(cell(&open, "stamped").stale_reads > 0, "the window must bite");
    assert!(cell(&open, "versioned").stale_reads > 0);
    assert_eq!(cell(&fenced, "stamped").stale_reads, 0);
    assert!(cell(&fenced, "versioned").stale_reads > 0, "only stamped fences");
    assert!(
        (cell(&fenced, "stamped").ops_per_write - 2.0).abs() < 0.05,
        "a fenced write is two incr: {}",
        cell(&fenced, "stamped").ops_per_write
    );
}
