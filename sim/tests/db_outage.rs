//! Issue #29 in the simulator: the `db-outage` scenario (the database fails
//! for feed queries from 120 s to 420 s), fail-safe per strategy, slow
//! windows with soft and hard timeouts, and the same decisions through
//! `RangeCache` (one read path). Reports that use none of it do not
//! mention it.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cache_core::aside::{LoadError, RangeCache};
use cache_core::strategy::by_name;
use cache_core::{Bytes, CacheOptions, FailSafe, ManualClock};
use sim::backends::connect;
use sim::config::{DbFault, DbFaultKind};
use sim::db::{Db, WriteKind};
use sim::engine::Latencies;
use sim::report::{CellResult, DbFaultSummary, Report};
use sim::runner::{registry, run, RunConfig};
use sim::scenarios::{self, db_outage_reads, DB_OUTAGE, DB_OUTAGE_AT_US, DB_OUTAGE_FOR_US};
use sim::trace::{Event, Source};

const MAX_AGE: Duration = Duration::from_secs(600);

fn cfg(strategies: &[&str], fail_safe: Option<Duration>) -> RunConfig {
    let mut cfg = RunConfig::for_scenario(DB_OUTAGE);
    cfg.strategies = strategies.iter().map(|s| (*s).to_owned()).collect();
    cfg.aside = cfg.aside.clone().with_fail_safe(fail_safe);
    cfg.verdict = false;
    cfg
}

fn run_cfg(cfg: &RunConfig) -> Report {
    run(cfg, Arc::new(|| scenarios::source(DB_OUTAGE, 1)), registry(), None).unwrap()
}

fn cell<'a>(r: &'a Report, strategy: &str) -> &'a CellResult {
    r.results.iter().find(|c| c.strategy == strategy).unwrap()
}

fn db(c: &CellResult) -> DbFaultSummary {
    c.db_faults
        .unwrap_or_else(|| panic!("{}: no database-fault summary", c.strategy))
}

/// Reads of view `view` that start inside the outage (the script's own list).
fn in_outage(view: usize) -> u64 {
    let (start, end) = (DB_OUTAGE_AT_US / 1000, (DB_OUTAGE_AT_US + DB_OUTAGE_FOR_US) / 1000);
    db_outage_reads()
        .iter()
        .filter(|(t, _, v)| *v == view && (start..end).contains(t))
        .count() as u64
}

const ALL: [&str; 8] = [
    "fixed-month",
    "naive-versioned",
    "versioned",
    "wildcard",
    "range-expansion",
    "short-ttl",
    "bucketed",
    "stamped",
];

#[test]
fn with_fail_safe_stamped_fails_only_views_never_cached_and_is_stale_only_where_a_write_was_not_refilled() {
    let r = run_cfg(&cfg(&["stamped"], Some(MAX_AGE)));
    let c = cell(&r, "stamped");
    let d = db(c);
    // View 3 (index 3) was never read before the outage: its reads are the
    // only errors. Views 0-2 were cached before it: none.
    assert_eq!(in_outage(3), 30);
    assert_eq!(c.errors, in_outage(3), "{d:?}");
    assert_eq!(c.failed_reads, Some(in_outage(3)));
    // View 2's calendar changed at 60 s and nothing refilled it: every one
    // of its reads in the outage is answered from the old-stamped entry,
    // and each is stale; nothing else is.
    assert_eq!(d.fail_safe_old_stamps, in_outage(2));
    assert_eq!(
        (c.fail_safe_stale, d.fail_safe_stale),
        (Some(in_outage(2)), in_outage(2))
    );
    assert_eq!(c.stale_reads, 0, "fail-safe answers are counted apart");
    // Views 0 and 1 are hits until their entries expire (301 s, 331 s),
    // then current fail-safe answers until the database is back.
    let current = d.fail_safe_served - d.fail_safe_old_stamps;
    assert_eq!(current, 12 + 9, "{d:?}");
    assert_eq!(c.fail_safe_served, Some(d.fail_safe_served));
    // Every fail-safe answer followed a query of the failing database.
    assert_eq!(d.loads_failed, d.fail_safe_served + d.failed_reads);
    // Report files carry it: JSON fields, the Markdown section, the CSV columns.
    let json = r.to_json();
    for field in [
        "\"fail_safe_served\": 51",
        "\"fail_safe_stale\": 30",
        "\"errors\": 30",
        "\"db_faults\"",
    ] {
        assert!(json.contains(field), "{field} missing from report.json");
    }
    assert!(r.to_markdown().contains("| stamped | shared-locmem | 51 | 30 | 30 |"));
    assert!(r.to_markdown().contains("0 (+30 fail-safe)"), "never hidden");
    assert!(r
        .to_csv()
        .lines()
        .next()
        .unwrap()
        .ends_with(",fail_safe_served,fail_safe_stale,failed_reads"));
}

#[test]
fn without_fail_safe_the_errors_are_the_loads_that_reached_the_failing_database() {
    let r = run_cfg(&cfg(&ALL, None));
    for s in ALL {
        let c = cell(&r, s);
        let d = db(c);
        assert_eq!(d.fail_safe_served, 0, "{s}");
        assert!(d.loads_failed > 0, "{s}");
        assert_eq!(c.errors, d.loads_failed, "{s}: {d:?}");
        assert_eq!(c.failed_reads, Some(d.loads_failed), "{s}");
    }
    // stamped: views 0 and 1 after their expiry, and every read of 2 and 3.
    assert_eq!(cell(&r, "stamped").errors, 12 + 9 + in_outage(2) + in_outage(3));
}

#[test]
fn what_each_strategy_can_offer_shows_in_the_report() {
    let r = run_cfg(&cfg(&ALL, Some(MAX_AGE)));
    let errors = |s| cell(&r, s).errors;
    let d = |s| db(cell(&r, s));
    // stamped keeps view 2's entry under its stable key, with old stamps.
    assert_eq!(errors("stamped"), in_outage(3));
    assert_eq!(d("stamped").fail_safe_old_stamps, in_outage(2));
    // The bump moved versioned's and bucketed's view 2 to a new key (the
    // naive counter too); wildcard deleted it: errors, never stale.
    for s in ["versioned", "bucketed", "naive-versioned", "wildcard"] {
        assert_eq!(errors(s), in_outage(2) + in_outage(3), "{s}");
        assert_eq!((d(s).fail_safe_old_stamps, d(s).fail_safe_stale), (0, 0), "{s}");
        assert_eq!(
            d(s).fail_safe_served,
            12 + 9,
            "{s}: the expired entries of views 0 and 1"
        );
    }
    // short-ttl never invalidates: it answers stale entries as `current`,
    // and only the database's truth tells: fail-safe stale > 0 with no
    // old stamps. (Its 60 s TTL also turns hits into fail-safe answers.)
    let st = d("short-ttl");
    assert_eq!(st.fail_safe_old_stamps, 0);
    assert!(st.fail_safe_stale > 0, "{st:?}");
    assert_eq!(errors("short-ttl"), in_outage(3));
}

#[test]
fn reports_without_database_faults_do_not_mention_them() {
    let mut cfg = RunConfig::for_scenario("seed-october-2025");
    cfg.verdict = false;
    let r = run(
        &cfg,
        Arc::new(|| scenarios::source("seed-october-2025", 1)),
        registry(),
        None,
    )
    .unwrap();
    let json = r.to_json();
    for absent in ["fail_safe", "db_faults", "failed_reads"] {
        assert!(!json.contains(absent), "{absent} in a report without database faults");
    }
    assert!(!r.to_markdown().contains("Database faults"));
    assert!(!r.to_csv().contains("fail_safe"));
}

/// The `db-outage` trace with a slow window (200 s to 400 s, 2 s per
/// query) instead of the outage, and a 5 s TTL: every read in the window
/// finds its view's entry expired.
fn slow_cfg(strategy: &str, soft: Option<u64>, hard: Option<u64>, fail_safe: bool) -> RunConfig {
    let mut cfg = RunConfig::new(DB_OUTAGE);
    cfg.backends = vec![sim::backends::BackendSpec::parse("shared-locmem").unwrap()];
    cfg.strategies = vec![strategy.to_owned()];
    cfg.ttl = Duration::from_secs(5);
    cfg.verdict = false;
    cfg.faults.db = vec![DbFault {
        start_us: 200_000_000,
        end_us: 400_000_000,
        kind: DbFaultKind::Slow { latency_us: 2_000_000 },
    }];
    let ms = Duration::from_millis;
    cfg.aside = cfg
        .aside
        .clone()
        .with_fail_safe(fail_safe.then_some(MAX_AGE))
        .with_load_timeouts(soft.map(ms), hard.map(ms));
    cfg
}

#[test]
fn a_soft_timeout_keeps_p99_in_a_slow_window_below_itself_plus_one_round_trip() {
    let rtt = Latencies::default().plan_us as f64 / 1000.0;
    let slow = |strategy, soft| db(cell(&run_cfg(&slow_cfg(strategy, soft, Some(5_000), true)), strategy));
    let without = slow("stamped", None);
    assert!(without.latency_in_fault_p99_ms >= 2_000.0, "{without:?}");
    let with = slow("stamped", Some(50));
    assert_eq!(with.reads_in_fault, 80);
    // The slowest read: exactly the plan's round trip and the soft timeout
    // (p99 is HdrHistogram's, to 3 significant digits).
    assert!(with.latency_in_fault_max_ms <= 50.0 + rtt, "{with:?}");
    assert!(with.latency_in_fault_p99_ms <= (50.0 + rtt) * 1.001, "{with:?}");
    assert_eq!(
        with.soft_timeouts, with.reads_in_fault,
        "every read had an expired entry"
    );
    assert_eq!(
        with.background_refreshes, with.soft_timeouts,
        "and each load refreshed it"
    );
    assert_eq!((with.failed_reads, with.fail_safe_stale), (0, 0));
    // versioned reads the generation, then the entry: two round trips
    // before the load.
    let v = slow("versioned", Some(50));
    assert!(
        v.latency_in_fault_max_ms <= 50.0 + 2.0 * rtt && v.latency_in_fault_max_ms > 50.0 + rtt,
        "{v:?}"
    );
}

#[test]
fn past_the_hard_timeout_reads_fail_unless_fail_safe_answers() {
    let r = run_cfg(&slow_cfg("stamped", None, Some(1_000), false));
    let c = cell(&r, "stamped");
    let d = db(c);
    assert_eq!((d.load_timeouts, d.failed_reads, c.errors), (80, 80, 80), "{d:?}");
    assert!(d.latency_in_fault_max_ms <= 1_000.0 + 1.0);
    let r = run_cfg(&slow_cfg("stamped", None, Some(1_000), true));
    let d = db(cell(&r, "stamped"));
    assert_eq!(
        (d.load_timeouts, d.failed_reads, d.fail_safe_served),
        (80, 0, 80),
        "{d:?}"
    );
}

/// One read path: the `db-outage` trace through `RangeCache` (one per app
/// process on one shared store, a loader that fails inside the outage) and
/// through the simulator at zero latency count the same fail-safe answers,
/// errors, hits and loads, per strategy, with fail-safe on and off.
#[test]
fn range_cache_and_the_simulator_agree_on_fail_safe() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let source = scenarios::source(DB_OUTAGE, 1).unwrap();
    let header = source.header.clone();
    let events: Vec<Event> = source.events.map(Result::unwrap).collect();
    for fail_safe in [None, Some(MAX_AGE)] {
        for strategy in ALL {
            let mut c = cfg(&[strategy], fail_safe);
            let mut lat = Latencies::default();
            lat.plan_us = 0;
            lat.get_us = 0;
            lat.db_us = 0;
            lat.store_us = 0;
            lat.invalidate_us = 0;
            c.latencies = lat;
            let (h, e) = (header.clone(), events.clone());
            let r = run(
                &c,
                Arc::new(move || {
                    Ok(Source {
                        header: h.clone(),
                        events: Box::new(e.clone().into_iter().map(Ok)),
                    })
                }),
                registry(),
                None,
            )
            .unwrap();
            let cell = cell(&r, strategy);
            let d = db(cell);
            let simulated = (
                cell.hits,
                d.loads_failed,
                d.fail_safe_served,
                d.fail_safe_old_stamps,
                d.failed_reads,
            );
            assert!(d.loads_failed > 0 && cell.hits > 0, "{strategy}: {d:?}");
            assert_eq!(d.fail_safe_served > 0, fail_safe.is_some(), "{strategy}: {d:?}");
            let app = rt.block_on(through_range_cache(&c, &header, &events));
            assert_eq!(
                simulated, app,
                "{strategy}, fail-safe {fail_safe:?}: (hits, loads failed, fail-safe, old stamps, failed reads)"
            );
        }
    }
}

async fn through_range_cache(
    cfg: &RunConfig,
    header: &sim::trace::Header,
    events: &[Event],
) -> (u64, u64, u64, u64, u64) {
    let start_ms = u64::try_from(header.start.timestamp_millis()).unwrap();
    let clock = ManualClock::at_unix_millis(start_ms);
    let opts: CacheOptions = cfg.strategy_options(&clock);
    let strategy = by_name(&cfg.strategies[0], &opts).unwrap();
    let stores = connect(&cfg.backends[0], header.processes, &clock).await.unwrap();
    let caches: Vec<RangeCache> = (0..header.processes as usize)
        .map(|p| {
            let o = opts
                .clone()
                .with_clock(Arc::new(clock.clone()))
                .with_fail_safe(cfg.aside.fail_safe_max_age);
            RangeCache::builder(stores.backends[p % stores.backends.len()].clone())
                .options(o)
                .shared_strategy(strategy.clone())
                .build()
                .unwrap()
        })
        .collect();
    let mut db = Db::new();
    let base_us = header.start_us();
    let outage = (DB_OUTAGE_AT_US, DB_OUTAGE_AT_US + DB_OUTAGE_FOR_US);
    let mut old_stamps = 0;
    for e in events {
        let t = base_us + i64::try_from(e.t_us()).unwrap();
        clock.advance_to(UNIX_EPOCH + Duration::from_micros(t as u64));
        match e {
            Event::Read { process, view, .. } => {
                let cache = &caches[*process as usize];
                let q = db.intern(view);
                let down = (outage.0..outage.1).contains(&e.t_us());
                let db = &mut db;
                let answer = cache
                    .fetch(view, || async move {
                        if down {
                            return Err("db down");
                        }
                        let a = db.query(&q, t);
                        Ok(Bytes::from(vec![b' '; 36 + a.items as usize * 160]))
                    })
                    .await;
                match answer {
                    Ok(a) => old_stamps += u64::from(a.fail_safe == Some(FailSafe::Stale)),
                    Err(LoadError::Loader("db down")) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
            Event::Write { process, write, .. } => {
                let c = db.commit(write, t).unwrap();
                if write.kind != WriteKind::Load {
                    let cache = &caches[*process as usize];
                    let change = c.change().unwrap();
                    cache.begin_write(&change).await.unwrap();
                    cache.end_write(&change).await.unwrap();
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    let m = caches.iter().map(RangeCache::metrics).fold([0u64; 4], |a, m| {
        [
            a[0] + m.hits,
            a[1] + m.loader_errors,
            a[2] + m.fail_safe_served,
            a[3] + m.failed_reads,
        ]
    });
    assert_eq!(
        old_stamps,
        caches.iter().map(|c| c.metrics().fail_safe_stale).sum::<u64>()
    );
    (m[0], m[1], m[2], old_stamps, m[3])
}

#[test]
fn a_bad_database_fault_is_named() {
    let ok = DbFault::parse("slow:1.5:2:800").unwrap();
    assert_eq!(
        (ok.start_us, ok.end_us, ok.kind),
        (1_500_000, 3_500_000, DbFaultKind::Slow { latency_us: 800_000 })
    );
    assert_eq!(DbFault::parse("outage:120:300").unwrap().kind, DbFaultKind::Outage);
    for (bad, says) in [
        ("outage:10", "expected outage:START_S:DURATION_S"),
        ("down:1:2", "expected outage:START_S:DURATION_S"),
        ("outage:1:0", "duration > 0"),
        ("outage:-1:5", "start"),
        ("slow:1:2:0", "latency must be 1..=600000 ms"),
        ("slow:1:2:x", "latency"),
        ("outage:1e300:5", "start"),
    ] {
        let e = DbFault::parse(bad).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
