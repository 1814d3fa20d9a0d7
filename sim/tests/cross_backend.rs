//! The same traces replayed on locmem, a real Redis and a real Memcached give
//! identical hits, misses and stale reads per strategy (capacity is large
//! enough that nothing is evicted). This is what makes a locmem run a valid
//! prediction for a server deployment, and it catches any backend whose
//! semantics drift from the contract in a way the strategies notice.

use std::sync::Arc;

use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::redis::RedisServer;
use sim::backends::BackendSpec;
use sim::report::Report;
use sim::runner::{registry, run, RunConfig};
use sim::scenarios;

fn replay(scenario: &'static str, backend: BackendSpec) -> Report {
    let mut cfg = RunConfig::new(scenario);
    cfg.backends = vec![backend];
    run(&cfg, Arc::new(move || scenarios::source(scenario, 7)), registry(), None).unwrap()
}

/// (strategy, reads, hits, misses, stale reads) per cell.
fn outcome(r: &Report) -> Vec<(String, u64, u64, u64, u64)> {
    r.results
        .iter()
        .map(|c| (c.strategy.clone(), c.reads, c.hits, c.misses, c.stale_reads))
        .collect()
}

#[test]
fn locmem_redis_and_memcached_agree_on_every_strategy() {
    let redis = RedisServer::new().unwrap();
    let memcached = MemcachedServer::spawn(&MemcachedConfig::default().memory_mb(256)).unwrap();
    for scenario in [
        "seed-october-2025",
        "stale-set-race",
        "version-eviction",
        "item-moved",
        "shared-calendar",
        "timezone-variants",
    ] {
        let local = outcome(&replay(scenario, BackendSpec::parse("locmem").unwrap()));
        assert!(local.iter().any(|c| c.2 > 0), "{scenario}: the trace must produce hits");
        let stamped = local.iter().find(|c| c.0 == "stamped").unwrap();
        assert_eq!(stamped.4, 0, "{scenario}: stamped served stale reads");
        let on_redis = outcome(&replay(scenario, BackendSpec::parse(&redis.url()).unwrap()));
        assert_eq!(on_redis, local, "{scenario}: redis differs from locmem");
        let on_memcached = outcome(&replay(scenario, BackendSpec::parse(&memcached.url()).unwrap()));
        assert_eq!(on_memcached, local, "{scenario}: memcached differs from locmem");
    }
}

#[test]
fn an_unreachable_server_fails_before_the_run_starts() {
    let port = cache_testkit::process::free_port().unwrap();
    let mut cfg = RunConfig::new("seed-october-2025");
    cfg.backends = vec![BackendSpec::parse(&format!("redis://127.0.0.1:{port}")).unwrap()];
    let err = run(
        &cfg,
        Arc::new(|| scenarios::source("seed-october-2025", 1)),
        registry(),
        None,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
}
