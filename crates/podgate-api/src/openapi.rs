//! The OpenAPI document, generated from the handlers and the shared types.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{
    audit, files, gateway, logs, ports, processes, recordings, routes, snapshots, ssh_keys, templates, terminals,
    users, volumes,
};

/// podgate's REST API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "podgate", description = "Self-hosted sandboxes: create, list, delete and exec into isolated Linux containers."),
    paths(routes::me, users::list_users, users::create_user, users::list_tokens, users::create_token, users::revoke_token, users::get_quota, users::set_quota, audit::audit, audit::sandbox_events, routes::create_sandbox, routes::list_sandboxes, routes::get_sandbox, routes::delete_sandbox, routes::exec, routes::pause_sandbox, routes::resume_sandbox, routes::extend_sandbox, logs::logs, logs::metrics,
        terminals::open_terminal, terminals::list_terminals, terminals::delete_terminal, terminals::share_terminal, terminals::revoke_shares,
        terminals::exchange_share, terminals::rotate_keys, recordings::list_recordings, recordings::get_recording, ssh_keys::list_ssh_keys, ssh_keys::add_ssh_key, ssh_keys::remove_ssh_key, volumes::list_volumes, volumes::delete_volume, volumes::unlock_volume, volumes::lock_volume, snapshots::create_snapshot, snapshots::fork_sandbox, snapshots::list_snapshots, snapshots::delete_snapshot, snapshots::export_snapshot, snapshots::import_snapshot, templates::list_templates, templates::put_template, templates::delete_template, templates::build_template,
        files::content, files::tar, files::watch, files::stat, files::list, files::mkdir, files::move_, ports::list, ports::watch, ports::tunnel, gateway::connect,
        processes::list_or_stream, processes::start, processes::info, processes::kill, processes::signal, processes::attach),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /v1/openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The paths the router serves, read from the `.route("…", …)` calls of this crate's source.
    fn routed() -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("openapi.rs") {
                continue;
            }
            let source = std::fs::read_to_string(path).unwrap();
            for call in source.split(".route(").skip(1) {
                let call = call.trim_start();
                if let Some(rest) = call.strip_prefix('"') {
                    paths.insert(rest[..rest.find('"').unwrap()].to_string());
                }
            }
        }
        paths
    }

    /// Every route of the API is in the OpenAPI document, WebSocket routes included, so a
    /// client generated from it reaches everything; only the routes below are not API.
    #[test]
    fn every_api_route_is_documented() {
        use utoipa::OpenApi as _;
        let not_api = ["/", "/healthz", "/readyz", "/metrics", "/.well-known/jwks.json", "/v1/openapi.json"];
        let doc = super::ApiDoc::openapi();
        let documented: BTreeSet<String> = doc.paths.paths.keys().cloned().collect();
        let routed = routed();
        assert!(routed.len() > 40, "the source scan found the routes: {routed:?}");
        let missing: Vec<&String> =
            routed.iter().filter(|p| !documented.contains(*p) && !not_api.contains(&p.as_str())).collect();
        assert!(missing.is_empty(), "routes missing from the OpenAPI document: {missing:?}");
        let stale: Vec<&String> = documented.iter().filter(|p| !routed.contains(*p)).collect();
        assert!(stale.is_empty(), "documented paths nothing serves: {stale:?}");
    }
}
