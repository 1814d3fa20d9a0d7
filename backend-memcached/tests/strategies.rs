//! Issue #5's strategy acceptance on a real memcached (no prefix deletion:
//! `wildcard` runs on its key index here). Each test starts its own server.
#![allow(missing_docs)]

use std::sync::Arc;

use backend_memcached::{MemcachedBackend, MemcachedOptions};
use cache_core::Backend;
use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};

async fn single() -> (MemcachedServer, Arc<dyn Backend>) {
    let server = MemcachedServer::spawn(&MemcachedConfig::default()).unwrap();
    let backend = MemcachedBackend::connect(MemcachedOptions::new([server.addr().to_string()]))
        .await
        .unwrap();
    (server, Arc::new(backend))
}

cache_testkit::strategy_tests!(strategies_memcached_single, single());
