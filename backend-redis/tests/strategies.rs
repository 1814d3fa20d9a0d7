//! Issue #5's strategy acceptance on real Redis: a single server and a
//! three-master Cluster (where `wildcard`'s prefix deletion runs on every
//! master and multi-scope views span slots). Each test starts its own servers.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_redis::RedisBackend;
use cache_core::strategy_suite as suite;
use cache_core::testkit::redis::{RedisCluster, RedisServer};
use cache_core::Backend;

mod strategies_redis_single {
    use super::*;

    async fn make() -> (RedisServer, Arc<dyn Backend>) {
        let server = RedisServer::new().unwrap();
        let backend = RedisBackend::connect(server.url()).await.unwrap();
        (server, Arc::new(backend))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seed_scenarios_pass_for_versioned_bucketed_wildcard() {
        let (_guard, backend) = make().await;
        for strategy in ["versioned", "bucketed", "wildcard", "naive-versioned"] {
            suite::assert_seed_scenarios_pass(backend.clone(), strategy).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fixed_month_serves_the_deleted_item() {
        let (_guard, backend) = make().await;
        let outcome = suite::seed_scenarios(backend, "fixed-month").await;
        assert!(!outcome.delete, "fixed-month must serve the deleted item: {outcome:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lost_generation_versioned_fresh_naive_stale() {
        let (_guard, backend) = make().await;
        assert!(!suite::generation_eviction_serves_stale(backend.clone(), "versioned").await);
        assert!(!suite::generation_eviction_serves_stale(backend.clone(), "bucketed").await);
        assert!(suite::generation_eviction_serves_stale(backend, "naive-versioned").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stale_set_race_hits_wildcard_not_versioned() {
        let (_guard, backend) = make().await;
        assert!(suite::stale_set_race_serves_stale(backend.clone(), "wildcard").await);
        assert!(!suite::stale_set_race_serves_stale(backend.clone(), "versioned").await);
        assert!(!suite::stale_set_race_serves_stale(backend, "bucketed").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bucketed_misses_less_than_versioned() {
        let (_guard, backend) = make().await;
        let c = suite::bucketed_vs_versioned(backend).await;
        assert_eq!(c.stale_reads, 0, "{c:?}");
        assert!(c.bucketed_misses < c.versioned_misses, "{c:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeded_random_sequences_never_read_stale() {
        let (_guard, backend) = make().await;
        for strategy in ["versioned", "bucketed", "wildcard"] {
            suite::assert_model_check_seeds(backend.clone(), strategy, 0..8, 60).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_call_the_loader_once() {
        let (_guard, backend) = make().await;
        assert_eq!(suite::concurrent_misses_load_once(backend, "versioned", 16).await, 1);
    }
}

mod strategies_redis_cluster {
    use super::*;

    async fn make() -> (RedisCluster, Arc<dyn Backend>) {
        let cluster = RedisCluster::new().unwrap();
        let seeds: Vec<String> = cluster.ports().iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let backend = RedisBackend::connect(format!("redis+cluster://{}", seeds.join(",")))
            .await
            .unwrap();
        (cluster, Arc::new(backend))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seed_scenarios_pass_for_versioned_bucketed_wildcard() {
        let (_guard, backend) = make().await;
        for strategy in ["versioned", "bucketed", "wildcard", "naive-versioned"] {
            suite::assert_seed_scenarios_pass(backend.clone(), strategy).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fixed_month_serves_the_deleted_item() {
        let (_guard, backend) = make().await;
        let outcome = suite::seed_scenarios(backend, "fixed-month").await;
        assert!(!outcome.delete, "fixed-month must serve the deleted item: {outcome:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lost_generation_versioned_fresh_naive_stale() {
        let (_guard, backend) = make().await;
        assert!(!suite::generation_eviction_serves_stale(backend.clone(), "versioned").await);
        assert!(!suite::generation_eviction_serves_stale(backend.clone(), "bucketed").await);
        assert!(suite::generation_eviction_serves_stale(backend, "naive-versioned").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stale_set_race_hits_wildcard_not_versioned() {
        let (_guard, backend) = make().await;
        assert!(suite::stale_set_race_serves_stale(backend.clone(), "wildcard").await);
        assert!(!suite::stale_set_race_serves_stale(backend.clone(), "versioned").await);
        assert!(!suite::stale_set_race_serves_stale(backend, "bucketed").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bucketed_misses_less_than_versioned() {
        let (_guard, backend) = make().await;
        let c = suite::bucketed_vs_versioned(backend).await;
        assert_eq!(c.stale_reads, 0, "{c:?}");
        assert!(c.bucketed_misses < c.versioned_misses, "{c:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeded_random_sequences_never_read_stale() {
        let (_guard, backend) = make().await;
        for strategy in ["versioned", "bucketed", "wildcard"] {
            suite::assert_model_check_seeds(backend.clone(), strategy, 0..8, 60).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_call_the_loader_once() {
        let (_guard, backend) = make().await;
        assert_eq!(suite::concurrent_misses_load_once(backend, "versioned", 16).await, 1);
    }
}
