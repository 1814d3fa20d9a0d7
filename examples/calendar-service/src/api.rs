//! The HTTP handlers: the cached feed, and the writes, which announce
//! themselves to the cache before they commit and invalidate after.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use cache_core::fullcalendar::{self, FeedQueryError};
use std::sync::{Arc, Mutex, PoisonError};

use cache_core::aside::LoadError;
use cache_core::extract::FeedScopes;
use cache_core::outbox::OutboxId;
use cache_core::StatsSnapshot;
use cache_core::{Bytes, CacheMetrics, Change, RangeCache, Scope, View};

use crate::db::{BeforeCommit, Calendar, Commit, DbError, FeedFilter, Item, ItemInput, STATUSES, WORK_TYPES};
use crate::App;

/// The feed's filters: part of the cache key, read back by the loader.
pub const FILTERS: &[&str] = &["work_type", "status"];

/// The header that marks a feed answered by fail-safe (the database failed
/// or was too slow): `current` (the cached feed's calendars have not
/// changed since it was loaded) or `stale` (one of them has).
pub const FAIL_SAFE_HEADER: &str = "x-cache-fail-safe";

/// `GET /calendar/feed?start&end&timeZone&work_type&status`: FullCalendar's
/// JSON event array for every calendar the user can see, through the cache.
/// The [`View`] comes from the query and the user's calendars
/// ([`FeedScopes`] below).
///
/// The loader owns a clone of the app and the view, so the cache runs it as
/// its own task ([`RangeCache::fetch_detached`]): past the soft timeout
/// this request is answered by fail-safe while the query goes on and
/// refreshes the cache.
pub async fn feed(State(app): State<App>, view: View) -> Result<Response, ApiError> {
    let (db, db_view) = (app.db.clone(), view.clone());
    let answer = app
        .cache
        .fetch_detached(&view, move || async move { load_feed(&db, &db_view).await })
        .await?;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], answer.value).into_response();
    if let Some(kind) = answer.fail_safe {
        response
            .headers_mut()
            .insert(FAIL_SAFE_HEADER, header::HeaderValue::from_static(kind.as_str()));
    }
    Ok(response)
}

/// What `POST /test/db-fault` takes: `{"kind": "outage", "duration_ms":
/// 10000}` or `{"kind": "slow", "latency_ms": 800, "duration_ms": 10000}`.
#[derive(Debug, serde::Deserialize)]
pub struct DbFaultRequest {
    #[serde(flatten)]
    kind: crate::db::DbFaultKind,
    duration_ms: u64,
}

/// `POST /test/db-fault` (only with `--test-db-faults`): from now, for
/// `duration_ms`, the feed query fails or is slowed ([`crate::db::DbFaults`]).
pub async fn inject_db_fault(State(app): State<App>, Json(req): Json<DbFaultRequest>) -> StatusCode {
    tracing::warn!(fault = ?req.kind, duration_ms = req.duration_ms, "injecting a database fault (test)");
    app.db
        .faults()
        .inject(req.kind, std::time::Duration::from_millis(req.duration_ms));
    StatusCode::NO_CONTENT
}

/// `DELETE /test/db-fault` (only with `--test-db-faults`): ends every
/// injected fault now.
pub async fn clear_db_faults(State(app): State<App>) -> StatusCode {
    app.db.faults().clear();
    StatusCode::NO_CONTENT
}

/// What the [`View`] extractor needs: the user's calendars are the feed's
/// scopes, the filters are part of the view, a bad query is a 400.
impl FeedScopes for App {
    type Rejection = ApiError;

    fn filters(&self) -> &[&str] {
        FILTERS
    }

    async fn scopes(&self, parts: &mut Parts) -> Result<Vec<Scope>, ApiError> {
        let Ok(user) = User::from_request_parts(parts, self).await;
        Ok(self.db.calendars_of(&user.0).await?.iter().map(scope).collect())
    }

    fn bad_query(&self, error: FeedQueryError) -> ApiError {
        ApiError::BadQuery(error)
    }
}

/// The cache scope of a calendar. The scope is the calendar, not the user
/// who writes: a write by Bob to the Team calendar must reach Alice's feed.
pub fn scope(calendar: &Calendar) -> Scope {
    scope_of(calendar.id)
}

/// The calendar a scope names (`cal:<id>`).
fn calendar_id(scope: &Scope) -> Option<i64> {
    scope.as_str().strip_prefix("cal:")?.parse().ok()
}

fn scope_of(calendar_id: i64) -> Scope {
    match Scope::new(format!("cal:{calendar_id}")) {
        Ok(scope) => scope,
        // `Scope::new` rejects only the empty name; no input reaches here.
        Err(_) => unreachable!("`cal:<id>` is never empty"),
    }
}

/// The loader: the database query a cache miss runs, rendered as
/// FullCalendar's event objects. Everything it reads comes from the view
/// (calendars, range, filters), so what is cached is exactly what the key
/// describes.
async fn load_feed(db: &crate::Db, view: &View) -> Result<Bytes, DbError> {
    let ids: Vec<i64> = view.scopes.iter().filter_map(calendar_id).collect();
    let rows = db.feed(&ids, view.range, filter_of(view)).await?;
    Ok(feed_body(&rows))
}

/// The feed's filters, as the view (and so the cache key) carries them.
pub fn filter_of(view: &cache_core::View) -> FeedFilter<'_> {
    FeedFilter {
        work_type: view.params.get("work_type").map(String::as_str),
        status: view.params.get("status").map(String::as_str),
    }
}

/// The feed's body for `rows` (in [`crate::db::feed_order`]): FullCalendar's
/// event array, exactly the bytes the feed serves. Public so that the load
/// tool's checker renders what the database held at any moment with the
/// service's own code.
pub fn feed_body(rows: &[(Item, Calendar)]) -> Bytes {
    let events: Vec<Event<'_>> = rows.iter().map(|(item, cal)| Event::new(item, cal)).collect();
    Bytes::from(serde_json::to_vec(&events).unwrap_or_else(|_| b"[]".to_vec()))
}

/// `x-commit-seq` (the write's place in the commit order, see
/// [`crate::db::history`]) and `x-commit-us` (µs since the epoch just after
/// its `COMMIT` returned): what a client needs to tell which reads must
/// show the write.
pub fn commit_headers(commit: &Commit) -> [(&'static str, String); 2] {
    [
        (COMMIT_SEQ_HEADER, commit.seq.to_string()),
        (COMMIT_US_HEADER, commit.after_us.to_string()),
    ]
}

/// Response header of a write: its place in the commit order.
pub const COMMIT_SEQ_HEADER: &str = "x-commit-seq";
/// Response header of a write: µs since the Unix epoch just after its
/// `COMMIT` returned (an upper bound of the commit instant).
pub const COMMIT_US_HEADER: &str = "x-commit-us";

/// One event in FullCalendar's format (all-day, end exclusive).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    id: String,
    title: &'a str,
    start: String,
    end: String,
    all_day: bool,
    color: &'a str,
    extended_props: EventProps<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventProps<'a> {
    calendar_id: i64,
    calendar: &'a str,
    work_type: &'a str,
    status: &'a str,
}

impl<'a> Event<'a> {
    fn new(item: &'a Item, calendar: &'a Calendar) -> Self {
        Event {
            id: item.id.to_string(),
            title: &item.title,
            start: item.start.to_string(),
            end: item.end.to_string(),
            all_day: true,
            color: &calendar.color,
            extended_props: EventProps {
                calendar_id: calendar.id,
                calendar: &calendar.name,
                work_type: &item.work_type,
                status: &item.status,
            },
        }
    }
}

/// `POST /api/items`: creates an item; its calendar is fenced from just
/// before the commit and invalidated after it. The answer carries the
/// [`commit_headers`].
pub async fn create_item(
    State(app): State<App>,
    user: User,
    Json(input): Json<ItemInput>,
) -> Result<Response, ApiError> {
    let (hook, announced) = app.announcer();
    let created = app.db.create(&user.0, input, hook).await;
    app.end_writes(announced).await;
    let (item, commit) = created?;
    Ok((StatusCode::CREATED, commit_headers(&commit), Json(item)).into_response())
}

/// `GET /api/items/{id}`: one item (404 once deleted: the seed's symptom).
pub async fn get_item(State(app): State<App>, user: User, Path(id): Path<i64>) -> Result<Json<Item>, ApiError> {
    Ok(Json(app.db.item(&user.0, id).await?))
}

/// `PUT /api/items/{id}`: replaces an item (title, dates, calendar); its
/// old and new dates, in its old and new calendar, are fenced and then
/// invalidated. The answer carries the [`commit_headers`].
pub async fn update_item(
    State(app): State<App>,
    user: User,
    Path(id): Path<i64>,
    Json(input): Json<ItemInput>,
) -> Result<Response, ApiError> {
    let (hook, announced) = app.announcer();
    let updated = app.db.update(&user.0, id, input, hook).await;
    app.end_writes(announced).await;
    let (_, item, commit) = updated?;
    Ok((commit_headers(&commit), Json(item)).into_response())
}

/// `DELETE /api/items/{id}`: deletes an item; its dates are fenced and
/// then invalidated. The answer carries the [`commit_headers`].
pub async fn delete_item(State(app): State<App>, user: User, Path(id): Path<i64>) -> Result<Response, ApiError> {
    let (hook, announced) = app.announcer();
    let deleted = app.db.delete(&user.0, id, hook).await;
    app.end_writes(announced).await;
    let (_, commit) = deleted?;
    Ok((StatusCode::NO_CONTENT, commit_headers(&commit)).into_response())
}

/// One change a write announced, with its outbox row when the outbox is on.
type AnnouncedChange = (Change, Option<OutboxId>);

/// The changes a write announced, for [`App::end_writes`].
#[derive(Debug, Clone, Default)]
pub struct Announced(Arc<Mutex<Vec<AnnouncedChange>>>);

impl App {
    /// A hook for the database's write transaction ([`BeforeCommit`]):
    /// just before the commit it announces the write's [`changes`] to the
    /// cache ([`cache_core::RangeCache::begin_write`]: with `stamped`,
    /// reads of those calendars go to the database until the write ends),
    /// records each in the outbox in the same transaction (when
    /// [`App::outbox`] is on: [`crate::outbox`]), and keeps them for
    /// [`App::end_writes`].
    ///
    /// It runs on the database's blocking thread, so it waits for the
    /// cache there: the commit must not happen before the announcement has
    /// landed. A failed announcement is logged and the write goes on: a
    /// cache outage must not stop writes, and `end_writes` still
    /// invalidates (or reports that it could not).
    pub fn announcer(&self) -> (BeforeCommit, Announced) {
        let announced = Announced::default();
        let (cache, slot, recorded) = (self.cache.clone(), announced.clone(), self.outbox.is_some());
        let handle = tokio::runtime::Handle::current();
        let hook: BeforeCommit = Box::new(move |tx: &rusqlite::Connection, items: &[&Item]| {
            let mut ended = Vec::new();
            for change in changes(items) {
                if let Err(e) = handle.block_on(cache.begin_write(&change)) {
                    tracing::error!(scope = %change.scope, error = %e, "announcing a write failed; its feeds may be stale between commit and invalidation");
                }
                let row = recorded
                    .then(|| crate::outbox::record(tx, &change))
                    .and_then(|r| r.map_err(|e| tracing::error!(scope = %change.scope, error = %e, "recording the change in the outbox failed; only this process's retries stand behind its invalidation")).ok());
                ended.push((change, row));
            }
            *slot.0.lock().unwrap_or_else(PoisonError::into_inner) = ended;
        });
        (hook, announced)
    }

    /// After the write's transaction returned, committed or not: ends what
    /// it announced ([`cache_core::RangeCache::end_write`]: invalidates and
    /// lifts the fence). Nothing when the write failed its checks before
    /// announcing anything.
    ///
    /// A failed invalidation is not lost: the cache queues it and retries
    /// it until it lands (this process reads the calendars concerned from
    /// the database meanwhile), and its outbox row stays until then, so
    /// another process applies it if this one dies. The request still
    /// succeeds, because the write is durable and an error would invite
    /// the client to repeat it. It is logged and counted
    /// ([`CacheMetrics::invalidation_errors`], [`CacheMetrics::bumps_queued`]).
    pub async fn end_writes(&self, announced: Announced) {
        let changes = std::mem::take(&mut *announced.0.lock().unwrap_or_else(PoisonError::into_inner));
        for (change, row) in changes {
            let ended = match row {
                Some(row) => self.cache.end_recorded_write(&change, row).await,
                None => self.cache.end_write(&change).await,
            };
            if let Err(e) = ended {
                tracing::error!(scope = %change.scope, error = %e, "invalidation failed; queued for retry");
            }
        }
    }
}

/// What a write of `items` touched: for each calendar among them (an edit
/// may move an item between calendars), one [`Change`] naming every date
/// range the item had there (old and new dates).
pub fn changes(items: &[&Item]) -> Vec<Change> {
    let mut calendars: Vec<i64> = items.iter().map(|i| i.calendar_id).collect();
    calendars.sort_unstable();
    calendars.dedup();
    let mut out = Vec::with_capacity(calendars.len());
    for calendar in calendars {
        let ranges = items
            .iter()
            .filter(|i| i.calendar_id == calendar)
            .filter_map(|i| fullcalendar::all_day_range(i.start, i.end).ok());
        match Change::new(scope_of(calendar), ranges) {
            Ok(change) => out.push(change),
            Err(e) => tracing::error!(calendar, error = %e, "no change to invalidate"),
        }
    }
    out
}

/// What the page needs to draw itself.
#[derive(Serialize)]
pub struct Me {
    user: String,
    users: Vec<String>,
    calendars: Vec<Calendar>,
    work_types: [&'static str; 3],
    statuses: [&'static str; 3],
    cache: CacheReport,
    backend: String,
}

/// The cache's counters as the page and `/api/cache` show them: the
/// strategy, what reads and writes did, and the backend round trips of
/// each path.
#[derive(Debug, Serialize)]
pub struct CacheReport {
    strategy: String,
    #[serde(flatten)]
    counts: CacheMetrics,
    /// Failed bumps waiting for a retry now.
    pending_bumps: usize,
    read_ops: StatsSnapshot,
    write_ops: StatsSnapshot,
}

impl CacheReport {
    /// The counters of `cache` now.
    pub fn of(cache: &RangeCache) -> Self {
        CacheReport {
            strategy: cache.strategy().name().to_owned(),
            counts: cache.metrics(),
            pending_bumps: cache.pending_bumps(),
            read_ops: cache.read_stats(),
            write_ops: cache.write_stats(),
        }
    }
}

/// `GET /api/me`: the user, their calendars, the filter choices and the
/// cache's counters (shown in the page's header).
pub async fn me(State(app): State<App>, user: User) -> Result<Json<Me>, ApiError> {
    Ok(Json(Me {
        calendars: app.db.calendars_of(&user.0).await?,
        users: app.db.users().await?,
        user: user.0,
        work_types: WORK_TYPES,
        statuses: STATUSES,
        cache: CacheReport::of(&app.cache),
        backend: app.backend_label.clone(),
    }))
}

/// `GET /api/cache`: the cache's counters (hits, misses, loader calls,
/// invalidations, backend round trips).
pub async fn cache_metrics(State(app): State<App>) -> Json<CacheReport> {
    Json(CacheReport::of(&app.cache))
}

/// `GET /metrics`: the cache's instruments in Prometheus' text format
/// (`range_cache_hits_total{cache="calendar-feed",strategy="stamped"}`, …;
/// the names are listed in `cache_core::aside`'s docs).
pub async fn prometheus(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// The user making the request, from the `user` cookie (default `alice`).
/// A stand-in for a real session: the example is about caching, not login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User(pub String);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let from_cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == "user")
            .map(|(_, value)| value.to_owned());
        Ok(User(from_cookie.unwrap_or_else(|| "alice".to_owned())))
    }
}

/// An error answer: status and a JSON `{"error": "…"}` body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The feed query was malformed (400).
    #[error(transparent)]
    BadQuery(#[from] FeedQueryError),
    /// The database refused or failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The cache failed and fail-open is off (503).
    #[error(transparent)]
    Cache(cache_core::Error),
    /// The feed query passed the hard timeout and fail-safe had no feed
    /// (504).
    #[error("the database did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

impl From<LoadError<DbError>> for ApiError {
    fn from(e: LoadError<DbError>) -> Self {
        match e {
            LoadError::Loader(e) => ApiError::Db(e),
            LoadError::Cache(e) => ApiError::Cache(e),
            LoadError::Timeout { after } => ApiError::Timeout(after),
            // `LoadError` may grow: anything else is the cache's failure.
            other => ApiError::Cache(cache_core::Error::Backend {
                backend: "range-cache".to_owned(),
                key: None,
                message: other.to_string(),
            }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Db(DbError::NotFound) => StatusCode::NOT_FOUND,
            ApiError::Db(DbError::Forbidden(_) | DbError::UnknownUser(_)) => StatusCode::FORBIDDEN,
            ApiError::Db(DbError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Cache(_) => {
                tracing::error!(error = %self, "cache failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Db(DbError::Unavailable) => {
                tracing::error!(error = %self, "database unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout(_) => {
                tracing::error!(error = %self, "feed query timed out");
                StatusCode::GATEWAY_TIMEOUT
            }
            ApiError::Db(_) => {
                tracing::error!(error = %self, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}
