//! Random operation sequences checked against the model database.

use super::*;

/// One step of a model-checking run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelOp {
    /// Serve view number `view` of [`model_views`] (modulo their count) and
    /// compare with the database.
    Read {
        /// Index into the view catalogue.
        view: usize,
    },
    /// Create an item in scope `scope % 2` starting `start_hour` hours after
    /// 2025-09-01T00:00Z, lasting `hours` hours.
    Create {
        /// Which calendar (0 or 1).
        scope: usize,
        /// Start, hours after 2025-09-01T00:00Z.
        start_hour: u32,
        /// Duration in hours (at least 1).
        hours: u32,
        /// Which kind (0: meeting, 1: task).
        kind: usize,
    },
    /// Move and rename the `item`-th existing item (modulo their count).
    Edit {
        /// Index among existing items.
        item: usize,
        /// New start, hours after 2025-09-01T00:00Z.
        start_hour: u32,
        /// New duration in hours.
        hours: u32,
    },
    /// Delete the `item`-th existing item (modulo their count).
    Delete {
        /// Index among existing items.
        item: usize,
    },
    /// Move the clock forward (entries may expire logically).
    Advance {
        /// Seconds.
        secs: u32,
    },
}

/// The views a model run reads: month grids (both `firstDay`s, several
/// offsets), weeks, a day, a filtered list month, a view over both
/// calendars and a four-month view crossing many buckets.
pub fn model_views() -> Vec<View> {
    let one = |start: &str, end: &str| View::new([scope("cal:1")], range(start, end)).unwrap();
    vec![
        october_view("cal:1"),
        one("2025-09-28T00:00:00Z", "2025-11-09T00:00:00Z"),
        View::new(
            [scope("cal:2")],
            range("2025-10-27T00:00:00-05:00", "2025-12-08T00:00:00-05:00"),
        )
        .unwrap(),
        one("2025-10-13T00:00:00+08:00", "2025-10-20T00:00:00+08:00"),
        one("2025-10-15T00:00:00Z", "2025-10-16T00:00:00Z"),
        one("2025-10-01T00:00:00Z", "2025-11-01T00:00:00Z").with_param("kind", "meeting"),
        View::new(
            [scope("cal:2"), scope("cal:1")],
            range("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00"),
        )
        .unwrap(),
        one("2025-09-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        View::new(
            [scope("cal:2")],
            range("2025-09-01T00:00:00+02:00", "2025-10-01T00:00:00+02:00"),
        )
        .unwrap(),
    ]
}

fn hour_range(start_hour: u32, hours: u32) -> TimeRange {
    let base = at("2025-09-01T00:00:00Z");
    let start = base + TimeDelta::hours(i64::from(start_hour));
    TimeRange::new(start, start + TimeDelta::hours(i64::from(hours.max(1)))).unwrap()
}

/// A deterministic random sequence of `len` operations (splitmix64 from
/// `seed`): dates over September to December 2025, reads twice as likely
/// as each kind of write.
pub fn random_ops(seed: u64, len: usize) -> Vec<ModelOp> {
    let mut state = seed;
    let mut next = |n: u64| splitmix64(&mut state) % n;
    (0..len)
        .map(|_| match next(10) {
            0..=4 => ModelOp::Read {
                view: next(64) as usize,
            },
            5 | 6 => ModelOp::Create {
                scope: next(2) as usize,
                start_hour: next(24 * 120) as u32,
                hours: 1 + next(72) as u32,
                kind: next(2) as usize,
            },
            7 => ModelOp::Edit {
                item: next(64) as usize,
                start_hour: next(24 * 120) as u32,
                hours: 1 + next(72) as u32,
            },
            8 => ModelOp::Delete {
                item: next(64) as usize,
            },
            _ => ModelOp::Advance { secs: next(120) as u32 },
        })
        .collect()
}

/// Runs `ops` sequentially on a fresh harness and checks every read
/// against the model. Returns the number of reads, or a description of the
/// first stale one. Ends by reading every view once more.
pub async fn model_check(backend: Arc<dyn Backend>, strategy: &str, ops: &[ModelOp]) -> Result<usize, String> {
    model_check_with(backend, strategy, CacheOptions::default(), ops).await
}

/// [`model_check`] with strategy options (e.g. week buckets for `bucketed`).
pub async fn model_check_with(
    backend: Arc<dyn Backend>,
    strategy: &str,
    options: CacheOptions,
    ops: &[ModelOp],
) -> Result<usize, String> {
    let h = Harness::with_options(backend, strategy, options);
    let views = model_views();
    let mut reads = 0;
    let check = |served: Bytes, view: &View, step: usize, h: &Harness| -> Result<(), String> {
        let truth = h.truth(view);
        if served == truth {
            Ok(())
        } else {
            Err(format!(
                "{}: stale read at step {step} of view {view:?}:\n served {}\n truth  {}",
                h.describe(),
                String::from_utf8_lossy(&served),
                String::from_utf8_lossy(&truth)
            ))
        }
    };
    for (step, op) in ops.iter().enumerate() {
        match *op {
            ModelOp::Read { view } => {
                let view = &views[view % views.len()];
                reads += 1;
                check(h.read(view).await, view, step, &h)?;
            }
            ModelOp::Create {
                scope: s,
                start_hour,
                hours,
                kind,
            } => {
                let cal = if s % 2 == 0 { "cal:1" } else { "cal:2" };
                let kind = if kind % 2 == 0 { "meeting" } else { "task" };
                h.commit(|db| {
                    Some(
                        db.create(scope(cal), hour_range(start_hour, hours), &format!("item {step}"), kind)
                            .1,
                    )
                })
                .await;
            }
            ModelOp::Edit {
                item,
                start_hour,
                hours,
            } => {
                h.commit(|db| {
                    let ids = db.ids();
                    let id = *ids.get(item % ids.len().max(1))?;
                    db.edit(id, hour_range(start_hour, hours), &format!("edited at {step}"))
                })
                .await;
            }
            ModelOp::Delete { item } => {
                h.commit(|db| {
                    let ids = db.ids();
                    let id = *ids.get(item % ids.len().max(1))?;
                    db.delete(id)
                })
                .await;
            }
            ModelOp::Advance { secs } => h.clock.advance(Duration::from_secs(u64::from(secs))),
        }
    }
    for view in &views {
        reads += 1;
        check(h.read(view).await, view, ops.len(), &h)?;
    }
    Ok(reads)
}

/// [`model_check`] over `random_ops(seed, len)` for every seed in `seeds`;
/// panics on the first stale read, naming the seed.
pub async fn assert_model_check_seeds(
    backend: Arc<dyn Backend>,
    strategy: &str,
    seeds: std::ops::Range<u64>,
    len: usize,
) {
    for seed in seeds {
        if let Err(e) = model_check(backend.clone(), strategy, &random_ops(seed, len)).await {
            panic!("seed {seed}: {e}");
        }
    }
}
