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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use cache_core::tier::{KnownGenerations, Notice, TrackedValue, Tracker};
use cache_core::{async_trait, Bytes, Error, Key, Result};
use futures::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion};
use redis::{PushInfo, PushKind, RedisError, ServerErrorKind, Value};
use tokio::task::JoinHandle;

use crate::backend::{map_error, Subject};
use crate::config::{parse_target, redact_url, Target, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT};

/// Pause before a dropped tracking connection is made again.
pub const DEFAULT_TRACKING_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;

/// One server's tracking connection.
#[derive(Debug)]
struct Node {
    /// The table's source number for what is read through it.
    source: u32,
    /// `host:port`, for errors.
    addr: String,
    info: ConnectionInfo,
    state: Mutex<NodeState>,
}

#[derive(Default)]
struct NodeState {
    /// The live connection, once tracking is on.
    conn: Option<MultiplexedConnection>,
    /// Bumped at every attempt and every loss: a push handler acts only for
    /// the connection it was made for.
    incarnation: u64,
    /// The server's id of the live connection (`CLIENT ID`).
    client_id: Option<i64>,
}

impl std::fmt::Debug for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeState")
            .field("up", &self.conn.is_some())
            .field("incarnation", &self.incarnation)
            .finish()
    }
}

impl Node {
    fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The masters and which owns each slot (a single node: one, owning all).
#[derive(Debug, Default)]
struct Topology {
    nodes: Vec<Arc<Node>>,
    /// Cluster only: slot → index in `nodes`.
    slots: HashMap<Slot, usize>,
}

#[derive(Debug)]
struct Shared {
    name: &'static str,
    /// The URL, password hidden.
    url: String,
    target: Target,
    connect_timeout: Duration,
    command_timeout: Duration,
    reconnect_delay: Duration,
    topology: RwLock<Arc<Topology>>,
    tables: Mutex<Vec<Weak<KnownGenerations>>>,
    /// Rings when a connection dropped or the slot map is stale.
    wake: tokio::sync::Notify,
    /// The slot map needs reading again.
    refresh: AtomicBool,
    next_source: AtomicU32,
}

impl Shared {
    fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn tables(&self) -> Vec<Arc<KnownGenerations>> {
        let mut t = self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.retain(|w| w.strong_count() > 0);
        t.iter().filter_map(Weak::upgrade).collect()
    }

    fn error(&self, e: RedisError) -> Error {
        map_error(self.name, self.command_timeout, e, Subject::Url(&self.url))
    }

    fn unavailable(&self, why: String) -> Error {
        Error::Unavailable {
            backend: self.name.to_owned(),
            key: Some(self.url.clone()),
            source: why.into(),
        }
    }
}

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

/// `info` talking RESP3 (pushes need it) at `host:port` (a cluster node).
fn resp3(info: ConnectionInfo, at: Option<(&str, u16)>) -> Result<ConnectionInfo, String> {
    let redis = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let Some((host, port)) = at else {
        return Ok(info.set_redis_settings(redis));
    };
    let addr = match info.addr() {
        ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host.to_owned(), port),
        ConnectionAddr::TcpTls {
            insecure, tls_params, ..
        } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        other => return Err(format!("a cluster node at {other} is not a TCP address")),
    };
    Ok(info.set_addr(addr).set_redis_settings(redis))
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

/// Reads the masters and the slot map (a single node: itself) and installs
/// them, keeping the nodes (and their connections) still there.
async fn discover(shared: &Arc<Shared>) -> Result<()> {
    let open = |url: &str| -> Result<ConnectionInfo> {
        url.into_connection_info().map_err(|e| Error::Config {
            backend: shared.name.to_owned(),
            message: format!("{}: {e}", redact_url(url)),
        })
    };
    let seeds = match &shared.target {
        Target::Single(url) => {
            if !shared.topology().nodes.is_empty() {
                return Ok(());
            }
            let info = resp3(open(url)?, None).map_err(|m| shared.unavailable(m))?;
            let node = new_node(shared, info.addr().to_string(), info);
            *shared
                .topology
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Topology {
                nodes: vec![node],
                slots: HashMap::new(),
            });
            return Ok(());
        }
        Target::Cluster(seeds) => seeds,
    };
    let mut last = None;
    for seed in seeds {
        let info = open(seed)?;
        match cluster_slots(shared, info.clone()).await {
            Ok(ranges) => return install(shared, &info, ranges),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| shared.unavailable("no seed nodes".into())))
}

fn new_node(shared: &Shared, addr: String, info: ConnectionInfo) -> Arc<Node> {
    Arc::new(Node {
        source: shared.next_source.fetch_add(1, Ordering::Relaxed),
        addr,
        info,
        state: Mutex::new(NodeState::default()),
    })
}

/// `CLUSTER SLOTS` through `info`: (first slot, last slot, master host,
/// master port) per range.
async fn cluster_slots(shared: &Shared, info: ConnectionInfo) -> Result<Vec<(u16, u16, String, u16)>> {
    let fetch = async {
        let client = Client::open(info).map_err(|e| shared.error(e))?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| shared.error(e))?;
        redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Value>(&mut conn)
            .await
            .map_err(|e| shared.error(e))
    };
    let reply = tokio::time::timeout(shared.connect_timeout, fetch)
        .await
        .map_err(|_| shared.unavailable("CLUSTER SLOTS timed out".into()))??;
    let Value::Array(ranges) = reply else {
        return Err(shared.unavailable(format!("CLUSTER SLOTS answered {reply:?}")));
    };
    let mut out = Vec::new();
    for r in ranges {
        let Value::Array(items) = r else { continue };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (items.first(), items.get(1), items.get(2))
        else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => continue,
        };
        let (Some(Value::Int(port)), Ok(start), Ok(end)) = (master.get(1), u16::try_from(*start), u16::try_from(*end))
        else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else { continue };
        out.push((start, end.min(SLOTS - 1), host, port));
    }
    Ok(out)
}

/// Installs a cluster's slot map, keeping the nodes still there; tables
/// forget what the nodes now gone vouched for.
fn install(shared: &Arc<Shared>, seed: &ConnectionInfo, ranges: Vec<(u16, u16, String, u16)>) -> Result<()> {
    let old = shared.topology();
    let mut nodes: Vec<Arc<Node>> = Vec::new();
    let mut slots = HashMap::new();
    for (start, end, host, port) in ranges {
        let addr = format!("{host}:{port}");
        let i = match nodes.iter().position(|n| n.addr == addr) {
            Some(i) => i,
            None => {
                let node = match old.nodes.iter().find(|n| n.addr == addr) {
                    Some(n) => n.clone(),
                    None => {
                        let info = resp3(seed.clone(), Some((&host, port))).map_err(|m| shared.unavailable(m))?;
                        new_node(shared, addr, info)
                    }
                };
                nodes.push(node);
                nodes.len() - 1
            }
        };
        for s in start..=end {
            if let Some(slot) = Slot::new(s) {
                slots.insert(slot, i);
            }
        }
    }
    for gone in old.nodes.iter().filter(|o| !nodes.iter().any(|n| Arc::ptr_eq(n, o))) {
        let mut st = gone.lock();
        st.conn = None;
        st.incarnation += 1;
        for t in shared.tables() {
            t.disconnected(gone.source);
        }
    }
    *shared
        .topology
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Topology { nodes, slots });
    Ok(())
}

/// What the reader task of connection `incarnation` of `node` does with
/// each push: invalidations to the tables, and the end of the connection.
fn push_handler(
    shared: Weak<Shared>,
    node: Weak<Node>,
    incarnation: u64,
) -> impl Fn(PushInfo) -> std::result::Result<(), redis::aio::SendError> + Send + Sync + 'static {
    move |push: PushInfo| {
        let (Some(shared), Some(node)) = (shared.upgrade(), node.upgrade()) else {
            return Err(redis::aio::SendError);
        };
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    let tables = shared.tables();
                    for k in keys {
                        let key = match k {
                            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                            Value::SimpleString(s) => s.clone(),
                            _ => continue,
                        };
                        let notice = Notice::Changed(key);
                        for t in &tables {
                            t.notice(&notice);
                        }
                    }
                }
                // A flush: everything this server tracked is gone.
                _ => {
                    let st = node.lock();
                    if st.incarnation == incarnation {
                        for t in shared.tables() {
                            t.connected(node.source);
                        }
                    }
                }
            },
            PushKind::Disconnection => {
                let mut st = node.lock();
                if st.incarnation == incarnation {
                    st.conn = None;
                    st.client_id = None;
                    st.incarnation += 1;
                    for t in shared.tables() {
                        t.disconnected(node.source);
                    }
                    shared.wake.notify_one();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Makes `node`'s tracking connection: RESP3, `CLIENT TRACKING ON`, then
/// marks its source up in every table (unless it died meanwhile).
async fn connect_node(shared: &Arc<Shared>, node: &Arc<Node>) -> Result<()> {
    let incarnation = {
        let mut st = node.lock();
        st.incarnation += 1;
        st.incarnation
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.connect_timeout))
        .set_response_timeout(Some(shared.command_timeout))
        .set_push_sender(push_handler(Arc::downgrade(shared), Arc::downgrade(node), incarnation));
    let make = async {
        let client = Client::open(node.info.clone())?;
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut conn).await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .query_async::<()>(&mut conn)
            .await?;
        Ok::<_, RedisError>((conn, id))
    };
    let (conn, id) = tokio::time::timeout(shared.connect_timeout, make)
        .await
        .map_err(|_| shared.unavailable(format!("connecting to {} timed out", node.addr)))?
        .map_err(|e| shared.error(e))?;
    let mut st = node.lock();
    if st.incarnation == incarnation {
        st.conn = Some(conn);
        st.client_id = Some(id);
        for t in shared.tables() {
            t.connected(node.source);
        }
    }
    Ok(())
}

/// Remakes dropped connections (after the reconnect delay) and reads the
/// slot map again when asked, until the tracker is dropped.
async fn maintain(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        let down = s.refresh.load(Ordering::Relaxed) || s.topology().nodes.iter().any(|n| n.lock().conn.is_none());
        if !down {
            // Holding `s` across the wait is fine: dropping the tracker
            // aborts this task.
            s.wake.notified().await;
            continue;
        }
        tokio::time::sleep(s.reconnect_delay).await;
        if s.refresh.swap(false, Ordering::Relaxed) && discover(&s).await.is_err() {
            s.refresh.store(true, Ordering::Relaxed);
        }
        for n in s.topology().nodes.iter() {
            if n.lock().conn.is_none() {
                // A failure is retried on the next round.
                let _ = connect_node(&s, n).await;
            }
        }
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
