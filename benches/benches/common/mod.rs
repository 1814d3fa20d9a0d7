//! Pieces the `harness = false` load suites share: the runtime, a
//! time-based throughput loop, interleaved rounds, and where results go.
//!
//! Each suite includes this file with `mod common;` and uses part of it, so
//! unused-item warnings are expected per suite.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::LoadResult;

/// True in `benches/run --quick` (the script exports `BENCH_QUICK=1`).
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The cargo target directory: `BENCH_TARGET_DIR` (set by `benches/run`),
/// else derived from this executable (`<target>/release/deps/<suite>-<hash>`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BENCH_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_owned()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The runtime the load suites drive clients from: two workers, as many as
/// this machine's cores, like the backend authors' own throughput examples.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// How long one measurement lasts: long enough for a stable rate in a full
/// run, just long enough to exercise the code in `--quick`.
pub fn measure_time() -> Duration {
    if quick() {
        Duration::from_millis(400)
    } else {
        Duration::from_secs(3)
    }
}

/// Rounds per subject. Subjects alternate round by round so that each sees
/// the same background load; the median round is reported.
pub fn rounds() -> usize {
    if quick() {
        1
    } else {
        3
    }
}

/// Runs `op(task, iteration)` in a loop on `tasks` concurrent tasks; after a
/// warm-up (connection pools fill, caches warm), counts completed operations
/// for `duration`. Returns operations per second.
///
/// Tasks keep running while the count is read, so the measured window is
/// always at full concurrency (no ramp-up or tail where fewer tasks run).
pub async fn measure<F, Fut>(tasks: usize, duration: Duration, op: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (op, stop, count) = (op.clone(), stop.clone(), count.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    op(t, i).await;
                    i += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(duration / 5 + Duration::from_millis(100)).await;
    let before = count.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    let done = count.load(Ordering::Relaxed) - before;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.expect("load task panicked");
    }
    done as f64 / elapsed
}

/// The median of `rates` (the middle round; the upper middle for an even count).
pub fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Appends one figure to `target/bench-results/<suite>.jsonl` and echoes it.
pub fn record(suite: &str, group: &str, subject: &str, ops_per_sec: f64, detail: String) {
    eprintln!("{group:<44} {subject:<16} {ops_per_sec:>12.0} ops/s  ({detail})");
    LoadResult {
        group: group.to_owned(),
        subject: subject.to_owned(),
        ops_per_sec,
        detail,
    }
    .append(&target_dir(), suite)
    .expect("writing bench results");
}

/// [`record`] of the median of per-round `rates`, with `what` and the
/// rounds as the detail.
pub fn record_rounds(suite: &str, group: &str, subject: &str, rates: &[f64], what: &str) {
    record(
        suite,
        group,
        subject,
        median(rates),
        format!("{what}, {}", rounds_detail(rates)),
    );
}

/// Formats per-round rates for a result's detail.
pub fn rounds_detail(rates: &[f64]) -> String {
    let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    format!("median of rounds [{}]", list.join(", "))
}
