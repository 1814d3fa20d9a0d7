//! [`View`] as an [axum](https://docs.rs/axum) extractor (feature `axum`):
//! a feed handler takes the view FullCalendar asked for as an argument,
//! with the scopes the requester may see.
//!
//! The application says which scopes a request may see, and which query
//! parameters filter the feed, by implementing [`FeedScopes`] for its router
//! state:
//!
//! ```
//! use axum::extract::State;
//! use axum::http::request::Parts;
//! use cache_core::extract::FeedScopes;
//! use cache_core::fullcalendar::FeedQueryError;
//! use cache_core::{Bytes, RangeCache, Scope, View};
//! use std::sync::Arc;
//!
//! #[derive(Clone)]
//! struct App {
//!     cache: Arc<RangeCache>,
//! }
//!
//! impl FeedScopes for App {
//!     type Rejection = (axum::http::StatusCode, String);
//!     fn filters(&self) -> &[&str] {
//!         &["status"]
//!     }
//!     async fn scopes(&self, _parts: &mut Parts) -> Result<Vec<Scope>, Self::Rejection> {
//!         // Look the user up from the session here.
//!         Ok(vec![Scope::new("cal:7").expect("not empty")])
//!     }
//!     fn bad_query(&self, e: FeedQueryError) -> Self::Rejection {
//!         (axum::http::StatusCode::BAD_REQUEST, e.to_string())
//!     }
//! }
//!
//! async fn feed(State(app): State<App>, view: View) -> Result<Bytes, (axum::http::StatusCode, String)> {
//!     app.cache
//!         .get_or_load(&view, || async { Ok::<_, std::io::Error>(Bytes::from_static(b"[]")) })
//!         .await
//!         .map_err(|e| (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
//! }
//! # fn router(app: App) -> axum::Router { axum::Router::new().route("/feed", axum::routing::get(feed)).with_state(app) }
//! ```

use std::future::Future;

use axum_core::extract::FromRequestParts;
use axum_core::response::IntoResponse;
use http::request::Parts;

use crate::fullcalendar::{self, FeedQueryError};
use crate::view::{Scope, View};

/// What the [`View`] extractor needs from the application: the scopes a
/// request may see (from its session, its user, its tenant), the query
/// parameters that filter the feed, and how to answer a bad request.
/// Implemented on the router's state.
pub trait FeedScopes: Send + Sync {
    /// The answer when the request may see no feed, or its query is bad.
    type Rejection: IntoResponse;

    /// The query parameters that filter the feed: they become part of the
    /// view (and of its cache key). Default: none.
    fn filters(&self) -> &[&str] {
        &[]
    }

    /// The scopes (calendars) the request may see.
    fn scopes(&self, parts: &mut Parts) -> impl Future<Output = Result<Vec<Scope>, Self::Rejection>> + Send;

    /// The answer to a query FullCalendar would not send (missing `start`,
    /// an unknown `timeZone`, …): usually a 400 with the error's text.
    fn bad_query(&self, error: FeedQueryError) -> Self::Rejection;
}

impl<S: FeedScopes> FromRequestParts<S> for View {
    type Rejection = S::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let scopes = state.scopes(parts).await?;
        let query = parts.uri.query().unwrap_or("");
        fullcalendar::view(scopes, query, state.filters()).map_err(|e| state.bad_query(e))
    }
}
