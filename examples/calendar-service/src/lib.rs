//! # calendar-service
//!
//! The seed's calendar, rebuilt on this workspace's library: an axum service
//! with work items in SQLite, a FullCalendar page, and one
//! [`RangeCache`] in front of the feed.
//!
//! ```sh
//! cargo run -p calendar-service                       # locmem, versioned, http://127.0.0.1:8080
//! cargo run -p calendar-service -- --cache redis://127.0.0.1:6379/0 --strategy bucketed --port 3000
//! ```
//!
//! # Layout
//!
//! - `lib.rs` (here): [`Config`], the app state [`App`] (the database and
//!   the one cache, built at startup), the [`router`], [`serve`].
//! - [`api`]: the handlers: the cached feed, and create / edit / delete,
//!   which announce themselves to the cache just before they commit
//!   (`begin_write`, which `stamped` uses to fence the commit-to-bump
//!   window) and invalidate after (`end_write`).
//! - [`db`]: calendars, members and work items in SQLite (several
//!   processes may share one file), the feed query, and the commit log every
//!   write appends to in its own transaction (its place and instant come
//!   back in the write's `x-commit-seq` / `x-commit-us` headers).
//! - [`outbox`]: the cache's transactional outbox on SQLite: each write's
//!   changes recorded in its own transaction, deleted once the bump lands,
//!   applied by every process's relay if the writer died first.
//! - `assets`: the page (HTML, JS, CSS) and the vendored FullCalendar,
//!   compiled into the binary.
//! - `load` (feature `load`): the load-and-check tool `calendar-load`
//!   (`src/bin/calendar-load.rs`): several service processes under a trace's
//!   traffic, real cache servers and faults, every feed response judged,
//!   the simulator's prediction beside it (`docs/world.md`).
//!
//! The real-browser test (`tests/browser.rs`) plays the seed's three
//! verification scenarios through the page in headless Chromium.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::Router;
use cache_core::strategy::by_name;
use cache_core::{CacheOptions, RangeCache};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub mod api;
mod assets;
pub mod db;
#[cfg(feature = "load")]
pub mod load;
pub mod outbox;

pub use db::Db;

/// The strategy used when none is configured: the one the measurements
/// recommend (see the repository README, "Which strategy?").
pub const DEFAULT_STRATEGY: &str = "stamped";

/// How the service is set up: flags, or environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "calendar-service",
    about = "The seed's calendar on range-cache: axum + SQLite + FullCalendar"
)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CALENDAR_HOST", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, env = "CALENDAR_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Cache backend: `locmem`, `locmem:<MiB>`, `redis://…`, `redis+cluster://…`, `memcache://…`,
    /// two tiers for several processes: `two-tier[/backplane]:locmem+<one of those>`, or `none`
    /// (the cache off: every read a miss).
    #[arg(long, env = "CALENDAR_CACHE_URL", default_value = "locmem")]
    pub cache: String,
    /// Invalidation strategy (`versioned`, `bucketed`, `fixed-month`, …).
    #[arg(long, env = "CALENDAR_STRATEGY", default_value = DEFAULT_STRATEGY)]
    pub strategy: String,
    /// SQLite file (created and filled with demo data if new); default: a
    /// private in-memory database with the demo data.
    #[arg(long, env = "CALENDAR_DB")]
    pub db: Option<PathBuf>,
    /// Key namespace in the cache; default `calendar` with a database file,
    /// a per-run one with the in-memory database.
    #[arg(long = "cache-namespace", env = "CALENDAR_CACHE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Record every write's cache invalidations in the `cache_outbox`
    /// table, in the write's own transaction, and run the outbox relay, so
    /// a process that dies between a commit and its bump has it applied
    /// by another (`on`/`off`).
    #[arg(long, env = "CALENDAR_OUTBOX", default_value = "on", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub outbox: bool,
    /// First retry of an invalidation that failed (the cache frozen or
    /// away), ms; the wait doubles per failed round up to
    /// `--bump-retry-max-ms`.
    #[arg(long, env = "CALENDAR_BUMP_RETRY_MIN_MS", default_value_t = 10)]
    pub bump_retry_min_ms: u64,
    /// Longest wait between retries of failed invalidations, ms: once the
    /// cache answers again, other processes stop serving what it should
    /// have invalidated within about this long.
    #[arg(long, env = "CALENDAR_BUMP_RETRY_MAX_MS", default_value_t = 100)]
    pub bump_retry_max_ms: u64,
    /// How often the outbox relay polls the `cache_outbox` table, ms.
    #[arg(long, env = "CALENDAR_OUTBOX_POLL_MS", default_value_t = 1_000)]
    pub outbox_poll_ms: u64,
    /// How old an outbox row must be before the relay applies it, ms
    /// (younger rows belong to writers still applying them).
    #[arg(long, env = "CALENDAR_OUTBOX_GRACE_MS", default_value_t = 5_000)]
    pub outbox_grace_ms: u64,
    /// How long a cached feed lives, ms (1..=31536000000); default: the
    /// library's 300 s. The load tool scales it with its time compression.
    #[arg(long = "cache-ttl-ms", env = "CALENDAR_CACHE_TTL_MS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_MS))]
    pub cache_ttl_ms: Option<u64>,
    /// `short-ttl`'s TTL, ms (1..=31536000000); default: the library's 60 s.
    #[arg(long = "short-ttl-ms", env = "CALENDAR_SHORT_TTL_MS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_MS))]
    pub short_ttl_ms: Option<u64>,
    /// Fail-safe: when the feed query fails or times out, answer with the
    /// cached feed if it expired less than this many seconds ago (a feed
    /// with old stamps that has not expired yet always qualifies), marked
    /// `x-cache-fail-safe: current|stale`. Off when absent.
    #[arg(long, env = "CALENDAR_FAIL_SAFE_S")]
    pub fail_safe_s: Option<u64>,
    /// Soft timeout of the feed query, ms (needs `--fail-safe-s`): a
    /// request with a fail-safe feed that has waited this long is answered
    /// with it while the query goes on and refreshes the cache.
    #[arg(long, env = "CALENDAR_SOFT_TIMEOUT_MS")]
    pub soft_timeout_ms: Option<u64>,
    /// Hard timeout of the feed query, ms: past it the query is given up
    /// and the request answered by fail-safe, or with 504.
    #[arg(long, env = "CALENDAR_HARD_TIMEOUT_MS")]
    pub hard_timeout_ms: Option<u64>,
    /// Test only: serve `POST /test/db-fault` and `DELETE /test/db-fault`,
    /// which make the feed query fail or slow down for a while (see
    /// [`db::DbFaults`]). Never in production: anyone can take the feed
    /// down with it.
    #[arg(long, env = "CALENDAR_TEST_DB_FAULTS", default_value_t = false)]
    pub test_db_faults: bool,
}

/// The longest `--cache-ttl-ms` / `--short-ttl-ms`: 365 days.
pub const MAX_TTL_MS: u64 = 365 * 86_400_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            cache: "locmem".to_owned(),
            strategy: DEFAULT_STRATEGY.to_owned(),
            db: None,
            namespace: None,
            outbox: true,
            bump_retry_min_ms: 10,
            bump_retry_max_ms: 100,
            outbox_poll_ms: 1_000,
            outbox_grace_ms: 5_000,
            cache_ttl_ms: None,
            short_ttl_ms: None,
            fail_safe_s: None,
            soft_timeout_ms: None,
            hard_timeout_ms: None,
            test_db_faults: false,
        }
    }
}

impl Config {
    /// The socket address to bind.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The cache key namespace. An in-memory database is new on every start
    /// while a Redis or Memcached cache outlives the process: entries of the
    /// previous run would be served for the new data (ids are reused), so
    /// each run gets its own namespace. A database file persists with the
    /// cache, and every process on it shares one namespace.
    fn namespace(&self) -> String {
        match (&self.namespace, &self.db) {
            (Some(ns), _) => ns.clone(),
            (None, Some(_)) => "calendar".to_owned(),
            (None, None) => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                format!("calendar-{}-{nanos}", std::process::id())
            }
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened.
    #[error("database: {0}")]
    Db(#[from] db::DbError),
    /// The cache URL or strategy was rejected, or the server is unreachable.
    #[error("cache: {0}")]
    Cache(#[from] backend_any::Error),
}

/// The app state shared by every handler: the database and the one cache.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    /// The work items.
    pub db: Db,
    /// The feed cache, built once: its single-flight and its metrics span
    /// every request only because every request uses this one.
    pub cache: Arc<RangeCache>,
    /// The cache URL with any password hidden, for the page and the logs.
    pub backend_label: String,
    /// The cache's `metrics` instruments, rendered as Prometheus text at
    /// `/metrics`.
    pub metrics: PrometheusHandle,
    /// The outbox of cache invalidations (`--outbox on`), which every
    /// write records its changes in.
    pub outbox: Option<outbox::SqliteOutbox>,
    /// The outbox relay's task, stopped when the last clone of the app
    /// goes.
    _relay: Option<Arc<RelayTask>>,
    /// Serve the test-only fault endpoint (`--test-db-faults`).
    test_db_faults: bool,
}

/// Aborts the outbox relay's task when dropped.
#[derive(Debug)]
struct RelayTask(tokio::task::JoinHandle<()>);

impl Drop for RelayTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl App {
    /// Opens the database, builds the cache from `config` and, with the
    /// outbox on, starts the outbox relay.
    pub async fn start(config: &Config) -> Result<App, StartError> {
        let db = Db::open(config.db.as_deref())?;
        let ms = Duration::from_millis;
        let mut options = CacheOptions::default()
            .with_namespace(config.namespace())
            .with_bump_retry(ms(config.bump_retry_min_ms), ms(config.bump_retry_max_ms))
            .with_outbox_timing(ms(config.outbox_poll_ms), ms(config.outbox_grace_ms))
            .with_fail_safe(config.fail_safe_s.map(Duration::from_secs))
            .with_load_timeouts(config.soft_timeout_ms.map(ms), config.hard_timeout_ms.map(ms));
        if let Some(t) = config.cache_ttl_ms {
            options = options.with_ttl(ms(t));
        }
        if let Some(t) = config.short_ttl_ms {
            options = options.with_short_ttl(ms(t));
        }
        // A bad strategy name or setting is reported before any server is
        // contacted (the error names it).
        by_name(&config.strategy, &options).map_err(backend_any::Error::Strategy)?;
        let backend = backend_any::connect(&config.cache).await?;
        let mut builder = RangeCache::builder(backend)
            .options(options)
            .strategy(config.strategy.as_str())
            .name("calendar-feed");
        let outbox = match config.outbox {
            true => Some(outbox::SqliteOutbox::open(db.clone()).await?),
            false => None,
        };
        if let Some(o) = &outbox {
            builder = builder.outbox(Arc::new(o.clone()));
        }
        // The cache's instruments are registered with this recorder when the
        // cache is built. It is local to the app rather than installed
        // globally, so that tests can run several apps in one process; a
        // service with one cache could equally `install_recorder()` in main.
        let recorder = PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        let cache =
            metrics::with_local_recorder(&recorder, || builder.build()).map_err(backend_any::Error::Strategy)?;
        let cache = Arc::new(cache);
        let relay = cache
            .outbox_relay()
            .map(|relay| Arc::new(RelayTask(tokio::spawn(relay.run()))));
        Ok(App {
            db,
            cache,
            backend_label: backend_any::redact(&config.cache),
            metrics,
            outbox,
            _relay: relay,
            test_db_faults: config.test_db_faults,
        })
    }
}

/// Every route: the page, its assets, the feed and the item API.
pub fn router(app: App) -> Router {
    let faults = app.test_db_faults;
    let router = Router::new()
        .route("/calendar/feed", get(api::feed))
        .route("/api/me", get(api::me))
        .route("/api/cache", get(api::cache_metrics))
        .route("/metrics", get(api::prometheus))
        .route("/api/items", axum::routing::post(api::create_item))
        .route(
            "/api/items/{id}",
            get(api::get_item).put(api::update_item).delete(api::delete_item),
        )
        .merge(assets::routes());
    let router = if faults {
        router.route(
            "/test/db-fault",
            axum::routing::post(api::inject_db_fault).delete(api::clear_db_faults),
        )
    } else {
        router
    };
    router.with_state(app)
}

/// Serves `app` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, app: App) -> std::io::Result<()> {
    axum::serve(listener, router(app)).await
}

/// This crate's README: its Rust snippets compile and run as doctests, so
/// the "use it in your service" section cannot drift from the library.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The repository README: its Rust snippets compile and run as doctests
/// (this crate has every dependency they use: axum, backend-any, chrono,
/// tokio), so the README's "use it in your service" cannot drift either.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct RootReadmeDoctests;

/// The guide's pages with Rust snippets, compiled and run the same way.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/service.md")]
pub struct ServiceGuideDoctests;

/// See [`ServiceGuideDoctests`].
#[cfg(doctest)]
#[doc = include_str!("../../../docs/several-processes.md")]
pub struct SeveralProcessesGuideDoctests;
