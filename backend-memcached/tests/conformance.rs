//! The shared conformance suite on real `memcached` processes, in three
//! configurations: one server, a pool of two servers, and one server behind
//! `Arc<dyn Backend>`. Each test starts its own server(s) on free ports; the
//! guard (first tuple element) kills them when the test ends.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_memcached::{MemcachedBackend, MemcachedOptions};
use cache_core::Backend;
use cache_testkit::memcached::{pool_url, MemcachedConfig, MemcachedServer};

async fn single() -> (MemcachedServer, MemcachedBackend) {
    let server = MemcachedServer::spawn(&MemcachedConfig::default()).expect("start memcached");
    let backend = MemcachedBackend::from_url(&server.url()).await.expect("connect");
    (server, backend)
}

async fn pool2() -> (Vec<MemcachedServer>, MemcachedBackend) {
    let servers = MemcachedServer::pool(2, &MemcachedConfig::default()).expect("start memcached pool");
    let options = MemcachedOptions::from_url(&pool_url(&servers)).expect("pool url");
    assert_eq!(options.servers.len(), 2);
    let backend = MemcachedBackend::connect(options).await.expect("connect");
    (servers, backend)
}

cache_testkit::conformance_tests!(conformance_memcached_single, prefix_delete = false, async {
    single().await
});

cache_testkit::conformance_tests!(conformance_memcached_pool2, prefix_delete = false, async {
    pool2().await
});

cache_testkit::conformance_tests!(conformance_memcached_arc, prefix_delete = false, async {
    let (guard, backend) = single().await;
    (guard, Arc::new(backend) as Arc<dyn Backend>)
});
