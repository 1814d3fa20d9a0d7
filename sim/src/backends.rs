//! `--backend` specs and connecting them: the one place that knows which
//! stores exist.
//!
//! `locmem` gives every cell fresh in-process stores (one per simulated app
//! process). `shared-locmem` gives it one in-process store that every
//! simulated process uses, standing in for a shared server without running
//! one. `redis://…` / `redis+cluster://…` and `memcache://…` connect to
//! a real server shared by every simulated process; the runner gives each
//! cell its own key namespace there, so cells (and earlier runs) never read
//! each other's entries and nothing on the server needs flushing.
//!
//! `two-tier[/<option>,…]:<l1>+<l2>` gives every simulated process a
//! [`TwoTier`]: its own in-process L1 (`locmem` or `locmem:<MiB>`) in front
//! of one L2 shared by all processes (`locmem` here means one in-process
//! store standing in for a shared server, so no server is needed;
//! `redis://…` or `memcache://…` a real one). With `/backplane=<µs>` the
//! processes share a [`LocalBackplane`] that delivers each (numbered)
//! generation notice `<µs>` of virtual time after it was sent (a real
//! Redis pub/sub's latency cannot be replayed in virtual time, so even with
//! a Redis L2 the backplane is modelled). With `/tracking[=<µs>]` the L2
//! tracks what each process reads through a modelled tracking server
//! ([`LocalTracker`]) and delivers each invalidation `<µs>` after the write
//! ([`DEFAULT_TRACKING_US`] when no value is given), except that
//! `tracking` with no value on a Redis L2 is the real thing: each process
//! gets a [`RedisTracker`](backend_redis::RedisTracker) with its own
//! tracking connection, and every write waits until all of them have its
//! invalidations (virtual time cannot replay the tens of µs of real
//! delivery, so it counts as 0: such a cell measures round trips, the
//! modelled one staleness). With `trust=<s>` a
//! process trusts a generation the backplane vouches for that many seconds
//! without a notice
//! ([`TwoTierBuilder::trust_for`](cache_core::tier::TwoTierBuilder::trust_for),
//! default an hour). `channel=<name>` is accepted and ignored (a real
//! channel has nothing to model); a bare `backplane` is refused: the
//! simulator needs the latency. The run's tier faults (`--disconnect`,
//! `--lose-notice`: [`crate::config::TierFault`]) act on these models
//! ([`Connected::tier_faults`]), not on real tracking. The grammar
//! is [`backend_any::spec`], the one `backend-any` URLs use. Examples:
//! `two-tier:locmem:64+locmem`,
//! `two-tier/backplane=2000:locmem+redis://127.0.0.1:6379`,
//! `two-tier/backplane=2000,trust=300:locmem+locmem`,
//! `two-tier/tracking=200:locmem+locmem`.

use std::sync::Arc;

use backend_any::spec::{SpecError, TwoTierSpec};
use backend_locmem::LocmemBackend;
use cache_core::tier::local_tracking::LocalTracker;
use cache_core::tier::{LocalBackplane, TwoTier};
use cache_core::{Backend, ManualClock};

use crate::config::TierFaultKind;
use crate::engine::{LiveKeys, TierFaultFn};
use crate::error::{Error, Result};

/// The modelled delivery latency of an invalidation with `tracking` and no
/// value, µs: what loopback Redis measured (see the docs, "Several
/// processes").
pub const DEFAULT_TRACKING_US: u64 = 200;

/// A parsed `--backend` value. Its `Debug` and [`label`](Self::label) hide
/// any password in a URL (`***`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendSpec {
    /// The in-process store, one per simulated app process.
    Locmem {
        /// Capacity of each process's store, bytes.
        capacity_bytes: u64,
    },
    /// One in-process store shared by every simulated app process
    /// (`shared-locmem[:<MiB>]`): a stand-in for a shared server (Redis,
    /// Memcached) without running one, e.g. for the `freeze` and
    /// `writer-crash` scenarios.
    SharedLocmem {
        /// Capacity of the store, bytes.
        capacity_bytes: u64,
    },
    /// Redis, single node or cluster (`redis://host:port`, `redis+cluster://…`).
    Redis(String),
    /// Memcached, one server or a pool (`memcache://host:port[,host:port]`).
    Memcache(String),
    /// An in-process L1 per process in front of one shared L2, optionally
    /// with a modelled backplane (see the module docs).
    TwoTier {
        /// Capacity of each process's L1, bytes.
        l1_capacity_bytes: u64,
        /// The shared L2 (`Locmem`: one in-process store shared by all).
        l2: Box<BackendSpec>,
        /// Backplane delivery latency, µs; `None`: no backplane.
        backplane_us: Option<u64>,
        /// Tracking's delivery latency per invalidation, µs; `None`: no
        /// tracking, or Redis's own ([`Self::TwoTier::real_tracking`]).
        tracking_us: Option<u64>,
        /// Redis's own client tracking ([`backend_redis::RedisTracker`],
        /// one per process) instead of a model: `tracking` with no value
        /// on a Redis L2. Every write then waits until each process has its
        /// invalidations (a delivery of 0 in virtual time).
        real_tracking: bool,
        /// How long a known generation is trusted without a notice, s;
        /// `None`: the library's default.
        trust_s: Option<u64>,
        /// The spec as given, for reports.
        label: String,
    },
}

/// Parses a `two-tier` spec with the shared grammar
/// ([`backend_any::spec`]), then what the simulator can honour: a
/// backplane is modelled, so it needs its delivery latency.
fn parse_two_tier(spec: &str) -> Result<BackendSpec> {
    let err = |e: SpecError| Error::Backend {
        spec: redact_url(spec),
        message: e.to_string(),
    };
    let t = TwoTierSpec::parse(spec).map_err(err)?;
    // `channel=<name>` names a real Redis channel: nothing to model here.
    let backplane_us = match t.backplane() {
        None => None,
        Some(Some(us)) => Some(us),
        Some(None) => {
            return Err(err(SpecError::new(
                "the simulator models the backplane's delivery, in virtual time: give its latency, \
                 backplane=<µs> (e.g. backplane=2000)",
            )))
        }
    };
    let l2 = BackendSpec::parse(t.l2)?;
    let real_tracking = matches!((t.tracking(), &l2), (Some(None), BackendSpec::Redis(_)));
    let tracking_us = match t.tracking() {
        Some(None) if real_tracking => None,
        other => other.map(|us| us.unwrap_or(DEFAULT_TRACKING_US)),
    };
    let l1_capacity_bytes = match BackendSpec::parse(t.l1) {
        Ok(BackendSpec::Locmem { capacity_bytes }) => capacity_bytes,
        _ => {
            return Err(err(SpecError::new(format!(
                "L1 {:?}: expected locmem or locmem:<MiB>",
                t.l1
            ))))
        }
    };
    Ok(BackendSpec::TwoTier {
        l1_capacity_bytes,
        l2: Box::new(l2),
        backplane_us,
        tracking_us,
        real_tracking,
        trust_s: t.trust(),
        label: spec.to_owned(),
    })
}

impl std::fmt::Debug for BackendSpec {
    // Not derived: a URL's password must not reach a log or an error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendSpec({})", self.label())
    }
}

/// What reports, errors and progress show of a backend URL: its
/// passwords as `***` ([`cache_core::redact::redact_url`], the redactor
/// every crate of the workspace uses).
pub use cache_core::redact::redact_url;

impl BackendSpec {
    /// Parses `locmem`, `locmem:<MiB>`, `shared-locmem[:<MiB>]`,
    /// `redis://…`, `redis+cluster://…`, `memcache://…`,
    /// `two-tier[/backplane=<µs>[,trust=<s>] | /tracking[=<µs>]]:<l1>+<l2>`, or
    /// `env:NAME`: the value of environment variable `NAME` (so that a
    /// password need not be on the command line).
    pub fn parse(spec: &str) -> Result<Self> {
        if let Some(name) = spec.strip_prefix("env:") {
            let value = std::env::var(name).map_err(|e| Error::Backend {
                spec: spec.to_owned(),
                message: format!("environment variable {name}: {e}"),
            })?;
            if value.starts_with("env:") {
                return Err(Error::Backend {
                    spec: spec.to_owned(),
                    message: format!("environment variable {name} names another variable"),
                });
            }
            return Self::parse(value.trim());
        }
        if TwoTierSpec::is_two_tier(spec) {
            return parse_two_tier(spec);
        }
        if spec == "locmem" {
            return Ok(BackendSpec::Locmem {
                capacity_bytes: backend_locmem::DEFAULT_CAPACITY_BYTES,
            });
        }
        if let Some(mib) = spec.strip_prefix("locmem:") {
            let mib: u64 = mib.parse().map_err(|_| Error::Backend {
                spec: spec.to_owned(),
                message: "expected locmem:<capacity in MiB>".into(),
            })?;
            return Ok(BackendSpec::Locmem {
                capacity_bytes: mib << 20,
            });
        }
        if let Some(rest) = spec.strip_prefix("shared-locmem") {
            let capacity_bytes = match rest.strip_prefix(':') {
                None if rest.is_empty() => backend_locmem::DEFAULT_CAPACITY_BYTES,
                Some(mib) => {
                    mib.parse::<u64>()
                        .ok()
                        .filter(|m| (1..=1 << 20).contains(m))
                        .ok_or_else(|| Error::Backend {
                            spec: spec.to_owned(),
                            message: "expected shared-locmem:<capacity in MiB, 1 to 1048576>".into(),
                        })?
                        << 20
                }
                None => {
                    return Err(Error::Backend {
                        spec: spec.to_owned(),
                        message: "expected shared-locmem or shared-locmem:<MiB>".into(),
                    })
                }
            };
            return Ok(BackendSpec::SharedLocmem { capacity_bytes });
        }
        if spec.starts_with("redis://") || spec.starts_with("rediss://") || spec.starts_with("redis+cluster://") {
            return Ok(BackendSpec::Redis(spec.to_owned()));
        }
        if spec.starts_with("memcache://") {
            return Ok(BackendSpec::Memcache(spec.to_owned()));
        }
        Err(Error::Backend {
            spec: redact_url(spec),
            message: "unknown backend; use locmem, locmem:<MiB>, shared-locmem[:<MiB>], redis://host:port, \
                      memcache://host:port, two-tier:locmem+<L2> or env:NAME"
                .into(),
        })
    }

    /// The label used in reports: `locmem` (default capacity),
    /// `locmem:64MiB` (so the rows of a memory sweep differ), or the URL with
    /// its password hidden.
    pub fn label(&self) -> String {
        match self {
            BackendSpec::Locmem { capacity_bytes } if *capacity_bytes == backend_locmem::DEFAULT_CAPACITY_BYTES => {
                "locmem".to_owned()
            }
            BackendSpec::Locmem { capacity_bytes } => format!("locmem:{}MiB", capacity_bytes >> 20),
            BackendSpec::SharedLocmem { capacity_bytes }
                if *capacity_bytes == backend_locmem::DEFAULT_CAPACITY_BYTES =>
            {
                "shared-locmem".to_owned()
            }
            BackendSpec::SharedLocmem { capacity_bytes } => format!("shared-locmem:{}MiB", capacity_bytes >> 20),
            BackendSpec::Redis(u) | BackendSpec::Memcache(u) => redact_url(u),
            BackendSpec::TwoTier { label, .. } => redact_url(label),
        }
    }

    /// True when cells on this backend may run in parallel: each gets its
    /// own stores. A server is shared, so its cells run one at a time.
    pub fn isolated_per_cell(&self) -> bool {
        match self {
            BackendSpec::Locmem { .. } | BackendSpec::SharedLocmem { .. } => true,
            BackendSpec::TwoTier { l2, .. } => l2.isolated_per_cell(),
            _ => false,
        }
    }
}

/// The stores of one cell.
#[derive(Clone)]
#[non_exhaustive]
pub struct Connected {
    /// One per app process, or one shared by all.
    pub backends: Vec<Arc<dyn Backend>>,
    /// Live-key listers parallel to `backends` (empty if unsupported).
    pub live_keys: Vec<LiveKeys>,
    /// With a `two-tier` spec: each process's [`TwoTier`] (the same objects
    /// as `backends`), for its L2 counters ([`TwoTier::stats`]).
    pub tiers: Vec<TwoTier>,
    /// The stores count feeds by their declared padding
    /// ([`crate::engine::declared_len`]): set [`crate::engine::Cell::declared_padding`].
    /// Only plain `locmem`; remote, shared and two-tier stores move real
    /// bytes.
    pub declared_padding: bool,
    /// Per process, what a trace's fault event does to it (two tiers with
    /// a backplane or tracking); empty otherwise.
    pub tier_faults: Vec<TierFaultFn>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

/// Fresh, empty stores for one cell with `processes` app processes, on
/// `clock`. Fails before anything runs when the backend cannot be used.
pub async fn connect(spec: &BackendSpec, processes: u32, clock: &ManualClock) -> Result<Connected> {
    match spec {
        BackendSpec::TwoTier {
            l1_capacity_bytes,
            l2,
            backplane_us,
            tracking_us,
            real_tracking,
            trust_s,
            ..
        } => {
            // One L2 for every process (a locmem L2 stands in for a server).
            let shared = Box::pin(connect(l2, 1, clock)).await?;
            let l2_store = shared.backends.into_iter().next().ok_or_else(|| Error::Backend {
                spec: spec.label(),
                message: "the L2 connected no store".into(),
            })?;
            let l1s = Box::pin(connect(
                &BackendSpec::Locmem {
                    capacity_bytes: *l1_capacity_bytes,
                },
                processes,
                clock,
            ))
            .await?;
            let clock_arc: Arc<dyn cache_core::Clock> = Arc::new(clock.clone());
            let micros = std::time::Duration::from_micros;
            let bus = backplane_us.map(|d| LocalBackplane::new(micros(d), clock_arc.clone()));
            let tracker = tracking_us.map(|d| LocalTracker::new(l2_store.clone(), micros(d), clock_arc.clone()));
            // With tracking, every write reaches the shared store through
            // the tracking server, which invalidates what others read.
            let l2_store = tracker.as_ref().map_or(l2_store, LocalTracker::store);
            let redis = match (real_tracking, l2.as_ref()) {
                (true, BackendSpec::Redis(url)) => Some(redis_trackers(spec, url, processes).await?),
                _ => None,
            };
            let l2_store: Arc<dyn Backend> = match &redis {
                Some(trackers) => Arc::new(Settling {
                    inner: l2_store,
                    trackers: trackers.clone(),
                }),
                None => l2_store,
            };
            let mut tiers = Vec::new();
            let mut tier_faults: Vec<TierFaultFn> = Vec::new();
            for (p, l1) in l1s.backends.into_iter().enumerate() {
                let mut b = TwoTier::builder(l1, l2_store.clone()).clock(clock_arc.clone());
                if let Some(t) = redis.as_ref().and_then(|t| t.get(p)) {
                    b = b.tracking(t.clone());
                }
                if let Some(s) = trust_s {
                    b = b.trust_for(std::time::Duration::from_secs(*s));
                }
                let bus = bus.as_ref().map(LocalBackplane::endpoint);
                if let Some(bus) = &bus {
                    b = b.backplane(Arc::new(bus.clone()));
                }
                let tracker = tracker.as_ref().map(|t| Arc::new(t.endpoint()));
                if let Some(t) = &tracker {
                    b = b.tracking(t.clone());
                }
                let tier = b.build().map_err(|e| Error::Backend {
                    spec: spec.label(),
                    message: e.to_string(),
                })?;
                tier_faults.push(fault(&tier, bus, tracker));
                tiers.push(tier);
            }
            Ok(Connected {
                backends: tiers.iter().map(|t| Arc::new(t.clone()) as Arc<dyn Backend>).collect(),
                live_keys: Vec::new(),
                tiers,
                declared_padding: false,
                tier_faults,
            })
        }
        BackendSpec::Locmem { capacity_bytes } => {
            // Several processes share nothing: that is the multi-process hazard.
            let stores: Vec<LocmemBackend> = (0..processes.max(1))
                .map(|p| {
                    LocmemBackend::builder()
                        .clock(Arc::new(clock.clone()))
                        .max_capacity_bytes(*capacity_bytes)
                        // Eviction choices follow key hashes: fixed hashing
                        // keeps reports byte-identical when stores fill up.
                        .hash_seed(Some(0x5eed_0000 + u64::from(p)))
                        // And moka's maintenance must not follow wall time.
                        .deterministic(true)
                        // Feeds may declare their padding instead of carrying
                        // it: charge what they stand for (the same weights as
                        // written padding, so the same evictions).
                        .value_size(crate::engine::declared_len)
                        .name(if processes > 1 {
                            format!("locmem-p{p}")
                        } else {
                            "locmem".to_owned()
                        })
                        .build()
                })
                .collect();
            Ok(Connected {
                backends: stores.iter().map(|s| Arc::new(s.clone()) as Arc<dyn Backend>).collect(),
                live_keys: stores
                    .into_iter()
                    .map(|s| Arc::new(move || s.live_entries()) as LiveKeys)
                    .collect(),
                tiers: Vec::new(),
                declared_padding: true,
                tier_faults: Vec::new(),
            })
        }
        BackendSpec::SharedLocmem { capacity_bytes } => {
            // One store, which every process's index maps to.
            Box::pin(connect(
                &BackendSpec::Locmem {
                    capacity_bytes: *capacity_bytes,
                },
                1,
                clock,
            ))
            .await
        }
        BackendSpec::Redis(url) => {
            let backend = backend_redis::RedisBackend::connect(url.as_str())
                .await
                .map_err(|e| Error::Backend {
                    spec: spec.label(),
                    message: scrub(format!("cannot connect: {e}"), url),
                })?;
            probe(&backend, spec, "Redis", url).await?;
            Ok(Connected {
                backends: vec![Arc::new(backend)],
                live_keys: Vec::new(),
                tiers: Vec::new(),
                declared_padding: false,
                tier_faults: Vec::new(),
            })
        }
        BackendSpec::Memcache(url) => {
            let backend = backend_memcached::MemcachedBackend::from_url(url)
                .await
                .map_err(|e| Error::Backend {
                    spec: spec.label(),
                    message: scrub(format!("cannot connect: {e}"), url),
                })?;
            probe(&backend, spec, "memcached", url).await?;
            Ok(Connected {
                backends: vec![Arc::new(backend)],
                live_keys: Vec::new(),
                tiers: Vec::new(),
                declared_padding: false,
                tier_faults: Vec::new(),
            })
        }
    }
}

/// One [`RedisTracker`](backend_redis::RedisTracker) per process on `url`.
async fn redis_trackers(
    spec: &BackendSpec,
    url: &str,
    processes: u32,
) -> Result<Vec<Arc<backend_redis::RedisTracker>>> {
    let mut trackers = Vec::new();
    for _ in 0..processes.max(1) {
        let t = backend_redis::RedisTracker::connect(url)
            .await
            .map_err(|e| Error::Backend {
                spec: spec.label(),
                message: scrub(format!("cannot track: {e}"), url),
            })?;
        trackers.push(Arc::new(t));
    }
    Ok(trackers)
}

/// The shared Redis seen by processes tracking it for real: a write
/// returns once every process's tracking connection has the invalidations
/// it caused ([`RedisTracker::settle`](backend_redis::RedisTracker::settle)),
/// so that in virtual time, where the next event may come right after, an
/// invalidation is delivered with the write (real delivery takes tens of
/// µs of real time, which virtual time cannot replay).
#[derive(Debug)]
struct Settling {
    inner: Arc<dyn Backend>,
    trackers: Vec<Arc<backend_redis::RedisTracker>>,
}

impl Settling {
    async fn settle<T>(&self, r: cache_core::Result<T>) -> cache_core::Result<T> {
        for t in &self.trackers {
            t.settle().await?;
        }
        r
    }
}

#[cache_core::async_trait]
impl Backend for Settling {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> cache_core::Capabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &cache_core::Key) -> cache_core::Result<Option<cache_core::Bytes>> {
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[cache_core::Key]) -> cache_core::Result<Vec<Option<cache_core::Bytes>>> {
        self.inner.get_many(keys).await
    }
    async fn set(
        &self,
        key: &cache_core::Key,
        value: cache_core::Bytes,
        ttl: cache_core::Ttl,
    ) -> cache_core::Result<()> {
        let r = self.inner.set(key, value, ttl).await;
        self.settle(r).await
    }
    async fn set_many(
        &self,
        entries: &[(cache_core::Key, cache_core::Bytes)],
        ttl: cache_core::Ttl,
    ) -> cache_core::Result<()> {
        let r = self.inner.set_many(entries, ttl).await;
        self.settle(r).await
    }
    async fn add(
        &self,
        key: &cache_core::Key,
        value: cache_core::Bytes,
        ttl: cache_core::Ttl,
    ) -> cache_core::Result<bool> {
        let r = self.inner.add(key, value, ttl).await;
        self.settle(r).await
    }
    async fn incr(&self, key: &cache_core::Key, delta: u64) -> cache_core::Result<u64> {
        let r = self.inner.incr(key, delta).await;
        self.settle(r).await
    }
    async fn delete(&self, key: &cache_core::Key) -> cache_core::Result<bool> {
        let r = self.inner.delete(key).await;
        self.settle(r).await
    }
    async fn delete_many(&self, keys: &[cache_core::Key]) -> cache_core::Result<u64> {
        let r = self.inner.delete_many(keys).await;
        self.settle(r).await
    }
    async fn delete_prefix(&self, prefix: &str) -> cache_core::Result<u64> {
        let r = self.inner.delete_prefix(prefix).await;
        self.settle(r).await
    }
    async fn server_stats(&self) -> cache_core::Result<Option<cache_core::ServerStats>> {
        self.inner.server_stats().await
    }
}

/// What a fault event does to the process whose two tiers are `tier`,
/// with its backplane endpoint or tracking connection.
fn fault(tier: &TwoTier, bus: Option<LocalBackplane>, tracker: Option<Arc<LocalTracker>>) -> TierFaultFn {
    let known = tier.known().cloned();
    Arc::new(move |kind: TierFaultKind| match kind {
        TierFaultKind::Disconnect => {
            if let Some(t) = &tracker {
                t.reconnect();
            } else if let Some(k) = known.as_ref().filter(|_| bus.is_some()) {
                k.lost();
                k.subscribed();
            }
        }
        TierFaultKind::LoseNotice => {
            if let Some(b) = &bus {
                b.lose_next(1);
            }
        }
    })
}

/// `message` (a client library's words) with the passwords of `url`
/// replaced by `***`.
fn scrub(message: String, url: &str) -> String {
    cache_core::redact::scrub(&message, url)
}

/// How long the connect-time probe may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// One read of a key nobody writes: a server that does not speak the
/// protocol (a `memcache://` URL pointing at Redis or at any other TCP
/// service) fails here, before the run, instead of running to the end with
/// every request an error.
async fn probe(backend: &dyn Backend, spec: &BackendSpec, protocol: &str, url: &str) -> Result<()> {
    let key = cache_core::Key::new("cache-sim:probe").map_err(Error::Cache)?;
    let failed = |why: String| Error::Backend {
        spec: spec.label(),
        message: scrub(format!("the server does not answer as {protocol}: {why}"), url),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, backend.get(&key)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(_) => Err(failed(format!("no answer within {PROBE_TIMEOUT:?}"))),
    }
}
