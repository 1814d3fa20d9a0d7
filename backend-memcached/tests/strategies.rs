//! Issue #5's strategy acceptance on a real memcached (no prefix deletion:
//! `wildcard` runs on its key index here). Each test starts its own server.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_memcached::{MemcachedBackend, MemcachedOptions};
use cache_core::strategy_suite as suite;
use cache_core::testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_core::Backend;

async fn make() -> (MemcachedServer, Arc<dyn Backend>) {
    let server = MemcachedServer::spawn(&MemcachedConfig::default()).unwrap();
    let backend = MemcachedBackend::connect(MemcachedOptions::new([server.addr().to_string()]))
        .await
        .unwrap();
    (server, Arc::new(backend))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_memcached_seed_scenarios_pass_for_versioned_bucketed_wildcard() {
    let (_guard, backend) = make().await;
    for strategy in ["versioned", "bucketed", "wildcard", "naive-versioned"] {
        suite::assert_seed_scenarios_pass(backend.clone(), strategy).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_memcached_fixed_month_serves_the_deleted_item() {
    let (_guard, backend) = make().await;
    let outcome = suite::seed_scenarios(backend, "fixed-month").await;
    assert!(!outcome.delete, "fixed-month must serve the deleted item: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_memcached_lost_generation_versioned_fresh_naive_stale() {
    let (_guard, backend) = make().await;
    assert!(!suite::generation_eviction_serves_stale(backend.clone(), "versioned").await);
    assert!(!suite::generation_eviction_serves_stale(backend.clone(), "bucketed").await);
    assert!(suite::generation_eviction_serves_stale(backend, "naive-versioned").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_memcached_stale_set_race_hits_wildcard_not_versioned() {
    let (_guard, backend) = make().await;
    assert!(suite::stale_set_race_serves_stale(backend.clone(), "wildcard").await);
    assert!(!suite::stale_set_race_serves_stale(backend.clone(), "versioned").await);
    assert!(!suite::stale_set_race_serves_stale(backend, "bucketed").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_memcached_bucketed_misses_less_than_versioned() {
    let (_guard, backend) = make().await;
    let c = suite::bucketed_vs_versioned(backend).await;
    assert_eq!(c.stale_reads, 0, "{c:?}");
    assert!(c.bucketed_misses < c.versioned_misses, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_memcached_seeded_random_sequences_never_read_stale() {
    let (_guard, backend) = make().await;
    for strategy in ["versioned", "bucketed", "wildcard"] {
        suite::assert_model_check_seeds(backend.clone(), strategy, 0..8, 60).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strategies_memcached_concurrent_misses_call_the_loader_once() {
    let (_guard, backend) = make().await;
    assert_eq!(suite::concurrent_misses_load_once(backend, "versioned", 16).await, 1);
}
