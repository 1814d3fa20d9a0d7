//! One read path: the simulator judges the code an application runs.
//!
//! The same trace is replayed twice per strategy: through the simulator
//! (zero latencies, so every request completes at its own instant) and
//! through `RangeCache` itself, one per simulated app process, on a
//! `ManualClock` moved to each event's time. Both must count exactly the
//! same hits, misses and loader calls, on a roomy store and on one so small
//! that it evicts all the time.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cache_core::aside::RangeCache;
use cache_core::strategy::{by_name, NAMES};
use cache_core::{Bytes, ManualClock};
use sim::backends::{connect, BackendSpec};
use sim::db::{Db, WriteKind};
use sim::engine::Latencies;
use sim::runner::{registry, run, RunConfig};
use sim::trace::{Event, Header, Source};
use sim::traffic::{Traffic, TrafficConfig};

/// Generated traffic where no read shares its instant with another event
/// (at zero latency such reads would interleave in the simulator and run
/// one after the other in the sequential replay).
fn trace() -> (Header, Vec<Event>) {
    let mut t = TrafficConfig::default();
    t.users = 40;
    t.actions = 6_000;
    t.days = 1;
    t.seed = 3;
    let (header, events) = Traffic::new(t, "realistic").unwrap();
    let events: Vec<Event> = events.map(Result::unwrap).collect();
    let mut keep = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let crowded = |j: usize| events.get(j).is_some_and(|o| o.t_us() == e.t_us());
        let is_read = matches!(e, Event::Read { .. });
        if !is_read || !(crowded(i.wrapping_sub(1)) || crowded(i + 1)) {
            keep.push(e.clone());
        }
    }
    assert!(keep.len() > events.len() * 9 / 10);
    (header, keep)
}

fn config(strategy: &str, store: &str) -> RunConfig {
    let mut cfg = RunConfig::new("one-read-path");
    cfg.seed = 9;
    cfg.strategies = vec![strategy.to_owned()];
    cfg.backends = vec![BackendSpec::parse(store).unwrap()];
    let mut lat = Latencies::default();
    lat.plan_us = 0;
    lat.get_us = 0;
    lat.db_us = 0;
    lat.store_us = 0;
    lat.invalidate_us = 0;
    cfg.latencies = lat;
    cfg
}

/// (hits, misses, loader calls) through the simulator.
fn simulated(cfg: &RunConfig, header: &Header, events: &[Event]) -> (u64, u64, u64) {
    let (header, events) = (header.clone(), events.to_vec());
    let source = Arc::new(move || {
        Ok(Source {
            header: header.clone(),
            events: Box::new(events.clone().into_iter().map(Ok)),
        })
    });
    let r = run(cfg, source, registry(), None).unwrap();
    let c = &r.results[0];
    (c.hits, c.misses, c.db_queries)
}

/// (hits, misses, loader calls) through `RangeCache`, one per app process.
async fn through_range_cache(cfg: &RunConfig, header: &Header, events: &[Event]) -> (u64, u64, u64) {
    let start_ms = u64::try_from(header.start.timestamp_millis()).unwrap();
    let clock = ManualClock::at_unix_millis(start_ms);
    let opts = cfg.strategy_options(&clock);
    let strategy = by_name(&cfg.strategies[0], &opts).unwrap();
    let stores = connect(&cfg.backends[0], header.processes, &clock).await.unwrap();
    let caches: Vec<RangeCache> = stores
        .backends
        .iter()
        .map(|b| {
            let o = opts.clone().with_clock(Arc::new(clock.clone()));
            RangeCache::builder(b.clone())
                .options(o)
                .shared_strategy(strategy.clone())
                .build()
                .unwrap()
        })
        .collect();
    let mut db = Db::new();
    let base_us = header.start_us();
    for e in events {
        let t = base_us + i64::try_from(e.t_us()).unwrap();
        clock.advance_to(UNIX_EPOCH + Duration::from_micros(t as u64));
        match e {
            Event::Read { process, view, .. } => {
                let cache = &caches[*process as usize % caches.len()];
                let q = db.intern(view);
                let db = &mut db;
                // As big as the simulator's payload (a 36-byte header, the
                // view as JSON, `item_bytes` per item), so that a small
                // store evicts the same entries.
                let json_len = serde_json::to_vec(view).unwrap().len();
                let item_bytes = cfg.item_bytes;
                cache
                    .get_or_load(view, || async move {
                        let a = db.query(&q, t);
                        let len = 36 + json_len + a.items as usize * item_bytes;
                        Ok::<_, std::io::Error>(Bytes::from(vec![b' '; len]))
                    })
                    .await
                    .unwrap();
            }
            Event::Write { process, write, .. } => {
                // As the simulator (and an app using the fence) does:
                // announce, commit, end. The change is known only from the
                // commit; nothing reads in between.
                let c = db.commit(write, t).unwrap();
                if write.kind != WriteKind::Load {
                    let cache = &caches[*process as usize % caches.len()];
                    let change = c.change().unwrap();
                    assert!(cfg.fenced_writes);
                    cache.begin_write(&change).await.unwrap();
                    cache.end_write(&change).await.unwrap();
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    caches
        .iter()
        .map(RangeCache::metrics)
        .fold((0, 0, 0), |(h, m, l), x| (h + x.hits, m + x.misses, l + x.loader_calls))
}

#[test]
fn range_cache_and_the_simulator_agree_on_every_strategy() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (header, events) = trace();
    for store in ["locmem:256", "locmem:1"] {
        for name in NAMES {
            let cfg = config(name, store);
            let sim = simulated(&cfg, &header, &events);
            let app = rt.block_on(through_range_cache(&cfg, &header, &events));
            assert_eq!(
                sim, app,
                "{name} on {store}: (hits, misses, loads) simulated vs RangeCache"
            );
            assert!(sim.0 > 0 && sim.1 > 0, "{name} on {store}: {sim:?}");
        }
    }
}
