//! podgate's REST API: axum routes under `/v1`, health, readiness and metrics endpoints, the
//! OpenAPI document, bearer-token authentication and the JSON error format.

mod audit;
mod client_addr;
mod error;
mod extract;
mod files;
mod gateway;
mod logs;
mod openapi;
mod ports;
mod processes;
mod proxy;
mod recordings;
mod routes;
mod snapshots;
mod ssh_keys;
mod templates;
mod terminals;
mod upload;
mod users;
mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use podgate_core::{Auth, Metrics, Sandboxes, Terminals};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use openapi::ApiDoc;

/// Largest request body accepted (exec stdin travels in the body).
pub const MAX_BODY: usize = 16 << 20;

/// Everything the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub sandboxes: Sandboxes,
    pub terminals: Terminals,
    pub auth: Auth,
    pub metrics: Metrics,
    /// Browser origins allowed to open terminals besides the server's own.
    pub allowed_origins: Vec<String>,
    /// Directory of the built web UI, served under `/ui/`.
    pub web_dir: Option<std::path::PathBuf>,
    /// Proxies whose `X-Forwarded-For` names the client (none by default).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let state = Arc::new(state);
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    let mut app = Router::new()
        .merge(routes::v1())
        .merge(terminals::routes())
        .merge(files::routes())
        .merge(ports::routes())
        .merge(processes::routes())
        .merge(logs::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .merge(recordings::routes())
        .merge(ssh_keys::routes())
        .merge(volumes::routes())
        .merge(snapshots::routes())
        .merge(templates::routes())
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route("/v1/openapi.json", get(openapi::serve))
        .fallback(routes::not_found);
    if let Some(dir) = &state.web_dir {
        app = app
            .nest_service("/ui", tower_http::services::ServeDir::new(dir))
            .route("/", get(|| async { axum::response::Redirect::temporary("/ui/") }));
    }
    // CORS only for the listed origins (none by default; same-origin needs none), with
    // credentials, explicit methods and headers; the WebSocket gateway checks `Origin` against
    // the same list.
    if !state.allowed_origins.is_empty() {
        let origins: Vec<axum::http::HeaderValue> =
            state.allowed_origins.iter().filter_map(|o| o.parse().ok()).collect();
        use axum::http::{Method, header};
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::AllowOrigin::list(origins))
                .allow_credentials(true)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .max_age(std::time::Duration::from_secs(600)),
        );
    }
    let trusted = Arc::new(state.trusted_proxies.clone());
    app.layer(middleware::from_fn_with_state(state.clone(), limit_by_address))
        .layer(middleware::from_fn_with_state(trusted, client_addr::set_client_addr))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id, user_id = tracing::field::Empty)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// The per-address rate limit, before authentication. Health, readiness and metrics are not
/// counted (monitoring polls them); without a peer address (in-process tests) nothing is.
async fn limit_by_address(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let exempt = matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics");
    let peer = peer(req.extensions());
    if let (false, Some(ip)) = (exempt, peer)
        && let Err(e) = st.sandboxes.limiter().address(&ip.to_string()).await
    {
        tracing::warn!(address = %ip, "rate limited");
        return axum::response::IntoResponse::into_response(ApiError::from(e));
    }
    next.run(req).await
}

/// The client's address (see `client_addr`), when the server was started with connect info
/// (in-process tests are not).
pub(crate) fn peer(extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<client_addr::ClientAddr>().map(|c| c.0)
}

async fn count_requests(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    st.metrics.observe_http(&route, &method, resp.status().as_u16());
    resp
}
