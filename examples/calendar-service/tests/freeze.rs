//! Issue #25's hand test, as tests: two calendar-service processes (A and
//! B) on one SQLite file and one real cache server; A caches October's
//! feed; the server is frozen with `SIGSTOP`; B deletes an item that feed
//! shows (its bump times out); `SIGCONT`; the item must be gone from A's
//! feed within 250 ms, and stay gone. On Redis and on Memcached, with
//! `stamped` (the default).
//!
//! And the crash: B dies between its commit and its bump (killed while
//! the frozen cache holds its `end_write`). With the outbox, A's relay
//! applies B's row and the item leaves A's feed; without it (the control)
//! A keeps serving the deleted item.
//!
//! The tests print what they measured (`--no-capture`).
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_testkit::memcached::{MemcachedConfig, MemcachedServer};
use cache_testkit::redis::RedisServer;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_calendar-service");

/// October 2025, month view, firstDay 1, +08:00: it shows item 1
/// ("Sprint planning", Team calendar, 29 September).
const OCTOBER: &str = "/calendar/feed?start=2025-09-29T00%3A00%3A00%2B08%3A00&end=2025-11-10T00%3A00%3A00%2B08%3A00";

/// The bound of issue #25.
const BOUND: Duration = Duration::from_millis(250);

/// A service process, killed when the test ends.
struct Service {
    child: Child,
    addr: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(args: &[&str]) -> Service {
        let mut child = Command::new(BIN)
            .args(["--port", "0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("serving the calendar on"))
            .expect("the service logs its address");
        // Keep draining its log, so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap();
        let addr = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
        Service { child, addr }
    }

    /// `method path` as `user`: status and JSON body.
    fn call(&self, method: &str, path: &str, user: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nCookie: user={user}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Whether Alice's October feed shows item `id`.
    fn feed_shows(&self, id: &str) -> bool {
        let (status, events) = self.call("GET", OCTOBER, "alice");
        assert_eq!(status, 200, "{events}");
        events.as_array().unwrap().iter().any(|e| e["id"] == id)
    }

    fn counters(&self) -> Value {
        self.call("GET", "/api/cache", "alice").1
    }
}

/// Rows in the outbox table (0 when there is none: `--outbox off`).
fn outbox_rows(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let tables: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'cache_outbox'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if tables == 0 {
        return 0;
    }
    c.query_row("SELECT COUNT(*) FROM cache_outbox", [], |r| r.get(0))
        .unwrap()
}

fn item_exists(db: &Path, id: i64) -> bool {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row("SELECT COUNT(*) FROM items WHERE id = ?1", [id], |r| r.get::<_, i64>(0))
        .unwrap()
        > 0
}

/// A and B on one database file and `cache`, with `extra` flags.
fn two_services(db: &Path, cache: &str, extra: &[&str]) -> (Service, Service) {
    let namespace = format!("freeze-{}-{}", std::process::id(), cache.len());
    let mut args = vec![
        "--db",
        db.to_str().unwrap(),
        "--cache",
        cache,
        "--cache-namespace",
        &namespace,
    ];
    args.extend_from_slice(extra);
    // A first: it creates the file and its demo data.
    let a = Service::start(&args);
    let b = Service::start(&args);
    (a, b)
}

/// The hand test; `pause`/`resume` stop and continue the cache server.
fn hand_test(cache: &str, pause: &dyn Fn(), resume: &dyn Fn()) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calendar.db");
    let (a, b) = two_services(&db, cache, &[]);
    assert!(a.feed_shows("1"));
    assert!(a.feed_shows("1"));
    assert!(
        a.counters()["hits"].as_u64().unwrap() >= 1,
        "A serves the feed from the cache"
    );

    pause();
    let started = Instant::now();
    let (status, body) = b.call("DELETE", "/api/items/1", "bob");
    assert_eq!(status, 204, "{body}");
    eprintln!("DELETE through B took {:?} with the cache frozen", started.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    resume();
    let thawed = Instant::now();
    let mut last_stale = None;
    while thawed.elapsed() < Duration::from_secs(1) {
        if a.feed_shows("1") {
            last_stale = Some(thawed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("{cache}: A's feed showed the deleted item until {last_stale:?} after SIGCONT");
    if let Some(last) = last_stale {
        assert!(last < BOUND, "A served the deleted item {last:?} after SIGCONT");
    }
    let counters = b.counters();
    assert!(
        counters["bumps_queued"].as_u64() >= Some(1) && counters["bumps_reapplied"].as_u64() >= Some(1),
        "{counters}"
    );
    assert_eq!(counters["pending_bumps"], 0, "{counters}");
    assert_eq!(outbox_rows(&db), 0, "the retry deleted B's outbox row");
    assert!(!item_exists(&db, 1));
}

#[test]
fn sigstop_of_redis_during_a_delete_item_gone_within_250_ms_of_sigcont() {
    let redis = RedisServer::new().unwrap();
    hand_test(&redis.url(), &|| redis.pause().unwrap(), &|| redis.resume().unwrap());
}

#[test]
fn sigstop_of_memcached_during_a_delete_item_gone_within_250_ms_of_sigcont() {
    let memcached = MemcachedServer::spawn(&MemcachedConfig::default()).unwrap();
    hand_test(
        &format!("memcache://{}", memcached.addr()),
        &|| memcached.pause().unwrap(),
        &|| memcached.resume().unwrap(),
    );
}

/// What [`writer_killed`] saw after SIGCONT.
struct Killed {
    /// How long after SIGCONT A's feed first did not show the deleted item.
    gone: Option<Duration>,
    /// It showed it again after that.
    back: bool,
    /// 2 s after SIGCONT, one of five reads still showed it. (One, not
    /// all: on a loaded machine a read can outlast the command timeout
    /// and be answered by the database.)
    still_shown: bool,
    /// A's counters.
    counters: Value,
    /// Outbox rows B left when it died.
    rows: i64,
}

/// B is killed between its commit and its bump, then the cache resumes.
fn writer_killed(outbox: &str) -> Killed {
    let redis = RedisServer::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calendar.db");
    let flags = [
        "--outbox",
        outbox,
        "--outbox-grace-ms",
        "500",
        "--outbox-poll-ms",
        "100",
    ];
    let (a, mut b) = two_services(&db, &redis.url(), &flags);
    assert!(a.feed_shows("1"));
    assert!(a.feed_shows("1"));
    redis.pause().unwrap();
    let b_addr = b.addr.clone();
    let delete = std::thread::spawn(move || {
        // Its answer never comes: B dies first.
        let mut stream = TcpStream::connect(&b_addr).unwrap();
        let _ = write!(
            stream,
            "DELETE /api/items/1 HTTP/1.1\r\nHost: {b_addr}\r\nCookie: user=bob\r\nConnection: close\r\n\r\n"
        );
        let _ = stream.read_to_end(&mut Vec::new());
    });
    // B announces (its `begin_write` waits out the command timeout), commits
    // with the outbox row, then waits on its `end_write`: kill it there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while item_exists(&db, 1) {
        assert!(Instant::now() < deadline, "B never committed");
        std::thread::sleep(Duration::from_millis(10));
    }
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    delete.join().unwrap();
    let rows_left = outbox_rows(&db);
    redis.resume().unwrap();
    let thawed = Instant::now();
    let (mut gone, mut back) = (None, false);
    while thawed.elapsed() < Duration::from_secs(2) {
        let shows = a.feed_shows("1");
        match gone {
            None if !shows => gone = Some(thawed.elapsed()),
            Some(_) => back |= shows,
            None => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let still_shown = (0..5).any(|_| a.feed_shows("1"));
    Killed {
        gone,
        back,
        still_shown,
        counters: a.counters(),
        rows: rows_left,
    }
}

#[test]
fn a_writer_killed_between_commit_and_bump_is_caught_up_by_the_other_relay() {
    let Killed {
        gone,
        back,
        still_shown,
        counters,
        rows,
    } = writer_killed("on");
    eprintln!("with the outbox: gone from A's feed {gone:?} after SIGCONT");
    assert_eq!(rows, 1, "B died with its row in the outbox");
    assert!(!still_shown);
    let gone = gone.expect("A's relay applied B's change");
    // B died right after its commit and the server came back at once:
    // the row is applied by A's first poll (every 100 ms) once it is
    // 500 ms old (--outbox-grace-ms).
    assert!(gone < Duration::from_millis(500 + 100 + 250), "{gone:?}");
    assert!(!back, "once gone, it stays gone");
    assert_eq!(counters["outbox_applied"], 1, "{counters}");
}

#[test]
fn without_the_outbox_a_killed_writer_loses_its_bump() {
    let k = writer_killed("off");
    assert_eq!(k.rows, 0, "no outbox table rows without the outbox");
    assert!(
        k.still_shown,
        "A still serves the deleted item 2 s after SIGCONT: {}",
        k.counters
    );
    assert_eq!(k.counters["outbox_applied"], 0);
}
