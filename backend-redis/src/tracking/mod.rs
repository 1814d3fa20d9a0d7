//! [`RedisTracker`]: Redis's server-assisted client-side caching as the
//! [`Tracker`] of a [`TwoTier`](cache_core::tier::TwoTier).
//!
//! One RESP3 connection per server (per master of a cluster) with
//! `CLIENT TRACKING ON`: the generation reads of the two tiers go through
//! it, the server remembers which keys it read, and pushes an
//! invalidation on that same connection when one of them changes (by any
//! client, by expiry or eviction). Each connection is a source of the
//! process's [`KnownGenerations`]: invalidations make the table forget the
//! key, a connection that closes or breaks makes it forget everything read
//! through it (the server forgets its tracking with it), and a background
//! task makes it again, re-enables tracking, and only then lets reads
//! through it be trusted. Meanwhile reads go to L2 untracked.
//!
//! # Why our own map and not redis-rs's client-side cache
//!
//! redis-rs 1.x has a client-side cache (`cache-aio`, `CacheConfig`); it
//! does not fit, for three reasons read in its source (1.8):
//! - it caches inside the connection, keyed by command; the two tiers need
//!   the generations in the table their sans-IO read path and the
//!   simulator share (one read path), trusted per connection (per node);
//! - it stores a reply after the reply arrives, in the caller's task, while
//!   invalidations are applied by the connection's reader task: an
//!   invalidation pushed right after the reply can be applied before the
//!   store, which then re-installs the invalidated value for good (the race
//!   below; it keeps no epoch to catch it);
//! - it adds a `PTTL` per key read.
//!
//! So this module uses redis-rs's RESP3 push channel
//! ([`AsyncConnectionConfig::set_push_sender`](redis::AsyncConnectionConfig::set_push_sender),
//! a closure the reader task calls for every push, and once with
//! `PushKind::Disconnection` when the connection ends) and the table the
//! two tiers already keep.
//!
//! # The race between a read and an invalidation
//!
//! A read of generation `g` (an `MGET` through the tracking connection)
//! notes the table's epoch before it is sent and learns `g` after the
//! reply only if nothing touched `g` (nor this connection) since. Redis
//! executes commands one at a time and writes everything it sends a
//! connection in order; the `MGET` starts tracking `g` for the connection
//! when it executes. So for a write of `g`:
//! - executed before the `MGET`: the reply carries the new value;
//! - executed after it: its invalidation is queued on the connection after
//!   the `MGET`'s reply, so the push handler applies it after the read was
//!   sent. If it is applied before the read learns, it moved the epoch and
//!   named `g`: the read does not learn `g`. If after, it removes what the
//!   read learnt. Either way no value the server already invalidated is
//!   installed; the window is the invalidation's delivery.
//! - A connection that ends may have lost invalidations: the handler marks
//!   the source down (forgetting what it vouched for) before any later
//!   frame could be read, and a read that began before it cannot learn
//!   (the source moved). Tracking is re-enabled on a new connection before
//!   the source is marked up again.
//!
//! `backend-redis/tests/tracking.rs` tests the race on a real server, by
//! holding a read between its reply and its learning while another client
//! writes and the invalidation arrives.
//!
//! # Clusters
//!
//! One tracking connection per master (from `CLUSTER SLOTS`), each its own
//! source: a key is read through the master owning its slot (one `MGET`
//! per slot), and losing one master's connection forgets only the keys
//! read through it. A `MOVED`/`ASK` reply (slots migrating) fails the read
//! (the two tiers then read L2) and makes the background task read the
//! slot map again.
//!
//! # Limits
//!
//! - Redis 6 or later (RESP3, `CLIENT TRACKING`); a proxy that does not
//!   pass pushes through cannot be tracked (use the backplane).
//! - `rediss://` is checked against the public roots; a private CA given to
//!   [`RedisBackendBuilder::tls_root_certificates`](crate::RedisBackendBuilder::tls_root_certificates)
//!   is not passed to the tracker yet.
//! - Connect and command timeouts are the backend's defaults
//!   ([`DEFAULT_CONNECT_TIMEOUT`](crate::DEFAULT_CONNECT_TIMEOUT),
//!   [`DEFAULT_COMMAND_TIMEOUT`](crate::DEFAULT_COMMAND_TIMEOUT)); a read
//!   that times out falls back to L2.

mod nodes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cache_core::tier::{KnownGenerations, TrackedValue, Tracker};
use cache_core::{async_trait, Bytes, Error, Key, Result};
use futures::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster_routing::Slot;
use redis::{RedisError, ServerErrorKind, Value};
use tokio::task::JoinHandle;

use crate::config::{parse_target, redact_url, Target, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT};
use nodes::{connect_node, discover, maintain, Shared, Topology};

/// Pause before a dropped tracking connection is made again.
pub const DEFAULT_TRACKING_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// Redis client tracking for a [`TwoTier`](cache_core::tier::TwoTier); see
/// the module docs. One per process: give it to
/// [`TwoTierBuilder::tracking`](cache_core::tier::TwoTierBuilder::tracking).
///
/// ```no_run
/// use std::sync::Arc;
/// use backend_redis::{RedisBackend, RedisTracker};
/// use cache_core::tier::TwoTier;
/// # async fn demo(l1: Arc<dyn cache_core::Backend>) -> cache_core::Result<()> {
/// let url = "redis://127.0.0.1:6379/0";
/// let l2 = Arc::new(RedisBackend::connect(url).await?);
/// let tracker = Arc::new(RedisTracker::connect(url).await?);
/// let tiers = TwoTier::builder(l1, l2).tracking(tracker).build()?;
/// # let _ = tiers; Ok(()) }
/// ```
pub struct RedisTracker {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTracker")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisTracker {
    fn drop(&mut self) {
        if let Some(t) = self
            .task
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
        // The connections' reader tasks end once their handles are gone.
        for n in &self.shared.topology().nodes {
            n.lock().conn = None;
        }
    }
}

impl RedisTracker {
    /// Connects tracking connections for `url` (`redis://…`, `rediss://…`,
    /// `redis+cluster://…`: the URL forms of [`RedisBackend`](crate::RedisBackend)),
    /// one per server, with tracking on. Needs a Tokio runtime (a task
    /// remakes dropped connections). Fails when no server can be tracked.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DEFAULT_TRACKING_RECONNECT_DELAY).await
    }

    /// [`Self::connect`], pausing `reconnect_delay` before a dropped
    /// connection is made again.
    pub async fn connect_with(url: &str, reconnect_delay: Duration) -> Result<Self> {
        let target = parse_target(url)?;
        let name = match target {
            Target::Single(_) => "redis-tracking",
            Target::Cluster(_) => "redis-cluster-tracking",
        };
        let shared = Arc::new(Shared {
            name,
            url: redact_url(url),
            target,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            reconnect_delay,
            topology: RwLock::new(Arc::new(Topology::default())),
            tables: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
            refresh: AtomicBool::new(false),
            next_source: AtomicU32::new(0),
        });
        let handle = tokio::runtime::Handle::try_current().map_err(|e| Error::Config {
            backend: name.to_owned(),
            message: format!("tracking needs a Tokio runtime: {e}"),
        })?;
        discover(&shared).await?;
        let nodes = shared.topology().nodes.clone();
        let results = futures::future::join_all(nodes.iter().map(|n| connect_node(&shared, n))).await;
        if !results.iter().any(Result::is_ok) {
            let why: Vec<String> = nodes
                .iter()
                .zip(results)
                .filter_map(|(n, r)| r.err().map(|e| format!("{}: {e}", n.addr)))
                .collect();
            return Err(shared.unavailable(format!("no tracking connection: {}", why.join("; "))));
        }
        let task = handle.spawn(maintain(Arc::downgrade(&shared)));
        Ok(RedisTracker {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// Each live tracking connection: its source number (see
    /// [`KnownGenerations`], "Sources"), the server's `host:port` and the
    /// server's `CLIENT ID` for it (for operators, and tests that
    /// `CLIENT KILL` one).
    pub fn connections(&self) -> Vec<(u32, String, i64)> {
        self.shared
            .topology()
            .nodes
            .iter()
            .filter_map(|n| n.lock().client_id.map(|id| (n.source, n.addr.clone(), id)))
            .collect()
    }

    /// The source number of the connection `key` is read through (the
    /// master owning its slot); `None` while the slot map has no owner.
    pub fn source_of(&self, key: &str) -> Option<u32> {
        let topo = self.shared.topology();
        let i = if topo.slots.is_empty() {
            0
        } else {
            *topo.slots.get(&Slot::for_key(key))?
        };
        topo.nodes.get(i).map(|n| n.source)
    }

    /// Returns once every invalidation the servers sent before this call
    /// has reached the tables: a `PING` on each live connection, whose reply
    /// comes after them. For tests and the simulator; the two tiers never
    /// wait for it.
    pub async fn settle(&self) -> Result<()> {
        let conns: Vec<MultiplexedConnection> = self
            .shared
            .topology()
            .nodes
            .iter()
            .filter_map(|n| n.lock().conn.clone())
            .collect();
        try_join_all(conns.into_iter().map(|mut c| async move {
            redis::cmd("PING")
                .query_async::<Value>(&mut c)
                .await
                .map_err(|e| self.shared.error(e))
        }))
        .await?;
        Ok(())
    }
}

/// True for a reply saying the slot lives elsewhere now.
fn is_redirect(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

#[async_trait]
impl Tracker for RedisTracker {
    fn name(&self) -> &str {
        self.shared.name
    }

    fn attach(&self, table: Arc<KnownGenerations>) -> Result<()> {
        self.shared
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::downgrade(&table));
        for n in &self.shared.topology().nodes {
            // Under the node's lock, so a drop cannot slip in between.
            let st = n.lock();
            if st.conn.is_some() {
                table.connected(n.source);
            }
        }
        Ok(())
    }

    async fn read(&self, keys: &[Key]) -> Result<Option<Vec<TrackedValue>>> {
        let topo = self.shared.topology();
        // One MGET per node, and per slot on a cluster (multi-key commands
        // must stay in one slot).
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        if topo.slots.is_empty() {
            groups.push((0, (0..keys.len()).collect()));
        } else {
            let mut by_slot: HashMap<Slot, Vec<usize>> = HashMap::new();
            for (i, k) in keys.iter().enumerate() {
                by_slot.entry(Slot::for_key(k.as_str())).or_default().push(i);
            }
            for (slot, idx) in by_slot {
                let Some(&node) = topo.slots.get(&slot) else {
                    // A slot no master owns: the map is stale.
                    self.shared.refresh.store(true, Ordering::Relaxed);
                    self.shared.wake.notify_one();
                    return Ok(None);
                };
                groups.push((node, idx));
            }
        }
        let mut sends = Vec::with_capacity(groups.len());
        for (node, idx) in groups {
            let Some(n) = topo.nodes.get(node) else { return Ok(None) };
            let Some(conn) = n.lock().conn.clone() else {
                return Ok(None);
            };
            sends.push((n.source, conn, idx));
        }
        let shared = &self.shared;
        let replies = try_join_all(sends.into_iter().map(|(source, mut conn, idx)| async move {
            let mut cmd = redis::cmd("MGET");
            for &i in &idx {
                cmd.arg(keys[i].as_str());
            }
            match tokio::time::timeout(shared.command_timeout, cmd.query_async::<Vec<Option<Bytes>>>(&mut conn)).await {
                Ok(Ok(values)) if values.len() == idx.len() => Ok((source, idx, values)),
                Ok(Ok(values)) => {
                    Err(shared.unavailable(format!("MGET of {} keys answered {} values", idx.len(), values.len())))
                }
                Ok(Err(e)) => {
                    if is_redirect(&e) {
                        shared.refresh.store(true, Ordering::Relaxed);
                        shared.wake.notify_one();
                    }
                    Err(shared.error(e))
                }
                Err(_) => Err(Error::Timeout {
                    backend: shared.name.to_owned(),
                    key: Some(shared.url.clone()),
                    after: shared.command_timeout,
                }),
            }
        }))
        .await?;
        let mut out: Vec<TrackedValue> = vec![(None, 0); keys.len()];
        for (source, idx, values) in replies {
            for (i, v) in idx.into_iter().zip(values) {
                out[i] = (v, source);
            }
        }
        Ok(Some(out))
    }
}
