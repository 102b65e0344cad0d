//! The web dashboard at `/ui`: static files from `ui/`,
//! embedded in the binary so a gateway without internet serves it whole.
//!
//! The page is public; every data call it makes carries the person's key as
//! `Authorization: Bearer`, so it has no more rights than curl would. The
//! Content-Security-Policy allows nothing but this origin: no inline script,
//! no CDN, no web font.
//!
//! With `HOOKGATE_UI_DIR` set, the same file names are read from that folder
//! on each request instead, to work on the dashboard without rebuilding.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Every file the dashboard has: URL name, content type, embedded bytes.
const FILES: [(&str, &str, &[u8]); 4] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/style.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../ui/icon.svg"),
    ),
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// What the page must know of the gateway's settings to check a form as the
/// API will: whether endpoint URLs may be plain `http://`, and an endpoint's
/// default `max_in_flight`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PageSettings {
    pub allow_http: bool,
    pub endpoint_concurrency: usize,
}

/// `/ui`, `/ui/` (the page), `/ui/settings.json` and `/ui/{file}` (its
/// assets). `dir` replaces the embedded copy with files read from disk.
pub fn routes<S: Clone + Send + Sync + 'static>(
    dir: Option<PathBuf>,
    settings: PageSettings,
) -> Router<S> {
    let dir = Arc::new(dir);
    let index = {
        let dir = dir.clone();
        move || {
            let dir = dir.clone();
            async move { serve(dir.as_ref().as_ref(), "index.html").await }
        }
    };
    Router::new()
        .route("/ui", get(index.clone()))
        .route("/ui/", get(index))
        .route(
            "/ui/settings.json",
            get(move || async move {
                let mut response = axum::Json(settings).into_response();
                secure(response.headers_mut());
                response
            }),
        )
        .route(
            "/ui/{file}",
            get(move |Path(file): Path<String>| {
                let dir = dir.clone();
                async move { serve(dir.as_ref().as_ref(), &file).await }
            }),
        )
}

async fn serve(dir: Option<&PathBuf>, name: &str) -> Response {
    // Only the known names, so a request can never reach another file on disk.
    let Some((name, content_type, embedded)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such dashboard file").into_response();
    };
    let bytes = match dir {
        None => embedded.to_vec(),
        Some(dir) => match tokio::fs::read(dir.join(name)).await {
            Ok(bytes) => bytes,
            Err(e) => {
                return (
                    StatusCode::NOT_FOUND,
                    format!("cannot read {name} from HOOKGATE_UI_DIR: {e}"),
                )
                    .into_response();
            }
        },
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(headers);
    response
}

/// The headers every dashboard answer carries.
fn secure(headers: &mut axum::http::HeaderMap) {
    // Small files, and a new binary may bring new ones: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}
