//! GET throughput of the Memcached backend against the raw client, on a
//! `memcached` started by the testkit (4 threads, like a stock server).
//!
//! ```text
//! cargo run -p backend-memcached --example memcached_throughput --release [-- SECONDS]
//! ```
//!
//! Rows: one request at a time on a single raw connection (the baseline the
//! one-at-a-time goal compares with), the raw `AsyncMetaClient`, and the
//! backend; then 64 concurrent tasks through the raw client and the backend.
//! Each row runs for SECONDS (default 3) after a short warm-up.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_memcached::{MemcachedBackend, MemcachedOptions};
use cache_core::{Backend, Bytes, Key};
use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use memcache::exp::{build_get, AsyncMetaClient, AsyncMetaConnection, Get, GetOptions};

const KEYS: usize = 1000;
const TASKS: usize = 64;

fn key_name(i: usize) -> String {
    format!("bench:feed:{i}")
}

/// Runs `op(task, iteration)` on `tasks` tasks for `secs`; returns ops/s.
async fn measure<F, Fut>(tasks: usize, secs: f64, op: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    // Warm-up: fill the connection pools.
    let warm = Duration::from_millis(300);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (op, stop, count) = (op.clone(), stop.clone(), count.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    op(t, i).await;
                    i += 1;
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(warm).await;
    let start_count = count.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let done = count.load(Ordering::Relaxed) - start_count;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
    done as f64 / elapsed
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let server = MemcachedServer::spawn(&MemcachedConfig::default().threads(4)).expect("start memcached");
    let addr = server.addr().to_string();
    // CONNECTIONS overrides the connections per server (default 1).
    let mut options = MemcachedOptions::new([addr.clone()]);
    if let Some(n) = std::env::var("CONNECTIONS").ok().and_then(|s| s.parse().ok()) {
        options = options.with_connections_per_server(n);
    }
    let backend = Arc::new(MemcachedBackend::connect(options.clone()).await.unwrap());
    let keys: Arc<Vec<Key>> = Arc::new((0..KEYS).map(|i| Key::new(key_name(i)).unwrap()).collect());
    let value = Bytes::from(vec![b'x'; 100]);
    let entries: Vec<(Key, Bytes)> = keys.iter().map(|k| (k.clone(), value.clone())).collect();
    backend.set_many(&entries, None).await.unwrap();

    let raw = AsyncMetaClient::builder()
        // One request per connection at a time: it needs a pool for
        // concurrency, unlike the backend's pipelined connection.
        .max_connections(Some(16))
        .max_idle(16)
        .connect_async(addr.as_str())
        .await
        .unwrap();

    println!(
        "memcached GET throughput, 100-byte values, {KEYS} keys, {} connections, {secs} s per row",
        options.connections_per_server
    );
    println!("{:<52} {:>12}", "configuration", "ops/s");

    // Baseline: one raw connection, one request at a time.
    let conn = Arc::new(tokio::sync::Mutex::new(
        AsyncMetaConnection::connect(addr.as_str()).await.unwrap(),
    ));
    let cmds: Arc<Vec<_>> = Arc::new(
        (0..KEYS)
            .map(|i| build_get(key_name(i), &GetOptions::default()).unwrap())
            .collect(),
    );
    let baseline = measure(1, secs, move |_, i| {
        let (conn, cmds) = (conn.clone(), cmds.clone());
        async move {
            let r = conn.lock().await.execute(&cmds[i % KEYS]).await.unwrap();
            assert!(r.value().is_some());
        }
    })
    .await;
    println!(
        "{:<52} {:>12.0}",
        "1 at a time: raw single connection (baseline)", baseline
    );

    let r = raw.clone();
    let raw_seq = measure(1, secs, move |_, i| {
        let r = r.clone();
        async move {
            let g = r.run(Get::new(key_name(i % KEYS))).await.unwrap();
            assert!(g.value.is_some());
        }
    })
    .await;
    println!("{:<52} {:>12.0}", "1 at a time: raw AsyncMetaClient", raw_seq);

    let (b, k) = (backend.clone(), keys.clone());
    let be_seq = measure(1, secs, move |_, i| {
        let (b, k) = (b.clone(), k.clone());
        async move {
            assert!(b.get(&k[i % KEYS]).await.unwrap().is_some());
        }
    })
    .await;
    println!(
        "{:<52} {:>12.0}  ({:.2}x baseline)",
        "1 at a time: MemcachedBackend",
        be_seq,
        be_seq / baseline
    );

    let r = raw.clone();
    let raw_par = measure(TASKS, secs, move |t, i| {
        let r = r.clone();
        async move {
            let g = r.run(Get::new(key_name((t * 7919 + i) % KEYS))).await.unwrap();
            assert!(g.value.is_some());
        }
    })
    .await;
    println!(
        "{:<52} {:>12.0}",
        format!("{TASKS} tasks: raw AsyncMetaClient"),
        raw_par
    );

    let (b, k) = (backend.clone(), keys.clone());
    let be_par = measure(TASKS, secs, move |t, i| {
        let (b, k) = (b.clone(), k.clone());
        async move {
            assert!(b.get(&k[(t * 7919 + i) % KEYS]).await.unwrap().is_some());
        }
    })
    .await;
    println!(
        "{:<52} {:>12.0}  ({:.2}x raw client)",
        format!("{TASKS} tasks: MemcachedBackend"),
        be_par,
        be_par / raw_par
    );
    drop(server);
}
