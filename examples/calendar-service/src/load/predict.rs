//! The simulator's prediction for a row: the workload's traffic (the
//! mapped trace, [`Workload::sim_events`]) replayed by `sim` as a library,
//! exactly as `cache-sim replay` would: the same processes, strategy and
//! kind of store, with the TTLs in trace time.
//!
//! The store: `locmem` stays the simulator's in-process store (one per
//! process); `redis` and `memcache` are a fresh server of that kind started
//! for the prediction (with the row's `maxmemory`, so eviction is the real
//! server's), in its own key namespace; two tiers get the simulator's
//! modelled backplane, which delivers a notice after a fixed delay of trace
//! time (a real pub/sub latency cannot be replayed in virtual time).
//!
//! A row's database faults become the simulator's `--db-fault` windows
//! (their real instants after the row's start, times the speed), and its
//! fail-safe max age and timeouts are multiplied by the speed too, as the
//! TTLs are: `cache-sim replay --db-fault outage:S:D --fail-safe A
//! --hard-timeout-ms H` with those values runs the same.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sim::backends::BackendSpec;
use sim::config::DbFault;
use sim::engine::Latencies;
use sim::runner::{registry, run, RunConfig, SourceFactory};
use sim::trace::Source;

use super::workload::Workload;
use super::LoadError;

/// What the simulator predicts for a row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Feed requests served from the cache, per feed request.
    pub hit_rate: f64,
    /// Responses that missed a write committed before the request started.
    pub stale_reads: u64,
    /// Backend round trips per feed request.
    pub ops_per_read: f64,
    /// The longest a stale response lagged, ms of real time (the
    /// simulator's trace time divided by the speed, to compare with the
    /// world's).
    pub max_staleness_ms: f64,
    /// Value bytes the read path got from the store per feed request.
    pub bytes_per_read: f64,
    /// Feed requests replayed.
    pub reads: u64,
    /// The simulator's `--backend` spec (passwords: none, our own servers).
    pub backend: String,
    /// The modelled payload bytes per feed item it ran with.
    pub item_bytes: usize,
    /// Keys the prediction's own Redis evicted and expired (the model runs
    /// in virtual time: the server's own clock hardly moves).
    pub redis_keys: Option<super::servers::KeyStats>,
    /// Database faults and fail-safe, for rows with them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_fault: Option<PredictedDbFault>,
}

/// What the simulator predicts about a row's database faults and
/// fail-safe (its report's `fail_safe_served`, `fail_safe_stale`,
/// `failed_reads`, `errors` and database-fault summary).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictedDbFault {
    /// Reads that started inside a fault window.
    pub reads_in_fault: u64,
    /// Their latency, p50 and p99, ms of real time (trace time divided by
    /// the speed).
    pub latency_in_fault_ms: [f64; 2],
    /// Reads answered by fail-safe.
    pub fail_safe_served: u64,
    /// Of those, from an entry with old stamps (the service's `stale`).
    pub fail_safe_old_stamps: u64,
    /// Of those, judged stale (never in `stale_reads`).
    pub fail_safe_stale: u64,
    /// Reads answered with an error.
    pub failed_reads: u64,
    /// The report's `errors`: failed reads plus backend errors.
    pub errors: u64,
    /// Loads that reached the failing database.
    pub loads_failed: u64,
    /// Loads given up at the hard timeout.
    pub load_timeouts: u64,
    /// Reads answered at the soft timeout.
    pub soft_timeouts: u64,
}

/// A row's database faults and fail-safe settings in trace time.
#[derive(Debug, Clone, Default)]
pub struct DbModel {
    /// The fault windows.
    pub faults: Vec<DbFault>,
    /// Fail-safe max age.
    pub fail_safe: Option<Duration>,
    /// Soft timeout of the loader.
    pub soft_timeout: Option<Duration>,
    /// Hard timeout of the loader.
    pub hard_timeout: Option<Duration>,
}

impl DbModel {
    /// The simulator's read options with these settings.
    fn options(&self, base: sim::config::RunConfig) -> cache_core::CacheOptions {
        base.aside
            .with_fail_safe(self.fail_safe)
            .with_load_timeouts(self.soft_timeout, self.hard_timeout)
    }

    /// Whether the simulator takes these settings (its limits are in
    /// trace time: a max age of 365 days, timeouts of an hour); the error
    /// says which one it refuses.
    pub fn validate(&self) -> Result<(), String> {
        self.options(RunConfig::new("check"))
            .validate()
            .map_err(|e| format!("the simulator refuses the fail-safe settings times --speed: {e}"))
    }
}

/// How the simulator is set up beyond the workload.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// Cached views' TTL, trace time.
    pub ttl: Duration,
    /// `short-ttl`'s TTL, trace time.
    pub short_ttl: Duration,
    /// Step latencies, trace time.
    pub latencies: Latencies,
    /// Modelled payload bytes per feed item.
    pub item_bytes: usize,
    /// Seed of the strategies' random choices.
    pub seed: u64,
    /// Trace seconds per real second (to report staleness in real time).
    pub speed: f64,
    /// The row's database faults and fail-safe settings.
    pub db: DbModel,
}

/// Replays `workload` through the simulator with `strategy` on `backend`
/// (a `cache-sim --backend` spec). Runs on a thread of its own: the
/// simulator drives its cells on runtimes of its own.
pub async fn predict(
    workload: Arc<Workload>,
    strategy: String,
    backend: String,
    settings: ModelSettings,
) -> Result<Prediction, LoadError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("prediction".into())
        .spawn(move || {
            let _ = tx.send(predict_blocking(&workload, &strategy, &backend, &settings));
        })
        .map_err(|source| LoadError::Io {
            what: "the prediction's thread".into(),
            source,
        })?;
    rx.await
        .map_err(|_| LoadError::Sim(sim::Error::Invalid("the prediction's thread died".into())))?
}

fn predict_blocking(
    workload: &Arc<Workload>,
    strategy: &str,
    backend: &str,
    settings: &ModelSettings,
) -> Result<Prediction, LoadError> {
    let mut cfg = RunConfig::new("calendar-load world trace");
    cfg.seed = settings.seed;
    cfg.backends = vec![BackendSpec::parse(backend).map_err(LoadError::Sim)?];
    cfg.strategies = vec![strategy.to_owned()];
    cfg.ttl = settings.ttl;
    cfg.short_ttl = settings.short_ttl;
    cfg.latencies = settings.latencies;
    cfg.item_bytes = settings.item_bytes;
    cfg.threads = 1;
    cfg.faults.db = settings.db.faults.clone();
    cfg.aside = settings.db.options(cfg.clone());
    settings.db.validate().map_err(LoadError::Flag)?;
    let w = workload.clone();
    let sources: SourceFactory = Arc::new(move || {
        let events = w.sim_events.clone();
        Ok(Source {
            header: w.header.clone(),
            events: Box::new(events.into_iter().map(Ok)),
        })
    });
    let report = run(&cfg, sources, registry(), None).map_err(LoadError::Sim)?;
    let r = report
        .results
        .first()
        .ok_or_else(|| LoadError::Sim(sim::Error::Invalid("the prediction produced no row".into())))?;
    Ok(Prediction {
        hit_rate: r.hit_rate,
        stale_reads: r.stale_reads,
        ops_per_read: r.ops_per_read,
        max_staleness_ms: r.max_staleness_ms / settings.speed,
        bytes_per_read: r.bytes_per_read,
        reads: r.reads,
        backend: r.backend.clone(),
        item_bytes: settings.item_bytes,
        redis_keys: None,
        db_fault: r.db_faults.map(|d| PredictedDbFault {
            reads_in_fault: d.reads_in_fault,
            latency_in_fault_ms: [
                d.latency_in_fault_p50_ms / settings.speed,
                d.latency_in_fault_p99_ms / settings.speed,
            ],
            fail_safe_served: d.fail_safe_served,
            fail_safe_old_stamps: d.fail_safe_old_stamps,
            fail_safe_stale: d.fail_safe_stale,
            failed_reads: d.failed_reads,
            errors: r.errors,
            loads_failed: d.loads_failed,
            load_timeouts: d.load_timeouts,
            soft_timeouts: d.soft_timeouts,
        }),
    })
}
