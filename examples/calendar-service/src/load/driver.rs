//! The replay: a workload's requests as real HTTP to the service
//! processes, each recorded ([`super::record`]).
//!
//! Two pacings:
//!
//! - **Paced** (the judged rows): every request is sent at its trace time
//!   divided by the speed, by one task per user, in the user's order, as a
//!   browser would: a write is sent and answered before the user's next
//!   request goes (the page refetches once the write has answered), while
//!   a feed does not hold up what follows it (FullCalendar fetches the new
//!   range when the user navigates, whether or not the last fetch has
//!   answered), so a slow answer delays nobody's next click, as in the
//!   simulator's replay. A write to an item waits for the item's earlier
//!   writes (an edit needs the id its create was given). Requests go to the
//!   process the trace names; while that process is down (the
//!   `service-restart` fault), to the next one, as a load balancer would.
//! - **Closed loop** (the throughput table): a fixed number of workers,
//!   each sending the next request as soon as its previous one answered,
//!   for a fixed time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, Method, Request as HttpRequest, StatusCode};
use cache_core::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::ProgressBar;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{COMMIT_SEQ_HEADER, COMMIT_US_HEADER, FAIL_SAFE_HEADER};
use crate::db::history::now_us;

use super::record::{digest, FailSafeMark, Failure, FeedRecord, Recording, WriteRecord};
use super::workload::{RequestKind, Workload};

/// Where the service processes listen, and which are down.
#[derive(Debug)]
pub struct Targets {
    ports: Vec<u16>,
    down: Vec<AtomicBool>,
}

impl Targets {
    /// Processes listening on `ports` (process `i` on `ports[i]`), all up.
    pub fn new(ports: Vec<u16>) -> Self {
        let down = ports.iter().map(|_| AtomicBool::new(false)).collect();
        Targets { ports, down }
    }

    /// Marks process `i` down (its requests go to the next one) or up.
    pub fn set_down(&self, i: usize, down: bool) {
        if let Some(d) = self.down.get(i) {
            d.store(down, Ordering::SeqCst);
        }
    }

    /// The process to send a request for process `wanted` to: itself, or
    /// the next one up. Returns it and whether it was rerouted.
    fn route(&self, wanted: usize) -> (usize, bool) {
        let n = self.ports.len().max(1);
        for step in 0..n {
            let p = (wanted + step) % n;
            if !self.down.get(p).is_some_and(|d| d.load(Ordering::SeqCst)) {
                return (p, step > 0);
            }
        }
        (wanted % n, false)
    }
}

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// At trace time ÷ `speed` after `t0`, one task per user.
    Paced {
        /// Trace seconds per real second.
        speed: f64,
        /// When trace time 0 is.
        t0: tokio::time::Instant,
    },
    /// `concurrency` workers, each sending the next request when its last
    /// one answered, for `duration`.
    ClosedLoop {
        /// Requests in flight.
        concurrency: usize,
        /// How long.
        duration: Duration,
    },
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Each item's progress: writes completed, and its service id once known.
#[derive(Debug, Clone, Copy, Default)]
struct ItemProgress {
    done: u32,
    id: Option<i64>,
}

/// What the replay tasks share.
struct Shared {
    workload: Arc<Workload>,
    targets: Arc<Targets>,
    client: HttpClient,
    items: Vec<watch::Sender<ItemProgress>>,
    timeout: Duration,
    progress: ProgressBar,
}

/// A request's outcome as sent over HTTP.
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Shared {
    async fn send(
        &self,
        process: usize,
        method: Method,
        path: &str,
        user: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Failure> {
        let port = self.targets.ports.get(process).copied().unwrap_or(0);
        let mut request = HttpRequest::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .header(header::COOKIE, format!("user={user}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| Failure::Connection)?;
        let exchange = async {
            // Refused (the process is down) or reset mid-request (it was
            // killed): a write may or may not have committed; the commit
            // log knows.
            let response = self.client.request(request).await.map_err(|_| Failure::Connection)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Connection)?
                .to_bytes();
            Ok(Answer { status, headers, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Timeout),
        }
    }

    /// Sends request `index`; records it into `out`.
    async fn run(&self, index: usize, out: &mut Recording) {
        let Some(req) = self.workload.requests.get(index) else {
            return;
        };
        let user = self
            .workload
            .users
            .get(req.user as usize)
            .map_or("", |u| u.name.as_str());
        let (process, rerouted) = self.targets.route(usize::from(req.process));
        out.rerouted += u64::from(rerouted);
        let request = index as u32;
        match &req.kind {
            RequestKind::Feed { query } => {
                let start_us = now_us();
                let answer = self
                    .send(process, Method::GET, &format!("/calendar/feed?{query}"), user, None)
                    .await;
                let end_us = now_us();
                let (status, failure, body, fail_safe) = match answer {
                    Ok(a) => {
                        let mark = a.headers.get(FAIL_SAFE_HEADER).map(|v| FailSafeMark::of(v.as_bytes()));
                        (a.status.as_u16(), None, a.body, mark)
                    }
                    Err(f) => (0, Some(f), Bytes::new(), None),
                };
                out.feeds.push(FeedRecord {
                    request,
                    process: process as u16,
                    start_us,
                    end_us,
                    status,
                    failure,
                    digest: digest(&body),
                    len: u32::try_from(body.len()).unwrap_or(u32::MAX),
                    fail_safe,
                });
            }
            RequestKind::Create { item, input } => {
                let body = serde_json::to_vec(&input_json(input)).unwrap_or_default();
                let record = self
                    .write(request, process, Method::POST, "/api/items".into(), user, Some(body))
                    .await;
                let id = record.1.as_ref().and_then(|b| {
                    serde_json::from_slice::<serde_json::Value>(b)
                        .ok()
                        .and_then(|v| v["id"].as_i64())
                });
                self.finish_item(*item, id);
                out.writes.push(record.0);
            }
            RequestKind::Update { item, after, input } => {
                let record = match self.item_id(*item, *after).await {
                    Some(id) => {
                        let body = serde_json::to_vec(&input_json(input)).unwrap_or_default();
                        self.write(
                            request,
                            process,
                            Method::PUT,
                            format!("/api/items/{id}"),
                            user,
                            Some(body),
                        )
                        .await
                        .0
                    }
                    None => skipped(request),
                };
                self.finish_item(*item, None);
                out.writes.push(record);
            }
            RequestKind::Delete { item, after } => {
                let record = match self.item_id(*item, *after).await {
                    Some(id) => {
                        self.write(request, process, Method::DELETE, format!("/api/items/{id}"), user, None)
                            .await
                            .0
                    }
                    None => skipped(request),
                };
                self.finish_item(*item, None);
                out.writes.push(record);
            }
        }
        self.progress.inc(1);
    }

    async fn write(
        &self,
        request: u32,
        process: usize,
        method: Method,
        path: String,
        user: &str,
        body: Option<Vec<u8>>,
    ) -> (WriteRecord, Option<Bytes>) {
        let start_us = now_us();
        let answer = self.send(process, method, &path, user, body).await;
        let end_us = now_us();
        let header = |a: &Answer, name: &str| {
            a.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        match answer {
            Ok(a) => (
                WriteRecord {
                    request,
                    start_us,
                    end_us,
                    status: a.status.as_u16(),
                    failure: None,
                    commit_seq: header(&a, COMMIT_SEQ_HEADER),
                    commit_us: header(&a, COMMIT_US_HEADER),
                },
                a.status.is_success().then_some(a.body),
            ),
            Err(f) => (
                WriteRecord {
                    request,
                    start_us,
                    end_us,
                    status: 0,
                    failure: Some(f),
                    commit_seq: None,
                    commit_us: None,
                },
                None,
            ),
        }
    }

    /// Waits until `after` writes of `item` completed; its service id.
    async fn item_id(&self, item: u32, after: u32) -> Option<i64> {
        let mut rx = self.items.get(item as usize)?.subscribe();
        let progress = rx.wait_for(|p| p.done >= after).await.ok()?;
        progress.id
    }

    /// One more write of `item` completed (with the id a create got).
    fn finish_item(&self, item: u32, created: Option<i64>) {
        if let Some(tx) = self.items.get(item as usize) {
            tx.send_modify(|p| {
                p.done += 1;
                if created.is_some() {
                    p.id = created;
                }
            });
        }
    }
}

fn skipped(request: u32) -> WriteRecord {
    let now = now_us();
    WriteRecord {
        request,
        start_us: now,
        end_us: now,
        status: 0,
        failure: Some(Failure::Skipped),
        commit_seq: None,
        commit_us: None,
    }
}

fn input_json(input: &crate::db::ItemInput) -> serde_json::Value {
    serde_json::json!({
        "calendar_id": input.calendar_id,
        "title": input.title,
        "work_type": input.work_type,
        "status": input.status,
        "start": input.start.to_string(),
        "end": input.end.to_string(),
    })
}

/// A client for the service processes: keep-alive connections, no Nagle.
fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(connector)
}

/// Replays `workload` against `targets`; `progress` advances per request.
pub async fn replay(
    workload: Arc<Workload>,
    targets: Arc<Targets>,
    pacing: Pacing,
    timeout: Duration,
    progress: ProgressBar,
) -> Recording {
    let items = workload
        .items
        .iter()
        .map(|slot| {
            watch::channel(ItemProgress {
                done: 0,
                id: slot.seeded,
            })
            .0
        })
        .collect();
    let shared = Arc::new(Shared {
        workload: workload.clone(),
        targets,
        client: client(),
        items,
        timeout,
        progress,
    });
    let started = Instant::now();
    let mut t0_us = now_us();
    let mut tasks: JoinSet<Recording> = JoinSet::new();
    match pacing {
        Pacing::Paced { speed, t0 } => {
            let ahead = t0.saturating_duration_since(tokio::time::Instant::now());
            t0_us += i64::try_from(ahead.as_micros()).unwrap_or(0);
            let mut per_user: Vec<Vec<usize>> = vec![Vec::new(); workload.users.len()];
            for (i, r) in workload.requests.iter().enumerate() {
                if let Some(list) = per_user.get_mut(r.user as usize) {
                    list.push(i);
                }
            }
            for list in per_user.into_iter().filter(|l| !l.is_empty()) {
                let shared = shared.clone();
                tasks.spawn(async move {
                    let mut out = Recording::default();
                    // The user's feeds still in flight.
                    let mut feeds: JoinSet<Recording> = JoinSet::new();
                    for i in list {
                        let t_us = shared.workload.requests[i].t_us;
                        let due = t0 + Duration::from_secs_f64(t_us as f64 / 1e6 / speed);
                        tokio::time::sleep_until(due).await;
                        out.lag_us.push(
                            u64::try_from(tokio::time::Instant::now().saturating_duration_since(due).as_micros())
                                .unwrap_or(u64::MAX),
                        );
                        if matches!(shared.workload.requests[i].kind, RequestKind::Feed { .. }) {
                            let shared = shared.clone();
                            feeds.spawn(async move {
                                let mut feed = Recording::default();
                                shared.run(i, &mut feed).await;
                                feed
                            });
                        } else {
                            shared.run(i, &mut out).await;
                        }
                    }
                    while let Some(done) = feeds.join_next().await {
                        if let Ok(mut feed) = done {
                            out.feeds.append(&mut feed.feeds);
                            out.rerouted += feed.rerouted;
                        }
                    }
                    out
                });
            }
        }
        Pacing::ClosedLoop { concurrency, duration } => {
            let cursor = Arc::new(AtomicUsize::new(0));
            let deadline = Instant::now() + duration;
            for _ in 0..concurrency.max(1) {
                let (shared, cursor) = (shared.clone(), cursor.clone());
                tasks.spawn(async move {
                    let mut out = Recording::default();
                    while Instant::now() < deadline {
                        let i = cursor.fetch_add(1, Ordering::Relaxed);
                        if i >= shared.workload.requests.len() {
                            break;
                        }
                        shared.run(i, &mut out).await;
                    }
                    out
                });
            }
        }
    }
    let mut all = Recording::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok(mut r) = done {
            all.feeds.append(&mut r.feeds);
            all.writes.append(&mut r.writes);
            all.lag_us.append(&mut r.lag_us);
            all.rerouted += r.rerouted;
        }
    }
    all.wall_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    all.t0_us = t0_us;
    all
}
