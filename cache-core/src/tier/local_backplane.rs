//! An in-process [`Backplane`] with a modelled delivery latency and faults,
//! for the simulator and tests (not part of the API: `unstable-internals`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;

use super::backplane::Backplane;
use super::known::KnownGenerations;
use crate::clock::Clock;
use crate::error::{Error, Result};

/// An in-process backplane: every [`TwoTier`](super::TwoTier) built with a
/// clone of it hears every other's notices after `delay` on `clock`. The
/// simulator models the delivery latency of a real backplane with it in
/// virtual time; tests use it without a server. Its subscription never
/// drops (unless [`Self::drop_subscriptions`] says so), and no notice is
/// lost unless [`Self::lose_next`] or [`Self::fail_next`] say so.
#[derive(Debug, Clone)]
pub struct LocalBackplane {
    hub: Arc<Mutex<Vec<Weak<KnownGenerations>>>>,
    delay: Duration,
    clock: Arc<dyn Clock>,
    /// Faults of this endpoint (see [`Self::endpoint`]).
    lose: Arc<AtomicU32>,
    fail: Arc<AtomicU32>,
}

/// Takes one from `n` if it is above zero.
fn take_one(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
        .is_ok()
}

impl LocalBackplane {
    /// A hub delivering after `delay` as `clock` counts time.
    pub fn new(delay: Duration, clock: Arc<dyn Clock>) -> Self {
        LocalBackplane {
            hub: Arc::new(Mutex::new(Vec::new())),
            delay,
            clock,
            lose: Arc::new(AtomicU32::new(0)),
            fail: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Another endpoint on the same hub, with faults of its own: give each
    /// process its endpoint, and [`Self::lose_next`] loses that process's
    /// notices only. (A clone shares the faults of the endpoint it was
    /// cloned from.)
    pub fn endpoint(&self) -> LocalBackplane {
        LocalBackplane {
            hub: self.hub.clone(),
            delay: self.delay,
            clock: self.clock.clone(),
            lose: Arc::new(AtomicU32::new(0)),
            fail: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The next `n` notices published through this endpoint vanish on the
    /// way: `publish` succeeds and nobody hears them (a message dropped
    /// while every connection stayed up). Their numbers are spent, so a
    /// subscriber notices the loss at this publisher's next notice.
    pub fn lose_next(&self, n: u32) {
        self.lose.fetch_add(n, Ordering::Relaxed);
    }

    /// The next `n` attempts to publish through this endpoint fail with
    /// [`Error::Unavailable`] and reach nobody (a backplane server that is
    /// down).
    pub fn fail_next(&self, n: u32) {
        self.fail.fetch_add(n, Ordering::Relaxed);
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

    async fn publish(&self, message: &[u8]) -> Result<()> {
        if take_one(&self.fail) {
            return Err(Error::Unavailable {
                backend: "local".to_owned(),
                key: None,
                source: "the backplane is down (a modelled fault)".into(),
            });
        }
        if take_one(&self.lose) {
            return Ok(());
        }
        let at = self.clock.now() + self.delay;
        for t in self.tables() {
            if self.delay.is_zero() {
                t.receive(message);
            } else {
                t.receive_at(message.to_vec(), at);
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
