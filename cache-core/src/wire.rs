//! The wire form of feed-range instants: what FullCalendar (v5/v6) writes in
//! `start`/`end`, and how a server reads it back.
//!
//! FullCalendar writes a range end in one of three forms, chosen by its
//! `timeZone` option:
//!
//! | `timeZone` option | query parameter | an end looks like |
//! |---|---|---|
//! | `'local'` (default) | none | `2025-03-01T00:00:00-05:00`, or `…T00:00:00Z` when the browser's offset is zero |
//! | `'UTC'` | `timeZone=UTC` | `2025-03-01T00:00:00Z` |
//! | a named zone, no tz plugin | `timeZone=America/New_York` | `2025-03-01T00:00:00` (no offset) |
//!
//! A zero offset is always written `Z`, never `+00:00`. In a zone with
//! daylight saving each end carries its own offset, so one range can mix
//! `-05:00` and `-04:00`.
//!
//! The zone database is [`chrono_tz`]: it implements chrono's `TimeZone`, which
//! the rest of the workspace already uses for [`TimeRange`], and it compiles
//! the IANA database into the binary (no system tzdata needed at run time).
//!
//! # Local times that do not exist or exist twice
//!
//! Where a wall-clock time falls in a spring-forward gap or a fall-back fold,
//! two readings matter and they differ:
//!
//! - [`browser_local`] is what the *client* writes. FullCalendar keeps the
//!   wall-clock fields (`00:00:00`) and attaches the offset JavaScript reports
//!   for them: in a gap the offset *after* the change, in a fold the earlier
//!   instant's offset. Santiago's 2025-09-07 has no midnight; FullCalendar
//!   sends `2025-09-07T00:00:00-03:00`.
//! - [`resolve_local`] is what a *server* reads from an offset-less time and a
//!   named zone: a time in a gap is read with the offset before the change
//!   (`2025-09-07T00:00:00-04:00`, the same instant as `01:00-03:00`, as Python's
//!   `zoneinfo` and JavaScript's `Temporal` "compatible" do), a time in a fold
//!   as its first occurrence. The wall-clock fields are kept, so
//!   [`format_instant`] writes back exactly the string that was read.

use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;

use crate::view::TimeRange;

/// Why a wire instant or zone name was rejected. Every variant names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The text is not an ISO-8601 date-time (with or without offset) or date.
    #[error("{value:?} is not an ISO-8601 date-time (expected e.g. 2025-09-29T00:00:00+08:00, …Z, or 2025-09-29T00:00:00 with a timeZone)")]
    Malformed {
        /// The rejected text.
        value: String,
    },
    /// The time has no UTC offset and no `timeZone` says how to read it.
    #[error("{value:?} has no UTC offset and no timeZone was given")]
    MissingZone {
        /// The offset-less time.
        value: String,
    },
    /// The `timeZone` is not a name in the IANA tz database.
    #[error("unknown time zone {zone:?} (expected an IANA name such as America/New_York, or UTC)")]
    UnknownZone {
        /// The rejected name.
        zone: String,
    },
    /// `start` is not before `end`.
    #[error("range {start:?}..{end:?} is empty: start must be before end")]
    EmptyRange {
        /// The start as given.
        start: String,
        /// The end as given.
        end: String,
    },
}

/// Looks up an IANA zone name (`America/New_York`, `UTC`, `Etc/GMT+5`).
/// Names are case-sensitive, as in the tz database and in browsers' output.
pub fn parse_zone(name: &str) -> Result<Tz, WireError> {
    name.parse::<Tz>()
        .map_err(|_| WireError::UnknownZone { zone: name.to_owned() })
}

/// Parses one end of a feed range as a server reads it.
///
/// - With an offset or `Z` (`2025-03-01T00:00:00-05:00`, `…Z`, also
///   `+00:00`): that instant, with that offset kept.
/// - Without an offset (`2025-03-01T00:00:00`, or a bare date): the wall-clock
///   time in `time_zone`, resolved with [`resolve_local`].
///
/// `time_zone`, when given, must be a known zone even if the value carries an
/// offset, so a misspelt `timeZone` is reported rather than ignored.
///
/// ```
/// use cache_core::wire::{format_instant, parse_instant};
/// let t = parse_instant("2025-03-09T00:00:00", Some("America/New_York")).unwrap();
/// assert_eq!(t.to_rfc3339(), "2025-03-09T00:00:00-05:00");
/// assert_eq!(format_instant(&t, Some("America/New_York")), "2025-03-09T00:00:00");
/// let z = parse_instant("2025-03-09T05:00:00Z", None).unwrap();
/// assert_eq!(z, t);
/// assert_eq!(format_instant(&z, None), "2025-03-09T05:00:00Z");
/// ```
pub fn parse_instant(value: &str, time_zone: Option<&str>) -> Result<DateTime<FixedOffset>, WireError> {
    let zone = time_zone.map(parse_zone).transpose()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t);
    }
    let naive = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDate::parse_from_str(value, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN)))
        .map_err(|_| WireError::Malformed {
            value: value.to_owned(),
        })?;
    let zone = zone.ok_or_else(|| WireError::MissingZone {
        value: value.to_owned(),
    })?;
    Ok(resolve_local(&zone, naive))
}

/// Parses a feed request's `start`, `end` and optional `timeZone` into a
/// [`TimeRange`] (see [`parse_instant`]).
pub fn parse_range(start: &str, end: &str, time_zone: Option<&str>) -> Result<TimeRange, WireError> {
    let s = parse_instant(start, time_zone)?;
    let e = parse_instant(end, time_zone)?;
    TimeRange::new(s, e).map_err(|_| WireError::EmptyRange {
        start: start.to_owned(),
        end: end.to_owned(),
    })
}

/// Writes an instant the way FullCalendar sends it with the given `timeZone`
/// parameter:
///
/// - `None` (the browser's local zone): the instant's own wall-clock fields and
///   offset, `Z` when the offset is zero;
/// - `Some("UTC")`: UTC fields and `Z`;
/// - any other name: the instant's wall-clock fields without an offset. Pass
///   instants made by [`parse_instant`] or [`resolve_local`] in that zone, so
///   the fields are the zone's.
///
/// Milliseconds are written only when non-zero, as FullCalendar does.
pub fn format_instant(t: &DateTime<FixedOffset>, time_zone: Option<&str>) -> String {
    match time_zone {
        None => {
            let fields = fmt_fields(&t.naive_local());
            if t.offset().local_minus_utc() == 0 {
                format!("{fields}Z")
            } else {
                format!("{fields}{}", t.format("%:z"))
            }
        }
        Some("UTC") => format!("{}Z", fmt_fields(&t.naive_utc())),
        Some(_) => fmt_fields(&t.naive_local()),
    }
}

/// Writes both ends of `range` with [`format_instant`].
pub fn format_range(range: &TimeRange, time_zone: Option<&str>) -> (String, String) {
    (
        format_instant(&range.start(), time_zone),
        format_instant(&range.end(), time_zone),
    )
}

fn fmt_fields(t: &NaiveDateTime) -> String {
    if t.and_utc().timestamp_subsec_millis() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
    }
}

/// The zone's offset in effect just before the wall-clock time `local`
/// (a day earlier: no zone changes offset twice within a day).
fn offset_before(zone: &Tz, local: NaiveDateTime) -> FixedOffset {
    zone.offset_from_utc_datetime(&(local - Duration::days(1))).fix()
}

/// A server's reading of wall-clock time `local` in `zone`: the offset in
/// effect then; in a spring-forward gap the offset before the change (the
/// same instant JavaScript's `Temporal` "compatible" gives, with the wall-clock
/// fields kept); in a fall-back fold the first occurrence.
pub fn resolve_local(zone: &Tz, local: NaiveDateTime) -> DateTime<FixedOffset> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.fixed_offset(),
        LocalResult::Ambiguous(first, _) => first.fixed_offset(),
        LocalResult::None => with_fields(local, offset_before(zone, local)),
    }
}

/// What a browser in `zone` writes for wall-clock time `local` (FullCalendar
/// with `timeZone: 'local'`): the fields as given, with the offset JavaScript's
/// `Date` reports for them. In a spring-forward gap JavaScript moves the time
/// past the change, so the offset is the one after it (Santiago, 2025-09-07:
/// `00:00:00-03:00`); in a fold it takes the first occurrence.
pub fn browser_local(zone: &Tz, local: NaiveDateTime) -> DateTime<FixedOffset> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => t.fixed_offset(),
        LocalResult::Ambiguous(first, _) => first.fixed_offset(),
        LocalResult::None => {
            // Read with the offset before the change, the instant lies after
            // it; JavaScript reports that later instant's offset.
            let before = offset_before(zone, local);
            let instant = local - Duration::seconds(i64::from(before.local_minus_utc()));
            let after = zone.offset_from_utc_datetime(&instant).fix();
            with_fields(local, after)
        }
    }
}

/// `local` with `offset` attached, whatever the zone says about that pair.
fn with_fields(local: NaiveDateTime, offset: FixedOffset) -> DateTime<FixedOffset> {
    let utc = local - Duration::seconds(i64::from(offset.local_minus_utc()));
    DateTime::<Utc>::from_naive_utc_and_offset(utc, Utc).with_timezone(&offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
    }

    #[test]
    fn new_york_month_ends_carry_their_own_offsets() {
        let ny = parse_zone("America/New_York").unwrap();
        let s = browser_local(&ny, local("2025-03-01T00:00:00"));
        let e = browser_local(&ny, local("2025-04-01T00:00:00"));
        assert_eq!(format_instant(&s, None), "2025-03-01T00:00:00-05:00");
        assert_eq!(format_instant(&e, None), "2025-04-01T00:00:00-04:00");
    }

    #[test]
    fn zero_offset_is_z_never_plus_zero() {
        let london = parse_zone("Europe/London").unwrap();
        let winter = browser_local(&london, local("2025-01-06T00:00:00"));
        assert_eq!(format_instant(&winter, None), "2025-01-06T00:00:00Z");
        let summer = browser_local(&london, local("2025-07-06T00:00:00"));
        assert_eq!(format_instant(&summer, None), "2025-07-06T00:00:00+01:00");
        let plus_zero = parse_instant("2025-01-06T00:00:00+00:00", None).unwrap();
        assert_eq!(format_instant(&plus_zero, None), "2025-01-06T00:00:00Z");
        assert_eq!(format_instant(&summer, Some("UTC")), "2025-07-05T23:00:00Z");
    }

    #[test]
    fn santiago_midnight_gap() {
        let scl = parse_zone("America/Santiago").unwrap();
        let sent = browser_local(&scl, local("2025-09-07T00:00:00"));
        assert_eq!(format_instant(&sent, None), "2025-09-07T00:00:00-03:00");
        let read = parse_instant("2025-09-07T00:00:00", Some("America/Santiago")).unwrap();
        assert_eq!(read.to_rfc3339(), "2025-09-07T00:00:00-04:00");
        assert_eq!(read, parse_instant("2025-09-07T01:00:00-03:00", None).unwrap());
        assert_eq!(format_instant(&read, Some("America/Santiago")), "2025-09-07T00:00:00");
    }

    #[test]
    fn fold_takes_the_first_occurrence() {
        let ny = parse_zone("America/New_York").unwrap();
        let t = resolve_local(&ny, local("2025-11-02T01:30:00"));
        assert_eq!(t.to_rfc3339(), "2025-11-02T01:30:00-04:00");
        assert_eq!(browser_local(&ny, local("2025-11-02T01:30:00")), t);
    }

    #[test]
    fn errors_name_the_value() {
        let e = parse_instant("2025-13-01T00:00:00Z", None).unwrap_err();
        assert!(e.to_string().contains("2025-13-01T00:00:00Z"), "{e}");
        let e = parse_instant("2025-03-01T00:00:00", None).unwrap_err();
        assert!(matches!(e, WireError::MissingZone { .. }), "{e}");
        let e = parse_instant("2025-03-01T00:00:00Z", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(
            e,
            WireError::UnknownZone {
                zone: "Mars/Olympus".into()
            }
        );
        let e = parse_range("2025-03-02T00:00:00Z", "2025-03-01T00:00:00Z", None).unwrap_err();
        assert!(matches!(e, WireError::EmptyRange { .. }), "{e}");
    }

    #[test]
    fn round_trips_in_every_form() {
        for (s, tz) in [
            ("2025-09-29T00:00:00+08:00", None),
            ("2025-09-29T00:00:00Z", None),
            ("2025-09-29T00:00:00Z", Some("UTC")),
            ("2025-09-29T00:00:00", Some("Asia/Manila")),
            ("2025-03-09T02:30:00", Some("America/New_York")),
            ("2025-03-30T00:00:00.250", Some("Europe/Berlin")),
        ] {
            let t = parse_instant(s, tz).unwrap();
            assert_eq!(format_instant(&t, tz), s);
        }
    }
}
