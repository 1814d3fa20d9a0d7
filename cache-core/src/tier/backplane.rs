//! The backplane: how a process tells the others that a generation changed.
//! A trait, so Redis pub/sub (`backend_redis::RedisBackplane`) and the
//! simulator's in-process hub with a modelled delivery latency
//! (`local_backplane.rs`) are interchangeable.

use std::sync::Arc;

use async_trait::async_trait;

use super::known::KnownGenerations;
use crate::error::Result;

/// A channel every process publishes generation changes on and listens to.
///
/// # Contract
///
/// - [`publish`](Backplane::publish) returns once the notice is handed to
///   the channel; an error means some processes may never see it (the
///   caller retries, then forgets: see the [tier docs](crate::tier)).
///   Notices of one publisher reach every subscriber in the order they
///   were published (the caller publishes one at a time).
/// - After [`subscribe`](Backplane::subscribe), the backplane calls
///   [`KnownGenerations::subscribed`] once the subscription is live, then
///   [`KnownGenerations::receive`] with the bytes of every message
///   published afterwards (`publish`'s `message`, unchanged) for
///   every notice published afterwards, by any process, in publishing
///   order; [`KnownGenerations::lost`] as soon as it may have missed one
///   (connection dropped), and `subscribed` again once it is back. It must
///   never leave a table marked subscribed while notices can be lost
///   unseen: that is what makes serving from known generations safe. A
///   message lost with the connection up is caught by its number.
#[async_trait]
pub trait Backplane: Send + Sync + std::fmt::Debug + 'static {
    /// Short name for errors and reports (`"redis-pubsub"`, `"local"`).
    fn name(&self) -> &str;

    /// Hands `message` (a numbered notice, opaque to the backplane) to every
    /// subscriber, this process included.
    async fn publish(&self, message: &[u8]) -> Result<()>;

    /// Starts feeding `table`; see the contract.
    fn subscribe(&self, table: Arc<KnownGenerations>) -> Result<()>;
}

#[async_trait]
impl<T: Backplane + ?Sized> Backplane for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn publish(&self, message: &[u8]) -> Result<()> {
        (**self).publish(message).await
    }
    fn subscribe(&self, table: Arc<KnownGenerations>) -> Result<()> {
        (**self).subscribe(table)
    }
}
