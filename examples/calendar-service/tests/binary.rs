//! `cargo run -p calendar-service` as a user runs it: the binary starts on
//! 127.0.0.1, prints its address, serves the page and the feed; a bad
//! strategy stops it with the valid names.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_calendar-service");

/// Kills the service when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over plain HTTP/1.1; the whole response as text.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serves_the_page_on_loopback_and_prints_where() {
    let child = Command::new(BIN)
        .args(["--port", "0"])
        .env_remove("CALENDAR_CACHE_URL")
        .env_remove("CALENDAR_STRATEGY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let stdout = running.0.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("serving the calendar on"))
        .expect("the address is logged");
    assert!(
        line.contains("strategy=versioned") && line.contains("cache=locmem"),
        "{line}"
    );
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap();
    let addr = url.trim_start_matches("http://").split('/').next().unwrap();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let page = get(addr, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("/assets/fullcalendar/index.global.min.js"));
    let feed = get(
        addr,
        "/calendar/feed?start=2025-09-29T00:00:00Z&end=2025-11-10T00:00:00Z",
    );
    assert!(
        feed.starts_with("HTTP/1.1 200") && feed.contains("\"Design review\""),
        "{feed}"
    );
}

#[test]
fn a_bad_strategy_stops_it_with_the_valid_names() {
    let out = Command::new(BIN)
        .args(["--port", "0", "--strategy", "lru"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("unknown strategy \"lru\"") && text.contains("versioned"),
        "{text}"
    );
}
