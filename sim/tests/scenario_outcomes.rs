//! Each scenario's documented outcome, against the real strategies.
//! Uses the strategy registry: fails until the strategies branch is merged.

use std::sync::Arc;

use sim::report::{CellResult, Report};
use sim::runner::{registry, run, RunConfig};
use sim::scenarios;

fn run_scenario(name: &'static str) -> Report {
    let cfg = RunConfig::new(name);
    run(&cfg, Arc::new(move || scenarios::source(name, 1)), registry(), None).unwrap()
}

fn cell<'a>(r: &'a Report, strategy: &str) -> &'a CellResult {
    r.results.iter().find(|c| c.strategy == strategy).unwrap()
}

#[test]
fn seed_october_2025_fixed_month_serves_the_deleted_item() {
    let r = run_scenario("seed-october-2025");
    assert!(cell(&r, "fixed-month").stale_reads > 0);
    assert_eq!(cell(&r, "versioned").stale_reads, 0);
    assert_eq!(cell(&r, "bucketed").stale_reads, 0);
    assert!(cell(&r, "versioned").hits > 0);
    let short = cell(&r, "short-ttl");
    assert!(
        short.max_staleness_ms <= r.short_ttl_s * 1000.0,
        "{}",
        short.max_staleness_ms
    );
}

#[test]
fn version_eviction_breaks_only_the_naive_counter() {
    let r = run_scenario("version-eviction");
    assert!(cell(&r, "naive-versioned").stale_reads > 0);
    assert_eq!(cell(&r, "versioned").stale_reads, 0);
    assert_eq!(cell(&r, "bucketed").stale_reads, 0);
    assert!(cell(&r, "versioned").control_evictions > 0);
}

#[test]
fn stale_set_race_breaks_delete_based_strategies() {
    let r = run_scenario("stale-set-race");
    assert!(cell(&r, "wildcard").stale_reads > 0);
    assert_eq!(cell(&r, "versioned").stale_reads, 0);
    assert_eq!(cell(&r, "bucketed").stale_reads, 0);
}

#[test]
fn shared_calendar_viewers_see_the_writers_change() {
    let r = run_scenario("shared-calendar");
    assert_eq!(cell(&r, "versioned").stale_reads, 0);
    assert_eq!(cell(&r, "bucketed").stale_reads, 0);
    assert!(cell(&r, "fixed-month").stale_reads > 0);
}

#[test]
fn per_process_locmem_stores_go_stale_whatever_the_strategy() {
    let r = run_scenario("multi-process-locmem");
    assert_eq!(r.processes, 3);
    assert!(cell(&r, "versioned").stale_reads > 0);
    assert!(cell(&r, "wildcard").stale_reads > 0);
}

#[test]
fn timezone_variants_cost_hits_and_escape_range_expansion() {
    let r = run_scenario("timezone-variants");
    assert!(cell(&r, "range-expansion").stale_reads > 0);
    assert_eq!(cell(&r, "versioned").stale_reads, 0);
    // Three keys for one window: at least three misses before any write.
    assert!(cell(&r, "versioned").misses >= 3);
}

#[test]
fn item_moved_needs_old_and_new_dates() {
    let r = run_scenario("item-moved");
    assert_eq!(cell(&r, "versioned").stale_reads, 0);
    assert_eq!(cell(&r, "bucketed").stale_reads, 0);
}

#[test]
fn short_ttl_staleness_is_bounded_by_its_ttl_everywhere() {
    for s in ["seed-october-2025", "stale-set-race", "shared-calendar", "item-moved"] {
        let r = run_scenario(s);
        let c = cell(&r, "short-ttl");
        assert!(
            c.max_staleness_ms <= r.short_ttl_s * 1000.0,
            "{s}: {}",
            c.max_staleness_ms
        );
    }
}

#[test]
fn every_cell_is_reported_and_dead_keys_are_counted_on_locmem() {
    let r = run_scenario("seed-october-2025");
    assert_eq!(r.results.len(), cache_core::strategy::NAMES.len());
    for c in &r.results {
        assert_eq!(c.reads, c.hits + c.misses, "{}", c.strategy);
        assert!(c.dead_keys.is_some());
    }
    // Versioned orphans the pre-write entries.
    assert!(cell(&r, "versioned").dead_keys.unwrap() > 0);
}
