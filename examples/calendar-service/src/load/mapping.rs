//! The deterministic mapping of a trace's values onto the service's:
//! all-day dates from instants, and the service's work types and statuses
//! from the trace's (the table is in `docs/world.md` and in
//! [`super::workload`]'s docs), with the stand-in the prediction uses for
//! each folded value.

use chrono::{DateTime, Days, NaiveDate, Utc};

/// Service work type of a trace work type code (`sim::db::WORK_TYPES`).
pub(crate) fn work_type(code: u8) -> &'static str {
    match code {
        0 | 2 => "feature",
        3 => "bug",
        _ => "chore",
    }
}

/// Service status of a trace status code (`sim::db::STATUSES`).
pub(crate) fn status(code: u8) -> &'static str {
    match code {
        0 => "open",
        1 | 2 => "in_progress",
        _ => "done",
    }
}

/// The trace code standing for a service work type in the prediction.
pub(crate) fn work_type_code(service: &str) -> Option<u8> {
    match service {
        "feature" => Some(0),
        "bug" => Some(3),
        "chore" => Some(1),
        _ => None,
    }
}

/// The trace code standing for a service status in the prediction.
pub(crate) fn status_code(service: &str) -> Option<u8> {
    match service {
        "open" => Some(0),
        "in_progress" => Some(1),
        "done" => Some(3),
        _ => None,
    }
}

/// A trace filter value folded onto the service's values; unknown values
/// stay as they are (they match nothing, in the world and in the model).
pub(crate) fn fold_filter(name: &str, value: &str) -> String {
    let (table, map): (&[&str], fn(u8) -> &'static str) = match name {
        "work_type" => (&sim::db::WORK_TYPES, work_type),
        _ => (&sim::db::STATUSES, status),
    };
    match sim::db::code_of(table, value) {
        Some(code) => map(code).to_owned(),
        None => value.to_owned(),
    }
}

/// The value the prediction sends for a folded filter value.
pub(crate) fn model_filter(name: &str, folded: &str) -> String {
    let code = match name {
        "work_type" => work_type_code(folded).map(|c| sim::db::WORK_TYPES[usize::from(c)]),
        _ => status_code(folded).map(|c| sim::db::STATUSES[usize::from(c)]),
    };
    code.map_or_else(|| folded.to_owned(), str::to_owned)
}

pub(crate) fn utc_date(us: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_micros(us).map_or(NaiveDate::MIN, |t| t.date_naive())
}

pub(crate) fn midnight_us(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_micros())
}

/// The all-day dates `[first, after last)` an item at `[start_us, end_us)`
/// is shown on.
pub fn item_dates(start_us: i64, end_us: i64) -> (NaiveDate, NaiveDate) {
    let first = utc_date(start_us);
    let last = utc_date(end_us.saturating_sub(1).max(start_us));
    let after = last.checked_add_days(Days::new(1)).unwrap_or(last);
    (first, after.max(first.checked_add_days(Days::new(1)).unwrap_or(first)))
}
