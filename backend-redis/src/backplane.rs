//! [`RedisBackplane`]: the two-tier cache's backplane on Redis pub/sub.
//!
//! Every process publishes a notice (`PUBLISH <channel> <notice>`) after it
//! changed a generation, numbered in its own sequence (a subscriber that
//! sees a number skipped forgets what it knows), and keeps one subscriber
//! connection on the same channel. The subscriber task marks the process's
//! table
//! ([`KnownGenerations`]) subscribed only once the server confirmed the
//! `SUBSCRIBE`, and lost the moment the connection ends, then reconnects
//! every [`RedisBackplane::reconnect_delay`] until it is back: reads fall
//! back to L2 generations in between.
//!
//! On a Redis Cluster, `PUBLISH` reaches every node's subscribers, so any
//! one node's `redis://` URL serves as the backplane URL.
//!
//! Why notices and not keyspace notifications: those need
//! `notify-keyspace-events` in the server's configuration, which managed
//! Redis often forbids; a notice from the writer needs nothing.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cache_core::async_trait;
use cache_core::tier::{Backplane, KnownGenerations};
use cache_core::{Error, Result};
use futures::StreamExt;
use redis::aio::ConnectionManager;
use redis::Client;
use tokio::task::JoinHandle;

use crate::config::redact_url;

/// How long a publish may take before it counts as failed.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause between two attempts to re-establish a dropped subscription.
pub const DEFAULT_RECONNECT_DELAY: Duration = Duration::from_millis(100);

const NAME: &str = "redis-pubsub";

/// A backplane on Redis pub/sub: notices out through `PUBLISH`, in through
/// one reconnecting subscriber task per table it feeds.
pub struct RedisBackplane {
    client: Client,
    publisher: ConnectionManager,
    channel: String,
    url: String,
    publish_timeout: Duration,
    reconnect_delay: Duration,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("url", &self.url)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

fn unavailable(url: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Unavailable {
        backend: NAME.to_owned(),
        key: Some(url.to_owned()),
        source: Box::new(e),
    }
}

impl RedisBackplane {
    /// Connects the publishing side to the server at `url` (a single-node
    /// `redis://` URL) on `channel`. Subscribing starts when a
    /// [`TwoTier`](cache_core::tier::TwoTier) is built with it, and needs a
    /// Tokio runtime.
    pub async fn connect(url: &str, channel: &str) -> Result<Self> {
        let shown = redact_url(url);
        let client = Client::open(url).map_err(|e| Error::Config {
            backend: NAME.to_owned(),
            message: format!("{shown}: {e}"),
        })?;
        let publisher = tokio::time::timeout(DEFAULT_PUBLISH_TIMEOUT * 4, ConnectionManager::new(client.clone()))
            .await
            .map_err(|_| Error::Timeout {
                backend: NAME.to_owned(),
                key: Some(shown.clone()),
                after: DEFAULT_PUBLISH_TIMEOUT * 4,
            })?
            .map_err(|e| unavailable(&shown, e))?;
        Ok(RedisBackplane {
            client,
            publisher,
            channel: channel.to_owned(),
            url: shown,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
            reconnect_delay: DEFAULT_RECONNECT_DELAY,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Sets the pause between reconnection attempts (builder style).
    #[must_use]
    pub fn with_reconnect_delay(mut self, d: Duration) -> Self {
        self.reconnect_delay = d;
        self
    }

    /// The pause between reconnection attempts.
    pub fn reconnect_delay(&self) -> Duration {
        self.reconnect_delay
    }

    /// The channel notices travel on.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

impl Drop for RedisBackplane {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}

/// Keeps `table` fed until it is dropped: subscribe, relay, and on a drop
/// mark it lost and start again.
async fn listen(client: Client, channel: String, table: Weak<KnownGenerations>, delay: Duration) {
    loop {
        if table.strong_count() == 0 {
            return;
        }
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                // Confirmed: every notice published from now on reaches us.
                if let Some(t) = table.upgrade() {
                    t.subscribed();
                }
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Some(t) = table.upgrade() else { return };
                    t.receive(msg.get_payload_bytes());
                }
            }
        }
        // The connection ended (or never came up): we may miss notices.
        if let Some(t) = table.upgrade() {
            t.lost();
        }
        tokio::time::sleep(delay).await;
    }
}

#[async_trait]
impl Backplane for RedisBackplane {
    fn name(&self) -> &str {
        NAME
    }

    async fn publish(&self, message: &[u8]) -> Result<()> {
        let mut conn = self.publisher.clone();
        let cmd = redis::cmd("PUBLISH").arg(&self.channel).arg(message).to_owned();
        match tokio::time::timeout(self.publish_timeout, cmd.query_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable(&self.url, e)),
            Err(_) => Err(Error::Timeout {
                backend: NAME.to_owned(),
                key: Some(self.channel.clone()),
                after: self.publish_timeout,
            }),
        }
    }

    fn subscribe(&self, table: Arc<KnownGenerations>) -> Result<()> {
        let handle = tokio::runtime::Handle::try_current().map_err(|e| Error::Config {
            backend: NAME.to_owned(),
            message: format!("subscribing needs a Tokio runtime: {e}"),
        })?;
        let task = handle.spawn(listen(
            self.client.clone(),
            self.channel.clone(),
            Arc::downgrade(&table),
            self.reconnect_delay,
        ));
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(task);
        Ok(())
    }
}
