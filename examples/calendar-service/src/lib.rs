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
use cache_core::strategy::StrategyOptions;
use cache_core::{RangeCache, RangeCacheOptions};

pub mod api;
mod assets;
pub mod db;
#[cfg(feature = "load")]
pub mod load;

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
    /// How long a cached feed lives, ms (1..=31536000000); default: the
    /// library's 300 s. The load tool scales it with its time compression.
    #[arg(long = "cache-ttl-ms", env = "CALENDAR_CACHE_TTL_MS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_MS))]
    pub cache_ttl_ms: Option<u64>,
    /// `short-ttl`'s TTL, ms (1..=31536000000); default: the library's 60 s.
    #[arg(long = "short-ttl-ms", env = "CALENDAR_SHORT_TTL_MS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_MS))]
    pub short_ttl_ms: Option<u64>,
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
            cache_ttl_ms: None,
            short_ttl_ms: None,
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
}

impl App {
    /// Opens the database and builds the cache from `config`.
    pub async fn start(config: &Config) -> Result<App, StartError> {
        let db = Db::open(config.db.as_deref())?;
        let mut strategy_options = StrategyOptions::default().with_namespace(config.namespace());
        if let Some(ms) = config.cache_ttl_ms {
            strategy_options = strategy_options.with_ttl(Duration::from_millis(ms));
        }
        if let Some(ms) = config.short_ttl_ms {
            strategy_options = strategy_options.with_short_ttl(Duration::from_millis(ms));
        }
        let cache = backend_any::range_cache_with(
            &config.cache,
            &config.strategy,
            &strategy_options,
            RangeCacheOptions::default(),
        )
        .await?;
        Ok(App {
            db,
            cache: Arc::new(cache),
            backend_label: backend_any::redact(&config.cache),
        })
    }
}

/// Every route: the page, its assets, the feed and the item API.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/calendar/feed", get(api::feed))
        .route("/api/me", get(api::me))
        .route("/api/cache", get(api::cache_metrics))
        .route("/api/items", axum::routing::post(api::create_item))
        .route(
            "/api/items/{id}",
            get(api::get_item).put(api::update_item).delete(api::delete_item),
        )
        .merge(assets::routes())
        .with_state(app)
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
