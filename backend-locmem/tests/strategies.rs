//! Issue #5's acceptance on the in-process backend: the strategy scenarios
//! of `cache_testkit::strategy_suite`, plus a proptest against the model
//! database. `wildcard` also runs behind `WithoutPrefixDelete`, which makes
//! it use its key index as it must on Memcached.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_locmem::LocmemBackend;
use cache_core::strategy::BucketSize;
use cache_core::Backend;
use cache_core::CacheOptions;
use cache_testkit::strategy_suite::{self as suite, ModelOp, SeedOutcome, WithoutPrefixDelete};
use proptest::prelude::*;

fn locmem() -> Arc<dyn Backend> {
    Arc::new(LocmemBackend::new())
}

fn locmem_without_prefix_delete() -> Arc<dyn Backend> {
    Arc::new(WithoutPrefixDelete(LocmemBackend::new()))
}

#[tokio::test]
async fn seed_scenarios_pass_for_versioned_bucketed_wildcard() {
    for strategy in ["versioned", "bucketed", "wildcard"] {
        suite::assert_seed_scenarios_pass(locmem(), strategy).await;
    }
    suite::assert_seed_scenarios_pass(locmem_without_prefix_delete(), "wildcard").await;
}

#[tokio::test]
async fn naive_versioned_passes_the_seed_scenarios_as_the_seed_reported() {
    suite::assert_seed_scenarios_pass(locmem(), "naive-versioned").await;
}

#[tokio::test]
async fn fixed_month_fails_the_delete_scenario_the_seed_bug() {
    let outcome = suite::seed_scenarios(locmem(), "fixed-month").await;
    assert!(!outcome.delete, "fixed-month must serve the deleted item: {outcome:?}");
    // Its deletes never match a FullCalendar key, so nothing else works either.
    assert_eq!(
        outcome,
        SeedOutcome {
            create: false,
            edit: false,
            delete: false
        }
    );
}

#[tokio::test]
async fn lost_generation_key_versioned_stays_fresh_naive_resurrects_the_deleted_item() {
    assert!(!suite::generation_eviction_serves_stale(locmem(), "versioned").await);
    assert!(!suite::generation_eviction_serves_stale(locmem(), "bucketed").await);
    assert!(
        suite::generation_eviction_serves_stale(locmem(), "naive-versioned").await,
        "naive-versioned restarts at 0 and must serve the deleted item"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_set_race_hits_wildcard_not_versioned() {
    assert!(
        suite::stale_set_race_serves_stale(locmem(), "wildcard").await,
        "wildcard (prefix delete) must keep the stale set"
    );
    assert!(
        suite::stale_set_race_serves_stale(locmem_without_prefix_delete(), "wildcard").await,
        "wildcard (key index) must keep the stale set"
    );
    assert!(!suite::stale_set_race_serves_stale(locmem(), "versioned").await);
    assert!(!suite::stale_set_race_serves_stale(locmem(), "bucketed").await);
}

#[tokio::test]
async fn bucketed_misses_less_than_versioned_when_writes_touch_one_month() {
    let c = suite::bucketed_vs_versioned(locmem()).await;
    assert_eq!(c.stale_reads, 0, "{c:?}");
    assert_eq!(c.reads, 120);
    // versioned: every write drops all 12 views → 12 misses per round.
    assert_eq!(c.versioned_misses, 120, "{c:?}");
    // bucketed: after the first round only the 3 views showing October miss.
    assert_eq!(c.bucketed_misses, 12 + 9 * 3, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_call_the_loader_once() {
    for strategy in ["versioned", "bucketed", "wildcard"] {
        assert_eq!(
            suite::concurrent_misses_load_once(locmem(), strategy, 16).await,
            1,
            "{strategy}"
        );
    }
}

#[tokio::test]
async fn seeded_random_sequences_never_read_stale() {
    for strategy in ["versioned", "bucketed", "wildcard"] {
        suite::assert_model_check_seeds(locmem(), strategy, 0..32, 60).await;
    }
    suite::assert_model_check_seeds(locmem_without_prefix_delete(), "wildcard", 0..32, 60).await;
}

#[tokio::test]
async fn the_model_check_catches_a_strategy_that_does_not_invalidate() {
    // Guard against a vacuous model check: short-ttl never invalidates, so
    // some sequence must expose a stale read.
    let mut caught = false;
    for seed in 0..16 {
        caught |= suite::model_check(locmem(), "short-ttl", &suite::random_ops(seed, 60))
            .await
            .is_err();
    }
    assert!(caught);
}

fn op() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        4 => (0usize..64).prop_map(|view| ModelOp::Read { view }),
        2 => (0usize..2, 0u32..24 * 120, 1u32..72, 0usize..2).prop_map(|(scope, start_hour, hours, kind)| {
            ModelOp::Create { scope, start_hour, hours, kind }
        }),
        1 => (0usize..64, 0u32..24 * 120, 1u32..72).prop_map(|(item, start_hour, hours)| ModelOp::Edit {
            item,
            start_hour,
            hours
        }),
        1 => (0usize..64).prop_map(|item| ModelOp::Delete { item }),
        1 => (0u32..120).prop_map(|secs| ModelOp::Advance { secs }),
    ]
}

fn run(backend: Arc<dyn Backend>, strategy: &str, ops: &[ModelOp]) -> Result<usize, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(suite::model_check(backend, strategy, ops))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_stale_read_in_sequential_histories(ops in proptest::collection::vec(op(), 1..60)) {
        for strategy in ["versioned", "bucketed", "wildcard"] {
            let reads = run(locmem(), strategy, &ops).map_err(TestCaseError::fail)?;
            prop_assert!(reads > 0);
        }
        run(locmem_without_prefix_delete(), "wildcard", &ops).map_err(TestCaseError::fail)?;
        let weeks = CacheOptions::default().with_bucket(BucketSize::Week);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(suite::model_check_with(locmem(), "bucketed", weeks, &ops))
            .map_err(TestCaseError::fail)?;
    }
}

#[tokio::test]
async fn range_expansion_clears_the_utc_grid_but_misses_the_plus_eight_variant() {
    let h = suite::Harness::new(locmem(), "range-expansion");
    let id =
        h.db.lock()
            .unwrap()
            .create(
                suite::scope("cal:1"),
                suite::range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00"),
                "standup",
                "meeting",
            )
            .0;
    let views = suite::seed_views("cal:1");
    let (plus_eight, utc) = (&views[0], &views[1]);
    for view in [plus_eight, utc] {
        assert!(!h.read_is_stale(view).await);
    }
    h.commit(|db| db.delete(id)).await;
    assert!(!h.read_is_stale(utc).await, "the canonical UTC grid was guessed");
    assert!(
        h.read_is_stale(plus_eight).await,
        "the +08:00 grid was not (timezone-variants)"
    );
}

#[tokio::test]
async fn short_ttl_is_stale_until_its_ttl_passes() {
    let h = suite::Harness::new(locmem(), "short-ttl");
    let view = suite::october_view("cal:1");
    assert!(!h.read_is_stale(&view).await);
    h.commit(|db| {
        Some(
            db.create(
                suite::scope("cal:1"),
                suite::range("2025-10-15T10:00:00Z", "2025-10-15T11:00:00Z"),
                "new",
                "task",
            )
            .1,
        )
    })
    .await;
    h.clock.advance(std::time::Duration::from_secs(59));
    assert!(h.read_is_stale(&view).await);
    h.clock.advance(std::time::Duration::from_secs(1));
    assert!(!h.read_is_stale(&view).await);
}

#[tokio::test]
async fn every_key_carries_the_scope_as_one_hash_tag() {
    let backend = locmem();
    let view = suite::october_view("cal:7").with_param("status", "open {*}");
    for name in cache_core::strategy::NAMES {
        let strategy = cache_core::strategy::by_name(name, &Default::default()).unwrap();
        let plan = strategy.plan_read(backend.as_ref(), &view).await.unwrap();
        let key = plan.key.as_str();
        assert!(key.starts_with("feed:"), "{name}: {key}");
        assert_eq!(
            key.matches('{').count(),
            1,
            "{name}: user input must not add braces: {key}"
        );
        assert!(key.contains("{cal%3A7}"), "{name}: {key}");
        assert!(
            key.contains("2025-09-29T00%3A00%3A00+08%3A00"),
            "{name}: the client's offset is kept: {key}"
        );
        for control in strategy.control_keys(&view) {
            assert!(control.as_str().contains("{cal%3A7}"), "{name}: {control}");
        }
    }
}

/// `stamped` at both granularities on one workload: per (scope, month) it
/// keeps the views that do not show the edited month cached, as
/// `bucketed` does; per scope it misses as often as `versioned`. Neither
/// serves a stale read.
#[tokio::test]
async fn stamped_buckets_miss_less_than_stamped_scopes() {
    use cache_core::strategy::{BucketSize, StampGranularity};
    use cache_core::CacheOptions;
    use cache_testkit::strategy_suite::year_of_edits;
    let backend: std::sync::Arc<dyn cache_core::Backend> = std::sync::Arc::new(backend_locmem::LocmemBackend::new());
    let base = CacheOptions::default().with_bucket(BucketSize::Month);
    let scopes = year_of_edits(backend.clone(), "stamped", base.clone()).await;
    let buckets = year_of_edits(
        backend.clone(),
        "stamped",
        base.clone().with_stamp_granularity(StampGranularity::Bucket),
    )
    .await;
    let versioned = year_of_edits(backend, "versioned", base).await;
    assert_eq!((scopes.stale_reads, buckets.stale_reads), (0, 0));
    assert_eq!(scopes.misses, versioned.misses, "{scopes:?} vs {versioned:?}");
    assert!(buckets.misses < scopes.misses, "{buckets:?} vs {scopes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamped_fence_closes_the_commit_to_bump_window() {
    let (open, closed) = (suite::WindowOutcome::OPEN, suite::WindowOutcome::CLOSED);
    assert_eq!(suite::commit_window(locmem(), "stamped", true).await, closed);
    assert_eq!(suite::commit_window(locmem(), "stamped", false).await, open);
    // Only `stamped` fences: the others keep the window.
    for strategy in ["versioned", "bucketed"] {
        assert_eq!(suite::commit_window(locmem(), strategy, true).await, open, "{strategy}");
    }
}
