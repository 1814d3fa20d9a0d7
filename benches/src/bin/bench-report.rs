//! Writes BENCHMARKS.md from the results the suites left under `target/`.
//!
//! Usage: `bench-report [--quick] [--target-dir DIR] [--out FILE]`
//! (`benches/run` calls it; run it by hand to re-render without re-measuring).
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use benches::{collect, collect_curve, render_curve, render_markdown, Context};

fn main() -> ExitCode {
    let mut quick = false;
    let mut target = PathBuf::from("target");
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--target-dir" => target = args.next().map(PathBuf::from).unwrap_or(target),
            "--out" => out = args.next().map(PathBuf::from).unwrap_or(out),
            other => {
                eprintln!("bench-report: unknown argument {other:?}; usage: bench-report [--quick] [--target-dir DIR] [--out FILE]");
                return ExitCode::from(2);
            }
        }
    }
    let results = match collect(&target) {
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
    let ctx = Context {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        commit: git_commit(),
        machine: machine(),
        quick,
    };
    let md = render_markdown(&results, &ctx) + &render_curve(&curve);
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
