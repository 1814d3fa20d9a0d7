//! One row's processes: a copy of the seeded database, the cache servers,
//! the service processes, and the services' cache counters.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::driver::Targets;
use super::procs::{get_json, Service, ServiceConfig};
use super::servers::Servers;
use super::spec::{CacheSpec, FailSafeSettings};
use super::LoadError;

/// What every rig of a run shares.
#[derive(Debug, Clone)]
pub struct RigSettings {
    /// The `calendar-service` binary.
    pub service_bin: PathBuf,
    /// The seeded database every rig copies.
    pub template_db: PathBuf,
    /// Service processes.
    pub processes: usize,
    /// The services' `--cache-ttl-ms`.
    pub ttl_ms: u64,
    /// The services' `--short-ttl-ms`.
    pub short_ttl_ms: u64,
    /// The fail-safe settings of rows with a database fault (the tool's
    /// flags), unless a row sets its own.
    pub fail_safe_defaults: FailSafeSettings,
}

/// A row's running processes; everything stops when it is dropped.
#[derive(Debug)]
pub struct Rig {
    /// The service processes (the `service-restart` fault restarts one).
    pub services: Arc<Mutex<Vec<Service>>>,
    /// The cache servers.
    pub servers: Arc<Mutex<Servers>>,
    /// Where requests go.
    pub targets: Arc<Targets>,
    /// The row's database file.
    pub db: PathBuf,
    /// The cache URL the services got.
    pub cache_url: String,
    /// Counters of service processes that were restarted, taken just
    /// before they were killed.
    pub lost_counters: Arc<Mutex<Vec<Counters>>>,
    // Last: the directory outlives the processes writing into it.
    _dir: tempfile::TempDir,
}

/// A service's cache counters (`/api/cache`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Feed requests served from the cache.
    pub hits: u64,
    /// Feed requests not served from the cache.
    pub misses: u64,
    /// Backend round trips of the read path.
    pub read_ops: u64,
    /// Backend errors on the read path.
    pub read_errors: u64,
    /// Invalidations that failed.
    pub invalidation_errors: u64,
    /// Value bytes the read path got from the backend.
    pub bytes_read: u64,
    /// Reads answered by fail-safe.
    pub fail_safe_served: u64,
    /// Of those, from a feed with old stamps (the header's `stale`).
    pub fail_safe_old_stamps: u64,
    /// Reads answered with an error: the query failed or timed out and
    /// fail-safe had nothing.
    pub failed_reads: u64,
    /// Feed queries that failed.
    pub loader_errors: u64,
    /// Feed queries given up at the hard timeout.
    pub load_timeouts: u64,
    /// Reads answered by fail-safe at the soft timeout.
    pub soft_timeouts: u64,
    /// Reads that bypassed the cache because a write to their calendars
    /// was open (`stamped`'s fence).
    pub bypassed: u64,
}

impl std::ops::Add for Counters {
    type Output = Counters;
    fn add(self, o: Counters) -> Counters {
        Counters {
            hits: self.hits + o.hits,
            misses: self.misses + o.misses,
            read_ops: self.read_ops + o.read_ops,
            read_errors: self.read_errors + o.read_errors,
            invalidation_errors: self.invalidation_errors + o.invalidation_errors,
            bytes_read: self.bytes_read + o.bytes_read,
            fail_safe_served: self.fail_safe_served + o.fail_safe_served,
            fail_safe_old_stamps: self.fail_safe_old_stamps + o.fail_safe_old_stamps,
            failed_reads: self.failed_reads + o.failed_reads,
            loader_errors: self.loader_errors + o.loader_errors,
            load_timeouts: self.load_timeouts + o.load_timeouts,
            soft_timeouts: self.soft_timeouts + o.soft_timeouts,
            bypassed: self.bypassed + o.bypassed,
        }
    }
}

impl Counters {
    /// Reads `/api/cache` of the service on `port`.
    pub fn fetch(port: u16) -> Result<Counters, LoadError> {
        let v = get_json(port, "/api/cache")?;
        let n = |name: &str| v[name].as_u64().unwrap_or(0);
        let calls = v["read_ops"]["ops"]
            .as_array()
            .map(|ops| ops.iter().map(|o| o["calls"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
        Ok(Counters {
            hits: n("hits"),
            misses: n("misses"),
            read_ops: calls,
            read_errors: n("read_errors"),
            invalidation_errors: n("invalidation_errors"),
            bytes_read: v["read_ops"]["bytes_read"].as_u64().unwrap_or(0),
            fail_safe_served: n("fail_safe_served"),
            // The library's `fail_safe_stale`: answered from old stamps.
            fail_safe_old_stamps: n("fail_safe_stale"),
            failed_reads: n("failed_reads"),
            loader_errors: n("loader_errors"),
            load_timeouts: n("load_timeouts"),
            soft_timeouts: n("soft_timeouts"),
            bypassed: n("bypassed"),
        })
    }

    /// Hits per feed request.
    pub fn hit_rate(&self) -> f64 {
        self.hits as f64 / (self.hits + self.misses).max(1) as f64
    }

    /// Read-path round trips per feed request.
    pub fn ops_per_read(&self) -> f64 {
        self.read_ops as f64 / (self.hits + self.misses).max(1) as f64
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Rig {
    /// Starts a rig: the servers `cache` needs (Redis with `maxmemory`),
    /// a copy of the template database, and the services with `strategy`
    /// in key namespace `namespace`, with `fail_safe`, and the test-only
    /// fault endpoint when `test_db_faults`. Blocking (it waits for ports).
    pub fn start(
        settings: &RigSettings,
        cache: &CacheSpec,
        strategy: &str,
        maxmemory: Option<u64>,
        namespace: &str,
        fail_safe: FailSafeSettings,
        test_db_faults: bool,
    ) -> Result<Rig, LoadError> {
        let dir = tempfile::Builder::new()
            .prefix("calendar-load-")
            .tempdir()
            .map_err(|source| LoadError::Io {
                what: "a temporary directory".into(),
                source,
            })?;
        let db = dir.path().join("calendar.db");
        copy_db(&settings.template_db, &db)?;
        let servers = Servers::start(cache, maxmemory)?;
        let cache_url = servers.cache_url(cache);
        let config = ServiceConfig {
            binary: settings.service_bin.clone(),
            db: db.clone(),
            cache_url: cache_url.clone(),
            strategy: strategy.to_owned(),
            namespace: namespace.to_owned(),
            ttl_ms: settings.ttl_ms,
            short_ttl_ms: settings.short_ttl_ms,
            log_dir: dir.path().to_owned(),
            fail_safe,
            test_db_faults,
        };
        let mut services = Vec::with_capacity(settings.processes);
        for i in 0..settings.processes {
            services.push(Service::start(i, &config)?);
        }
        let targets = Arc::new(Targets::new(services.iter().map(Service::port).collect()));
        Ok(Rig {
            services: Arc::new(Mutex::new(services)),
            servers: Arc::new(Mutex::new(servers)),
            targets,
            db,
            cache_url,
            lost_counters: Arc::new(Mutex::new(Vec::new())),
            _dir: dir,
        })
    }

    /// Every service's counters now, plus those of restarted ones.
    pub fn counters(&self) -> Result<Counters, LoadError> {
        let ports: Vec<u16> = lock(&self.services).iter().map(Service::port).collect();
        let mut total = lock(&self.lost_counters)
            .iter()
            .fold(Counters::default(), |a, b| a + *b);
        for port in ports {
            total = total + Counters::fetch(port)?;
        }
        Ok(total)
    }

    /// Stops the services (the database file stays for the judge).
    pub fn stop_services(&self) {
        for s in lock(&self.services).iter_mut() {
            s.kill();
        }
    }

    /// Services that exited on their own (crashed) during the row.
    pub fn crashed(&self) -> Vec<String> {
        lock(&self.services)
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.exited().map(|st| format!("service {i}: {st}")))
            .collect()
    }

    /// The directory of the row's logs.
    pub fn log_dir(&self) -> &Path {
        self._dir.path()
    }
}

fn copy_db(from: &Path, to: &Path) -> Result<(), LoadError> {
    std::fs::copy(from, to).map(|_| ()).map_err(|source| LoadError::Io {
        what: format!("copying {} to {}", from.display(), to.display()),
        source,
    })
}
