//! `/_ping`, `/version`, `/info`, `/events`.

use crate::container::Status;
use crate::state::Shared;
use crate::API_VERSION;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub async fn ping() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
        ],
        "OK",
    )
        .into_response()
}

/// The host's memory in bytes (MemTotal), as `/info` and an unlimited container's stats show it.
pub fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn kernel() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

pub async fn version() -> Json<Value> {
    let v = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine", "Version": v,
            "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": crate::MIN_API_VERSION, "Os": "linux", "Arch": "amd64", "KernelVersion": kernel()}
        }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": crate::MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "n/a (Rust)",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": kernel(),
        "BuildTime": "",
    }))
}

pub async fn info(State(d): State<Shared>) -> Json<Value> {
    let all = d.all();
    let count = |s: Status| all.iter().filter(|c| c.status() == s).count();
    let running = count(Status::Running);
    let paused = count(Status::Paused);
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let mem = host_memory();
    let runtime = match &d.runtime {
        crate::state::RuntimeChoice::Builtin => "builtin".to_string(),
        crate::state::RuntimeChoice::External(p) => p.display().to_string(),
    };
    Json(json!({
        "ID": "berth",
        "Containers": all.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": all.len() - running - paused,
        "Images": d.images.list().len(),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file"]},
        "MemoryLimit": true, "SwapLimit": false, "CpuCfsPeriod": true, "CpuCfsQuota": true,
        "CPUShares": true, "CPUSet": true, "PidsLimit": true, "IPv4Forwarding": true,
        "Debug": false, "NFd": 0, "NGoroutines": 0, "SystemTime": crate::container::now_rfc3339(),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": "1",
        "NEventsListener": 0, "KernelVersion": kernel(), "OperatingSystem": "linux", "OSVersion": "",
        "OSType": "linux", "Architecture": "x86_64", "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config_json(),
        "DockerRootDir": d.paths.data_root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": hostname, "Labels": [], "ExperimentalBuild": false, "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {runtime.clone(): {"path": runtime}}, "DefaultRuntime": runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true, "Isolation": "", "InitBinary": "", "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": null,
    }))
}

/// `/info`'s RegistryConfig as dockerd reports it: insecure CIDRs (loopback always), the
/// insecure hosts as non-secure index configs, and the mirrors.
fn registry_config_json() -> Value {
    let cfg = crate::routes::registry::registry_config();
    let mut cidrs = vec![json!("127.0.0.0/8"), json!("::1/128")];
    let mut index = serde_json::Map::new();
    for r in &cfg.insecure {
        if r.contains('/') {
            cidrs.push(json!(r));
        } else {
            index.insert(
                r.clone(),
                json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}),
            );
        }
    }
    index.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": cfg.mirrors, "Secure": true, "Official": true}),
    );
    json!({"IndexConfigs": index, "InsecureRegistryCIDRs": cidrs, "Mirrors": cfg.mirrors})
}

#[derive(serde::Deserialize)]
pub struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// `GET /events`: the history since `since`, then live events until `until` (or until the
/// client goes away), one JSON object per line.
pub async fn events(
    State(d): State<Shared>,
    axum::extract::Query(q): axum::extract::Query<EventsQuery>,
) -> Result<Response, crate::error::ApiError> {
    use crate::error::ApiError;
    use crate::events::{now_nanos, parse_time, EventFilter};
    let now = now_nanos();
    let since = q
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_time(s, now))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let until = q
        .until
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| parse_time(s, now))
        .transpose()
        .map_err(ApiError::bad_request)?;
    let filter = crate::query::parse_filters(q.filters.as_deref())
        .and_then(EventFilter::new)
        .map_err(ApiError::bad_request)?;
    // Docker replays history only when asked (`since`), or when `until` alone bounds it.
    let from = since.or(until.map(|_| 0));
    let (past, mut rx) = d.events.subscribe(from);
    let in_window = move |t: i64| until.is_none_or(|u| t <= u);
    let line = |e: &crate::events::Event| {
        let mut b = serde_json::to_vec(&e.to_json()).unwrap_or_default();
        b.push(b'\n');
        Ok::<_, std::io::Error>(axum::body::Bytes::from(b))
    };
    let deadline = until.map(|u| {
        let wait = std::time::Duration::from_nanos(u.saturating_sub(now).max(0) as u64);
        tokio::time::Instant::now() + wait
    });
    let body = super::produced_body(64, move |tx| async move {
        for e in past
            .iter()
            .filter(|e| in_window(e.time_nano) && filter.matches(e))
        {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        loop {
            let next = match deadline {
                Some(dl) => match tokio::time::timeout_at(dl, rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => rx.recv().await,
            };
            match next {
                Ok(e) => {
                    if !in_window(e.time_nano) {
                        return;
                    }
                    if filter.matches(&e) && tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                // A slow reader missed some: go on with what comes next, as dockerd does.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
