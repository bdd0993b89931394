//! Container endpoints.

use crate::container::{Container, ContainerRecord, Status};
use crate::error::{ApiError, ApiResult};
use crate::hijack;
use crate::lifecycle;
use crate::logs::{self, LogsQuery};
use crate::query::{bool_flag, parse_filters};
use crate::shim;
use crate::state::Shared;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_api::models::ContainerCreateBody;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
pub fn not_modified() -> Response {
    StatusCode::NOT_MODIFIED.into_response()
}

pub fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|e| ApiError::bad_request(e.to_string()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

#[derive(Deserialize)]
pub struct CreateQuery {
    name: Option<String>,
}

pub async fn create(
    State(d): State<Shared>,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: ContainerCreateBody = parse_json(&body)?;
    let (id, warnings) = lifecycle::create(&d, q.name, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": id, "Warnings": warnings})),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default, deserialize_with = "bool_flag")]
    all: bool,
    limit: Option<i64>,
    #[serde(default, deserialize_with = "bool_flag")]
    size: bool,
    filters: Option<String>,
}

pub async fn list(State(d): State<Shared>, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let filters = parse_filters(q.filters.as_deref()).map_err(ApiError::bad_request)?;
    let mut recs: Vec<ContainerRecord> = d.all().iter().map(|c| c.get()).collect();
    recs.sort_by(|a, b| b.created.cmp(&a.created));
    let limit = q.limit.filter(|l| *l > 0).map(|l| l as usize);
    let show_all = q.all || limit.is_some();
    let mut out = Vec::new();
    for r in recs {
        if !show_all && !r.state.status.is_running() && !filters.contains_key("status") {
            continue;
        }
        if !matches_filters(&d, &r, &filters) {
            continue;
        }
        out.push(summary(&d, &r, q.size));
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(Json(Value::Array(out)))
}

fn matches_filters(d: &Shared, r: &ContainerRecord, f: &HashMap<String, Vec<String>>) -> bool {
    for (k, vals) in f {
        if vals.is_empty() {
            continue;
        }
        let ok = match k.as_str() {
            "status" => vals.iter().any(|v| v == r.state.status.as_str()),
            "name" => vals
                .iter()
                .any(|v| r.name.contains(v.trim_start_matches('/'))),
            "id" => vals.iter().any(|v| r.id.starts_with(v)),
            "exited" => {
                r.state.status == Status::Exited
                    && vals
                        .iter()
                        .any(|v| v.parse::<i64>().ok() == Some(r.state.exit_code))
            }
            "label" => {
                let labels = lifecycle::labels_of(r);
                vals.iter().all(|v| match v.split_once('=') {
                    Some((k, val)) => labels.get(k).map(String::as_str) == Some(val),
                    None => labels.contains_key(v),
                })
            }
            "ancestor" => vals.iter().any(|v| {
                r.image == *v
                    || r.image_id == *v
                    || d.images
                        .resolve(v)
                        .map(|i| i.id.to_string() == r.image_id)
                        .unwrap_or(false)
            }),
            "before" | "since" => {
                let Ok(other) = d.find(&vals[0]) else {
                    return false;
                };
                let oc = other.get().created;
                if k == "before" {
                    r.created < oc
                } else {
                    r.created > oc
                }
            }
            "network" => vals
                .iter()
                .any(|v| r.host_config.network_mode.as_deref() == Some(v.as_str())),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

fn command_line(r: &ContainerRecord) -> String {
    let mut parts = vec![r.path.clone()];
    parts.extend(r.args.iter().cloned());
    parts.join(" ")
}

fn created_unix(r: &ContainerRecord) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&r.created)
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

fn summary(d: &Shared, r: &ContainerRecord, size: bool) -> Value {
    let mut v = json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.image,
        "ImageID": r.image_id,
        "Command": command_line(r),
        "Created": created_unix(r),
        "Ports": d.networks.as_ref().map(|n| n.ports_list(&r.id)).unwrap_or_else(|| json!([])),
        "Labels": lifecycle::labels_of(r),
        "State": r.state.status.as_str(),
        "Status": lifecycle::status_text(r),
        "HostConfig": {"NetworkMode": r.host_config.network_mode.clone().unwrap_or_else(|| "bridge".into())},
        "NetworkSettings": {"Networks": d.networks.as_ref().map(|n| n.settings(&r.id)).unwrap_or_else(|| json!({}))},
        "Mounts": crate::mounts::inspect_list(&r.mounts),
    });
    if size {
        let rw = d
            .images
            .snapshots()
            .container(&r.id)
            .map(|s| dir_size(&s.upper))
            .unwrap_or(0);
        v["SizeRw"] = json!(rw);
        v["SizeRootFs"] = json!(0);
    }
    v
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_dir() {
                    total += dir_size(&e.path());
                } else {
                    total += m.len();
                }
            }
        }
    }
    total
}

pub fn inspect_value(d: &Shared, c: &Container) -> Value {
    let r = c.get();
    let dir = d.paths.container_dir(&r.id);
    let st = &r.state;
    let ids = d.execs.ids_for_container(&r.id);
    let exec_ids = if ids.is_empty() {
        Value::Null
    } else {
        json!(ids)
    };
    let snap = d.images.snapshots().container(&r.id).ok();
    let graph = match snap {
        Some(s) => json!({
            "LowerDir": s.lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
            "MergedDir": s.merged, "UpperDir": s.upper, "WorkDir": s.work,
        }),
        None => Value::Null,
    };
    let mut v = json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": st.status.as_str(),
            "Running": st.status.is_running(),
            "Paused": st.status == Status::Paused,
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": r.image_id,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": d.paths.log_path(&r.id),
        "Name": format!("/{}", r.name),
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids,
        "HostConfig": r.host_config,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": graph
        },
        "Mounts": crate::mounts::inspect_list(&r.mounts),
        "Config": r.config,
        "NetworkSettings": d.networks.as_ref().map(|n| n.network_settings(&r.id)).unwrap_or_else(|| json!({}))
    });
    if let Some(h) = crate::health::inspect_json(&r.id) {
        v["State"]["Health"] = h;
    }
    v
}

pub async fn inspect(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let c = d.find(&id)?;
    Ok(Json(inspect_value(&d, &c)))
}

pub async fn start(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = d.find(&id)?;
    Ok(if lifecycle::start(&d, &c).await? {
        no_content()
    } else {
        not_modified()
    })
}

#[derive(Deserialize)]
pub struct StopQuery {
    t: Option<i64>,
    signal: Option<String>,
}

pub async fn stop(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    Ok(
        if lifecycle::stop(&d, &c, q.t, q.signal.as_deref()).await? {
            no_content()
        } else {
            not_modified()
        },
    )
}

pub async fn restart(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<StopQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    lifecycle::restart(&d, &c, q.t, q.signal.as_deref()).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
pub struct KillQuery {
    signal: Option<String>,
}

pub async fn kill(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<KillQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    lifecycle::kill(&d, &c, q.signal.as_deref()).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
pub struct WaitQuery {
    condition: Option<String>,
}

/// Headers go out at once; the body when the condition is met (docker run depends on it).
pub async fn wait(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    let condition = q.condition.unwrap_or_else(|| "not-running".into());
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad_request(format!(
            "invalid condition: {condition:?}"
        )));
    }
    let fut = async move {
        let code = lifecycle::wait(c, &condition).await;
        Ok::<_, std::io::Error>(Bytes::from(format!(
            "{{\"StatusCode\":{code},\"Error\":null}}\n"
        )))
    };
    let body = Body::from_stream(futures_util::stream::once(fut));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_default())
}

#[derive(Deserialize)]
pub struct RemoveQuery {
    #[serde(default, deserialize_with = "bool_flag")]
    force: bool,
    #[serde(default, deserialize_with = "bool_flag")]
    v: bool,
}

pub async fn remove(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    lifecycle::remove(&d, &c, q.force, q.v).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
pub struct AttachQuery {
    #[serde(default, deserialize_with = "bool_flag")]
    stdin: bool,
    #[serde(default, deserialize_with = "bool_flag")]
    stdout: bool,
    #[serde(default, deserialize_with = "bool_flag")]
    stderr: bool,
}

pub async fn attach(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<AttachQuery>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<hijack::PeerSocket>,
    mut req: Request,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    let rec = c.get();
    crate::events::container(&d, &rec, "attach", &[]);
    let tty = rec.config.tty.unwrap_or(false);
    let stdin = q.stdin && rec.config.open_stdin.unwrap_or(false);
    let close_on_eof = rec.config.stdin_once.unwrap_or(false);
    // The daemon, not the shim, decides when stdin closes: only on a real EOF, never on detach.
    let request = shim::Request::Attach {
        stdin,
        stdout: q.stdout,
        stderr: q.stderr,
        close_stdin_on_eof: false,
    };
    let on_eof = if close_on_eof {
        hijack::OnClientEof::CloseStdin(d.paths.shim_socket(&c.id))
    } else {
        hijack::OnClientEof::Keep
    };
    let upgrade = hijack::take_upgrade(&mut req);
    let stream = attach_stream(&d, &c, request);
    match upgrade {
        Some(on_upgrade) => {
            tokio::spawn(async move {
                if let Ok(s) = stream.await {
                    hijack::bridge(on_upgrade, peer, s, stdin, on_eof, async {}).await;
                }
            });
            Ok(hijack::switching(tty))
        }
        None => {
            let s = stream.await?;
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, hijack::content_type(tty))
                .body(hijack::streamed_body(s))
                .unwrap_or_default())
        }
    }
}

/// Connect now if the shim is up; otherwise register and let `start` connect us.
fn attach_stream(
    d: &Shared,
    c: &Arc<Container>,
    request: shim::Request,
) -> impl std::future::Future<Output = ApiResult<shim::ShimStream>> {
    let socket = d.paths.shim_socket(&c.id);
    let waiter = {
        let mut gate = c.gate();
        if gate.shim_up {
            None
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            gate.waiting.push(crate::container::PendingAttach {
                request: request.clone(),
                reply: tx,
            });
            Some(rx)
        }
    };
    async move {
        match waiter {
            None => shim::request(&socket, &request).await.map(|(_, s)| s),
            Some(rx) => rx
                .await
                .map_err(|_| ApiError::internal("container removed before it started"))?,
        }
    }
}

pub async fn logs(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    if !q.stdout && !q.stderr {
        return Err(ApiError::bad_request("You must choose at least one stream"));
    }
    let tty = c.tty();
    let body = logs::stream(d.paths.log_path(&c.id), c, q);
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, hijack::content_type(tty))
        .body(body)
        .unwrap_or_default())
}

#[derive(Deserialize)]
pub struct ResizeQuery {
    h: Option<u16>,
    w: Option<u16>,
}

pub async fn resize(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ResizeQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    shim::call(
        &d.paths.shim_socket(&c.id),
        crate::shim::Request::Resize {
            height: q.h.unwrap_or(0),
            width: q.w.unwrap_or(0),
            exec_pid: None,
        },
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
pub struct RenameQuery {
    name: String,
}

pub async fn rename(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<RenameQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    let name = q.name.trim_start_matches('/').to_string();
    if !lifecycle::valid_name(&name) {
        return Err(ApiError::bad_request(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let old_name = c.lock().name.clone();
    d.rename(&c, &name)?;
    d.save(&c, true)?;
    crate::events::container(
        &d,
        &c.get(),
        "rename",
        &[("oldName", format!("/{old_name}"))],
    );
    Ok(no_content())
}

pub async fn pause(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    set_paused(&d, &id, true).await
}
pub async fn unpause(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    set_paused(&d, &id, false).await
}

async fn set_paused(d: &Shared, id: &str, pause: bool) -> ApiResult<Response> {
    let c = d.find(id)?;
    let status = c.status();
    if pause && status != Status::Running {
        return Err(ApiError::conflict(if status == Status::Paused {
            format!(
                "cannot pause container {}: container {} is already paused",
                c.id, c.id
            )
        } else {
            format!(
                "cannot pause container {}: container {} is not running",
                c.id, c.id
            )
        }));
    }
    if !pause && status != Status::Paused {
        return Err(ApiError::conflict(format!(
            "Container {} is not paused",
            c.id
        )));
    }
    shim::call(
        &d.paths.shim_socket(&c.id),
        if pause {
            crate::shim::Request::Pause
        } else {
            crate::shim::Request::Resume
        },
    )
    .await?;
    c.lock().state.status = if pause {
        Status::Paused
    } else {
        Status::Running
    };
    d.save(&c, false)?;
    crate::events::container(d, &c.get(), if pause { "pause" } else { "unpause" }, &[]);
    Ok(no_content())
}

#[derive(Deserialize)]
pub struct TopQuery {
    ps_args: Option<String>,
}

/// Docker runs the host's `ps` and keeps the container's processes.
pub async fn top(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<TopQuery>,
) -> ApiResult<Json<Value>> {
    let c = d.find(&id)?;
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "container {} is not running",
            c.id
        )));
    }
    let spec = berth_runtime::spec::load_bundle(&d.paths.bundle_dir(&c.id))?;
    let pids = berth_runtime::builtin::processes(&spec)?;
    let args = q
        .ps_args
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "-ef".into());
    let out = tokio::process::Command::new("ps")
        .args(args.split_whitespace())
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
    let mut procs = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (command) may contain spaces.
        let n = titles.len();
        let mut row: Vec<String> = fields.iter().take(n - 1).map(|s| s.to_string()).collect();
        row.push(
            fields
                .iter()
                .skip(n - 1)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        );
        procs.push(row);
    }
    Ok(Json(json!({"Titles": titles, "Processes": procs})))
}

pub async fn changes(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let c = d.find(&id)?;
    let rec = c.get();
    let d2 = d.clone();
    let list = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let digest = berth_image::Digest::parse(&rec.image_id)?;
        let lowers = d2.images.lowers(&digest)?;
        let upper = d2.images.snapshots().container(&rec.id)?.upper;
        let changes = berth_image::layer::changes(&upper, &lowers)?;
        Ok(Value::Array(
            changes
                .into_iter()
                .map(|ch| json!({"Path": ch.path, "Kind": ch.kind as u8}))
                .collect(),
        ))
    })
    .await??;
    Ok(Json(if list.as_array().is_some_and(|a| a.is_empty()) {
        Value::Null
    } else {
        list
    }))
}

#[derive(Deserialize)]
pub struct UpdateBody {
    #[serde(rename = "RestartPolicy")]
    restart_policy: Option<berth_api::models::RestartPolicy>,
    #[serde(rename = "Memory")]
    memory: Option<i64>,
    #[serde(rename = "CpuShares")]
    cpu_shares: Option<i64>,
    #[serde(rename = "PidsLimit")]
    pids_limit: Option<i64>,
}

pub async fn update(
    State(d): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let c = d.find(&id)?;
    let u: UpdateBody = parse_json(&body)?;
    {
        let mut r = c.lock();
        if let Some(rp) = u.restart_policy {
            if r.host_config.auto_remove == Some(true)
                && rp
                    .name
                    .as_ref()
                    .is_some_and(|n| n.to_string() != "no" && !n.to_string().is_empty())
            {
                return Err(ApiError::bad_request("Restart policy cannot be updated because AutoRemove is enabled for the container"));
            }
            r.host_config.restart_policy = Some(rp);
        }
        if let Some(m) = u.memory.filter(|m| *m != 0) {
            r.host_config.memory = Some(m);
        }
        if let Some(s) = u.cpu_shares.filter(|s| *s != 0) {
            r.host_config.cpu_shares = Some(s);
        }
        if let Some(p) = u.pids_limit.filter(|p| *p != 0) {
            r.host_config.pids_limit = Some(p);
        }
    }
    d.save(&c, true)?;
    Ok(Json(json!({"Warnings": []})))
}

pub async fn prune(State(d): State<Shared>) -> ApiResult<Json<Value>> {
    let mut deleted = Vec::new();
    for c in d.all() {
        let st = c.status();
        let stopped = st == Status::Exited || st == Status::Created || st == Status::Dead;
        if stopped && lifecycle::remove(&d, &c, false, false).await.is_ok() {
            deleted.push(c.id.clone());
        }
    }
    Ok(Json(
        json!({"ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": 0}),
    ))
}
