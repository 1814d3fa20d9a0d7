//! The tracker's connections: one per server (per master of a cluster),
//! the slot map, what each connection's push handler does, and the task
//! that remakes them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;

use cache_core::tier::KnownGenerations;
use cache_core::{Error, Result};
use redis::aio::MultiplexedConnection;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion};
use redis::{PushInfo, PushKind, RedisError, Value};

use crate::config::{redact_url, Target};
use crate::errors::{map_error, Subject};

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;

/// One server's tracking connection.
#[derive(Debug)]
pub(super) struct Node {
    /// The table's source number for what is read through it.
    pub(super) source: u32,
    /// `host:port`, for errors.
    pub(super) addr: String,
    pub(super) info: ConnectionInfo,
    pub(super) state: Mutex<NodeState>,
}

#[derive(Default)]
pub(super) struct NodeState {
    /// The live connection, once tracking is on.
    pub(super) conn: Option<MultiplexedConnection>,
    /// Bumped at every attempt and every loss: a push handler acts only for
    /// the connection it was made for.
    pub(super) incarnation: u64,
    /// The server's id of the live connection (`CLIENT ID`).
    pub(super) client_id: Option<i64>,
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
    pub(super) fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The masters and which owns each slot (a single node: one, owning all).
#[derive(Debug, Default)]
pub(super) struct Topology {
    pub(super) nodes: Vec<Arc<Node>>,
    /// Cluster only: slot → index in `nodes`.
    pub(super) slots: HashMap<Slot, usize>,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) name: &'static str,
    /// The URL, password hidden.
    pub(super) url: String,
    pub(super) target: Target,
    pub(super) connect_timeout: Duration,
    pub(super) command_timeout: Duration,
    pub(super) reconnect_delay: Duration,
    pub(super) topology: RwLock<Arc<Topology>>,
    pub(super) tables: Mutex<Vec<Weak<KnownGenerations>>>,
    /// Rings when a connection dropped or the slot map is stale.
    pub(super) wake: tokio::sync::Notify,
    /// The slot map needs reading again.
    pub(super) refresh: AtomicBool,
    pub(super) next_source: AtomicU32,
}

impl Shared {
    pub(super) fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn tables(&self) -> Vec<Arc<KnownGenerations>> {
        let mut t = self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        t.retain(|w| w.strong_count() > 0);
        t.iter().filter_map(Weak::upgrade).collect()
    }

    pub(super) fn error(&self, e: RedisError) -> Error {
        map_error(self.name, self.command_timeout, e, Subject::Url(&self.url))
    }

    pub(super) fn unavailable(&self, why: String) -> Error {
        Error::Unavailable {
            backend: self.name.to_owned(),
            key: Some(self.url.clone()),
            source: why.into(),
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

/// Reads the masters and the slot map (a single node: itself) and installs
/// them, keeping the nodes (and their connections) still there.
pub(super) async fn discover(shared: &Arc<Shared>) -> Result<()> {
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
                        for t in &tables {
                            t.changed(&key);
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
pub(super) async fn connect_node(shared: &Arc<Shared>, node: &Arc<Node>) -> Result<()> {
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
pub(super) async fn maintain(shared: Weak<Shared>) {
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
