//! Issue 15: on Memcached, `wildcard` keeps every entry in its scope's key
//! index; an index that would outgrow its byte bound (or the server's item
//! size) means "do not cache", never "cache unindexed". 200 views with
//! ~7 KB keys in one scope, then the scope's invalidation: 0 stale.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_memcached::MemcachedBackend;
use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::strategy_suite::wildcard_index_overflow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_kilobyte_keys_in_one_scope_serve_no_stale_reads() {
    let server = MemcachedServer::spawn(&MemcachedConfig::default()).unwrap();
    let backend = Arc::new(MemcachedBackend::from_url(&server.url()).await.unwrap());
    let seen = wildcard_index_overflow(backend, &["cal:1"], 200).await;
    assert_eq!(seen.stale, 0, "{seen:?}");
    assert!(seen.cached > 10, "{seen:?}");
}
