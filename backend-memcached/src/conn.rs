//! A pipelined meta-protocol connection and the per-server pool of them.
//!
//! Why pipelining: one request in flight per connection caps a client at one
//! round trip per connection, and every request pays its own `write` and
//! `read` system calls on both sides. Here any number of callers share one
//! connection: each appends its encoded request to the connection's write
//! buffer and queues a reply slot; whoever finds no write in progress
//! becomes the flusher and writes everything queued (its own request and
//! the others') in one `write`. One reader task per connection parses the
//! replies, which memcached sends strictly in request order, and hands each
//! to the next queued slot. Every request carries an opaque token (`O<n>`)
//! that memcached echoes, so a desynchronised stream is detected and the
//! connection dropped instead of handing a reply to the wrong caller.
//!
//! Faults: a connection whose reader sees EOF or an I/O error, whose write
//! fails or is cancelled half-way, or that reads no reply at all while a
//! request waits out the command timeout, is *killed*: every queued caller gets the error at once
//! and the next call dials a fresh connection.

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// A failed request, before the backend names key and server.
#[derive(Debug, Clone)]
pub(crate) enum WireError {
    /// Connection trouble (refused, reset, closed, write failed).
    Io(io::ErrorKind, String),
    /// No reply (or no connection) before the deadline.
    Timeout,
    /// `SERVER_ERROR <msg>`.
    Server(String),
    /// `CLIENT_ERROR <msg>` or `ERROR`.
    Client(String),
    /// A reply that cannot be parsed or matched; the connection is dropped.
    Protocol(String),
}

impl WireError {
    fn io(e: &io::Error) -> Self {
        WireError::Io(e.kind(), e.to_string())
    }
}

/// The reply codes of the meta commands this crate sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// `VA`: a value follows.
    Value,
    /// `HD`: success without a value.
    Done,
    /// `EN`: `mg` miss.
    Miss,
    /// `NF`: not found (`md`, `ma`).
    NotFound,
    /// `NS`: not stored (`ms` in add mode on an existing key).
    NotStored,
    /// `EX`: CAS mismatch.
    Exists,
}

/// One parsed reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: Status,
    pub value: Option<Bytes>,
    pub cas: Option<u64>,
}

/// One meta command. Keys must already be valid memcached keys.
pub(crate) enum Request<'a> {
    /// `mg <key> v [c]`.
    Get { key: &'a str, cas: bool },
    /// `ms <key> <len> [T<ttl>] [ME]`.
    Set {
        key: &'a str,
        value: &'a [u8],
        ttl: Option<u64>,
        add: bool,
    },
    /// `md <key>`.
    Delete { key: &'a str },
    /// `ma <key> D<delta> v [C<cas>] [MD]`.
    Arith {
        key: &'a str,
        delta: u64,
        cas: Option<u64>,
        decrement: bool,
    },
}

impl Request<'_> {
    fn encode(&self, opaque: u32, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = match self {
            Request::Get { key, cas } => {
                write!(out, "mg {key} v{} O{opaque}\r\n", if *cas { " c" } else { "" })
            }
            Request::Set { key, value, ttl, add } => {
                let _ = write!(out, "ms {key} {}", value.len());
                if let Some(t) = ttl {
                    let _ = write!(out, " T{t}");
                }
                let _ = write!(out, "{} O{opaque}\r\n", if *add { " ME" } else { "" });
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            Request::Delete { key } => write!(out, "md {key} O{opaque}\r\n"),
            Request::Arith {
                key,
                delta,
                cas,
                decrement,
            } => {
                let _ = write!(out, "ma {key} D{delta} v");
                if let Some(c) = cas {
                    let _ = write!(out, " C{c}");
                }
                write!(out, "{} O{opaque}\r\n", if *decrement { " MD" } else { "" })
            }
        };
    }
}

type ReplyTx = oneshot::Sender<Result<Reply, WireError>>;
/// The receiving end of one request's reply.
pub(crate) type ReplyRx = oneshot::Receiver<Result<Reply, WireError>>;

struct Pending {
    opaque: u32,
    tx: ReplyTx,
}

struct Shared {
    /// Encoded requests not yet written.
    buf: Vec<u8>,
    /// Reply slots in request order (written or not).
    pending: VecDeque<Pending>,
    /// A caller is writing `buf`'s earlier contents.
    flushing: bool,
    /// Set once; the connection takes no more requests.
    dead: Option<WireError>,
    next_opaque: u32,
}

/// One pipelined connection.
pub(crate) struct Conn {
    shared: Mutex<Shared>,
    dead: AtomicBool,
    /// Replies read so far: tells a slow server from a stuck connection.
    replies: AtomicU64,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    reader: Mutex<Option<AbortHandle>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(h) = lock(&self.reader).take() {
            h.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Conn {
    async fn dial(addr: &str, timeout: Duration) -> Result<Arc<Conn>, WireError> {
        // Dialed on the caller's runtime, which also runs the reader task:
        // one request at a time, the reply then wakes the caller on the
        // same worker. (A shared background I/O thread was measured at half
        // the one-at-a-time rate.) If that runtime shuts down while other
        // runtimes' calls are in flight on the connection, those calls fail
        // as `Unavailable` and the next call redials.
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(WireError::io(&e)),
            Err(_) => {
                return Err(WireError::Io(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                ))
            }
        };
        // Small requests must leave at once, not wait for Nagle.
        stream.set_nodelay(true).map_err(|e| WireError::io(&e))?;
        let (read, write) = stream.into_split();
        let conn = Arc::new(Conn {
            shared: Mutex::new(Shared {
                buf: Vec::new(),
                pending: VecDeque::new(),
                flushing: false,
                dead: None,
                next_opaque: 0,
            }),
            dead: AtomicBool::new(false),
            replies: AtomicU64::new(0),
            writer: tokio::sync::Mutex::new(write),
            reader: Mutex::new(None),
        });
        let task = tokio::spawn(read_loop(Arc::downgrade(&conn), read));
        *lock(&conn.reader) = Some(task.abort_handle());
        Ok(conn)
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Fails every queued request with `e` and refuses new ones.
    fn kill(&self, e: WireError) {
        let pending = {
            let mut s = lock(&self.shared);
            if s.dead.is_some() {
                return;
            }
            s.dead = Some(e.clone());
            self.dead.store(true, Ordering::Release);
            s.buf = Vec::new();
            std::mem::take(&mut s.pending)
        };
        for p in pending {
            let _ = p.tx.send(Err(e.clone()));
        }
        if let Some(h) = lock(&self.reader).take() {
            h.abort();
        }
    }

    /// Queues `reqs`, writes them (and whatever else is queued) unless a
    /// write is already under way, and returns one reply slot per request.
    async fn send(self: &Arc<Self>, reqs: &[Request<'_>]) -> Result<Vec<ReplyRx>, WireError> {
        let mut rxs = Vec::with_capacity(reqs.len());
        let mut data = {
            let mut s = lock(&self.shared);
            if let Some(e) = &s.dead {
                return Err(e.clone());
            }
            for r in reqs {
                let opaque = s.next_opaque;
                s.next_opaque = opaque.wrapping_add(1);
                r.encode(opaque, &mut s.buf);
                let (tx, rx) = oneshot::channel();
                s.pending.push_back(Pending { opaque, tx });
                rxs.push(rx);
            }
            if s.flushing {
                return Ok(rxs);
            }
            s.flushing = true;
            std::mem::take(&mut s.buf)
        };
        // Cancelled half-way through a write, the stream is unusable.
        let guard = KillOnDrop(Some(self));
        let mut w = self.writer.lock().await;
        loop {
            if let Err(e) = w.write_all(&data).await {
                self.kill(WireError::io(&e));
                break;
            }
            data.clear();
            let mut s = lock(&self.shared);
            if s.buf.is_empty() || s.dead.is_some() {
                s.flushing = false;
                // Keep the allocation for the next flush.
                if s.buf.capacity() < data.capacity() {
                    s.buf = data;
                }
                break;
            }
            std::mem::swap(&mut data, &mut s.buf);
        }
        drop(w);
        std::mem::forget(guard);
        Ok(rxs)
    }
}

struct KillOnDrop<'a>(Option<&'a Arc<Conn>>);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.kill(WireError::Io(io::ErrorKind::Interrupted, "write cancelled".into()));
        }
    }
}

/// Kills the connection when the reader stops for any reason, including its
/// runtime shutting down, so no caller waits for a reply that cannot come.
struct ReaderGuard(Weak<Conn>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.upgrade() {
            c.kill(WireError::Io(
                io::ErrorKind::BrokenPipe,
                "connection reader stopped".into(),
            ));
        }
    }
}

async fn read_loop(conn: Weak<Conn>, read: OwnedReadHalf) {
    let _guard = ReaderGuard(conn.clone());
    let mut r = BufReader::with_capacity(64 * 1024, read);
    let mut line = Vec::with_capacity(128);
    loop {
        let parsed = read_reply(&mut r, &mut line).await;
        // The backend is gone: nobody waits for anything.
        let Some(c) = conn.upgrade() else { return };
        let (reply, opaque) = match parsed {
            Ok(x) => x,
            Err(e) => {
                c.kill(e);
                return;
            }
        };
        c.replies.fetch_add(1, Ordering::Relaxed);
        let next = lock(&c.shared).pending.pop_front();
        let Some(p) = next else {
            c.kill(WireError::Protocol("a reply nobody asked for".into()));
            return;
        };
        if opaque.is_some_and(|o| o != p.opaque) {
            let e = WireError::Protocol(format!("reply out of order (opaque {opaque:?}, expected {})", p.opaque));
            let _ = p.tx.send(Err(e.clone()));
            c.kill(e);
            return;
        }
        let _ = p.tx.send(reply);
    }
}

/// Reads one reply: `Err` is fatal for the connection, `Ok(Err)` is an
/// error reply for one request. Also returns the echoed opaque, if any.
async fn read_reply(
    r: &mut BufReader<OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> Result<(Result<Reply, WireError>, Option<u32>), WireError> {
    line.clear();
    let n = r.read_until(b'\n', line).await.map_err(|e| WireError::io(&e))?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err(WireError::Io(
            io::ErrorKind::UnexpectedEof,
            "connection closed by the server".into(),
        ));
    }
    let text = line.strip_suffix(b"\r\n").unwrap_or(line);
    let text = std::str::from_utf8(text).map_err(|_| WireError::Protocol("reply is not UTF-8".into()))?;
    let (code, rest) = text.split_once(' ').unwrap_or((text, ""));
    let status = match code {
        "VA" => Status::Value,
        "HD" => Status::Done,
        "EN" => Status::Miss,
        "NF" => Status::NotFound,
        "NS" => Status::NotStored,
        "EX" => Status::Exists,
        "SERVER_ERROR" => return Ok((Err(WireError::Server(rest.to_owned())), None)),
        "CLIENT_ERROR" => return Ok((Err(WireError::Client(rest.to_owned())), None)),
        "ERROR" => return Ok((Err(WireError::Client("ERROR".into())), None)),
        _ => return Err(WireError::Protocol(format!("unexpected reply {text:?}"))),
    };
    let mut flags = rest.split(' ').filter(|f| !f.is_empty());
    let mut value = None;
    if status == Status::Value {
        let size: usize = flags
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| WireError::Protocol(format!("bad VA line {text:?}")))?;
        let mut data = vec![0; size + 2];
        r.read_exact(&mut data).await.map_err(|e| WireError::io(&e))?;
        if !data.ends_with(b"\r\n") {
            return Err(WireError::Protocol("value not terminated by CRLF".into()));
        }
        data.truncate(size);
        value = Some(Bytes::from(data));
    }
    let (mut cas, mut opaque) = (None, None);
    for f in flags {
        match f.as_bytes().first() {
            Some(b'c') => cas = f[1..].parse().ok(),
            Some(b'O') => opaque = f[1..].parse().ok(),
            _ => {}
        }
    }
    Ok((Ok(Reply { status, value, cas }), opaque))
}

/// One slot of a server's pool: the live connection, redialed when dead.
struct Slot {
    current: Mutex<Option<Arc<Conn>>>,
    dialing: tokio::sync::Mutex<()>,
}

/// The pipelined connections to one server.
pub(crate) struct ServerPool {
    addr: String,
    slots: Vec<Slot>,
    next: AtomicUsize,
    connect_timeout: Duration,
}

impl ServerPool {
    pub(crate) fn new(addr: String, connections: usize, connect_timeout: Duration) -> Self {
        let slots = (0..connections.max(1))
            .map(|_| Slot {
                current: Mutex::new(None),
                dialing: tokio::sync::Mutex::new(()),
            })
            .collect();
        ServerPool {
            addr,
            slots,
            next: AtomicUsize::new(0),
            connect_timeout,
        }
    }

    async fn conn(&self) -> Result<Arc<Conn>, WireError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[i];
        let live = |slot: &Slot| lock(&slot.current).as_ref().filter(|c| !c.is_dead()).cloned();
        if let Some(c) = live(slot) {
            return Ok(c);
        }
        let _dialing = slot.dialing.lock().await;
        if let Some(c) = live(slot) {
            return Ok(c);
        }
        let c = Conn::dial(&self.addr, self.connect_timeout).await?;
        *lock(&slot.current) = Some(c.clone());
        Ok(c)
    }

    /// Sends `reqs` on one connection and waits for every reply until
    /// `deadline`. A request still unanswered then, on a connection that
    /// read no reply meanwhile, kills it (the server is stuck or the stream
    /// lost): the next call redials.
    pub(crate) async fn call(
        &self,
        reqs: &[Request<'_>],
        deadline: Instant,
    ) -> Result<Vec<Result<Reply, WireError>>, WireError> {
        let conn = tokio::time::timeout_at(deadline, self.conn())
            .await
            .map_err(|_| WireError::Timeout)??;
        let seen = conn.replies.load(Ordering::Relaxed);
        let rxs = match tokio::time::timeout_at(deadline, conn.send(reqs)).await {
            Ok(r) => r?,
            Err(_) => return Err(WireError::Timeout),
        };
        let mut out = Vec::with_capacity(rxs.len());
        for rx in rxs {
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(r)) => out.push(r),
                Ok(Err(_)) => {
                    return Err(WireError::Io(
                        io::ErrorKind::BrokenPipe,
                        "connection dropped before the reply".into(),
                    ))
                }
                Err(_) => {
                    // No reply at all since ours was sent: the connection is
                    // stuck (or the server hung), so drop it. If replies
                    // still flow, the server is merely slow: the other
                    // callers' requests stay, ours is answered and ignored.
                    if conn.replies.load(Ordering::Relaxed) == seen {
                        conn.kill(WireError::Timeout);
                    }
                    return Err(WireError::Timeout);
                }
            }
        }
        Ok(out)
    }

    /// One request, one reply.
    pub(crate) async fn call_one(&self, req: Request<'_>, deadline: Instant) -> Result<Reply, WireError> {
        let mut v = self.call(std::slice::from_ref(&req), deadline).await?;
        v.pop().unwrap_or_else(|| Err(WireError::Protocol("no reply".into())))
    }
}
