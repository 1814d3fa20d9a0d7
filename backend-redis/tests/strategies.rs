//! Issue #5's strategy acceptance on real Redis: a single server and a
//! three-master Cluster (where `wildcard`'s prefix deletion runs on every
//! master and multi-scope views span slots). Each test starts its own servers.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_redis::RedisBackend;
use cache_core::Backend;
use cache_testkit::redis::{RedisCluster, RedisServer};

async fn single() -> (RedisServer, Arc<dyn Backend>) {
    let server = RedisServer::new().unwrap();
    let backend = RedisBackend::connect(server.url()).await.unwrap();
    (server, Arc::new(backend))
}

async fn cluster() -> (RedisCluster, Arc<dyn Backend>) {
    let cluster = RedisCluster::new().unwrap();
    let seeds: Vec<String> = cluster.ports().iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let backend = RedisBackend::connect(format!("redis+cluster://{}", seeds.join(",")))
        .await
        .unwrap();
    (cluster, Arc::new(backend))
}

cache_testkit::strategy_tests!(strategies_redis_single, single());
cache_testkit::strategy_tests!(strategies_redis_cluster, cluster());
