//! Simulator throughput: simulated feed requests per second on locmem.
//!
//! Runs the simulator's `realistic` scenario (generated traffic: 300 users,
//! 20 team calendars, a simulated week; its full 1M actions, `--quick`: 20k)
//! for every strategy on locmem through `sim::runner::run`, the code path of
//! `cache-sim run --scenario realistic --timings`, with 1 and then 2 worker
//! threads (cells run in parallel; each cell is single-threaded). The
//! 2-thread figure is the one `--timings` prints for that command. The figure is feed requests
//! replayed (summed over the eight cells) per second of wall time, judging
//! every response against the ground truth included. Results:
//! `target/bench-results/sim.jsonl`, group `sim/realistic/locmem`.
#![allow(missing_docs, clippy::print_stderr)]

mod common;

use std::sync::Arc;
use std::time::Instant;

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
const SEED: u64 = 1;

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
    for threads in [1, 2] {
        let mut cfg = RunConfig::new("realistic");
        cfg.seed = SEED;
        cfg.threads = threads;
        let start = Instant::now();
        let report = run(&cfg, sources.clone(), registry(), None).expect("simulator run");
        let secs = start.elapsed().as_secs_f64();
        let reads: u64 = report.results.iter().map(|r| r.reads).sum();
        let subject = if threads == 1 {
            "1-thread".to_owned()
        } else {
            format!("{threads}-threads")
        };
        common::record(
            SUITE,
            "sim/realistic/locmem",
            &subject,
            reads as f64 / secs,
            format!(
                "{reads} feed requests over {} strategies ({actions} actions each) in {secs:.1} s",
                report.results.len()
            ),
        );
    }
}
