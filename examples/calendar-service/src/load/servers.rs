//! The cache servers of a row (`redis-server`, `memcached`), started with
//! cache-core's testkit on free loopback ports and stopped by pid when
//! dropped, and the faults that act on them: crash and restart, freeze and
//! thaw (by signal, by pid), and dropping the pub/sub clients.

use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::redis::{command, RedisServer};
use rustix::process::{kill_process, Pid, Signal};

use super::spec::CacheSpec;
use super::LoadError;

/// The servers one row's cache needs.
#[derive(Debug, Default)]
pub struct Servers {
    /// Redis, when the cache uses it.
    pub redis: Option<RedisServer>,
    /// Memcached, when the cache uses it.
    pub memcached: Option<MemcachedServer>,
}

/// Memcached's memory for a row: far above a row's working set, so it
/// never evicts (the stock 64 MiB).
const MEMCACHED_MB: u32 = 64;

impl Servers {
    /// Starts what `cache` needs; Redis with `maxmemory` bytes and
    /// `allkeys-lru` when given.
    pub fn start(cache: &CacheSpec, maxmemory: Option<u64>) -> Result<Servers, LoadError> {
        let mut s = Servers::default();
        if cache.uses_redis() {
            let max = maxmemory.map(|b| b.to_string());
            let args: Vec<&str> = match &max {
                Some(b) => vec!["--maxmemory", b, "--maxmemory-policy", "allkeys-lru"],
                None => Vec::new(),
            };
            s.redis = Some(RedisServer::with_args(&args).map_err(LoadError::Harness)?);
        }
        if cache.uses_memcached() {
            let config = MemcachedConfig::default().memory_mb(MEMCACHED_MB);
            s.memcached = Some(MemcachedServer::spawn(&config).map_err(LoadError::Harness)?);
        }
        Ok(s)
    }

    /// `redis://127.0.0.1:<port>/`, when running one.
    pub fn redis_url(&self) -> Option<String> {
        self.redis.as_ref().map(RedisServer::url)
    }

    /// `memcache://127.0.0.1:<port>`, when running one.
    pub fn memcache_url(&self) -> Option<String> {
        self.memcached.as_ref().map(MemcachedServer::url)
    }

    /// The cache URL for the services.
    pub fn cache_url(&self, cache: &CacheSpec) -> String {
        cache.url(self.redis_url().as_deref(), self.memcache_url().as_deref())
    }

    /// `kill -9` of every server, then a restart on the same port (empty).
    /// Returns how long they were down, ms.
    pub fn crash_and_restart(&mut self) -> Result<u64, LoadError> {
        let started = std::time::Instant::now();
        if let Some(r) = &mut self.redis {
            r.stop();
        }
        if let Some(m) = &mut self.memcached {
            m.stop();
        }
        if let Some(r) = &mut self.redis {
            r.start().map_err(LoadError::Harness)?;
        }
        if let Some(m) = &mut self.memcached {
            m.start().map_err(LoadError::Harness)?;
        }
        Ok(started.elapsed().as_millis() as u64)
    }

    /// Sends `signal` to every server.
    fn signal(&self, signal: Signal) -> Result<(), LoadError> {
        let pids = [
            self.redis.as_ref().and_then(RedisServer::pid),
            self.memcached.as_ref().and_then(MemcachedServer::pid),
        ];
        for pid in pids.into_iter().flatten() {
            let pid = i32::try_from(pid)
                .ok()
                .and_then(Pid::from_raw)
                .ok_or_else(|| LoadError::Io {
                    what: format!("pid {pid}"),
                    source: std::io::Error::other("not a valid pid"),
                })?;
            kill_process(pid, signal).map_err(|e| LoadError::Io {
                what: format!("signalling server pid {}", pid.as_raw_pid()),
                source: e.into(),
            })?;
        }
        Ok(())
    }

    /// `SIGSTOP`: the servers freeze (connections stay open, nothing is
    /// answered).
    pub fn freeze(&self) -> Result<(), LoadError> {
        self.signal(Signal::STOP)
    }

    /// `SIGCONT`: the servers go on where they stopped.
    pub fn thaw(&self) -> Result<(), LoadError> {
        self.signal(Signal::CONT)
    }

    /// `CLIENT KILL TYPE pubsub` on Redis: every subscriber connection
    /// drops. Returns how many clients were killed.
    pub fn kill_pubsub_clients(&self) -> Result<u64, LoadError> {
        let Some(r) = &self.redis else {
            return Ok(0);
        };
        let reply = command(r.port(), &["CLIENT", "KILL", "TYPE", "pubsub"]).map_err(|source| LoadError::Io {
            what: "CLIENT KILL TYPE pubsub".into(),
            source,
        })?;
        Ok(reply.trim().parse().unwrap_or(0))
    }

    /// Redis's `evicted_keys` and `expired_keys`, when running Redis.
    pub fn redis_key_stats(&self) -> Option<KeyStats> {
        let r = self.redis.as_ref()?;
        let info = command(r.port(), &["INFO", "stats"]).ok()?;
        let stat = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        Some(KeyStats {
            evicted: stat("evicted_keys"),
            expired: stat("expired_keys"),
        })
    }
}

/// What Redis dropped by itself: keys evicted under `maxmemory`, keys
/// expired by their TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyStats {
    /// `evicted_keys`.
    pub evicted: u64,
    /// `expired_keys`.
    pub expired: u64,
}

impl Drop for Servers {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too; thaw first anyway, so that
        // nothing is left stopped if a kill fails.
        let _ = self.thaw();
    }
}
