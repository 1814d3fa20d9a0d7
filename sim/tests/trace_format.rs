//! Traces: round trip, line-numbered errors, access-log import.

use std::io::Write as _;

use sim::scenarios;
use sim::trace::{open_access_log, open_trace, write_trace, Event};
use sim::traffic::{Traffic, TrafficConfig};

fn small_traffic(seed: u64) -> sim::trace::Source {
    let mut cfg = TrafficConfig::default();
    cfg.users = 20;
    cfg.teams = 3;
    cfg.items_per_calendar = 5;
    cfg.actions = 2_000;
    cfg.days = 2;
    cfg.processes = 2;
    cfg.seed = seed;
    let (header, t) = Traffic::new(cfg, "realistic").unwrap();
    sim::trace::Source {
        header,
        events: Box::new(t),
    }
}

#[test]
fn generated_traffic_round_trips_through_a_trace_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let src = small_traffic(3);
    let header = src.header.clone();
    let n = write_trace(&path, &header, src.events).unwrap();
    assert!(n > 1_000, "{n} events");
    let back = open_trace(&path).unwrap();
    assert_eq!(back.header, header);
    let read: Vec<Event> = back.events.map(Result::unwrap).collect();
    let again: Vec<Event> = small_traffic(3).events.map(Result::unwrap).collect();
    assert_eq!(read, again);
    assert!(read.iter().any(|e| matches!(e, Event::Write { .. })));
    assert!(read.iter().any(|e| matches!(e, Event::Read { .. })));
    // A different seed is different traffic.
    let other: Vec<Event> = small_traffic(4).events.map(Result::unwrap).collect();
    assert_ne!(read, other);
}

#[test]
fn every_scenario_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for s in scenarios::SCENARIOS.iter().filter(|s| s.name != "realistic") {
        let path = dir.path().join(format!("{}.jsonl", s.name));
        let src = scenarios::source(s.name, 1).unwrap();
        write_trace(&path, &src.header, src.events).unwrap();
        let read: Vec<Event> = open_trace(&path).unwrap().events.map(Result::unwrap).collect();
        let orig: Vec<Event> = scenarios::source(s.name, 1)
            .unwrap()
            .events
            .map(Result::unwrap)
            .collect();
        assert_eq!(read, orig, "{}", s.name);
    }
}

#[test]
fn a_malformed_line_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(
        f,
        r#"{{"format":"cache-sim-trace","version":1,"start":"2025-10-06T01:00:00Z","processes":1}}"#
    )
    .unwrap();
    writeln!(
        f,
        r#"{{"t_us":0,"type":"read","scopes":["cal:1"],"start":"2025-09-29T00:00:00+08:00","end":"2025-11-10T00:00:00+08:00"}}"#
    )
    .unwrap();
    writeln!(
        f,
        r#"{{"t_us":5,"type":"read","scopes":["cal:1"],"start":"2025-09-31T00:00:00+08:00","end":"2025-11-10T00:00:00+08:00"}}"#
    )
    .unwrap();
    drop(f);
    let errors: Vec<String> = open_trace(&path)
        .unwrap()
        .events
        .filter_map(|e| e.err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("bad.jsonl:3:"), "{}", errors[0]);
    assert!(errors[0].contains("field `start`"), "{}", errors[0]);

    // Not JSON at all, and a wrong version in the header.
    std::fs::write(
        &path,
        "{\"format\":\"cache-sim-trace\",\"version\":1,\"start\":\"2025-10-06T01:00:00Z\"}\nnot json\n",
    )
    .unwrap();
    let e = open_trace(&path)
        .unwrap()
        .events
        .next()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(e.contains(":2:") && e.contains("not JSON"), "{e}");
    std::fs::write(
        &path,
        "{\"format\":\"cache-sim-trace\",\"version\":99,\"start\":\"2025-10-06T01:00:00Z\"}\n",
    )
    .unwrap();
    let e = open_trace(&path).unwrap_err().to_string();
    assert!(e.contains(":1:") && e.contains("`version`"), "{e}");
    // Events out of time order.
    std::fs::write(
        &path,
        "{\"format\":\"cache-sim-trace\",\"version\":1,\"start\":\"2025-10-06T01:00:00Z\"}\n\
         {\"t_us\":10,\"type\":\"delete\",\"item\":1,\"scope\":\"cal:1\"}\n\
         {\"t_us\":5,\"type\":\"delete\",\"item\":2,\"scope\":\"cal:1\"}\n",
    )
    .unwrap();
    let e: Vec<String> = open_trace(&path)
        .unwrap()
        .events
        .filter_map(|e| e.err().map(|e| e.to_string()))
        .collect();
    assert!(e[0].contains(":3:") && e[0].contains("`t_us`"), "{e:?}");
}

#[test]
fn access_log_lines_become_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    std::fs::write(
        &path,
        "10.0.0.1 - alice [06/Oct/2025:09:00:00 +0800] \"GET /calendar/feed?start=2025-09-29T00%3A00%3A00%2B08%3A00&end=2025-11-10T00%3A00%3A00%2B08%3A00 HTTP/1.1\" 200 5120\n\
         10.0.0.1 - alice [06/Oct/2025:09:00:01 +0800] \"GET /static/app.js HTTP/1.1\" 200 99\n\
         10.0.0.2 - - [06/Oct/2025:09:00:02 +0800] \"GET /calendar/feed?start=2025-09-29T00:00:00Z&end=2025-11-10T00:00:00Z&timeZone=UTC&calendar=team:1&work_type=task HTTP/1.1\" 200 4096 \"-\" \"Mozilla\"\n\
         10.0.0.3 - bob [06/Oct/2025:09:00:03 +0800] \"GET /calendar/feed?start=2025-09-29T00:00:00&end=2025-11-10T00:00:00 HTTP/1.1\" 200 1\n",
    )
    .unwrap();
    let src = open_access_log(&path).unwrap();
    let ev: Vec<_> = src.events.collect();
    assert_eq!(ev.len(), 3);
    match ev[0].as_ref().unwrap() {
        Event::Read { t_us, view, .. } => {
            assert_eq!(*t_us, 0);
            assert_eq!(view.scopes[0].as_str(), "user:alice");
        }
        other => panic!("{other:?}"),
    }
    match ev[1].as_ref().unwrap() {
        Event::Read { t_us, view, .. } => {
            assert_eq!(*t_us, 2_000_000);
            assert_eq!(view.scopes[0].as_str(), "team:1");
            assert_eq!(view.params.get("work_type").map(String::as_str), Some("task"));
            assert_eq!(view.params.get("timeZone").map(String::as_str), Some("UTC"));
        }
        other => panic!("{other:?}"),
    }
    // No offset and no timeZone: the line is an error naming line 4.
    let e = ev[2].as_ref().unwrap_err().to_string();
    assert!(e.contains("access.log:4:") && e.contains("`start`"), "{e}");
}
