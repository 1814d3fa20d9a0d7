//! Fault tests on real servers: a server killed under a running backend, a
//! cluster master killed during a read/write loop, unreachable URLs and a
//! missing server binary.
#![allow(missing_docs, clippy::print_stderr)]

use std::time::{Duration, Instant};

use backend_redis::RedisBackend;
use cache_core::{Backend, Bytes, Error, Key};
use cache_testkit::redis::{RedisCluster, RedisServer};
use cache_testkit::HarnessError;

const TIMEOUT: Duration = Duration::from_millis(500);
/// Scheduling slack on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(700);

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// Runs every operation once against a dead server: each must fail with
/// `Unavailable` or `Timeout`, naming the backend, within the timeout.
async fn every_call_fails_fast(backend: &RedisBackend) {
    let k = key("fault:k");
    let keys = [key("fault:a"), key("fault:b")];
    let entries = [(key("fault:a"), Bytes::from_static(b"1"))];
    let v = || Bytes::from_static(b"v");
    macro_rules! check {
        ($name:literal, $call:expr) => {{
            let start = Instant::now();
            let result = $call.await;
            let elapsed = start.elapsed();
            match result {
                Err(e) => {
                    assert!(e.is_transient(), "{}: expected Unavailable/Timeout, got {e:?}", $name);
                    assert!(e.to_string().starts_with(backend.name()), "{}: {e}", $name);
                }
                Ok(_) => panic!("{}: succeeded against a dead server", $name),
            }
            assert!(elapsed < TIMEOUT + MARGIN, "{} took {elapsed:?}", $name);
        }};
    }
    check!("get", backend.get(&k));
    check!("get_many", backend.get_many(&keys));
    check!("set", backend.set(&k, v(), None));
    check!("set_many", backend.set_many(&entries, Some(Duration::from_secs(5))));
    check!("add", backend.add(&k, v(), None));
    check!("incr", backend.incr(&k, 1));
    check!("delete", backend.delete(&k));
    check!("delete_many", backend.delete_many(&keys));
    check!("delete_prefix", backend.delete_prefix("fault:"));
}

/// Retries `set` + `get` until they work (the connection is re-established
/// in the background) or `within` passes.
async fn works_again(backend: &RedisBackend, within: Duration) -> Duration {
    let start = Instant::now();
    let k = key("fault:again");
    loop {
        let value = Bytes::from(format!("v{}", start.elapsed().as_nanos()));
        if backend.set(&k, value.clone(), None).await.is_ok() {
            if let Ok(got) = backend.get(&k).await {
                assert_eq!(got, Some(value));
                return start.elapsed();
            }
        }
        assert!(start.elapsed() < within, "backend did not recover within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_server_killed_then_restarted() {
    let mut server = RedisServer::new().unwrap();
    let backend = RedisBackend::builder(server.url())
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    backend
        .set(&key("fault:k"), Bytes::from_static(b"before"), None)
        .await
        .unwrap();

    server.stop();
    // Twice: the first round finds the broken connection, the second runs
    // while the manager is reconnecting to a closed port.
    every_call_fails_fast(&backend).await;
    every_call_fails_fast(&backend).await;

    server.start().unwrap();
    works_again(&backend, Duration::from_secs(10)).await;
    // The restarted server is empty (persistence off): a miss, not an error.
    assert_eq!(backend.get(&key("fault:k")).await.unwrap(), None);
    assert!(backend
        .add(&key("fault:c"), Bytes::from_static(b"1"), None)
        .await
        .unwrap());
    assert_eq!(backend.incr(&key("fault:c"), 1).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_server_down_for_a_while_then_back() {
    // Longer than the connection manager's retry budget: the reconnect
    // attempt gives up, and a later call must start a new one.
    let mut server = RedisServer::new().unwrap();
    let backend = RedisBackend::builder(server.url())
        .connect_timeout(TIMEOUT)
        .command_timeout(TIMEOUT)
        .build()
        .await
        .unwrap();
    server.stop();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        every_call_fails_fast(&backend).await;
    }
    server.start().unwrap();
    works_again(&backend, Duration::from_secs(10)).await;
}

/// A cluster master without replicas is killed while tasks run `set` then
/// `get` with unique values. Every answer is an error or the value just
/// written (or a miss, once the master's data is gone), never another value.
///
/// What Redis Cluster does here: the killed master's slots have no owner;
/// once the other masters mark it failed (after `cluster-node-timeout`, 3 s
/// in the harness) they answer `CLUSTERDOWN` for *every* slot, because
/// `cluster-require-full-coverage` is on by default. Restarted on the same
/// port with its `nodes.conf`, the master rejoins with the same node id and
/// slots, empty (persistence is off), and the cluster is `ok` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_master_killed_during_writes() {
    let mut cluster = RedisCluster::new().unwrap();
    let seeds: Vec<String> = cluster.ports().iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let backend = std::sync::Arc::new(
        RedisBackend::builder(format!("redis+cluster://{}", seeds.join(",")))
            .connect_timeout(TIMEOUT)
            .command_timeout(TIMEOUT)
            .build()
            .await
            .unwrap(),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (backend, stop) = (backend.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut errors, mut misses, mut i) = (0u64, 0u64, 0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    // 64 keys per worker spread over all masters' slots.
                    let k = key(&format!("loop:{w}:{}", i % 64));
                    let value = Bytes::from(format!("{w}:{i}"));
                    let start = Instant::now();
                    let set = backend.set(&k, value.clone(), None).await;
                    let set_took = start.elapsed();
                    let got = backend.get(&k).await;
                    assert!(
                        start.elapsed() < 2 * (TIMEOUT + MARGIN),
                        "set ({set:?}) took {set_took:?}, set+get ({got:?}) {:?}",
                        start.elapsed()
                    );
                    match (set, got) {
                        (Ok(()), Ok(Some(v))) => {
                            assert_eq!(v, value, "wrong value for {k:?}");
                            ok += 1;
                        }
                        (Ok(()), Ok(None)) => misses += 1,
                        // A failed set may or may not have been applied, so
                        // a get after it proves nothing; errors must be the
                        // transient kinds.
                        (Err(e), _) | (_, Err(e)) => {
                            assert!(e.is_transient(), "unexpected error kind: {e:?}");
                            errors += 1;
                        }
                    }
                }
                (ok, errors, misses)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stop_node(0);
    // Past the node timeout, so the cluster goes to `fail`.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.start_node(0).unwrap();
    tokio::task::block_in_place(|| cluster.wait_ready(Duration::from_secs(30))).unwrap();
    let recovered = works_again(&backend, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let (mut ok, mut errors, mut misses) = (0, 0, 0);
    for w in workers {
        let (o, e, m) = w.await.unwrap();
        (ok, errors, misses) = (ok + o, errors + e, misses + m);
    }
    eprintln!("cluster fault loop: {ok} correct, {errors} errors, {misses} misses; recovered in {recovered:?}");
    assert!(ok > 0 && errors > 0, "the loop must have seen both states");

    // Every slot is served again, by the same backend object.
    let keys: Vec<Key> = (0..100).map(|i| key(&format!("after:{i}"))).collect();
    let entries: Vec<(Key, Bytes)> = keys.iter().map(|k| (k.clone(), Bytes::from(k.to_string()))).collect();
    backend.set_many(&entries, None).await.unwrap();
    let got = backend.get_many(&keys).await.unwrap();
    assert_eq!(got, entries.iter().map(|(_, v)| Some(v.clone())).collect::<Vec<_>>());
}

#[tokio::test]
async fn unreachable_url_names_it_without_the_password() {
    let port = cache_testkit::process::free_port().unwrap();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let start = Instant::now();
    let err = RedisBackend::builder(url)
        .connect_timeout(TIMEOUT)
        .build()
        .await
        .unwrap_err();
    assert!(start.elapsed() < TIMEOUT + MARGIN);
    assert!(err.is_transient(), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");

    let err = RedisBackend::builder(format!("redis+cluster://:hunter2@127.0.0.1:{port}"))
        .connect_timeout(TIMEOUT)
        .build()
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().starts_with("redis-cluster"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn malformed_urls_are_config_errors() {
    for url in ["http://h:1", "redis+cluster://", "redis+cluster://h:1/5"] {
        let err = RedisBackend::connect(url).await.unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{url}: {err:?}");
    }
}

// Env vars are process-wide: these tests change PATH and the override
// variables. That is safe only because nextest runs every test in its own
// process; under plain `cargo test` they could race with tests that start
// servers, so they are skipped unless running under nextest.
fn under_nextest() -> bool {
    std::env::var_os("NEXTEST").is_some()
}

#[test]
fn missing_redis_server_names_the_debian_package() {
    if !under_nextest() {
        return;
    }
    let empty = empty_dir();
    std::env::set_var("REDIS_SERVER_BIN", "/nonexistent/redis-server");
    std::env::set_var("PATH", &empty);
    let err = RedisServer::new().unwrap_err();
    assert!(matches!(err, HarnessError::MissingBinary { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("apt-get install -y redis-server") && msg.contains("REDIS_SERVER_BIN"),
        "{msg}"
    );
}

#[test]
fn missing_redis_cli_names_the_debian_package() {
    if !under_nextest() {
        return;
    }
    let empty = empty_dir();
    std::env::set_var("REDIS_CLI_BIN", "/nonexistent/redis-cli");
    std::env::set_var("PATH", &empty);
    let err = RedisCluster::new().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("apt-get install -y redis-tools") && msg.contains("REDIS_CLI_BIN"),
        "{msg}"
    );
}

/// An empty directory to use as `PATH`.
fn empty_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("no-binaries-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
