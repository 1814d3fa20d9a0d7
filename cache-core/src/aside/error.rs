//! [`LoadError`]: why [`RangeCache::get_or_load`](crate::RangeCache::get_or_load)
//! returned no view.

use crate::error::Error;

/// Why a read returned no view: the loader's own error, the hard timeout,
/// or (only with fail-open off) the cache's.
///
/// With fail-open on (the default) a backend error is answered by the
/// loader, so the only error a caller sees is the loader's:
///
/// ```
/// # async fn demo(cache: cache_core::RangeCache, view: cache_core::View) {
/// use cache_core::aside::LoadError;
/// let r = cache.get_or_load(&view, || async { Err::<cache_core::Bytes, _>(std::io::Error::other("db down")) }).await;
/// match r {
///     Err(LoadError::Loader(e)) => assert_eq!(e.to_string(), "db down"),
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader (the database) failed; nothing was cached.
    #[error(transparent)]
    Loader(E),
    /// The cache failed while reading and fail-open is off
    /// ([`RangeCacheBuilder::fail_open`](crate::aside::RangeCacheBuilder::fail_open)).
    #[error("cache read failed (fail-open is off): {0}")]
    Cache(#[source] Error),
    /// The loader did not answer within the hard timeout
    /// ([`RangeCacheBuilder::hard_timeout`](crate::aside::RangeCacheBuilder::hard_timeout))
    /// and fail-safe had no entry for the view; the load was given up.
    #[error("the database did not answer within the hard timeout ({after:?})")]
    Timeout {
        /// The hard timeout.
        after: std::time::Duration,
    },
}

impl<E> LoadError<E> {
    /// The loader's error, if that is what this is.
    pub fn into_loader(self) -> Option<E> {
        match self {
            LoadError::Loader(e) => Some(e),
            LoadError::Cache(_) | LoadError::Timeout { .. } => None,
        }
    }
}
