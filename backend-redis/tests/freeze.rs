//! Issue #25 on real Redis: the server is frozen with `SIGSTOP` while a
//! write commits, so its bump times out; after `SIGCONT` the writer's
//! retry applies it and another process (a second connection) stops
//! being served stale data within 250 ms, for every strategy that
//! invalidates, on a single server and on a three-master cluster (every
//! master frozen at once).
//!
//! Which path recovers depends on what the frozen server does with the
//! commands that timed out on the client: they sit in its socket buffer
//! and run at `SIGCONT`. The backend's `incr` is a Lua script called by
//! its SHA; with the script cache flushed those stragglers fail
//! (`NOSCRIPT`) and only the writer's retry applies the bump (the path
//! the bound is about); with the script cached they apply the bump (and,
//! for `stamped`, more ends than begins: the retry must heal the fence,
//! which `hits_again` checks). Both paths run here.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use backend_redis::RedisBackend;
use cache_core::Backend;
use cache_testkit::redis::{command, RedisCluster, RedisServer};
use cache_testkit::strategy_suite::{self as suite, FreezeWith};

/// A short command timeout, so that a frozen server costs each call
/// 200 ms and a test a few seconds (the default is 1 s).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the server stays frozen: several timeouts and retry rounds.
const HOLD: Duration = Duration::from_millis(1200);

async fn connect(url: &str) -> Arc<dyn Backend> {
    Arc::new(
        RedisBackend::builder(url)
            .command_timeout(COMMAND_TIMEOUT)
            .build()
            .await
            .unwrap(),
    )
}

/// Each strategy with the script cache flushed (the retry recovers), and
/// `stamped` once more with it warm (the stragglers land first).
const CASES: [(&str, bool); 5] = [
    ("stamped", true),
    ("versioned", true),
    ("bucketed", true),
    ("wildcard", true),
    ("stamped", false),
];

fn flush_scripts(ports: &[u16]) {
    for port in ports {
        command(*port, &["SCRIPT", "FLUSH"]).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_during_a_write_single_server() {
    let server = RedisServer::new().unwrap();
    let stop = FreezeWith(|| server.pause().unwrap(), || server.resume().unwrap());
    for (strategy, flush) in CASES {
        let (writer, reader) = (connect(&server.url()).await, connect(&server.url()).await);
        if flush {
            flush_scripts(&[server.port()]);
        }
        let o = suite::assert_freeze_during_write_recovers(writer, reader, strategy, &stop, HOLD).await;
        // Counter bumps are scripts: flushed, their stragglers fail, so
        // the reader is stale until the retry (`wildcard`'s prefix
        // deletion is not a script: its stragglers may land first).
        if flush && strategy != "wildcard" {
            assert!(
                o.stale_after_thaw > 0,
                "{strategy}: only the retry can have ended these: {o:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_during_a_write_cluster() {
    let cluster = RedisCluster::new().unwrap();
    let stop = FreezeWith(|| cluster.pause().unwrap(), || cluster.resume().unwrap());
    for (strategy, flush) in CASES {
        let (writer, reader) = (connect(&cluster.url()).await, connect(&cluster.url()).await);
        if flush {
            flush_scripts(&cluster.ports());
        }
        suite::assert_freeze_during_write_recovers(writer, reader, strategy, &stop, HOLD).await;
    }
}
