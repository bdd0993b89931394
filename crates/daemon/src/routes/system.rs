//! `/_ping`, `/version`, `/info`, `/events`.

use crate::container::Status;
use crate::state::Shared;
use crate::API_VERSION;
use axum::body::Body;
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
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
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
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "DockerRootDir": d.paths.data_root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": hostname, "Labels": [], "ExperimentalBuild": false, "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {runtime.clone(): {"path": runtime}}, "DefaultRuntime": runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true, "Isolation": "", "InitBinary": "", "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": null,
    }))
}

/// The event stream is open but quiet: berth does not publish events yet.
pub async fn events() -> Response {
    let s = futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(s),
    )
        .into_response()
}
