//! Issue 26: the server's own eviction counter, read through
//! `Backend::server_stats`, so a report can say that the server forgot
//! what it was told.
#![allow(missing_docs)]

use backend_redis::RedisBackend;
use cache_core::{Backend, Bytes, Key};
use cache_testkit::redis::{command, RedisServer};

#[tokio::test]
async fn evictions_under_maxmemory_show_in_server_stats() {
    let server = RedisServer::new().unwrap();
    let backend = RedisBackend::connect(server.url()).await.unwrap();
    let before = backend.server_stats().await.unwrap().unwrap();
    assert_eq!(before.evicted_keys, 0, "a fresh server has evicted nothing");
    // Room for ~1 MB of data, then 3 MB of values.
    command(server.port(), &["CONFIG", "SET", "maxmemory", "2mb"]).unwrap();
    command(server.port(), &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]).unwrap();
    for i in 0..3000 {
        let k = Key::new(format!("stats:{i}")).unwrap();
        backend.set(&k, Bytes::from(vec![b'v'; 1024]), None).await.unwrap();
    }
    let after = backend.server_stats().await.unwrap().unwrap();
    assert!(after.evicted_keys > 0);
    // What the server says itself (it may have evicted a few more since).
    let info = command(server.port(), &["INFO", "stats"]).unwrap();
    let own: u64 = evicted_keys(&info);
    assert!((after.evicted_keys..after.evicted_keys + 50).contains(&own), "{info}");
}

fn evicted_keys(info: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_cluster_sums_its_masters() {
    let cluster = cache_testkit::redis::RedisCluster::new().unwrap();
    let backend = RedisBackend::connect(cluster.url()).await.unwrap();
    let stats = backend.server_stats().await.unwrap().unwrap();
    assert_eq!(stats.evicted_keys, 0);
    for port in cluster.ports() {
        command(port, &["CONFIG", "SET", "maxmemory", "2mb"]).unwrap();
        command(port, &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]).unwrap();
    }
    for i in 0..9000 {
        let k = Key::new(format!("stats:{i}")).unwrap();
        backend.set(&k, Bytes::from(vec![b'v'; 1024]), None).await.unwrap();
    }
    let per_node: u64 = cluster
        .ports()
        .iter()
        .map(|p| evicted_keys(&command(*p, &["INFO", "stats"]).unwrap()))
        .sum();
    assert!(per_node > 0);
    let summed = backend.server_stats().await.unwrap().unwrap().evicted_keys;
    assert!((per_node..per_node + 150).contains(&summed), "{summed} vs {per_node}");
}
