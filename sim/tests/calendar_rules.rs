//! FullCalendar range rules against the examples in SPEC.md.

use chrono::NaiveDate;
use sim::calendar::{
    feed_range, navigate, to_wire, today, visible_range, CalendarView, DateRange, Nav, ViewOptions, WireFormat,
};

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn range(view: CalendarView, on: NaiveDate, first_day: u8) -> (String, String) {
    let r = visible_range(view, on, &ViewOptions::with_first_day(first_day));
    (r.start.to_string(), r.end.to_string())
}

#[test]
fn month_grid_is_42_days_from_the_week_holding_the_first() {
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        range(CalendarView::DayGridMonth, d(2025, 10, 6), 1),
        s("2025-09-29", "2025-11-10")
    );
    assert_eq!(
        range(CalendarView::DayGridMonth, d(2025, 10, 31), 0),
        s("2025-09-28", "2025-11-09")
    );
    assert_eq!(
        range(CalendarView::DayGridMonth, d(2026, 2, 14), 0),
        s("2026-02-01", "2026-03-15")
    );
    for (y, m) in [(2025, 1), (2025, 6), (2026, 2), (2024, 2)] {
        for fd in 0..7 {
            let r = visible_range(
                CalendarView::DayGridMonth,
                d(y, m, 10),
                &ViewOptions::with_first_day(fd),
            );
            assert_eq!(r.days(), 42);
            assert!(r.start <= d(y, m, 1) && (d(y, m, 1) - r.start).num_days() < 7);
        }
    }
}

#[test]
fn show_non_current_dates_false_trims_to_the_month() {
    let mut o = ViewOptions::with_first_day(1);
    o.show_non_current_dates = false;
    let r = visible_range(CalendarView::DayGridMonth, d(2025, 10, 6), &o);
    assert_eq!(
        r,
        DateRange {
            start: d(2025, 10, 1),
            end: d(2025, 11, 1)
        }
    );
    let mut o = ViewOptions::with_first_day(0);
    o.fixed_week_count = false;
    let r = visible_range(CalendarView::DayGridMonth, d(2026, 2, 14), &o);
    assert_eq!(
        r,
        DateRange {
            start: d(2026, 2, 1),
            end: d(2026, 3, 1)
        },
        "Feb 2026 fits four weeks exactly"
    );
}

#[test]
fn week_day_and_list_views() {
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    // 2025-10-08 is a Wednesday.
    assert_eq!(
        range(CalendarView::TimeGridWeek, d(2025, 10, 8), 0),
        s("2025-10-05", "2025-10-12")
    );
    assert_eq!(
        range(CalendarView::TimeGridWeek, d(2025, 10, 8), 1),
        s("2025-10-06", "2025-10-13")
    );
    assert_eq!(
        range(CalendarView::ListWeek, d(2025, 10, 5), 1),
        s("2025-09-29", "2025-10-06")
    );
    assert_eq!(
        range(CalendarView::TimeGridDay, d(2025, 10, 8), 1),
        s("2025-10-08", "2025-10-09")
    );
    assert_eq!(
        range(CalendarView::ListMonth, d(2025, 10, 8), 1),
        s("2025-10-01", "2025-11-01")
    );
    assert_eq!(
        range(CalendarView::ListYear, d(2025, 10, 8), 1),
        s("2025-01-01", "2026-01-01")
    );
}

#[test]
fn navigation_and_lazy_fetching_containment() {
    let oct = d(2025, 10, 6);
    let (o0, o1) = (ViewOptions::with_first_day(0), ViewOptions::with_first_day(1));
    assert_eq!(
        navigate(CalendarView::DayGridMonth, d(2025, 10, 31), Nav::Next, &o0),
        d(2025, 11, 1)
    );
    assert_eq!(
        navigate(CalendarView::DayGridMonth, d(2025, 10, 31), Nav::Prev, &o0),
        d(2025, 9, 1)
    );
    assert_eq!(
        navigate(CalendarView::TimeGridWeek, oct, Nav::Next, &o1),
        d(2025, 10, 13)
    );
    assert_eq!(
        navigate(CalendarView::TimeGridDay, oct, Nav::Today(d(2026, 1, 2)), &o0),
        d(2026, 1, 2)
    );
    // prev/next move from the view's start: the week of Wednesday 2025-10-08
    // (firstDay 0) starts on the 5th; prev shows the week of 2025-09-28, and a
    // month view from there shows September, not October.
    let wed = d(2025, 10, 8);
    let prev = navigate(CalendarView::TimeGridWeek, wed, Nav::Prev, &o0);
    assert_eq!(prev, d(2025, 9, 28));
    assert_eq!(
        visible_range(CalendarView::DayGridMonth, prev, &o0),
        visible_range(CalendarView::DayGridMonth, d(2025, 9, 1), &o0)
    );
    assert_eq!(
        navigate(CalendarView::DayGridWeek, wed, Nav::Next, &o1),
        d(2025, 10, 13)
    );
    assert_eq!(navigate(CalendarView::ListYear, wed, Nav::Prev, &o0), d(2024, 1, 1));
    // Month → a week inside it: no request (lazyFetching).
    let month = visible_range(CalendarView::DayGridMonth, oct, &o1);
    assert!(month.contains(&visible_range(CalendarView::TimeGridWeek, d(2025, 10, 15), &o1)));
    assert!(!month.contains(&visible_range(CalendarView::TimeGridWeek, d(2025, 11, 12), &o1)));
}

#[test]
fn day_grid_week_is_one_week() {
    assert_eq!(
        range(CalendarView::DayGridWeek, d(2025, 10, 8), 1),
        ("2025-10-06".to_owned(), "2025-10-13".to_owned())
    );
    assert_eq!(CalendarView::from_name("dayGridWeek"), Some(CalendarView::DayGridWeek));
}

#[test]
fn daylight_saving_zones_put_each_ends_own_offset() {
    let ny = WireFormat::Local(chrono_tz::America::New_York);
    let march = DateRange {
        start: d(2025, 3, 1),
        end: d(2025, 4, 1),
    };
    let (tr, tz) = feed_range(march, &ny).unwrap();
    assert_eq!(tz, None);
    assert_eq!(
        to_wire(&tr, None),
        (
            "2025-03-01T00:00:00-05:00".to_owned(),
            "2025-04-01T00:00:00-04:00".to_owned()
        )
    );
    // Santiago's change is at midnight: 2025-09-07 00:00 does not exist, and
    // FullCalendar writes the fields with the offset after the change.
    let scl = WireFormat::Local(chrono_tz::America::Santiago);
    let day = visible_range(CalendarView::TimeGridDay, d(2025, 9, 7), &ViewOptions::default());
    let (tr, _) = feed_range(day, &scl).unwrap();
    assert_eq!(to_wire(&tr, None).0, "2025-09-07T00:00:00-03:00");
    // London in winter writes Z, in summer +01:00.
    let london = WireFormat::Local(chrono_tz::Europe::London);
    let oct = visible_range(
        CalendarView::DayGridMonth,
        d(2025, 10, 6),
        &ViewOptions::with_first_day(1),
    );
    let (tr, _) = feed_range(oct, &london).unwrap();
    assert_eq!(
        to_wire(&tr, None),
        (
            "2025-09-29T00:00:00+01:00".to_owned(),
            "2025-11-10T00:00:00Z".to_owned()
        )
    );
    // A named zone with daylight saving: no offsets, the server resolves them.
    let (tr, tz) = feed_range(march, &WireFormat::Named("America/New_York".into())).unwrap();
    assert_eq!(tz.as_deref(), Some("America/New_York"));
    assert_eq!(to_wire(&tr, tz.as_deref()).1, "2025-04-01T00:00:00");
    assert_eq!(tr.end().offset().local_minus_utc(), -4 * 3600);
}

#[test]
fn today_is_the_clients_local_date() {
    let now: chrono::DateTime<chrono::Utc> = "2025-10-08T02:30:00Z".parse().unwrap();
    assert_eq!(
        today(&WireFormat::Local(chrono_tz::America::New_York), now),
        d(2025, 10, 7)
    );
    assert_eq!(today(&WireFormat::Offset { seconds: 8 * 3600 }, now), d(2025, 10, 8));
    assert_eq!(today(&WireFormat::Utc, now), d(2025, 10, 8));
    // Without a time-zone plugin FullCalendar cannot convert: the UTC date.
    assert_eq!(
        today(&WireFormat::Named("America/New_York".into()), now),
        d(2025, 10, 8)
    );
}

#[test]
fn the_three_wire_formats() {
    let r = visible_range(
        CalendarView::DayGridMonth,
        d(2025, 10, 6),
        &ViewOptions::with_first_day(1),
    );
    let (tr, tz) = feed_range(r, &WireFormat::Offset { seconds: 8 * 3600 }).unwrap();
    assert_eq!(tz, None);
    assert_eq!(
        to_wire(&tr, None),
        (
            "2025-09-29T00:00:00+08:00".to_owned(),
            "2025-11-10T00:00:00+08:00".to_owned()
        )
    );
    let (tr, tz) = feed_range(r, &WireFormat::Utc).unwrap();
    assert_eq!(tz.as_deref(), Some("UTC"));
    assert_eq!(to_wire(&tr, tz.as_deref()).0, "2025-09-29T00:00:00Z");
    let (tr, tz) = feed_range(r, &WireFormat::Named("Asia/Manila".into())).unwrap();
    assert_eq!(tz.as_deref(), Some("Asia/Manila"));
    assert_eq!(to_wire(&tr, tz.as_deref()).0, "2025-09-29T00:00:00");
    assert!(feed_range(r, &WireFormat::Named("Mars/Olympus".into())).is_err());
}
