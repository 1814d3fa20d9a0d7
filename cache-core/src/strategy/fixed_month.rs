//! `fixed-month`: the seed's broken original, reproduced **faithfully**,
//! bug included. It is the baseline that shows the bug; do not choose it.
//!
//! ```python
//! for month_offset in range(4):
//!     start_of_month = (today.replace(day=1) + timedelta(days=32 * month_offset)).replace(day=1)
//!     end_of_month = (start_of_month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
//!     for wt in work_types:
//!         for st in statuses:
//!             cache_key = f"calendar_feed:{user_id}:{wt}:{st}:{start_of_month}:{end_of_month}"
//!             cache.delete(cache_key)
//! ```
//!
//! Reads key the view by the range **as the client sent it**
//! (`2025-09-29T00:00:00+08:00 .. 2025-11-10T00:00:00+08:00`); invalidation
//! deletes keys for fixed calendar-month boundaries (`2025-10-01 ..
//! 2025-10-31`) for four months from "today" (per
//! [`CacheOptions::clock`], in UTC), for every filter combination in
//! [`CacheOptions::filter_combinations`]. Those keys are never the ones a
//! FullCalendar client reads (a month grid starts before the 1st and ends
//! after the last day, and the end is exclusive), so the cached feed survives
//! the write: the `seed-october-2025` hazard. Months before today are never
//! touched either.
//!
//! # Cost
//!
//! - read: 1 `get`; miss: 1 `set`;
//! - write: one `delete` per (month × filter combination), issued one by one
//!   as the seed did: 4 round trips with the default single combination, 100
//!   for the seed's 5 work types × 5 statuses. All wasted.
//!
//! # Guarantees
//!
//! None beyond the TTL: a write is visible only once the stale entry expires.

use async_trait::async_trait;
use chrono::{Datelike, Days, NaiveDate, Utc};

use super::keys::{push_date, scoped_view_key};
use super::{ReadPlan, Requirements, Strategy, CacheOptions};
use crate::backend::Backend;
use crate::error::Result;
use crate::key::{Key, KeyBuilder};
use crate::view::{Change, View};

const TAG: &str = "fm";

/// The `fixed-month` strategy; see the [module docs](self).
#[derive(Debug)]
pub struct FixedMonth {
    options: CacheOptions,
}

impl FixedMonth {
    /// The registry name.
    pub const NAME: &'static str = "fixed-month";

    /// A `fixed-month` strategy with `options` (uses `namespace`, `ttl`,
    /// `clock`, `filter_combinations`).
    pub fn new(options: CacheOptions) -> Self {
        FixedMonth { options }
    }

    /// The `(start_of_month, end_of_month)` pairs the seed computes for
    /// `today`, with its `32 days` arithmetic.
    pub fn months_from(today: NaiveDate) -> Vec<(NaiveDate, NaiveDate)> {
        let mut out = Vec::with_capacity(4);
        for month_offset in 0..4u64 {
            let first = today.with_day(1).unwrap_or(today);
            let Some(start) = first
                .checked_add_days(Days::new(32 * month_offset))
                .and_then(|d| d.with_day(1))
            else {
                continue;
            };
            let Some(end) = start
                .checked_add_days(Days::new(32))
                .and_then(|d| d.with_day(1))
                .and_then(|d| d.checked_sub_days(Days::new(1)))
            else {
                continue;
            };
            out.push((start, end));
        }
        out
    }
}

#[async_trait]
impl Strategy for FixedMonth {
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
        // `today` per the injected clock: the seed's `date.today()`. Note the
        // change's own dates play no part at all.
        let today = chrono::DateTime::<Utc>::from(self.options.clock.now()).date_naive();
        // `ns:fm:{scope}`, shared by every key below.
        let mut head = KeyBuilder::with_capacity(self.options.namespace.len() + change.scope.as_str().len() + 8);
        head.trusted(&self.options.namespace)
            .trusted(TAG)
            .hash_tag(change.scope.as_str());
        for (start, end) in Self::months_from(today) {
            for combo in &self.options.filter_combinations {
                let params: usize = combo.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
                let mut b = KeyBuilder::with_capacity(head.as_str().len() + 24 + params + 8);
                b.trusted(head.as_str());
                push_date(&mut b, start);
                push_date(&mut b, end);
                for (name, value) in combo {
                    b.user(name).user(value);
                }
                let key = b.build()?;
                // One round trip per key, as the seed did.
                backend.delete(&key).await?;
            }
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
    fn seed_arithmetic_gives_four_calendar_months() {
        let today = NaiveDate::from_ymd_opt(2025, 10, 6).unwrap();
        let months = FixedMonth::months_from(today);
        let shown: Vec<String> = months.iter().map(|(s, e)| format!("{s}..{e}")).collect();
        assert_eq!(
            shown,
            [
                "2025-10-01..2025-10-31",
                "2025-11-01..2025-11-30",
                "2025-12-01..2025-12-31",
                "2026-01-01..2026-01-31"
            ]
        );
    }
}
