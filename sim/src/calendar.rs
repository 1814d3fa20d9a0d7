//! FullCalendar's range rules (v5/v6) and the wire formats clients send.
//!
//! The simulator must request exactly the ranges a real client would, because
//! the bug this project studies is a mismatch between the ranges clients ask
//! for and the ranges the server guesses when invalidating. Everything here
//! works on local calendar dates ([`NaiveDate`]); [`feed_range`] turns a date
//! range into the instants of a feed request in one of the three wire formats.

use chrono::{Datelike, Duration as ChronoDuration, FixedOffset, Months, NaiveDate, NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};

use cache_core::TimeRange;

use crate::error::{Error, Result};

/// The FullCalendar view types the traffic model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CalendarView {
    /// `dayGridMonth`: the month grid.
    DayGridMonth,
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
    /// FullCalendar's name for the view.
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarView::DayGridMonth => "dayGridMonth",
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
        CalendarView::TimeGridWeek | CalendarView::ListWeek => {
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
    /// `prev`: one view duration back.
    Prev,
    /// `next`: one view duration forward.
    Next,
    /// `today`: jump to the given date.
    Today(NaiveDate),
}

/// The date the calendar shows after pressing `nav` in `view` at `date`.
/// Month-based views move by calendar months (anchored on the 1st, as
/// FullCalendar does), week views by 7 days, day views by 1.
pub fn navigate(view: CalendarView, date: NaiveDate, nav: Nav) -> NaiveDate {
    let step: i32 = match nav {
        Nav::Today(d) => return d,
        Nav::Prev => -1,
        Nav::Next => 1,
    };
    match view {
        CalendarView::DayGridMonth | CalendarView::ListMonth => add_months(first_of_month(date), step),
        CalendarView::ListYear => add_months(first_of_month(date), 12 * step),
        CalendarView::TimeGridWeek | CalendarView::ListWeek => date + ChronoDuration::days(7 * i64::from(step)),
        CalendarView::TimeGridDay | CalendarView::ListDay => date + ChronoDuration::days(i64::from(step)),
    }
}

/// How a client writes `start`/`end` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WireFormat {
    /// `timeZone: 'local'` (the default): local midnight with the browser's
    /// UTC offset, e.g. `2025-09-29T00:00:00+08:00`.
    Offset {
        /// The browser's offset east of UTC, in seconds.
        seconds: i32,
    },
    /// `timeZone: 'UTC'`: `2025-09-29T00:00:00Z`.
    Utc,
    /// A named zone without a time-zone plugin: no offset on the wire plus
    /// `timeZone=<name>`; the server resolves the zone.
    Named(String),
}

/// Fixed-offset zones the simulator can resolve by name. Deliberately only
/// zones without daylight saving, so no tz database is needed and offsets are
/// the same on every date; an unknown name is an error, not a guess.
pub const NAMED_ZONES: [(&str, i32); 8] = [
    ("UTC", 0),
    ("Etc/UTC", 0),
    ("Asia/Manila", 8 * 3600),
    ("Asia/Singapore", 8 * 3600),
    ("Asia/Tokyo", 9 * 3600),
    ("Asia/Kolkata", 5 * 3600 + 1800),
    ("America/Phoenix", -7 * 3600),
    ("Africa/Nairobi", 3 * 3600),
];

/// The UTC offset of a zone in [`NAMED_ZONES`].
pub fn named_zone_offset(name: &str) -> Option<i32> {
    NAMED_ZONES.iter().find(|(n, _)| *n == name).map(|&(_, s)| s)
}

fn offset(seconds: i32, what: &str) -> Result<FixedOffset> {
    FixedOffset::east_opt(seconds).ok_or_else(|| Error::Invalid(format!("{what}: UTC offset {seconds}s out of range")))
}

fn local_midnight(date: NaiveDate, off: FixedOffset) -> Result<chrono::DateTime<FixedOffset>> {
    off.from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .single()
        .ok_or_else(|| Error::Invalid(format!("{date} has no single local midnight")))
}

/// The instants of a feed request for local dates `range` written in `fmt`,
/// and the `timeZone` query parameter the client sends with it (if any).
pub fn feed_range(range: DateRange, fmt: &WireFormat) -> Result<(TimeRange, Option<String>)> {
    let (off, tz) = match fmt {
        WireFormat::Offset { seconds } => (offset(*seconds, "browser offset")?, None),
        WireFormat::Utc => (offset(0, "UTC")?, Some("UTC".to_owned())),
        WireFormat::Named(name) => {
            let secs = named_zone_offset(name).ok_or_else(|| {
                Error::Invalid(format!("unknown time zone {name:?} (known: fixed-offset zones only)"))
            })?;
            (offset(secs, name)?, Some(name.clone()))
        }
    };
    let tr = TimeRange::new(local_midnight(range.start, off)?, local_midnight(range.end, off)?)?;
    Ok((tr, tz))
}

/// Renders a range the way a client with `time_zone` writes it: with the
/// offset when there is no `timeZone` parameter, with `Z` for `UTC`, and
/// without an offset for any other named zone.
pub fn to_wire(range: &TimeRange, time_zone: Option<&str>) -> (String, String) {
    let fmt = |t: chrono::DateTime<FixedOffset>| -> String {
        match time_zone {
            None => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            Some("UTC") => t.naive_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Some(_) => t.naive_local().format("%Y-%m-%dT%H:%M:%S").to_string(),
        }
    };
    (fmt(range.start()), fmt(range.end()))
}

/// Parses one end of a feed range as the server would: an RFC 3339 instant
/// with offset or `Z`, or a local date-time / date without offset resolved in
/// `time_zone`.
pub fn parse_wire_instant(s: &str, time_zone: Option<&str>) -> Result<chrono::DateTime<FixedOffset>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        // `Z` parses as +00:00, which is what the key builders see.
        return Ok(t);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN)))
        .map_err(|e| Error::Invalid(format!("{s:?} is not an ISO-8601 date-time: {e}")))?;
    let zone = time_zone.ok_or_else(|| Error::Invalid(format!("{s:?} has no UTC offset and no timeZone was given")))?;
    let secs = named_zone_offset(zone).ok_or_else(|| Error::Invalid(format!("unknown time zone {zone:?}")))?;
    offset(secs, zone)?
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(|| Error::Invalid(format!("{s:?} is ambiguous in {zone}")))
}

/// Parses a feed request's `start`, `end` and optional `timeZone`.
pub fn parse_wire(start: &str, end: &str, time_zone: Option<&str>) -> Result<TimeRange> {
    Ok(TimeRange::new(
        parse_wire_instant(start, time_zone)?,
        parse_wire_instant(end, time_zone)?,
    )?)
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
            WireFormat::Utc,
            WireFormat::Named("Asia/Manila".into()),
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
