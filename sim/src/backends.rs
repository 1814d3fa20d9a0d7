//! `--backend` specs and connecting them: the one place that knows which
//! stores exist.
//!
//! `locmem` gives every cell fresh in-process stores (one per simulated app
//! process). `redis://…` / `redis+cluster://…` and `memcache://…` connect to
//! a real server shared by every simulated process; the runner gives each
//! cell its own key namespace there, so cells (and earlier runs) never read
//! each other's entries and nothing on the server needs flushing.

use std::sync::Arc;

use backend_locmem::LocmemBackend;
use cache_core::{Backend, ManualClock};

use crate::engine::LiveKeys;
use crate::error::{Error, Result};

/// A parsed `--backend` value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendSpec {
    /// The in-process store, one per simulated app process.
    Locmem {
        /// Capacity of each process's store, bytes.
        capacity_bytes: u64,
    },
    /// Redis, single node or cluster (`redis://host:port`, `redis+cluster://…`).
    Redis(String),
    /// Memcached, one server or a pool (`memcache://host:port[,host:port]`).
    Memcache(String),
}

impl BackendSpec {
    /// Parses `locmem`, `locmem:<MiB>`, `redis://…`, `redis+cluster://…`,
    /// `memcache://…`.
    pub fn parse(spec: &str) -> Result<Self> {
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
        if spec.starts_with("redis://") || spec.starts_with("rediss://") || spec.starts_with("redis+cluster://") {
            return Ok(BackendSpec::Redis(spec.to_owned()));
        }
        if spec.starts_with("memcache://") {
            return Ok(BackendSpec::Memcache(spec.to_owned()));
        }
        Err(Error::Backend {
            spec: spec.to_owned(),
            message: "unknown backend; use locmem, redis://host:port or memcache://host:port".into(),
        })
    }

    /// The label used in reports (`locmem`, or the URL).
    pub fn label(&self) -> String {
        match self {
            BackendSpec::Locmem { .. } => "locmem".to_owned(),
            BackendSpec::Redis(u) | BackendSpec::Memcache(u) => u.clone(),
        }
    }

    /// True when cells on this backend may run in parallel: each gets its
    /// own stores. A server is shared, so its cells run one at a time.
    pub fn isolated_per_cell(&self) -> bool {
        matches!(self, BackendSpec::Locmem { .. })
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
            })
        }
        BackendSpec::Redis(url) => {
            let backend = backend_redis::RedisBackend::connect(url.as_str())
                .await
                .map_err(|e| Error::Backend {
                    spec: spec.label(),
                    message: format!("cannot connect: {e}"),
                })?;
            Ok(Connected {
                backends: vec![Arc::new(backend)],
                live_keys: Vec::new(),
            })
        }
        BackendSpec::Memcache(url) => {
            let backend = backend_memcached::MemcachedBackend::from_url(url)
                .await
                .map_err(|e| Error::Backend {
                    spec: spec.label(),
                    message: format!("cannot connect: {e}"),
                })?;
            Ok(Connected {
                backends: vec![Arc::new(backend)],
                live_keys: Vec::new(),
            })
        }
    }
}
