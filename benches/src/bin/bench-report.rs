//! Writes BENCHMARKS.md from the results the suites left under `target/`.
//!
//! Usage: `bench-report [--quick] [--target-dir DIR] [--out FILE] [--previous FILE]`
//! (`benches/run` calls it; run it by hand to re-render without re-measuring).
//! With `--previous BENCHMARKS.md`, groups this run did not measure (and the
//! invalidation curve, if its suite did not run) keep that report's figures,
//! and the report says which groups were re-measured: after running only
//! the suites a change touches (`cargo bench -p benches --bench sim`).
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use benches::{collect, collect_curve, merge_previous, parse_previous, render_curve, render_markdown, Context};

fn main() -> ExitCode {
    let mut quick = false;
    let mut target = PathBuf::from("target");
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut previous: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--target-dir" => target = args.next().map(PathBuf::from).unwrap_or(target),
            "--out" => out = args.next().map(PathBuf::from).unwrap_or(out),
            "--previous" => previous = args.next().map(PathBuf::from),
            other => {
                eprintln!("bench-report: unknown argument {other:?}; usage: bench-report [--quick] [--target-dir DIR] [--out FILE] [--previous FILE]");
                return ExitCode::from(2);
            }
        }
    }
    let mut results = match collect(&target) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-report: {e}");
            return ExitCode::FAILURE;
        }
    };
    let curve = match collect_curve(&target) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench-report: {e}");
            return ExitCode::FAILURE;
        }
    };
    if results.is_empty() {
        eprintln!(
            "bench-report: no results under {}; run the suites first (benches/run)",
            target.display()
        );
        return ExitCode::FAILURE;
    }
    let mut note = None;
    let mut kept_curve = String::new();
    if let Some(path) = &previous {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("bench-report: reading {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let prev = parse_previous(&text);
        note = merge_previous(&mut results, &prev);
        if curve.is_empty() {
            kept_curve = prev.curve;
        }
    }
    let ctx = Context {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        commit: git_commit(),
        machine: machine(),
        quick,
        note,
    };
    let md = render_markdown(&results, &ctx) + &render_curve(&curve) + &kept_curve;
    if let Err(e) = std::fs::write(&out, md) {
        eprintln!("bench-report: writing {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    eprintln!("bench-report: wrote {} ({} groups)", out.display(), results.len());
    ExitCode::SUCCESS
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let kb: f64 = s
                .lines()
                .find(|l| l.starts_with("MemTotal"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(kb / 1024.0 / 1024.0)
        })
        .unwrap_or(0.0);
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB, {}", std::env::consts::OS)
}
