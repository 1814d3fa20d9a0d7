//! No key written by any strategy is left without a TTL: entries, and the
//! control keys (generations, versions, key indexes) that guard them, all
//! expire, so a replay never leaves keys behind forever on a user's server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend_locmem::LocmemBackend;
use cache_core::aside::RangeCache;
use cache_core::strategy::{by_name, NAMES};
use cache_core::CacheOptions;
use cache_core::{async_trait, Backend, Bytes, Capabilities, Change, Key, Result, Ttl, View};
use cache_testkit::strategy_suite::{range, scope};

/// Passes every call to locmem and records the keys written without a TTL.
#[derive(Debug, Default)]
struct NoTtlSpy {
    inner: LocmemBackend,
    untimed: Mutex<Vec<String>>,
    writes: Mutex<u64>,
}

impl NoTtlSpy {
    fn note(&self, key: &Key, ttl: Ttl) {
        *self.writes.lock().unwrap() += 1;
        if ttl.is_none() {
            self.untimed.lock().unwrap().push(key.to_string());
        }
    }
}

#[async_trait]
impl Backend for NoTtlSpy {
    fn name(&self) -> &str {
        "spy"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.inner.get_many(keys).await
    }
    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.note(key, ttl);
        self.inner.set(key, value, ttl).await
    }
    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        for (k, _) in entries {
            self.note(k, ttl);
        }
        self.inner.set_many(entries, ttl).await
    }
    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.note(key, ttl);
        self.inner.add(key, value, ttl).await
    }
    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        self.inner.incr(key, delta).await
    }
    async fn delete(&self, key: &Key) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        self.inner.delete_many(keys).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.inner.delete_prefix(prefix).await
    }
}

#[tokio::test]
async fn every_key_any_strategy_writes_expires() {
    let oct = range("2025-09-29T00:00:00+08:00", "2025-11-10T00:00:00+08:00");
    let views = [
        View::new([scope("cal:1")], oct).unwrap(),
        View::new([scope("cal:1"), scope("team:1")], oct).unwrap(),
    ];
    for name in NAMES {
        let spy = Arc::new(NoTtlSpy::default());
        let strategy = by_name(name, &CacheOptions::default().with_ttl(Duration::from_secs(60))).unwrap();
        let cache = RangeCache::builder(spy.clone())
            .shared_strategy(strategy.clone())
            .build()
            .unwrap();
        for round in 0..3 {
            for v in &views {
                let body = Bytes::from(format!("feed {round}"));
                cache
                    .get_or_load(v, || async { Ok::<_, std::io::Error>(body) })
                    .await
                    .unwrap();
            }
            for s in ["cal:1", "team:1"] {
                let change = Change::new(
                    scope(s),
                    [range("2025-10-15T10:00:00+08:00", "2025-10-15T11:00:00+08:00")],
                );
                cache.invalidate(&change.unwrap()).await.unwrap();
            }
            // Lost control keys are re-created: with a TTL too.
            for v in &views {
                spy.inner.delete_many(&strategy.control_keys(v)).await.unwrap();
            }
        }
        assert!(*spy.writes.lock().unwrap() > 0, "{name} wrote nothing");
        let untimed = spy.untimed.lock().unwrap();
        assert!(untimed.is_empty(), "{name} wrote keys without a TTL: {untimed:?}");
    }
}
