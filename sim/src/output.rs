//! What `cache-sim` writes after a run: the report files, the `--timings`
//! table, the error-rate check, and the hint for
//! an access log passed as a trace.

use std::path::Path;
use std::time::Duration;

use sim::runner::CellTiming;
use sim::trace::looks_like_access_log;
use sim::{Error, Result};

/// The `--timings` table, on stderr.
pub(crate) fn print_timings(timings: &[CellTiming], wall: Duration, workers: &str) {
    eprintln!(
        "\n| strategy | backend | reads | wall s | reads/s | in backend s | in backend | backend calls | µs/call |"
    );
    eprintln!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for t in timings {
        let secs = t.wall.as_secs_f64();
        eprintln!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0}% | {} | {:.2} |",
            t.strategy,
            t.backend,
            t.reads,
            secs,
            t.reads as f64 / secs.max(1e-9),
            t.backend_time.as_secs_f64(),
            100.0 * t.backend_time.as_secs_f64() / secs.max(1e-9),
            t.backend_calls,
            t.backend_time.as_secs_f64() * 1e6 / (t.backend_calls.max(1) as f64),
        );
    }
    eprintln!("\n| strategy | backend | side | operation | calls | keys | µs/call |");
    eprintln!("|---|---|---|---|---:|---:|---:|");
    for t in timings {
        for (side, op, calls, keys, time) in &t.ops {
            eprintln!(
                "| {} | {} | {side} | {} | {calls} | {keys} | {:.2} |",
                t.strategy,
                t.backend,
                op.as_str(),
                time.as_secs_f64() * 1e6 / (*calls).max(1) as f64
            );
        }
    }
    let reads: u64 = timings.iter().map(|t| t.reads).sum();
    eprintln!(
        "\n{reads} feed requests in {:.2} s wall on {workers}: {:.0} simulated requests/s",
        wall.as_secs_f64(),
        reads as f64 / wall.as_secs_f64().max(1e-9)
    );
    if let Some(n) = timings.iter().map(|t| t.shards).max().filter(|n| *n > 1) {
        eprintln!(
            "each cell replayed as {n} shards of its app processes, in parallel (wall s: their sum; \
             every shard applies every write to its own database)"
        );
    }
    // The store's share: what a replay of the same calls alone would cost
    // at most (the `sim` benchmark measures that replay).
    let in_cells: f64 = timings.iter().map(|t| t.wall.as_secs_f64()).sum();
    let in_store: f64 = timings.iter().map(|t| t.backend_time.as_secs_f64()).sum();
    eprintln!(
        "in the store: {in_store:.2} s of the cells' {in_cells:.2} s ({:.0}%), {:.2} µs per feed request",
        100.0 * in_store / in_cells.max(1e-9),
        in_store * 1e6 / reads.max(1) as f64
    );
}

pub(crate) fn write_reports(dir: &Path, report: &sim::report::Report) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    for (name, body) in [
        ("report.json", report.to_json()),
        ("report.csv", report.to_csv()),
        ("report.md", report.to_markdown()),
        ("report.html", report.to_html()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|source| Error::Io { path, source })?;
    }
    Ok(())
}

/// Warns on stderr about every cell with backend errors (their reads fell
/// back to the database, so hit and stale counts understate the cache), and
/// fails when a cell's errors per read exceed `max_rate`.
pub(crate) fn check_errors(report: &sim::report::Report, max_rate: f64) -> Result<()> {
    let mut over = Vec::new();
    for r in report.results.iter().filter(|r| r.errors > 0) {
        // Errors inside an injected freeze, and reads the injected database
        // faults failed, are the fault doing its job: reported, not held
        // against the cell.
        let failed = r.failed_reads.unwrap_or(0).min(r.errors);
        if failed > 0 {
            eprintln!(
                "cache-sim: {} × {}: {failed} reads answered with an error: the injected database fault(s) (or timeouts) and fail-safe had no entry",
                r.strategy, r.backend
            );
        }
        let frozen = r.faults.map_or(0, |f| f.errors_in_freeze).min(r.errors - failed);
        if frozen > 0 {
            eprintln!(
                "cache-sim: {} × {}: {frozen} backend errors inside the injected freeze(s) (their reads fell back to the database)",
                r.strategy, r.backend
            );
        }
        let injected = failed + frozen;
        let errors = r.errors - injected;
        if errors == 0 {
            continue;
        }
        let rate = errors as f64 / r.reads.max(1) as f64;
        eprintln!(
            "cache-sim: warning: {} × {}: {} backend errors in {} reads ({:.2}%){}; those requests fell back to the database, so hit and stale counts understate this cell",
            r.strategy,
            r.backend,
            errors,
            r.reads,
            rate * 100.0,
            if injected > 0 { " outside injected freezes" } else { "" },
        );
        if rate > max_rate {
            over.push(format!("{} × {} ({:.2}%)", r.strategy, r.backend, rate * 100.0));
        }
    }
    if over.is_empty() {
        Ok(())
    } else {
        Err(Error::ErrorRate(format!(
            "backend error rate above --max-error-rate {:.2}% in {} cell(s): {}",
            max_rate * 100.0,
            over.len(),
            over.join(", ")
        )))
    }
}

/// A trace that fails on line 1 but whose first line looks like an access
/// log: say so.
pub(crate) fn access_log_hint(e: Error, file: &Path) -> Error {
    let line1 = |e: &Error| matches!(e, Error::Trace { line: 1, .. });
    if !line1(&e) {
        return e;
    }
    let first = std::fs::File::open(file).ok().and_then(|f| {
        use std::io::BufRead;
        std::io::BufReader::new(f).lines().next().and_then(|l| l.ok())
    });
    if first.as_deref().is_some_and(looks_like_access_log) {
        Error::Invalid(format!(
            "{e}\n  hint: line 1 looks like a web server access log; did you mean `--format access-log`?"
        ))
    } else {
        e
    }
}
