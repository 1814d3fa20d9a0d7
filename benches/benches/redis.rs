//! Redis backend vs the raw `redis` crate, one request at a time.
//!
//! Each group holds a pair measured in the same run against one
//! `redis-server` this suite starts: `ours` (`RedisBackend` behind
//! `Arc<dyn Backend>`) and `baseline` (the same command on a raw
//! `MultiplexedConnection`). One request in flight, so the figure is
//! latency: a loopback round trip plus each layer's own cost. Throughput at
//! 64 tasks and against `redis-benchmark` is in the `backend_load` suite.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use backend_redis::RedisBackend;
use cache_core::{Backend, Bytes, Key};
use cache_testkit::redis::RedisServer;
use criterion::{criterion_group, criterion_main, Criterion};

const TTL: Duration = Duration::from_secs(300);

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::new().expect("starting redis-server (install it with .ci/install-deps)");
    let (ours, raw) = rt.block_on(async {
        let ours: Arc<dyn Backend> = Arc::new(RedisBackend::connect(server.url()).await.unwrap());
        let raw = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (ours, raw)
    });
    let key = Key::new("bench:{cal:1}:2025-09-29:2025-11-10").unwrap();
    let value = Bytes::from(vec![b'x'; 512]);
    rt.block_on(ours.set(&key, value.clone(), Some(TTL))).unwrap();

    let mut g = c.benchmark_group("redis/get");
    g.bench_function("ours", |b| {
        b.to_async(&rt)
            .iter(|| async { ours.get(&key).await.unwrap().unwrap() })
    });
    g.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw.clone();
            let key = &key;
            async move {
                let v: Option<Bytes> = redis::cmd("GET")
                    .arg(key.as_str())
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                v.unwrap()
            }
        })
    });
    g.finish();

    // Same command on the wire for both: `SET key value PX 300000`.
    let mut g = c.benchmark_group("redis/set");
    g.bench_function("ours", |b| {
        b.to_async(&rt)
            .iter(|| async { ours.set(&key, value.clone(), Some(TTL)).await.unwrap() })
    });
    g.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw.clone();
            let (key, value) = (&key, &value);
            async move {
                let _: () = redis::cmd("SET")
                    .arg(key.as_str())
                    .arg(value.as_ref())
                    .arg("PX")
                    .arg(TTL.as_millis() as u64)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        })
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
