//! Issue 15: `wildcard`'s key index outgrowing its byte bound never leaves
//! an entry cached but unindexed. 200 views with ~7 KB keys over two
//! scopes (locmem deletes the first scope by prefix; the second relies on
//! its index), then an invalidation of the second scope: 0 stale.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_locmem::LocmemBackend;
use cache_core::strategy::wildcard::INDEX_MAX_BYTES;
use cache_testkit::strategy_suite::{wildcard_index_overflow, WithoutPrefixDelete};

#[tokio::test]
async fn seven_kilobyte_keys_over_two_scopes_serve_no_stale_reads() {
    let seen = wildcard_index_overflow(Arc::new(LocmemBackend::new()), &["cal:1", "team:2"], 200).await;
    assert_eq!(seen.stale, 0, "{seen:?}");
    // The test means something: some entries were cached, and not all 200
    // (they would not fit in INDEX_MAX_BYTES).
    assert!(seen.cached > 10, "{seen:?}");
    assert!(seen.cached * 7_000 <= INDEX_MAX_BYTES, "{seen:?}");
}

#[tokio::test]
async fn seven_kilobyte_keys_in_one_scope_on_the_index_alone_serve_no_stale_reads() {
    let backend = Arc::new(WithoutPrefixDelete(LocmemBackend::new()));
    let seen = wildcard_index_overflow(backend, &["cal:1"], 200).await;
    assert_eq!(seen.stale, 0, "{seen:?}");
    assert!(seen.cached > 10, "{seen:?}");
}
