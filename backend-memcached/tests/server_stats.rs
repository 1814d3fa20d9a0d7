//! Issue 26: memcached's `stats` eviction counter through
//! `Backend::server_stats`, summed over a pool.
#![allow(missing_docs)]

use backend_memcached::MemcachedBackend;
use cache_core::{Backend, Bytes, Key};
use cache_testkit::memcached::{pool_url, MemcachedConfig, MemcachedServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evictions_of_a_full_pool_show_in_server_stats() {
    let servers = MemcachedServer::pool(2, &MemcachedConfig::default().memory_mb(2)).unwrap();
    let backend = MemcachedBackend::from_url(&pool_url(&servers)).await.unwrap();
    assert_eq!(backend.server_stats().await.unwrap().unwrap().evicted_keys, 0);
    // 12 MB of values into 4 MB of memory.
    for i in 0..1200 {
        let k = Key::new(format!("stats:{i}")).unwrap();
        backend.set(&k, Bytes::from(vec![b'v'; 10_000]), None).await.unwrap();
    }
    let evicted = backend.server_stats().await.unwrap().unwrap().evicted_keys;
    assert!(evicted > 0);
    assert!(evicted < 1200, "{evicted}");
}
