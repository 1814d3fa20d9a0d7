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
use std::fmt::Write as _;

use async_trait::async_trait;
use chrono::{Datelike, Days, Months, NaiveDate, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use super::generations::{bump_generation, read_generations, GenerationSource};
use super::keys::{push_hex_lower, push_view, view_key_builder, write_date, write_year_month, year_0_9999};
use super::{BucketSize, CacheOptions, ReadPlan, Requirements, Strategy};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::key::{u64_digits, Key, KeyBuilder};
use crate::view::{Change, Scope, TimeRange, View};

const TAG: &str = "b";

/// Most buckets one view (or one change range) may span: 1024 weeks is
/// almost 20 years.
pub const MAX_BUCKETS: usize = 1024;

/// The `bucketed` strategy; see the [module docs](self).
#[derive(Debug)]
pub struct Bucketed {
    options: CacheOptions,
    source: GenerationSource,
    /// Tag and last part of the generation keys' head: `b` and `gen` here;
    /// `stamped` keeps its own (fenced) bucket generations apart.
    head: (&'static str, &'static str),
}

impl Bucketed {
    /// The registry name.
    pub const NAME: &'static str = "bucketed";

    /// A `bucketed` strategy with `options` (uses `namespace`, `ttl`, `seed`,
    /// `clock`, `bucket`).
    pub fn new(options: CacheOptions) -> Self {
        let source = GenerationSource::new(options.seed, options.clock.clone(), options.control_ttl());
        Bucketed {
            options,
            source,
            head: (TAG, "gen"),
        }
    }

    /// The bucket arithmetic and key layout of `bucketed` for `stamped`'s
    /// bucket generations, under `tag` and `word` (`ns:<tag>:{scope}:<word>:<bucket>`):
    /// its fenced counters must never share a key with `bucketed`'s plain
    /// ones.
    pub(crate) fn keyed_as(options: CacheOptions, tag: &'static str, word: &'static str) -> Self {
        Bucketed {
            head: (tag, word),
            ..Self::new(options)
        }
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

    /// Appends the id of the bucket starting at `start`: `w2025-10-06`
    /// (`w` + the date) or `m2025-10` (`m` + `{year:04}-{month:02}`).
    /// Written by hand because `plan_read` writes one per bucket of every
    /// view (see `keys::fmt_instant_fast`).
    fn write_bucket_id(&self, out: &mut String, start: NaiveDate) {
        match self.options.bucket {
            BucketSize::Week => {
                out.push('w');
                write_date(out, start);
            }
            BucketSize::Month => match year_0_9999(start.year()) {
                Some(year) => {
                    out.push('m');
                    write_year_month(out, year, start.month());
                }
                // Writing to a `String` cannot fail.
                None => drop(write!(out, "m{:04}-{:02}", start.year(), start.month())),
            },
        }
    }

    /// Ids of the buckets `range` overlaps, in time order (`w2025-10-06`,
    /// `m2025-10`).
    pub fn buckets(&self, range: &TimeRange) -> Result<Vec<String>> {
        Ok(self
            .bucket_starts(range)?
            .into_iter()
            .map(|start| {
                let mut id = String::with_capacity(12);
                self.write_bucket_id(&mut id, start);
                id
            })
            .collect())
    }

    /// First days of the buckets `range` overlaps, in time order.
    fn bucket_starts(&self, range: &TimeRange) -> Result<Vec<NaiveDate>> {
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
            out.push(start);
            cursor = self.next_bucket(start);
        }
        Ok(out)
    }

    /// `ns:b:{scope}:gen`, the head of every generation key of `scope`.
    fn generation_head(&self, scope: &Scope) -> KeyBuilder {
        let mut head = KeyBuilder::with_capacity(self.options.namespace.len() + scope.as_str().len() + 16);
        head.trusted(&self.options.namespace)
            .trusted(self.head.0)
            .hash_tag(scope.as_str())
            .trusted(self.head.1);
        head
    }

    /// `head:<bucket>`: `ns:b:{scope}:gen:<bucket>`.
    fn generation_key(head: &KeyBuilder, bucket: impl FnOnce(&mut String)) -> Result<Key> {
        let mut b = KeyBuilder::with_capacity(head.as_str().len() + 16);
        b.trusted(head.as_str());
        bucket(b.begin_part());
        b.build()
    }

    /// The generation keys of `view`: one per (scope, bucket its range
    /// spans), scope by scope, buckets in time order.
    pub(crate) fn generation_keys(&self, view: &View) -> Result<Vec<Key>> {
        let starts = self.bucket_starts(&view.range)?;
        let mut keys = Vec::with_capacity(view.scopes.len() * starts.len());
        for scope in &view.scopes {
            let head = self.generation_head(scope);
            for &start in &starts {
                keys.push(Self::generation_key(&head, |out| self.write_bucket_id(out, start))?);
            }
        }
        Ok(keys)
    }

    /// The generation keys `change` bumps: one per bucket its old and new
    /// dates touch, in its scope.
    pub(crate) fn change_keys(&self, change: &Change) -> Result<Vec<Key>> {
        let mut buckets = BTreeSet::new();
        for range in &change.ranges {
            buckets.extend(self.buckets(range)?);
        }
        let head = self.generation_head(&change.scope);
        buckets
            .into_iter()
            .map(|bucket| Self::generation_key(&head, |out| out.push_str(&bucket)))
            .collect()
    }
}

#[async_trait]
impl Strategy for Bucketed {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn needs(&self) -> Requirements {
        Requirements::COUNTERS
    }

    async fn plan_read(&self, backend: &dyn Backend, view: &View) -> Result<ReadPlan> {
        let gen_keys = self.generation_keys(view)?;
        let generations = read_generations(backend, &gen_keys, &self.source).await?;
        let mut digest = Sha256::new();
        let mut digits = [0u8; 20];
        for (key, g) in gen_keys.iter().zip(&generations) {
            digest.update(key.as_str().as_bytes());
            digest.update(b"=");
            digest.update(u64_digits(*g, &mut digits));
            digest.update(b"\n");
        }
        let digest = digest.finalize();
        let mut b = view_key_builder(&self.options.namespace, view);
        b.trusted(&self.options.namespace).trusted(TAG);
        for scope in &view.scopes {
            b.hash_tag(scope.as_str());
        }
        // `g` + the first 16 bytes of the digest in lowercase hex.
        let part = b.begin_part();
        part.push('g');
        push_hex_lower(part, digest.get(..16).unwrap_or_default());
        push_view(&mut b, view);
        let key = b.build()?;
        Ok(ReadPlan::new(key, Some(self.options.ttl)).with_generations(generations))
    }

    async fn invalidate(&self, backend: &dyn Backend, change: &Change) -> Result<()> {
        for key in self.change_keys(change)? {
            bump_generation(backend, &key, &self.source).await?;
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
        let months = Bucketed::new(CacheOptions::default());
        // The October grid in +08:00 starts on 2025-09-28T16:00Z.
        let oct = range("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00");
        assert_eq!(months.buckets(&oct).unwrap(), ["m2025-09", "m2025-10", "m2025-11"]);
        let exact = range("2025-10-01T00:00:00Z", "2025-11-01T00:00:00Z");
        assert_eq!(months.buckets(&exact).unwrap(), ["m2025-10"]);
        let weeks = Bucketed::new(CacheOptions::default().with_bucket(BucketSize::Week));
        let w = range("2025-10-05T00:00:00Z", "2025-10-14T00:00:00Z");
        assert_eq!(
            weeks.buckets(&w).unwrap(),
            ["w2025-09-29", "w2025-10-06", "w2025-10-13"]
        );
        let huge = range("0100-01-01T00:00:00Z", "9000-01-01T00:00:00Z");
        assert!(weeks.buckets(&huge).is_err());
    }
}
