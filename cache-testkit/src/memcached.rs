//! `memcached` servers for tests and benchmarks (issue #4).
//!
//! Each [`MemcachedServer`] is a real `memcached` process listening on
//! `127.0.0.1` at a free port (UDP off), with its log in a temporary
//! directory, killed when dropped. [`MemcachedServer::pool`] starts several
//! for pool tests; [`pool_url`] turns them into the URL the Memcached backend
//! parses.
//!
//! ```no_run
//! use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
//! let server = MemcachedServer::spawn(&MemcachedConfig::default())?;
//! println!("connect to {}", server.url());
//! # Ok::<(), cache_testkit::HarnessError>(())
//! ```
//!
//! The binary is `$MEMCACHED_BIN` when set, else `memcached` on `PATH`; when
//! neither exists the error names the Debian package `memcached`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use super::process::{find_binary, free_port, retry_start, HarnessError, ServerProcess};

/// Environment variable that overrides the path of the `memcached` binary.
pub const MEMCACHED_BIN_ENV: &str = "MEMCACHED_BIN";

/// Debian package that provides `memcached`.
pub const MEMCACHED_PACKAGE: &str = "memcached";

/// How a test server is started. Defaults match a stock `memcached` (64 MiB,
/// 1 MiB items) except for the thread count, which is kept small because
/// tests run many servers side by side on a small machine.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemcachedConfig {
    /// Item memory in MiB (`-m`).
    pub memory_mb: u32,
    /// Largest item in bytes (`-I`), header and key included. Memcached
    /// requires it to be at least 1 KiB and at most half of the memory.
    pub item_size: usize,
    /// Worker threads (`-t`).
    pub threads: u32,
}

impl Default for MemcachedConfig {
    fn default() -> Self {
        MemcachedConfig {
            memory_mb: 64,
            item_size: 1024 * 1024,
            threads: 2,
        }
    }
}

impl MemcachedConfig {
    /// Sets [`Self::memory_mb`].
    #[must_use]
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// Sets [`Self::item_size`].
    #[must_use]
    pub fn item_size(mut self, bytes: usize) -> Self {
        self.item_size = bytes;
        self
    }

    /// Sets [`Self::threads`].
    #[must_use]
    pub fn threads(mut self, threads: u32) -> Self {
        self.threads = threads;
        self
    }

    fn args(&self, port: u16) -> Vec<String> {
        vec![
            "-l".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-U".into(),
            "0".into(),
            "-m".into(),
            self.memory_mb.to_string(),
            "-I".into(),
            self.item_size.to_string(),
            "-t".into(),
            self.threads.to_string(),
            // `-v` logs errors and warnings only; the log lives in the temp dir.
            "-v".into(),
            // memcached refuses to run as root without `-u` (containers, CI)
            // and ignores `-u` otherwise, so naming root here is harmless.
            "-u".into(),
            "root".into(),
        ]
    }
}

/// A running `memcached` on a loopback port, killed on drop.
#[derive(Debug)]
pub struct MemcachedServer {
    process: ServerProcess,
    config: MemcachedConfig,
    // Kept for the log file; removed when the server is dropped. Declared
    // after `process` so the process dies before its directory goes.
    _dir: tempfile::TempDir,
}

impl MemcachedServer {
    /// Starts one server on a free port.
    ///
    /// Retries on a fresh port when the chosen one was taken between picking
    /// and binding (detected by asking the server for its pid).
    pub fn spawn(config: &MemcachedConfig) -> Result<Self, HarnessError> {
        let binary = find_binary("memcached", MEMCACHED_BIN_ENV, MEMCACHED_PACKAGE)?;
        let dir = tempfile::Builder::new().prefix("memcached-test-").tempdir()?;
        let log: PathBuf = dir.path().join("memcached.log");
        let process = retry_start("memcached", || {
            let port = free_port()?;
            let mut process = ServerProcess::spawn("memcached", &binary, config.args(port), port, log.clone())?;
            if answers_as(&process) {
                return Ok(process);
            }
            process.stop();
            Err(HarnessError::StartFailed {
                name: "memcached".into(),
                port,
                detail: "another process answered on the port (port race)".into(),
            })
        })?;
        Ok(MemcachedServer {
            process,
            config: config.clone(),
            _dir: dir,
        })
    }

    /// Starts `n` servers with the same configuration, for pool tests.
    pub fn pool(n: usize, config: &MemcachedConfig) -> Result<Vec<Self>, HarnessError> {
        (0..n).map(|_| Self::spawn(config)).collect()
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// `memcache://127.0.0.1:port`, the form the Memcached backend parses.
    pub fn url(&self) -> String {
        format!("memcache://{}", self.addr())
    }

    /// The configuration the server was started with.
    pub fn config(&self) -> &MemcachedConfig {
        &self.config
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// The server's OS process id while it runs (to signal it: a fault
    /// test's `SIGSTOP`).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Kills the server (SIGKILL, like a crash); its data is lost.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Freezes the server (`SIGSTOP`): its items stay, nothing is answered
    /// until [`Self::resume`].
    pub fn pause(&self) -> Result<(), HarnessError> {
        self.process.pause()
    }

    /// Resumes a paused server (`SIGCONT`).
    pub fn resume(&self) -> Result<(), HarnessError> {
        self.process.resume()
    }

    /// Starts the server again on the same port (empty, as after a crash).
    pub fn start(&mut self) -> Result<(), HarnessError> {
        self.process.start()?;
        if answers_as(&self.process) {
            Ok(())
        } else {
            let port = self.port();
            self.process.stop();
            Err(HarnessError::StartFailed {
                name: "memcached".into(),
                port,
                detail: "another process took the port while the server was down".into(),
            })
        }
    }

    /// Sends `stats` and returns the `STAT name value` pairs, e.g. to count
    /// `curr_items` per server in a pool test.
    pub fn stats(&self) -> Result<Vec<(String, String)>, HarnessError> {
        stats(self.addr())
    }

    /// One statistic as a number (`curr_items`, `cmd_get`, …).
    pub fn stat_u64(&self, name: &str) -> Result<u64, HarnessError> {
        self.stats()?
            .into_iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| {
                HarnessError::Io(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("memcached on port {} has no numeric stat {name}", self.port()),
                ))
            })
    }
}

/// `memcache://host:port,host:port` for a pool, in the given order.
pub fn pool_url(servers: &[MemcachedServer]) -> String {
    let addrs: Vec<String> = servers.iter().map(|s| s.addr().to_string()).collect();
    format!("memcache://{}", addrs.join(","))
}

/// True when the process answering on the port reports our child's pid.
fn answers_as(process: &ServerProcess) -> bool {
    let Some(pid) = process.pid() else { return false };
    let addr = SocketAddr::from(([127, 0, 0, 1], process.port()));
    match stats(addr) {
        Ok(stats) => stats.iter().any(|(k, v)| k == "pid" && v == &pid.to_string()),
        Err(_) => false,
    }
}

fn stats(addr: SocketAddr) -> Result<Vec<(String, String)>, HarnessError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"stats\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut out = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim_end();
        if trimmed == "END" {
            break;
        }
        let mut parts = trimmed.splitn(3, ' ');
        if let (Some("STAT"), Some(name), Some(value)) = (parts.next(), parts.next(), parts.next()) {
            out.push((name.to_owned(), value.to_owned()));
        } else {
            return Err(HarnessError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unexpected stats line from memcached at {addr}: {trimmed}"),
            )));
        }
    }
    Ok(out)
}
