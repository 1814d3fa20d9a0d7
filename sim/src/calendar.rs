//! FullCalendar's range rules (v5/v6) and the wire formats clients send.
//!
//! The simulator must request exactly the ranges a real client would, because
//! the bug this project studies is a mismatch between the ranges clients ask
//! for and the ranges the server guesses when invalidating. Everything here
//! works on local calendar dates ([`NaiveDate`]); [`feed_range`] turns a date
//! range into the instants of a feed request in one of the wire formats, and
//! the wire text itself is [`cache_core::wire`]'s (shared with servers).
//!
//! `sim/tests/fullcalendar_golden.rs` checks these rules against what the real
//! `@fullcalendar/core` 6.1 sends (`sim/fixtures/fullcalendar/golden.jsonl`).

use chrono::{
    DateTime, Datelike, Duration as ChronoDuration, FixedOffset, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use cache_core::{wire, TimeRange};

use crate::error::{Error, Result};

/// The FullCalendar view types the traffic model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CalendarView {
    /// `dayGridMonth`: the month grid.
    DayGridMonth,
    /// `dayGridWeek`: one week as a day grid (same range as `timeGridWeek`).
    DayGridWeek,
    /// `timeGridWeek`: one week.
    TimeGridWeek,
    /// `timeGridDay`: one day.
    TimeGridDay,
    /// `listDay`: a list of one day.
    ListDay,
    /// `listWeek`: a list of one week.
    ListWeek,
    /// `listMonth`: a list of one calendar month, no padding.
    ListMonth,
    /// `listYear`: a list of one calendar year.
    ListYear,
}

impl CalendarView {
    /// Every view, in FullCalendar's naming order.
    pub const ALL: [CalendarView; 8] = [
        CalendarView::DayGridMonth,
        CalendarView::DayGridWeek,
        CalendarView::TimeGridWeek,
        CalendarView::TimeGridDay,
        CalendarView::ListDay,
        CalendarView::ListWeek,
        CalendarView::ListMonth,
        CalendarView::ListYear,
    ];

    /// The view FullCalendar calls `name` (`"dayGridMonth"`, …).
    pub fn from_name(name: &str) -> Option<CalendarView> {
        Self::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// FullCalendar's name for the view.
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarView::DayGridMonth => "dayGridMonth",
            CalendarView::DayGridWeek => "dayGridWeek",
            CalendarView::TimeGridWeek => "timeGridWeek",
            CalendarView::TimeGridDay => "timeGridDay",
            CalendarView::ListDay => "listDay",
            CalendarView::ListWeek => "listWeek",
            CalendarView::ListMonth => "listMonth",
            CalendarView::ListYear => "listYear",
        }
    }
}

/// Calendar options that change the visible range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ViewOptions {
    /// First day of the week, 0 = Sunday (FullCalendar's default) … 6; ISO
    /// locales use 1 (Monday).
    pub first_day: u8,
    /// `fixedWeekCount` (default true): the month grid always has six weeks.
    pub fixed_week_count: bool,
    /// `showNonCurrentDates` (default true): when false the month view's range
    /// is trimmed to the month itself.
    pub show_non_current_dates: bool,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            first_day: 0,
            fixed_week_count: true,
            show_non_current_dates: true,
        }
    }
}

impl ViewOptions {
    /// Defaults with `firstDay = first_day` (taken modulo 7).
    pub fn with_first_day(first_day: u8) -> Self {
        ViewOptions {
            first_day: first_day % 7,
            ..Self::default()
        }
    }
}

/// A half-open range of local dates `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DateRange {
    /// First visible date.
    pub start: NaiveDate,
    /// The day after the last visible date (exclusive, as FullCalendar sends).
    pub end: NaiveDate,
}

impl DateRange {
    /// True when `other` lies inside `self`.
    pub fn contains(&self, other: &DateRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Length in days.
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days()
    }
}

fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

fn add_months(date: NaiveDate, months: i32) -> NaiveDate {
    let r = if months >= 0 {
        date.checked_add_months(Months::new(months.unsigned_abs()))
    } else {
        date.checked_sub_months(Months::new(months.unsigned_abs()))
    };
    r.unwrap_or(date)
}

/// The start of the week holding `date`, per `first_day`.
pub fn week_start(date: NaiveDate, first_day: u8) -> NaiveDate {
    let dow = date.weekday().num_days_from_sunday() as i64;
    let back = (dow - i64::from(first_day % 7)).rem_euclid(7);
    date - ChronoDuration::days(back)
}

/// The range FullCalendar requests for `view` showing `date`.
///
/// ```
/// use chrono::NaiveDate;
/// use sim::calendar::{visible_range, CalendarView, ViewOptions};
/// let d = NaiveDate::from_ymd_opt(2025, 10, 6).unwrap();
/// let r = visible_range(CalendarView::DayGridMonth, d, &ViewOptions::with_first_day(1));
/// assert_eq!((r.start.to_string(), r.end.to_string()), ("2025-09-29".into(), "2025-11-10".into()));
/// ```
pub fn visible_range(view: CalendarView, date: NaiveDate, opts: &ViewOptions) -> DateRange {
    let day = ChronoDuration::days(1);
    match view {
        CalendarView::DayGridMonth => {
            let first = first_of_month(date);
            let next = add_months(first, 1);
            if !opts.show_non_current_dates {
                return DateRange {
                    start: first,
                    end: next,
                };
            }
            let start = week_start(first, opts.first_day);
            let end = if opts.fixed_week_count {
                start + ChronoDuration::days(42)
            } else {
                week_start(next - day, opts.first_day) + ChronoDuration::days(7)
            };
            DateRange { start, end }
        }
        CalendarView::DayGridWeek | CalendarView::TimeGridWeek | CalendarView::ListWeek => {
            let start = week_start(date, opts.first_day);
            DateRange {
                start,
                end: start + ChronoDuration::days(7),
            }
        }
        CalendarView::TimeGridDay | CalendarView::ListDay => DateRange {
            start: date,
            end: date + day,
        },
        CalendarView::ListMonth => {
            let first = first_of_month(date);
            DateRange {
                start: first,
                end: add_months(first, 1),
            }
        }
        CalendarView::ListYear => {
            let first = NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date);
            DateRange {
                start: first,
                end: add_months(first, 12),
            }
        }
    }
}

/// The toolbar buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Nav {
    /// `prev`: one view duration back from the view's start.
    Prev,
    /// `next`: one view duration forward from the view's start.
    Next,
    /// `today`: jump to the given date (the client's local date, see [`today`]).
    Today(NaiveDate),
}

/// The date the calendar shows after pressing `nav` in `view` at `date`.
///
/// As in FullCalendar, prev/next move from the *start* of the current period,
/// not from the date: month views go to the 1st of the previous/next month,
/// `listYear` to the 1st of January, week views to the week start (per
/// `first_day`) ∓ 7 days, day views ∓ 1 day. So "week of 2025-10-08, prev,
/// then month view" shows September (the week of 2025-09-28).
pub fn navigate(view: CalendarView, date: NaiveDate, nav: Nav, opts: &ViewOptions) -> NaiveDate {
    let step: i32 = match nav {
        Nav::Today(d) => return d,
        Nav::Prev => -1,
        Nav::Next => 1,
    };
    match view {
        CalendarView::DayGridMonth | CalendarView::ListMonth => add_months(first_of_month(date), step),
        CalendarView::ListYear => {
            let jan1 = NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date);
            add_months(jan1, 12 * step)
        }
        CalendarView::DayGridWeek | CalendarView::TimeGridWeek | CalendarView::ListWeek => {
            week_start(date, opts.first_day) + ChronoDuration::days(7 * i64::from(step))
        }
        CalendarView::TimeGridDay | CalendarView::ListDay => date + ChronoDuration::days(i64::from(step)),
    }
}

/// How a client writes `start`/`end` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WireFormat {
    /// `timeZone: 'local'` (the default) in a browser whose zone is the
    /// given IANA zone: local midnight with the offset in effect on that
    /// date, so the two ends of one range can differ
    /// (`2025-03-01T00:00:00-05:00` .. `2025-04-01T00:00:00-04:00`), and `Z`
    /// when it is zero.
    Local(Tz),
    /// `timeZone: 'local'` in a browser with a fixed UTC offset, e.g.
    /// `2025-09-29T00:00:00+08:00` (`Z` for 0).
    Offset {
        /// The browser's offset east of UTC, in seconds.
        seconds: i32,
    },
    /// `timeZone: 'UTC'`: `2025-09-29T00:00:00Z`.
    Utc,
    /// A named zone without a time-zone plugin: no offset on the wire plus
    /// `timeZone=<name>`; the server resolves the zone (any IANA name,
    /// daylight saving included).
    Named(String),
}

fn offset(seconds: i32, what: &str) -> Result<FixedOffset> {
    FixedOffset::east_opt(seconds).ok_or_else(|| Error::Invalid(format!("{what}: UTC offset {seconds}s out of range")))
}

fn zone(name: &str) -> Result<Tz> {
    wire::parse_zone(name).map_err(|e| Error::Invalid(e.to_string()))
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_time(NaiveTime::MIN)
}

fn fixed_midnight(date: NaiveDate, off: FixedOffset) -> Result<DateTime<FixedOffset>> {
    off.from_local_datetime(&midnight(date))
        .single()
        .ok_or_else(|| Error::Invalid(format!("{date} has no single local midnight")))
}

/// The instants of a feed request for local dates `range` written in `fmt`,
/// and the `timeZone` query parameter the client sends with it (if any).
///
/// A browser-local zone puts each end's own offset on it; where local
/// midnight does not exist (America/Santiago, 2025-09-07) it writes
/// `00:00:00` with the offset after the change, as FullCalendar does
/// ([`wire::browser_local`]).
pub fn feed_range(range: DateRange, fmt: &WireFormat) -> Result<(TimeRange, Option<String>)> {
    let (start, end, tz) = match fmt {
        WireFormat::Local(z) => (
            wire::browser_local(z, midnight(range.start)),
            wire::browser_local(z, midnight(range.end)),
            None,
        ),
        WireFormat::Offset { seconds } => {
            let off = offset(*seconds, "browser offset")?;
            (fixed_midnight(range.start, off)?, fixed_midnight(range.end, off)?, None)
        }
        WireFormat::Utc => {
            let off = offset(0, "UTC")?;
            (
                fixed_midnight(range.start, off)?,
                fixed_midnight(range.end, off)?,
                Some("UTC".to_owned()),
            )
        }
        WireFormat::Named(name) => {
            let z = zone(name)?;
            (
                wire::resolve_local(&z, midnight(range.start)),
                wire::resolve_local(&z, midnight(range.end)),
                Some(name.clone()),
            )
        }
    };
    Ok((TimeRange::new(start, end)?, tz))
}

/// The local date a client in `fmt` calls "today" at instant `now`:
/// FullCalendar's `today` is the browser's local date, the UTC date with
/// `timeZone: 'UTC'`, and also the UTC date for a named zone without a
/// time-zone plugin (it cannot convert, so it treats the instant as UTC).
pub fn today(fmt: &WireFormat, now: DateTime<Utc>) -> NaiveDate {
    match fmt {
        WireFormat::Local(z) => now.with_timezone(z).date_naive(),
        WireFormat::Offset { seconds } => match FixedOffset::east_opt(*seconds) {
            Some(off) => now.with_timezone(&off).date_naive(),
            None => now.date_naive(),
        },
        WireFormat::Utc | WireFormat::Named(_) => now.date_naive(),
    }
}

/// Renders a range the way a client with `time_zone` writes it (see
/// [`wire::format_instant`]): with the offset when there is no `timeZone`
/// parameter (`Z` for zero), `Z` for `UTC`, and without an offset for any
/// other named zone.
pub fn to_wire(range: &TimeRange, time_zone: Option<&str>) -> (String, String) {
    wire::format_range(range, time_zone)
}

/// Parses one end of a feed range as the server would ([`wire::parse_instant`]):
/// an RFC 3339 instant with offset or `Z`, or a local date-time / date without
/// offset resolved in the IANA zone `time_zone`.
pub fn parse_wire_instant(s: &str, time_zone: Option<&str>) -> Result<DateTime<FixedOffset>> {
    wire::parse_instant(s, time_zone).map_err(|e| Error::Invalid(e.to_string()))
}

/// Parses a feed request's `start`, `end` and optional `timeZone`.
pub fn parse_wire(start: &str, end: &str, time_zone: Option<&str>) -> Result<TimeRange> {
    wire::parse_range(start, end, time_zone).map_err(|e| Error::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn wire_roundtrip_in_all_three_formats() {
        let r = DateRange {
            start: d(2025, 9, 29),
            end: d(2025, 11, 10),
        };
        for fmt in [
            WireFormat::Offset { seconds: 8 * 3600 },
            WireFormat::Local(chrono_tz::America::New_York),
            WireFormat::Utc,
            WireFormat::Named("Asia/Manila".into()),
            WireFormat::Named("America/Santiago".into()),
        ] {
            let (tr, tz) = feed_range(r, &fmt).unwrap();
            let (s, e) = to_wire(&tr, tz.as_deref());
            assert_eq!(parse_wire(&s, &e, tz.as_deref()).unwrap(), tr, "{s} {e}");
        }
        let (tr, _) = feed_range(r, &WireFormat::Offset { seconds: 8 * 3600 }).unwrap();
        assert_eq!(to_wire(&tr, None).0, "2025-09-29T00:00:00+08:00");
        let (tr, tz) = feed_range(r, &WireFormat::Utc).unwrap();
        assert_eq!(to_wire(&tr, tz.as_deref()).0, "2025-09-29T00:00:00Z");
    }
}
