//! Access logs with writes: routes turn POST/PATCH/DELETE into item writes,
//! `at_risk_reads` separates strategies that invalidate a whole scope from
//! those that invalidate by date, lenient parsing counts skipped lines by
//! reason, `--strict` stops at the first bad one, and a log given as a trace
//! gets the `--format access-log` hint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use sim::report::Report;
use sim::runner::{registry, run, RunConfig};
use sim::trace::{open_access_log_with, reason, scan_access_log, AccessLogOptions, Event, ScopeFrom};

/// `[dd/Mon/yyyy:HH:MM:SS +0000]` `s` seconds after 2025-10-06 09:00 UTC.
fn stamp(s: u32) -> String {
    format!(
        "[06/Oct/2025:{:02}:{:02}:{:02} +0000]",
        9 + s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

const OCT: &str = "start=2025-09-29T00%3A00%3A00Z&end=2025-11-10T00%3A00%3A00Z";
const NOV: &str = "start=2025-10-27T00%3A00%3A00Z&end=2025-12-08T00%3A00%3A00Z";

/// Two users reading two month views in rounds, alice creating or editing
/// a work item between rounds, plus noise: a static file, a bad feed line, a
/// `+` left unencoded, a truncated line and garbage.
fn log(dir: &Path) -> PathBuf {
    let mut lines = Vec::new();
    let mut s = 0;
    for round in 0..6 {
        for user in ["alice", "bob"] {
            for range in [OCT, NOV] {
                s += 5;
                lines.push(format!(
                    "10.0.0.1 - {user} {} \"GET /calendar/feed?{range} HTTP/1.1\" 200 5120 \"-\" \"Mozilla\"",
                    stamp(s)
                ));
            }
        }
        s += 5;
        let write = if round % 2 == 0 {
            "POST /api/work-items"
        } else {
            "PATCH /api/work-items/17"
        };
        lines.push(format!("10.0.0.1 - alice {} \"{write} HTTP/1.1\" 201 80", stamp(s)));
        lines.push(format!(
            "10.0.0.9 - - {} \"GET /static/app.js HTTP/1.1\" 200 99",
            stamp(s)
        ));
    }
    lines.push(format!(
        "10.0.0.1 - bob {} \"GET /calendar/feed?start=undefined&end=2025-11-10T00%3A00%3A00Z HTTP/1.1\" 200 5",
        stamp(s + 1)
    ));
    lines.push(format!(
        "10.0.0.1 - bob {} \"GET /calendar/feed?start=2025-09-29T00:00:00+08:00&end=2025-11-10T00:00:00+08:00 HTTP/1.1\" 200 5",
        stamp(s + 2)
    ));
    lines.push("10.0.0.1 - bob [06/Oct/2025:09:0".into());
    lines.push("garbage ###".into());
    lines.push(format!(
        "10.0.0.2 - - {} \"DELETE /api/work-items/17 HTTP/1.1\" 204 0",
        stamp(s + 3)
    ));
    let path = dir.join("access.log");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn replay(path: &Path, opts: AccessLogOptions) -> Report {
    let mut cfg = RunConfig::new("replay");
    cfg.judge_stale = false;
    let path = path.to_owned();
    run(
        &cfg,
        Arc::new(move || open_access_log_with(&path, &opts)),
        registry(),
        None,
    )
    .unwrap()
}

#[test]
fn fixed_month_is_at_risk_and_versioned_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let report = replay(&log(dir.path()), AccessLogOptions::default());
    let cell = |s: &str| report.results.iter().find(|r| r.strategy == s).unwrap();
    // 3 creates, 3 edits, 1 delete.
    assert_eq!(cell("versioned").writes, 7);
    assert!(
        cell("fixed-month").at_risk_reads > 0,
        "fixed-month invalidates only the write's month: the other month's cached feed is at risk"
    );
    assert_eq!(
        cell("versioned").at_risk_reads,
        0,
        "versioned invalidates the whole scope"
    );
    for r in &report.results {
        assert_eq!(
            r.stale_reads, 0,
            "{}: stale reads are not judged for an access log",
            r.strategy
        );
    }
    assert!(!report.stale_judged);
    // The verdict goes by at-risk reads for a log, and says so.
    let rec = report.recommendation.as_ref().unwrap();
    assert_ne!(rec.strategy.as_deref(), Some("fixed-month"));
    let fixed = rec.why_not.iter().find(|w| w.strategy == "fixed-month").unwrap();
    assert!(
        fixed.reason.starts_with("served 10 at-risk reads of "),
        "{}",
        fixed.reason
    );
    assert!(rec.why.starts_with("0 at-risk reads"), "{}", rec.why);
}

#[test]
fn lenient_parsing_counts_skipped_lines_by_reason_and_strict_stops_at_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = log(dir.path());
    let sum = scan_access_log(&path, &AccessLogOptions::default()).unwrap();
    assert_eq!(sum.feed_reads, 6 * 4 + 1, "the unencoded `+` line is read");
    assert_eq!(sum.writes, 7);
    assert_eq!(sum.other_requests, 6);
    let bad = &sum.skipped[reason::BAD_FEED];
    assert_eq!(bad.lines, 1);
    assert!(
        bad.examples[0].contains(":37:") && bad.examples[0].contains("undefined"),
        "{:?}",
        bad.examples
    );
    assert_eq!(sum.skipped[reason::NOT_A_REQUEST].lines, 2);
    assert_eq!(sum.skipped.len(), 2);

    let e = scan_access_log(&path, &AccessLogOptions::strict())
        .unwrap_err()
        .to_string();
    assert!(e.contains("access.log:37:") && e.contains("`start`"), "{e}");

    // The binary: the report shows the counts; --strict exits non-zero.
    let out_dir = dir.path().join("out");
    let ok = Command::new(env!("CARGO_BIN_EXE_cache-sim"))
        .args(["replay", "--format", "access-log", "--out"])
        .arg(&out_dir)
        .arg(&path)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("| bad feed parameters | 1 |"), "{md}");
    assert!(md.contains("| not a request line | 2 |"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["access_log"]["skipped"]["bad feed parameters"]["lines"], 1);
    let strict = Command::new(env!("CARGO_BIN_EXE_cache-sim"))
        .args(["replay", "--format", "access-log", "--strict"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("access.log:37:"));
}

#[test]
fn anonymous_clients_get_their_ip_as_scope_and_query_scopes_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    std::fs::write(
        &path,
        format!(
            "10.0.0.1 - - {} \"GET /feed?{OCT}&cal=team-1 HTTP/1.1\" 200 1\n\
             10.0.0.2 - - {} \"GET /feed?{OCT}&cal=team-2 HTTP/1.1\" 200 1\n",
            stamp(1),
            stamp(2)
        ),
    )
    .unwrap();
    let scopes = |opts: AccessLogOptions| -> Vec<String> {
        open_access_log_with(&path, &opts)
            .unwrap()
            .events
            .map(|e| match e.unwrap() {
                Event::Read { view, .. } => view.scopes[0].as_str().to_owned(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(scopes(AccessLogOptions::default()), ["ip:10.0.0.1", "ip:10.0.0.2"]);
    let mut q = AccessLogOptions::default();
    q.scope_from = ScopeFrom::parse("query:cal").unwrap();
    assert_eq!(scopes(q), ["team-1", "team-2"]);
    assert!(ScopeFrom::parse("cookie").is_err());
}

#[test]
fn a_log_replayed_as_a_trace_suggests_format_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cache-sim"))
        .arg("replay")
        .arg(log(dir.path()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("did you mean `--format access-log`"), "{e}");
}
