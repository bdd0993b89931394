//! The Engine API router: versioned and unversioned paths, Docker's headers on every answer.

pub mod archive;
pub mod build;
pub mod containers;
pub mod exec;
pub mod images;
pub mod networks;
pub mod registry;
pub mod stats;
pub mod system;
pub mod volumes;

use crate::error::ApiError;
use crate::state::Shared;
use crate::{API_VERSION, MIN_API_VERSION};
use axum::extract::Request;
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub fn router(d: Shared) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(system::events))
        .route("/containers/create", post(containers::create))
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(containers::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/containers/{id}/attach", post(containers::attach))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/containers/{id}/changes", get(containers::changes))
        .route("/containers/{id}/update", post(containers::update))
        .route("/containers/{id}/export", get(archive::export))
        .route(
            "/containers/{id}/archive",
            get(archive::archive)
                .head(archive::archive)
                .put(archive::archive),
        )
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/images/json", get(images::list))
        .route("/images/load", post(images::load))
        .route("/images/get", get(images::save_many))
        .route("/images/create", post(images::create))
        .route("/images/prune", post(images::prune))
        .route("/images/search", get(registry::search))
        .route("/auth", post(registry::auth))
        .route(
            "/images/{*rest}",
            get(images::dispatch)
                .post(images::dispatch)
                .delete(images::dispatch),
        )
        .route("/commit", post(images::commit))
        .route("/build", post(build::build))
        .route("/berth/build/context", post(build::context_want))
        .route("/build/prune", post(build::prune))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .fallback(not_found)
        .layer(axum::middleware::map_response(docker_headers))
        .with_state(d)
}

async fn not_found(req: Request) -> Response {
    ApiError::not_found(format!(
        "page not found: {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

async fn docker_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!(
            "Docker/",
            env!("CARGO_PKG_VERSION"),
            " (berth; linux)"
        )),
    );
    res
}

fn version_tuple(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Strip a `/vX.Y` prefix before routing; reject versions outside what we speak.
pub fn strip_version(mut req: Request) -> Result<Request, ApiError> {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(req);
    };
    let Some((ver, tail)) = rest.split_once('/') else {
        return Ok(req);
    };
    let Some(v) = version_tuple(ver) else {
        return Ok(req);
    };
    let max = version_tuple(API_VERSION).unwrap_or((1, 50));
    let min = version_tuple(MIN_API_VERSION).unwrap_or((1, 24));
    if v > max {
        return Err(ApiError::bad_request(format!(
            "client version {ver} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if v < min {
        return Err(ApiError::bad_request(format!(
            "client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    let new_path = format!("/{tail}");
    let pq = match req.uri().query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    Ok(req)
}

/// A streamed response body fed by a task: `produce` sends chunks until it returns or the
/// client goes away (its sends then fail). Logs, events and stats are streamed this way.
pub fn produced_body<F, Fut>(capacity: usize, produce: F) -> axum::body::Body
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    tokio::spawn(produce(tx));
    axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }))
}
