//! The service processes of a row: `calendar-service` binaries on free
//! loopback ports, one SQLite file, stopped by pid.
//!
//! Each [`Service`] owns its child process and kills it (SIGKILL) and
//! reaps it when dropped, so every way out of a run (an error, a panic, the
//! run future dropped on Ctrl-C) stops it. A service can be killed and
//! started again on the same port (the `service-restart` fault).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_testkit::process::{free_port, wait_for_port};

use super::spec::FailSafeSettings;
use super::LoadError;

/// How long a service may take to answer after its start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What every service process of a row is started with.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The `calendar-service` binary.
    pub binary: PathBuf,
    /// The SQLite file they share.
    pub db: PathBuf,
    /// `--cache`.
    pub cache_url: String,
    /// `--strategy`.
    pub strategy: String,
    /// `--cache-namespace`.
    pub namespace: String,
    /// `--cache-ttl-ms`.
    pub ttl_ms: u64,
    /// `--short-ttl-ms`.
    pub short_ttl_ms: u64,
    /// Where their logs go (`service-<i>.log`).
    pub log_dir: PathBuf,
    /// `--fail-safe-s`, `--soft-timeout-ms`, `--hard-timeout-ms`.
    pub fail_safe: FailSafeSettings,
    /// `--test-db-faults`: `POST /test/db-fault` injects database faults.
    pub test_db_faults: bool,
}

/// One running `calendar-service`; killed on drop.
#[derive(Debug)]
pub struct Service {
    index: usize,
    port: u16,
    config: ServiceConfig,
    child: Option<Child>,
}

impl Service {
    /// Starts service `index` on a free port and waits until it answers.
    pub fn start(index: usize, config: &ServiceConfig) -> Result<Service, LoadError> {
        let mut last = None;
        // A free port may be taken by someone else before the service binds
        // it: try a few.
        for _ in 0..5 {
            let port = free_port().map_err(LoadError::Harness)?;
            let mut s = Service {
                index,
                port,
                config: config.clone(),
                child: None,
            };
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| LoadError::Service {
            index,
            message: "no attempt made".into(),
        }))
    }

    fn log_path(&self) -> PathBuf {
        self.config.log_dir.join(format!("service-{}.log", self.index))
    }

    fn spawn(&mut self) -> Result<(), LoadError> {
        let c = &self.config;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|source| LoadError::Io {
                what: format!("service log {}", self.log_path().display()),
                source,
            })?;
        let err_log = log.try_clone().map_err(|source| LoadError::Io {
            what: "service log".into(),
            source,
        })?;
        let mut command = Command::new(&c.binary);
        for (flag, value) in [
            ("--fail-safe-s", c.fail_safe.fail_safe_s),
            ("--soft-timeout-ms", c.fail_safe.soft_timeout_ms),
            ("--hard-timeout-ms", c.fail_safe.hard_timeout_ms),
        ] {
            if let Some(v) = value {
                command.args([flag, &v.to_string()]);
            }
        }
        if c.test_db_faults {
            command.arg("--test-db-faults");
        }
        let child = command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--db")
            .arg(&c.db)
            .args(["--cache", &c.cache_url, "--strategy", &c.strategy])
            .args(["--cache-namespace", &c.namespace])
            .args(["--cache-ttl-ms", &c.ttl_ms.to_string()])
            .args(["--short-ttl-ms", &c.short_ttl_ms.to_string()])
            // Warnings and errors only: a cache outage logs one line per
            // failed call, which is what the log is for.
            .env("RUST_LOG", "warn")
            .env_remove("CALENDAR_CACHE_URL")
            .env_remove("CALENDAR_STRATEGY")
            .env_remove("CALENDAR_FAIL_SAFE_S")
            .env_remove("CALENDAR_SOFT_TIMEOUT_MS")
            .env_remove("CALENDAR_HARD_TIMEOUT_MS")
            .env_remove("CALENDAR_TEST_DB_FAULTS")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| LoadError::Service {
                index: self.index,
                message: format!("cannot run {}: {e}", c.binary.display()),
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Err(self.failed(&format!("exited with {status}")));
            }
            if wait_for_port(self.port, Duration::from_millis(200)) {
                return Ok(());
            }
        }
        self.kill();
        Err(self.failed("did not listen within 30 s"))
    }

    fn failed(&self, what: &str) -> LoadError {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        LoadError::Service {
            index: self.index,
            message: format!(
                "{what} (port {}); last log lines: {}",
                self.port,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        }
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it (SIGKILL: a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port after [`Self::kill`].
    pub fn restart(&mut self) -> Result<(), LoadError> {
        self.kill();
        self.spawn()
    }

    /// Whether it exited by itself (a crash): its exit status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The default `--service-bin`: `calendar-service` next to this binary
/// (cargo builds both into one directory).
pub fn default_service_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let sibling = exe.parent()?.join("calendar-service");
    sibling.is_file().then_some(sibling)
}

/// Checks that `path` runs as a calendar service (`--help` names it).
pub fn check_service_binary(path: &Path) -> Result<(), LoadError> {
    let out = Command::new(path).arg("--help").output().map_err(|e| {
        LoadError::Flag(format!(
            "--service-bin {}: cannot run it: {e} (build it with `cargo build -p calendar-service`)",
            path.display()
        ))
    })?;
    if String::from_utf8_lossy(&out.stdout).contains("--cache-ttl-ms") {
        Ok(())
    } else {
        Err(LoadError::Flag(format!(
            "--service-bin {}: not a calendar-service with --cache-ttl-ms (rebuild it)",
            path.display()
        )))
    }
}

/// `GET path` on `127.0.0.1:port` over plain HTTP/1.1 (blocking, 5 s
/// timeout): the body as JSON. For the services' `/api/cache` counters.
pub fn get_json(port: u16, path: &str) -> Result<serde_json::Value, LoadError> {
    let (_, body) = exchange(port, "GET", path, None)?;
    serde_json::from_str(&body).map_err(|e| LoadError::Io {
        what: format!("GET http://127.0.0.1:{port}{path}"),
        source: std::io::Error::other(format!("not JSON: {e}")),
    })
}

/// `POST path` with a JSON `body` on `127.0.0.1:port` (blocking, 5 s
/// timeout); an answer other than 2xx is an error naming its status and
/// body. For `POST /test/db-fault`.
pub fn post_json(port: u16, path: &str, body: &serde_json::Value) -> Result<(), LoadError> {
    let (status, answer) = exchange(port, "POST", path, Some(&body.to_string()))?;
    if (200..300).contains(&status) {
        return Ok(());
    }
    Err(LoadError::Io {
        what: format!("POST http://127.0.0.1:{port}{path}"),
        source: std::io::Error::other(format!("answered {status}: {answer}")),
    })
}

/// One HTTP/1.1 exchange with `Connection: close`: the status and the body.
fn exchange(port: u16, method: &str, path: &str, json: Option<&str>) -> Result<(u16, String), LoadError> {
    use std::io::{Read, Write};
    let io = |source: std::io::Error| LoadError::Io {
        what: format!("{method} http://127.0.0.1:{port}{path}"),
        source,
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(io)?;
    let body = json.unwrap_or_default();
    let content = match json {
        Some(b) => format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()),
        None => String::new(),
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{content}Connection: close\r\n\r\n{body}"
    )
    .map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| io(std::io::Error::other(format!("no HTTP status in {head:?}"))))?;
    Ok((status, body.to_owned()))
}
