//! Configuration: the server list, timeouts, pool size and value limit, from
//! code or from a `memcache://` URL.

use std::time::Duration;

use cache_core::Error;

use crate::BACKEND_NAME;

/// Port used when a server is given without one.
pub const DEFAULT_PORT: u16 = 11211;

/// Item size of a stock `memcached` (`-I 1m`).
pub const DEFAULT_ITEM_SIZE: usize = 1024 * 1024;

/// Bytes of an item that are not the value: item header, CAS, flags suffix
/// and a key of up to 250 bytes. Measured on memcached 1.6.18 with `-I 1m`:
/// a 250-byte key takes values up to 1 048 267 bytes (309 bytes of overhead),
/// one byte more is `SERVER_ERROR object too large for cache`. 512 leaves
/// room for client flags set by other clients sharing the server.
pub const ITEM_OVERHEAD: usize = 512;

/// How to reach and use a Memcached server or pool.
///
/// Build with [`MemcachedOptions::new`] and the `with_*` methods, or parse a
/// URL with [`MemcachedOptions::from_url`]:
///
/// ```
/// use std::time::Duration;
/// use backend_memcached::MemcachedOptions;
///
/// let opts = MemcachedOptions::new(["10.0.0.1:11211", "10.0.0.2"])
///     .with_command_timeout(Duration::from_millis(250))
///     .with_connections_per_server(8);
/// assert_eq!(opts.servers, ["10.0.0.1:11211", "10.0.0.2:11211"]);
///
/// let same = MemcachedOptions::from_url(
///     "memcache://10.0.0.1:11211,10.0.0.2?timeout_ms=250&connections=8",
/// ).unwrap();
/// assert_eq!(same, opts);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemcachedOptions {
    /// Servers as `host:port`, in configuration order. The order does not
    /// affect routing (see the crate docs), but every process must list the
    /// same set.
    pub servers: Vec<String>,
    /// Longest time to open a TCP connection to one server.
    pub connect_timeout: Duration,
    /// Longest time one backend call may take, connecting and retries
    /// included; past it the call returns [`Error::Timeout`].
    pub command_timeout: Duration,
    /// Pipelined connections kept open to each server; calls take them in
    /// turn and any number of calls share one. The default, 1, is the
    /// fastest measured (`examples/throughput.rs`, 2 cores): one connection
    /// batches the most requests per `write`, and a single caller always
    /// finds its connection's reader awake; 4 or 16 connections were slower
    /// both one at a time and at 64 tasks.
    pub connections_per_server: usize,
    /// Largest value accepted, checked before sending. Must not exceed what
    /// the servers accept (their `-I` minus [`ITEM_OVERHEAD`]).
    pub max_value_size: usize,
    /// Check at [`connect`](crate::MemcachedBackend::connect) time that every
    /// server accepts a TCP connection, so a typo in the configuration fails
    /// at start-up with the server's address rather than at the first call.
    pub check_on_connect: bool,
}

impl MemcachedOptions {
    /// Options for `servers` (`host` or `host:port`) with the defaults:
    /// 1 s connect timeout, 1 s command timeout, 1 pipelined connection per server,
    /// values up to 1 MiB − [`ITEM_OVERHEAD`], connectivity checked on
    /// connect.
    pub fn new<S: AsRef<str>>(servers: impl IntoIterator<Item = S>) -> Self {
        MemcachedOptions {
            servers: servers.into_iter().map(|s| with_default_port(s.as_ref())).collect(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            connections_per_server: 1,
            max_value_size: DEFAULT_ITEM_SIZE - ITEM_OVERHEAD,
            check_on_connect: true,
        }
    }

    /// Parses `memcache://host[:port][,host[:port]…][?param=value&…]`
    /// (`memcached://` is accepted too).
    ///
    /// Parameters: `timeout_ms` (command timeout), `connect_timeout_ms`,
    /// `connections` (per server), `max_value_size` (bytes), `item_size`
    /// (the servers' `-I` in bytes; sets `max_value_size` to it minus
    /// [`ITEM_OVERHEAD`]), `check_on_connect` (`true`/`false`). Unknown
    /// parameters are an error, so a typo does not silently keep a default.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("memcache://")
            .or_else(|| url.strip_prefix("memcached://"))
            .ok_or_else(|| config(format!("URL {url:?} must start with memcache://")))?;
        let (hosts, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let hosts = hosts.trim_end_matches('/');
        let servers: Vec<&str> = hosts.split(',').map(str::trim).collect();
        if servers.iter().any(|s| s.is_empty()) {
            return Err(config(format!("URL {url:?} has an empty server entry")));
        }
        for s in &servers {
            validate_host_port(s).map_err(|why| config(format!("server {s:?} in {url:?}: {why}")))?;
        }
        let mut opts = MemcachedOptions::new(servers);
        for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| config(format!("parameter {pair:?} in {url:?} has no value")))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| config(format!("parameter {name}={value:?}: not a whole number")))
            };
            match name {
                "timeout_ms" => opts.command_timeout = Duration::from_millis(number()?),
                "connect_timeout_ms" => opts.connect_timeout = Duration::from_millis(number()?),
                "connections" => opts.connections_per_server = to_usize(number()?)?,
                "max_value_size" => opts.max_value_size = to_usize(number()?)?,
                "item_size" => opts = opts.with_item_size(to_usize(number()?)?),
                "check_on_connect" => {
                    opts.check_on_connect = value
                        .parse()
                        .map_err(|_| config(format!("parameter check_on_connect={value:?}: not true/false")))?
                }
                other => return Err(config(format!("unknown parameter {other:?} in {url:?}"))),
            }
        }
        opts.validate()?;
        Ok(opts)
    }

    /// Sets [`Self::connect_timeout`].
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`Self::command_timeout`].
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets [`Self::connections_per_server`].
    #[must_use]
    pub fn with_connections_per_server(mut self, n: usize) -> Self {
        self.connections_per_server = n;
        self
    }

    /// Sets [`Self::max_value_size`] directly.
    #[must_use]
    pub fn with_max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Derives [`Self::max_value_size`] from the servers' item size (`-I`).
    #[must_use]
    pub fn with_item_size(mut self, item_size: usize) -> Self {
        self.max_value_size = item_size.saturating_sub(ITEM_OVERHEAD);
        self
    }

    /// Sets [`Self::check_on_connect`].
    #[must_use]
    pub fn with_check_on_connect(mut self, yes: bool) -> Self {
        self.check_on_connect = yes;
        self
    }

    /// Rejects settings that cannot work, with a message naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        if self.servers.is_empty() {
            return Err(config("no servers configured".into()));
        }
        for s in &self.servers {
            validate_host_port(s).map_err(|why| config(format!("server {s:?}: {why}")))?;
        }
        if self.connections_per_server == 0 {
            return Err(config("connections per server must be at least 1".into()));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(config("timeouts must be greater than zero".into()));
        }
        Ok(())
    }
}

fn to_usize(n: u64) -> Result<usize, Error> {
    usize::try_from(n).map_err(|_| config(format!("{n} does not fit this platform's usize")))
}

fn config(message: String) -> Error {
    Error::Config {
        backend: BACKEND_NAME.to_owned(),
        message,
    }
}

/// Appends `:11211` when `server` has no port (IPv6 literals in brackets).
fn with_default_port(server: &str) -> String {
    let server = server.trim();
    let has_port = match server.rfind(']') {
        Some(close) => server[close..].contains(':'),
        None => server.contains(':'),
    };
    if has_port {
        server.to_owned()
    } else {
        format!("{server}:{DEFAULT_PORT}")
    }
}

fn validate_host_port(server: &str) -> Result<(), &'static str> {
    let server = with_default_port(server);
    let (host, port) = server.rsplit_once(':').ok_or("expected host:port")?;
    if host.is_empty() || host == "[]" {
        return Err("empty host");
    }
    if host.contains(['/', '@', ' ']) {
        return Err("expected host:port");
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("port must be 1-65535"),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_servers_and_parameters() {
        let o = MemcachedOptions::from_url(
            "memcache://a:1,b,[::1]:3?timeout_ms=50&connect_timeout_ms=20&connections=4&max_value_size=1000",
        )
        .unwrap();
        assert_eq!(o.servers, ["a:1", "b:11211", "[::1]:3"]);
        assert_eq!(o.command_timeout, Duration::from_millis(50));
        assert_eq!(o.connect_timeout, Duration::from_millis(20));
        assert_eq!(o.connections_per_server, 4);
        assert_eq!(o.max_value_size, 1000);
        let o = MemcachedOptions::from_url("memcached://h/?item_size=2097152&check_on_connect=false").unwrap();
        assert_eq!(o.max_value_size, 2 * 1024 * 1024 - ITEM_OVERHEAD);
        assert!(!o.check_on_connect);
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for (url, needle) in [
            ("redis://a", "memcache://"),
            ("memcache://", "empty server"),
            ("memcache://a,,b", "empty server"),
            ("memcache://a:0", "port"),
            ("memcache://a:x", "port"),
            ("memcache://a?timeout=5", "unknown parameter"),
            ("memcache://a?connections=0", "at least 1"),
            ("memcache://a?timeout_ms=abc", "whole number"),
        ] {
            let err = MemcachedOptions::from_url(url).unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{url}: {err:?}");
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }
}
