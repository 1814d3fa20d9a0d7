//! `bucketed`: generations per (scope, time bucket), beyond the seed.
//!
//! Time is cut into UTC buckets ([`BucketSize`]: ISO weeks or calendar
//! months). Each (scope, bucket) has its own generation, created and bumped
//! exactly like `versioned`'s (random 62-bit start with `add`, one `incr` per
//! bump). A view's key carries the generations of every bucket its range
//! spans, for each of its scopes, fetched with **one** `get_many`; a change
//! bumps only the buckets its ranges (old and new dates of an edit) touch.
//! So a write to October leaves cached views of January to August readable,
//! where `versioned` would drop every view of the scope.
//!
//! Correctness: an item is in a view exactly when their ranges overlap; if
//! they overlap, some instant lies in both, so its bucket is both in the
//! view's key and among the bumped ones. The ordering rule of `versioned`
//! (read generations before the database, bump after the commit) carries
//! over, and so does the immunity to the stale-set race and to lost
//! generation keys.
//!
//! The key holds a 128-bit SHA-256 digest of the `(bucket, generation)`
//! list rather than the list itself, so a year-long view over week buckets
//! still has a short key (Memcached allows 250 bytes).
//!
//! # Cost
//!
//! - read: 1 round trip for the generations (one `get_many` of
//!   scopes × buckets keys; a single `get` when that is one key) + 1 `get`;
//!   one `add` per missing generation (the first read of a bucket);
//! - miss: 1 `set`;
//! - write: one `incr` per touched bucket (usually 1–2).
//!
//! A view may span at most [`MAX_BUCKETS`] buckets; longer views are an
//! error, which [`RangeCache`](crate::aside::RangeCache) turns into an
//! uncached load.
//!
//! # When to choose it
//!
//! Write-heavy scopes whose views span long periods (year views, long
//! lists) while writes cluster in a few weeks or months. With short views
//! and scattered writes it costs more keys than `versioned` for little gain.

use std::collections::BTreeSet;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{Datelike, Days, Months, NaiveDate, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use super::keys::{bump_generation, read_generations, scope_tag, view_key, GenerationSource};
use super::{BucketSize, ReadPlan, Requirements, Strategy, StrategyOptions};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::view::{Change, Scope, TimeRange, View};

const TAG: &str = "b";

/// Most buckets one view (or one change range) may span: 1024 weeks is
/// almost 20 years.
pub const MAX_BUCKETS: usize = 1024;

/// The `bucketed` strategy; see the [module docs](self).
#[derive(Debug)]
pub struct Bucketed {
    options: StrategyOptions,
    source: GenerationSource,
}

impl Bucketed {
    /// A `bucketed` strategy with `options` (uses `namespace`, `ttl`, `seed`,
    /// `clock`, `bucket`).
    pub fn new(options: StrategyOptions) -> Self {
        let source = GenerationSource::new(options.seed, options.clock.clone());
        Bucketed { options, source }
    }

    fn bucket_start(&self, day: NaiveDate) -> Option<NaiveDate> {
        match self.options.bucket {
            BucketSize::Week => day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday()))),
            BucketSize::Month => day.with_day(1),
        }
    }

    fn next_bucket(&self, start: NaiveDate) -> Option<NaiveDate> {
        match self.options.bucket {
            BucketSize::Week => start.checked_add_days(Days::new(7)),
            BucketSize::Month => start.checked_add_months(Months::new(1)),
        }
    }

    fn bucket_id(&self, start: NaiveDate) -> String {
        match self.options.bucket {
            BucketSize::Week => format!("w{start}"),
            BucketSize::Month => format!("m{:04}-{:02}", start.year(), start.month()),
        }
    }

    /// Ids of the buckets `range` overlaps, in time order (`w2025-10-06`,
    /// `m2025-10`).
    pub fn buckets(&self, range: &TimeRange) -> Result<Vec<String>> {
        let first = range.start().with_timezone(&Utc).date_naive();
        // The range is half-open: its last instant is one nanosecond before
        // `end`, so a view ending at midnight does not spill into the next
        // bucket.
        let last = (range.end() - TimeDelta::nanoseconds(1))
            .with_timezone(&Utc)
            .date_naive();
        let mut out = Vec::new();
        let mut cursor = self.bucket_start(first);
        while let Some(start) = cursor {
            if start > last {
                break;
            }
            if out.len() >= MAX_BUCKETS {
                return Err(Error::InvalidKey {
                    key: format!("{}..{}", range.start().to_rfc3339(), range.end().to_rfc3339()),
                    reason: "range spans more than MAX_BUCKETS buckets",
                });
            }
            out.push(self.bucket_id(start));
            cursor = self.next_bucket(start);
        }
        Ok(out)
    }

    /// `ns:b:{scope}:gen:<bucket>`.
    fn generation_key(&self, scope: &Scope, bucket: &str) -> Result<Key> {
        let tag = scope_tag(scope);
        Key::from_parts([self.options.namespace.as_str(), TAG, tag.as_str(), "gen", bucket], [])
    }

    fn generation_keys(&self, view: &View) -> Result<Vec<Key>> {
        let buckets = self.buckets(&view.range)?;
        let mut keys = Vec::with_capacity(view.scopes.len() * buckets.len());
        for scope in &view.scopes {
            for bucket in &buckets {
                keys.push(self.generation_key(scope, bucket)?);
            }
        }
        Ok(keys)
    }
}

#[async_trait]
impl Strategy for Bucketed {
    fn name(&self) -> &str {
        "bucketed"
    }

    fn needs(&self) -> Requirements {
        Requirements {
            counters: true,
            prefers_prefix_delete: false,
            invalidates: true,
            needs_shared_store: true,
        }
    }

    async fn plan_read(&self, backend: &dyn Backend, view: &View) -> Result<ReadPlan> {
        let gen_keys = self.generation_keys(view)?;
        let generations = read_generations(backend, &gen_keys, &self.source).await?;
        let mut digest = Sha256::new();
        for (key, g) in gen_keys.iter().zip(&generations) {
            digest.update(key.as_str().as_bytes());
            digest.update(b"=");
            digest.update(g.to_string().as_bytes());
            digest.update(b"\n");
        }
        let hex: String = digest.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
        let mut trusted = vec![self.options.namespace.clone(), TAG.to_owned()];
        trusted.extend(view.scopes.iter().map(scope_tag));
        trusted.push(format!("g{hex}"));
        let refs: Vec<&str> = trusted.iter().map(String::as_str).collect();
        let key = view_key(&refs, view)?;
        Ok(ReadPlan::new(key, Some(self.options.ttl)).with_generations(generations))
    }

    async fn store(&self, backend: &dyn Backend, _view: &View, plan: &ReadPlan, value: Bytes) -> Result<()> {
        backend.set(&plan.key, value, plan.ttl).await
    }

    async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        let mut buckets = BTreeSet::new();
        for range in &change.ranges {
            buckets.extend(self.buckets(range)?);
        }
        for bucket in buckets {
            bump_generation(backend, &self.generation_key(&change.scope, &bucket)?, &self.source).await?;
        }
        Ok(())
    }

    fn control_keys(&self, view: &View) -> Vec<Key> {
        self.generation_keys(view).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn range(a: &str, b: &str) -> TimeRange {
        TimeRange::new(
            DateTime::parse_from_rfc3339(a).unwrap(),
            DateTime::parse_from_rfc3339(b).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn buckets_follow_utc_and_half_open_ends() {
        let months = Bucketed::new(StrategyOptions::default());
        // The October grid in +08:00 starts on 2025-09-28T16:00Z.
        let oct = range("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00");
        assert_eq!(months.buckets(&oct).unwrap(), ["m2025-09", "m2025-10", "m2025-11"]);
        let exact = range("2025-10-01T00:00:00Z", "2025-11-01T00:00:00Z");
        assert_eq!(months.buckets(&exact).unwrap(), ["m2025-10"]);
        let weeks = Bucketed::new(StrategyOptions::default().with_bucket(BucketSize::Week));
        let w = range("2025-10-05T00:00:00Z", "2025-10-14T00:00:00Z");
        assert_eq!(
            weeks.buckets(&w).unwrap(),
            ["w2025-09-29", "w2025-10-06", "w2025-10-13"]
        );
        let huge = range("0100-01-01T00:00:00Z", "9000-01-01T00:00:00Z");
        assert!(weeks.buckets(&huge).is_err());
    }
}
