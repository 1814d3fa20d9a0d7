//! Issue #25 on real memcached: the server is frozen with `SIGSTOP` while
//! a write commits, so its bump times out; after `SIGCONT` the writer's
//! retry applies it and another process (a second backend object) stops
//! being served stale data within 250 ms, for every strategy that
//! invalidates (`wildcard` on its key index), on one server and on a pool
//! of two (both frozen). The generic case (a `FreezeSwitch` in front of
//! the pool) runs here too, as the strategy suite runs it on one server.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use backend_memcached::{MemcachedBackend, MemcachedOptions};
use cache_core::Backend;
use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::strategy_suite::{self as suite, FreezeWith};

/// A short command timeout, so that a frozen server costs each call
/// 200 ms and a test a few seconds (the default is 1 s).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the servers stay frozen: several timeouts and retry rounds.
const HOLD: Duration = Duration::from_millis(1200);

async fn connect(servers: &[MemcachedServer]) -> Arc<dyn Backend> {
    let options =
        MemcachedOptions::new(servers.iter().map(|s| s.addr().to_string())).with_command_timeout(COMMAND_TIMEOUT);
    Arc::new(MemcachedBackend::connect(options).await.unwrap())
}

async fn sigstop_during_a_write(servers: &[MemcachedServer]) {
    let stop = FreezeWith(
        || servers.iter().for_each(|s| s.pause().unwrap()),
        || servers.iter().for_each(|s| s.resume().unwrap()),
    );
    for strategy in ["stamped", "versioned", "bucketed", "wildcard"] {
        let (writer, reader) = (connect(servers).await, connect(servers).await);
        suite::assert_freeze_during_write_recovers(writer, reader, strategy, &stop, HOLD).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_during_a_write_single_server() {
    let server = MemcachedServer::spawn(&MemcachedConfig::default()).unwrap();
    sigstop_during_a_write(std::slice::from_ref(&server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_during_a_write_pool() {
    let servers = MemcachedServer::pool(2, &MemcachedConfig::default()).unwrap();
    sigstop_during_a_write(&servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_switch_during_a_write_pool() {
    let servers = MemcachedServer::pool(2, &MemcachedConfig::default()).unwrap();
    suite::assert_freeze_during_write_on_every_strategy(connect(&servers).await).await;
}
