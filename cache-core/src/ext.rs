//! Conveniences over any [`Backend`]: typed values and `get_or_set`.
//!
//! # Codec
//!
//! Typed values are stored as **JSON** (`serde_json`). JSON was chosen over a
//! compact binary format because cached feeds are read by people debugging
//! (`redis-cli GET`, `memcached` dumps) and by services in other languages
//! sharing the cache; a feed of calendar items is text-heavy, so a binary
//! format would save little. Callers who want another encoding store
//! [`Bytes`] through the [`Backend`] methods directly.

use std::future::Future;

use async_trait::async_trait;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{Backend, Ttl};
use crate::error::{Error, Result};
use crate::key::Key;

/// Extension methods available on every backend (including `dyn Backend`).
///
/// ```
/// # async fn demo(cache: &dyn cache_core::Backend) -> cache_core::Result<()> {
/// use cache_core::{BackendExt, Key};
/// use std::time::Duration;
/// let key = Key::new("user:7:name")?;
/// cache.set_json(&key, &"Ada", Some(Duration::from_secs(300))).await?;
/// let name: Option<String> = cache.get_json(&key).await?;
/// let n: u32 = cache
///     .get_or_set(&Key::new("answer")?, None, || async { Ok::<_, cache_core::Error>(42) })
///     .await?;
/// # Ok(()) }
/// ```
#[async_trait]
pub trait BackendExt: Backend {
    /// Reads and decodes a JSON value; `Ok(None)` when missing, a
    /// [`Error::Codec`] when the stored bytes are not a `T`.
    async fn get_json<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => decode(key, &bytes).map(Some),
        }
    }

    /// Encodes `value` as JSON and stores it.
    async fn set_json<T: Serialize + Sync + ?Sized>(&self, key: &Key, value: &T, ttl: Ttl) -> Result<()> {
        let bytes = encode(key, value)?;
        self.set(key, bytes, ttl).await
    }

    /// Returns the cached `T` under `key`, or runs `load`, stores its result
    /// and returns it.
    ///
    /// A stored value that no longer decodes as `T` (an older format) is
    /// treated as a miss and overwritten. This is plain cache-aside with no
    /// protection against concurrent loads or stale sets; the strategy layer's
    /// `get_or_load` adds those.
    async fn get_or_set<T, E, F, Fut>(&self, key: &Key, ttl: Ttl, load: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Send + Sync,
        E: From<Error> + Send,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        if let Some(bytes) = self.get(key).await? {
            match decode::<T>(key, &bytes) {
                Ok(v) => return Ok(v),
                Err(e) => tracing::warn!(error = %e, "cached value does not decode; reloading"),
            }
        }
        let value = load().await?;
        self.set_json(key, &value, ttl).await?;
        Ok(value)
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}

/// Encodes `value` with the crate's codec (JSON).
pub fn encode<T: Serialize + ?Sized>(key: &Key, value: &T) -> Result<Bytes> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| Error::Codec {
        key: key.to_string(),
        source: Box::new(e),
    })
}

/// Decodes bytes written by [`encode`].
pub fn decode<T: DeserializeOwned>(key: &Key, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Codec {
        key: key.to_string(),
        source: Box::new(e),
    })
}
