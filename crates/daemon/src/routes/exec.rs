//! Exec endpoints.

use crate::error::{ApiError, ApiResult};
use crate::exec::{self, ExecRecord};
use crate::hijack;
use crate::routes::containers::parse_json;
use crate::shim;
use crate::state::Shared;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_api::models::{ExecConfig, ExecStartConfig};
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn create(
    State(d): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    let cfg: ExecConfig = parse_json(&body)?;
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "container {} is not running",
            c.id
        )));
    }
    if c.status() == crate::container::Status::Paused {
        return Err(ApiError::conflict(format!(
            "container {} is paused, unpause the container before exec",
            c.id
        )));
    }
    if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let exec_id = hex::encode(rand::random::<[u8; 32]>());
    d.execs.insert(ExecRecord {
        id: exec_id.clone(),
        container_id: c.id.clone(),
        config: cfg,
        running: false,
        started: false,
        pid: 0,
        exit_code: None,
    });
    Ok((StatusCode::CREATED, Json(json!({"Id": exec_id}))).into_response())
}

pub async fn start(
    State(d): State<Shared>,
    Path(id): Path<String>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<hijack::PeerSocket>,
    mut req: Request,
) -> ApiResult<Response> {
    let upgrade = hijack::take_upgrade(&mut req);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let start: ExecStartConfig = parse_json(&body)?;
    let e = d.execs.get(&id)?;
    let (cid, mut cfg) = {
        let mut r = exec::lock(&e);
        if r.started {
            return Err(ApiError::conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        r.started = true;
        (r.container_id.clone(), r.config.clone())
    };
    if let Some(cs) = start.console_size.clone() {
        cfg.console_size = Some(cs);
    }
    let c = d.find(&cid)?;
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "container {cid} is not running"
        )));
    }
    let rootfs = d.images.snapshots().container(&cid)?.merged;
    let process = exec::process_for(&d, &cid, &cfg, &rootfs)?;
    let detach = start.detach.unwrap_or(false);
    let tty = cfg.tty.unwrap_or(false);
    let stdin = cfg.attach_stdin.unwrap_or(false) && !detach;
    let socket = d.paths.shim_socket(&cid);
    let req = shim::exec_request(process, stdin, detach)?;
    let (answer, stream) = match shim::request(&socket, &req).await {
        Ok(x) => x,
        Err(err) => {
            let code = if err.message.contains("not found") {
                127
            } else {
                126
            };
            exec::lock(&e).exit_code = Some(code);
            return Err(exec_error(err));
        }
    };
    if let Some(code) = answer.get("exit_code").and_then(Value::as_i64) {
        exec::lock(&e).exit_code = Some(code);
        return Err(ApiError::bad_request(
            answer
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("exec failed")
                .to_string(),
        ));
    }
    let pid = answer.get("pid").and_then(Value::as_i64).unwrap_or(0);
    {
        let mut r = exec::lock(&e);
        r.pid = pid;
        r.running = true;
    }
    if detach {
        drop(stream);
        watch_exit(d.clone(), e.clone(), socket, pid);
        return Ok(StatusCode::OK.into_response());
    }
    let d2 = d.clone();
    let e2 = e.clone();
    let finish = async move {
        let status = shim::call(
            &socket,
            crate::shim::Request::ExecStatus { pid: pid as i32 },
        )
        .await;
        record_exit(&e2, status.ok());
        let _ = d2;
    };
    match upgrade {
        Some(on_upgrade) => {
            tokio::spawn(async move {
                hijack::bridge(
                    on_upgrade,
                    peer,
                    stream,
                    stdin,
                    hijack::OnClientEof::HalfClose,
                    finish,
                )
                .await;
            });
            Ok(hijack::switching(tty))
        }
        None => {
            tokio::spawn(async move {
                // Without an upgrade the body carries the output; the exit is read when it ends.
                finish.await;
            });
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, hijack::content_type(tty))
                .body(hijack::streamed_body(stream))
                .unwrap_or_default())
        }
    }
}

fn exec_error(err: ApiError) -> ApiError {
    if err.message.contains("executable file not found")
        || err.message.contains("permission denied")
    {
        ApiError::bad_request(err.message)
    } else {
        err
    }
}

fn record_exit(e: &std::sync::Mutex<ExecRecord>, status: Option<Value>) {
    let mut r = exec::lock(e);
    let running = status
        .as_ref()
        .and_then(|s| s.get("running"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    r.running = running;
    if !running {
        r.exit_code = status
            .as_ref()
            .and_then(|s| s.get("exit_code"))
            .and_then(Value::as_i64)
            .or(Some(r.exit_code.unwrap_or(126)));
    }
}

/// A detached exec: poll the shim for its exit (bounded by the container's life).
fn watch_exit(
    d: Shared,
    e: std::sync::Arc<std::sync::Mutex<ExecRecord>>,
    socket: std::path::PathBuf,
    pid: i64,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            match shim::call(
                &socket,
                crate::shim::Request::ExecStatus { pid: pid as i32 },
            )
            .await
            {
                Ok(v) if v.get("running").and_then(Value::as_bool) == Some(true) => continue,
                Ok(v) => {
                    record_exit(&e, Some(v));
                    break;
                }
                Err(_) => {
                    record_exit(&e, None);
                    break;
                }
            }
        }
        let _ = d;
    });
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
    let e = d.execs.get(&id)?;
    let (cid, pid) = {
        let r = exec::lock(&e);
        (r.container_id.clone(), r.pid)
    };
    shim::call(
        &d.paths.shim_socket(&cid),
        crate::shim::Request::Resize {
            height: q.h.unwrap_or(0),
            width: q.w.unwrap_or(0),
            exec_pid: Some(pid as i32),
        },
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn inspect(State(d): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let e = d.execs.get(&id)?;
    let r = exec::lock(&e).clone();
    let cmd = r.config.cmd.clone().unwrap_or_default();
    Ok(Json(json!({
        "ID": r.id,
        "Running": r.running,
        "ExitCode": r.exit_code,
        "ProcessConfig": {
            "tty": r.config.tty.unwrap_or(false),
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.iter().skip(1).cloned().collect::<Vec<_>>(),
            "privileged": r.config.privileged.unwrap_or(false),
            "user": r.config.user.clone().unwrap_or_default(),
        },
        "OpenStdin": r.config.attach_stdin.unwrap_or(false),
        "OpenStderr": r.config.attach_stderr.unwrap_or(false),
        "OpenStdout": r.config.attach_stdout.unwrap_or(false),
        "CanRemove": false,
        "ContainerID": r.container_id,
        "DetachKeys": "",
        "Pid": r.pid,
    })))
}
