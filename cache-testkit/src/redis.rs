//! A single `redis-server` ([`RedisServer`]) and a three-master Redis Cluster
//! ([`RedisCluster`]) on free loopback ports, for tests and benchmarks.
//!
//! Every server runs with persistence off (`--save '' --appendonly no`) and
//! keeps its working directory and log in a [`tempfile::TempDir`] that is
//! removed with the guard; dropping the guard kills every process.
//!
//! Binaries: `redis-server` (override with `REDIS_SERVER_BIN`, Debian package
//! `redis-server`) and, for the cluster, `redis-cli` (override with
//! `REDIS_CLI_BIN`, Debian package `redis-tools`).
//!
//! ```no_run
//! use cache_testkit::redis::RedisServer;
//! let server = RedisServer::new().unwrap();
//! println!("connect to {}", server.url());
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::{find_binary, free_port, retry_start, HarnessError, ServerProcess};

/// How long a new cluster may take to agree on its configuration.
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(20);

fn redis_server_binary() -> Result<PathBuf, HarnessError> {
    find_binary("redis-server", "REDIS_SERVER_BIN", "redis-server")
}

fn redis_cli_binary() -> Result<PathBuf, HarnessError> {
    find_binary("redis-cli", "REDIS_CLI_BIN", "redis-tools")
}

/// Arguments shared by single servers and cluster nodes.
fn base_args(port: u16, dir: &std::path::Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &dir.display().to_string(),
        // Log to stdout, which ServerProcess sends to the log file.
        "--logfile",
        "",
        "--daemonize",
        "no",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Starts `redis-server` with `args` on `port` and checks that the process
/// answering there is ours (its `INFO` names our pid): `wait_for_port` alone
/// would be satisfied by whichever process won a port race.
fn spawn_checked(name: &str, args: Vec<String>, port: u16, log: PathBuf) -> Result<ServerProcess, HarnessError> {
    let bin = redis_server_binary()?;
    let process = ServerProcess::spawn(name, &bin, args, port, log)?;
    let pid = process.pid().unwrap_or(0);
    let info = command(port, &["INFO", "server"]).unwrap_or_default();
    if info.contains(&format!("process_id:{pid}\r\n")) {
        Ok(process)
    } else {
        Err(HarnessError::StartFailed {
            name: name.to_owned(),
            port,
            detail: "another process answers on this port".to_owned(),
        })
    }
}

/// One `redis-server` on a free loopback port; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    process: ServerProcess,
    // Dropped after `process` (fields drop in declaration order), so the
    // server never runs without its directory.
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server, retrying on a new port if the chosen one was taken.
    pub fn new() -> Result<Self, HarnessError> {
        Self::with_args(&[])
    }

    /// Starts a server with `extra` configuration arguments after the
    /// harness's own (e.g. `["--maxmemory", "4mb", "--maxmemory-policy",
    /// "allkeys-lru"]`); they also apply after a [`Self::start`].
    pub fn with_args(extra: &[&str]) -> Result<Self, HarnessError> {
        // Fail with the install hint before creating anything.
        redis_server_binary()?;
        let dir = tempfile::Builder::new().prefix("redis-test-").tempdir()?;
        let process = retry_start("redis-server", || {
            let port = free_port()?;
            let log = dir.path().join(format!("redis-{port}.log"));
            let mut args = base_args(port, dir.path());
            args.extend(extra.iter().map(|a| (*a).to_owned()));
            spawn_checked("redis-server", args, port, log)
        })?;
        Ok(RedisServer { process, dir })
    }

    /// The server's OS process id while it runs (to signal it: a fault
    /// test's `SIGSTOP`).
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.process.port())
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The directory holding the server's log (and nothing else: persistence
    /// is off).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL, like a crash). Its data is lost.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts the server again on the same port (after [`Self::stop`]),
    /// empty.
    pub fn start(&mut self) -> Result<(), HarnessError> {
        self.process.start()
    }

    /// Freezes the server (`SIGSTOP`): its data stays, nothing is answered
    /// until [`Self::resume`].
    pub fn pause(&self) -> Result<(), HarnessError> {
        self.process.pause()
    }

    /// Resumes a paused server (`SIGCONT`).
    pub fn resume(&self) -> Result<(), HarnessError> {
        self.process.resume()
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }
}

/// A `redis-server` that also accepts TLS, with a certificate for
/// `127.0.0.1` and `localhost` signed by a throwaway CA made for it (EC
/// P-256, valid two days, by the `openssl` command-line tool); killed on
/// drop. The plain port stays open for the harness's own checks.
#[derive(Debug)]
pub struct RedisTlsServer {
    server: RedisServer,
    tls_port: u16,
    ca_pem: Vec<u8>,
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> Result<(), HarnessError> {
    let bin = find_binary("openssl", "OPENSSL_BIN", "openssl")?;
    let out = std::process::Command::new(&bin).args(args).current_dir(dir).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::StartFailed {
            name: format!("openssl {}", args.first().copied().unwrap_or_default()),
            port: 0,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

impl RedisTlsServer {
    /// Makes the certificates, then starts the server, retrying on new
    /// ports if the chosen ones were taken.
    pub fn new() -> Result<Self, HarnessError> {
        redis_server_binary()?;
        let dir = tempfile::Builder::new().prefix("redis-tls-test-").tempdir()?;
        let p = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ca = [
            &["req", "-x509"][..],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
        ]
        .concat();
        openssl(p, &[&ca[..], &["-subj", "/CN=cache-toolkit test CA"]].concat())?;
        let csr = [&["req"][..], &ec[..], &["-keyout", "server.key", "-out", "server.csr"]].concat();
        openssl(p, &[&csr[..], &["-subj", "/CN=localhost"]].concat())?;
        std::fs::write(
            p.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(
            p,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        )?;
        let ca_pem = std::fs::read(p.join("ca.crt"))?;
        let (process, tls_port) = retry_start("redis-server (TLS)", || {
            let (port, tls_port) = (free_port()?, free_port()?);
            let mut args = base_args(port, p);
            for (flag, value) in [
                ("--tls-port", tls_port.to_string()),
                ("--tls-cert-file", p.join("server.crt").display().to_string()),
                ("--tls-key-file", p.join("server.key").display().to_string()),
                ("--tls-ca-cert-file", p.join("ca.crt").display().to_string()),
                ("--tls-auth-clients", "no".to_owned()),
            ] {
                args.push(flag.to_owned());
                args.push(value);
            }
            let log = p.join(format!("redis-tls-{port}.log"));
            let process = spawn_checked("redis-server (TLS)", args, port, log)?;
            if tls_port == port || !super::process::wait_for_port(tls_port, Duration::from_secs(5)) {
                return Err(HarnessError::StartFailed {
                    name: "redis-server (TLS)".to_owned(),
                    port: tls_port,
                    detail: "the TLS port did not open (taken, or redis-server built without TLS?)".to_owned(),
                });
            }
            Ok((process, tls_port))
        })?;
        Ok(RedisTlsServer {
            server: RedisServer { process, dir },
            tls_port,
            ca_pem,
        })
    }

    /// `rediss://127.0.0.1:<tls port>/`.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.tls_port)
    }

    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The plain (non-TLS) server on its own port.
    pub fn plain(&self) -> &RedisServer {
        &self.server
    }

    /// The CA certificate that signed the server's, PEM.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback, built with
/// `redis-cli --cluster create`; every node is killed on drop.
///
/// Each node also uses its port + 10000 for the cluster bus, so ports are
/// picked below 55536. Nodes keep their `nodes.conf` in the temporary
/// directory, so a stopped node started again rejoins with its old identity
/// and slots (but without data: persistence is off).
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<ServerProcess>,
    dir: TempDir,
}

impl RedisCluster {
    /// Number of masters.
    pub const MASTERS: usize = 3;

    /// Starts three nodes, creates the cluster and waits until every node
    /// reports `cluster_state:ok` with all 16384 slots assigned.
    pub fn new() -> Result<Self, HarnessError> {
        let cli = redis_cli_binary()?;
        redis_server_binary()?;
        retry_start("redis cluster", || Self::try_start(&cli))
    }

    fn try_start(cli: &std::path::Path) -> Result<Self, HarnessError> {
        let dir = tempfile::Builder::new().prefix("redis-cluster-test-").tempdir()?;
        let mut nodes = Vec::with_capacity(Self::MASTERS);
        while nodes.len() < Self::MASTERS {
            let port = cluster_port()?;
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir)?;
            let mut args = base_args(port, &node_dir);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &node_dir.join("nodes.conf").display().to_string(),
                    // Short, so a killed master is noticed quickly in fault
                    // tests, yet well above any pause on a busy 2-core machine.
                    "--cluster-node-timeout",
                    "3000",
                ]
                .iter()
                .map(|s| (*s).to_owned()),
            );
            let log = node_dir.join("redis.log");
            nodes.push(spawn_checked("redis-server (cluster node)", args, port, log)?);
        }
        let cluster = RedisCluster { nodes, dir };
        cluster.create(cli)?;
        cluster.wait_ready(CLUSTER_READY_TIMEOUT)?;
        Ok(cluster)
    }

    fn create(&self, cli: &std::path::Path) -> Result<(), HarnessError> {
        let mut cmd = Command::new(cli);
        cmd.arg("--cluster").arg("create");
        for n in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port()));
        }
        let out = cmd
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            return Ok(());
        }
        Err(HarnessError::StartFailed {
            name: "redis-cli --cluster create".to_owned(),
            port: self.nodes.first().map_or(0, ServerProcess::port),
            detail: format!(
                "{}: {} {}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }

    /// Waits until every running node reports `cluster_state:ok` and all
    /// slots assigned. Fault tests call this after [`Self::start_node`].
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut pending = None;
            for n in self.nodes.iter().filter(|n| n.is_running()) {
                let info = command(n.port(), &["CLUSTER", "INFO"]).unwrap_or_default();
                if !(info.contains("cluster_state:ok") && info.contains("cluster_slots_assigned:16384")) {
                    pending = Some((n.port(), info));
                    break;
                }
            }
            let Some((port, info)) = pending else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(HarnessError::StartFailed {
                    name: "redis cluster".to_owned(),
                    port,
                    detail: format!("not ready after {timeout:?}: {}", info.replace("\r\n", " ")),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Seed URLs, one per master: `redis://127.0.0.1:<port>/`.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.port()))
            .collect()
    }

    /// The masters' ports, in creation order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(ServerProcess::port).collect()
    }

    /// `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…`: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.ports().iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The directory holding each node's log and `nodes.conf`.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Kills master `index` (SIGKILL). Without replicas its slots stay
    /// uncovered, so once the other nodes mark it failed (after the node
    /// timeout, 3 s) the whole cluster answers `CLUSTERDOWN` until it is back.
    pub fn stop_node(&mut self, index: usize) {
        if let Some(n) = self.nodes.get_mut(index) {
            n.stop();
        }
    }

    /// Freezes every master (`SIGSTOP`), the whole cluster at once.
    pub fn pause(&self) -> Result<(), HarnessError> {
        self.nodes.iter().try_for_each(ServerProcess::pause)
    }

    /// Resumes every master (`SIGCONT`).
    pub fn resume(&self) -> Result<(), HarnessError> {
        self.nodes.iter().try_for_each(ServerProcess::resume)
    }

    /// Starts master `index` again on its port; it reloads its `nodes.conf`
    /// and rejoins with the same slots, empty. Call [`Self::wait_ready`] to
    /// wait for the cluster to be healthy again.
    pub fn start_node(&mut self, index: usize) -> Result<(), HarnessError> {
        match self.nodes.get_mut(index) {
            Some(n) => n.start(),
            None => Err(HarnessError::StartFailed {
                name: "redis cluster".to_owned(),
                port: 0,
                detail: format!("no node {index}"),
            }),
        }
    }
}

/// A free port whose cluster-bus port (+10000) is valid and free too.
fn cluster_port() -> Result<u16, HarnessError> {
    for _ in 0..100 {
        let port = free_port()?;
        if port < 55_536 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err(HarnessError::StartFailed {
        name: "redis cluster".to_owned(),
        port: 0,
        detail: "found no free port pair (p, p+10000)".to_owned(),
    })
}

/// Sends one command to `127.0.0.1:port` over RESP and returns the reply as
/// text (bulk, simple string or integer; an error reply is an `Err`). Enough
/// for the harness's `INFO` / `CLUSTER INFO` probes without a client crate.
pub fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let body = line.get(1..).unwrap_or("").trim_end().to_owned();
    match line.as_bytes().first() {
        Some(b'+') | Some(b':') => Ok(body),
        Some(b'-') => Err(bad(&body)),
        Some(b'$') => {
            let len: i64 = body.parse().map_err(|_| bad("bad bulk length"))?;
            if len < 0 {
                return Ok(String::new());
            }
            let mut buf = vec![0u8; len as usize + 2];
            reader.read_exact(&mut buf)?;
            buf.truncate(len as usize);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        _ => Err(bad("unexpected reply")),
    }
}
