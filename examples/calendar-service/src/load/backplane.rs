//! Times the two-tier backplane: the tool publishes a probe notice on the
//! services' channel every 100 ms and subscribes to it like a service, so
//! each probe's delivery (publish to arrival, through the same Redis under
//! the same load) is measured. That is the delivery bound a stale read of a
//! two-tier row is checked against: `stamped` publishes a write's fence
//! before the write commits, so a process serves its old L1 copy after the
//! commit only until that notice arrives.
//!
//! A probe is `k calendar-load:probe:<µs>`: a "key changed" notice for a key
//! no service knows, which a service's table ignores. Both connections
//! reconnect after a fault (a Redis restart, `CLIENT KILL TYPE pubsub`).
//! Plain RESP over a socket: two commands need no client library.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::db::history::now_us;

const PREFIX: &str = "k calendar-load:probe:";
const EVERY: Duration = Duration::from_millis(100);
const RECONNECT: Duration = Duration::from_millis(20);

/// The probes of one row; stops when dropped.
#[derive(Debug)]
pub struct Probe {
    delays: Arc<Mutex<Vec<i64>>>,
    tasks: Vec<JoinHandle<()>>,
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Reads one RESP value; bulk strings and simple values as text, arrays
/// flattened.
async fn read_value(r: &mut BufReader<TcpStream>, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end();
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "*" => {
            let n: usize = rest.parse().unwrap_or(0);
            for _ in 0..n.min(64) {
                Box::pin(read_value(r, out)).await?;
            }
        }
        "$" => {
            let n: i64 = rest.parse().unwrap_or(-1);
            if n >= 0 {
                let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0).min(1 << 20) + 2];
                r.read_exact(&mut buf).await?;
                buf.truncate(buf.len() - 2);
                out.push(String::from_utf8_lossy(&buf).into_owned());
            }
        }
        _ => out.push(rest.to_owned()),
    }
    Ok(())
}

async fn subscribe(port: u16, channel: &str, delays: &Mutex<Vec<i64>>) -> std::io::Result<()> {
    let mut stream = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await?);
    stream.get_mut().write_all(&command(&["SUBSCRIBE", channel])).await?;
    loop {
        let mut parts = Vec::new();
        read_value(&mut stream, &mut parts).await?;
        let arrived = now_us();
        if let [kind, _, payload] = parts.as_slice() {
            if kind == "message" {
                if let Some(sent) = payload.strip_prefix(PREFIX).and_then(|t| t.parse::<i64>().ok()) {
                    delays
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(arrived - sent);
                }
            }
        }
    }
}

async fn publish(port: u16, channel: &str) -> std::io::Result<()> {
    let mut stream = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await?);
    loop {
        let probe = format!("{PREFIX}{}", now_us());
        stream
            .get_mut()
            .write_all(&command(&["PUBLISH", channel, &probe]))
            .await?;
        let mut reply = Vec::new();
        read_value(&mut stream, &mut reply).await?;
        tokio::time::sleep(EVERY).await;
    }
}

impl Probe {
    /// Starts probing the channel `channel` of the Redis on `port`.
    pub fn start(port: u16, channel: &str) -> Probe {
        let delays = Arc::new(Mutex::new(Vec::new()));
        let (sub_delays, sub_channel, pub_channel) = (delays.clone(), channel.to_owned(), channel.to_owned());
        let subscriber = tokio::spawn(async move {
            loop {
                let _ = subscribe(port, &sub_channel, &sub_delays).await;
                tokio::time::sleep(RECONNECT).await;
            }
        });
        let publisher = tokio::spawn(async move {
            // Let the subscription come up first.
            tokio::time::sleep(EVERY).await;
            loop {
                let _ = publish(port, &pub_channel).await;
                tokio::time::sleep(RECONNECT).await;
            }
        });
        Probe {
            delays,
            tasks: vec![subscriber, publisher],
        }
    }

    /// Every probe's delivery so far, µs.
    pub fn delays_us(&self) -> Vec<i64> {
        self.delays.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
