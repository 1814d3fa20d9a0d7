//! FullCalendar's wire format, straight to a [`View`]: a feed handler hands
//! over the raw query string and gets the view to cache, or an error that is
//! always the client's fault (answer it with `400 Bad Request`).
//!
//! FullCalendar (v5/v6) requests a JSON feed with `start` and `end` (end
//! exclusive) in one of three shapes:
//!
//! | calendar's `timeZone` | what it sends |
//! |---|---|
//! | `'local'` (default) | the browser's offset on each end: `2025-09-29T00:00:00+08:00` |
//! | `'UTC'` | `Z`, plus `timeZone=UTC` |
//! | a named zone, no plugin | no offset, plus `timeZone=America/New_York` |
//!
//! Offsets are kept exactly as sent (clients that write the same instant
//! differently get different cache keys, as they would in any key built from
//! the request). A time without an offset is resolved in the named zone by
//! `wire::parse_instant` (the IANA database of `chrono_tz`, daylight
//! saving included), so the New York March 2025 month view becomes
//! `2025-03-01T00:00:00-05:00 .. 2025-04-01T00:00:00-04:00`. This module adds
//! the query string around it: parameters, filters, the [`View`].
//!
//! ```
//! use cache_core::{fullcalendar, Scope};
//! let query = "start=2025-03-01T00%3A00%3A00&end=2025-04-01T00%3A00%3A00\
//!              &timeZone=America%2FNew_York&status=open";
//! let view = fullcalendar::view([Scope::new("cal:7")?], query, &["work_type", "status"])?;
//! assert_eq!(view.range.start().to_rfc3339(), "2025-03-01T00:00:00-05:00");
//! assert_eq!(view.range.end().to_rfc3339(), "2025-04-01T00:00:00-04:00");
//! assert_eq!(view.params.get("status").map(String::as_str), Some("open"));
//! assert_eq!(view.params.get("timeZone").map(String::as_str), Some("America/New_York"));
//! assert!(view.params.get("work_type").is_none()); // absent filter = all
//!
//! let err = fullcalendar::view([Scope::new("cal:7")?], "start=yesterday", &[]).unwrap_err();
//! assert_eq!(err.to_string(), "`start=yesterday` is not an ISO-8601 date-time");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};

use crate::view::{Scope, TimeRange, View};
use crate::wire::{self, WireError};

/// The query parameter holding the range's inclusive start.
pub const START: &str = "start";
/// The query parameter holding the range's exclusive end.
pub const END: &str = "end";
/// The query parameter naming the calendar's zone; also the [`View::params`]
/// key it is kept under (a feed rendered for another zone is another entry).
pub const TIME_ZONE: &str = "timeZone";

/// Longest piece of client input quoted back in an error, in characters.
const QUOTE_MAX: usize = 64;

/// Why a feed query was rejected. Every variant is a client error: a handler
/// answers `400 Bad Request` with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FeedQueryError {
    /// `start` or `end` is absent (or empty).
    #[error("missing query parameter `{param}`")]
    Missing {
        /// The parameter's name.
        param: &'static str,
    },
    /// A parameter that selects what is cached appears twice; which one the
    /// application would use is not knowable here, so neither is.
    #[error("query parameter `{param}` appears more than once")]
    Repeated {
        /// The parameter's name.
        param: String,
    },
    /// `start` or `end` is not an ISO-8601 date or date-time.
    #[error("`{param}={value}` is not an ISO-8601 date-time")]
    BadDateTime {
        /// The parameter's name.
        param: &'static str,
        /// The value sent (cut to 64 characters).
        value: String,
    },
    /// A date-time without an offset, and no `timeZone` to read it in.
    #[error("`{param}={value}` has no UTC offset and no `timeZone` parameter names its zone")]
    NoZone {
        /// The parameter's name.
        param: &'static str,
        /// The value sent (cut to 64 characters).
        value: String,
    },
    /// `timeZone` is not `UTC` or an IANA zone name.
    #[error("unknown time zone `{value}`: expected UTC or an IANA name such as America/New_York")]
    UnknownTimeZone {
        /// The value sent (cut to 64 characters).
        value: String,
    },
    /// `start` is not before `end`.
    #[error("empty range: start {start} is not before end {end}")]
    EmptyRange {
        /// The resolved start (RFC 3339).
        start: String,
        /// The resolved end (RFC 3339).
        end: String,
    },
    /// The caller passed no scope (the user can see no calendar).
    #[error("a feed needs at least one scope (calendar)")]
    NoScope,
}

/// A parsed FullCalendar feed query: the range, the zone, and the filters
/// the application declared. Build a [`View`] from it with
/// [`FeedQuery::into_view`], or in one step with [`view`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedQuery {
    range: TimeRange,
    time_zone: Option<String>,
    filters: BTreeMap<String, String>,
}

impl FeedQuery {
    /// Parses a raw (URL-encoded) query string such as axum's `RawQuery`
    /// gives. `filters` names the parameters besides `start`, `end` and
    /// `timeZone` that select what the feed shows (`work_type`, `status`):
    /// they become part of the cache key. An absent or empty filter means
    /// "all" and is left out. Every other parameter is ignored, so it must
    /// not change the response either.
    ///
    /// `+` decodes to a space in a query string; a space inside `start` or
    /// `end` is read back as `+`, so a hand-typed `start=…T00:00:00+08:00`
    /// works as FullCalendar's `%2B08:00` does.
    pub fn parse(query: &str, filters: &[&str]) -> Result<Self, FeedQueryError> {
        Self::from_pairs(form_urlencoded::parse(query.as_bytes()), filters)
    }

    /// As [`parse`](Self::parse), from already decoded name/value pairs.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>, filters: &[&str]) -> Result<Self, FeedQueryError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut start = None;
        let mut end = None;
        let mut zone = None;
        let mut found = BTreeMap::new();
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            let slot = match name {
                START => &mut start,
                END => &mut end,
                TIME_ZONE => &mut zone,
                other if filters.contains(&other) => {
                    if found.insert(other.to_owned(), value.to_owned()).is_some() {
                        return Err(FeedQueryError::Repeated {
                            param: other.to_owned(),
                        });
                    }
                    continue;
                }
                _ => continue,
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(FeedQueryError::Repeated { param: name.to_owned() });
            }
        }
        let zone = zone.filter(|z| !z.is_empty());
        if let Some(name) = &zone {
            check_zone(name)?;
        }
        let start = parse_param(START, start, zone.as_deref())?;
        let end = parse_param(END, end, zone.as_deref())?;
        let range = TimeRange::new(start, end).map_err(|_| FeedQueryError::EmptyRange {
            start: start.to_rfc3339(),
            end: end.to_rfc3339(),
        })?;
        found.retain(|_, v| !v.is_empty());
        Ok(FeedQuery {
            range,
            time_zone: zone,
            filters: found,
        })
    }

    /// The requested range, each end with the offset it was sent with (or
    /// resolved to in the named zone).
    pub fn range(&self) -> TimeRange {
        self.range
    }

    /// The `timeZone` parameter, when one was sent.
    pub fn time_zone(&self) -> Option<&str> {
        self.time_zone.as_deref()
    }

    /// The value of filter `name`; `None` means "all".
    pub fn filter(&self, name: &str) -> Option<&str> {
        self.filters.get(name).map(String::as_str)
    }

    /// The view of `scopes` this query asks for: its range, its `timeZone`
    /// (under [`TIME_ZONE`]) and its filters as [`View::params`].
    pub fn into_view(self, scopes: impl IntoIterator<Item = Scope>) -> Result<View, FeedQueryError> {
        let mut view = View::new(scopes, self.range).map_err(|_| FeedQueryError::NoScope)?;
        view.params = self.filters;
        if let Some(zone) = self.time_zone {
            view.params.insert(TIME_ZONE.to_owned(), zone);
        }
        Ok(view)
    }
}

/// The [`View`] of `scopes` that a FullCalendar feed request with the raw
/// query string `query` asks for, `filters` naming the parameters that are
/// part of the key (see [`FeedQuery::parse`]).
pub fn view(scopes: impl IntoIterator<Item = Scope>, query: &str, filters: &[&str]) -> Result<View, FeedQueryError> {
    FeedQuery::parse(query, filters)?.into_view(scopes)
}

/// The instants during which the all-day dates `[start, end)` (end
/// exclusive, FullCalendar's convention) are "today" *somewhere*: from
/// `start` 00:00 at UTC+14 to `end` 00:00 at UTC−12.
///
/// All-day items are floating dates, shown on the same day in every zone,
/// so a feed in any zone that shows them requested a range overlapping this
/// one. Use it for the ranges of a [`Change`](crate::Change) about an
/// all-day item; a strategy that looks at dates (`bucketed`) then
/// invalidates every view that showed it, whatever the viewer's offset.
///
/// ```
/// use chrono::NaiveDate;
/// let d = |s: &str| s.parse::<NaiveDate>().unwrap();
/// let r = cache_core::fullcalendar::all_day_range(d("2025-10-15"), d("2025-10-16")).unwrap();
/// assert_eq!(r.start().to_rfc3339(), "2025-10-15T00:00:00+14:00");
/// assert_eq!(r.end().to_rfc3339(), "2025-10-16T00:00:00-12:00");
/// assert!(cache_core::fullcalendar::all_day_range(d("2025-10-16"), d("2025-10-16")).is_err());
/// ```
pub fn all_day_range(start: NaiveDate, end: NaiveDate) -> crate::Result<TimeRange> {
    // The easternmost and westernmost offsets in use (Kiribati, Baker Island).
    let east = FixedOffset::east_opt(14 * 3600);
    let west = FixedOffset::west_opt(12 * 3600);
    let (Some(east), Some(west)) = (east, west) else {
        return Err(crate::Error::InvalidKey {
            key: format!("{start}..{end}"),
            reason: "no fixed offset for the extreme zones",
        });
    };
    let at = |date: NaiveDate, zone: FixedOffset| zone.from_local_datetime(&date.and_time(NaiveTime::MIN)).single();
    match (at(start, east), at(end, west)) {
        (Some(s), Some(e)) if start < end => TimeRange::new(s, e),
        _ => Err(crate::Error::InvalidKey {
            key: format!("{start}..{end}"),
            reason: "an all-day range needs start < end",
        }),
    }
}

/// `UTC` or an IANA name, through [`wire::parse_zone`].
fn check_zone(name: &str) -> Result<(), FeedQueryError> {
    wire::parse_zone(name)
        .map(|_| ())
        .map_err(|_| FeedQueryError::UnknownTimeZone { value: quote(name) })
}

/// One end of the range, read by [`wire::parse_instant`] (which resolves
/// offset-less times in the named zone, daylight-saving gaps and folds
/// included); its errors are told apart here to name the parameter.
fn parse_param(
    param: &'static str,
    value: Option<String>,
    zone: Option<&str>,
) -> Result<DateTime<FixedOffset>, FeedQueryError> {
    let Some(raw) = value.filter(|v| !v.is_empty()) else {
        return Err(FeedQueryError::Missing { param });
    };
    // A date-time never holds a space: it is a `+` that the form decoding
    // turned into one.
    let value = raw.replace(' ', "+");
    wire::parse_instant(&value, zone).map_err(|e| match e {
        WireError::MissingZone { .. } => FeedQueryError::NoZone {
            param,
            value: quote(&raw),
        },
        WireError::UnknownZone { zone } => FeedQueryError::UnknownTimeZone { value: quote(&zone) },
        _ => FeedQueryError::BadDateTime {
            param,
            value: quote(&raw),
        },
    })
}

fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let mut out: String = chars.by_ref().take(QUOTE_MAX).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILTERS: &[&str] = &["work_type", "status"];

    fn cal() -> Scope {
        Scope::new("cal:1").unwrap()
    }

    fn parse(q: &str) -> Result<FeedQuery, FeedQueryError> {
        FeedQuery::parse(q, FILTERS)
    }

    #[test]
    fn offsets_are_kept_as_sent() {
        let q = parse("start=2025-09-29T00%3A00%3A00%2B08%3A00&end=2025-11-10T00%3A00%3A00%2B08%3A00").unwrap();
        assert_eq!(q.range().start().to_rfc3339(), "2025-09-29T00:00:00+08:00");
        assert_eq!(q.range().end().to_rfc3339(), "2025-11-10T00:00:00+08:00");
        assert_eq!(q.time_zone(), None);
        let z = parse("start=2025-09-29T00:00:00Z&end=2025-11-10T00:00:00Z&timeZone=UTC").unwrap();
        assert_eq!(z.range().start().offset().local_minus_utc(), 0);
        assert_eq!(z.time_zone(), Some("UTC"));
        // Same instants, different spelling: the spelling is kept (keys
        // are built from it).
        let a = parse("start=2025-09-29T00:00:00Z&end=2025-11-10T00:00:00Z").unwrap();
        let b = parse("start=2025-09-29T08:00:00%2B08:00&end=2025-11-10T08:00:00%2B08:00").unwrap();
        assert_eq!(a.range().start(), b.range().start());
        assert_ne!(a.range().start().to_rfc3339(), b.range().start().to_rfc3339());
    }

    #[test]
    fn a_hand_typed_plus_is_a_plus() {
        let q = parse("start=2025-09-29T00:00:00+08:00&end=2025-10-06T00:00:00+08:00").unwrap();
        assert_eq!(q.range().start().offset().local_minus_utc(), 8 * 3600);
    }

    #[test]
    fn named_zones_resolve_each_end_with_its_own_offset() {
        // FullCalendar's New York March 2025 month view, firstDay 0 (SPEC).
        let q = parse("start=2025-03-01T00:00:00&end=2025-04-01T00:00:00&timeZone=America/New_York").unwrap();
        assert_eq!(q.range().start().to_rfc3339(), "2025-03-01T00:00:00-05:00");
        assert_eq!(q.range().end().to_rfc3339(), "2025-04-01T00:00:00-04:00");
        // Southern hemisphere, other direction, date-only form.
        let s = parse("start=2025-04-01&end=2025-04-10&timeZone=Australia/Sydney").unwrap();
        assert_eq!(s.range().start().to_rfc3339(), "2025-04-01T00:00:00+11:00");
        assert_eq!(s.range().end().to_rfc3339(), "2025-04-10T00:00:00+10:00");
    }

    #[test]
    fn daylight_saving_gaps_and_repeats_resolve_to_instants_that_exist() {
        // 02:30 on 2025-03-09 does not exist in New York: the instant of
        // 03:30 EDT.
        let gap = parse("start=2025-03-09T02:30:00&end=2025-03-10T00:00:00&timeZone=America/New_York").unwrap();
        let after = DateTime::parse_from_rfc3339("2025-03-09T03:30:00-04:00").unwrap();
        assert_eq!(gap.range().start(), after);
        // 01:30 on 2025-11-02 happens twice: the first one (EDT).
        let rep = parse("start=2025-11-02T01:30:00&end=2025-11-03T00:00:00&timeZone=America/New_York").unwrap();
        assert_eq!(rep.range().start().to_rfc3339(), "2025-11-02T01:30:00-04:00");
        // Santiago skips midnight on 2025-09-07: the day starts at the
        // instant of 01:00-03:00 (wire keeps the fields sent, with the
        // offset from before the gap).
        let midnight = parse("start=2025-09-07&end=2025-09-08&timeZone=America/Santiago").unwrap();
        let first = DateTime::parse_from_rfc3339("2025-09-07T01:00:00-03:00").unwrap();
        assert_eq!(midnight.range().start(), first);
    }

    #[test]
    fn filters_become_params_and_absent_or_empty_means_all() {
        let q = "start=2025-10-01T00:00:00Z&end=2025-10-02T00:00:00Z&status=open&work_type=&other=x&timeZone=UTC";
        let view = view([cal(), cal()], q, FILTERS).unwrap();
        assert_eq!(view.scopes, vec![cal()]);
        let params: Vec<(&str, &str)> = view.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(params, [("status", "open"), ("timeZone", "UTC")]);
        let no_filter = view_of("start=2025-10-01T00:00:00Z&end=2025-10-02T00:00:00Z&other=x");
        assert!(no_filter.params.is_empty());
    }

    fn view_of(q: &str) -> View {
        view([cal()], q, FILTERS).unwrap()
    }

    #[test]
    fn every_bad_input_is_a_typed_error() {
        let e = |q: &str| parse(q).unwrap_err();
        assert_eq!(e("end=2025-10-02T00:00:00Z"), FeedQueryError::Missing { param: START });
        assert_eq!(
            e("start=2025-10-02T00:00:00Z&end="),
            FeedQueryError::Missing { param: END }
        );
        assert!(matches!(
            e("start=2025-10-01T00:00:00Z&start=2025-10-02T00:00:00Z&end=2025-10-03T00:00:00Z"),
            FeedQueryError::Repeated { param } if param == "start"
        ));
        assert!(matches!(
            e("start=2025-10-01T00:00:00Z&end=2025-10-03T00:00:00Z&status=a&status=b"),
            FeedQueryError::Repeated { param } if param == "status"
        ));
        assert!(matches!(
            e("start=2025-13-01T00:00:00Z&end=2025-10-03T00:00:00Z"),
            FeedQueryError::BadDateTime { param: "start", .. }
        ));
        assert!(matches!(
            e("start=2025-10-01T00:00:00&end=2025-10-03T00:00:00"),
            FeedQueryError::NoZone { param: "start", .. }
        ));
        assert!(matches!(
            e("start=2025-10-01T00:00:00&end=2025-10-03T00:00:00&timeZone=Mars/Olympus"),
            FeedQueryError::UnknownTimeZone { value } if value == "Mars/Olympus"
        ));
        assert!(matches!(
            e("start=2025-10-03T00:00:00Z&end=2025-10-03T00:00:00Z"),
            FeedQueryError::EmptyRange { .. }
        ));
        let none: [Scope; 0] = [];
        assert_eq!(
            view(none, "start=2025-10-01T00:00:00Z&end=2025-10-02T00:00:00Z", FILTERS).unwrap_err(),
            FeedQueryError::NoScope
        );
    }

    #[test]
    fn errors_quote_at_most_64_characters() {
        let long = "x".repeat(500);
        let err = parse(&format!("start={long}&end=2025-10-03T00:00:00Z")).unwrap_err();
        let FeedQueryError::BadDateTime { value, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(value.chars().count(), QUOTE_MAX + 1);
        assert!(err.to_string().len() < 120, "{err}");
    }

    #[test]
    fn all_day_range_overlaps_the_day_in_every_zone() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        let item = all_day_range(d("2025-10-15"), d("2025-10-16")).unwrap();
        for hours in -12..=14 {
            let zone = FixedOffset::east_opt(hours * 3600).unwrap();
            let day = |date: &str| zone.from_local_datetime(&d(date).and_time(NaiveTime::MIN)).unwrap();
            let shows = TimeRange::new(day("2025-10-15"), day("2025-10-16")).unwrap();
            assert!(item.overlaps(&shows), "UTC{hours:+}");
            // Not wider than it must be: at the extremes the neighbouring
            // day on the far side is not touched.
            let before = TimeRange::new(day("2025-10-14"), day("2025-10-15")).unwrap();
            let after = TimeRange::new(day("2025-10-16"), day("2025-10-17")).unwrap();
            if hours == 14 {
                assert!(!item.overlaps(&before));
            }
            if hours == -12 {
                assert!(!item.overlaps(&after));
            }
        }
    }
}
