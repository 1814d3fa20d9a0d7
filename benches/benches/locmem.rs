//! locmem backend vs the raw `moka::sync::Cache` it wraps.
//!
//! Each group holds a pair: `ours` (through `Arc<dyn Backend>`, as the
//! simulator and services hold it) and `baseline` (moka directly, same key and
//! value types). `benches/run` turns the pair into a ratio in BENCHMARKS.md.
//! `locmem/set` also has `deterministic`: the same store with the
//! simulator's maintenance schedule (`LocmemBuilder::deterministic`: moka's
//! pending work applied after every write), against `ours` in moka's
//! default mode (#30).
#![allow(missing_docs)]

use std::sync::Arc;

use backend_locmem::LocmemBackend;
use cache_core::{Backend, Bytes, Key};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use moka::sync::Cache;

const N: usize = 10_000;

fn keys() -> Vec<Key> {
    (0..N)
        .map(|i| Key::new(format!("feed:{{cal:{}}}:2025-09-29:2025-11-10", i)).unwrap())
        .collect()
}

fn value() -> Bytes {
    Bytes::from(vec![b'x'; 512])
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = keys();
    let ours: Arc<dyn Backend> = Arc::new(LocmemBackend::new());
    // The simulator's maintenance schedule, all else as `ours`.
    let det: Arc<dyn Backend> = Arc::new(LocmemBackend::builder().deterministic(true).build());
    let raw: Cache<String, Bytes> = Cache::builder().max_capacity(256 << 20).build();
    rt.block_on(async {
        for k in &keys {
            ours.set(k, value(), None).await.unwrap();
            det.set(k, value(), None).await.unwrap();
            raw.insert(k.as_str().to_owned(), value());
        }
    });

    let mut g = c.benchmark_group("locmem/get_hit");
    let mut i = 0;
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % N;
            let (ours, k) = (&ours, &keys[i]);
            async move { ours.get(k).await.unwrap() }
        })
    });
    g.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % N;
            let (raw, k) = (&raw, &keys[i]);
            async move { raw.get(k.as_str()) }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("locmem/get_miss");
    let missing = Key::new("feed:{cal:none}:missing").unwrap();
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter(|| async { ours.get(&missing).await.unwrap() })
    });
    g.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| async { raw.get(missing.as_str()) })
    });
    g.finish();

    let mut g = c.benchmark_group("locmem/set");
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter_batched(
            || {
                i = (i + 1) % N;
                (keys[i].clone(), value())
            },
            |(k, v)| {
                let ours = &ours;
                async move { ours.set(&k, v, None).await.unwrap() }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("deterministic", |b| {
        b.to_async(&rt).iter_batched(
            || {
                i = (i + 1) % N;
                (keys[i].clone(), value())
            },
            |(k, v)| {
                let det = &det;
                async move { det.set(&k, v, None).await.unwrap() }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline", |b| {
        b.to_async(&rt).iter_batched(
            || {
                i = (i + 1) % N;
                (keys[i].as_str().to_owned(), value())
            },
            |(k, v)| {
                let raw = &raw;
                async move { raw.insert(k, v) }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // incr: moka has no counter, so the baseline is the same read-modify-write
    // under moka's per-key compute lock that our backend performs.
    let mut g = c.benchmark_group("locmem/incr");
    let counter = Key::new("gen:{cal:1}").unwrap();
    rt.block_on(async {
        ours.set(&counter, Bytes::from_static(b"0"), None).await.unwrap();
        raw.insert(counter.as_str().to_owned(), Bytes::from_static(b"0"));
    });
    g.bench_function("ours", |b| {
        b.to_async(&rt).iter(|| async { ours.incr(&counter, 1).await.unwrap() })
    });
    g.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| async {
            raw.entry_by_ref(counter.as_str()).and_compute_with(|e| {
                let n: u64 = e
                    .and_then(|e| std::str::from_utf8(e.value()).ok()?.parse().ok())
                    .unwrap_or(0);
                moka::ops::compute::Op::Put(Bytes::from((n + 1).to_string()))
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
