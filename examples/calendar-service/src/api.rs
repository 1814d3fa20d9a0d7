//! The HTTP handlers: the cached feed, and the writes that invalidate it
//! after they commit.

use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use cache_core::fullcalendar::{self, FeedQueryError};
use cache_core::{Bytes, CacheMetrics, Change, Scope};

use crate::db::{Calendar, DbError, FeedFilter, Item, ItemInput, STATUSES, WORK_TYPES};
use crate::App;

/// The feed's filters: part of the cache key, read back by the loader.
pub const FILTERS: &[&str] = &["work_type", "status"];

/// `GET /calendar/feed?start&end&timeZone&work_type&status`: FullCalendar's
/// JSON event array for every calendar the user can see, through the cache.
pub async fn feed(State(app): State<App>, user: User, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let calendars = app.db.calendars_of(&user.0).await?;
    let view = fullcalendar::view(calendars.iter().map(scope), query.as_deref().unwrap_or(""), FILTERS)?;
    let body = app
        .cache
        .get_or_load(&view, || load_feed(&app, &calendars, &view))
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The cache scope of a calendar. The scope is the calendar, not the user
/// who writes: a write by Bob to the Team calendar must reach Alice's feed.
pub fn scope(calendar: &Calendar) -> Scope {
    scope_of(calendar.id)
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
/// (range, filters), so what is cached is exactly what the key describes.
async fn load_feed(app: &App, calendars: &[Calendar], view: &cache_core::View) -> Result<Bytes, DbError> {
    let filter = FeedFilter {
        work_type: view.params.get("work_type").map(String::as_str),
        status: view.params.get("status").map(String::as_str),
    };
    let ids: Vec<i64> = calendars.iter().map(|c| c.id).collect();
    let rows = app.db.feed(&ids, view.range, filter).await?;
    let events: Vec<Event<'_>> = rows.iter().map(|(item, cal)| Event::new(item, cal)).collect();
    Ok(Bytes::from(
        serde_json::to_vec(&events).unwrap_or_else(|_| b"[]".to_vec()),
    ))
}

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

/// `POST /api/items`: creates an item, then invalidates its calendar.
pub async fn create_item(
    State(app): State<App>,
    user: User,
    Json(input): Json<ItemInput>,
) -> Result<(StatusCode, Json<Item>), ApiError> {
    let item = app.db.create(&user.0, input).await?;
    app.invalidate(&[&item]).await;
    Ok((StatusCode::CREATED, Json(item)))
}

/// `GET /api/items/{id}`: one item (404 once deleted: the seed's symptom).
pub async fn get_item(State(app): State<App>, user: User, Path(id): Path<i64>) -> Result<Json<Item>, ApiError> {
    Ok(Json(app.db.item(&user.0, id).await?))
}

/// `PUT /api/items/{id}`: replaces an item (title, dates, calendar), then
/// invalidates its old and its new dates, in its old and new calendar.
pub async fn update_item(
    State(app): State<App>,
    user: User,
    Path(id): Path<i64>,
    Json(input): Json<ItemInput>,
) -> Result<Json<Item>, ApiError> {
    let (old, new) = app.db.update(&user.0, id, input).await?;
    app.invalidate(&[&old, &new]).await;
    Ok(Json(new))
}

/// `DELETE /api/items/{id}`: deletes an item, then invalidates its dates.
pub async fn delete_item(State(app): State<App>, user: User, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    let old = app.db.delete(&user.0, id).await?;
    app.invalidate(&[&old]).await;
    Ok(StatusCode::NO_CONTENT)
}

impl App {
    /// Invalidates what a committed write touched: for each calendar among
    /// `items` (an edit may move an item between calendars), one [`Change`]
    /// naming every date range the item had there (old and new dates).
    ///
    /// Called after the commit, never before: a generation bumped before
    /// the commit lets a reader cache the old rows under the new
    /// generation. A failed invalidation is logged and counted
    /// ([`CacheMetrics::invalidation_errors`]) but the request still
    /// succeeds, because the write is durable and an error would invite
    /// the client to repeat it; entries expire after the strategy's TTL.
    pub async fn invalidate(&self, items: &[&Item]) {
        let mut calendars: Vec<i64> = items.iter().map(|i| i.calendar_id).collect();
        calendars.sort_unstable();
        calendars.dedup();
        for calendar in calendars {
            let ranges = items
                .iter()
                .filter(|i| i.calendar_id == calendar)
                .filter_map(|i| fullcalendar::all_day_range(i.start, i.end).ok());
            let change = match Change::new(scope_of(calendar), ranges) {
                Ok(change) => change,
                Err(e) => {
                    tracing::error!(calendar, error = %e, "no change to invalidate");
                    continue;
                }
            };
            if let Err(e) = self.cache.invalidate(&change).await {
                tracing::error!(calendar, error = %e, "invalidation failed; feeds may be stale until the TTL");
            }
        }
    }
}

/// What the page needs to draw itself.
#[derive(Serialize)]
pub struct Me {
    user: String,
    users: Vec<String>,
    calendars: Vec<Calendar>,
    work_types: [&'static str; 3],
    statuses: [&'static str; 3],
    cache: CacheMetrics,
    backend: String,
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
        cache: app.cache.metrics(),
        backend: app.backend_label.clone(),
    }))
}

/// `GET /api/cache`: the cache's counters (hits, misses, loader calls,
/// invalidations, backend round trips).
pub async fn cache_metrics(State(app): State<App>) -> Json<CacheMetrics> {
    Json(app.cache.metrics())
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Db(DbError::NotFound) => StatusCode::NOT_FOUND,
            ApiError::Db(DbError::Forbidden(_) | DbError::UnknownUser(_)) => StatusCode::FORBIDDEN,
            ApiError::Db(DbError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Db(_) => {
                tracing::error!(error = %self, "request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}
