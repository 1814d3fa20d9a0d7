//! Fail-safe in the service (issue #29): the feed query fails or slows down
//! (the test-only fault endpoint, `--test-db-faults`), and the feed is
//! answered from the cache, marked `x-cache-fail-safe: current|stale`, and
//! counted; without fail-safe, or for a feed never cached, the request
//! fails (503, or 504 past the hard timeout).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use calendar_service::api::FAIL_SAFE_HEADER;
use calendar_service::{router, App, Config};

/// October 2025, month view, firstDay 1, a browser at +08:00.
const OCTOBER: &str = "start=2025-09-29T00%3A00%3A00%2B08%3A00&end=2025-11-10T00%3A00%3A00%2B08%3A00";
/// A week never requested before the fault.
const A_WEEK: &str = "start=2025-12-01T00%3A00%3A00%2B08%3A00&end=2025-12-08T00%3A00%3A00%2B08%3A00";
/// "Fix login redirect", in Alice's calendar, shown in October.
const ITEM: i64 = 2;

async fn start(configure: impl FnOnce(&mut Config)) -> (Router, App) {
    let mut config = Config::default();
    config.test_db_faults = true;
    configure(&mut config);
    let app = App::start(&config).await.unwrap();
    (router(app.clone()), app)
}

async fn call(router: &Router, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, HeaderMap, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::COOKIE, "user=alice");
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

async fn feed(router: &Router, query: &str) -> (StatusCode, Option<String>, Value) {
    let (status, headers, body) = call(router, Method::GET, &format!("/calendar/feed?{query}"), None).await;
    let mark = headers.get(FAIL_SAFE_HEADER).map(|v| v.to_str().unwrap().to_owned());
    (status, mark, body)
}

fn has_item(feed: &Value) -> bool {
    feed.as_array()
        .unwrap()
        .iter()
        .any(|e| e["id"] == Value::String(ITEM.to_string()))
}

async fn fault(router: &Router, body: Value) {
    let (status, _, _) = call(router, Method::POST, "/test/db-fault", Some(body)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn metrics(router: &Router) -> String {
    let (_, _, body) = call(router, Method::GET, "/metrics", None).await;
    body.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn in_an_outage_a_cached_feed_is_served_marked_and_counted() {
    let (router, app) = start(|c| c.fail_safe_s = Some(600)).await;
    let (status, mark, before) = feed(&router, OCTOBER).await;
    assert_eq!((status, mark), (StatusCode::OK, None));
    assert!(has_item(&before));
    let (status, _, _) = call(&router, Method::DELETE, &format!("/api/items/{ITEM}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    fault(&router, json!({"kind": "outage", "duration_ms": 60_000})).await;
    // The database is down: the cached October feed answers, with the
    // deleted item (its calendar changed since): marked stale.
    let (status, mark, during) = feed(&router, OCTOBER).await;
    assert_eq!((status, mark.as_deref()), (StatusCode::OK, Some("stale")), "{during}");
    assert_eq!(during, before);
    // A feed never cached has nothing to fall back on.
    let (status, mark, body) = feed(&router, A_WEEK).await;
    assert_eq!((status, mark), (StatusCode::SERVICE_UNAVAILABLE, None), "{body}");
    let m = app.cache.metrics();
    assert_eq!(
        (m.fail_safe_served, m.fail_safe_stale, m.failed_reads),
        (1, 1, 1),
        "{m:?}"
    );
    let text = metrics(&router).await;
    let line = |name: &str, kind: Option<&str>| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && kind.is_none_or(|k| l.contains(&format!("kind=\"{k}\""))))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .to_owned()
    };
    assert!(line("range_cache_fail_safe_total", Some("stale")).ends_with(" 1"));
    assert!(line("range_cache_failed_reads_total", None).ends_with(" 1"));
    // The database is back: fresh, unmarked, without the deleted item.
    let (status, _, _) = call(&router, Method::DELETE, "/test/db-fault", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, mark, after) = feed(&router, OCTOBER).await;
    assert_eq!((status, mark), (StatusCode::OK, None));
    assert!(!has_item(&after));
}

#[tokio::test]
async fn without_fail_safe_the_outage_is_a_503_and_counted() {
    let (router, app) = start(|_| {}).await;
    assert_eq!(feed(&router, OCTOBER).await.0, StatusCode::OK);
    call(&router, Method::DELETE, &format!("/api/items/{ITEM}"), None).await;
    fault(&router, json!({"kind": "outage", "duration_ms": 60_000})).await;
    let (status, mark, _) = feed(&router, OCTOBER).await;
    assert_eq!((status, mark), (StatusCode::SERVICE_UNAVAILABLE, None));
    let m = app.cache.metrics();
    assert_eq!((m.fail_safe_served, m.failed_reads, m.loader_errors), (0, 1, 1));
}

/// A slow database: the request is answered at the soft timeout from the
/// cache while the query goes on; when it ends it refreshes the cache.
#[tokio::test]
async fn a_slow_query_is_answered_at_the_soft_timeout_and_refreshes_the_cache() {
    let (router, app) = start(|c| {
        c.fail_safe_s = Some(600);
        c.soft_timeout_ms = Some(100);
        c.hard_timeout_ms = Some(10_000);
    })
    .await;
    assert_eq!(feed(&router, OCTOBER).await.0, StatusCode::OK);
    call(&router, Method::DELETE, &format!("/api/items/{ITEM}"), None).await;
    fault(
        &router,
        json!({"kind": "slow", "latency_ms": 1_500, "duration_ms": 60_000}),
    )
    .await;
    let t = Instant::now();
    let (status, mark, during) = feed(&router, OCTOBER).await;
    assert_eq!((status, mark.as_deref()), (StatusCode::OK, Some("stale")));
    assert!(has_item(&during));
    assert!(
        t.elapsed() < Duration::from_millis(1_000),
        "answered before the 1.5 s query ended: {:?}",
        t.elapsed()
    );
    assert_eq!(app.cache.metrics().soft_timeouts, 1);
    // The query ends in the background and stores the fresh feed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.cache.metrics().background_refreshes == 0 {
        assert!(Instant::now() < deadline, "no background refresh");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, mark, after) = feed(&router, OCTOBER).await;
    assert_eq!((status, mark), (StatusCode::OK, None), "a hit on the refreshed feed");
    assert!(!has_item(&after));
    assert_eq!(app.cache.metrics().hits, 1);
}

#[tokio::test]
async fn past_the_hard_timeout_without_a_cached_feed_the_answer_is_504() {
    let (router, app) = start(|c| c.hard_timeout_ms = Some(200)).await;
    fault(
        &router,
        json!({"kind": "slow", "latency_ms": 5_000, "duration_ms": 60_000}),
    )
    .await;
    let (status, _, body) = feed(&router, OCTOBER).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(app.cache.metrics().load_timeouts, 1);
}

#[tokio::test]
async fn the_fault_endpoint_exists_only_when_asked_for() {
    let (router, _) = start(|c| c.test_db_faults = false).await;
    let (status, _, _) = call(
        &router,
        Method::POST,
        "/test/db-fault",
        Some(json!({"kind": "outage", "duration_ms": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A bad setting is named at startup.
    let mut config = Config::default();
    config.soft_timeout_ms = Some(100);
    let err = App::start(&config).await.unwrap_err().to_string();
    assert!(err.contains("soft_timeout"), "{err}");
}
