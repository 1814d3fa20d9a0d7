//! Throughput of the Redis and Memcached backends under concurrency, each
//! paired in the same run with the raw client it wraps and with the server's
//! own load tool as the physical reference:
//!
//! | group | `ours` | `baseline` | reference |
//! |---|---|---|---|
//! | `redis/get/64-tasks` | `RedisBackend`, 64 tasks, one object | raw `MultiplexedConnection`, 64 tasks | |
//! | `redis/get/50-conns-vs-redis-benchmark` | `RedisBackend`, 50 tasks | | `redis-benchmark -c 50`, no pipelining |
//! | `memcached/get/1-task` | `MemcachedBackend`, 1 task | raw `AsyncMetaClient`, 1 task | `memaslap -c 1` |
//! | `memcached/get/64-tasks` | `MemcachedBackend`, 64 tasks | raw `AsyncMetaClient`, 64 tasks | `memaslap -c 50 -T 2` |
//! | `redis/stamped-hit/1-task`, `memcached/stamped-hit/1-task` | a `stamped` hit through `RangeCache` | one `get` of a 2 KB value on the same backend | |
//!
//! Every figure is GETs of 100-byte values that hit, on a server this suite
//! starts (cache-core's testkit). Subjects alternate round by round and the
//! median round is reported (see `common`). Results go to
//! `target/bench-results/backend_load.jsonl`.
#![allow(missing_docs, clippy::print_stderr)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use backend_memcached::{MemcachedBackend, MemcachedOptions};
use backend_redis::RedisBackend;
use cache_core::CacheOptions;
use cache_core::{Backend, Bytes, Key, RangeCache, Scope, TimeRange, View};
use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::redis::RedisServer;
use common::{measure, measure_time, record_rounds, rounds};
use memcache::exp::{AsyncMetaClient, Get};

const SUITE: &str = "backend_load";
const VALUE_SIZE: usize = 100;
/// Connections of the raw `memcache` client (one request each at a time).
const RAW_POOL: usize = 16;

fn value() -> Bytes {
    Bytes::from(vec![b'x'; VALUE_SIZE])
}

fn main() {
    let rt = common::runtime();
    rt.block_on(redis_suite());
    rt.block_on(memcached_suite());
}

/// `stamped`'s hit through `RangeCache` (one multi-get of the generation
/// and the entry, the stamp and envelope checks) against one raw `get` of a
/// 2 KB value on the same backend object, one task, rounds alternating:
/// the noise-robust form of `strategy/read/<backend>`'s comparison (issue
/// #12's ≤ 1.15×). Group `<label>/stamped-hit/1-task`.
async fn stamped_hit(backend: Arc<dyn Backend>, label: &str) {
    let payload = Bytes::from(vec![b'x'; 2048]);
    let floor = Key::new("bench:floor:stamped-hit").unwrap();
    backend
        .set(&floor, payload.clone(), Some(std::time::Duration::from_secs(3600)))
        .await
        .unwrap();
    let options = CacheOptions::default().with_seed(7).with_namespace("bench-stamped-hit");
    let cache = Arc::new(
        RangeCache::builder(backend.clone())
            .options(options)
            .strategy("stamped")
            .build()
            .unwrap(),
    );
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let view = View::new(
        [Scope::new("cal:7").unwrap()],
        TimeRange::new(at("2025-09-29T00:00:00+00:00"), at("2025-11-10T00:00:00+00:00")).unwrap(),
    )
    .unwrap();
    cache
        .get_or_load(&view, || async { Ok::<_, std::io::Error>(payload) })
        .await
        .unwrap();
    let (mut raw_rates, mut ours_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        let (b, k) = (backend.clone(), floor.clone());
        raw_rates.push(
            measure(1, measure_time(), move |_, _| {
                let (b, k) = (b.clone(), k.clone());
                async move { assert!(b.get(&k).await.unwrap().is_some()) }
            })
            .await,
        );
        let (c, v) = (cache.clone(), view.clone());
        ours_rates.push(
            measure(1, measure_time(), move |_, _| {
                let (c, v) = (c.clone(), v.clone());
                async move {
                    let hit = c.get_or_load(&v, || async { Err(std::io::Error::other("a filled view must hit")) });
                    assert_eq!(hit.await.unwrap().len(), 2048);
                }
            })
            .await,
        );
    }
    let group = format!("{label}/stamped-hit/1-task");
    record_rounds(
        SUITE,
        &group,
        "baseline",
        &raw_rates,
        "one raw get of a 2 KB value, 1 task",
    );
    record_rounds(
        SUITE,
        &group,
        "ours",
        &ours_rates,
        "a stamped hit through RangeCache (2 KB feed), 1 task",
    );
}

async fn redis_suite() {
    let server = RedisServer::new().expect("starting redis-server (install it with .ci/install-deps)");
    let ours: Arc<dyn Backend> = Arc::new(RedisBackend::connect(server.url()).await.expect("RedisBackend"));
    stamped_hit(ours.clone(), "redis").await;
    let raw = redis::Client::open(server.url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw multiplexed connection");
    let key = Key::new("bench:{cal:1}:2025-10").unwrap();
    ours.set(&key, value(), None).await.unwrap();

    // 64 tasks on one object vs 64 tasks on one raw multiplexed connection.
    const TASKS: usize = 64;
    let (mut ours_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        // An `Arc` per operation on both sides (here the key, in `get_loop`
        // the key list and the backend), so neither pays an allocation the
        // other does not.
        let (conn, k): (_, Arc<str>) = (raw.clone(), key.as_str().into());
        raw_rates.push(
            measure(TASKS, measure_time(), move |_, _| {
                let (mut conn, k) = (conn.clone(), k.clone());
                async move {
                    let v: Option<Bytes> = redis::cmd("GET").arg(&*k).query_async(&mut conn).await.unwrap();
                    assert!(v.is_some());
                }
            })
            .await,
        );
        ours_rates.push(get_loop(ours.clone(), vec![key.clone()], TASKS).await);
    }
    let group = "redis/get/64-tasks";
    record_rounds(
        SUITE,
        group,
        "baseline",
        &raw_rates,
        &format!("raw redis MultiplexedConnection, {TASKS} tasks"),
    );
    record_rounds(
        SUITE,
        group,
        "ours",
        &ours_rates,
        &format!("RedisBackend as Arc<dyn Backend>, {TASKS} tasks"),
    );

    // The physical reference: 50 connections, one request in flight on each.
    // redis-benchmark GETs the literal key `key:__rand_int__` (no -r), so it
    // is given the same 100-byte value to hit.
    const CONNS: usize = 50;
    let mut conn = raw.clone();
    let _: () = redis::cmd("SET")
        .arg("key:__rand_int__")
        .arg(value().as_ref())
        .query_async(&mut conn)
        .await
        .unwrap();
    let requests = if common::quick() { 10_000 } else { 200_000 };
    let (mut ours_rates, mut tool_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        ours_rates.push(get_loop(ours.clone(), vec![key.clone()], CONNS).await);
        match redis_benchmark(server.port(), CONNS, requests) {
            Ok(rate) => tool_rates.push(rate),
            Err(e) => eprintln!("redis-benchmark not measured: {e}"),
        }
    }
    let group = "redis/get/50-conns-vs-redis-benchmark";
    record_rounds(
        SUITE,
        group,
        "ours",
        &ours_rates,
        &format!("RedisBackend, {CONNS} tasks on one multiplexed connection"),
    );
    if !tool_rates.is_empty() {
        record_rounds(
            SUITE,
            group,
            "redis-benchmark",
            &tool_rates,
            &format!("redis-benchmark -c {CONNS} -n {requests} -t get (no pipelining)"),
        );
    }
}

/// `tasks` tasks GETting `keys` round-robin through `backend`; ops/s.
async fn get_loop(backend: Arc<dyn Backend>, keys: Vec<Key>, tasks: usize) -> f64 {
    let keys = Arc::new(keys);
    measure(tasks, measure_time(), move |t, i| {
        let (b, keys) = (backend.clone(), keys.clone());
        async move {
            // Tasks start at different keys so they spread over the keyspace.
            let k = &keys[(t * 7919 + i) % keys.len()];
            assert!(b.get(k).await.unwrap().is_some());
        }
    })
    .await
}

/// Runs `redis-benchmark -q --csv` and returns its GET requests per second.
fn redis_benchmark(port: u16, conns: usize, requests: usize) -> Result<f64, String> {
    let out = Command::new(find_tool(&["redis-benchmark"], "REDIS_BENCHMARK_BIN")?)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", &conns.to_string()])
        .args(["-n", &requests.to_string(), "-t", "get", "-q", "--csv"])
        .output()
        .map_err(|e| format!("running redis-benchmark: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `"GET","41076.20",...` (header line first in Redis 7).
    text.lines()
        .find(|l| l.starts_with("\"GET"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .ok_or_else(|| {
            format!(
                "unexpected redis-benchmark output: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

async fn memcached_suite() {
    // Stock memcached runs 4 threads; 256 MiB so memaslap's working set
    // (window × concurrency keys) is never evicted.
    let server = MemcachedServer::spawn(&MemcachedConfig::default().threads(4).memory_mb(256))
        .expect("starting memcached (install it with .ci/install-deps)");
    let addr = server.addr().to_string();
    let options = MemcachedOptions::new([addr.clone()]);
    let ours_pool = options.connections_per_server;
    let ours: Arc<dyn Backend> = Arc::new(MemcachedBackend::connect(options).await.expect("MemcachedBackend"));
    stamped_hit(ours.clone(), "memcached").await;
    // The raw client sends one request per connection at a time, so it gets
    // the pool it needs for concurrency (the backend's old default, 16), not
    // the backend's: one pipelined connection would starve it.
    let pool = RAW_POOL;
    let raw = AsyncMetaClient::builder()
        .max_connections(Some(pool))
        .max_idle(pool)
        .connect_async(addr.as_str())
        .await
        .expect("raw AsyncMetaClient");
    const KEYS: usize = 1000;
    let keys: Vec<Key> = (0..KEYS)
        .map(|i| Key::new(format!("bench:feed:{i}")).unwrap())
        .collect();
    let entries: Vec<(Key, Bytes)> = keys.iter().map(|k| (k.clone(), value())).collect();
    ours.set_many(&entries, None).await.unwrap();
    // These keys are valid Memcached keys as they are, so the backend's
    // safe-key mapping leaves them unchanged and the raw client reads the
    // same items; checked here rather than assumed.
    let names: Arc<Vec<String>> = Arc::new(keys.iter().map(|k| k.as_str().to_owned()).collect());
    assert!(
        raw.run(Get::new(&names[0])).await.unwrap().value.is_some(),
        "raw client must see the backend's items"
    );

    let memaslap = MemaslapConfig::write()
        .map_err(|e| eprintln!("memaslap not measured: {e}"))
        .ok();
    for (tasks, group, conns, threads) in [(1, "memcached/get/1-task", 1, 1), (64, "memcached/get/64-tasks", 50, 2)] {
        let (mut ours_rates, mut raw_rates, mut tool_rates) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds() {
            let (r, n) = (raw.clone(), names.clone());
            raw_rates.push(
                measure(tasks, measure_time(), move |t, i| {
                    let (r, n) = (r.clone(), n.clone());
                    async move {
                        let g = r.run(Get::new(&n[(t * 7919 + i) % n.len()])).await.unwrap();
                        assert!(g.value.is_some());
                    }
                })
                .await,
            );
            ours_rates.push(get_loop(ours.clone(), keys.clone(), tasks).await);
            if let Some(cfg) = &memaslap {
                match cfg.run(&addr, conns, threads) {
                    Ok(rate) => tool_rates.push(rate),
                    Err(e) => eprintln!("memaslap not measured: {e}"),
                }
            }
        }
        record_rounds(
            SUITE,
            group,
            "baseline",
            &raw_rates,
            &format!("raw memcache AsyncMetaClient (pool {pool}), {tasks} task(s)"),
        );
        record_rounds(
            SUITE,
            group,
            "ours",
            &ours_rates,
            &format!("MemcachedBackend as Arc<dyn Backend> ({ours_pool} pipelined connection(s)), {tasks} task(s)"),
        );
        if !tool_rates.is_empty() {
            record_rounds(
                SUITE,
                group,
                &format!("memaslap-{conns}"),
                &tool_rates,
                &format!("memaslap -c {conns} -T {threads}, 90% get / 10% set of {VALUE_SIZE}-byte values, all ops/s"),
            );
        }
    }
}

/// memaslap's workload file and binary. Debian's libmemcached-tools installs
/// it as `memcaslap`; elsewhere it is `memaslap`.
struct MemaslapConfig {
    binary: PathBuf,
    // Removed when the config is dropped.
    file: tempfile::NamedTempFile,
}

impl MemaslapConfig {
    /// Writes the workload: 16-byte keys, 100-byte values, 90 % get / 10 %
    /// set. memaslap's get-only mode first pre-writes its whole key window
    /// and counts those sets in its rate, so a mix with few sets is the
    /// closest GET-heavy figure it reports; every request is one round trip
    /// either way.
    fn write() -> Result<Self, String> {
        let binary = find_tool(&["memcaslap", "memaslap"], "MEMASLAP_BIN")?;
        let workload = format!("key\n16 16 1\nvalue\n{VALUE_SIZE} {VALUE_SIZE} 1\ncmd\n0 0.1\n1 0.9\n");
        let mut file = tempfile::NamedTempFile::new().map_err(|e| format!("memaslap config: {e}"))?;
        file.write_all(workload.as_bytes())
            .map_err(|e| format!("writing memaslap config: {e}"))?;
        Ok(MemaslapConfig { binary, file })
    }

    /// Runs memaslap against `addr` and returns its TPS (all operations).
    fn run(&self, addr: &str, conns: usize, threads: usize) -> Result<f64, String> {
        let secs = if common::quick() {
            1
        } else {
            measure_time().as_secs().max(1)
        };
        let out = Command::new(&self.binary)
            .args([
                "-s",
                addr,
                "-t",
                &format!("{secs}s"),
                "-c",
                &conns.to_string(),
                "-T",
                &threads.to_string(),
            ])
            .arg("-F")
            .arg(self.file.path())
            .output()
            .map_err(|e| format!("running {}: {e}", self.binary.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // Last line: `Run time: 3.0s Ops: 291963 TPS: 97208 Net_rate: 17.4M/s`.
        text.lines()
            .filter_map(|l| l.split("TPS:").nth(1))
            .next_back()
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                format!(
                    "unexpected memaslap output: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    }
}

/// `env_var` if set, else the first of `names` found on `PATH`.
fn find_tool(names: &[&str], env_var: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(format!(
        "none of {names:?} on PATH (set {env_var}; Debian: redis-tools / libmemcached-tools)"
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
