//! [`MemcachedBackend`]: the [`Backend`] contract on Memcached's meta protocol.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use cache_core::backend::{checked_counter_add, is_expired_ttl, parse_counter};
use cache_core::key::{safe_key, MEMCACHED_MAX_KEY_BYTES};
use cache_core::{async_trait, Backend, Bytes, Capabilities, Error, Key, Result, Ttl};
use tokio::time::Instant;

use crate::conn::{Reply, Request, ServerPool, Status, WireError};
/// Re-exported from [`crate::errors`], where it lives.
pub use crate::errors::ServerIoError;
use crate::errors::{expect_stored, map_error, no_server, not_a_counter, not_found, overflow, unexpected};
use crate::options::MemcachedOptions;
use crate::ring::Ring;
use crate::ttl::{wire_ttl, TTL_GRANULARITY};
use crate::BACKEND_NAME;

/// A [`Backend`] on one Memcached server or a consistent-hashed pool.
///
/// # Why this design
///
/// It speaks Memcached's meta protocol through this crate's own pipelined
/// client (the private `conn` module): per server,
/// [`connections_per_server`](MemcachedOptions::connections_per_server)
/// connections, each shared by any number of concurrent calls, routed by
/// our [`Ring`].
///
/// - **Speed.** The `memcache` crate's clients send one request per
///   connection at a time: 64 tasks reached 0.63× `memaslap -c 50` with
///   them, and its raw client was as slow, so the gap was the client's.
///   Pipelining lets concurrent calls share a connection: requests queued
///   while a write is under way go out together in the next `write`, and
///   one reader task per connection hands replies back in order (checked
///   by opaque tokens). Fewer system calls on both sides is what lets 64
///   tasks go faster than one request per connection can. Measured with
///   `examples/throughput.rs` (2 cores, 2 s rows): 64 tasks 118k–160k GET/s
///   on one connection, 2.5–3.3× the raw `memcache` client with 16
///   connections, on a quiet machine; one at a time 0.9–1.06× a raw single
///   connection. Under heavy CPU contention the reader task competes for
///   the cores and the gain shrinks (see the `backend_load` bench).
/// - **Runtimes.** A connection and its reader task live on the runtime of
///   the call that dialed it. A backend shared by several runtimes works,
///   but if the dialing runtime shuts down, calls other runtimes have in
///   flight on that connection fail as `Unavailable`; the next call
///   redials.
/// - **Correct counters.** The meta protocol can make an increment
///   conditional on the item's CAS (`ma … C<cas>`), which lets
///   [`incr`](Backend::incr) check the stored value *before* changing it
///   (see there); the classic ASCII `incr` can only be corrected afterwards.
/// - **Batches.** `get_many`/`set_many`/`delete_many` send one pipelined
///   write per server and wait for all replies.
/// - **Faults.** Every call is bounded by
///   [`command_timeout`](MemcachedOptions::command_timeout). A connection
///   that sees EOF or an I/O error, or leaves a request unanswered past the
///   timeout, is dropped with every request queued on it failing at once;
///   the next call redials, so the backend recovers by itself once the
///   server is back. Errors name the server and the caller's key.
#[derive(Clone)]
pub struct MemcachedBackend {
    pools: Arc<Vec<ServerPool>>,
    ring: Ring,
    options: MemcachedOptions,
}

impl fmt::Debug for MemcachedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcachedBackend")
            .field("servers", &self.options.servers)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl MemcachedBackend {
    /// Connects with `options`. With
    /// [`check_on_connect`](MemcachedOptions::check_on_connect) (the default)
    /// every server must accept a TCP connection within the connect timeout,
    /// else the error names it; connections are then opened on demand, and
    /// a server that goes away later is reconnected to when it comes back.
    ///
    /// With `check_on_connect`, each server is also asked for its item size
    /// limit (`stats settings`), and
    /// [`max_value_size`](MemcachedOptions::max_value_size) is lowered to the
    /// smallest server's `item_size_max` minus
    /// [`ITEM_OVERHEAD`](crate::options::ITEM_OVERHEAD): a value the server
    /// would refuse (after deleting the old one) is refused before sending.
    /// [`options`](Self::options) shows the limit in force.
    pub async fn connect(mut options: MemcachedOptions) -> Result<Self> {
        options.validate()?;
        if options.check_on_connect {
            for server in &options.servers {
                let item = crate::settings::query_item_size(server, options.connect_timeout).await?;
                if let crate::settings::ItemSize::Bytes(bytes) = item {
                    let limit = usize::try_from(bytes)
                        .unwrap_or(usize::MAX)
                        .saturating_sub(crate::options::ITEM_OVERHEAD);
                    options.max_value_size = options.max_value_size.min(limit);
                }
            }
        }
        let ring = Ring::new(&options.servers);
        let pools = options
            .servers
            .iter()
            .map(|s| ServerPool::new(s.clone(), options.connections_per_server, options.connect_timeout))
            .collect();
        Ok(MemcachedBackend {
            pools: Arc::new(pools),
            ring,
            options,
        })
    }

    /// Parses `url` (see [`MemcachedOptions::from_url`]) and connects.
    pub async fn from_url(url: &str) -> Result<Self> {
        Self::connect(MemcachedOptions::from_url(url)?).await
    }

    /// The options in use.
    pub fn options(&self) -> &MemcachedOptions {
        &self.options
    }

    /// The `host:port` of the server that stores `key` (after the safe-key
    /// mapping), as routed by the consistent-hash ring.
    pub fn server_for(&self, key: &Key) -> &str {
        let mapped = map_key(key);
        self.server_of(&mapped)
    }

    fn index_of(&self, mapped: &str) -> usize {
        self.ring
            .server_for(mapped.as_bytes())
            .min(self.pools.len().saturating_sub(1))
    }

    fn server_of(&self, mapped: &str) -> &str {
        let index = self.ring.server_for(mapped.as_bytes());
        self.options.servers.get(index).map_or("?", String::as_str)
    }

    /// Runs `f(deadline)` under the command timeout.
    async fn timed<T, F, Fut>(&self, key: &str, f: F) -> Result<T>
    where
        F: FnOnce(Instant) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let after = self.options.command_timeout;
        let deadline = Instant::now() + after;
        tokio::time::timeout_at(deadline, f(deadline))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    backend: BACKEND_NAME.to_owned(),
                    key: Some(key.to_owned()),
                    after,
                })
            })
    }

    fn check_size(&self, key: &Key, value: &Bytes) -> Result<()> {
        let limit = self.options.max_value_size;
        if value.len() > limit {
            return Err(Error::ValueTooLarge {
                backend: BACKEND_NAME.to_owned(),
                key: key.as_str().to_owned(),
                size: value.len(),
                limit,
            });
        }
        Ok(())
    }

    fn err(&self, e: WireError, key: &str, mapped: &str) -> Error {
        map_error(e, key, self.server_of(mapped), self.options.command_timeout)
    }

    /// One request on the server of `mapped`; errors name `key`.
    async fn one(&self, req: Request<'_>, key: &str, mapped: &str, deadline: Instant) -> Result<Reply> {
        let pool = self.pools.get(self.index_of(mapped)).ok_or_else(|| no_server(key))?;
        let reply = pool.call_one(req, deadline).await;
        reply.map_err(|e| self.err(e, key, mapped))
    }

    /// One request per mapped key, grouped by server; each server's share
    /// goes out in one pipelined write, and the servers are waited for
    /// together. Replies come back in `mapped` order.
    async fn many<'a>(
        &self,
        mapped: &'a [Cow<'a, str>],
        make: impl Fn(usize, &'a str) -> Request<'a>,
        names: &[&str],
        deadline: Instant,
    ) -> Result<Vec<Reply>> {
        let mut by_server: Vec<Vec<usize>> = vec![Vec::new(); self.pools.len()];
        for (i, m) in mapped.iter().enumerate() {
            if let Some(list) = by_server.get_mut(self.index_of(m)) {
                list.push(i);
            }
        }
        let calls = by_server
            .iter()
            .enumerate()
            .filter(|(_, idx)| !idx.is_empty())
            .map(|(s, idx)| {
                let reqs: Vec<Request<'a>> = idx.iter().map(|&i| make(i, &mapped[i])).collect();
                let pool = &self.pools[s];
                async move { (idx, pool.call(&reqs, deadline).await) }
            });
        let results = futures::future::join_all(calls).await;
        let mut out: Vec<Option<Reply>> = (0..mapped.len()).map(|_| None).collect();
        for (idx, r) in results {
            let first = idx.first().copied().unwrap_or(0);
            let replies = r.map_err(|e| {
                let name = cache_core::error::describe_keys(idx.iter().map(|&i| names[i]));
                self.err(e, &name, &mapped[first])
            })?;
            for (&i, reply) in idx.iter().zip(replies) {
                out[i] = Some(reply.map_err(|e| self.err(e, names[i], &mapped[i]))?);
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| r.ok_or_else(|| no_server(names[i])))
            .collect()
    }

    async fn get_inner(&self, key: &Key, deadline: Instant) -> Result<Option<Bytes>> {
        let mapped = map_key(key);
        let r = self
            .one(
                Request::Get {
                    key: &mapped,
                    cas: false,
                },
                key.as_str(),
                &mapped,
                deadline,
            )
            .await?;
        Ok(match r.status {
            Status::Value => Some(r.value.unwrap_or_default()),
            _ => None,
        })
    }

    async fn store(&self, key: &Key, value: &Bytes, ttl: Ttl, add: bool, deadline: Instant) -> Result<Status> {
        let mapped = map_key(key);
        let ttl = wire_ttl(ttl, key.as_str())?;
        let req = Request::Set {
            key: &mapped,
            value,
            ttl,
            add,
        };
        Ok(self.one(req, key.as_str(), &mapped, deadline).await?.status)
    }

    async fn set_inner(&self, key: &Key, value: Bytes, ttl: Ttl, deadline: Instant) -> Result<()> {
        let status = self.store(key, &value, ttl, false, deadline).await?;
        expect_stored(status, key.as_str(), self.server_for(key))
    }

    async fn add_inner(&self, key: &Key, value: Bytes, ttl: Ttl, deadline: Instant) -> Result<bool> {
        match self.store(key, &value, ttl, true, deadline).await? {
            Status::Done => Ok(true),
            Status::NotStored | Status::Exists => Ok(false),
            other => Err(unexpected(
                key.as_str(),
                self.server_for(key),
                &format!("add: {other:?}"),
            )),
        }
    }

    async fn delete_inner(&self, key: &Key, deadline: Instant) -> Result<bool> {
        let mapped = map_key(key);
        let r = self
            .one(Request::Delete { key: &mapped }, key.as_str(), &mapped, deadline)
            .await?;
        match r.status {
            Status::Done => Ok(true),
            Status::NotFound => Ok(false),
            other => Err(unexpected(
                key.as_str(),
                self.server_of(&mapped),
                &format!("delete: {other:?}"),
            )),
        }
    }

    /// Read, check, then increment only if the item is still what was read;
    /// see [`Backend::incr`] below for the reasoning.
    async fn incr_inner(&self, key: &Key, delta: u64, deadline: Instant) -> Result<u64> {
        let mapped = map_key(key);
        let name = key.as_str();
        let mut contended = false;
        loop {
            let r = self
                .one(
                    Request::Get {
                        key: &mapped,
                        cas: true,
                    },
                    name,
                    &mapped,
                    deadline,
                )
                .await?;
            if r.status != Status::Value {
                return Err(not_found(name));
            }
            let value = r.value.unwrap_or_default();
            // Memcached pads a number that shrank in place (a `decr` by some
            // other client) with trailing spaces; the contract leaves padded
            // digits unspecified, and accepting them is what memcached does.
            let digits = trim_trailing_spaces(&value);
            let current = parse_counter(digits).ok_or_else(|| not_a_counter(name))?;
            if checked_counter_add(current, delta).is_none() {
                return Err(overflow(name, delta));
            }
            if delta == 0 {
                return Ok(current);
            }
            let cas = if contended {
                None
            } else {
                Some(
                    r.cas
                        .ok_or_else(|| unexpected(name, self.server_of(&mapped), "mg returned no CAS"))?,
                )
            };
            let op = Request::Arith {
                key: &mapped,
                delta,
                cas,
                decrement: false,
            };
            let a = match self.one(op, name, &mapped, deadline).await {
                Ok(a) => a,
                // Replaced by a non-number between the read and the `ma`.
                Err(Error::Backend { message, .. }) if message.contains("non-numeric") => {
                    return Err(not_a_counter(name))
                }
                Err(e) => return Err(e),
            };
            match a.status {
                Status::Value => {}
                Status::Exists => {
                    contended = true;
                    continue;
                }
                Status::NotFound => return Err(not_found(name)),
                other => return Err(unexpected(name, self.server_of(&mapped), &format!("ma: {other:?}"))),
            }
            let new = a
                .value
                .as_deref()
                .and_then(|v| std::str::from_utf8(trim_trailing_spaces(v)).ok()?.parse::<u64>().ok())
                .ok_or_else(|| unexpected(name, self.server_of(&mapped), "ma returned no number"))?;
            if new > i64::MAX as u64 {
                // Only reachable on the contended path: concurrent increments
                // took the counter past i64::MAX after our check. Undo ours
                // (exact: decr of what we added) and report the overflow.
                let undo = Request::Arith {
                    key: &mapped,
                    delta,
                    cas: None,
                    decrement: true,
                };
                self.one(undo, name, &mapped, deadline).await?;
                return Err(overflow(name, delta));
            }
            return Ok(new);
        }
    }

    async fn get_many_inner(&self, keys: &[Key], deadline: Instant) -> Result<Vec<Option<Bytes>>> {
        let mapped: Vec<Cow<'_, str>> = keys.iter().map(map_key).collect();
        let names: Vec<&str> = keys.iter().map(Key::as_str).collect();
        let replies = self
            .many(&mapped, |_, m| Request::Get { key: m, cas: false }, &names, deadline)
            .await?;
        Ok(replies
            .into_iter()
            .map(|r| match r.status {
                Status::Value => Some(r.value.unwrap_or_default()),
                _ => None,
            })
            .collect())
    }

    async fn set_many_inner(&self, entries: &[(Key, Bytes)], ttl: Ttl, deadline: Instant) -> Result<()> {
        let mapped: Vec<Cow<'_, str>> = entries.iter().map(|(k, _)| map_key(k)).collect();
        let names: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let wire = match entries.first() {
            Some((k, _)) => wire_ttl(ttl, k.as_str())?,
            None => None,
        };
        let replies = self
            .many(
                &mapped,
                |i, m| Request::Set {
                    key: m,
                    value: &entries[i].1,
                    ttl: wire,
                    add: false,
                },
                &names,
                deadline,
            )
            .await?;
        for (i, r) in replies.into_iter().enumerate() {
            expect_stored(r.status, names[i], self.server_of(&mapped[i]))?;
        }
        Ok(())
    }

    async fn delete_many_inner(&self, keys: &[Key], deadline: Instant) -> Result<u64> {
        let mapped: Vec<Cow<'_, str>> = keys.iter().map(map_key).collect();
        let names: Vec<&str> = keys.iter().map(Key::as_str).collect();
        let replies = self
            .many(&mapped, |_, m| Request::Delete { key: m }, &names, deadline)
            .await?;
        Ok(replies.iter().filter(|r| r.status == Status::Done).count() as u64)
    }
}

#[async_trait]
impl Backend for MemcachedBackend {
    fn name(&self) -> &str {
        BACKEND_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_prefix_delete(false)
            .with_max_value_size(Some(self.options.max_value_size))
            .with_ttl_granularity(TTL_GRANULARITY)
            .with_shared_between_processes(true)
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.timed(key.as_str(), |d| self.get_inner(key, d)).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let name = cache_core::error::describe_keys(keys.iter().map(Key::as_str));
        self.timed(&name, |d| self.get_many_inner(keys, d)).await
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        self.check_size(key, &value)?;
        if is_expired_ttl(ttl) {
            // "Already expired": remove whatever is there, store nothing.
            return self.delete(key).await.map(drop);
        }
        self.timed(key.as_str(), |d| self.set_inner(key, value, ttl, d)).await
    }

    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        // Every size is checked before anything is sent (contract).
        for (k, v) in entries {
            self.check_size(k, v)?;
        }
        if entries.is_empty() {
            return Ok(());
        }
        if is_expired_ttl(ttl) {
            let keys: Vec<Key> = entries.iter().map(|(k, _)| k.clone()).collect();
            return self.delete_many(&keys).await.map(drop);
        }
        let name = cache_core::error::describe_keys(entries.iter().map(|(k, _)| k.as_str()));
        self.timed(&name, |d| self.set_many_inner(entries, ttl, d)).await
    }

    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        self.check_size(key, &value)?;
        if is_expired_ttl(ttl) {
            // Stores nothing and leaves any entry alone: no round trip needed.
            return Ok(false);
        }
        self.timed(key.as_str(), |d| self.add_inner(key, value, ttl, d)).await
    }

    /// Read the item with its CAS (`mg k v c`), check that it is a counter
    /// and that `value + delta <= i64::MAX`, then `ma k D<delta> C<cas>`:
    /// the increment applies only if nobody changed the item in between.
    /// So a non-counter (including values memcached itself would increment,
    /// like `+7`, ` 7` or numbers above `i64::MAX`) is never touched, an
    /// overflow never reaches the server (no 2^64 wrap-around to undo, no
    /// space padding), a missing key is `NotFound` and nothing is created,
    /// and `ma` keeps the item's TTL. Memcached applies each `ma` atomically,
    /// so concurrent increments are never lost.
    ///
    /// Under contention (the CAS no longer matches because another client
    /// incremented meanwhile) the read and checks are repeated and the `ma`
    /// is sent *without* the CAS: retrying on CAS alone made the
    /// conformance test (8 threads × 10 000 increments of one key, debug
    /// build, three such tests at once) take 30–40 s instead of 10–17 s,
    /// each success costing every other thread two more round trips. The price is a window of one round trip in which another
    /// client could replace the counter by a value memcached increments but
    /// the contract rejects (`+7`) — implausible for a counter others are
    /// busy incrementing. If concurrent increments carry the counter past
    /// `i64::MAX` in that window, ours is undone with an exact `decr` and
    /// `Overflow` returned (memcached may then pad the value with trailing
    /// spaces, which `incr` still reads as the same counter).
    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        if delta > i64::MAX as u64 {
            // No counter can take it; nothing is sent.
            return Err(overflow(key.as_str(), delta));
        }
        self.timed(key.as_str(), |d| self.incr_inner(key, delta, d)).await
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        self.timed(key.as_str(), |d| self.delete_inner(key, d)).await
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let name = cache_core::error::describe_keys(keys.iter().map(Key::as_str));
        self.timed(&name, |d| self.delete_many_inner(keys, d)).await
    }

    /// `evictions` of `stats`, summed over the pool's servers.
    async fn server_stats(&self) -> Result<Option<cache_core::ServerStats>> {
        let timeout = self.options.connect_timeout.max(self.options.command_timeout);
        let mut evicted = 0u64;
        for server in &self.options.servers {
            match crate::settings::query_evictions(server, timeout).await? {
                Some(n) => evicted = evicted.saturating_add(n),
                None => return Ok(None),
            }
        }
        Ok(Some(cache_core::ServerStats::with_evicted_keys(evicted)))
    }
}

/// The storage key: `key` itself when Memcached accepts it, else its
/// deterministic safe form (see [`safe_key`]).
fn map_key(key: &Key) -> Cow<'_, str> {
    safe_key(key.as_str(), MEMCACHED_MAX_KEY_BYTES)
}

fn trim_trailing_spaces(value: &[u8]) -> &[u8] {
    let end = value.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_trimmed_only_at_the_end() {
        assert_eq!(trim_trailing_spaces(b"12  "), b"12");
        assert_eq!(trim_trailing_spaces(b" 12"), b" 12");
        assert_eq!(trim_trailing_spaces(b"   "), b"");
    }
}
