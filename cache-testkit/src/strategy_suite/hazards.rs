//! The hazard checks: the seed's scenarios, lost keys, the stale-set
//! race, the commit-to-bump window, concurrent misses, the key index cap.

use super::*;

/// Which of the seed's three verification scenarios a strategy passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedOutcome {
    /// "Create work item, refresh calendar: the new item appears."
    pub create: bool,
    /// "Edit title or dates, refresh: the changes show."
    pub edit: bool,
    /// "Delete work item, refresh: the item no longer appears."
    pub delete: bool,
}

/// The views the seed scenarios refresh: the October grid as the seed's
/// (+08:00, Monday-first) client sends it, the same month from a UTC
/// Sunday-first client, and the week of the 13th.
pub fn seed_views(calendar: &str) -> Vec<View> {
    vec![
        october_view(calendar),
        View::new([scope(calendar)], range("2025-09-28T00:00:00Z", "2025-11-09T00:00:00Z")).unwrap(),
        View::new(
            [scope(calendar)],
            range("2025-10-13T00:00:00+08:00", "2025-10-20T00:00:00+08:00"),
        )
        .unwrap(),
    ]
}

/// Runs one seed scenario: a calendar with two items, every view read twice
/// (the second read must be a hit, or the scenario proves nothing), then
/// `write`, then a refresh of every view. True when every refresh is fresh.
async fn seed_scenario(
    backend: Arc<dyn Backend>,
    strategy: &str,
    write: fn(&mut ModelDb, u64) -> Option<Change>,
) -> bool {
    let h = Harness::new(backend, strategy);
    let cal = "cal:1";
    let standup = {
        let mut db = h.db.lock().unwrap();
        let (id, _) = db.create(
            scope(cal),
            range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00"),
            "standup",
            "meeting",
        );
        db.create(
            scope(cal),
            range("2025-10-02T00:00:00+08:00", "2025-10-03T00:00:00+08:00"),
            "offsite",
            "task",
        );
        id
    };
    let views = seed_views(cal);
    for view in &views {
        h.read(view).await;
        let hits = h.cache.metrics().hits;
        assert!(!h.read_is_stale(view).await, "{}: warm read", h.describe());
        assert_eq!(
            h.cache.metrics().hits,
            hits + 1,
            "{}: second read must hit",
            h.describe()
        );
    }
    h.commit(|db| write(db, standup)).await;
    let mut fresh = true;
    for view in &views {
        fresh &= !h.read_is_stale(view).await;
    }
    fresh
}

/// The seed's three verification scenarios (create, edit, delete an item,
/// then refresh the October 2025 month view and its variants), each in a
/// fresh namespace.
pub async fn seed_scenarios(backend: Arc<dyn Backend>, strategy: &str) -> SeedOutcome {
    let create = seed_scenario(backend.clone(), strategy, |db, _| {
        let (_, change) = db.create(
            scope("cal:1"),
            range("2025-10-16T14:00:00+08:00", "2025-10-16T15:00:00+08:00"),
            "retro",
            "meeting",
        );
        Some(change)
    })
    .await;
    let edit = seed_scenario(backend.clone(), strategy, |db, id| {
        // New title and new dates: out of the week view, still in the month.
        db.edit(
            id,
            range("2025-11-05T10:00:00+08:00", "2025-11-05T11:00:00+08:00"),
            "standup (moved)",
        )
    })
    .await;
    let delete = seed_scenario(backend, strategy, |db, id| db.delete(id)).await;
    SeedOutcome { create, edit, delete }
}

/// Panics unless `strategy` passes all three seed scenarios on `backend`.
pub async fn assert_seed_scenarios_pass(backend: Arc<dyn Backend>, strategy: &str) {
    let name = backend.name().to_owned();
    let outcome = seed_scenarios(backend, strategy).await;
    assert_eq!(
        outcome,
        SeedOutcome {
            create: true,
            edit: true,
            delete: true
        },
        "{strategy} on {name}: seed scenarios"
    );
}

/// The `version-eviction` hazard: cache the October view, delete an item,
/// cache the view again, then delete the strategy's control keys
/// (generations) while data keys stay. Returns whether the next read served
/// the deleted item.
pub async fn generation_eviction_serves_stale(backend: Arc<dyn Backend>, strategy: &str) -> bool {
    let h = Harness::new(backend.clone(), strategy);
    let (view, id) = h.october_standup();
    assert!(!h.read_is_stale(&view).await);
    h.commit(|db| db.delete(id)).await;
    assert!(!h.read_is_stale(&view).await, "{}: read after the delete", h.describe());
    let control = h.cache.strategy().control_keys(&view);
    assert!(!control.is_empty(), "{}: no control keys to evict", h.describe());
    backend.delete_many(&control).await.unwrap();
    h.read_is_stale(&view).await
}

/// Losing an entry: cache a view, change it, read it again (refilling),
/// then delete the entry itself (eviction) while its generations stay.
/// Returns whether any read served stale data (it must not: a lost entry is
/// a miss).
pub async fn entry_loss_serves_stale(backend: Arc<dyn Backend>, strategy: &str) -> bool {
    let h = Harness::new(backend.clone(), strategy);
    let (view, id) = h.october_standup();
    let mut stale = h.read_is_stale(&view).await;
    h.commit(|db| db.delete(id)).await;
    stale |= h.read_is_stale(&view).await;
    let plan = h.cache.strategy().plan_read(backend.as_ref(), &view).await.unwrap();
    assert!(
        backend.delete(&plan.key).await.unwrap(),
        "{}: the entry was stored",
        h.describe()
    );
    stale |= h.read_is_stale(&view).await;
    stale | h.read_is_stale(&view).await
}

/// A read of `view` whose load has queried the database and then waits
/// (the slow part of a load) until the returned sender fires; returns once
/// the query ran.
async fn slow_reader(
    h: &Harness,
    view: &View,
) -> (
    tokio::task::JoinHandle<std::result::Result<Bytes, LoadError<Infallible>>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (queried_tx, queried_rx) = tokio::sync::oneshot::channel::<()>();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = {
        let (cache, db, view) = (h.cache.clone(), h.db.clone(), view.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&view.clone(), move || async move {
                    let snapshot = db.lock().unwrap().query(&view);
                    let _ = queried_tx.send(());
                    let _ = release_rx.await;
                    Ok::<_, Infallible>(snapshot)
                })
                .await
        })
    };
    queried_rx.await.unwrap();
    (reader, release_tx)
}

/// The `stale-set-race`: a reader plans, misses and queries the database;
/// while its (slow) loader is still running, an item is deleted and the
/// cache invalidated; then the loader returns the old feed, which the
/// reader stores. Returns whether a later read serves the deleted item.
pub async fn stale_set_race_serves_stale(backend: Arc<dyn Backend>, strategy: &str) -> bool {
    let h = Harness::new(backend, strategy);
    let (view, id) = h.october_standup();
    let (reader, release_tx) = slow_reader(&h, &view).await;
    h.commit(|db| db.delete(id)).await;
    release_tx.send(()).unwrap();
    let served_old = reader.await.unwrap().unwrap();
    // The racing request started before the commit: serving the old feed to
    // it is allowed. The question is what it left behind.
    assert_ne!(served_old, h.truth(&view), "the loader must have seen the old feed");
    h.read_is_stale(&view).await
}

/// What readers inside the commit-to-bump window were served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOutcome {
    /// A read after the commit, before the invalidation, answered from the
    /// entry cached before the write: was it stale?
    pub cached_read_stale: bool,
    /// A read after the commit that found a load from before the commit in
    /// progress (single-flight): was it handed that load's stale result?
    pub joined_read_stale: bool,
}

impl WindowOutcome {
    /// Both readers were served pre-commit data: the window is open.
    pub const OPEN: WindowOutcome = WindowOutcome {
        cached_read_stale: true,
        joined_read_stale: true,
    };
    /// Neither was: the window is closed.
    pub const CLOSED: WindowOutcome = WindowOutcome {
        cached_read_stale: false,
        joined_read_stale: false,
    };
}

/// The commit-to-bump window: reads that arrive after a write committed
/// but before the cache heard of it. With `fenced`, writes go through
/// [`RangeCache::begin_write`] before the commit and
/// [`RangeCache::end_write`] after; otherwise [`RangeCache::invalidate`]
/// after. Either way, the reads after the invalidation must be fresh.
pub async fn commit_window(backend: Arc<dyn Backend>, strategy: &str, fenced: bool) -> WindowOutcome {
    let h = Harness::new(backend, strategy);
    let (view, id) = h.october_standup();
    let change = Change::new(
        scope("cal:1"),
        [range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00")],
    )
    .unwrap();
    let begin = |c: Change| {
        let cache = h.cache.clone();
        async move {
            if fenced {
                cache.begin_write(&c).await.unwrap();
            }
        }
    };
    let end = |c: Change| {
        let cache = h.cache.clone();
        async move {
            if fenced {
                cache.end_write(&c).await.unwrap();
            } else {
                cache.invalidate(&c).await.unwrap();
            }
        }
    };

    // 1. A cached entry, then a write: a read between commit and bump.
    assert!(!h.read_is_stale(&view).await);
    begin(change.clone()).await;
    assert!(h.db.lock().unwrap().delete(id).is_some());
    let cached_read_stale = h.read_is_stale(&view).await;
    end(change.clone()).await;
    assert!(!h.read_is_stale(&view).await, "{}: read after the end", h.describe());

    // 2. A load that read the database before a write, still running when
    //    a reader arrives after the commit.
    end(change.clone()).await; // drop the cached entry: the next read loads
    let (slow, release_tx) = slow_reader(&h, &view).await;
    begin(change.clone()).await;
    h.db.lock().unwrap().create(
        scope("cal:1"),
        range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00"),
        "retro",
        "meeting",
    );
    let late = {
        let h = h.clone();
        let view = view.clone();
        tokio::spawn(async move { h.read(&view).await })
    };
    // Let the late reader plan and (without a fence) join the slow load.
    tokio::time::sleep(Duration::from_millis(50)).await;
    release_tx.send(()).unwrap();
    let late = late.await.unwrap();
    let joined_read_stale = late != h.truth(&view);
    let _ = slow.await.unwrap();
    end(change).await;
    assert!(!h.read_is_stale(&view).await, "{}: read after the end", h.describe());
    WindowOutcome {
        cached_read_stale,
        joined_read_stale,
    }
}

/// Single-flight: `n` concurrent reads of one cold view call the loader
/// once. Returns the loader call count.
pub async fn concurrent_misses_load_once(backend: Arc<dyn Backend>, strategy: &str, n: usize) -> u64 {
    let h = Harness::new(backend, strategy);
    let view = october_view("cal:1");
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let gate = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (cache, view, calls, gate) = (h.cache.clone(), view.clone(), calls.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(&view, || async move {
                        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // Hold the load open until every reader has arrived.
                        tokio::time::timeout(Duration::from_millis(200), gate.notified())
                            .await
                            .ok();
                        Ok::<_, Infallible>(Bytes::from_static(b"[]"))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.notify_waiters();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Bytes::from_static(b"[]"));
    }
    let m = h.cache.metrics();
    assert_eq!(m.hits + m.misses, n as u64, "every read is a hit or a miss");
    calls.load(std::sync::atomic::Ordering::SeqCst)
}

/// What [`wildcard_index_overflow`] observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOverflow {
    /// Views whose entry was readable after `store`.
    pub cached: usize,
    /// Of those, entries still readable after the scope's invalidation.
    pub stale: usize,
}

/// Issue 15's `wildcard` index overflow: `views` views over `scopes`, each
/// with a key of ~7 KB (a long filter parameter), are stored through
/// `wildcard`, then the **last** scope (the one whose index a multi-scope
/// view relies on even where prefix deletion exists) is invalidated over
/// every range. A correct strategy leaves `stale == 0`: an entry that did
/// not fit in the index must not have been cached.
pub async fn wildcard_index_overflow(backend: Arc<dyn Backend>, scopes: &[&str], views: usize) -> IndexOverflow {
    let options = CacheOptions::default().with_namespace(unique_namespace("wc_overflow"));
    let strategy = by_name("wildcard", &options).unwrap();
    let scopes: Vec<Scope> = scopes.iter().map(|s| Scope::new(*s).unwrap()).collect();
    let day = |i: usize| -> TimeRange {
        let start = DateTime::parse_from_rfc3339("2025-10-01T00:00:00Z").unwrap() + TimeDelta::days(i as i64);
        TimeRange::new(start, start + TimeDelta::days(1)).unwrap()
    };
    let filler = "f".repeat(7_000);
    let view = |i: usize| {
        View::new(scopes.iter().cloned(), day(i))
            .unwrap()
            .with_param("work_type", format!("{filler}{i}"))
    };
    let mut cached = Vec::new();
    for i in 0..views {
        let v = view(i);
        let plan = strategy.plan_read(&*backend, &v).await.unwrap();
        // A refused store is allowed (the view is then served uncached).
        let _ = strategy.store(&*backend, &v, &plan, Bytes::from(format!("v{i}"))).await;
        if backend.get(&plan.key).await.unwrap().is_some() {
            cached.push(plan.key.clone());
        }
    }
    let last = scopes.last().unwrap().clone();
    let change = Change::new(last, (0..views).map(day)).unwrap();
    strategy.invalidate(&*backend, &change).await.unwrap();
    let mut stale = 0;
    for key in &cached {
        if backend.get(key).await.unwrap().is_some() {
            stale += 1;
        }
    }
    IndexOverflow {
        cached: cached.len(),
        stale,
    }
}
