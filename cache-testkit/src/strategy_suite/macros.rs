//! [`strategy_tests!`](crate::strategy_tests): the suite as `#[test]`s for one backend.

/// Generates issue #5's strategy acceptance tests for one backend
/// configuration, in a module named after it (e.g.
/// `strategies_redis_cluster::stale_set_race_hits_wildcard_not_versioned`),
/// the way [`conformance_tests!`](crate::conformance_tests) does for the
/// backend contract. `$make` is an async expression yielding
/// `(guard, Arc<dyn Backend>)`; the guard (a server, `()` for none) lives as
/// long as the test. Memcached-like backends without prefix deletion run
/// `wildcard` on its key index.
#[macro_export]
macro_rules! strategy_tests {
    ($module:ident, $make:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            use $crate::strategy_suite as suite;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn seed_scenarios_pass_for_versioned_bucketed_wildcard() {
                let (_guard, backend) = $make.await;
                for strategy in ["versioned", "bucketed", "wildcard", "naive-versioned", "stamped"] {
                    suite::assert_seed_scenarios_pass(backend.clone(), strategy).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fixed_month_serves_the_deleted_item() {
                let (_guard, backend) = $make.await;
                let outcome = suite::seed_scenarios(backend, "fixed-month").await;
                assert!(
                    !outcome.delete,
                    "fixed-month must serve the deleted item: {outcome:?}"
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn lost_generation_versioned_fresh_naive_stale() {
                let (_guard, backend) = $make.await;
                assert!(!suite::generation_eviction_serves_stale(backend.clone(), "versioned").await);
                assert!(!suite::generation_eviction_serves_stale(backend.clone(), "bucketed").await);
                assert!(!suite::generation_eviction_serves_stale(backend.clone(), "stamped").await);
                assert!(!suite::entry_loss_serves_stale(backend.clone(), "stamped").await);
                assert!(suite::generation_eviction_serves_stale(backend, "naive-versioned").await);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stale_set_race_hits_wildcard_not_versioned() {
                let (_guard, backend) = $make.await;
                assert!(suite::stale_set_race_serves_stale(backend.clone(), "wildcard").await);
                assert!(!suite::stale_set_race_serves_stale(backend.clone(), "versioned").await);
                assert!(!suite::stale_set_race_serves_stale(backend.clone(), "stamped").await);
                assert!(!suite::stale_set_race_serves_stale(backend, "bucketed").await);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stamped_fence_closes_the_commit_to_bump_window() {
                let (_guard, backend) = $make.await;
                let (open, closed) = (suite::WindowOutcome::OPEN, suite::WindowOutcome::CLOSED);
                assert_eq!(
                    suite::commit_window(backend.clone(), "stamped", true).await,
                    closed
                );
                assert_eq!(
                    suite::commit_window(backend.clone(), "stamped", false).await,
                    open
                );
                // Only `stamped` fences: the others keep the window.
                assert_eq!(suite::commit_window(backend, "versioned", true).await, open);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bucketed_misses_less_than_versioned() {
                let (_guard, backend) = $make.await;
                let c = suite::bucketed_vs_versioned(backend).await;
                assert_eq!(c.stale_reads, 0, "{c:?}");
                assert!(c.bucketed_misses < c.versioned_misses, "{c:?}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn seeded_random_sequences_never_read_stale() {
                let (_guard, backend) = $make.await;
                for strategy in ["versioned", "bucketed", "wildcard", "stamped"] {
                    suite::assert_model_check_seeds(backend.clone(), strategy, 0..8, 60).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn freeze_during_a_write_is_reapplied_after_the_thaw() {
                let (_guard, backend) = $make.await;
                suite::assert_freeze_during_write_on_every_strategy(backend).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_misses_call_the_loader_once() {
                let (_guard, backend) = $make.await;
                assert_eq!(
                    suite::concurrent_misses_load_once(backend, "versioned", 16).await,
                    1
                );
            }
        }
    };
}
