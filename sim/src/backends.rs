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
    /// Redis, single node or cluster (`redis://host:port`, `redis+cluster://…`).
    Redis(String),
    /// Memcached, one server or a pool (`memcache://host:port[,host:port]`).
    Memcache(String),
}

impl std::fmt::Debug for BackendSpec {
    // Not derived: a URL's password must not reach a log or an error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendSpec({})", self.label())
    }
}

/// `url` with the password of its user info, and the value of any
/// `password=` query parameter, replaced by `***`: what reports, errors and
/// progress show of a backend URL.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    // The user info: between `://` and the first `@` before any path.
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            let shown = match userinfo.find(':') {
                Some(colon) => format!("{}:***", &userinfo[..colon]),
                // A lone token (`redis://token@host`) is a password too.
                None if !userinfo.is_empty() => "***".to_owned(),
                None => String::new(),
            };
            out = format!("{}{shown}{}", &out[..scheme_end + 3], &rest[at..]);
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") => {
                    format!("{k}=***")
                }
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

impl BackendSpec {
    /// Parses `locmem`, `locmem:<MiB>`, `redis://…`, `redis+cluster://…`,
    /// `memcache://…`, or `env:NAME`: the value of environment variable
    /// `NAME` (so that a password need not be on the command line).
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
            spec: redact_url(spec),
            message: "unknown backend; use locmem, locmem:<MiB>, redis://host:port, memcache://host:port or env:NAME"
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
            BackendSpec::Redis(u) | BackendSpec::Memcache(u) => redact_url(u),
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
                    message: scrub(format!("cannot connect: {e}"), url),
                })?;
            probe(&backend, spec, "Redis", url).await?;
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
                    message: scrub(format!("cannot connect: {e}"), url),
                })?;
            probe(&backend, spec, "memcached", url).await?;
            Ok(Connected {
                backends: vec![Arc::new(backend)],
                live_keys: Vec::new(),
            })
        }
    }
}

/// `message` with the password of `url` (if any) replaced by `***`, for
/// errors that quote what a client library said.
fn scrub(message: String, url: &str) -> String {
    let shown = redact_url(url);
    let mut out = message.replace(url, &shown);
    for secret in secrets(url) {
        if secret.len() >= 3 {
            out = out.replace(&secret, "***");
        }
    }
    out
}

/// The passwords in `url`: its user info's, and `password=` query values.
fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            found.push(userinfo.split_once(':').map_or(userinfo, |(_, p)| p).to_owned());
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for kv in query.split('&') {
            if let Some((k, v)) = kv.split_once('=') {
                if k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass") {
                    found.push(v.to_owned());
                }
            }
        }
    }
    found.retain(|s| !s.is_empty());
    found
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
