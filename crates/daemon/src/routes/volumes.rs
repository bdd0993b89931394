//! `/volumes`: list (filters dangling, name, label, driver), create, inspect, remove, prune.

use crate::error::{ApiError, ApiResult};
use crate::lifecycle::volume_users;
use crate::query::{bool_flag, parse_filters};
use crate::state::Shared;
use crate::volumes::{no_such_volume, Volume};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

#[derive(Deserialize, Default)]
pub struct FilterQuery {
    filters: Option<String>,
}

fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

fn truthy(s: &str) -> ApiResult<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "invalid filter 'dangling={s}'"
        ))),
    }
}

fn filtered(
    d: &Shared,
    filters: &HashMap<String, Vec<String>>,
    allowed: &[&str],
) -> ApiResult<Vec<Volume>> {
    for k in filters.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let dangling = match filters.get("dangling").and_then(|v| v.first()) {
        Some(s) => Some(truthy(s)?),
        None => None,
    };
    let mut out = Vec::new();
    for v in d.volumes.all() {
        if let Some(dang) = dangling {
            if volume_users(d, &v.name).is_empty() != dang {
                continue;
            }
        }
        if let Some(names) = filters.get("name") {
            if !names.iter().any(|n| v.name.contains(n.as_str())) {
                continue;
            }
        }
        if let Some(drivers) = filters.get("driver") {
            if !drivers.contains(&v.driver) {
                continue;
            }
        }
        if let Some(labels) = filters.get("label") {
            if !labels.iter().all(|l| label_matches(&v.labels, l)) {
                continue;
            }
        }
        if let Some(labels) = filters.get("label!") {
            if labels.iter().any(|l| label_matches(&v.labels, l)) {
                continue;
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// `GET /volumes`.
pub async fn list(State(d): State<Shared>, Query(q): Query<FilterQuery>) -> ApiResult<Json<Value>> {
    let filters = parse_filters(q.filters.as_deref()).map_err(ApiError::bad_request)?;
    let vols = filtered(
        &d,
        &filters,
        &["dangling", "name", "label", "label!", "driver"],
    )?;
    let list: Vec<Value> = vols.iter().map(|v| d.volumes.to_json(v)).collect();
    Ok(Json(json!({"Volumes": list, "Warnings": []})))
}

#[derive(Deserialize, Default)]
pub struct CreateBody {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Driver", default)]
    driver: Option<String>,
    #[serde(rename = "DriverOpts", default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// `POST /volumes/create`.
pub async fn create(State(d): State<Shared>, body: axum::body::Bytes) -> ApiResult<Response> {
    let body: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    let vols = d.volumes.clone();
    let v = tokio::task::spawn_blocking(move || {
        vols.create(
            body.name.as_deref(),
            body.driver.as_deref(),
            body.labels.unwrap_or_default(),
            body.driver_opts.unwrap_or_default(),
        )
    })
    .await??;
    let json = d.volumes.to_json(&v);
    if let Some(name) = json["Name"].as_str() {
        crate::events::object(
            &d,
            berth_api::models::EventMessageTypeEnum::VOLUME,
            "create",
            name,
            &[("driver", "local".into())],
        );
    }
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

/// `GET /volumes/{name}`.
pub async fn inspect(State(d): State<Shared>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let v = d.volumes.get(&name).ok_or_else(|| no_such_volume(&name))?;
    Ok(Json(d.volumes.to_json(&v)))
}

#[derive(Deserialize, Default)]
pub struct RemoveQuery {
    #[serde(default, deserialize_with = "bool_flag")]
    force: bool,
}

/// `DELETE /volumes/{name}`: 409 naming the containers while in use; `force` ignores a
/// missing volume (as Docker's).
pub async fn remove(
    State(d): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    if d.volumes.get(&name).is_none() {
        if q.force {
            return Ok(StatusCode::NO_CONTENT);
        }
        return Err(no_such_volume(&name));
    }
    let users = volume_users(&d, &name);
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "remove {name}: volume is in use - [{}]",
            users.join(", ")
        )));
    }
    let vols = d.volumes.clone();
    let n = name.clone();
    match tokio::task::spawn_blocking(move || vols.remove(&n)).await? {
        Ok(()) => {
            crate::events::object(
                &d,
                berth_api::models::EventMessageTypeEnum::VOLUME,
                "destroy",
                &name,
                &[("driver", "local".into())],
            );
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) if e.status == StatusCode::NOT_FOUND && q.force => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(e),
    }
}

/// `POST /volumes/prune`: unused anonymous volumes; with the `all` filter, every unused volume.
pub async fn prune(
    State(d): State<Shared>,
    Query(q): Query<FilterQuery>,
) -> ApiResult<Json<Value>> {
    let mut filters = parse_filters(q.filters.as_deref()).map_err(ApiError::bad_request)?;
    let all = match filters.remove("all").and_then(|v| v.into_iter().next()) {
        Some(s) => truthy(&s)?,
        None => false,
    };
    filters.insert("dangling".into(), vec!["true".into()]);
    let vols = filtered(&d, &filters, &["dangling", "label", "label!"])?;
    let mut deleted = Vec::new();
    let mut reclaimed: u64 = 0;
    for v in vols {
        if !all && !v.is_anonymous() {
            continue;
        }
        // Re-check under the same conditions as `volume rm`: a container may have started using it.
        if !volume_users(&d, &v.name).is_empty() {
            continue;
        }
        let store = d.volumes.clone();
        let name = v.name.clone();
        let (size, res) = tokio::task::spawn_blocking(move || {
            let size = store.size(&name);
            (size, store.remove(&name))
        })
        .await?;
        if res.is_ok() {
            reclaimed += size;
            deleted.push(v.name);
        }
    }
    Ok(Json(
        json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}
