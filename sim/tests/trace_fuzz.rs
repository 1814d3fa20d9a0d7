//! Fuzzing by property test (stable Rust has no cargo-fuzz): valid trace
//! lines, headers and access-log lines are mutated (byte flips, truncations,
//! splices of two valid lines, inserted bytes) and fed to the one trace
//! parser, the header check, the access-log parser and the whole-file
//! readers. None may panic; whatever they accept must respect the
//! documented bounds and survive a write/read round trip.
//!
//! CI runs proptest's default 256 cases per property, from the fixed seed
//! 15 (every random choice takes an explicit seed). A longer run, on new
//! inputs:
//!
//! ```text
//! PROPTEST_CASES=50000 PROPTEST_RNG_SEED=$RANDOM cargo test --release -p sim --test trace_fuzz
//! ```

use std::io::Write as _;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use sim::trace::{self, parse, Event, MAX_PROCESSES, MAX_SCOPE_BYTES, MAX_T_US, MAX_VIEW_SCOPE_BYTES};
use sim::Error;

const EVENTS: &[&str] = &[
    r#"{"t_us":5,"type":"read","process":1,"user":3,"tab":1,"scopes":["team:2","cal:1"],"start":"2025-09-29T00:00:00+08:00","end":"2025-11-10T00:00:00+08:00","status":"open"}"#,
    r#"{"t_us":6,"type":"read","scopes":["cal:1"],"start":"2025-10-01T00:00:00","end":"2025-10-02T00:00:00","timeZone":"Asia/Tokyo","work_type":"task"}"#,
    r#"{"t_us":7,"type":"read","scopes":["cal:\u00e9"],"start":"2025-10-01T00:00:00Z","end":"2025-10-02T00:00:00Z","timeZone":"UTC","process":null}"#,
    r#"{"t_us":8,"type":"edit","process":0,"user":1,"item":9,"scope":"cal:1","start":"2025-10-08T13:00:00Z","end":"2025-10-08T14:30:00Z","work_type":"review","status":"done"}"#,
    r#"{"t_us":9,"type":"delete","item":9,"scope":"cal:1"}"#,
    r#"{"t_us":10,"type":"create","item":10,"scope":"team:2","start":"2025-10-08T13:00:00+05:30","end":"2025-10-09T00:00:00+05:30","work_type":"leave","status":"blocked"}"#,
    r#"{"t_us":11,"type":"evict_control","process":1,"scopes":["cal:1"],"start":"2025-10-01","end":"2025-10-02","timeZone":"Asia/Manila"}"#,
    r#"{"t_us":3660000000,"type":"load","item":1,"scope":"cal:1","start":"2025-10-08T13:00:00Z","end":"2025-10-08T14:30:00Z","work_type":"task","status":"open"}"#,
];

const HEADERS: &[&str] = &[
    r#"{"format":"cache-sim-trace","version":1,"start":"2025-10-06T01:00:00Z","processes":2,"scenario":"realistic","seed":1}"#,
    r#"{"format":"cache-sim-trace","version":1,"start":"2025-10-06T09:00:00+08:00"}"#,
];

const ACCESS: &[&str] = &[
    r#"10.0.0.1 - alice [06/Oct/2025:09:00:00 +0800] "GET /calendar/feed?start=2025-09-29T00%3A00%3A00%2B08%3A00&end=2025-11-10T00%3A00%3A00%2B08%3A00 HTTP/1.1" 200 5120"#,
    r#"10.0.0.2 - - [06/Oct/2025:09:00:01 +0000] "GET /feed?calendar=cal%3A1,team%3A2&start=2025-10-01T00:00:00&end=2025-10-02T00:00:00&timeZone=Asia%2FTokyo&status=None&work_type=task HTTP/1.1" 200 9"#,
    r#"10.0.0.3 - bob [06/Oct/2025:09:00:02 +0000] "POST /items HTTP/1.1" 201 0"#,
];

/// Proptest's configuration from the environment (`PROPTEST_CASES`,
/// `PROPTEST_RNG_SEED`), with the seed fixed at 15 unless one is given, and
/// `1 / share` of the cases.
fn config(share: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if matches!(c.rng_seed, RngSeed::Random) {
        c.rng_seed = RngSeed::Fixed(15);
    }
    c.cases = c.cases / share + 1;
    c
}

/// One mutation of a valid line drawn from `corpus`.
fn mutated(corpus: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let n = corpus.len();
    let pick = move |i: usize| corpus[i % n].as_bytes().to_vec();
    prop_oneof![
        // The line itself.
        (0..n).prop_map(pick),
        // A few bytes replaced.
        (
            0..n,
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)
        )
            .prop_map(move |(i, flips)| {
                let mut b = pick(i);
                for (at, byte) in flips {
                    let at = at.index(b.len());
                    b[at] = byte;
                }
                b
            }),
        // Cut short.
        (0..n, any::<prop::sample::Index>()).prop_map(move |(i, at)| {
            let mut b = pick(i);
            b.truncate(at.index(b.len() + 1));
            b
        }),
        // The head of one line and the tail of another.
        (0..n, 0..n, any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(move |(i, j, a, c)| {
            let (x, y) = (pick(i), pick(j));
            let mut b = x[..a.index(x.len())].to_vec();
            b.extend_from_slice(&y[c.index(y.len())..]);
            b
        }),
        // Bytes inserted (JSON punctuation, digits, escapes, invalid UTF-8).
        (
            0..n,
            any::<prop::sample::Index>(),
            proptest::collection::vec(
                prop_oneof![
                    Just(b'"'),
                    Just(b','),
                    Just(b'9'),
                    Just(b'\\'),
                    Just(b'{'),
                    Just(b'['),
                    Just(0xffu8),
                    any::<u8>()
                ],
                1..6
            )
        )
            .prop_map(move |(i, at, ins)| {
                let mut b = pick(i);
                let at = at.index(b.len() + 1);
                b.splice(at..at, ins);
                b
            }),
    ]
}

fn check_bounds(ev: &Event, processes: u32) {
    assert!(ev.t_us() <= MAX_T_US);
    assert!(ev.process() < processes);
    let json = ev.to_json();
    if let Some(scopes) = json.get("scopes").and_then(|s| s.as_array()) {
        let total: usize = scopes.iter().map(|s| s.as_str().unwrap().len()).sum();
        assert!(total <= MAX_VIEW_SCOPE_BYTES);
        assert!(scopes.iter().all(|s| s.as_str().unwrap().len() <= MAX_SCOPE_BYTES));
    }
}

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn event_lines_never_panic_and_accepted_ones_round_trip(bytes in mutated(EVENTS)) {
        let Ok(text) = std::str::from_utf8(&bytes) else { return Ok(()) };
        match parse::event(text, 2) {
            Ok(ev) => {
                check_bounds(&ev, 2);
                assert_eq!(ev.line(), 2);
                let written = ev.to_json().to_string();
                let again = parse::event(&written, 2)
                    .unwrap_or_else(|e| panic!("{text}\nwritten as {written}\nrejected: {e}"));
                prop_assert_eq!(again.to_json().to_string(), written);
            }
            Err(Error::Trace { line, field, .. }) => {
                prop_assert_eq!(line, 2);
                prop_assert!(!field.is_empty());
            }
            Err(other) => prop_assert!(false, "not a line error: {other}"),
        }
    }

    #[test]
    fn headers_never_panic_and_accepted_ones_are_in_range(bytes in mutated(HEADERS)) {
        let Ok(text) = std::str::from_utf8(&bytes) else { return Ok(()) };
        match parse::header(text) {
            Ok(h) => prop_assert!((1..=MAX_PROCESSES).contains(&h.processes)),
            Err(e) => prop_assert!(matches!(e, Error::Trace { line: 1, .. }), "{e}"),
        }
    }

    #[test]
    fn access_log_lines_never_panic(bytes in mutated(ACCESS)) {
        let Ok(text) = std::str::from_utf8(&bytes) else { return Ok(()) };
        match parse::access_log_line(text) {
            Ok(Some((_, view))) => {
                let total: usize = view.scopes.iter().map(|s| s.as_str().len()).sum();
                prop_assert!(total <= MAX_VIEW_SCOPE_BYTES);
            }
            Ok(None) => {}
            Err(e) => prop_assert!(matches!(e, Error::Trace { line: 1, .. }), "{e}"),
        }
    }
}

proptest! {
    // Whole files touch the disk: a quarter of the cases.
    #![proptest_config(config(4))]

    #[test]
    fn whole_trace_files_never_panic(
        header in mutated(HEADERS),
        lines in proptest::collection::vec(mutated(EVENTS), 0..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&header).unwrap();
        for l in &lines {
            f.write_all(b"\n").unwrap();
            f.write_all(l).unwrap();
        }
        drop(f);
        // Inserted bytes may be newlines: count the lines as written.
        let total = std::fs::read(&path).unwrap().iter().filter(|b| **b == b'\n').count() as u64 + 1;
        match trace::open_trace(&path) {
            Ok(src) => {
                for ev in src.events {
                    match ev {
                        Ok(ev) => check_bounds(&ev, src.header.processes),
                        Err(Error::Trace { line, .. }) => prop_assert!((2..=total).contains(&line)),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
            }
            Err(Error::Trace { line, .. }) => prop_assert_eq!(line, 1),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn whole_access_logs_never_panic(lines in proptest::collection::vec(mutated(ACCESS), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let body = lines.join(&b'\n');
        std::fs::write(&path, &body).unwrap();
        let total = body.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        match trace::open_access_log(&path) {
            Ok(src) => {
                for ev in src.events {
                    match ev {
                        Ok(ev) => {
                            check_bounds(&ev, 1);
                            prop_assert!((1..=total).contains(&ev.line()));
                        }
                        Err(Error::Trace { line, .. }) => prop_assert!((1..=total).contains(&line)),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
            }
            Err(Error::Trace { line, .. }) => prop_assert!((1..=total).contains(&line)),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}
