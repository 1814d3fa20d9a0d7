//! The page and its assets, compiled into the binary so `cargo run` serves
//! them from any working directory. FullCalendar is the vendored npm build
//! (`static/vendor/fullcalendar/`, MIT), served from here: no CDN.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::App;

const INDEX: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const APP_CSS: &str = include_str!("../static/app.css");
const FULLCALENDAR_JS: &str = include_str!("../static/vendor/fullcalendar/index.global.min.js");
const FULLCALENDAR_LICENSE: &str = include_str!("../static/vendor/fullcalendar/LICENSE.md");

/// A response with `content_type`; `no-cache` so a reload always revalidates
/// (the browser test reloads right after changing the page's code paths).
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The asset routes.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/assets/fullcalendar/index.global.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", FULLCALENDAR_JS) }),
        )
        .route(
            "/assets/fullcalendar/LICENSE.md",
            get(|| async { asset("text/plain; charset=utf-8", FULLCALENDAR_LICENSE) }),
        )
}
