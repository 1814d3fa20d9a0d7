//! Process machinery shared by the server harnesses.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a test server could not be provided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The server binary is not installed.
    #[error(
        "`{binary}` not found (looked at ${env_var} and PATH). Install it with \
         `sudo apt-get install -y {package}` (Debian/Ubuntu), or set {env_var} to its path"
    )]
    MissingBinary {
        /// Binary name, e.g. `redis-server`.
        binary: String,
        /// Environment variable that overrides the path.
        env_var: String,
        /// Debian package that provides it.
        package: String,
    },
    /// The process started but did not accept connections in time, or exited.
    #[error("{name} did not start on port {port}: {detail}")]
    StartFailed {
        /// Server name.
        name: String,
        /// Port it was meant to listen on.
        port: u16,
        /// What happened (exit status, last log lines).
        detail: String,
    },
    /// An I/O error while preparing or running a server.
    #[error("test server I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Finds a binary: `$env_var` if set, else `name` on `PATH`.
pub fn find_binary(name: &str, env_var: &str, package: &str) -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os(env_var) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(HarnessError::MissingBinary {
        binary: name.to_owned(),
        env_var: env_var.to_owned(),
        package: package.to_owned(),
    })
}

/// A loopback port that was free a moment ago. Another process may take it
/// before the server binds; callers retry the start on a new port.
pub fn free_port() -> Result<u16, HarnessError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A running server process, killed (and reaped) on drop. It can be stopped
/// and started again on the same port, for fault tests.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    binary: PathBuf,
    args: Vec<String>,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Spawns `binary args…` (its output to `log`) and waits until it accepts
    /// connections on `port`.
    pub fn spawn(name: &str, binary: &Path, args: Vec<String>, port: u16, log: PathBuf) -> Result<Self, HarnessError> {
        let mut p = ServerProcess {
            name: name.to_owned(),
            binary: binary.to_owned(),
            args,
            port,
            log,
            child: None,
        };
        p.start()?;
        Ok(p)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The OS process id while running: lets a harness check that whatever
    /// answers on [`Self::port`] is its own process and not one that won a
    /// port race.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is currently running (as far as we started it).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process again after [`Self::stop`] (same port, same args).
    pub fn start(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        // A restarted server may need a moment for the kernel to release the
        // port; 10 s covers a slow CI machine.
        if wait_for_port(self.port, Duration::from_secs(10)) {
            return Ok(());
        }
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        self.stop();
        let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        Err(HarnessError::StartFailed {
            name: self.name.clone(),
            port: self.port,
            detail: format!(
                "exit status {status:?}; log: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        })
    }

    /// Freezes the process (`SIGSTOP`): it keeps its data and its sockets,
    /// and answers nothing until [`Self::resume`]. Connections and requests
    /// queue in the kernel meanwhile, as with a GC pause or a stuck host.
    pub fn pause(&self) -> Result<(), HarnessError> {
        self.signal("-STOP")
    }

    /// Lets a [paused](Self::pause) process run again (`SIGCONT`).
    pub fn resume(&self) -> Result<(), HarnessError> {
        self.signal("-CONT")
    }

    /// Sends `signal` to our own process, by its pid, with `kill(1)`.
    fn signal(&self, signal: &str) -> Result<(), HarnessError> {
        let pid = self.pid().ok_or_else(|| HarnessError::StartFailed {
            name: self.name.clone(),
            port: self.port,
            detail: format!("not running: cannot send {signal}"),
        })?;
        let status = Command::new("kill").arg(signal).arg(pid.to_string()).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(HarnessError::StartFailed {
                name: self.name.clone(),
                port: self.port,
                detail: format!("kill {signal} {pid} failed: {status}"),
            })
        }
    }

    /// Kills the process (SIGKILL: a crash, not a clean shutdown) and waits
    /// for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How often a start is retried on a fresh port when another process won the
/// race for the port we picked.
pub(crate) const START_ATTEMPTS: usize = 5;

/// Runs `attempt` until it succeeds, up to [`START_ATTEMPTS`] times; only a
/// [`HarnessError::StartFailed`] (typically a port another process won) is
/// retried.
pub(crate) fn retry_start<T>(
    name: &str,
    mut attempt: impl FnMut() -> Result<T, HarnessError>,
) -> Result<T, HarnessError> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(e @ HarnessError::StartFailed { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(HarnessError::StartFailed {
        name: name.to_owned(),
        port: 0,
        detail: "no attempt made".to_owned(),
    }))
}
