//! The `stampede` scenario's documented outcomes: a popular view expiring
//! under hundreds of concurrent readers in several processes, with and
//! without single-flight and XFetch. The simulator drives cache-core's own
//! cache-aside flow, so these are the outcomes an application with
//! `RangeCache` gets.

use std::sync::Arc;

use sim::report::{CellResult, Report};
use sim::runner::{registry, run, RunConfig};
use sim::scenarios::{self, STAMPEDE, STAMPEDE_BURST, STAMPEDE_PROCESSES};

fn stampede(single_flight: bool, xfetch: Option<f64>) -> Report {
    let mut cfg = RunConfig::new(STAMPEDE);
    cfg.strategies = vec!["versioned".into(), "wildcard".into()];
    cfg.aside = cfg.aside.clone().with_single_flight(single_flight).with_xfetch(xfetch);
    run(&cfg, Arc::new(|| scenarios::source(STAMPEDE, 1)), registry(), None).unwrap()
}

fn each(r: &Report) -> impl Iterator<Item = &CellResult> {
    r.results.iter()
}

/// Each process warms its own entry once before the stampede.
const WARM: u64 = STAMPEDE_PROCESSES as u64;

#[test]
fn without_single_flight_every_reader_at_expiry_queries_the_db() {
    let off = stampede(false, None);
    for c in each(&off) {
        let at_expiry = c.db_queries - WARM;
        assert!(
            at_expiry >= STAMPEDE_BURST * 9 / 10,
            "{}: {at_expiry} DB queries at expiry for {STAMPEDE_BURST} readers",
            c.strategy
        );
        assert_eq!(c.coalesced, 0);
        assert_eq!(c.stale_reads, 0);
    }
}

#[test]
fn with_single_flight_at_most_one_query_per_process() {
    let on = stampede(true, None);
    let off = stampede(false, None);
    for (c, o) in each(&on).zip(each(&off)) {
        let at_expiry = c.db_queries - WARM;
        assert!(
            (1..=u64::from(STAMPEDE_PROCESSES)).contains(&at_expiry),
            "{}: {at_expiry} DB queries at expiry",
            c.strategy
        );
        assert!(
            c.coalesced >= STAMPEDE_BURST * 9 / 10,
            "{}: {} coalesced",
            c.strategy,
            c.coalesced
        );
        // Same answers, same hit rate: only the database load differs.
        assert_eq!((c.reads, c.hits, c.stale_reads), (o.reads, o.hits, 0));
        assert!(c.db_queries * 20 < o.db_queries);
    }
}

#[test]
fn xfetch_refreshes_before_expiry_and_p99_falls() {
    let plain = stampede(true, None);
    let early = stampede(true, Some(1.0));
    for (p, x) in each(&plain).zip(each(&early)) {
        assert!(x.early_refreshes >= 1, "{}: no early refresh", x.strategy);
        // Refreshed before expiry: the burst finds fresh entries.
        assert!(
            x.hits > p.hits + STAMPEDE_BURST * 9 / 10,
            "{}: {} vs {} hits",
            x.strategy,
            x.hits,
            p.hits
        );
        assert!(x.coalesced < p.coalesced / 10);
        assert!(
            x.latency_p99_ms < p.latency_p99_ms,
            "{}: p99 {} ms with XFetch vs {} ms without",
            x.strategy,
            x.latency_p99_ms,
            p.latency_p99_ms
        );
        assert!(x.db_queries <= p.db_queries + u64::from(STAMPEDE_PROCESSES));
        assert_eq!(x.stale_reads, 0);
    }
}
