//! The store-only floor (`sim::floor`): a cell's recorded store calls,
//! replayed on fresh stores of the simulator's configuration, get exactly
//! what the cell got, call for call, also when the stores evict.

use std::sync::Arc;

use sim::backends::BackendSpec;
use sim::runner::{registry, RunConfig, SourceFactory};
use sim::traffic::{Traffic, TrafficConfig};

fn source(processes: u32) -> SourceFactory {
    let mut t = TrafficConfig::default();
    t.processes = processes;
    t.users = 60;
    t.actions = 20_000;
    t.days = 2;
    t.seed = 5;
    Arc::new(move || {
        let (header, tr) = Traffic::new(t.clone(), "realistic")?;
        Ok(sim::trace::Source {
            header,
            events: Box::new(tr),
        })
    })
}

#[test]
fn a_replay_gets_what_the_cell_got_call_for_call() {
    let cfg = RunConfig::new("floor");
    // 1 MiB: the store evicts all along, so any difference in what moka
    // was told, or in what order, would show as other hits. Three app
    // processes: three stores.
    for (strategy, store, processes) in [
        ("versioned", "locmem:1", 1),
        ("wildcard", "locmem:1", 1),
        ("stamped", "locmem", 1),
        ("bucketed", "locmem:1", 3),
    ] {
        let backend = BackendSpec::parse(store).unwrap();
        let rec = sim::floor::record(&cfg, &source(processes), &registry(), strategy, &backend).unwrap();
        assert!(rec.reads > 1_000, "{strategy}: {} reads", rec.reads);
        assert!(rec.calls() as u64 > rec.reads, "{strategy}: {} calls", rec.calls());
        let (stores, clock) = rec.stores(true);
        let replayed = rec.replay(&stores, &clock).unwrap();
        assert_eq!(replayed.calls, rec.calls() as u64);
        assert_eq!(replayed.mismatches, 0, "{strategy} on {store}");
    }
}

/// The mismatch count can be non-zero: a replay on another store
/// configuration (here a store too small to keep anything the cell hit
/// on) does not get what the cell got.
#[test]
fn a_replay_on_other_stores_is_told_apart() {
    let cfg = RunConfig::new("floor");
    let backend = BackendSpec::parse("locmem").unwrap();
    let rec = sim::floor::record(&cfg, &source(1), &registry(), "versioned", &backend).unwrap();
    let (_, clock) = rec.stores(true);
    let tiny: Vec<Arc<dyn cache_core::Backend>> = vec![Arc::new(
        backend_locmem::LocmemBackend::builder()
            .max_capacity_bytes(1)
            .clock(Arc::new(clock.clone()))
            .build(),
    )];
    assert!(rec.replay(&tiny, &clock).unwrap().mismatches > 0);
}
