//! A cell split by app process: when a run has fewer cells than threads
//! and a cell's processes share nothing but the database, its processes
//! replay in parallel as shards ([`Shard`]) and their parts add up to the
//! cell's metrics, byte for byte what one replay gives.
//!
//! Which cells: plain `locmem` (a store per process, and with it a
//! strategy instance per process, as an application's processes have), a
//! trace with two or more processes, and no injected faults, database
//! faults, fail-safe or loader timeouts (their relays and outbox reach
//! across processes, and their figures do not add up). Every shard still
//! applies every write to its own database, so the speed-up stays below the
//! number of shards: what shards save is the serving of the other
//! processes' requests, most of a cell's cost.

use crate::backends::BackendSpec;
use crate::config::RunConfig;
use crate::engine::Shard;

/// Shards each cell of `cfg` replays as, with `cells` cells and a trace
/// of `processes` app processes: as many as there are threads per cell,
/// at most one per process; 1 when the cells cannot be split.
pub(super) fn per_cell(cfg: &RunConfig, cells: usize, processes: u32) -> u32 {
    let independent = cfg.backends.iter().all(|b| matches!(b, BackendSpec::Locmem { .. }));
    if !independent
        || processes < 2
        || cells == 0
        || cfg.faults.any()
        || !cfg.faults.tier.is_empty()
        || cfg.uses_db_faults()
    {
        return 1;
    }
    let per = u32::try_from(cfg.threads / cells).unwrap_or(u32::MAX);
    per.clamp(1, processes)
}

/// The tasks of `cells` cells split into `shards` each: (cell index,
/// shard), cell by cell.
pub(super) fn tasks(cells: usize, shards: u32) -> Vec<(usize, Option<Shard>)> {
    (0..cells)
        .flat_map(|i| (0..shards).map(move |index| (i, (shards > 1).then_some(Shard { index, of: shards }))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(threads: usize, backend: &str) -> RunConfig {
        let mut c = RunConfig::new("t");
        c.threads = threads;
        c.backends = vec![BackendSpec::parse(backend).expect("a backend")];
        c
    }

    #[test]
    fn splits_only_what_has_spare_threads_and_independent_processes() {
        assert_eq!(per_cell(&cfg(2, "locmem"), 1, 3), 2);
        assert_eq!(per_cell(&cfg(8, "locmem"), 1, 3), 3, "at most one shard per process");
        assert_eq!(per_cell(&cfg(2, "locmem"), 2, 3), 1, "the cells fill the threads");
        assert_eq!(per_cell(&cfg(2, "locmem"), 1, 1), 1, "one process");
        assert_eq!(per_cell(&cfg(2, "shared-locmem"), 1, 3), 1, "a shared store");
        assert_eq!(per_cell(&cfg(2, "two-tier:locmem+locmem"), 1, 3), 1);
        let mut faulty = cfg(2, "locmem");
        faulty.faults.crash_writer_at_us = Some(1);
        assert_eq!(per_cell(&faulty, 1, 3), 1, "faults reach across processes");
        let mut fail_safe = cfg(2, "locmem");
        fail_safe.aside.fail_safe_max_age = Some(std::time::Duration::from_secs(60));
        assert_eq!(per_cell(&fail_safe, 1, 3), 1);
    }

    #[test]
    fn tasks_go_cell_by_cell() {
        let t = tasks(2, 2);
        assert_eq!(t.len(), 4);
        assert_eq!(t[1], (0, Some(Shard { index: 1, of: 2 })));
        assert_eq!(t[2].0, 1);
        assert_eq!(tasks(3, 1), vec![(0, None), (1, None), (2, None)]);
    }
}
