//! Configuration: the URL forms, the options and the builder.

use std::time::Duration;

use cache_core::{Error, Result};

use crate::RedisBackend;

/// Default connect timeout: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default command timeout: 1 s.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Default largest value: 8 MiB. Redis itself takes up to 512 MiB, but a
/// multi-megabyte cache entry blocks the server's single thread while it is
/// copied and is almost always a bug; raise it with
/// [`RedisBackendBuilder::max_value_size`] when a workload needs more.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 8 << 20;

/// Tunables of a [`RedisBackend`]; set them through [`RedisBackendBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Bound on establishing a connection (the first one, and each reconnect
    /// attempt). Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Bound on one call of the backend, including any wait for a reconnect
    /// in progress; past it the call returns
    /// [`Error::Timeout`](cache_core::Error::Timeout). Default
    /// [`DEFAULT_COMMAND_TIMEOUT`].
    pub command_timeout: Duration,
    /// Largest value accepted, in bytes; larger values are rejected with
    /// [`Error::ValueTooLarge`](cache_core::Error::ValueTooLarge) before
    /// anything is sent. Default [`DEFAULT_MAX_VALUE_SIZE`].
    pub max_value_size: usize,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
        }
    }
}

/// Builds a [`RedisBackend`] from a URL and [`RedisOptions`].
///
/// ```no_run
/// use std::time::Duration;
/// use backend_redis::RedisBackend;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// let cache = RedisBackend::builder("redis://127.0.0.1:6379/0")
///     .connect_timeout(Duration::from_millis(500))
///     .command_timeout(Duration::from_millis(250))
///     .max_value_size(1 << 20)
///     .build()
///     .await?;
/// # let _ = cache; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisBackendBuilder {
    pub(crate) url: String,
    pub(crate) options: RedisOptions,
    /// Extra trusted root certificates, PEM (feature `tls`).
    pub(crate) tls_roots_pem: Option<Vec<u8>>,
}

impl RedisBackendBuilder {
    /// A builder for `url` with default options (see the crate docs for the
    /// URL forms).
    pub fn new(url: impl Into<String>) -> Self {
        RedisBackendBuilder {
            url: url.into(),
            options: RedisOptions::default(),
            tls_roots_pem: None,
        }
    }

    /// Replaces all options at once.
    pub fn options(mut self, options: RedisOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets [`RedisOptions::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Sets [`RedisOptions::command_timeout`].
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.options.command_timeout = timeout;
        self
    }

    /// Trusts the CA certificate(s) in `pem` for `rediss://` connections
    /// instead of the built-in public roots (webpki-roots): for servers with
    /// a private CA. Feature `tls`. Building with it and a non-TLS URL is an
    /// [`Error::Config`](cache_core::Error::Config).
    ///
    /// ```no_run
    /// # async fn f() -> cache_core::Result<()> {
    /// let ca = std::fs::read("/etc/redis/ca.crt").expect("CA file");
    /// let cache = backend_redis::RedisBackend::builder("rediss://cache.internal:6380/0")
    ///     .tls_root_certificates(ca)
    ///     .build()
    ///     .await?;
    /// # let _ = cache; Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_roots_pem = Some(pem.into());
        self
    }

    /// Sets [`RedisOptions::max_value_size`].
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.options.max_value_size = bytes;
        self
    }

    /// Connects (within the connect timeout) and returns the backend. An
    /// unreachable server is [`Error::Unavailable`] or [`Error::Timeout`]
    /// naming the URL (password hidden); a malformed URL is
    /// [`Error::Config`].
    pub async fn build(self) -> Result<RedisBackend> {
        RedisBackend::connect_with(self).await
    }
}

/// Where to connect, parsed from the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server; the URL as the `redis` crate takes it.
    Single(String),
    /// A cluster; one `redis://` or `rediss://` URL per seed node.
    Cluster(Vec<String>),
}

const CLUSTER_SCHEME: &str = "redis+cluster://";
const CLUSTER_TLS_SCHEME: &str = "rediss+cluster://";

/// Parses the URL forms documented in the crate docs.
pub(crate) fn parse_target(url: &str) -> Result<Target> {
    let config_err = |backend: &str, message: String| Error::Config {
        backend: backend.to_owned(),
        message,
    };
    let (tls, rest, cluster) = if let Some(rest) = url.strip_prefix(CLUSTER_SCHEME) {
        (false, rest, true)
    } else if let Some(rest) = url.strip_prefix(CLUSTER_TLS_SCHEME) {
        (true, rest, true)
    } else if let Some(rest) = url.strip_prefix("redis://") {
        (false, rest, false)
    } else if let Some(rest) = url.strip_prefix("rediss://") {
        (true, rest, false)
    } else {
        return Err(config_err(
            "redis",
            format!(
                "unsupported URL {:?}: expected redis://, rediss://, redis+cluster:// or rediss+cluster://",
                redact_url(url)
            ),
        ));
    };
    let backend = if cluster { "redis-cluster" } else { "redis" };
    if tls && !cfg!(feature = "tls") {
        return Err(config_err(
            backend,
            format!(
                "{} needs TLS: enable the `tls` feature of backend-redis",
                redact_url(url)
            ),
        ));
    }
    if !cluster {
        return Ok(Target::Single(url.to_owned()));
    }
    // redis+cluster://[user[:password]@]host1:port1,host2:port2[/]
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/" || path == "/0") {
        return Err(config_err(
            backend,
            format!(
                "{}: a cluster has only database 0 and takes no path or query",
                redact_url(url)
            ),
        ));
    }
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let scheme = if tls { "rediss" } else { "redis" };
    let seeds: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| {
            let h = if h.contains(':') {
                h.to_owned()
            } else {
                format!("{h}:6379")
            };
            match userinfo {
                Some(u) => format!("{scheme}://{u}@{h}/"),
                None => format!("{scheme}://{h}/"),
            }
        })
        .collect();
    if seeds.is_empty() {
        return Err(config_err(backend, format!("{}: no seed nodes", redact_url(url))));
    }
    Ok(Target::Cluster(seeds))
}

pub(crate) use cache_core::redact::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_urls_pass_through() {
        assert_eq!(
            parse_target("redis://u:p@h:1/2").unwrap(),
            Target::Single("redis://u:p@h:1/2".into())
        );
    }

    #[test]
    fn cluster_urls_split_into_seeds_with_credentials() {
        assert_eq!(
            parse_target("redis+cluster://:pw@a:1,b:2,c").unwrap(),
            Target::Cluster(vec![
                "redis://:pw@a:1/".into(),
                "redis://:pw@b:2/".into(),
                "redis://:pw@c:6379/".into()
            ])
        );
        assert!(matches!(
            parse_target("redis+cluster://a:1/3"),
            Err(Error::Config { .. })
        ));
        assert!(matches!(parse_target("redis+cluster://"), Err(Error::Config { .. })));
    }

    #[test]
    fn bad_scheme_is_a_config_error_without_password() {
        let err = parse_target("http://user:secret@h:1").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_needs_the_feature() {
        let err = parse_target("rediss://h:1").unwrap_err();
        assert!(err.to_string().contains("`tls` feature"), "{err}");
    }
}
