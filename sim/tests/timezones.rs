//! Zones with daylight saving end to end: generated traffic writes ranges as
//! FullCalendar does, traces and access logs with named DST zones replay, bad
//! zone names are line-numbered errors, and what `range-expansion` misses.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone};
use serde_json::Value;
use sim::calendar::{feed_range, visible_range, CalendarView, ViewOptions, WireFormat};
use sim::report::Report;
use sim::runner::{registry, run, RunConfig};
use sim::trace::{open_access_log, open_trace, Event};

fn offset_of(s: &str) -> Option<&str> {
    if s.ends_with('Z') {
        Some("Z")
    } else if s.len() > 19 {
        Some(&s[19..])
    } else {
        None
    }
}

#[test]
fn generated_realistic_traffic_is_fullcalendars_wire_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("realistic.jsonl");
    // What `cache-sim generate --scenario realistic --actions 60000` does,
    // through the library (the binary's path is shared by every build using
    // the same target directory).
    let mut cfg = sim::scenarios::realistic_config(1);
    cfg.actions = 60_000;
    let (header, traffic) = sim::traffic::Traffic::new(cfg, "realistic").unwrap();
    sim::trace::write_trace(&path, &header, traffic).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("+00:00"), "FullCalendar writes a zero offset as Z");

    let mut reads = 0usize;
    let mut mixed = 0usize; // the two ends carry different offsets
    let mut by_zone: BTreeMap<String, usize> = BTreeMap::new();
    let mut offsets: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] != "read" {
            continue;
        }
        reads += 1;
        let (s, e) = (v["start"].as_str().unwrap(), v["end"].as_str().unwrap());
        if let Some(z) = v["timeZone"].as_str() {
            *by_zone.entry(z.to_owned()).or_default() += 1;
        }
        let (so, eo) = (offset_of(s), offset_of(e));
        if let (Some(so), Some(eo)) = (so, eo) {
            *offsets.entry(so.to_owned()).or_default() += 1;
            if so != eo {
                mixed += 1;
            }
        }
    }
    assert!(reads > 10_000, "{reads} reads");
    // Browsers in New York (-04:00 in October, -05:00 from Nov 2), Berlin,
    // London (+01:00, then Z) and Santiago/Sydney put their own offsets on.
    for o in [
        "-04:00", "-05:00", "+02:00", "+01:00", "Z", "+08:00", "-03:00", "+11:00",
    ] {
        assert!(offsets.get(o).copied().unwrap_or(0) > 0, "no {o} in {offsets:?}");
    }
    assert!(mixed > reads / 50, "{mixed} of {reads} reads with mixed offsets");
    // Named zones with daylight saving go out without offsets.
    assert!(by_zone.get("America/New_York").copied().unwrap_or(0) > 0, "{by_zone:?}");
    assert!(by_zone.get("UTC").copied().unwrap_or(0) > 0, "{by_zone:?}");
}

fn replay(source: impl Fn() -> sim::Result<sim::trace::Source> + Send + Sync + 'static) -> Report {
    let mut cfg = RunConfig::new("replay");
    cfg.strategies = vec!["versioned".into(), "range-expansion".into()];
    run(&cfg, Arc::new(source), registry(), None).unwrap()
}

const HEADER: &str = r#"{"format":"cache-sim-trace","version":1,"start":"2025-03-01T14:00:00Z","processes":1}"#;

#[test]
fn a_trace_with_a_named_dst_zone_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ny.jsonl");
    // March 2025 in New York (the change is on the 9th), Santiago's midnight
    // gap on 2025-09-07, and an edit of an item inside the March range.
    let lines = [
        HEADER,
        r#"{"t_us":0,"type":"load","item":1,"scope":"cal:1","start":"2025-03-10T15:00:00Z","end":"2025-03-10T16:00:00Z","work_type":"task","status":"open"}"#,
        r#"{"t_us":10,"type":"read","scopes":["cal:1"],"start":"2025-02-23T00:00:00","end":"2025-04-06T00:00:00","timeZone":"America/New_York"}"#,
        r#"{"t_us":20,"type":"read","scopes":["cal:1"],"start":"2025-03-09T00:00:00","end":"2025-03-16T00:00:00","timeZone":"America/New_York"}"#,
        r#"{"t_us":30,"type":"read","scopes":["cal:1"],"start":"2025-09-07T00:00:00","end":"2025-09-08T00:00:00","timeZone":"America/Santiago"}"#,
        r#"{"t_us":40,"type":"read","scopes":["cal:1"],"start":"2025-02-23T00:00:00-05:00","end":"2025-04-06T00:00:00-04:00"}"#,
        r#"{"t_us":5000000,"type":"edit","item":1,"scope":"cal:1","start":"2025-03-11T15:00:00Z","end":"2025-03-11T16:00:00Z","work_type":"task","status":"open"}"#,
        r#"{"t_us":9000000,"type":"read","scopes":["cal:1"],"start":"2025-02-23T00:00:00","end":"2025-04-06T00:00:00","timeZone":"America/New_York"}"#,
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let events: Vec<Event> = open_trace(&path).unwrap().events.map(|e| e.unwrap()).collect();
    let Event::Read { view, .. } = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(view.range.start().to_rfc3339(), "2025-02-23T00:00:00-05:00");
    assert_eq!(view.range.end().to_rfc3339(), "2025-04-06T00:00:00-04:00");
    let p = path.clone();
    let r = replay(move || open_trace(&p));
    let versioned = r.results.iter().find(|c| c.strategy == "versioned").unwrap();
    assert_eq!(versioned.reads, 5);
    assert_eq!(versioned.stale_reads, 0);
}

#[test]
fn an_access_log_with_a_named_dst_zone_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    std::fs::write(
        &path,
        "10.0.0.1 - alice [01/Mar/2025:09:00:00 -0500] \"GET /calendar/feed?start=2025-02-23T00%3A00%3A00&end=2025-04-06T00%3A00%3A00&timeZone=America%2FNew_York HTTP/1.1\" 200 5120\n\
         10.0.0.1 - alice [01/Mar/2025:09:00:05 -0500] \"GET /calendar/feed?start=2025-03-09T00:00:00&end=2025-03-16T00:00:00&timeZone=America/New_York HTTP/1.1\" 200 512\n\
         10.0.0.2 - bob [01/Mar/2025:09:00:07 -0500] \"GET /calendar/feed?start=2025-02-23T00:00:00-05:00&end=2025-04-06T00:00:00-04:00 HTTP/1.1\" 200 512\n",
    )
    .unwrap();
    let events: Vec<Event> = open_access_log(&path).unwrap().events.map(|e| e.unwrap()).collect();
    assert_eq!(events.len(), 3);
    let Event::Read { view, .. } = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(
        view.params.get("timeZone").map(String::as_str),
        Some("America/New_York")
    );
    assert_eq!(view.range.end().to_rfc3339(), "2025-03-16T00:00:00-04:00");
    let p = path.clone();
    let r = replay(move || open_access_log(&p));
    assert!(r.results.iter().all(|c| c.reads == 3), "{:?}", r.results);
}

#[test]
fn an_unknown_zone_names_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let lines = [
        HEADER,
        r#"{"t_us":10,"type":"read","scopes":["cal:1"],"start":"2025-03-09T00:00:00","end":"2025-03-16T00:00:00","timeZone":"America/New_York"}"#,
        r#"{"t_us":20,"type":"read","scopes":["cal:1"],"start":"2025-03-09T00:00:00","end":"2025-03-16T00:00:00","timeZone":"America/Gotham"}"#,
    ];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let errors: Vec<String> = open_trace(&path)
        .unwrap()
        .events
        .filter_map(|e| e.err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("bad.jsonl:3:"), "{}", errors[0]);
    assert!(errors[0].contains("field `timeZone`"), "{}", errors[0]);
    assert!(errors[0].contains("America/Gotham"), "{}", errors[0]);

    let log = dir.path().join("access.log");
    std::fs::write(
        &log,
        "10.0.0.1 - alice [01/Mar/2025:09:00:00 -0500] \"GET /feed?start=2025-03-09T00:00:00&end=2025-03-16T00:00:00&timeZone=America/New_York HTTP/1.1\" 200 1\n\
         10.0.0.1 - alice [01/Mar/2025:09:00:01 -0500] \"GET /feed?start=2025-03-09T00:00:00&end=2025-03-16T00:00:00&timeZone=Europe/Atlantis HTTP/1.1\" 200 1\n",
    )
    .unwrap();
    let errors: Vec<String> = open_access_log(&log)
        .unwrap()
        .events
        .filter_map(|e| e.err().map(|e| e.to_string()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("access.log:2:")
            && errors[0].contains("`timeZone`")
            && errors[0].contains("Europe/Atlantis"),
        "{}",
        errors[0]
    );
}

/// `range-expansion` guesses midnights in one fixed `home_offset`. Even an app
/// whose home offset is New York's summer offset (-04:00) names only ranges
/// whose two ends carry that offset: the October grid of a New York browser
/// ends at -05:00 (after Nov 2) and is never among the guesses, while a week
/// wholly inside summer time is.
#[test]
fn range_expansion_cannot_name_a_range_across_a_change() {
    use cache_core::strategy::range_expansion::RangeExpansion;
    let home = FixedOffset::west_opt(4 * 3600).unwrap();
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
    let at_home = |x: NaiveDate| home.from_local_datetime(&x.and_time(NaiveTime::MIN)).unwrap();
    let touched = d(2025, 10, 22);
    let guessed: Vec<_> = RangeExpansion::guesses_for_day(touched)
        .into_iter()
        .map(|(s, e)| (at_home(s), at_home(e)))
        .collect();
    let guessed_exactly = |range: &cache_core::TimeRange| {
        // A key carries the offsets: equal instants with other offsets are other keys.
        guessed
            .iter()
            .any(|(s, e)| s.to_rfc3339() == range.start().to_rfc3339() && e.to_rfc3339() == range.end().to_rfc3339())
    };
    let ny = WireFormat::Local(chrono_tz::America::New_York);
    let o = ViewOptions::with_first_day(0);
    let (week, _) = feed_range(visible_range(CalendarView::TimeGridWeek, touched, &o), &ny).unwrap();
    let (month, _) = feed_range(visible_range(CalendarView::DayGridMonth, touched, &o), &ny).unwrap();
    assert!(guessed_exactly(&week), "the summer-time week is guessed");
    assert_ne!(month.start().offset(), month.end().offset());
    assert!(!guessed_exactly(&month), "the grid across the change is missed");
}

#[test]
fn timezone_variants_dst_views_escape_range_expansion() {
    let cfg = RunConfig::new("timezone-variants");
    let r = run(
        &cfg,
        Arc::new(|| sim::scenarios::source("timezone-variants", 1)),
        registry(),
        None,
    )
    .unwrap();
    let cell = |s: &str| r.results.iter().find(|c| c.strategy == s).unwrap();
    // Four DST views of cal:2 are read twice after the write; range-expansion
    // (home +08:00) invalidates none of their keys. The three cal:1 variants
    // add their own misses on top.
    assert!(
        cell("range-expansion").stale_reads >= 8,
        "{}",
        cell("range-expansion").stale_reads
    );
    for s in ["versioned", "bucketed", "wildcard"] {
        assert_eq!(cell(s).stale_reads, 0, "{s}");
    }
    // Every view of the DST case has its own key: at least 7 misses before a write.
    assert!(cell("versioned").misses >= 7);
    // The scenario's New York month grid carries two offsets.
    let src = sim::scenarios::source("timezone-variants", 1).unwrap();
    let mixed = src
        .events
        .filter_map(Result::ok)
        .filter(|e| matches!(e, Event::Read { view, .. } if view.range.start().offset() != view.range.end().offset()))
        .count();
    assert!(mixed > 0);
}

#[test]
fn the_zone_mix_is_configurable() {
    use sim::traffic::{Traffic, TrafficConfig, ZoneShare};
    let mix = ZoneShare::parse_mix("local:Europe/London=3, utc=1,named:America/New_York=0").unwrap();
    assert_eq!(mix.len(), 3);
    assert_eq!(mix[0].format, WireFormat::Local(chrono_tz::Europe::London));
    assert_eq!(mix[2].format, WireFormat::Named("America/New_York".into()));
    let off = ZoneShare::parse_mix("offset:-05:30=1").unwrap();
    assert_eq!(
        off[0].format,
        WireFormat::Offset {
            seconds: -(5 * 3600 + 1800)
        }
    );
    for bad in [
        "local:Mars/Base=1",
        "utc",
        "utc=-1",
        "utc=0",
        "gmt=1",
        "offset:+25:00=1",
    ] {
        assert!(ZoneShare::parse_mix(bad).is_err(), "{bad}");
    }

    let mut cfg = TrafficConfig::default();
    cfg.users = 30;
    cfg.actions = 3_000;
    cfg.zones = mix;
    let (_, t) = Traffic::new(cfg, "realistic").unwrap();
    let mut seen = BTreeMap::<Option<String>, usize>::new();
    for e in t {
        if let Event::Read { view, .. } = e.unwrap() {
            let tz = view.params.get("timeZone").cloned();
            assert_ne!(tz.as_deref(), Some("America/New_York"), "share 0 is never drawn");
            if tz.is_none() {
                // London: +01:00 until Oct 26, then Z.
                let off = view.range.start().offset().local_minus_utc();
                assert!(off == 0 || off == 3600, "{off}");
            }
            *seen.entry(tz).or_default() += 1;
        }
    }
    assert!(seen[&None] > seen[&Some("UTC".to_owned())], "{seen:?}");
}
