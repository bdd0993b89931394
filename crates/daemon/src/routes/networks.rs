//! `/networks`: list, inspect, create, remove, connect, disconnect, prune.

use crate::error::{ApiError, ApiResult};
use crate::networking::Networks;
use crate::query::parse_filters;
use crate::state::Shared;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

fn service(d: &Shared) -> ApiResult<Arc<Networks>> {
    d.networks
        .clone()
        .ok_or_else(|| ApiError::internal("networking is not available"))
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    filters: Option<String>,
}

fn label_match(labels: &HashMap<String, String>, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f),
    }
}

pub async fn list(State(d): State<Shared>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let nets = service(&d)?;
    let filters = parse_filters(q.filters.as_deref()).map_err(ApiError::bad_request)?;
    let mut out = Vec::new();
    for n in nets.all() {
        let ok = filters.iter().all(|(k, vals)| match k.as_str() {
            "name" => vals.iter().any(|v| n.name.contains(v.as_str())),
            "id" => vals.iter().any(|v| n.id.starts_with(v.as_str())),
            "driver" => vals.contains(&n.driver),
            "label" => vals.iter().all(|v| label_match(&n.labels, v)),
            "scope" => vals.iter().any(|v| v == "local"),
            "type" => vals.iter().any(|v| {
                let builtin = matches!(n.name.as_str(), "bridge" | "host" | "none");
                (v == "builtin" && builtin) || (v == "custom" && !builtin)
            }),
            "dangling" => {
                let dangling = n.members.is_empty();
                vals.iter()
                    .any(|v| crate::query::parse_bool(Some(v)) == dangling)
            }
            _ => true,
        });
        if ok {
            let mut v = nets.inspect_value(&n);
            // The list leaves Containers empty, as Docker's does.
            v["Containers"] = json!({});
            out.push(v);
        }
    }
    Ok(Json(Value::Array(out)))
}

pub async fn inspect(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let nets = service(&d)?;
    let n = nets.find(&id)?;
    Ok(Json(nets.inspect_value(&n)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    config: Option<Vec<IpamConfig>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct CreateBody {
    name: String,
    driver: Option<String>,
    internal: Option<bool>,
    attachable: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    labels: Option<HashMap<String, String>>,
    options: Option<HashMap<String, String>>,
}

pub async fn create(State(d): State<Shared>, Json(b): Json<CreateBody>) -> ApiResult<Response> {
    let nets = service(&d)?;
    let cfg = b
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| {
            c.into_iter()
                .find(|c| c.subnet.as_deref().is_none_or(|s| !s.contains(':')))
        })
        .unwrap_or_default();
    let id = tokio::task::spawn_blocking(move || {
        nets.create(
            &b.name,
            b.driver.as_deref().unwrap_or(""),
            cfg.subnet.as_deref().filter(|s| !s.is_empty()),
            cfg.gateway.as_deref().filter(|s| !s.is_empty()),
            cfg.ip_range.as_deref().filter(|s| !s.is_empty()),
            b.internal.unwrap_or(false),
            b.attachable.unwrap_or(false),
            b.labels.unwrap_or_default(),
            b.options.unwrap_or_default(),
        )
    })
    .await??;
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Warning": ""}))).into_response())
}

pub async fn remove(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let nets = service(&d)?;
    tokio::task::spawn_blocking(move || nets.remove(&id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectBody {
    container: String,
    endpoint_config: Option<berth_api::models::EndpointSettings>,
    #[serde(default)]
    force: bool,
}

pub async fn connect(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<ConnectBody>,
) -> ApiResult<StatusCode> {
    let nets = service(&d)?;
    let c = d.find(&b.container)?;
    let rec = c.get();
    let mode = rec.host_config.network_mode.clone().unwrap_or_default();
    if matches!(mode.as_str(), "host" | "none") || mode.starts_with("container:") {
        return Err(ApiError::bad_request(
            "container sharing network namespace with another container or host cannot be connected to any other network",
        ));
    }
    let es = b.endpoint_config.unwrap_or_default();
    let aliases = es.aliases.clone().unwrap_or_default();
    let ip = es.ipam_config.as_ref().and_then(|c| c.ipv4_address.clone());
    let cid = rec.id.clone();
    let name = rec.name.clone();
    let running = rec.state.status.is_running();
    let pid = rec.state.pid;
    let _ = b.force;
    tokio::task::spawn_blocking(move || -> ApiResult<()> {
        nets.join(&cid, &name, &id, aliases, ip.as_deref())?;
        if running {
            if let Err(e) = nets.connect_running(&cid, &id, pid) {
                let _ = nets.leave(&cid, &id);
                return Err(e);
            }
        }
        Ok(())
    })
    .await??;
    Ok(StatusCode::OK)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct DisconnectBody {
    container: String,
    #[serde(default)]
    force: bool,
}

pub async fn disconnect(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Json(b): Json<DisconnectBody>,
) -> ApiResult<StatusCode> {
    let nets = service(&d)?;
    let cid = match d.find(&b.container) {
        Ok(c) => c.id.clone(),
        Err(e) if !b.force => return Err(e),
        Err(_) => b.container.clone(),
    };
    tokio::task::spawn_blocking(move || nets.leave(&cid, &id)).await??;
    Ok(StatusCode::OK)
}

pub async fn prune(State(d): State<Shared>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let nets = service(&d)?;
    let filters = parse_filters(q.filters.as_deref()).map_err(ApiError::bad_request)?;
    let deleted = tokio::task::spawn_blocking(move || {
        let mut deleted = Vec::new();
        for n in nets.all() {
            if matches!(n.name.as_str(), "bridge" | "host" | "none") || !n.members.is_empty() {
                continue;
            }
            if let Some(labels) = filters.get("label") {
                if !labels.iter().all(|l| label_match(&n.labels, l)) {
                    continue;
                }
            }
            if nets.remove(&n.id).is_ok() {
                deleted.push(n.name.clone());
            }
        }
        deleted
    })
    .await?;
    Ok(Json(json!({"NetworksDeleted": deleted})))
}
