//! Issue 15: every hostile input the release binary once panicked, aborted
//! or silently mis-handled on is now a clear error and a non-zero exit, with
//! the address space capped at 4 GB (`ulimit -v 4000000`) so that an
//! allocation in proportion to the input shows up as an abort here.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

const HEADER: &str = r#"{"format":"cache-sim-trace","version":1,"start":"2025-10-06T01:00:00Z","processes":1}"#;
const READ: &str =
    r#""type":"read","scopes":["cal:1"],"start":"2025-09-29T00:00:00+08:00","end":"2025-11-10T00:00:00+08:00""#;

/// Runs `cache-sim ARGS` under `ulimit -v 4000000`; returns the exit code
/// and stderr. A death by signal (abort) fails the test.
fn cache_sim(args: &[&str]) -> (i32, String) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -v 4000000 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_cache-sim"))
        .args(args)
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("cache-sim {args:?} died by a signal: {:?}\n{stderr}", out.status));
    assert!(!stderr.contains("panicked"), "cache-sim {args:?} panicked:\n{stderr}");
    assert!(
        !stderr.contains("memory allocation"),
        "cache-sim {args:?} aborted:\n{stderr}"
    );
    (code, stderr)
}

/// Asserts `cache-sim ARGS` fails with status `code` and a message holding
/// every one of `needles`.
fn fails(args: &[&str], code: i32, needles: &[&str]) {
    let (got, stderr) = cache_sim(args);
    assert_eq!(got, code, "cache-sim {args:?}:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "cache-sim {args:?}: {n:?} not in:\n{stderr}");
    }
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::File::create(&path).unwrap().write_all(bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn a_valid_run_succeeds_under_the_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_file(
        dir.path(),
        "ok.jsonl",
        format!("{HEADER}\n{{\"t_us\":0,{READ}}}\n").as_bytes(),
    );
    let (code, stderr) = cache_sim(&["replay", &trace, "--strategies", "versioned", "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn huge_durations_are_refused_by_name() {
    for (option, value) in [
        ("--ttl", "18446744073709551615"),
        ("--ttl", "9223372036854775807"),
        ("--ttl", "0"),
        ("--short-ttl", "18446744073709551615"),
        ("--short-ttl", "9223372036854775807"),
        ("--invalidate-delay-us", "18446744073709551615"),
        ("--db-latency-us", "18446744073709551615"),
        ("--cache-latency-us", "18446744073709551615"),
        ("--bucket-s", "0"),
        ("--bucket-s", "18446744073709551615"),
    ] {
        fails(&["run", option, value], 2, &[option, value, "is not in"]);
    }
}

#[test]
fn huge_sizes_are_refused_by_name() {
    for (option, value) in [
        ("--item-bytes", "18446744073709551615"),
        ("--item-bytes", "100000000"),
        ("--threads", "0"),
        ("--threads", "100000"),
    ] {
        fails(&["run", option, value], 2, &[option, value, "is not in"]);
    }
    fails(
        &["run", "--backend", "locmem:18446744073709551615"],
        2,
        &["--backend", "locmem:N"],
    );
}

#[test]
fn generate_bounds_users_days_processes_and_actions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.jsonl");
    let out = out.to_str().unwrap();
    for (option, value) in [
        ("--days", "4000000000"),
        ("--days", "0"),
        ("--users", "4000000000"),
        ("--users", "0"),
        ("--processes", "4000000000"),
        ("--processes", "0"),
        ("--actions", "18446744073709551615"),
        ("--actions", "0"),
    ] {
        fails(&["generate", "--out", out, option, value], 2, &[option, value]);
        assert!(!Path::new(out).exists(), "{option} {value} wrote a trace");
    }
    // Options of the generator on a scripted scenario are an error, not ignored.
    fails(
        &[
            "generate",
            "--scenario",
            "seed-october-2025",
            "--out",
            out,
            "--users",
            "3",
        ],
        1,
        &["--users", "realistic only"],
    );
}

/// Replays `body` as a trace; asserts a failure naming the line and field.
fn trace_fails(body: &[u8], line: u64, field: &str, needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let trace = write_file(dir.path(), "t.jsonl", body);
    fails(
        &["replay", &trace, "--strategies", "versioned", "--quiet"],
        1,
        &[&format!("t.jsonl:{line}: field `{field}`"), needle],
    );
}

#[test]
fn trace_headers_declaring_absurd_process_counts_are_refused() {
    for processes in ["100000000", "1000000", "0", "4294967296"] {
        let header = HEADER.replace(r#""processes":1"#, &format!(r#""processes":{processes}"#));
        trace_fails(
            format!("{header}\n{{\"t_us\":0,{READ}}}\n").as_bytes(),
            1,
            "processes",
            "outside 1..=1024",
        );
    }
}

#[test]
fn event_times_beyond_the_span_are_refused() {
    for t in ["1000000000000000000", "18446744073709551615", "9223372036854775807"] {
        trace_fails(
            format!("{HEADER}\n{{\"t_us\":0,{READ}}}\n{{\"t_us\":{t},{READ}}}\n").as_bytes(),
            3,
            "t_us",
            "3,660 days",
        );
    }
}

#[test]
fn duplicated_fields_are_refused() {
    trace_fails(
        format!("{HEADER}\n{{\"t_us\":0,\"t_us\":5,{READ}}}\n").as_bytes(),
        2,
        "t_us",
        "appears twice",
    );
    let header = HEADER.replace(r#""processes":1"#, r#""processes":1,"processes":4"#);
    trace_fails(
        format!("{header}\n{{\"t_us\":0,{READ}}}\n").as_bytes(),
        1,
        "processes",
        "appears twice",
    );
}

#[test]
fn scope_names_too_long_for_a_cache_key_are_refused() {
    let long = "x".repeat(9000);
    let read = READ.replace("cal:1", &long);
    trace_fails(
        format!("{HEADER}\n{{\"t_us\":0,{read}}}\n").as_bytes(),
        2,
        "scopes",
        "at most 256",
    );
    let many = (0..400)
        .map(|i| format!("\"cal:{i:08}\""))
        .collect::<Vec<_>>()
        .join(",");
    let read = READ.replace("\"cal:1\"", &many);
    trace_fails(
        format!("{HEADER}\n{{\"t_us\":0,{read}}}\n").as_bytes(),
        2,
        "scopes",
        "4096 bytes",
    );
}

#[test]
fn non_utf8_and_endless_lines_name_their_line() {
    let mut body = format!("{HEADER}\n{{\"t_us\":0,{READ}}}\n").into_bytes();
    body.extend_from_slice(b"{\"t_us\":1,\"type\":\"re\xffad\"}\n");
    trace_fails(&body, 3, "<line>", "not UTF-8");
    let mut body = format!("{HEADER}\n").into_bytes();
    body.extend(std::iter::repeat_n(b' ', 3 << 20));
    trace_fails(&body, 2, "<line>", "longer than");
}

#[test]
fn access_logs_spanning_millennia_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let req =
        "\"GET /feed?start=2025-09-29T00%3A00%3A00%2B08%3A00&end=2025-11-10T00%3A00%3A00%2B08%3A00 HTTP/1.1\" 200 5";
    let log = format!(
        "10.0.0.1 - alice [01/Jan/1970:00:00:00 +0000] {req}\n10.0.0.1 - alice [31/Dec/9999:23:59:59 +0000] {req}\n"
    );
    let path = write_file(dir.path(), "access.log", log.as_bytes());
    fails(
        &[
            "replay",
            "--format",
            "access-log",
            &path,
            "--strategies",
            "versioned",
            "--quiet",
        ],
        1,
        &["access.log:2: field `timestamp`", "at most 3660 days"],
    );
    let mut bad = log.into_bytes();
    bad.truncate(10);
    bad.extend_from_slice(b"\xff\xfe\n");
    let path = write_file(dir.path(), "bad.log", &bad);
    fails(
        &["replay", "--format", "access-log", &path, "--quiet"],
        1,
        &["bad.log:1: field `<line>`", "not UTF-8"],
    );
}

/// Item errors ("create of item 1 which exists") are found while replaying,
/// not while reading: each event carries its line so the replay can name it.
#[test]
fn events_carry_their_source_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = r#""type":"create","item":1,"scope":"cal:1","start":"2025-10-08T13:00:00Z","end":"2025-10-08T14:00:00Z","work_type":"task","status":"open""#;
    let body = format!("{HEADER}\n{{\"t_us\":0,{READ}}}\n\n{{\"t_us\":1,{write}}}\n{{\"t_us\":2,{write}}}\n");
    let path = dir.path().join("t.jsonl");
    std::fs::write(&path, body).unwrap();
    let lines: Vec<u64> = sim::trace::open_trace(&path)
        .unwrap()
        .events
        .map(|e| e.unwrap().line())
        .collect();
    assert_eq!(lines, [2, 4, 5]);
    let generated = sim::scenarios::source("seed-october-2025", 1).unwrap();
    assert!(generated.events.take(50).all(|e| e.unwrap().line() == 0));
}

#[test]
fn replay_errors_can_name_the_event_line() {
    let e = sim::Error::Invalid("create of item 1 which exists".into());
    assert_eq!(e.at_line(5).to_string(), "line 5: create of item 1 which exists");
    let e = sim::Error::Invalid("x".into());
    assert_eq!(e.at_line(0).to_string(), "x", "generated events have no line");
}

/// The longest span a trace may have, with the finest staleness buckets:
/// the timeline keeps only buckets that had reads (it once kept one slot
/// per bucket over the whole span, 316 M here, and aborted on allocation).
#[test]
fn a_ten_year_trace_with_one_second_buckets_runs() {
    let dir = tempfile::tempdir().unwrap();
    let last = sim::trace::MAX_T_US;
    let trace = write_file(
        dir.path(),
        "span.jsonl",
        format!("{HEADER}\n{{\"t_us\":0,{READ}}}\n{{\"t_us\":{last},{READ}}}\n").as_bytes(),
    );
    let (code, stderr) = cache_sim(&[
        "replay",
        &trace,
        "--strategies",
        "versioned",
        "--quiet",
        "--bucket-s",
        "1",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

/// End to end: a trace that creates one item twice fails naming the line
/// of the second create.
#[test]
fn a_replayed_item_error_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = r#""type":"create","item":1,"scope":"cal:1","start":"2025-10-08T13:00:00Z","end":"2025-10-08T14:00:00Z","work_type":"task","status":"open""#;
    let trace = write_file(
        dir.path(),
        "twice.jsonl",
        format!("{HEADER}\n{{\"t_us\":0,{READ}}}\n{{\"t_us\":1,{write}}}\n{{\"t_us\":2,{write}}}\n").as_bytes(),
    );
    let (code, stderr) = cache_sim(&["replay", &trace, "--strategies", "versioned", "--quiet"]);
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("line 4") && stderr.contains("item 1"), "{stderr}");
}

/// Issue 26: messages a newcomer can act on.
#[test]
fn an_empty_strategy_list_is_an_error() {
    for empty in ["", " , ", ","] {
        fails(
            &["run", "--strategies", empty, "--quiet"],
            1,
            &["names no strategy", "stamped"],
        );
    }
}

#[test]
fn a_byte_order_mark_before_the_header_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(format!("{HEADER}\n{{\"t_us\":0,{READ}}}\n").as_bytes());
    let trace = write_file(dir.path(), "bom.jsonl", &body);
    let (code, stderr) = cache_sim(&["replay", &trace, "--strategies", "versioned", "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    // Only before the first line: elsewhere it is still not JSON.
    let mut body = format!("{HEADER}\n").into_bytes();
    body.extend_from_slice(b"\xEF\xBB\xBF");
    body.extend_from_slice(format!("{{\"t_us\":0,{READ}}}\n").as_bytes());
    trace_fails(&body, 2, "<line>", "");
}

#[test]
fn an_access_log_of_only_bad_lines_says_why_they_were_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_file(
        dir.path(),
        "bad.log",
        b"10.0.0.1 - bob [06/Oct/2025:09:00:01 +0000] \"GET /feed?start=undefined&end=2025-11-10 HTTP/1.1\" 200 5\n\
          10.0.0.1 - bob [06/Oct/2025:09:00:02 +0000] \"GET /feed?start=2025-09-29&end=soon HTTP/1.1\" 200 5\n\
          10.0.0.1 - bob [99/Xyz/2025:09:00:03 +0000] \"GET /feed?start=2025-09-29&end=2025-11-10 HTTP/1.1\" 200 5\n",
    );
    fails(
        &["replay", "--format", "access-log", &log, "--quiet"],
        1,
        &[
            "no `GET …?start=…&end=…` feed requests",
            "3 line(s) skipped",
            "bad.log:1:",
            "undefined",
            "bad.log:2:",
            "bad timestamp",
        ],
    );
}

/// A one-connection HTTP server on a free loopback port: answers whatever
/// it is sent with a 400, as any web server does to a Redis command.
fn http_server() -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request",
            );
        }
    });
    port
}

#[test]
fn a_redis_url_pointing_at_a_web_server_says_it_is_not_redis() {
    let port = http_server();
    let url = format!("redis://app:hunter2@127.0.0.1:{port}");
    let (code, stderr) = cache_sim(&["run", "--backend", &url, "--quiet"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("did not answer like Redis"), "{stderr}");
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("Unexpected"),
        "{stderr}"
    );
    let url = format!("memcache://127.0.0.1:{port}");
    let (code, stderr) = cache_sim(&["run", "--backend", &url, "--quiet"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("like memcached"), "{stderr}");
}
