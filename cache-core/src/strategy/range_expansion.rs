//! `range-expansion`: the seed's Solution B, "clear wider date ranges",
//! done as well as guessing allows. It exists to be measured: it misses by
//! design whatever it did not guess.
//!
//! For every day (in [`CacheOptions::home_offset`]) a change touches (at most [`MAX_DAYS`] per range), it
//! deletes the keys of the views a FullCalendar client would most likely
//! have cached around that day (see `SPEC.md`):
//!
//! - month grids (`dayGridMonth`, `fixedWeekCount`, 42 days) of the previous,
//!   the same and the next month, for `firstDay` 0 and 1, when they show the
//!   day;
//! - the plain month (list views, `showNonCurrentDates: false`);
//! - the week holding the day, for `firstDay` 0 and 1;
//! - the day itself;
//!
//! each for every filter combination in
//! [`CacheOptions::filter_combinations`], all in **one canonical format**:
//! midnight in the home offset (`…T00:00:00+08:00` for a `+08:00` app; UTC by
//! default).
//!
//! # What it misses
//!
//! Any view keyed with another offset or zone (`Z` from a `timeZone=UTC`
//! client of a `+08:00` app, a named zone: the `timezone-variants` hazard), any other period (4-day views, custom
//! ranges), filter combinations not configured, views over several scopes,
//! and the stale-set race of every delete-based strategy.
//!
//! # Cost
//!
//! - read: 1 `get`; miss: 1 `set`;
//! - write: 1 `delete_many` of about 10 keys per touched day per filter
//!   combination (deduplicated).
//!
//! # When to choose it
//!
//! Not for correctness. It shows what Solution B would buy: some hits kept
//! across writes to far-away dates, paid with stale reads for every client
//! whose key was not guessed.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, TimeDelta};

use super::keys::{push_view_parts, scoped_view_key};
use super::{ReadPlan, Requirements, Strategy, CacheOptions};
use crate::backend::Backend;
use crate::error::Result;
use crate::key::{Key, KeyBuilder};
use crate::view::{Change, TimeRange, View};

const TAG: &str = "rx";

/// Most days of one change range that get guesses; a longer range is cut
/// (its remaining days are simply not invalidated), which bounds a write's
/// cost.
pub const MAX_DAYS: u64 = 62;

/// The `range-expansion` strategy; see the [module docs](self).
#[derive(Debug)]
pub struct RangeExpansion {
    options: CacheOptions,
}

/// `[start, end)` of FullCalendar's month grid (`fixedWeekCount: true`) for
/// the month holding `month`, with weeks starting on `first_day` (0 =
/// Sunday, 1 = Monday, …): the week holding the 1st, 42 days.
///
/// ```
/// use cache_core::strategy::range_expansion::month_grid;
/// use chrono::NaiveDate;
/// let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
/// assert_eq!(month_grid(d(2025, 10, 15), 1), Some((d(2025, 9, 29), d(2025, 11, 10))));
/// assert_eq!(month_grid(d(2025, 10, 15), 0), Some((d(2025, 9, 28), d(2025, 11, 9))));
/// assert_eq!(month_grid(d(2026, 2, 1), 0), Some((d(2026, 2, 1), d(2026, 3, 15))));
/// ```
pub fn month_grid(month: NaiveDate, first_day: u32) -> Option<(NaiveDate, NaiveDate)> {
    let first = month.with_day(1)?;
    let start = week_start(first, first_day)?;
    Some((start, start.checked_add_days(Days::new(42))?))
}

/// The first day of the week holding `day`, weeks starting on `first_day`.
pub fn week_start(day: NaiveDate, first_day: u32) -> Option<NaiveDate> {
    let back = (day.weekday().num_days_from_sunday() + 7 - first_day % 7) % 7;
    day.checked_sub_days(Days::new(u64::from(back)))
}

fn midnight(d: NaiveDate, offset: FixedOffset) -> Option<DateTime<FixedOffset>> {
    // A fixed offset has no gaps or folds: `single` always answers.
    d.and_time(chrono::NaiveTime::MIN).and_local_timezone(offset).single()
}

impl RangeExpansion {
    /// The registry name.
    pub const NAME: &'static str = "range-expansion";

    /// A `range-expansion` strategy with `options` (uses `namespace`, `ttl`,
    /// `filter_combinations`).
    pub fn new(options: CacheOptions) -> Self {
        RangeExpansion { options }
    }

    /// The `[start, end)` date ranges guessed for one touched `day`.
    pub fn guesses_for_day(day: NaiveDate) -> BTreeSet<(NaiveDate, NaiveDate)> {
        let mut out = BTreeSet::new();
        let months = [
            day.checked_sub_months(Months::new(1)),
            Some(day),
            day.checked_add_months(Months::new(1)),
        ];
        for month in months.into_iter().flatten() {
            for first_day in [0, 1] {
                if let Some((s, e)) = month_grid(month, first_day) {
                    if s <= day && day < e {
                        out.insert((s, e));
                    }
                }
            }
        }
        if let Some(first) = day.with_day(1) {
            if let Some(next) = first.checked_add_months(Months::new(1)) {
                out.insert((first, next));
            }
        }
        for first_day in [0, 1] {
            if let Some(s) = week_start(day, first_day) {
                if let Some(e) = s.checked_add_days(Days::new(7)) {
                    out.insert((s, e));
                }
            }
        }
        if let Some(next) = day.checked_add_days(Days::new(1)) {
            out.insert((day, next));
        }
        out
    }

    fn days_of(range: &TimeRange, home: FixedOffset) -> Vec<NaiveDate> {
        let first = range.start().with_timezone(&home).date_naive();
        let last = (range.end() - TimeDelta::nanoseconds(1))
            .with_timezone(&home)
            .date_naive();
        first
            .iter_days()
            .take_while(|d| *d <= last)
            .take(MAX_DAYS as usize)
            .collect()
    }
}

#[async_trait]
impl Strategy for RangeExpansion {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn needs(&self) -> Requirements {
        Requirements {
            counters: false,
            prefers_prefix_delete: false,
            invalidates: true,
            needs_shared_store: true,
            invalidates_by_delete: true,
        }
    }

    async fn plan_read(&self, _backend: &dyn Backend, view: &View) -> Result<ReadPlan> {
        let key = scoped_view_key(&self.options.namespace, TAG, view)?;
        Ok(ReadPlan::new(key, Some(self.options.ttl)))
    }

    async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        let mut ranges = BTreeSet::new();
        for range in &change.ranges {
            for day in Self::days_of(range, self.options.home_offset) {
                ranges.extend(Self::guesses_for_day(day));
            }
        }
        // `ns:rx:{scope}`, shared by every key below.
        let mut head = KeyBuilder::with_capacity(self.options.namespace.len() + change.scope.as_str().len() + 8);
        head.trusted(&self.options.namespace)
            .trusted(TAG)
            .hash_tag(change.scope.as_str());
        let mut keys = Vec::with_capacity(ranges.len() * self.options.filter_combinations.len());
        for (start, end) in ranges {
            let (Some(start), Some(end)) = (
                midnight(start, self.options.home_offset),
                midnight(end, self.options.home_offset),
            ) else {
                continue;
            };
            let range = TimeRange::new(start, end)?;
            for params in &self.options.filter_combinations {
                // The exact key a client's view of this range would have.
                let params_len: usize = params.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
                let mut b = KeyBuilder::with_capacity(head.as_str().len() + 2 * 32 + params_len + 8);
                b.trusted(head.as_str());
                push_view_parts(&mut b, &range, params);
                keys.push(b.build()?);
            }
        }
        if !keys.is_empty() {
            backend.delete_many(&keys).await?;
        }
        Ok(())
    }

    fn control_keys(&self, _view: &View) -> Vec<Key> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_cover_both_october_grids_and_the_week() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let g = RangeExpansion::guesses_for_day(d(2025, 10, 15));
        assert!(g.contains(&(d(2025, 9, 29), d(2025, 11, 10))));
        assert!(g.contains(&(d(2025, 9, 28), d(2025, 11, 9))));
        assert!(g.contains(&(d(2025, 10, 1), d(2025, 11, 1))));
        assert!(g.contains(&(d(2025, 10, 13), d(2025, 10, 20))));
        assert!(g.contains(&(d(2025, 10, 15), d(2025, 10, 16))));
        // 2025-11-03 is shown by both October grids and both November grids.
        let g = RangeExpansion::guesses_for_day(d(2025, 11, 3));
        assert!(g.contains(&(d(2025, 9, 29), d(2025, 11, 10))));
        assert!(g.contains(&(d(2025, 10, 27), d(2025, 12, 8))));
    }
}
