//! Issue 15: why `wildcard` served stale reads on Redis with `maxmemory 2mb`
//! and `allkeys-lru`, measured here step by step (the mechanism is
//! documented in `cache_core::strategy::wildcard`, "Server eviction").
//!
//! A view over two scopes (`cal:i`, `team:1`) is stored under `cal:i`'s
//! prefix and listed in `team:1`'s key index. The index is touched only on
//! misses and invalidations, the entries on every hit, so under LRU the
//! index is evicted first. A write of `team:1` then finds no index and
//! cannot delete the entries: they are served stale until their TTL.
//! `versioned` under the same pressure serves nothing stale: losing its
//! generation key makes a new generation, i.e. misses.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use backend_redis::RedisBackend;
use cache_core::strategy::by_name;
use cache_core::CacheOptions;
use cache_core::{Backend, Bytes, Change, Key, Scope, TimeRange, View};
use cache_testkit::redis::{command, RedisServer};

struct Outcome {
    /// Entries readable before the write of `team:1`.
    cached: usize,
    /// Of those, readable after it.
    stale: usize,
    /// Whether one of `team:1`'s control keys was evicted.
    control_evicted: bool,
}

fn range() -> TimeRange {
    let start = chrono::DateTime::parse_from_rfc3339("2025-10-01T00:00:00Z").unwrap();
    TimeRange::new(start, start + chrono::TimeDelta::days(30)).unwrap()
}

async fn under_pressure(strategy_name: &str) -> Outcome {
    let server = RedisServer::new().unwrap();
    command(server.port(), &["CONFIG", "SET", "maxmemory", "2mb"]).unwrap();
    command(server.port(), &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(RedisBackend::connect(server.url()).await.unwrap());
    let strategy = by_name(strategy_name, &CacheOptions::default()).unwrap();
    let team = Scope::new("team:1").unwrap();
    let views: Vec<View> = (0..20)
        .map(|i| View::new([Scope::new(format!("cal:{i}")).unwrap(), team.clone()], range()).unwrap())
        .collect();
    let mut keys = Vec::new();
    for v in &views {
        let plan = strategy.plan_read(&*backend, v).await.unwrap();
        strategy
            .store(&*backend, v, &plan, Bytes::from(vec![b'v'; 1024]))
            .await
            .unwrap();
        keys.push(plan.key);
    }
    let team_controls: Vec<Key> = strategy
        .control_keys(&views[0])
        .into_iter()
        .filter(|k| k.as_str().contains("team"))
        .collect();
    // Redis's LRU clock ticks once a second: let the control keys age,
    // then keep the entries hot (as hits do) while other data fills memory.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut control_evicted = false;
    for round in 0..2_000 {
        if round % 10 == 0 {
            for k in &keys {
                backend.get(k).await.unwrap();
            }
        }
        let filler = Key::new(format!("filler:{round}")).unwrap();
        backend
            .set(&filler, Bytes::from(vec![b'f'; 8 * 1024]), None)
            .await
            .unwrap();
        if round % 25 == 24 {
            let exists = team_controls
                .iter()
                .all(|k| command(server.port(), &["EXISTS", k.as_str()]).unwrap() == "1");
            if !exists {
                control_evicted = true;
                break;
            }
        }
    }
    let mut live = Vec::new();
    for (v, k) in views.iter().zip(&keys) {
        if backend.get(k).await.unwrap().is_some() {
            live.push((v, k));
        }
    }
    let change = Change::new(team, [range()]).unwrap();
    strategy.invalidate(&*backend, &change).await.unwrap();
    let mut stale = 0;
    for (v, old_key) in &live {
        // What a reader gets now: the key the strategy plans (a new
        // generation for `versioned`), and whether an entry is there.
        let plan = strategy.plan_read(&*backend, v).await.unwrap();
        if plan.key == **old_key && backend.get(&plan.key).await.unwrap().is_some() {
            stale += 1;
        }
    }
    Outcome {
        cached: live.len(),
        stale,
        control_evicted,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_serves_stale_when_lru_evicts_a_scope_index() {
    let o = under_pressure("wildcard").await;
    assert!(
        o.control_evicted,
        "the index survived 2,000 fillers: the pressure did not build"
    );
    assert!(o.cached > 0, "every entry was evicted too: nothing to measure");
    // The documented limitation: surviving entries of the evicted index are
    // not invalidated.
    assert_eq!(o.stale, o.cached, "cached {} stale {}", o.cached, o.stale);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_serves_nothing_stale_under_the_same_pressure() {
    let o = under_pressure("versioned").await;
    assert!(
        o.control_evicted,
        "the generation survived 2,000 fillers: the pressure did not build"
    );
    assert_eq!(o.stale, 0, "cached {} stale {}", o.cached, o.stale);
}
