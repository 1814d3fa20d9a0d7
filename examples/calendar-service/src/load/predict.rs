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

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sim::backends::BackendSpec;
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
    })
}
