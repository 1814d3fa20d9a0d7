//! The harness's message when `memcached` is not installed. Alone in its own
//! test binary because it changes `PATH` and `MEMCACHED_BIN` for the whole
//! process: under `cargo test` (threads) other tests would lose their server;
//! under nextest every test is its own process anyway.
#![allow(missing_docs)]

use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::HarnessError;

/// Sets `MEMCACHED_BIN` for this process only: nextest runs every test in
/// its own process, so no other test sees the bogus path.
#[test]
fn missing_binary_names_the_debian_package() {
    std::env::set_var("MEMCACHED_BIN", "/nonexistent/memcached");
    std::env::set_var("PATH", "/nonexistent");
    let err = MemcachedServer::spawn(&MemcachedConfig::default()).unwrap_err();
    assert!(matches!(err, HarnessError::MissingBinary { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("apt-get install -y memcached"), "{msg}");
    assert!(msg.contains("MEMCACHED_BIN"), "{msg}");
}
