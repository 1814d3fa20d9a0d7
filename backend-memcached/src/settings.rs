//! Reading a server's settings and statistics: `stats settings` at
//! connect, for the item size limit (`-I`, reported as `item_size_max`),
//! and `stats` for the eviction counter
//! ([`Backend::server_stats`](cache_core::Backend::server_stats)).
//!
//! Why: a value larger than the server's limit is refused by memcached
//! *after* it has deleted the old value under the key, which breaks the
//! contract's "a rejected value leaves the previous entry untouched". The
//! backend must refuse such values itself, before sending, and for that it
//! must know the real limit, not assume the stock 1 MiB.

use std::time::Duration;

use cache_core::{Error, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::backend::ServerIoError;
use crate::BACKEND_NAME;

/// Longest `stats settings` reply read (memcached 1.6 sends ~3 KB).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What [`parse_item_size_max`] found in a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemSize {
    /// The server's `item_size_max`, in bytes.
    Bytes(u64),
    /// The server answered but does not report it (a proxy, or `stats`
    /// disabled): the configured limit is kept.
    Unknown,
}

/// Parses a complete `stats settings` reply: `STAT <name> <value>\r\n`
/// lines ending with `END\r\n`, or one `ERROR`/`CLIENT_ERROR`/
/// `SERVER_ERROR` line. `Err` names what is malformed.
pub fn parse_item_size_max(reply: &[u8]) -> std::result::Result<ItemSize, String> {
    let Some(value) = parse_stat(reply, "item_size_max")? else {
        return Ok(ItemSize::Unknown);
    };
    let bytes = value
        .parse::<u64>()
        .map_err(|_| format!("item_size_max {:?} is not a whole number", cut(value)))?;
    if bytes == 0 {
        return Err("item_size_max is 0".into());
    }
    Ok(ItemSize::Bytes(bytes))
}

/// The value of statistic `name` in a complete reply to a `stats` command
/// (`STAT <name> <value>\r\n` lines ending with `END\r\n`, or one
/// `ERROR`/`CLIENT_ERROR`/`SERVER_ERROR` line); `None` when the server does
/// not report it. `Err` names what is malformed.
pub fn parse_stat<'a>(reply: &'a [u8], name: &str) -> std::result::Result<Option<&'a str>, String> {
    let text = std::str::from_utf8(reply).map_err(|e| format!("reply is not UTF-8: {e}"))?;
    let Some(body) = text.strip_suffix("\r\n") else {
        return Err("reply does not end with \\r\\n".into());
    };
    let mut found = None;
    let mut any = false;
    let mut lines = body.split("\r\n");
    let mut ended = false;
    for line in lines.by_ref() {
        if line == "END" {
            ended = true;
            break;
        }
        if line == "ERROR" || line.starts_with("CLIENT_ERROR") || line.starts_with("SERVER_ERROR") {
            return if any {
                Err(format!("error line after statistics: {line:?}"))
            } else {
                Ok(None)
            };
        }
        let mut parts = line.splitn(3, ' ');
        let (Some("STAT"), Some(stat)) = (parts.next(), parts.next()) else {
            return Err(format!("expected `STAT <name> <value>`, found {:?}", cut(line)));
        };
        any = true;
        if stat == name {
            found = Some(parts.next().unwrap_or(""));
        }
    }
    if !ended {
        return Err("reply has no END line".into());
    }
    if lines.next().is_some() {
        return Err("data after the END line".into());
    }
    Ok(found)
}

fn cut(s: &str) -> &str {
    let end = (0..=s.len().min(40))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    &s[..end]
}

/// True once `buf` holds a whole reply (an `END` or error line).
fn complete(buf: &[u8]) -> bool {
    buf.ends_with(b"END\r\n")
        || (buf.ends_with(b"\r\n")
            && (buf.starts_with(b"ERROR") || buf.starts_with(b"CLIENT_ERROR") || buf.starts_with(b"SERVER_ERROR")))
}

/// Asks `server` for its item size limit. The TCP connection must be made
/// within `timeout` (that proves the server is reachable; the error names
/// it). A server that then stays silent for `timeout` is
/// [`ItemSize::Unknown`]: the configured limit is kept, and calls will meet
/// their own command timeout.
pub(crate) async fn query_item_size(server: &str, timeout: Duration) -> Result<ItemSize> {
    let Some(reply) = exchange(server, "stats settings", timeout).await? else {
        return Ok(ItemSize::Unknown);
    };
    parse_item_size_max(&reply).map_err(|why| unexpected_reply(server, "stats settings", &why))
}

/// `server`'s eviction counter (`stats`, `evictions`): keys removed to make
/// room since it started. `None` when the server does not report it.
pub(crate) async fn query_evictions(server: &str, timeout: Duration) -> Result<Option<u64>> {
    let Some(reply) = exchange(server, "stats", timeout).await? else {
        return Err(Error::Timeout {
            backend: BACKEND_NAME.to_owned(),
            key: Some(format!("stats on {server}")),
            after: timeout,
        });
    };
    match parse_stat(&reply, "evictions") {
        Ok(None) => Ok(None),
        Ok(Some(v)) => v.parse::<u64>().map(Some).map_err(|_| {
            unexpected_reply(
                server,
                "stats",
                &format!("evictions {:?} is not a whole number", cut(v)),
            )
        }),
        Err(why) => Err(unexpected_reply(server, "stats", &why)),
    }
}

fn unexpected_reply(server: &str, command: &str, why: &str) -> Error {
    Error::Backend {
        backend: BACKEND_NAME.to_owned(),
        key: None,
        message: format!("the server at {server} did not answer `{command}` like memcached: {why}"),
    }
}

/// Sends `command` to `server` on a connection of its own and reads the
/// whole reply (at most [`MAX_REPLY_BYTES`]). The TCP connection must be
/// made within `timeout`; `None` when the server then stays silent for
/// `timeout`.
async fn exchange(server: &str, command: &str, timeout: Duration) -> Result<Option<Vec<u8>>> {
    let unavailable = |source: std::io::Error| Error::Unavailable {
        backend: BACKEND_NAME.to_owned(),
        key: None,
        source: Box::new(ServerIoError {
            server: server.to_owned(),
            source,
        }),
    };
    let mut stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(server)).await {
        Ok(connected) => connected.map_err(unavailable)?,
        Err(_) => {
            return Err(unavailable(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {timeout:?}"),
            )))
        }
    };
    let talk = async {
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .map_err(unavailable)?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        while !complete(&buf) {
            let n = stream.read(&mut chunk).await.map_err(unavailable)?;
            if n == 0 && !buf.is_empty() {
                // It said something and hung up: not memcached (an HTTP
                // server answers 400 and closes).
                let first = String::from_utf8_lossy(&buf);
                let first = first.lines().next().unwrap_or_default();
                return Err(unexpected_reply(
                    server,
                    command,
                    &format!("it sent {:?} and closed the connection", cut(first)),
                ));
            }
            if n == 0 {
                return Err(unavailable(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("connection closed during `{command}`"),
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_REPLY_BYTES {
                break;
            }
        }
        Ok(buf)
    };
    match tokio::time::timeout(timeout, talk).await {
        Ok(reply) => reply.map(Some),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_item_size_max_from_a_real_reply_shape() {
        let reply = b"STAT maxbytes 67108864\r\nSTAT item_size_max 524288\r\nSTAT evictions on\r\nEND\r\n";
        assert_eq!(parse_item_size_max(reply), Ok(ItemSize::Bytes(524_288)));
        assert_eq!(parse_item_size_max(b"END\r\n"), Ok(ItemSize::Unknown));
        assert_eq!(parse_item_size_max(b"ERROR\r\n"), Ok(ItemSize::Unknown));
        for bad in [
            &b"STAT item_size_max x\r\nEND\r\n"[..],
            b"STAT item_size_max 0\r\nEND\r\n",
            b"STAT item_size_max 5\r\n",
            b"STAT item_size_max 5\r\nEND\r\nSTAT x 1\r\n",
            b"STAT\r\nEND\r\n",
            b"STAT item_size_max\r\nEND\r\n",
            b"END",
            b"\xff\r\nEND\r\n",
        ] {
            assert!(parse_item_size_max(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn reads_evictions_from_stats_not_from_settings() {
        let stats = b"STAT pid 1\r\nSTAT evictions 3014109\r\nSTAT evicted_unfetched 2\r\nEND\r\n";
        assert_eq!(parse_stat(stats, "evictions"), Ok(Some("3014109")));
        assert_eq!(parse_stat(b"END\r\n", "evictions"), Ok(None));
        assert!(parse_stat(b"STAT evictions 1\r\nSERVER_ERROR x\r\n", "evictions").is_err());
    }
}
