//! Simulator throughput: simulated feed requests per second on locmem, and
//! the floor under it: the same store calls replayed with nothing else.
//!
//! Runs the simulator's `realistic` scenario (generated traffic: 300 users,
//! 20 team calendars, a simulated week; its full 1M actions, `--quick`: 20k)
//! for every strategy on locmem through `sim::runner::run`, the code path of
//! `cache-sim run --scenario realistic --timings`, with 1 and with 2 worker
//! threads (cells run in parallel; each cell is single-threaded). The
//! 2-thread figure is the one `--timings` prints for that command. The
//! figure is feed requests replayed (summed over the eight cells) per second
//! of wall time, judging every response against the ground truth included.
//!
//! The floor (`sim::floor`): every cell's calls to its stores are recorded
//! once (not timed), then replayed on one thread against fresh stores of the
//! same configuration, with nothing else running: `store-only` is the
//! cells' feed requests over the replays' summed time, so `1-thread` over
//! `store-only` is how close the simulator runs to its own store. The same
//! calls are also replayed on stores in moka's default (batched, timed)
//! maintenance mode (`sim/realistic/store-only`, subject `baseline`):
//! what the simulator's deterministic stores cost over moka's own.
//!
//! `store-only-2-threads` replays the same recordings two at a time on two
//! threads: the floor of `--threads 2`, so `2-threads` over it is how close
//! the simulator runs to its stores on two cores, and `store-only-2-threads`
//! over `store-only` is how well the stores alone scale.
//!
//! `2-processes` runs the cells in two processes (this executable started
//! again as a worker, as `cache-sim --processes 2` does) and checks that the
//! report is the one-thread run's, byte for byte.
//!
//! `sim/one-cell-4-processes/locmem` replays one strategy (`versioned`) on
//! a trace of four app processes (`realistic` spread over 4 processes,
//! 500k actions): on 1 thread, on 2 threads and in 2 processes the cell is
//! split into shards of its app processes (the runner's shards), and both
//! reports are checked identical to the 1-thread one.
//!
//! Rounds alternate the measurements ([`common::rounds`]); each
//! figure is the median round. Results: `target/bench-results/sim.jsonl`.
#![allow(missing_docs, clippy::print_stderr)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use sim::backends::BackendSpec;
use sim::floor::Recording;
use sim::runner::{registry, run, RunConfig, SourceFactory};
use sim::scenarios::realistic_config;
use sim::trace::Source;
use sim::traffic::Traffic;

/// The allocator `cache-sim` itself runs with (see `sim/src/main.rs`):
/// with glibc's malloc this suite measured 142 k requests/s where the
/// binary, on the same replay, did 210–270 k.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SUITE: &str = "sim";
const GROUP: &str = "sim/realistic/locmem";
const SEED: u64 = 1;
/// The group of one cell on a 4-process trace, split into shards.
const SHARD_GROUP: &str = "sim/one-cell-4-processes/locmem";
/// The argument that makes a worker of this executable replay the shard
/// measurement's trace rather than `realistic`.
const SHARD_WORKER: &str = "one-cell-4-processes";

/// Feed requests per second of a replay of every recording, one after the
/// other on this thread, each on fresh stores (deterministic as in the
/// simulator, or in moka's default mode, where outcomes may differ: its
/// evictions depend on timing).
fn replay_all(recordings: &[Recording], deterministic: bool) -> f64 {
    let mut secs = 0.0;
    for rec in recordings {
        let (stores, clock) = rec.stores(deterministic);
        let out = rec.replay(&stores, &clock).expect("replaying a recording");
        if deterministic {
            // The floor is only the floor if it makes the same calls with
            // the same outcomes as the cell did.
            assert_eq!(out.mismatches, 0, "{}: the replay diverged", rec.strategy);
        }
        secs += out.elapsed.as_secs_f64();
    }
    let reads: u64 = recordings.iter().map(|r| r.reads).sum();
    reads as f64 / secs
}

/// Feed requests per second of wall time when `threads` threads replay the
/// recordings side by side (each takes the next recording not yet taken, as
/// the simulator's workers take cells), on fresh deterministic stores: the
/// floor of `--threads <threads>`, so whether two cells slow each other's
/// stores is measured without the simulator.
fn replay_parallel(recordings: &[Recording], threads: usize) -> f64 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(rec) = recordings.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let (stores, clock) = rec.stores(true);
                    let out = rec.replay(&stores, &clock).expect("replaying a recording");
                    assert_eq!(out.mismatches, 0, "{}: the replay diverged", rec.strategy);
                }
            });
        }
    });
    let reads: u64 = recordings.iter().map(|r| r.reads).sum();
    reads as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // The full run replays the scenario exactly as `cache-sim run --scenario
    // realistic --timings` does (its 1M actions, the same event source and
    // defaults), so the two figures agree; `--quick` shortens it to 20k
    // actions, a sparser week with more expiries, which is slower per request.
    let quick = common::quick();
    let actions = if quick { 20_000 } else { realistic_config(SEED).actions };
    let sources: SourceFactory = Arc::new(move || {
        if !quick {
            return sim::scenarios::source("realistic", SEED);
        }
        let mut traffic = realistic_config(SEED);
        traffic.actions = actions;
        let (header, events) = Traffic::new(traffic, "realistic")?;
        Ok(Source {
            header,
            events: Box::new(events),
        })
    });
    let config = |threads: usize| {
        let mut cfg = RunConfig::new("realistic");
        cfg.seed = SEED;
        cfg.threads = threads;
        cfg
    };
    // One cell on a trace of 4 app processes, for the shard figures.
    let shard_actions = if quick { 20_000 } else { 500_000 };
    let shard_sources: SourceFactory = Arc::new(move || {
        let mut traffic = realistic_config(SEED);
        traffic.actions = shard_actions;
        traffic.processes = 4;
        let (header, events) = Traffic::new(traffic, "realistic")?;
        Ok(Source {
            header,
            events: Box::new(events),
        })
    });
    let shard_config = |threads: usize| {
        let mut cfg = config(threads);
        cfg.strategies = vec!["versioned".to_owned()];
        cfg
    };
    // A worker of a `2-processes` measurement (this same executable,
    // started by `run_in_processes`): its cells, then nothing else.
    if let Some(worker) = sim::runner::worker_from_env().expect("the worker's assignment") {
        if std::env::args().any(|a| a == SHARD_WORKER) {
            sim::runner::run_worker(&shard_config(1), &worker, shard_sources, &registry()).expect("a worker's shard");
        } else {
            sim::runner::run_worker(&config(1), &worker, sources, &registry()).expect("a worker's cells");
        }
        return;
    }
    let started = Instant::now();
    let backend = BackendSpec::parse("locmem").expect("locmem spec");
    let cfg = config(1);
    let recordings: Vec<Recording> = cfg
        .strategies
        .iter()
        .map(|s| sim::floor::record(&cfg, &sources, &registry(), s, &backend).expect("recording a cell"))
        .collect();
    let calls: usize = recordings.iter().map(Recording::calls).sum();
    eprintln!(
        "recorded {calls} store calls of {} cells in {:.0} s",
        recordings.len(),
        started.elapsed().as_secs_f64()
    );

    let (mut sim1, mut sim2, mut floor, mut default_mode) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut floor2, mut procs2) = (Vec::new(), Vec::new());
    let exe = std::env::current_exe().expect("the bench's own path");
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut one_thread_json = String::new();
    let mut reads = 0;
    let (mut shard1, mut shard2, mut shard_procs) = (Vec::new(), Vec::new(), Vec::new());
    let mut shard_reads = 0;
    let shard_args: Vec<std::ffi::OsString> = args.iter().cloned().chain([SHARD_WORKER.into()]).collect();
    for _ in 0..common::rounds() {
        for (threads, rates) in [(1, &mut sim1), (2, &mut sim2)] {
            let start = Instant::now();
            let report = run(&config(threads), sources.clone(), registry(), None).expect("simulator run");
            let secs = start.elapsed().as_secs_f64();
            reads = report.results.iter().map(|r| r.reads).sum();
            rates.push(reads as f64 / secs);
            if threads == 1 {
                one_thread_json = report.to_json();
            }
        }
        // The same cells in two processes (`cache-sim --processes 2`).
        let start = Instant::now();
        let (report, _) = sim::runner::run_in_processes(&config(1), 2, &exe, &args, sources.clone(), &registry(), None)
            .expect("the cells in two processes");
        procs2.push(reads as f64 / start.elapsed().as_secs_f64());
        assert!(
            report.to_json() == one_thread_json,
            "two processes wrote another report"
        );
        // One cell of a 4-process trace: whole, in 2 shards on 2 threads,
        // in 2 shards in 2 processes.
        let start = Instant::now();
        let whole = run(&shard_config(1), shard_sources.clone(), registry(), None).expect("the whole cell");
        shard_reads = whole.results.iter().map(|r| r.reads).sum();
        shard1.push(shard_reads as f64 / start.elapsed().as_secs_f64());
        let start = Instant::now();
        let split = run(&shard_config(2), shard_sources.clone(), registry(), None).expect("the cell in 2 shards");
        shard2.push(shard_reads as f64 / start.elapsed().as_secs_f64());
        assert!(
            split.to_json() == whole.to_json(),
            "2 shards on 2 threads wrote another report"
        );
        let start = Instant::now();
        let (split, _) = sim::runner::run_in_processes(
            &shard_config(1),
            2,
            &exe,
            &shard_args,
            shard_sources.clone(),
            &registry(),
            None,
        )
        .expect("the cell in 2 shards in 2 processes");
        shard_procs.push(shard_reads as f64 / start.elapsed().as_secs_f64());
        assert!(
            split.to_json() == whole.to_json(),
            "2 shards in 2 processes wrote another report"
        );
        floor.push(replay_all(&recordings, true));
        floor2.push(replay_parallel(&recordings, 2));
        default_mode.push(replay_all(&recordings, false));
    }
    let what = format!(
        "{reads} feed requests over {} strategies ({actions} actions each)",
        recordings.len()
    );
    common::record_rounds(SUITE, GROUP, "1-thread", &sim1, &what);
    common::record_rounds(SUITE, GROUP, "2-threads", &sim2, &what);
    common::record_rounds(
        SUITE,
        GROUP,
        "2-processes",
        &procs2,
        &format!("{what}; the cells in two processes"),
    );
    let replayed = format!("{what}; their {calls} store calls replayed alone on 1 thread");
    common::record_rounds(SUITE, GROUP, "store-only", &floor, &replayed);
    common::record_rounds(
        SUITE,
        GROUP,
        "store-only-2-threads",
        &floor2,
        &format!("{what}; their {calls} store calls replayed alone, two recordings at a time on 2 threads"),
    );
    let one_cell = format!("{shard_reads} feed requests of `versioned` on a 4-process trace ({shard_actions} actions)");
    common::record_rounds(SUITE, SHARD_GROUP, "1-thread", &shard1, &one_cell);
    common::record_rounds(
        SUITE,
        SHARD_GROUP,
        "2-threads",
        &shard2,
        &format!("{one_cell}; 2 shards of its app processes on 2 threads"),
    );
    common::record_rounds(
        SUITE,
        SHARD_GROUP,
        "2-processes",
        &shard_procs,
        &format!("{one_cell}; 2 shards of its app processes in 2 processes"),
    );
    common::record_rounds(SUITE, "sim/realistic/store-only", "deterministic", &floor, &replayed);
    common::record_rounds(
        SUITE,
        "sim/realistic/store-only",
        "baseline",
        &default_mode,
        &format!("{replayed}, on stores in moka's default maintenance mode"),
    );
}
