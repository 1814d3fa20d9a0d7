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
//!
//! On threads (`--threads`, when the cells are fewer) the shards of one
//! process meet moka's process-global collector (see `processes.rs`); with
//! `--processes` and fewer cells than processes, each worker process
//! replays one shard of every cell and sends its parts back.

use crate::backends::BackendSpec;
use crate::config::RunConfig;
use crate::engine::Shard;

/// Whether the cells of `cfg`, on a trace of `processes` app processes,
/// can be split by process.
fn splittable(cfg: &RunConfig, processes: u32) -> bool {
    let independent = cfg.backends.iter().all(|b| matches!(b, BackendSpec::Locmem { .. }));
    independent && processes >= 2 && !cfg.faults.any() && cfg.faults.tier.is_empty() && !cfg.uses_db_faults()
}

/// Shards each cell of `cfg` replays as, with `cells` cells and a trace
/// of `processes` app processes: as many as there are threads per cell,
/// at most one per process; 1 when the cells cannot be split.
pub(super) fn per_cell(cfg: &RunConfig, cells: usize, processes: u32) -> u32 {
    if !splittable(cfg, processes) || cells == 0 {
        return 1;
    }
    let per = u32::try_from(cfg.threads / cells).unwrap_or(u32::MAX);
    per.clamp(1, processes)
}

/// Shards each cell replays as with `--processes workers`: one per worker
/// process (at most one per app process) when the cells are fewer than
/// the workers and can be split, each worker replaying its shard of every
/// cell; otherwise 1 (the workers split the strategies instead).
pub(super) fn across_processes(cfg: &RunConfig, cells: usize, processes: u32, workers: usize) -> u32 {
    if !splittable(cfg, processes) || cells >= workers {
        return 1;
    }
    u32::try_from(workers).unwrap_or(u32::MAX).min(processes)
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
    fn processes_split_cells_only_when_they_are_fewer_than_the_workers() {
        assert_eq!(across_processes(&cfg(1, "locmem"), 1, 3, 2), 2);
        assert_eq!(
            across_processes(&cfg(1, "locmem"), 1, 3, 4),
            3,
            "at most one per process"
        );
        assert_eq!(
            across_processes(&cfg(1, "locmem"), 8, 3, 2),
            1,
            "the strategies fill them"
        );
        assert_eq!(across_processes(&cfg(1, "shared-locmem"), 1, 3, 2), 1);
        assert_eq!(across_processes(&cfg(1, "locmem"), 1, 1, 2), 1);
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
