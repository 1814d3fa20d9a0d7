//! `none`: a store that keeps nothing, so every read is a miss. It is the
//! application with its cache turned off, behind the same code path: what
//! a measurement of "what the cache buys" compares against
//! (`calendar-load`'s throughput table).
//!
//! It obeys the contract the way a store that evicts every entry the moment
//! it is written would: `set` succeeds and the entry is gone, `add` stores
//! (and loses) and returns `true`, `get` finds nothing, `incr` finds no
//! counter ([`Error::NotFound`](cache_core::Error::NotFound)), deletes find
//! nothing. Strategies therefore seed, bump and fill as usual and never
//! serve an entry; no call fails and no call leaves the process.

use cache_core::{async_trait, Backend, Bytes, Capabilities, Error, Key, Result, Ttl};

/// The `none` backend: a store that keeps nothing, so every read is a miss
/// (the `none` URL; the application with its cache off). It behaves as a
/// store that evicts each entry the moment it is written: `set` and `add`
/// succeed and keep nothing, `get` finds nothing, `incr` finds no counter,
/// deletes find nothing. No call fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoneBackend;

#[async_trait]
impl Backend for NoneBackend {
    fn name(&self) -> &str {
        "none"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with_prefix_delete(true)
    }

    async fn get(&self, _key: &Key) -> Result<Option<Bytes>> {
        Ok(None)
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        Ok(vec![None; keys.len()])
    }

    async fn set(&self, _key: &Key, _value: Bytes, _ttl: Ttl) -> Result<()> {
        Ok(())
    }

    async fn set_many(&self, _entries: &[(Key, Bytes)], _ttl: Ttl) -> Result<()> {
        Ok(())
    }

    async fn add(&self, _key: &Key, _value: Bytes, ttl: Ttl) -> Result<bool> {
        // TTL 0 stores nothing and says so, as on every backend.
        Ok(ttl != Some(std::time::Duration::ZERO))
    }

    async fn incr(&self, key: &Key, _delta: u64) -> Result<u64> {
        Err(Error::NotFound {
            backend: "none".to_owned(),
            key: key.to_string(),
        })
    }

    async fn delete(&self, _key: &Key) -> Result<bool> {
        Ok(false)
    }

    async fn delete_many(&self, _keys: &[Key]) -> Result<u64> {
        Ok(0)
    }

    async fn delete_prefix(&self, _prefix: &str) -> Result<u64> {
        Ok(0)
    }
}
