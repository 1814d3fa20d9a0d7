//! A cell split by app process (`runner`'s shards): when a run has fewer
//! cells than threads and its processes share nothing but the database
//! (plain `locmem`), the processes replay in parallel and their parts add
//! up to the report one replay writes, byte for byte, for every strategy,
//! with a store that evicts and one that does not; in worker processes
//! too; and a worker given a malformed shard says so.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{cache_sim, read};

/// A 3-process trace of generated traffic.
fn trace(dir: &Path) -> String {
    let path = dir.join("t3.jsonl");
    let p = path.to_str().unwrap();
    let out = cache_sim(&[
        "generate",
        "--scenario",
        "realistic",
        "--processes",
        "3",
        "--actions",
        "12000",
        "--days",
        "2",
        "--out",
        p,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    p.to_owned()
}

/// Replays `trace` and returns the `--timings` output.
fn replay(trace: &str, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["replay", trace, "--quiet", "--timings", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = cache_sim(&args);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{extra:?}: {stderr}");
    stderr
}

fn same_reports(a: &Path, b: &Path, what: &str) {
    for file in ["report.json", "report.md", "report.csv", "report.html"] {
        assert!(read(a, file) == read(b, file), "{what}: {file} differs");
    }
}

#[test]
fn shards_add_up_to_the_whole_cell_for_every_strategy() {
    let tmp = tempfile::tempdir().unwrap();
    let t = trace(tmp.path());
    for backend in ["locmem", "locmem:1"] {
        for strategy in cache_core::strategy::NAMES {
            let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
            let args = ["--strategies", strategy, "--backend", backend];
            let one = replay(&t, &whole, &[&args[..], &["--threads", "1"]].concat());
            assert!(!one.contains("shards"), "{one}");
            let two = replay(&t, &split, &[&args[..], &["--threads", "2"]].concat());
            assert!(two.contains("replayed as 2 shards"), "{strategy} on {backend}: {two}");
            same_reports(&whole, &split, &format!("{strategy} on {backend}"));
        }
    }
}

#[test]
fn several_cells_split_when_threads_are_left_over() {
    let tmp = tempfile::tempdir().unwrap();
    let t = trace(tmp.path());
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    let args = ["--strategies", "versioned,stamped", "--backend", "locmem:1"];
    replay(&t, &whole, &[&args[..], &["--threads", "1"]].concat());
    // 4 threads for 2 cells: 2 shards each, 3 processes over them.
    let four = replay(&t, &split, &[&args[..], &["--threads", "4"]].concat());
    assert!(four.contains("replayed as 2 shards"), "{four}");
    same_reports(&whole, &split, "two cells on four threads");
}

#[test]
fn a_shared_store_or_faults_keep_the_cell_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let t = trace(tmp.path());
    let out = tmp.path().join("out");
    for extra in [
        &["--backend", "shared-locmem"][..],
        &["--backend", "two-tier:locmem:1+locmem:4"],
        &["--freeze", "10:5"],
        &["--fail-safe", "600"],
    ] {
        let args = [&["--strategies", "versioned", "--threads", "2"][..], extra].concat();
        let timings = replay(&t, &out, &args);
        assert!(!timings.contains("shards"), "{extra:?}: {timings}");
    }
}

#[test]
fn worker_processes_replay_a_shard_of_every_cell_and_add_up_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let t = trace(tmp.path());
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    let args = ["--strategies", "versioned,stamped,wildcard", "--backend", "locmem:1"];
    replay(&t, &whole, &[&args[..], &["--threads", "1"]].concat());
    // 3 cells, 4 processes: a shard per app process (3), each worker
    // replaying its shard of all three cells.
    let four = replay(&t, &split, &[&args[..], &["--processes", "4"]].concat());
    assert!(four.contains("on 4 processes"), "{four}");
    assert!(four.contains("replayed as 3 shards"), "{four}");
    same_reports(&whole, &split, "three cells in shards over processes");
    // As many cells as processes: the strategies are split, not the cells.
    let two = replay(&t, &split, &["--strategies", "versioned,stamped", "--processes", "2"]);
    assert!(!two.contains("shards"), "{two}");
}

#[test]
fn a_worker_given_a_bad_shard_says_so() {
    // A worker's parent is this test process, so only the shard is wrong.
    let tmp = tempfile::tempdir().unwrap();
    let rows = tmp.path().join("rows.json");
    for shard in ["2/2", "1/0", "x/2", "1"] {
        let value = format!("{}\t{}\tversioned\t{shard}", std::process::id(), rows.display());
        let out = Command::new(env!("CARGO_BIN_EXE_cache-sim"))
            .args(["run", "--scenario", "seed-october-2025", "--quiet"])
            .env("CACHE_SIM_WORKER", value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{shard}");
        assert!(stderr.contains("bad shard"), "{shard}: {stderr}");
        assert!(!rows.exists(), "{shard}: a worker with a bad shard wrote rows");
    }
}
