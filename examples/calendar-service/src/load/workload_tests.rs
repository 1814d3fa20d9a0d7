use super::*;
use chrono::NaiveDate;

fn source(lines: &[&str]) -> Source {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let mut text = String::from(
        "{\"format\":\"cache-sim-trace\",\"version\":1,\"start\":\"2025-10-06T01:00:00Z\",\"processes\":2}\n",
    );
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let s = sim::trace::open_trace(&path).unwrap();
    // The reader streams from the file; keep the directory alive by
    // collecting the events now.
    let events: Vec<_> = s.events.collect();
    Source {
        header: s.header,
        events: Box::new(events.into_iter()),
    }
}

const LOAD: &str = r#"{"t_us":0,"type":"load","item":1,"scope":"team:3","start":"2025-10-08T23:30:00Z","end":"2025-10-09T00:30:00Z","work_type":"review","status":"blocked"}"#;
const READ: &str = r#"{"t_us":5,"type":"read","process":1,"user":7,"scopes":["cal:7","team:3"],"start":"2025-09-29T00:00:00+08:00","end":"2025-11-10T00:00:00+08:00","work_type":"deadline"}"#;

#[test]
fn maps_scopes_users_items_and_queries() {
    let edit = r#"{"t_us":9,"type":"edit","process":0,"user":7,"item":1,"scope":"team:3","start":"2025-10-20T10:00:00Z","end":"2025-10-20T11:00:00Z","work_type":"leave","status":"cancelled"}"#;
    let w = build(source(&[LOAD, READ, edit]), None, 3, 1).unwrap();
    let names: Vec<&str> = w.calendars.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["team:3", "cal:7"]);
    assert_eq!(
        w.users,
        [UserInfo {
            name: "u7".into(),
            calendars: vec![1, 2]
        }]
    );
    // 23:30Z to 00:30Z the next day: shown on both dates.
    let first = &w.seed.items[0];
    assert_eq!(
        (first.start.to_string(), first.end.to_string()),
        ("2025-10-08".into(), "2025-10-10".into())
    );
    assert_eq!(
        (first.work_type.as_str(), first.status.as_str()),
        ("feature", "in_progress")
    );
    assert_eq!(
        (w.stats.trace_items, w.stats.extra_items, w.seed.items.len()),
        (1, 2, 3)
    );
    assert_eq!(
        w.requests[0].kind,
        RequestKind::Feed {
            query:
                "work_type=bug&status=&start=2025-09-29T00%3A00%3A00%2B08%3A00&end=2025-11-10T00%3A00%3A00%2B08%3A00"
                    .into()
        }
    );
    assert_eq!(w.requests[0].process, 1);
    match &w.requests[1].kind {
        RequestKind::Update {
            item: 0,
            after: 0,
            input,
        } => {
            assert_eq!((input.work_type.as_str(), input.status.as_str()), ("chore", "done"));
            assert_eq!(input.start.to_string(), "2025-10-20");
        }
        other => panic!("{other:?}"),
    }
    // The prediction sees the folded filter's representative and
    // day-aligned items.
    let Event::Read { view, .. } = &w.sim_events[3] else {
        panic!()
    };
    assert_eq!(view.params.get("work_type").map(String::as_str), Some("deadline"));
    let Event::Write { write, .. } = &w.sim_events[4] else {
        panic!()
    };
    assert_eq!(
        write.state.unwrap().start_us,
        midnight_us(NaiveDate::from_ymd_opt(2025, 10, 20).unwrap())
    );
    assert_eq!(write.state.unwrap().work_type, 1); // chore's stand-in: meeting
}

#[test]
fn traces_that_cannot_be_mapped_say_which_line() {
    let other = r#"{"t_us":6,"type":"read","user":7,"scopes":["cal:7"],"start":"2025-09-29T00:00:00Z","end":"2025-11-10T00:00:00Z"}"#;
    let e = build(source(&[LOAD, READ, other]), None, 0, 1).unwrap_err().to_string();
    assert!(e.contains("line 4") && e.contains("one set of scopes"), "{e}");
    let foreign = r#"{"t_us":9,"type":"delete","user":7,"item":1,"scope":"team:3"}"#;
    let read_other = r#"{"t_us":8,"type":"read","user":7,"scopes":["cal:7"],"start":"2025-09-29T00:00:00Z","end":"2025-11-10T00:00:00Z"}"#;
    let e = build(source(&[LOAD, read_other, foreign]), None, 0, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 4") && e.contains("writes to team:3"), "{e}");
    let unknown = r#"{"t_us":9,"type":"edit","user":7,"item":99,"scope":"team:3","start":"2025-10-20T10:00:00Z","end":"2025-10-20T11:00:00Z","work_type":"task","status":"open"}"#;
    let e = build(source(&[LOAD, unknown]), None, 0, 1).unwrap_err().to_string();
    assert!(e.contains("line 3") && e.contains("item 99"), "{e}");
    // A window ends the replay early.
    let w = build(source(&[LOAD, READ]), Some(4), 0, 1).unwrap();
    assert!(w.requests.is_empty());
}
