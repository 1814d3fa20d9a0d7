//! Declared padding is a model-preserving optimisation: a cell whose feeds
//! declare their padding in a trailer (on a locmem store that counts it)
//! measures exactly what the same cell with written padding measures, on a
//! store small enough to evict all the time. (That locmem reports declared
//! sizes as value sizes, which the dead-byte count reads, is tested in
//! `backend-locmem/tests/value_size.rs`.)

use std::sync::Arc;

use cache_core::strategy::by_name;
use cache_core::CacheOptions;
use cache_core::ManualClock;
use sim::backends::{connect, BackendSpec};
use sim::engine::{run_cell, Cell, Metrics};
use sim::trace::Source;
use sim::traffic::{Traffic, TrafficConfig};

/// One cell of generated `realistic` traffic on an 8 MiB locmem per process (evicting).
async fn cell_metrics(strategy: &str, declared: bool) -> Metrics {
    let mut t = TrafficConfig::default();
    t.users = 60;
    t.actions = 20_000;
    t.days = 2;
    t.seed = 5;
    let (header, events) = Traffic::new(t, "realistic").unwrap();
    let clock = ManualClock::at_unix_millis(u64::try_from(header.start.timestamp_millis()).unwrap());
    let mut opts = CacheOptions::default();
    opts.clock = Arc::new(clock.clone());
    let strategy = by_name(strategy, &opts).unwrap();
    let stores = connect(&BackendSpec::parse("locmem:8").unwrap(), header.processes, &clock)
        .await
        .unwrap();
    assert!(stores.declared_padding, "plain locmem counts declared padding");
    let mut cell = Cell::new(strategy, stores.backends, clock);
    cell.live_keys = stores.live_keys;
    cell.declared_padding = declared;
    let source = Source {
        header,
        events: Box::new(events),
    };
    let mut m = run_cell(source, &cell, None).await.unwrap();
    // Backend call times are wall time (some are measured even without
    // `--timings`) and vary between any two runs; reports leave them out.
    for op in m.read_ops.ops.iter_mut().chain(m.write_ops.ops.iter_mut()) {
        (op.total_nanos, op.max_nanos, op.p50_nanos, op.p99_nanos) = (0, 0, 0, 0);
    }
    m
}

#[tokio::test(flavor = "current_thread")]
async fn declared_and_written_padding_measure_the_same() {
    for strategy in ["versioned", "stamped", "wildcard", "fixed-month"] {
        let written = cell_metrics(strategy, false).await;
        assert!(
            written.hits > 0 && written.misses > written.hits,
            "{strategy}: the store must evict"
        );
        assert!(
            written.live_keys.is_some_and(|n| n > 0),
            "{strategy}: live keys are listed"
        );
        assert_eq!(cell_metrics(strategy, true).await, written, "{strategy}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn remote_and_two_tier_stores_get_written_padding() {
    let clock = ManualClock::at_unix_millis(0);
    let tiers = connect(&BackendSpec::parse("two-tier:locmem+locmem").unwrap(), 2, &clock)
        .await
        .unwrap();
    assert!(!tiers.declared_padding);
}
