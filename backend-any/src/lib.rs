//! # backend-any
//!
//! From a backend URL and a strategy name to a ready
//! [`RangeCache`] in one line, for applications that
//! choose their store in configuration:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), backend_any::Error> {
//! let cache = backend_any::range_cache("locmem", "versioned").await?;
//! assert_eq!(cache.strategy().name(), "versioned");
//! # Ok(()) }
//! ```
//!
//! `cache-core` knows no backend, and each backend crate knows only itself;
//! this crate is the one place that maps a URL to a backend.
//!
//! | URL | backend |
//! |---|---|
//! | `locmem` | in-process ([`backend_locmem`]), 256 MiB |
//! | `locmem:64` | in-process, 64 MiB |
//! | `redis://host:6379/0`, `redis://user:pass@host:6379/2` | one Redis server ([`backend_redis`]) |
//! | `rediss://…`, `rediss+cluster://…` | Redis over TLS (cargo feature `tls`) |
//! | `redis+cluster://host:7000,host:7001` | a Redis Cluster |
//! | `memcache://host:11211`, `memcache://a:11211,b:11211?timeout_ms=200` | Memcached, one server or a pool ([`backend_memcached`]) |
//! | `two-tier:locmem:64+redis://host:6379/0` | two tiers: an in-process L1 (64 MiB) in front of a shared L2 (any URL above) ([`cache_core::tier`]) |
//! | `two-tier/tracking:locmem+redis://host:6379/0` | two tiers kept coherent by Redis itself (client tracking): an L1 hit makes no round trip (options: [`two_tier`](crate#two-tier-urls)) |
//! | `two-tier/backplane:locmem+redis://host:6379/0` | two tiers kept coherent over Redis pub/sub: an L1 hit makes no round trip |
//! | `none` | keeps nothing: every read is a miss, the app with its cache off, to measure what the cache buys ([`NoneBackend`]) |
//!
//! A password in a URL never appears in an error or a log line: [`redact`]
//! shows it as `***`.
//!
//! When the application needs its own key namespace (several applications
//! on one Redis) or other options, [`range_cache_with`] takes them:
//!
//! ```
//! use cache_core::CacheOptions;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), backend_any::Error> {
//! let cache = backend_any::range_cache_with(
//!     "locmem:64",
//!     "bucketed",
//!     &CacheOptions::default().with_namespace("calendar"),
//! )
//! .await?;
//! # let _ = cache; Ok(()) }
//! ```
//!
//! # Two-tier URLs
//!
//! `two-tier[/<option>,…]:<l1>+<l2>`: for several app processes (workers,
//! pods) that serve the same feeds, with the `stamped` strategy; see
//! [`cache_core::tier`] for when to choose it and what it costs.
//!
//! - `<l1>`: `locmem` or `locmem:<MiB>`; `<l2>`: any other URL above.
//! - `tracking`: Redis client tracking (RESP3, Redis 6+) on the L2's
//!   servers, every master of a cluster: the server tells each process
//!   when a generation it read changed. Only with a Redis L2.
//! - `backplane`: Redis pub/sub on the L2's server (a cluster's first node)
//!   tells every process about generation bumps. Only with a Redis L2:
//!   Memcached has no publish/subscribe.
//! - `channel=<name>`: the pub/sub channel (default
//!   `range-cache:generations`); `trust=<s>`: how long a generation the
//!   backplane vouches for is trusted without a notice (default 3600).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), backend_any::Error> {
//! let feeds = backend_any::range_cache(
//!     "two-tier/backplane,trust=300:locmem:64+redis://127.0.0.1:6379/0",
//!     "stamped",
//! )
//! .await?;
//! # let _ = feeds; Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: [`connect`] (URL → backend), [`range_cache`] and
//!   [`range_cache_with`] (URL + strategy → `RangeCache`), [`redact`], and
//!   the [`Error`] type.
//! - `two_tier.rs`: `two-tier:` URLs.
//! - `none.rs`: [`NoneBackend`], the `none` URL.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::sync::Arc;

use backend_locmem::LocmemBackend;
use cache_core::redact::scrub;
use cache_core::strategy::by_name;
use cache_core::{Backend, CacheOptions, RangeCache};

mod none;
pub mod spec;
mod two_tier;

pub use none::NoneBackend;
pub use two_tier::DEFAULT_CHANNEL;

/// Why no backend or cache could be built. Every variant that quotes the URL
/// quotes it [`redact`]ed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL's scheme names no backend.
    #[error(
        "unknown backend URL {url:?}: expected locmem, locmem:<MiB>, redis://, rediss://, \
         redis+cluster://, rediss+cluster://, memcache://, two-tier:<l1>+<l2> or none"
    )]
    UnknownScheme {
        /// The URL, password hidden.
        url: String,
    },
    /// The URL has a known scheme but cannot be used (a bad capacity, an
    /// option the backend rejects, a missing cargo feature).
    #[error("{url}: {message}")]
    Config {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// The backend's message, password hidden.
        message: String,
    },
    /// The strategy name or options were rejected (the message lists the
    /// valid names).
    #[error("strategy: {0}")]
    Strategy(#[source] cache_core::Error),
}

/// The backend `url` names, connected (see the [crate docs](crate) for the
/// URL forms). Servers are contacted here, so an unreachable one fails now
/// rather than on the first request.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let backend = backend_any::connect("locmem:16").await.unwrap();
/// assert_eq!(backend.name(), "locmem");
/// let err = backend_any::connect("redis://app:hunter2@127.0.0.1:1/0").await.unwrap_err();
/// assert!(!err.to_string().contains("hunter2"));
/// assert!(err.to_string().contains("redis://app:***@127.0.0.1:1/0"));
/// # }
/// ```
pub async fn connect(url: &str) -> Result<Arc<dyn Backend>, Error> {
    let shown = redact(url);
    let config = |message: String| Error::Config {
        url: shown.clone(),
        message,
    };
    if url == "locmem" {
        return Ok(Arc::new(LocmemBackend::new()));
    }
    if url == "none" {
        return Ok(Arc::new(NoneBackend));
    }
    if url.starts_with("two-tier") {
        return two_tier::connect_two_tier(url).await;
    }
    if let Some(mib) = url.strip_prefix("locmem:") {
        let mib: u64 = mib
            .parse()
            .ok()
            .filter(|&m| m > 0 && m <= 1 << 20)
            .ok_or_else(|| config("expected locmem:<capacity in MiB, 1 to 1048576>".to_owned()))?;
        return Ok(Arc::new(LocmemBackend::builder().max_capacity_bytes(mib << 20).build()));
    }
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
    let result: cache_core::Result<Arc<dyn Backend>> = match scheme {
        "redis" | "rediss" | "redis+cluster" | "rediss+cluster" => backend_redis::RedisBackend::connect(url)
            .await
            .map(|b| Arc::new(b) as Arc<dyn Backend>),
        "memcache" | "memcached" => {
            // The Memcached backend has no authentication; refusing
            // credentials here also keeps them out of its messages, which
            // quote the server list verbatim.
            if userinfo(url).is_some() {
                return Err(config("Memcached takes no user or password in the URL".to_owned()));
            }
            backend_memcached::MemcachedBackend::from_url(url)
                .await
                .map(|b| Arc::new(b) as Arc<dyn Backend>)
        }
        _ => return Err(Error::UnknownScheme { url: shown }),
    };
    result.map_err(|e| {
        let message = scrub(&e.to_string(), url);
        match e {
            cache_core::Error::Config { .. } => Error::Config { url: shown, message },
            _ => Error::Connect { url: shown, message },
        }
    })
}

/// A [`RangeCache`] over the backend `url` names, with the strategy
/// registered as `strategy` (`"versioned"`, `"bucketed"`, … see
/// [`cache_core::strategy::NAMES`]) and default options.
///
/// Build it once at startup and share it (`Arc`, or axum state): its
/// single-flight and metrics work across requests only if they share it.
pub async fn range_cache(url: &str, strategy: &str) -> Result<RangeCache, Error> {
    range_cache_with(url, strategy, &CacheOptions::default()).await
}

/// As [`range_cache`], with options (a key namespace, a TTL, XFetch, …).
/// The strategy and the options are checked before any server is
/// contacted. For a cache name or a strategy of your own, use
/// [`connect`] and [`RangeCache::builder`].
pub async fn range_cache_with(url: &str, strategy: &str, options: &CacheOptions) -> Result<RangeCache, Error> {
    by_name(strategy, options).map_err(Error::Strategy)?;
    let backend = connect(url).await?;
    RangeCache::builder(backend)
        .options(options.clone())
        .strategy(strategy)
        .build()
        .map_err(Error::Strategy)
}

/// `url` with its passwords replaced by `***`, for logs and errors: the
/// user info's password (or a lone token) and `password=` query values
/// ([`cache_core::redact::redact_url`], the redactor every crate of the
/// workspace uses).
///
/// ```
/// assert_eq!(backend_any::redact("redis://app:s3cret@h:6379/0"), "redis://app:***@h:6379/0");
/// assert_eq!(backend_any::redact("redis://:s3cret@h:6379"), "redis://:***@h:6379");
/// assert_eq!(backend_any::redact("memcache://h:11211"), "memcache://h:11211");
/// ```
pub fn redact(url: &str) -> String {
    cache_core::redact::redact_url(url)
}

/// The `user[:password]` part of `url`, if any.
fn userinfo(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rfind('@').map(|at| &authority[..at])
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_core::{fullcalendar, Bytes, Change, Scope, View};

    fn view() -> View {
        let query = "start=2025-09-29T00:00:00Z&end=2025-11-10T00:00:00Z";
        fullcalendar::view([Scope::new("cal:1").unwrap()], query, &[]).unwrap()
    }

    /// A filled view is served from the cache; after an invalidation of its
    /// scope it is loaded again. Run on every backend URL form we can start.
    async fn check_roundtrip(url: &str) {
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let cache = range_cache_with(
            url,
            "versioned",
            // One namespace per call: several URLs share one server.
            &CacheOptions::default().with_namespace(format!(
                "backend-any-test-{}-{}",
                std::process::id(),
                CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )),
        )
        .await
        .unwrap();
        let v = view();
        let load =
            |body: &'static str| move || async move { Ok::<_, std::io::Error>(Bytes::from_static(body.as_bytes())) };
        assert_eq!(cache.get_or_load(&v, load("[1]")).await.unwrap(), "[1]");
        assert_eq!(cache.get_or_load(&v, load("[2]")).await.unwrap(), "[1]");
        cache
            .invalidate(&Change::new(Scope::new("cal:1").unwrap(), [v.range]).unwrap())
            .await
            .unwrap();
        assert_eq!(cache.get_or_load(&v, load("[3]")).await.unwrap(), "[3]");
        let m = cache.metrics();
        assert_eq!((m.hits, m.loader_calls, m.invalidations), (1, 2, 1), "{url}");
    }

    /// `none` keeps nothing: every read loads, every strategy's writes
    /// succeed (its `incr` finds no counter and the strategies seed one,
    /// which is lost too), and nothing counts as an error.
    #[tokio::test]
    async fn none_caches_nothing_and_never_fails() {
        for strategy in cache_core::strategy::NAMES {
            let cache = range_cache("none", strategy).await.unwrap();
            let v = view();
            for round in 0..3u8 {
                let body = cache
                    .get_or_load(&v, || async move { Ok::<_, std::io::Error>(Bytes::from(vec![round])) })
                    .await
                    .unwrap();
                assert_eq!(body.as_ref(), [round], "{strategy}: served what the loader gave");
                let change = Change::new(Scope::new("cal:1").unwrap(), [v.range]).unwrap();
                cache.begin_write(&change).await.unwrap();
                cache.end_write(&change).await.unwrap();
            }
            let m = cache.metrics();
            assert_eq!((m.hits, m.misses, m.loader_calls), (0, 3, 3), "{strategy}");
            assert_eq!(
                (m.read_errors, m.store_errors, m.invalidation_errors),
                (0, 0, 0),
                "{strategy}"
            );
            assert_eq!(cache.backend().name(), "none");
        }
    }

    #[tokio::test]
    async fn locmem_forms() {
        check_roundtrip("locmem").await;
        check_roundtrip("locmem:8").await;
        for bad in ["locmem:", "locmem:0", "locmem:x", "locmem:-1", "locmem:99999999"] {
            assert!(matches!(connect(bad).await, Err(Error::Config { .. })), "{bad}");
        }
    }

    #[tokio::test]
    async fn real_redis_and_memcached() {
        use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
        use cache_testkit::redis::RedisServer;
        let redis = RedisServer::new().unwrap();
        check_roundtrip(&redis.url()).await;
        let memcached = MemcachedServer::spawn(&MemcachedConfig::default()).unwrap();
        check_roundtrip(&memcached.url()).await;
        check_roundtrip("two-tier:locmem+locmem").await;
        check_roundtrip(&format!("two-tier:locmem:8+{}", redis.url())).await;
        check_roundtrip(&format!("two-tier/backplane,trust=60:locmem+{}", redis.url())).await;
        check_roundtrip(&format!("two-tier/tracking:locmem+{}", redis.url())).await;
        check_roundtrip(&format!("two-tier:locmem+{}", memcached.url())).await;
    }

    /// Two processes on one `two-tier/backplane` or `two-tier/tracking`
    /// URL: the second serves the first's fill from its own L1 after one
    /// read, and sees the first's write (a bump notice, an invalidation)
    /// without serving its outdated copy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_tier_urls_stay_coherent_across_processes() {
        use cache_testkit::redis::RedisServer;
        let redis = RedisServer::new().unwrap();
        for (option, name) in [
            ("backplane,channel=any-test", "two-tier(locmem+redis+redis-pubsub)"),
            ("tracking", "two-tier(locmem+redis+redis-tracking)"),
        ] {
            coherent(&format!("two-tier/{option}:locmem+{}", redis.url()), name).await;
        }
    }

    async fn coherent(url: &str, name: &str) {
        // A namespace per URL: the runs share one server.
        let options = cache_core::CacheOptions::default().with_namespace(name);
        let (a, b) = (
            range_cache_with(url, "stamped", &options).await.unwrap(),
            range_cache_with(url, "stamped", &options).await.unwrap(),
        );
        assert_eq!(a.backend().name(), name);
        let v = view();
        let load =
            |body: &'static str| move || async move { Ok::<_, std::io::Error>(Bytes::from_static(body.as_bytes())) };
        assert_eq!(a.get_or_load(&v, load("[1]")).await.unwrap(), "[1]");
        assert_eq!(b.get_or_load(&v, load("[x]")).await.unwrap(), "[1]", "B hits A's fill");
        a.invalidate(&Change::new(Scope::new("cal:1").unwrap(), [v.range]).unwrap())
            .await
            .unwrap();
        // Until B hears the notice it may serve its L1 copy; within a
        // second it must load again.
        let start = std::time::Instant::now();
        while b.get_or_load(&v, load("[2]")).await.unwrap() != "[2]" {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "B never saw the write"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(a.get_or_load(&v, load("[3]")).await.unwrap(), "[2]", "A hits B's fill");
    }

    #[tokio::test]
    async fn unknown_schemes_and_strategies_are_refused_with_the_choices() {
        let err = connect("postgres://u:pw@h/db").await.unwrap_err();
        assert!(matches!(err, Error::UnknownScheme { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("memcache://") && msg.contains("u:***@h") && !msg.contains("pw@"),
            "{msg}"
        );
        let err = range_cache("locmem", "lru").await.unwrap_err();
        assert!(matches!(err, Error::Strategy(_)));
        assert!(err.to_string().contains("versioned"), "{err}");
    }

    #[tokio::test]
    async fn passwords_never_reach_an_error() {
        // Port 1 on loopback: refused at once, nothing listens there.
        for url in [
            "redis://app:hunter2@127.0.0.1:1/0",
            "redis://:hunter2@127.0.0.1:1",
            "redis+cluster://app:hunter2@127.0.0.1:1,127.0.0.1:2",
            "memcache://app:hunter2@127.0.0.1:1",
            "two-tier:locmem+redis://app:hunter2@127.0.0.1:1/0",
            "two-tier/backplane:locmem+redis://app:hunter2@127.0.0.1:1/0",
            "two-tier/tracking:locmem+redis://app:hunter2@127.0.0.1:1/0",
            "redis://app:hunter2@127.0.0.1:notaport",
        ] {
            let err = connect(url).await.unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
            assert!(text.contains("***"), "{url}: {text}");
        }
    }

    #[test]
    fn redact_and_scrub() {
        assert_eq!(redact("redis+cluster://u:p@a:1,b:2"), "redis+cluster://u:***@a:1,b:2");
        assert_eq!(
            redact("redis://token@h:1"),
            "redis://***@h:1",
            "a lone token is a password"
        );
        assert_eq!(redact("redis://h:1/0?x=a@b"), "redis://h:1/0?x=a@b");
        assert_eq!(redact("locmem"), "locmem");
        assert_eq!(scrub("bad pw zz in u:zz@h", "redis://u:zz@h"), "bad pw *** in u:***@h");
    }
}
