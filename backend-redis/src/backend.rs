//! [`RedisBackend`]: the [`Backend`] implementation on single nodes and
//! clusters.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use cache_core::backend::{is_expired_ttl, parse_counter};
use cache_core::key::escape_glob;
use cache_core::{async_trait, Backend, Bytes, Capabilities, Error, Key, Result, ServerStats, Ttl};
use futures::future::try_join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, Script, Value};

use crate::config::{parse_target, redact_url, RedisBackendBuilder, RedisOptions, Target};
use crate::errors::{answered_unlike_redis, map_error, Subject};

/// Keys per `SCAN` step and per `UNLINK` batch in [`RedisBackend::delete_prefix`]:
/// large enough to need few round trips, small enough that no single command
/// blocks the server for long.
const SCAN_BATCH: usize = 1000;

/// The longest TTL sent, in milliseconds (~146 million years): a longer
/// one would overflow when the server adds it to its clock (Redis answers
/// "invalid expire time"). Longer TTLs (`Duration::MAX`) are clamped to it,
/// as the contract asks.
const MAX_PX: u128 = (i64::MAX / 2) as u128;

/// Increments a counter under the core contract, atomically on the server.
///
/// Redis's own `INCRBY` creates a missing key, accepts `-5` and rejects
/// `007`, so the script checks first: missing -> 1, not ASCII digits of a
/// value in `0..=i64::MAX` -> 2, overflow -> 3 (INCRBY's own check, under
/// `pcall`, so the value is untouched); success -> `{0, digits}`. Leading
/// zeros are a valid counter here but not for INCRBY, so the value is
/// normalised first and restored if INCRBY fails. The result is read back
/// with GET because Lua numbers are doubles and would round values above
/// 2^53. `SET … KEEPTTL` and `INCRBY` both keep the TTL.
const INCR_SCRIPT: &str = r"
local v = redis.pcall('GET', KEYS[1])
if v == false then return {1} end
if type(v) ~= 'string' then return {2} end
if #v == 0 or #v > 19 or not string.find(v, '^%d+$') then return {2} end
if #v == 19 and v > '9223372036854775807' then return {2} end
local n = string.gsub(v, '^0+', '')
if n == '' then n = '0' end
if ARGV[1] == '0' then return {0, n} end
if n ~= v then redis.call('SET', KEYS[1], n, 'KEEPTTL') end
local r = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(r) == 'table' and r.err then
  if n ~= v then redis.call('SET', KEYS[1], v, 'KEEPTTL') end
  if string.find(r.err, 'overflow') then return {3} end
  return redis.error_reply(r.err)
end
return {0, redis.call('GET', KEYS[1])}
";

/// The connection: one multiplexed, auto-reconnecting connection to a single
/// node, or the cluster client's connection set (one multiplexed connection
/// per node, slot map refreshed on `MOVED`). Both are cheap handles to shared
/// state, cloned per call because their methods take `&mut self`.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A Redis or Redis Cluster [`Backend`]. Cheap to share behind an `Arc`; one
/// object serves any number of concurrent tasks over multiplexed
/// connections.
pub struct RedisBackend {
    conn: Conn,
    name: &'static str,
    options: RedisOptions,
    /// The URL with its password hidden, for errors and `Debug`.
    url: String,
    incr: Script,
}

impl fmt::Debug for RedisBackend {
    // Not derived: the client's own Debug prints connection info, password
    // included.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("options", &self.options)
            .finish()
    }
}

impl RedisBackend {
    /// A builder for `url`; see the crate docs for the URL forms.
    pub fn builder(url: impl Into<String>) -> RedisBackendBuilder {
        RedisBackendBuilder::new(url)
    }

    /// Connects to `url` with default options.
    pub async fn connect(url: impl Into<String>) -> Result<Self> {
        RedisBackendBuilder::new(url).build().await
    }

    /// The options in force.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// The URL connected to, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) async fn connect_with(builder: RedisBackendBuilder) -> Result<Self> {
        let RedisBackendBuilder {
            url,
            options,
            tls_roots_pem,
        } = builder;
        let target = parse_target(&url)?;
        let shown = redact_url(&url);
        let name = match target {
            Target::Single(_) => "redis",
            Target::Cluster(_) => "redis-cluster",
        };
        let config_err = |e: RedisError| Error::Config {
            backend: name.to_owned(),
            message: format!("{shown}: {e}"),
        };
        if tls_roots_pem.is_some() && !(url.starts_with("rediss://") || url.starts_with("rediss+cluster://")) {
            return Err(Error::Config {
                backend: name.to_owned(),
                message: format!("{shown}: TLS root certificates were given for a URL without TLS (use rediss://)"),
            });
        }
        #[cfg(feature = "tls")]
        let certs = tls_roots_pem.map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        });
        // Outer error: a URL the client rejects (a config error, returned
        // as is); inner: a failure to connect.
        let connect = async {
            match &target {
                Target::Single(u) => {
                    #[cfg(feature = "tls")]
                    let client = match certs.clone() {
                        Some(certs) => redis::Client::build_with_tls(u.as_str(), certs),
                        None => redis::Client::open(u.as_str()),
                    };
                    #[cfg(not(feature = "tls"))]
                    let client = redis::Client::open(u.as_str());
                    let client = client.map_err(|e| Ok(config_err(e)))?;
                    // Few, short reconnect retries: while the server is down a
                    // call waits for the reconnect in progress (bounded by the
                    // command timeout anyway), and once it is back the next
                    // attempt, at most 500 ms later, succeeds.
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(options.connect_timeout))
                        .set_response_timeout(Some(options.command_timeout))
                        .set_number_of_retries(2)
                        .set_min_delay(Duration::from_millis(50))
                        .set_max_delay(Duration::from_millis(500));
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map(Conn::Single)
                        .map_err(Err)
                }
                Target::Cluster(seeds) => {
                    let builder = redis::cluster::ClusterClientBuilder::new(seeds.iter().map(String::as_str));
                    #[cfg(feature = "tls")]
                    let builder = match certs.clone() {
                        Some(certs) => builder.certs(certs),
                        None => builder,
                    };
                    let client = builder
                        .connection_timeout(options.connect_timeout)
                        .response_timeout(options.command_timeout)
                        .retries(3)
                        .min_retry_wait(10)
                        .max_retry_wait(200)
                        .build()
                        .map_err(|e| Ok(config_err(e)))?;
                    client.get_async_connection().await.map(Conn::Cluster).map_err(Err)
                }
            }
        };
        let conn: Conn = match tokio::time::timeout(options.connect_timeout, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(Ok(config))) => return Err(config),
            Ok(Err(Err(e))) if answered_unlike_redis(&e) => {
                // Something listens there, but it is not Redis (an HTTP
                // server, memcached): the client's parse error alone
                // ("Unexpected `72`") does not say so.
                let read = e.to_string();
                return Err(Error::Backend {
                    backend: name.to_owned(),
                    key: None,
                    message: format!(
                        "the server at {shown} did not answer like Redis: is it a Redis server? (the client read: {})",
                        read.lines().next().unwrap_or_default()
                    ),
                });
            }
            Ok(Err(Err(e))) => return Err(map_error(name, options.command_timeout, e, Subject::Url(&shown))),
            Err(_) => {
                return Err(Error::Timeout {
                    backend: name.to_owned(),
                    key: Some(format!("connecting to {shown}")),
                    after: options.connect_timeout,
                })
            }
        };
        Ok(RedisBackend {
            conn,
            name,
            options,
            url: shown,
            incr: Script::new(INCR_SCRIPT),
        })
    }

    fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    fn error(&self, e: RedisError, subject: Subject<'_>) -> Error {
        map_error(self.name, self.options.command_timeout, e, subject)
    }

    fn timeout(&self, subject: Subject<'_>) -> Error {
        Error::Timeout {
            backend: self.name.to_owned(),
            key: Some(subject.describe()),
            after: self.options.command_timeout,
        }
    }

    /// Runs `fut` under the command timeout and maps its error.
    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
        subject: Subject<'_>,
    ) -> Result<T> {
        match tokio::time::timeout(self.options.command_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(e, subject)),
            Err(_) => Err(self.timeout(subject)),
        }
    }

    /// Sends one command, routed by its key on a cluster.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd, subject: Subject<'_>) -> Result<T> {
        let fut = async {
            match &self.conn {
                Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
                Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
            }
        };
        self.bounded(fut, subject).await
    }

    /// Sends a pipeline whose keys (on a cluster) share one slot.
    async fn query_pipeline<T: FromRedisValue>(&self, pipe: &Pipeline, subject: Subject<'_>) -> Result<T> {
        let fut = async {
            match &self.conn {
                Conn::Single(c) => pipe.query_async(&mut c.clone()).await,
                Conn::Cluster(c) => pipe.query_async(&mut c.clone()).await,
            }
        };
        self.bounded(fut, subject).await
    }

    fn check_size(&self, key: &Key, value: &Bytes) -> Result<()> {
        if value.len() > self.options.max_value_size {
            return Err(Error::ValueTooLarge {
                backend: self.name.to_owned(),
                key: key.as_str().to_owned(),
                size: value.len(),
                limit: self.options.max_value_size,
            });
        }
        Ok(())
    }

    /// `SET key value [PX ms]` (the TTL is known not to be zero).
    fn set_cmd(key: &Key, value: &Bytes, ttl: Ttl) -> Cmd {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key.as_str()).arg(value.as_ref());
        if let Some(ms) = ttl_millis(ttl) {
            cmd.arg("PX").arg(ms);
        }
        cmd
    }

    /// The indices of `keys` grouped by hash slot, in input order within each
    /// group. On a single node everything is one group.
    fn by_slot<'k>(&self, keys: impl Iterator<Item = &'k Key>) -> Vec<Vec<usize>> {
        if !self.is_cluster() {
            return vec![keys.enumerate().map(|(i, _)| i).collect()];
        }
        let mut groups: HashMap<Slot, Vec<usize>> = HashMap::new();
        for (i, k) in keys.enumerate() {
            groups.entry(Slot::for_key(k.as_str())).or_default().push(i);
        }
        groups.into_values().collect()
    }

    /// Unlinks `keys` (one command per slot group, concurrently); returns how
    /// many existed.
    async fn unlink_all(&self, keys: &[&[u8]], subject: Subject<'_>) -> Result<u64> {
        let groups: Vec<Vec<usize>> = if self.is_cluster() {
            let mut groups: HashMap<Slot, Vec<usize>> = HashMap::new();
            for (i, k) in keys.iter().enumerate() {
                groups.entry(Slot::for_key(k)).or_default().push(i);
            }
            groups.into_values().collect()
        } else {
            vec![(0..keys.len()).collect()]
        };
        let counts = try_join_all(groups.iter().map(|group| {
            let mut cmd = redis::cmd("UNLINK");
            for &i in group {
                cmd.arg(keys[i]);
            }
            async move { self.query::<u64>(&cmd, subject).await }
        }))
        .await?;
        Ok(counts.into_iter().sum())
    }

    /// The key sets of every master: on a single node, `[None]` (the one
    /// connection); on a cluster, one slot owned by each master, to route
    /// `SCAN` there through the client's slot map.
    async fn scan_targets(&self, subject: Subject<'_>) -> Result<Vec<Option<u16>>> {
        if !self.is_cluster() {
            return Ok(vec![None]);
        }
        // CLUSTER SLOTS: [[start, end, [ip, port, id, …], replicas…], …]
        let ranges: Vec<Value> = self.query(&redis::cmd("CLUSTER").arg("SLOTS").clone(), subject).await?;
        let mut by_master: HashMap<Vec<u8>, u16> = HashMap::new();
        for range in ranges {
            let Value::Array(items) = range else { continue };
            let (Some(Value::Int(start)), Some(Value::Array(master))) = (items.first(), items.get(2)) else {
                continue;
            };
            let id = match (master.first(), master.get(1)) {
                (Some(Value::BulkString(ip)), Some(Value::Int(port))) => {
                    let mut id = ip.clone();
                    id.extend_from_slice(format!(":{port}").as_bytes());
                    id
                }
                _ => continue,
            };
            let Ok(start) = u16::try_from(*start) else { continue };
            by_master.entry(id).or_insert(start);
        }
        Ok(by_master.into_values().map(Some).collect())
    }

    /// `INFO stats` of the master owning `slot` (or the single node).
    async fn info_stats(&self, slot: Option<u16>, subject: Subject<'_>) -> Result<String> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("stats");
        self.on_master(slot, cmd, subject).await
    }

    /// One `SCAN` step on the master owning `slot` (or the single node).
    async fn scan_step(
        &self,
        slot: Option<u16>,
        cursor: u64,
        pattern: &str,
        subject: Subject<'_>,
    ) -> Result<(u64, Vec<Vec<u8>>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_BATCH);
        self.on_master(slot, cmd, subject).await
    }

    /// `cmd` on the master owning `slot` of a cluster (commands about a
    /// node rather than a key), or on the single node.
    async fn on_master<T: FromRedisValue>(&self, slot: Option<u16>, cmd: Cmd, subject: Subject<'_>) -> Result<T> {
        match (&self.conn, slot) {
            (Conn::Cluster(c), Some(slot)) => {
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)));
                let mut c = c.clone();
                let value = self.bounded(c.route_command(cmd, routing), subject).await?;
                redis::from_redis_value(value).map_err(|e| self.error(e.into(), subject))
            }
            _ => self.query(&cmd, subject).await,
        }
    }
}

/// `Some(ms)` for a TTL to send as `PX ms`: sub-millisecond parts round up
/// (an entry must live at least its TTL); TTLs too long for the server's
/// clock are clamped to [`MAX_PX`]; `None` for no expiry.
fn ttl_millis(ttl: Ttl) -> Option<u64> {
    let d = ttl?;
    let ms = d.as_nanos().div_ceil(1_000_000).clamp(1, MAX_PX);
    Some(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[async_trait]
impl Backend for RedisBackend {
    fn name(&self) -> &str {
        self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_prefix_delete(true)
            .with_max_value_size(Some(self.options.max_value_size))
            // Redis expires on access with millisecond precision, and TTLs
            // are rounded up to whole milliseconds.
            .with_ttl_granularity(Duration::from_millis(1))
            .with_shared_between_processes(true)
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.query(redis::cmd("GET").arg(key.as_str()), Subject::Key(key)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.by_slot(keys.iter());
        let subject = Subject::Keys(keys);
        let answers = try_join_all(groups.into_iter().map(|group| {
            let mut cmd = redis::cmd("MGET");
            for &i in &group {
                cmd.arg(keys[i].as_str());
            }
            async move {
                let values: Vec<Option<Bytes>> = self.query(&cmd, subject).await?;
                Ok::<_, Error>((group, values))
            }
        }))
        .await?;
        let mut out = vec![None; keys.len()];
        for (group, values) in answers {
            for (i, v) in group.into_iter().zip(values) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.check_size(key, &value)?;
        if is_expired_ttl(ttl) {
            self.delete(key).await?;
            return Ok(());
        }
        self.query(&Self::set_cmd(key, &value, ttl), Subject::Key(key)).await
    }

    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        for (k, v) in entries {
            self.check_size(k, v)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        if is_expired_ttl(ttl) {
            let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_str().as_bytes()).collect();
            self.unlink_all(&keys, Subject::Entries(entries)).await?;
            return Ok(());
        }
        let groups = self.by_slot(entries.iter().map(|(k, _)| k));
        let subject = Subject::Entries(entries);
        try_join_all(groups.into_iter().map(|group| {
            let mut pipe = redis::pipe();
            for &i in &group {
                let (k, v) = &entries[i];
                pipe.add_command(Self::set_cmd(k, v, ttl)).ignore();
            }
            async move { self.query_pipeline::<()>(&pipe, subject).await }
        }))
        .await?;
        Ok(())
    }

    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.check_size(key, &value)?;
        if is_expired_ttl(ttl) {
            // "Already expired": nothing to store, and an existing entry is
            // left alone, so there is nothing to send.
            return Ok(false);
        }
        let mut cmd = Self::set_cmd(key, &value, ttl);
        cmd.arg("NX");
        let reply: Value = self.query(&cmd, Subject::Key(key)).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        let not_found = || Error::NotFound {
            backend: self.name.to_owned(),
            key: key.as_str().to_owned(),
        };
        let overflow = || Error::Overflow {
            backend: self.name.to_owned(),
            key: key.as_str().to_owned(),
            delta,
        };
        if delta > i64::MAX as u64 {
            // Any stored counter is >= 0, so this always overflows; INCRBY
            // could not even take the argument.
            return match self.get(key).await? {
                None => Err(not_found()),
                Some(v) if parse_counter(&v).is_none() => Err(Error::NotACounter {
                    backend: self.name.to_owned(),
                    key: key.as_str().to_owned(),
                }),
                Some(_) => Err(overflow()),
            };
        }
        let mut invocation = self.incr.key(key.as_str());
        invocation.arg(delta);
        let fut = async {
            match &self.conn {
                Conn::Single(c) => invocation.invoke_async::<Value>(&mut c.clone()).await,
                Conn::Cluster(c) => invocation.invoke_async::<Value>(&mut c.clone()).await,
            }
        };
        let reply = self.bounded(fut, Subject::Key(key)).await?;
        let bad_reply = |reply: &Value| Error::Backend {
            backend: self.name.to_owned(),
            key: Some(key.as_str().to_owned()),
            message: format!("unexpected reply from the incr script: {reply:?}"),
        };
        let Value::Array(items) = &reply else {
            return Err(bad_reply(&reply));
        };
        match items.as_slice() {
            [Value::Int(0), Value::BulkString(digits)] => parse_counter(digits).ok_or_else(|| bad_reply(&reply)),
            [Value::Int(1)] => Err(not_found()),
            [Value::Int(2)] => Err(Error::NotACounter {
                backend: self.name.to_owned(),
                key: key.as_str().to_owned(),
            }),
            [Value::Int(3)] => Err(overflow()),
            _ => Err(bad_reply(&reply)),
        }
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        let n: u64 = self
            .query(redis::cmd("UNLINK").arg(key.as_str()), Subject::Key(key))
            .await?;
        Ok(n > 0)
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let raw: Vec<&[u8]> = keys.iter().map(|k| k.as_str().as_bytes()).collect();
        self.unlink_all(&raw, Subject::Keys(keys)).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let subject = Subject::Prefix(prefix);
        let pattern = format!("{}*", escape_glob(prefix));
        let mut deleted = 0;
        // Masters one after another: each SCAN is cheap, and a prefix
        // deletion is rare; going serially keeps the load on the cluster flat.
        for slot in self.scan_targets(subject).await? {
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan_step(slot, cursor, &pattern, subject).await?;
                for batch in keys.chunks(SCAN_BATCH) {
                    let batch: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                    deleted += self.unlink_all(&batch, subject).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// `evicted_keys` of `INFO stats`, summed over the masters of a
    /// cluster.
    async fn server_stats(&self) -> Result<Option<ServerStats>> {
        let subject = Subject::Url(&self.url);
        let mut evicted = 0u64;
        for slot in self.scan_targets(subject).await? {
            let info = self.info_stats(slot, subject).await?;
            let n = info_field(&info, "evicted_keys").ok_or_else(|| Error::Backend {
                backend: self.name.to_owned(),
                key: Some(subject.describe()),
                message: "INFO stats has no evicted_keys field".to_owned(),
            })?;
            evicted = evicted.saturating_add(n);
        }
        Ok(Some(ServerStats::with_evicted_keys(evicted)))
    }
}

/// The value of `field` in an `INFO` reply (`field:value` lines).
fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;
