//! Longer workloads that compare strategies' misses on the same edits.

use super::*;

/// Misses of `bucketed` (month buckets) and `versioned` on one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketComparison {
    /// Misses under `bucketed`.
    pub bucketed_misses: u64,
    /// Misses under `versioned`.
    pub versioned_misses: u64,
    /// Reads per strategy.
    pub reads: u64,
    /// Stale reads seen under either strategy (must be 0).
    pub stale_reads: u64,
}

/// Views spanning three months each (one per month of 2025), changes that
/// only touch October: ten rounds of "read every view, edit an October
/// item".
pub async fn bucketed_vs_versioned(backend: Arc<dyn Backend>) -> BucketComparison {
    let options = CacheOptions::default().with_bucket(BucketSize::Month);
    let bucketed = year_of_edits(backend.clone(), "bucketed", options.clone()).await;
    let versioned = year_of_edits(backend, "versioned", options).await;
    BucketComparison {
        bucketed_misses: bucketed.misses,
        versioned_misses: versioned.misses,
        reads: versioned.reads,
        stale_reads: bucketed.stale_reads + versioned.stale_reads,
    }
}

/// What [`year_of_edits`] measured for one strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Reads made.
    pub reads: u64,
    /// Reads not served from the cache.
    pub misses: u64,
    /// Reads that served data the database no longer holds.
    pub stale_reads: u64,
}

/// Twelve three-month views (one per month of 2025, as a month grid with
/// its spill-over) read ten times, with an October item edited between
/// rounds: a strategy that invalidates per time bucket keeps the views that
/// do not show October cached.
pub async fn year_of_edits(backend: Arc<dyn Backend>, strategy: &str, options: CacheOptions) -> Workload {
    let views: Vec<View> = (1..=12)
        .map(|m: u32| {
            let start = chrono::NaiveDate::from_ymd_opt(2025, m, 1).unwrap();
            let s = start.checked_sub_months(chrono::Months::new(1)).unwrap();
            let e = start.checked_add_months(chrono::Months::new(2)).unwrap();
            View::new(
                [scope("cal:1")],
                TimeRange::new(
                    s.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset(),
                    e.and_time(chrono::NaiveTime::MIN).and_utc().fixed_offset(),
                )
                .unwrap(),
            )
            .unwrap()
        })
        .collect();
    let h = Harness::with_options(backend, strategy, options);
    let id = {
        let mut db = h.db.lock().unwrap();
        db.create(
            scope("cal:1"),
            range("2025-03-03T09:00:00Z", "2025-03-03T10:00:00Z"),
            "march",
            "task",
        );
        db.create(
            scope("cal:1"),
            range("2025-10-10T09:00:00Z", "2025-10-10T10:00:00Z"),
            "october",
            "task",
        )
        .0
    };
    let (mut reads, mut stale_reads) = (0, 0);
    for round in 0..10u32 {
        for view in &views {
            reads += 1;
            if h.read_is_stale(view).await {
                stale_reads += 1;
            }
        }
        let day = 10 + round;
        h.commit(|db| {
            db.edit(
                id,
                range(
                    &format!("2025-10-{day:02}T09:00:00Z"),
                    &format!("2025-10-{day:02}T10:00:00Z"),
                ),
                &format!("october v{round}"),
            )
        })
        .await;
    }
    Workload {
        reads,
        misses: h.cache.metrics().misses,
        stale_reads,
    }
}
