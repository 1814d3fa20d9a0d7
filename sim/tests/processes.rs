//! `cache-sim --processes N`: the cells run in worker processes (the same
//! executable), and the report is the one a single process writes, byte for
//! byte, in every format; a backend that is not in-process is refused with
//! the reason; a worker that fails fails the run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{cache_sim, read};

fn sim_strategies() -> [&'static str; 8] {
    cache_core::strategy::NAMES
}

#[test]
fn processes_write_the_report_one_process_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, three) = (tmp.path().join("one"), tmp.path().join("three"));
    // `seed-october-2025` runs every strategy, so the three processes get
    // 3, 3 and 2 cells.
    for (dir, extra) in [(&one, ["--threads", "1"]), (&three, ["--processes", "3"])] {
        let out = cache_sim(&[
            "run",
            "--scenario",
            "seed-october-2025",
            "--quiet",
            "--timings",
            "--out",
            dir.to_str().unwrap(),
            extra[0],
            extra[1],
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{extra:?}: {stderr}");
        if extra[0] == "--processes" {
            // Every cell's timing came back, from the workers' cells too
            // (this process ran the 1st, 4th and 7th strategy).
            assert!(stderr.contains("on 3 processes"), "{stderr}");
            for s in sim_strategies() {
                assert!(stderr.contains(&format!("| {s} | locmem | ")), "{s}: {stderr}");
            }
        }
    }
    for file in ["report.json", "report.md", "report.csv", "report.html"] {
        assert!(
            read(&one, file) == read(&three, file),
            "{file} differs between 1 and 3 processes"
        );
    }
    let json = String::from_utf8(read(&three, "report.json")).unwrap();
    for s in sim_strategies() {
        assert!(json.contains(&format!("\"strategy\": \"{s}\"")), "{s} missing");
    }
}

#[test]
fn a_server_backend_is_refused_with_the_reason() {
    let out = cache_sim(&[
        "run",
        "--scenario",
        "seed-october-2025",
        "--quiet",
        "--processes",
        "2",
        "--backend",
        "redis://127.0.0.1:1",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--processes") && stderr.contains("not an in-process store"),
        "{stderr}"
    );
}

#[test]
fn a_worker_that_cannot_write_its_rows_says_where() {
    let out = Command::new(env!("CARGO_BIN_EXE_cache-sim"))
        .args(["run", "--scenario", "seed-october-2025", "--quiet"])
        .env(
            "CACHE_SIM_WORKER",
            format!("{}\t/nonexistent-dir/rows.json\tstamped", std::process::id()),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/nonexistent-dir/rows.json"), "{stderr}");
}

#[test]
fn a_stray_worker_variable_is_an_error_not_a_silent_run() {
    // Set in a user's shell, not by a parent `cache-sim`: the run must not
    // quietly become a worker that prints nothing.
    for value in ["1\t/tmp/rows.json\tstamped", "garbage"] {
        let out = Command::new(env!("CARGO_BIN_EXE_cache-sim"))
            .args(["run", "--scenario", "seed-october-2025", "--quiet"])
            .env("CACHE_SIM_WORKER", value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{value:?}");
        assert!(
            stderr.contains("CACHE_SIM_WORKER") && stderr.contains("unset it"),
            "{stderr}"
        );
    }
}

#[test]
fn processes_out_of_range_are_refused() {
    for bad in ["0", "17"] {
        let out = cache_sim(&["run", "--scenario", "seed-october-2025", "--processes", bad]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--processes"));
    }
}
