//! Issue 26: a Redis that evicts (tiny `maxmemory`, `allkeys-lru`) says so
//! in the report: the eviction count per cell, the delete-based
//! strategies flagged, and the verdict's `server-eviction` hazard applied
//! to that backend. The same traffic on a Redis with room evicts nothing
//! and reports nothing.

use std::sync::Arc;

use cache_testkit::redis::{command, RedisServer};
use sim::backends::BackendSpec;
use sim::report::Report;
use sim::runner::{registry, run, RunConfig};
use sim::scenarios;
use sim::traffic::TrafficConfig;

fn replay(url: &str) -> Report {
    let mut t = TrafficConfig::default();
    t.users = 30;
    t.actions = 2_000;
    t.days = 1;
    let mut cfg = RunConfig::new("realistic-small");
    cfg.backends = vec![BackendSpec::parse(url).unwrap()];
    cfg.strategies = vec!["wildcard".into(), "stamped".into()];
    // Feeds of ~50-100 KB: a few dozen fill the 2 MB the server may use.
    cfg.item_bytes = 4_000;
    run(
        &cfg,
        Arc::new(move || scenarios::generated(t.clone(), "realistic")),
        registry(),
        None,
    )
    .unwrap()
}

#[test]
fn an_evicting_redis_is_named_in_every_format() {
    let redis = RedisServer::new().unwrap();
    command(redis.port(), &["CONFIG", "SET", "maxmemory", "2mb"]).unwrap();
    command(redis.port(), &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]).unwrap();
    let r = replay(&redis.url());
    for c in &r.results {
        assert!(
            c.server_evictions.unwrap() > 0,
            "{}: {:?}",
            c.strategy,
            c.server_evictions
        );
    }
    let md = r.to_markdown();
    assert!(md.contains("Server eviction: The server evicted keys"), "{md}");
    let wildcard_row = md
        .lines()
        .find(|l| l.starts_with("| wildcard |") && l.contains("delete-based"))
        .unwrap_or_else(|| panic!("{md}"));
    let shown: u64 = wildcard_row
        .split('|')
        .nth(3)
        .unwrap()
        .trim()
        .replace(',', "")
        .parse()
        .unwrap();
    assert_eq!(Some(shown), r.results[0].server_evictions, "{wildcard_row}");
    assert!(md
        .lines()
        .any(|l| l.starts_with("| stamped |") && l.contains("lost keys become misses")));
    let html = r.to_html();
    assert!(html.contains("id=\"server-eviction\""));
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["results"][0]["server_evictions"].as_u64().unwrap() > 0);
    assert!(r.to_csv().lines().next().unwrap().ends_with(",server_evictions"));
    // The verdict applies the eviction hazard to this server and rules the
    // delete-based strategy out by it.
    let rec = r.recommendation.as_ref().unwrap();
    let check = rec
        .evidence
        .hazards
        .iter()
        .find(|h| h.scenario == "server-eviction")
        .unwrap_or_else(|| panic!("{rec:?}"));
    assert!(check.applies.contains("the server evicted"), "{}", check.applies);
    let wildcard = rec.why_not.iter().find(|w| w.strategy == "wildcard").unwrap();
    assert!(wildcard.reason.contains("`server-eviction`"), "{}", wildcard.reason);
    assert!(rec
        .evidence
        .server_evictions
        .iter()
        .any(|e| e.strategy == "wildcard" && e.delete_based));
    assert_eq!(rec.strategy.as_deref(), Some("stamped"));
}

#[test]
fn a_redis_with_room_reports_no_eviction() {
    let redis = RedisServer::new().unwrap();
    let r = replay(&redis.url());
    assert!(r.results.iter().all(|c| c.server_evictions == Some(0)));
    assert!(!r.to_markdown().contains("Server eviction:"));
    let rec = r.recommendation.as_ref().unwrap();
    assert!(rec
        .evidence
        .not_applicable
        .iter()
        .any(|h| h.scenario == "server-eviction"));
}
