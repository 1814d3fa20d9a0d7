//! The shared conformance suite on real servers: a single `redis-server`,
//! the same through `Arc<dyn Backend>`, and a three-master Redis Cluster.
//! Each test starts its own server (or cluster); the guard, the first tuple
//! element, kills it when the test ends.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_redis::RedisBackend;
use cache_core::Backend;
use cache_testkit::redis::{RedisCluster, RedisServer};

/// `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…` for a test cluster.
pub fn cluster_url(cluster: &RedisCluster) -> String {
    cluster.url()
}

async fn single() -> (RedisServer, RedisBackend) {
    let server = RedisServer::new().unwrap();
    let backend = RedisBackend::connect(server.url()).await.unwrap();
    (server, backend)
}

async fn cluster() -> (RedisCluster, RedisBackend) {
    let cluster = RedisCluster::new().unwrap();
    let backend = RedisBackend::connect(cluster_url(&cluster)).await.unwrap();
    assert_eq!(backend.name(), "redis-cluster");
    (cluster, backend)
}

cache_testkit::conformance_tests!(conformance_redis_single, prefix_delete = true, async { single().await });

cache_testkit::conformance_tests!(conformance_redis_single_arc, prefix_delete = true, async {
    let (server, backend) = single().await;
    (server, Arc::new(backend) as Arc<dyn Backend>)
});

cache_testkit::conformance_tests!(conformance_redis_cluster, prefix_delete = true, async {
    cluster().await
});
