//! `sim`'s calendar rules against what the real `@fullcalendar/core` 6.1 sends.
//!
//! `sim/fixtures/fullcalendar/golden.jsonl` was written by
//! `sim/fixtures/fullcalendar/generate.mjs`, which runs FullCalendar under
//! jsdom with the browser's zone set per process. Regenerate it with
//! `cd sim/fixtures/fullcalendar && npm ci && node generate.mjs` (only that
//! needs node; these tests just read the file).

use std::collections::BTreeMap;

use cache_core::TimeRange;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sim::calendar::{
    feed_range, navigate, parse_wire, to_wire, today, visible_range, CalendarView, Nav, ViewOptions, WireFormat,
};

fn golden() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fullcalendar/golden.jsonl");
    let text = std::fs::read_to_string(path).expect("golden fixture present");
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("golden line {}: {e}", i + 1)))
        .collect()
}

fn fmt_of(line: &Value) -> WireFormat {
    let zone = line["zone"].as_str().unwrap();
    match line["mode"].as_str().unwrap() {
        "local" => WireFormat::Local(cache_core::wire::parse_zone(zone).unwrap()),
        "UTC" => WireFormat::Utc,
        "named" => WireFormat::Named(zone.to_owned()),
        m => panic!("unknown mode {m}"),
    }
}

fn opts_of(line: &Value) -> ViewOptions {
    let mut o = ViewOptions::with_first_day(line["firstDay"].as_u64().unwrap_or(0) as u8);
    o.fixed_week_count = line["fixedWeekCount"].as_bool().unwrap_or(true);
    o.show_non_current_dates = line["showNonCurrentDates"].as_bool().unwrap_or(true);
    o
}

fn date(v: &Value) -> NaiveDate {
    v.as_str().unwrap().parse().unwrap()
}

/// What sim sends: (start, end, timeZone), and the range it parses back to.
fn sim_request(view: CalendarView, on: NaiveDate, opts: &ViewOptions, fmt: &WireFormat) -> (Value, TimeRange) {
    let (range, tz) = feed_range(visible_range(view, on, opts), fmt).unwrap();
    let (s, e) = to_wire(&range, tz.as_deref());
    // What a server reads from it is the same range again.
    assert_eq!(parse_wire(&s, &e, tz.as_deref()).unwrap(), range, "{s} {e} {tz:?}");
    (serde_json::json!([s, e, tz]), range)
}

#[derive(Default)]
struct CacheMetrics {
    checked: usize,
    failures: Vec<String>,
    per_zone: BTreeMap<String, usize>,
    mixed_offsets: BTreeMap<String, usize>,
}

impl CacheMetrics {
    fn check(&mut self, zone: &str, what: String, want: &Value, got: &Value) {
        self.checked += 1;
        *self.per_zone.entry(zone.to_owned()).or_default() += 1;
        if want != got {
            self.failures.push(format!("{what}: FullCalendar {want}, sim {got}"));
        }
    }

    fn finish(self, min_cases: usize) -> BTreeMap<String, usize> {
        assert!(
            self.failures.is_empty(),
            "{} of {} cases differ from FullCalendar, first ones:\n{}",
            self.failures.len(),
            self.checked,
            self.failures[..self.failures.len().min(20)].join("\n")
        );
        assert!(self.checked >= min_cases, "only {} cases checked", self.checked);
        self.mixed_offsets
    }
}

fn header_zones(lines: &[Value], key: &str) -> Vec<String> {
    let header = lines.iter().find(|l| l["kind"] == "header").expect("header line");
    header[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ranges_match_fullcalendar_in_every_zone_and_mode() {
    let lines = golden();
    let mut t = CacheMetrics::default();
    for line in lines.iter().filter(|l| l["kind"] == "range") {
        let view = CalendarView::from_name(line["view"].as_str().unwrap()).expect("modelled view");
        let (fmt, opts) = (fmt_of(line), opts_of(line));
        let (zone, mode) = (line["zone"].as_str().unwrap(), line["mode"].as_str().unwrap());
        for case in line["cases"].as_array().unwrap() {
            let on = date(&case[0]);
            let want = Value::Array(case.as_array().unwrap()[1..].to_vec());
            let (got, range) = sim_request(view, on, &opts, &fmt);
            if mode == "local" && range.start().offset() != range.end().offset() {
                *t.mixed_offsets.entry(zone.to_owned()).or_default() += 1;
            }
            t.check(
                zone,
                format!("{mode} {zone} {} {on} {opts:?}", view.as_str()),
                &want,
                &got,
            );
        }
    }
    let per_zone = t.per_zone.clone();
    let mixed = t.finish(30_000);
    // Every DST zone the fixture names was checked, and in each some ranges
    // carry two different offsets (a change inside the range).
    for zone in header_zones(&lines, "dst_zones") {
        assert!(per_zone.get(&zone).copied().unwrap_or(0) > 500, "{zone}: too few cases");
        assert!(
            mixed.get(&zone).copied().unwrap_or(0) > 10,
            "{zone}: no mixed-offset ranges"
        );
    }
    for zone in header_zones(&lines, "fixed_zones") {
        assert!(per_zone.contains_key(&zone), "{zone} not checked");
        assert!(
            !mixed.contains_key(&zone),
            "{zone} has no daylight saving, yet mixed offsets"
        );
    }
}

#[test]
fn navigation_and_lazy_fetching_match_fullcalendar() {
    let lines = golden();
    let mut t = CacheMetrics::default();
    for line in lines.iter().filter(|l| l["kind"] == "nav") {
        let (fmt, opts) = (fmt_of(line), opts_of(line));
        let zone = line["zone"].as_str().unwrap();
        let now: DateTime<Utc> = line["now"].as_str().unwrap().parse().unwrap();
        let mut view = CalendarView::from_name(line["view"].as_str().unwrap()).unwrap();
        let mut on = date(&line["date"]);
        let requests = line["requests"].as_array().unwrap();
        let steps = line["steps"].as_array().unwrap();
        let (first, mut fetched) = sim_request(view, on, &opts, &fmt);
        let what = |i: usize| format!("{} {} {zone} {:?} step {i}", line["mode"], line["view"], line["date"]);
        t.check(zone, what(0), &requests[0], &first);
        for (i, step) in steps.iter().enumerate() {
            match step.as_str().unwrap() {
                "prev" => on = navigate(view, on, Nav::Prev, &opts),
                "next" => on = navigate(view, on, Nav::Next, &opts),
                "today" => on = navigate(view, on, Nav::Today(today(&fmt, now)), &opts),
                s => view = CalendarView::from_name(s.strip_prefix("view:").unwrap()).unwrap(),
            }
            let (req, range) = sim_request(view, on, &opts, &fmt);
            // lazyFetching: no request when the range lies inside the last fetched one.
            let got = if fetched.contains(&range) {
                Value::Null
            } else {
                fetched = range;
                req
            };
            t.check(zone, what(i + 1), &requests[i + 1], &got);
        }
    }
    t.finish(1_000);
}

#[test]
fn today_is_the_clients_local_date() {
    let lines = golden();
    let mut t = CacheMetrics::default();
    let mut differs_from_utc = 0;
    for line in lines.iter().filter(|l| l["kind"] == "today") {
        let fmt = fmt_of(line);
        let view = CalendarView::from_name(line["view"].as_str().unwrap()).unwrap();
        let zone = line["zone"].as_str().unwrap();
        for case in line["cases"].as_array().unwrap() {
            let now: DateTime<Utc> = case[0].as_str().unwrap().parse().unwrap();
            let day = today(&fmt, now);
            differs_from_utc += usize::from(day != now.date_naive());
            let (got, _) = sim_request(view, day, &ViewOptions::default(), &fmt);
            let want = Value::Array(case.as_array().unwrap()[1..].to_vec());
            t.check(
                zone,
                format!("{} {zone} {} now {now}", line["mode"], view.as_str()),
                &want,
                &got,
            );
        }
    }
    t.finish(300);
    assert!(
        differs_from_utc > 20,
        "the fixture should hold local dates that differ from UTC's"
    );
}
