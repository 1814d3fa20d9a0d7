//! Memcached backend vs the raw `memcache` client, one request at a time.
//!
//! Each group holds a pair measured in the same run against one `memcached`
//! this suite starts: `ours` (`MemcachedBackend` behind `Arc<dyn Backend>`)
//! and `baseline` (the `memcache` crate's `AsyncMetaClient`, which the
//! backend used to drive, with a pool of 16). One request in flight, so the
//! figure is latency. Throughput at 1 and 64 tasks and against memaslap is
//! in the `backend_load` suite.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use backend_memcached::{MemcachedBackend, MemcachedOptions};
use cache_core::{Backend, Bytes, Key};
use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use criterion::{criterion_group, criterion_main, Criterion};
use memcache::exp::{AsyncMetaClient, Get, Set};

const TTL: Duration = Duration::from_secs(300);

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = MemcachedServer::spawn(&MemcachedConfig::default().threads(4))
        .expect("starting memcached (install it with .ci/install-deps)");
    let addr = server.addr().to_string();
    let options = MemcachedOptions::new([addr.clone()]);
    // The raw client sends one request per connection at a time; it keeps
    // the pool it needs (16), not the backend's one pipelined connection.
    let pool = 16;
    let (ours, raw) = rt.block_on(async {
        let ours: Arc<dyn Backend> = Arc::new(MemcachedBackend::connect(options).await.unwrap());
        let raw = AsyncMetaClient::builder()
            .max_connections(Some(pool))
            .max_idle(pool)
            .connect_async(addr.as_str())
            .await
            .unwrap();
        (ours, raw)
    });
    // A valid Memcached key as it is, so the backend's safe-key mapping
    // leaves it unchanged and both subjects touch the same item.
    let key = Key::new("bench:cal-1:2025-09-29:2025-11-10").unwrap();
    let value = Bytes::from(vec![b'x'; 512]);
    rt.block_on(ours.set(&key, value.clone(), Some(TTL))).unwrap();
    let hit = rt.block_on(raw.run(Get::new(key.as_str()))).unwrap();
    assert!(hit.value.is_some(), "the raw client must read the backend's item");

    let mut g = c.benchmark_group("memcached/get");
    g.bench_function("ours", |b| {
        b.to_async(&rt)
            .iter(|| async { ours.get(&key).await.unwrap().unwrap() })
    });
    g.bench_function("baseline", |b| {
        b.to_async(&rt)
            .iter(|| async { raw.run(Get::new(key.as_str())).await.unwrap().value.unwrap() })
    });
    g.finish();

    let mut g = c.benchmark_group("memcached/set");
    g.bench_function("ours", |b| {
        b.to_async(&rt)
            .iter(|| async { ours.set(&key, value.clone(), Some(TTL)).await.unwrap() })
    });
    g.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| async {
            raw.run(Set::new(key.as_str(), &value).ttl(TTL)).await.unwrap();
        })
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
