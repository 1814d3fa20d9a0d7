//! Backend errors are visible: a server that dies and stays down ends the
//! run with a clear error within a bounded time, a server that does not
//! speak the protocol fails at connect, and a run whose error rate exceeds
//! `--max-error-rate` exits non-zero with a warning on stderr (after writing
//! its report). Real servers, started by the testkit.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::redis::{command, RedisServer};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cache-sim")
}

/// A long trace (generated `realistic` traffic, seed 3) in `dir`.
fn long_trace(dir: &Path) -> PathBuf {
    let path = dir.join("long.jsonl");
    let out = Command::new(bin())
        .args([
            "generate",
            "--scenario",
            "realistic",
            "--seed",
            "3",
            "--actions",
            "200000",
            "--out",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_redis_that_dies_and_stays_down_ends_the_run_within_a_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let trace = long_trace(dir.path());
    let mut server = RedisServer::new().unwrap();
    let port = server.port();
    let started = Instant::now();
    let child = Command::new(bin())
        .args([
            "replay",
            "--strategies",
            "fixed-month,versioned",
            "--max-outage-s",
            "3",
            "--backend",
        ])
        .arg(server.url())
        .arg(&trace)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once the run has written to it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let keys: u64 = command(port, &["DBSIZE"])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if keys > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the run never wrote to the server");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    let killed_at = started.elapsed();
    let out = child.wait_with_output().unwrap();
    let after_kill = started.elapsed() - killed_at;
    let all = text(&out);
    assert!(!out.status.success(), "a dead server must fail the run:\n{all}");
    assert!(
        all.contains("stopped answering"),
        "the error says the server stopped answering:\n{all}"
    );
    // 3 s of failing calls, plus a reconnect attempt or command timeout
    // (1 s each) in flight: about 3.5 s on a quiet machine (16 s while
    // reads that bypassed the cache for a pending bump, which make no
    // backend call, kept ending the streak of errors), up to ~20 s when
    // the test suite loads both cores; far below the hundreds of seconds it
    // took when every request waited on its own.
    assert!(
        after_kill < Duration::from_secs(30),
        "took {after_kill:?} after the kill:\n{all}"
    );
}

#[test]
fn a_memcache_url_at_a_redis_port_or_a_silent_port_fails_at_connect() {
    let redis = RedisServer::new().unwrap();
    let started = Instant::now();
    let out = Command::new(bin())
        .args(["run", "--scenario", "stale-set-race", "--backend"])
        .arg(format!("memcache://127.0.0.1:{}", redis.port()))
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!out.status.success());
    assert!(all.contains("does not answer as memcached"), "{all}");
    assert!(
        !all.contains("| fixed-month"),
        "no table for a backend that failed at connect:\n{all}"
    );

    // A port that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let _accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming() {
            held.push(s);
        }
    });
    for scheme in ["memcache", "redis"] {
        let out = Command::new(bin())
            .args(["run", "--scenario", "stale-set-race", "--backend"])
            .arg(format!("{scheme}://127.0.0.1:{port}"))
            .output()
            .unwrap();
        let all = text(&out);
        assert!(!out.status.success(), "{scheme} at a silent port must fail:\n{all}");
        assert!(
            all.contains("cannot connect") || all.contains("does not answer"),
            "{all}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn errors_above_the_max_error_rate_warn_and_exit_non_zero_after_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let trace = long_trace(dir.path());
    let mut server = MemcachedServer::spawn(&MemcachedConfig::default().memory_mb(64)).unwrap();
    let out_dir = dir.path().join("out");
    let child = Command::new(bin())
        .args([
            "replay",
            "--strategies",
            "fixed-month",
            "--max-error-rate",
            "0",
            "--backend",
        ])
        .arg(server.url())
        .arg("--out")
        .arg(&out_dir)
        .arg(&trace)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A short outage: the run goes on (fail-open) and counts the errors.
    std::thread::sleep(Duration::from_millis(1500));
    server.stop();
    std::thread::sleep(Duration::from_millis(600));
    server.start().unwrap();
    let out = child.wait_with_output().unwrap();
    let all = text(&out);
    assert!(!out.status.success(), "errors above the rate must fail:\n{all}");
    assert!(all.contains("warning: fixed-month"), "a warning names the cell:\n{all}");
    assert!(all.contains("--max-error-rate"), "{all}");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    let row = md.lines().find(|l| l.starts_with("| fixed-month")).unwrap();
    let errors: u64 = row.split('|').nth(17).unwrap().trim().parse().unwrap();
    assert!(errors > 0, "the report's errors column counts them: {row}");

    // The same trace on locmem has no errors and exits 0 at rate 0.
    let out = Command::new(bin())
        .args(["replay", "--strategies", "fixed-month", "--max-error-rate", "0"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("warning"));
}
