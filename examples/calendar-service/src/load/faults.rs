//! Injects a row's faults while its traffic runs, and logs each one with
//! its time: what happened, when (seconds after the traffic started), how
//! long the outage lasted.
//!
//! A database fault is posted to every service process
//! (`POST /test/db-fault`: each process has its own database handle, so a
//! fault is per process, as the service's README says); each process's
//! window starts when its post arrives.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::db::history::now_us;

use super::driver::Targets;
use super::procs::{post_json, Service};
use super::rig::Counters;
use super::servers::Servers;
use super::spec::{Fault, FaultKind};
use super::LoadError;

/// One injected fault, as `load.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FaultLog {
    /// `kill`, `stop`, `pubsub-kill`, `service-restart`, `maxmemory`,
    /// `db-outage`, `db-slow`.
    pub kind: &'static str,
    /// Seconds after the row's traffic started.
    pub at_s: f64,
    /// The same instant in trace time, seconds after the trace's start.
    pub trace_at_s: f64,
    /// What it hit: `redis`, `memcached`, `redis+memcached`, `service 0`,
    /// `database (3 services)`.
    pub target: String,
    /// How long the outage lasted, ms (down until back up; frozen until
    /// thawed); 0 for instantaneous ones.
    pub outage_ms: u64,
    /// The outage's start and end, µs since the epoch (for the judge's
    /// "after the server's return" and the errors' "inside an outage").
    pub start_us: i64,
    /// See `start_us`.
    pub end_us: i64,
    /// Anything else worth knowing (`maxmemory=2097152 allkeys-lru`,
    /// `2 clients killed`).
    pub detail: String,
    /// `db-slow`: the latency added to each feed query, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// What the faults act on.
#[derive(Debug, Clone)]
pub struct Victims {
    /// The row's cache servers.
    pub servers: Arc<Mutex<Servers>>,
    /// The row's service processes.
    pub services: Arc<Mutex<Vec<Service>>>,
    /// Where the replay sends requests (a restarting process is marked down).
    pub targets: Arc<Targets>,
    /// Where a restarted service's counters go, taken just before its kill.
    pub lost_counters: Arc<Mutex<Vec<Counters>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn server_names(s: &Servers) -> String {
    match (s.redis.is_some(), s.memcached.is_some()) {
        (true, true) => "redis+memcached".into(),
        (true, false) => "redis".into(),
        (false, true) => "memcached".into(),
        (false, false) => "none".into(),
    }
}

/// Runs `blocking` on the blocking pool (process starts wait on ports).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LoadError> + Send + 'static,
) -> Result<T, LoadError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LoadError::Io {
        what: "a fault".into(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// Injects `faults` into a row whose traffic started at `t0` (trace time 0)
/// and lasts `length`, at `speed`; a fault without a time strikes half-way.
pub async fn inject(
    faults: Vec<Fault>,
    victims: Victims,
    t0: tokio::time::Instant,
    length: Duration,
    speed: f64,
) -> Result<Vec<FaultLog>, LoadError> {
    let mut timed: Vec<(Duration, Fault)> = faults.into_iter().map(|f| (f.at.unwrap_or(length / 2), f)).collect();
    timed.sort_by_key(|(at, _)| *at);
    let mut logs = Vec::new();
    for (at, fault) in timed {
        let at = match fault.kind {
            FaultKind::MaxMemory { .. } => Duration::ZERO,
            _ => at,
        };
        tokio::time::sleep_until(t0 + at).await;
        let start_us = now_us();
        let target = server_names(&lock(&victims.servers));
        // Set by faults whose outage outlasts the injection (database
        // faults: posted, then running on their own).
        let mut end_us = None;
        let (outage_ms, detail, target) = match fault.kind {
            FaultKind::Kill => {
                let servers = victims.servers.clone();
                let down = blocking(move || lock(&servers).crash_and_restart()).await?;
                (down, "kill -9, restarted on the same port, empty".to_owned(), target)
            }
            FaultKind::Stop { for_ms } => {
                lock(&victims.servers).freeze()?;
                tokio::time::sleep(Duration::from_millis(for_ms)).await;
                lock(&victims.servers).thaw()?;
                (for_ms, "SIGSTOP, then SIGCONT".to_owned(), target)
            }
            FaultKind::PubsubKill => {
                let n = lock(&victims.servers).kill_pubsub_clients()?;
                (0, format!("CLIENT KILL TYPE pubsub: {n} clients"), "redis".to_owned())
            }
            FaultKind::ServiceRestart => {
                victims.targets.set_down(0, true);
                let (services, lost) = (victims.services.clone(), victims.lost_counters.clone());
                let started = std::time::Instant::now();
                let restarted = blocking(move || {
                    let mut s = lock(&services);
                    let Some(first) = s.first_mut() else { return Ok(()) };
                    lock(&lost).push(Counters::fetch(first.port()).unwrap_or_default());
                    first.restart()
                })
                .await;
                victims.targets.set_down(0, false);
                restarted?;
                (
                    started.elapsed().as_millis() as u64,
                    "kill -9 of service 0, restarted on the same port; its requests went to service 1 meanwhile"
                        .to_owned(),
                    "service 0".to_owned(),
                )
            }
            FaultKind::MaxMemory { bytes } => (0, format!("maxmemory={bytes} allkeys-lru"), "redis".to_owned()),
            FaultKind::DbOutage { for_ms } | FaultKind::DbSlow { for_ms, .. } => {
                let body = match fault.kind {
                    FaultKind::DbSlow { latency_ms, .. } => {
                        serde_json::json!({"kind": "slow", "latency_ms": latency_ms, "duration_ms": for_ms})
                    }
                    _ => serde_json::json!({"kind": "outage", "duration_ms": for_ms}),
                };
                let ports: Vec<u16> = lock(&victims.services).iter().map(Service::port).collect();
                let n = ports.len();
                // The last post's answer: every process's window has begun.
                let posted = blocking(move || {
                    for port in ports {
                        post_json(port, "/test/db-fault", &body)?;
                    }
                    Ok(now_us())
                })
                .await?;
                end_us = Some(posted + i64::try_from(for_ms).unwrap_or(i64::MAX / 1000) * 1000);
                let what = match fault.kind {
                    FaultKind::DbSlow { latency_ms, .. } => format!("every feed query {latency_ms} ms slower"),
                    _ => "every feed query fails".to_owned(),
                };
                (
                    for_ms,
                    format!(
                        "{what} for {for_ms} ms (POST /test/db-fault to {n} services within {:.1} ms)",
                        (posted - start_us) as f64 / 1000.0
                    ),
                    format!("database ({n} services)"),
                )
            }
        };
        let end_us = end_us.unwrap_or_else(|| if outage_ms > 0 { now_us() } else { start_us });
        let latency_ms = match fault.kind {
            FaultKind::DbSlow { latency_ms, .. } => Some(latency_ms),
            _ => None,
        };
        logs.push(FaultLog {
            kind: fault.kind.name(),
            at_s: at.as_secs_f64(),
            trace_at_s: at.as_secs_f64() * speed,
            target,
            outage_ms,
            start_us,
            end_us,
            detail,
            latency_ms,
        });
    }
    Ok(logs)
}
