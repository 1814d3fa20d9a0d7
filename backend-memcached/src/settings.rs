//! Reading a server's settings at connect: `stats settings`, for the item
//! size limit (`-I`, reported as `item_size_max`).
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
    let text = std::str::from_utf8(reply).map_err(|e| format!("reply is not UTF-8: {e}"))?;
    let Some(body) = text.strip_suffix("\r\n") else {
        return Err("reply does not end with \\r\\n".into());
    };
    let mut found = None;
    let mut lines = body.split("\r\n");
    let mut ended = false;
    for line in lines.by_ref() {
        if line == "END" {
            ended = true;
            break;
        }
        if line == "ERROR" || line.starts_with("CLIENT_ERROR") || line.starts_with("SERVER_ERROR") {
            return if found.is_none() {
                Ok(ItemSize::Unknown)
            } else {
                Err(format!("error line after statistics: {line:?}"))
            };
        }
        let mut parts = line.splitn(3, ' ');
        let (Some("STAT"), Some(name)) = (parts.next(), parts.next()) else {
            return Err(format!("expected `STAT <name> <value>`, found {:?}", cut(line)));
        };
        let value = parts.next().unwrap_or("");
        if name == "item_size_max" {
            let bytes = value
                .parse::<u64>()
                .map_err(|_| format!("item_size_max {:?} is not a whole number", cut(value)))?;
            if bytes == 0 {
                return Err("item_size_max is 0".into());
            }
            found = Some(bytes);
        }
    }
    if !ended {
        return Err("reply has no END line".into());
    }
    if lines.next().is_some() {
        return Err("data after the END line".into());
    }
    Ok(found.map_or(ItemSize::Unknown, ItemSize::Bytes))
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
    let exchange = async {
        stream.write_all(b"stats settings\r\n").await.map_err(unavailable)?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        while !complete(&buf) {
            let n = stream.read(&mut chunk).await.map_err(unavailable)?;
            if n == 0 {
                return Err(unavailable(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed during `stats settings`",
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_REPLY_BYTES {
                break;
            }
        }
        parse_item_size_max(&buf).map_err(|why| Error::Backend {
            backend: BACKEND_NAME.to_owned(),
            key: None,
            message: format!("memcached at {server}: unexpected `stats settings` reply: {why}"),
        })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Ok(ItemSize::Unknown))
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
}
