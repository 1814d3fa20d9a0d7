//! Server-assisted tracking: the shared store itself tells a process when a
//! key it read changed (Redis `CLIENT TRACKING`, invalidations pushed over
//! RESP3). A trait, so Redis (`backend_redis::RedisTracker`) and the
//! simulator's model with a delivery latency per invalidation are
//! interchangeable.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::known::KnownGenerations;
use crate::error::Result;
use crate::key::Key;

/// What a tracked read returns per key: its value, and the tracking
/// connection it was read through (the source whose loss makes it
/// untrustworthy, see [`KnownGenerations`], "Sources").
pub type TrackedValue = (Option<Bytes>, u32);

/// A source that tells a process when a key it read changed, because the
/// server tracks what each connection read.
///
/// # Contract
///
/// - [`attach`](Tracker::attach) starts feeding `table`: the tracker calls
///   [`KnownGenerations::connected`] with a connection's source number once
///   the server confirmed it tracks what is read through it,
///   [`KnownGenerations::changed`] with the key of every invalidation the
///   server pushes (and
///   [`KnownGenerations::connected`] again when the server says
///   everything changed, a flush), and [`KnownGenerations::disconnected`]
///   as soon as a connection may have lost an invalidation (it closed or
///   broke), before it is replaced. It must never leave a source marked
///   connected while its invalidations can be lost unseen.
/// - [`read`](Tracker::read) reads `keys` through tracking connections, so
///   that the server reports their later changes, and returns each value
///   with the source it was read through; `Ok(None)` when some key's
///   connection is not tracking right now (the caller then reads from L2
///   and learns nothing).
///
/// That is all the race between a read and an invalidation needs: the
/// caller notes the table's epoch before the read is sent and learns only
/// keys no notice named since (see the [tier docs](crate::tier), "Tracking").
#[async_trait]
pub trait Tracker: Send + Sync + std::fmt::Debug + 'static {
    /// Short name for errors and reports (`"redis-tracking"`, `"local"`).
    fn name(&self) -> &str;

    /// Starts feeding `table`; see the contract.
    fn attach(&self, table: Arc<KnownGenerations>) -> Result<()>;

    /// Reads `keys` so that their changes will be reported; see the
    /// contract.
    async fn read(&self, keys: &[Key]) -> Result<Option<Vec<TrackedValue>>>;
}

#[async_trait]
impl<T: Tracker + ?Sized> Tracker for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn attach(&self, table: Arc<KnownGenerations>) -> Result<()> {
        (**self).attach(table)
    }
    async fn read(&self, keys: &[Key]) -> Result<Option<Vec<TrackedValue>>> {
        (**self).read(keys).await
    }
}
