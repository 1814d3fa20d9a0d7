//! A whole run: the workload and its seeded database, then each row
//! (processes, traffic and faults, the judge, the prediction), then the
//! throughput table, then the report.

use std::sync::Arc;
use std::time::Duration;

use cache_core::View;
use indicatif::{ProgressBar, ProgressStyle};
use sim::engine::Latencies;
use sim::trace::Source;

use crate::db::Db;

use super::args::{Args, FULL_ACTIONS, SMOKE_ACTIONS};
use super::backplane::Probe;
use super::driver::{replay, Pacing};
use super::faults::{inject, FaultLog, Victims};
use super::judge::Judge;
use super::predict::{predict, DbModel, ModelSettings};
use super::procs::{check_service_binary, default_service_binary};
use super::report::{Agreement, FaultEntry, LoadReport, RowResult, RunSettings};
use super::rig::{Rig, RigSettings};
use super::score::RowRun;
use super::servers::Servers;
use super::spec::{FailSafeSettings, RowSpec};
use super::workload::{self, RequestKind, Workload};
use super::{bench, goals, score, LoadError, Say};

/// The view TTL and `short-ttl`'s TTL in trace time: the library's
/// defaults (the services get them divided by the speed).
const TTL: Duration = Duration::from_secs(300);
const SHORT_TTL: Duration = Duration::from_secs(60);

/// What every row of a run shares.
pub(crate) struct Context {
    pub(crate) args: Args,
    pub(crate) workload: Arc<Workload>,
    /// Per request: the view the service reads from a feed's query.
    pub(crate) views: Arc<Vec<Option<View>>>,
    pub(crate) rig: RigSettings,
    model: ModelSettings,
    trace_label: String,
    pub(crate) say: Say,
    // The template database's directory.
    _dir: tempfile::TempDir,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LoadError {
    let what = what.into();
    move |source| LoadError::Io { what, source }
}

/// The 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// `N CPUs (model), M GiB`.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|v| v.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0);
    format!("{cpus} CPUs ({model}), {:.1} GiB", mem_kb as f64 / (1u64 << 20) as f64)
}

/// Opens the trace, or generates the realistic model.
fn source(args: &Args) -> Result<(Source, String), LoadError> {
    if let Some(path) = &args.trace {
        let s = sim::trace::open_trace(path).map_err(LoadError::Trace)?;
        if s.header.processes != args.processes {
            return Err(LoadError::Flag(format!(
                "--processes {} but {} declares {} processes (pass --processes {})",
                args.processes,
                path.display(),
                s.header.processes,
                s.header.processes
            )));
        }
        return Ok((s, path.display().to_string()));
    }
    let mut tc = sim::scenarios::realistic_config(args.seed);
    tc.days = 1;
    tc.actions = if args.smoke { SMOKE_ACTIONS } else { FULL_ACTIONS };
    tc.processes = args.processes;
    let label = format!(
        "generated realistic (seed {}, {} users, {} teams, {} actions over 1 day, {} processes)",
        args.seed, tc.users, tc.teams, tc.actions, tc.processes
    );
    let (header, traffic) = sim::traffic::Traffic::new(tc, "realistic").map_err(LoadError::Trace)?;
    Ok((
        Source {
            header,
            events: Box::new(traffic),
        },
        label,
    ))
}

/// Average bytes of one event in a rendered feed: the prediction's
/// `item_bytes`, so modelled entries weigh what real ones do.
fn event_bytes(w: &Workload) -> usize {
    let calendar = |id: i64| w.calendars.iter().find(|c| c.id == id).cloned();
    let rows: Vec<_> = w
        .seed
        .items
        .iter()
        .take(1000)
        .filter_map(|i| calendar(i.calendar_id).map(|c| (i.clone(), c)))
        .collect();
    crate::api::feed_body(&rows).len() / rows.len().max(1)
}

impl Context {
    pub(crate) fn new(args: Args, say: Say) -> Result<Context, LoadError> {
        let service_bin = match &args.service_bin {
            Some(p) => p.clone(),
            None => default_service_binary().ok_or_else(|| {
                LoadError::Flag(
                    "no calendar-service next to calendar-load; build it (`cargo build -p calendar-service`) or pass \
                     --service-bin"
                        .into(),
                )
            })?,
        };
        check_service_binary(&service_bin)?;
        for row in args.rows() {
            let settings = row.fail_safe(&args.fail_safe_defaults()).map_err(LoadError::Flag)?;
            if !args.no_predict {
                // The simulator takes them in trace time.
                db_model(&settings, &[], 0, args.speed)
                    .validate()
                    .map_err(|e| LoadError::Flag(format!("row {:?}: {e}", row.label)))?;
            }
        }
        let (source, trace_label) = source(&args)?;
        let window_us = args.window_s() * 1_000_000;
        let workload = workload::build(source, Some(window_us), args.min_items, args.seed)?;
        if workload.requests.is_empty() {
            return Err(LoadError::Flag(format!(
                "the trace has no requests in its first {} s (--window-s)",
                args.window_s()
            )));
        }
        if let Some(dir) = &args.out {
            std::fs::create_dir_all(dir).map_err(io(format!("--out {}", dir.display())))?;
            let path = dir.join("world-trace.jsonl");
            sim::trace::write_trace(&path, &workload.header, workload.sim_events.iter().cloned().map(Ok))
                .map_err(LoadError::Trace)?;
        }
        let dir = tempfile::Builder::new()
            .prefix("calendar-load-template-")
            .tempdir()
            .map_err(io("a temporary directory"))?;
        let template_db = dir.path().join("template.db");
        drop(Db::create_seeded(&template_db, &workload.seed)?);
        let views = workload
            .requests
            .iter()
            .map(|r| match &r.kind {
                RequestKind::Feed { query } => workload
                    .users
                    .get(r.user as usize)
                    .and_then(|u| Judge::view(&u.calendars, query)),
                _ => None,
            })
            .collect();
        let scaled = |d: Duration| ((d.as_secs_f64() * 1000.0 / args.speed).round() as u64).max(1);
        let latencies = Latencies::default();
        let model = ModelSettings {
            ttl: TTL,
            short_ttl: SHORT_TTL,
            latencies,
            item_bytes: event_bytes(&workload),
            seed: args.seed,
            speed: args.speed,
            db: DbModel::default(),
        };
        Ok(Context {
            rig: RigSettings {
                service_bin,
                template_db,
                processes: workload.header.processes as usize,
                ttl_ms: scaled(TTL),
                short_ttl_ms: scaled(SHORT_TTL),
                fail_safe_defaults: args.fail_safe_defaults(),
            },
            views: Arc::new(views),
            workload: Arc::new(workload),
            model,
            trace_label,
            args,
            say,
            _dir: dir,
        })
    }

    fn bar(&self, len: u64, prefix: String) -> ProgressBar {
        if self.args.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} requests, {eta} left in this row {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(prefix);
        bar
    }

    fn backplane_us(&self) -> u64 {
        (self.args.backplane_ms * 1000.0 * self.args.speed).round() as u64
    }
}

/// Runs everything `args` asks for.
pub async fn run(args: Args, say: Say) -> Result<LoadReport, LoadError> {
    let load_start = load_average();
    let started = std::time::Instant::now();
    let ctx = Context::new(args, say)?;
    let w = &ctx.workload;
    (ctx.say)(&format!(
        "workload: {} feed requests and {} writes over {} s of trace ({} s at {}x), {} items seeded ({} from the \
         trace), {} users, {} calendars; service TTL {} ms",
        w.stats.feeds,
        w.stats.writes,
        ctx.args.window_s(),
        (ctx.args.window_s() as f64 / ctx.args.speed).round(),
        ctx.args.speed,
        w.seed.items.len(),
        w.stats.trace_items,
        w.users.len(),
        w.calendars.len(),
        ctx.rig.ttl_ms
    ));
    let rows = ctx.args.rows();
    let mut results = Vec::new();
    let mut faults = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let elapsed = started.elapsed().as_secs_f64();
        let eta = if i > 0 {
            format!(", ~{:.0} min left", elapsed / i as f64 * (rows.len() - i) as f64 / 60.0)
        } else {
            String::new()
        };
        let prefix = format!("row {}/{} {}{eta}", i + 1, rows.len(), row.label);
        let (result, logs) = run_row(&ctx, row, i, prefix).await?;
        (ctx.say)(&summary(&result));
        faults.extend(logs.into_iter().map(|log| FaultEntry {
            row: row.label.clone(),
            log,
        }));
        results.push(result);
    }
    let throughput = if ctx.args.throughput_s() > 0 {
        bench::throughput(&ctx).await?
    } else {
        Vec::new()
    };
    let goals = goals::check(&results, &throughput);
    let report = LoadReport {
        tool: "calendar-load",
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine: machine(),
        load_average: [load_start, load_average()],
        config: RunSettings {
            trace: ctx.trace_label.clone(),
            window_s: ctx.args.window_s(),
            speed: ctx.args.speed,
            processes: ctx.workload.header.processes,
            ttl_ms: ctx.rig.ttl_ms,
            short_ttl_ms: ctx.rig.short_ttl_ms,
            timeout_ms: ctx.args.timeout_ms,
            model: format!(
                "cache-sim defaults in trace time (plan/get/store {} µs, feed query {} µs, commit to invalidation \
                 {} µs); TTL {} s, short-ttl {} s; {} B per feed item (maxmemory rows: calibrated, see \
                 predicted.item_bytes); two tiers: the measured delivery beyond the commit, or {} µs where \
                 unmeasured (see predicted.backend)",
                ctx.model.latencies.get_us,
                ctx.model.latencies.db_us,
                ctx.model.latencies.invalidate_us,
                TTL.as_secs(),
                SHORT_TTL.as_secs(),
                ctx.model.item_bytes,
                ctx.backplane_us()
            ),
        },
        workload: ctx.workload.stats,
        faults,
        results,
        throughput,
        goals,
    };
    if let Some(dir) = &ctx.args.out {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(dir.join("load.json"), json).map_err(io("load.json"))?;
        std::fs::write(dir.join("load.md"), report.to_markdown()).map_err(io("load.md"))?;
    }
    Ok(report)
}

fn summary(r: &RowResult) -> String {
    let predicted = r.predicted.as_ref().map_or(String::new(), |p| {
        format!(
            " (sim: hit {:.1}%, {} stale, {:.2} ops/read)",
            p.hit_rate * 100.0,
            p.stale_reads,
            p.ops_per_read
        )
    });
    format!(
        "{}: {} feeds, hit {:.1}%, {} stale (max {:.0} ms, {} unmatched), {:.2} ops/read{predicted}; {} 5xx, {} \
         timeouts, {} connection errors; p99 {:.1} ms; replay lag p99 {:.1} ms; model check {}/{} views differ",
        r.row,
        r.feed_requests,
        r.hit_rate * 100.0,
        r.stale_reads,
        r.max_staleness_ms,
        r.unmatched,
        r.ops_per_read,
        r.errors_5xx,
        r.timeouts,
        r.connection_errors,
        r.p99_ms,
        r.lag_p99_ms,
        r.model_check.mismatches,
        r.model_check.views
    )
}

/// Starts a rig off the async threads (it waits for ports).
pub(crate) async fn start_rig(
    settings: RigSettings,
    row: &RowSpec,
    strategy: &str,
    namespace: String,
) -> Result<Rig, LoadError> {
    let (cache, strategy, maxmemory) = (row.cache.clone(), strategy.to_owned(), row.maxmemory());
    let fail_safe = row.fail_safe(&settings.fail_safe_defaults).map_err(LoadError::Flag)?;
    let test_db_faults = row.has_db_fault();
    tokio::task::spawn_blocking(move || {
        Rig::start(
            &settings,
            &cache,
            &strategy,
            maxmemory,
            &namespace,
            fail_safe,
            test_db_faults,
        )
    })
    .await
    .map_err(|e| LoadError::Io {
        what: "starting the processes".into(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// One row: traffic and faults, the judge, the prediction.
async fn run_row(
    ctx: &Context,
    row: &RowSpec,
    index: usize,
    prefix: String,
) -> Result<(RowResult, Vec<FaultLog>), LoadError> {
    let rig = start_rig(ctx.rig.clone(), row, &row.strategy, format!("load-{index}")).await?;
    let length = Duration::from_secs_f64(ctx.args.window_s() as f64 / ctx.args.speed);
    let t0 = tokio::time::Instant::now() + Duration::from_millis(300);
    let bar = ctx.bar(ctx.workload.requests.len() as u64, prefix);
    let victims = Victims {
        servers: rig.servers.clone(),
        services: rig.services.clone(),
        targets: rig.targets.clone(),
        lost_counters: rig.lost_counters.clone(),
    };
    let probe = match rig.servers.lock().ok().and_then(|s| s.redis.as_ref().map(|r| r.port())) {
        Some(port) if row.cache.has_backplane() => Some(Probe::start(port, backend_any::DEFAULT_CHANNEL)),
        _ => None,
    };
    let (recording, logs) = tokio::join!(
        replay(
            ctx.workload.clone(),
            rig.targets.clone(),
            Pacing::Paced {
                speed: ctx.args.speed,
                t0
            },
            Duration::from_millis(ctx.args.timeout_ms),
            bar.clone()
        ),
        inject(row.faults.clone(), victims, t0, length, ctx.args.speed)
    );
    bar.finish_and_clear();
    let delays = probe.map(|p| p.delays_us());
    let logs = logs?;
    let crashed = rig.crashed();
    if !crashed.is_empty() {
        return Err(LoadError::Service {
            index: 0,
            message: format!(
                "{}: a service exited during the row ({}); logs in {}",
                row.label,
                crashed.join(", "),
                rig.log_dir().display()
            ),
        });
    }
    // A few local HTTP requests: fine on this thread, no traffic is running.
    let counters = rig.counters()?;
    let redis_keys = rig.servers.lock().ok().and_then(|s| s.redis_key_stats());
    rig.stop_services();
    let db = Db::open(Some(&rig.db))?;
    let log = db.history().await?;
    let fail_safe = row.fail_safe(&ctx.rig.fail_safe_defaults).map_err(LoadError::Flag)?;
    let run = RowRun {
        faults: &logs,
        probe_delays: delays,
        fail_safe,
        counters,
    };
    let mut result = score::judge_row(ctx, row, &recording, log, &db, run).await?;
    result.hit_rate = counters.hit_rate();
    result.ops_per_read = counters.ops_per_read();
    result.bytes_per_read = counters.bytes_read as f64 / (counters.hits + counters.misses).max(1) as f64;
    result.redis_keys = redis_keys;
    result.read_errors = counters.read_errors;
    result.invalidation_errors = counters.invalidation_errors;
    drop(rig);
    if !ctx.args.no_predict && !row.cache.is_none() {
        let backplane_us = match &result.delivery {
            // `stamped` publishes a write's fence before the commit: what a
            // reader elsewhere can see stale is the part of the delivery
            // that outlasts the commit. The simulator announces at the
            // commit instant, so it gets that part, in trace time.
            Some(d) => ((d.p50_ms - result.commit_ms[0]).max(0.0) * 1000.0 * ctx.args.speed).round() as u64,
            None => ctx.backplane_us(),
        };
        let mut model = ctx.model.clone();
        model.db = db_model(&fail_safe, &logs, recording.t0_us, ctx.args.speed);
        let mut p = predict_row(ctx, row, backplane_us, &model).await?;
        if row.maxmemory().is_some() && p.hit_rate > 0.0 && result.hit_rate > 0.0 && p.bytes_per_read > 0.0 {
            // Under eviction the hit rate follows the entries' size. The
            // model's feeds differ from the service's (instants against
            // all-day dates, its own framing), so its payload per item is
            // scaled until an entry weighs what the world's did: bytes per
            // hit, world over model, from the first pass.
            let ratio = (result.bytes_per_read / result.hit_rate) / (p.bytes_per_read / p.hit_rate);
            model.item_bytes = ((model.item_bytes as f64 * ratio).round() as usize).max(1);
            p = predict_row(ctx, row, backplane_us, &model).await?;
        }
        result.agreement = Some(Agreement::of(&result, &p));
        result.predicted = Some(p);
    }
    Ok((result, logs))
}

/// The simulator's prediction for `row` on fresh servers of its own.
async fn predict_row(
    ctx: &Context,
    row: &RowSpec,
    backplane_us: u64,
    model: &ModelSettings,
) -> Result<super::predict::Prediction, LoadError> {
    let servers = {
        let (cache, max) = (row.cache.clone(), row.maxmemory());
        tokio::task::spawn_blocking(move || Servers::start(&cache, max))
            .await
            .map_err(|e| LoadError::Io {
                what: "starting the prediction's servers".into(),
                source: std::io::Error::other(e.to_string()),
            })??
    };
    let spec = row
        .cache
        .sim_spec(
            servers.redis_url().as_deref(),
            servers.memcache_url().as_deref(),
            backplane_us,
        )
        .ok_or_else(|| LoadError::Flag(format!("{}: the simulator has no such cache", row.label)))?;
    let mut p = predict(ctx.workload.clone(), row.strategy.clone(), spec, model.clone()).await?;
    p.redis_keys = servers.redis_key_stats();
    drop(servers);
    Ok(p)
}

/// A row's database faults and fail-safe settings for the simulator, in
/// trace time: each fault's window from its first post to its end (`logs`,
/// µs since the epoch, `t0_us` the row's trace time 0), the settings and
/// latencies times the speed.
fn db_model(settings: &FailSafeSettings, logs: &[FaultLog], t0_us: i64, speed: f64) -> DbModel {
    let trace_us = |real_us: i64| ((real_us.max(0) as f64) * speed).round() as u64;
    let scaled_ms = |ms: u64| Duration::from_secs_f64(ms as f64 / 1000.0 * speed);
    let faults = logs
        .iter()
        .filter_map(|log| {
            let kind = match log.kind {
                "db-outage" => sim::config::DbFaultKind::Outage,
                "db-slow" => sim::config::DbFaultKind::Slow {
                    latency_us: trace_us(i64::try_from(log.latency_ms?).ok()? * 1000),
                },
                _ => return None,
            };
            Some(sim::config::DbFault {
                start_us: trace_us(log.start_us - t0_us),
                end_us: trace_us(log.end_us - t0_us),
                kind,
            })
        })
        .collect();
    DbModel {
        faults,
        fail_safe: settings.fail_safe_s.map(|s| scaled_ms(s.saturating_mul(1000))),
        soft_timeout: settings.soft_timeout_ms.map(scaled_ms),
        hard_timeout: settings.hard_timeout_ms.map(scaled_ms),
    }
}
