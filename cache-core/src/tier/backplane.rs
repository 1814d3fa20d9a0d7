//! The backplane: how a process tells the others that a generation changed.
//! A trait, so Redis pub/sub (`backend_redis::RedisBackplane`) and the
//! simulator's in-process hub with a modelled delivery latency
//! ([`LocalBackplane`]) are interchangeable.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::known::{KnownGenerations, Notice};
use crate::clock::Clock;
use crate::error::Result;

/// A channel every process publishes generation changes on and listens to.
///
/// # Contract
///
/// - [`publish`](Backplane::publish) returns once the notice is handed to
///   the channel; an error means some processes may never see it.
/// - After [`subscribe`](Backplane::subscribe), the backplane calls
///   [`KnownGenerations::subscribed`] once the subscription is live, then
///   [`KnownGenerations::notice`] for every notice published afterwards, by
///   any process, in publishing order; [`KnownGenerations::lost`] as soon as
///   it may have missed one (connection dropped), and `subscribed` again
///   once it is back. It must never leave a table marked subscribed while
///   notices can be lost: that is what makes serving from known
///   generations safe.
#[async_trait]
pub trait Backplane: Send + Sync + std::fmt::Debug + 'static {
    /// Short name for errors and reports (`"redis-pubsub"`, `"local"`).
    fn name(&self) -> &str;

    /// Tells every subscriber (this process included) about `notice`.
    async fn publish(&self, notice: &Notice) -> Result<()>;

    /// Starts feeding `table`; see the contract.
    fn subscribe(&self, table: Arc<KnownGenerations>) -> Result<()>;
}

#[async_trait]
impl<T: Backplane + ?Sized> Backplane for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    async fn publish(&self, notice: &Notice) -> Result<()> {
        (**self).publish(notice).await
    }
    fn subscribe(&self, table: Arc<KnownGenerations>) -> Result<()> {
        (**self).subscribe(table)
    }
}

/// An in-process backplane: every [`TwoTier`](super::TwoTier) built with a
/// clone of it hears every other's notices after `delay` on `clock`. The
/// simulator models the delivery latency of a real backplane with it in
/// virtual time; tests use it without a server. Its subscription never
/// drops (unless [`Self::drop_subscriptions`] says so).
#[derive(Debug, Clone)]
pub struct LocalBackplane {
    hub: Arc<Mutex<Vec<Weak<KnownGenerations>>>>,
    delay: Duration,
    clock: Arc<dyn Clock>,
}

impl LocalBackplane {
    /// A hub delivering after `delay` as `clock` counts time.
    pub fn new(delay: Duration, clock: Arc<dyn Clock>) -> Self {
        LocalBackplane {
            hub: Arc::new(Mutex::new(Vec::new())),
            delay,
            clock,
        }
    }

    /// The modelled delivery latency.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    fn tables(&self) -> Vec<Arc<KnownGenerations>> {
        let mut hub = self.hub.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        hub.retain(|w| w.strong_count() > 0);
        hub.iter().filter_map(Weak::upgrade).collect()
    }

    /// Marks every subscription lost (a test of the fallback path);
    /// [`Self::restore_subscriptions`] brings them back.
    pub fn drop_subscriptions(&self) {
        self.tables().iter().for_each(|t| t.lost());
    }

    /// Re-establishes every subscription.
    pub fn restore_subscriptions(&self) {
        self.tables().iter().for_each(|t| t.subscribed());
    }
}

#[async_trait]
impl Backplane for LocalBackplane {
    fn name(&self) -> &str {
        "local"
    }

    async fn publish(&self, notice: &Notice) -> Result<()> {
        let at = self.clock.now() + self.delay;
        for t in self.tables() {
            if self.delay.is_zero() {
                t.notice(notice);
            } else {
                t.notice_at(notice.clone(), at);
            }
        }
        Ok(())
    }

    fn subscribe(&self, table: Arc<KnownGenerations>) -> Result<()> {
        table.subscribed();
        self.hub
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::downgrade(&table));
        Ok(())
    }
}
