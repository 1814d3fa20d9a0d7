//! `LocalTracker`: the simulator's model of server-assisted tracking, an
//! in-process shared store that remembers which process read which key and
//! invalidates it there, after a modelled delivery latency, when anyone
//! writes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::known::KnownGenerations;
use super::notice::Notice;
use super::tracking::{TrackedValue, Tracker};
use crate::backend::{Backend, Capabilities, ServerStats, Ttl};
use crate::clock::Clock;
use crate::error::Result;
use crate::key::Key;

/// The one source a local tracker's connection is.
const SOURCE: u32 = 0;

#[derive(Debug, Default)]
struct HubState {
    /// One table per endpoint that attached.
    tables: Vec<Weak<KnownGenerations>>,
    /// The server's tracking table: key → endpoints that read it since it
    /// last changed (Redis forgets a key for a client once it has sent the
    /// invalidation; so does this).
    tracked: HashMap<String, Vec<usize>>,
}

#[derive(Debug)]
struct Hub {
    state: Mutex<HubState>,
    store: Arc<dyn Backend>,
    delay: Duration,
    clock: Arc<dyn Clock>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tell(&self, table: &KnownGenerations, notice: Notice) {
        if self.delay.is_zero() {
            table.notice(&notice);
        } else {
            table.notice_at(notice, self.clock.now() + self.delay);
        }
    }

    /// `keys` changed: every endpoint that tracks one hears of it.
    fn changed<'k>(&self, keys: impl IntoIterator<Item = &'k Key>) {
        let mut s = self.lock();
        for key in keys {
            let Some(readers) = s.tracked.remove(key.as_str()) else {
                continue;
            };
            for r in readers {
                if let Some(t) = s.tables.get(r).and_then(Weak::upgrade) {
                    self.tell(&t, Notice::Changed(key.as_str().to_owned()));
                }
            }
        }
    }

    /// Anything may have changed.
    fn changed_all(&self) {
        let mut s = self.lock();
        s.tracked.clear();
        for t in s.tables.iter().filter_map(Weak::upgrade) {
            self.tell(&t, Notice::All);
        }
    }
}

/// A modelled tracking server: one shared store ([`Self::store`], what
/// every process's [`TwoTier`](crate::tier::TwoTier) uses as its L2) and
/// one endpoint per process ([`Self::endpoint`], its tracking
/// connection). A read through an endpoint marks its keys tracked for that
/// endpoint; a write through the store sends each endpoint that tracks a
/// written key one invalidation, delivered `delay` later on `clock`.
#[derive(Debug)]
pub struct LocalTracker {
    hub: Arc<Hub>,
    /// This endpoint's table, once attached.
    me: Mutex<Option<usize>>,
}

impl LocalTracker {
    /// A tracking server over `store`, delivering invalidations `delay`
    /// after the write as `clock` counts time.
    pub fn new(store: Arc<dyn Backend>, delay: Duration, clock: Arc<dyn Clock>) -> Self {
        LocalTracker {
            hub: Arc::new(Hub {
                state: Mutex::new(HubState::default()),
                store,
                delay,
                clock,
            }),
            me: Mutex::new(None),
        }
    }

    /// Another endpoint (a process's tracking connection) on the same
    /// server.
    pub fn endpoint(&self) -> LocalTracker {
        LocalTracker {
            hub: self.hub.clone(),
            me: Mutex::new(None),
        }
    }

    /// The shared store as every process writes it: writes through it
    /// invalidate what the endpoints track.
    pub fn store(&self) -> Arc<dyn Backend> {
        Arc::new(TrackedStore { hub: self.hub.clone() })
    }

    /// The modelled delivery latency.
    pub fn delay(&self) -> Duration {
        self.hub.delay
    }

    fn me(&self) -> Option<usize> {
        *self.me.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This endpoint's connection drops and is made again at once: the
    /// server forgets what it tracked for it, its table forgets everything
    /// the connection vouched for, and its reads go to L2 until they are
    /// tracked again.
    pub fn reconnect(&self) {
        let Some(me) = self.me() else { return };
        let table = {
            let mut s = self.hub.lock();
            for readers in s.tracked.values_mut() {
                readers.retain(|r| *r != me);
            }
            s.tables.get(me).and_then(Weak::upgrade)
        };
        if let Some(t) = table {
            t.disconnected(SOURCE);
            t.connected(SOURCE);
        }
    }
}

#[async_trait]
impl Tracker for LocalTracker {
    fn name(&self) -> &str {
        "local-tracking"
    }

    fn attach(&self, table: Arc<KnownGenerations>) -> Result<()> {
        {
            let mut s = self.hub.lock();
            s.tables.push(Arc::downgrade(&table));
            *self.me.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(s.tables.len() - 1);
        }
        table.connected(SOURCE);
        Ok(())
    }

    async fn read(&self, keys: &[Key]) -> Result<Option<Vec<TrackedValue>>> {
        let Some(me) = self.me() else { return Ok(None) };
        let values = self.hub.store.get_many(keys).await?;
        let mut s = self.hub.lock();
        for k in keys {
            let readers = s.tracked.entry(k.as_str().to_owned()).or_default();
            if !readers.contains(&me) {
                readers.push(me);
            }
        }
        Ok(Some(values.into_iter().map(|v| (v, SOURCE)).collect()))
    }
}

/// The shared store seen through the tracking server: every write
/// invalidates the keys it wrote.
#[derive(Debug)]
struct TrackedStore {
    hub: Arc<Hub>,
}

#[async_trait]
impl Backend for TrackedStore {
    fn name(&self) -> &str {
        self.hub.store.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.hub.store.capabilities()
    }

    async fn get(&self, key: &Key) -> Result<Option<Bytes>> {
        self.hub.store.get(key).await
    }

    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>> {
        self.hub.store.get_many(keys).await
    }

    async fn set(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<()> {
        let r = self.hub.store.set(key, value, ttl).await;
        self.hub.changed([key]);
        r
    }

    async fn set_many(&self, entries: &[(Key, Bytes)], ttl: Ttl) -> Result<()> {
        let r = self.hub.store.set_many(entries, ttl).await;
        self.hub.changed(entries.iter().map(|(k, _)| k));
        r
    }

    async fn add(&self, key: &Key, value: Bytes, ttl: Ttl) -> Result<bool> {
        let added = self.hub.store.add(key, value, ttl).await?;
        if added {
            self.hub.changed([key]);
        }
        Ok(added)
    }

    async fn incr(&self, key: &Key, delta: u64) -> Result<u64> {
        let n = self.hub.store.incr(key, delta).await?;
        self.hub.changed([key]);
        Ok(n)
    }

    async fn delete(&self, key: &Key) -> Result<bool> {
        let r = self.hub.store.delete(key).await;
        self.hub.changed([key]);
        r
    }

    async fn delete_many(&self, keys: &[Key]) -> Result<u64> {
        let r = self.hub.store.delete_many(keys).await;
        self.hub.changed(keys);
        r
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let r = self.hub.store.delete_prefix(prefix).await;
        self.hub.changed_all();
        r
    }

    async fn server_stats(&self) -> Result<Option<ServerStats>> {
        self.hub.store.server_stats().await
    }
}
