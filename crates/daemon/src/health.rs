//! Health checks: the daemon runs a container's `HEALTHCHECK` (or `--health-*`) through the
//! shim's exec op, as Docker's health monitor does, and keeps the status shown by inspect
//! (`State.Health`) and ps (`Up 5 seconds (healthy)`).
//!
//! - The first probe runs one interval after the start (`start_interval` during the start
//!   period); the status is `starting` until a probe succeeds or `retries` consecutive probes
//!   fail (failures during the start period do not count).
//! - A probe that outlives its timeout counts as a failure with exit code -1.
//! - The log keeps the last 5 results, each output cut at 4096 bytes.

use crate::container::Container;
use crate::state::Shared;
use berth_api::models::{ExecConfig, HealthConfig};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: i64 = 3;
const MAX_LOG_ENTRIES: usize = 5;
const MAX_OUTPUT: usize = 4096;

#[derive(Debug, Clone)]
struct Probe {
    start: String,
    end: String,
    exit_code: i64,
    output: String,
}

#[derive(Debug, Clone)]
struct Health {
    status: &'static str,
    failing_streak: i64,
    log: VecDeque<Probe>,
    /// Which start of the container this monitor belongs to.
    started_at: String,
}

static HEALTH: Mutex<Option<HashMap<String, Health>>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut HashMap<String, Health>) -> T) -> T {
    let mut g = HEALTH.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// What a healthcheck config asks to run; `None` when there is no check (or `NONE`).
pub fn probe_command(hc: &HealthConfig) -> Option<Vec<String>> {
    let test = hc.test.as_ref()?;
    match test.first().map(String::as_str) {
        Some("CMD") if test.len() > 1 => Some(test[1..].to_vec()),
        Some("CMD-SHELL") if test.len() > 1 => {
            Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")])
        }
        _ => None,
    }
}

fn dur(ns: Option<i64>, default: Duration) -> Duration {
    match ns {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// Go's time.Duration formatting for whole and fractional seconds ("30s", "1.5s", "500ms").
fn go_duration(d: Duration) -> String {
    if d.as_secs() >= 1 || d.is_zero() {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{}s", s as u64)
        } else {
            format!("{s}s")
        }
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Start monitoring a container that has just started (or was re-adopted).
pub fn start(d: &Shared, c: &Arc<Container>) {
    let (hc, started_at) = {
        let r = c.lock();
        (r.config.healthcheck.clone(), r.state.started_at.clone())
    };
    let Some(hc) = hc else {
        with(|m| m.remove(&c.id));
        return;
    };
    let Some(cmd) = probe_command(&hc) else {
        with(|m| m.remove(&c.id));
        return;
    };
    // A re-adopted container (daemon restart) keeps the status of the same run.
    let path = d.paths.container_dir(&c.id).join(STATE_FILE);
    let health = load(&path)
        .filter(|h| h.started_at == started_at)
        .unwrap_or(Health {
            status: "starting",
            failing_streak: 0,
            log: VecDeque::new(),
            started_at: started_at.clone(),
        });
    with(|m| m.insert(c.id.clone(), health));
    let interval = dur(hc.interval, DEFAULT_INTERVAL);
    let timeout = dur(hc.timeout, DEFAULT_TIMEOUT);
    let start_period = dur(hc.start_period, Duration::ZERO);
    let start_interval = dur(hc.start_interval, DEFAULT_START_INTERVAL);
    let retries = hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
    let d = d.clone();
    let c = c.clone();
    tokio::spawn(async move {
        let began = tokio::time::Instant::now();
        loop {
            let in_start_period = began.elapsed() < start_period;
            let wait = if in_start_period {
                start_interval
            } else {
                interval
            };
            tokio::time::sleep(wait).await;
            if !current(&c, &started_at) {
                return;
            }
            let in_start_period = began.elapsed() < start_period;
            let probe = run_probe(&d, &c, &cmd, timeout).await;
            if !current(&c, &started_at) {
                return;
            }
            with(|m| {
                let Some(h) = m.get_mut(&c.id) else { return };
                if h.started_at != started_at {
                    return;
                }
                if probe.exit_code == 0 {
                    h.status = "healthy";
                    h.failing_streak = 0;
                } else if !in_start_period {
                    h.failing_streak += 1;
                    if h.failing_streak >= retries {
                        h.status = "unhealthy";
                    }
                }
                h.log.push_back(probe);
                while h.log.len() > MAX_LOG_ENTRIES {
                    h.log.pop_front();
                }
                save(&path, h);
            });
        }
    });
}

/// Where a container's health survives a daemon restart (in its container dir).
const STATE_FILE: &str = "health.json";

fn probe_json(p: &Probe) -> Value {
    json!({"Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output})
}

fn save(path: &std::path::Path, h: &Health) {
    let v = json!({
        "Status": h.status,
        "FailingStreak": h.failing_streak,
        "Log": h.log.iter().map(probe_json).collect::<Vec<_>>(),
        "StartedAt": h.started_at,
    });
    if let Err(e) = crate::paths::write_atomic(path, v.to_string().as_bytes(), false) {
        tracing::debug!("saving {}: {e}", path.display());
    }
}

fn load(path: &std::path::Path) -> Option<Health> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let status = match v["Status"].as_str()? {
        "healthy" => "healthy",
        "unhealthy" => "unhealthy",
        _ => "starting",
    };
    let log = v["Log"]
        .as_array()?
        .iter()
        .map(|p| Probe {
            start: p["Start"].as_str().unwrap_or("").to_string(),
            end: p["End"].as_str().unwrap_or("").to_string(),
            exit_code: p["ExitCode"].as_i64().unwrap_or(0),
            output: p["Output"].as_str().unwrap_or("").to_string(),
        })
        .collect();
    Some(Health {
        status,
        failing_streak: v["FailingStreak"].as_i64().unwrap_or(0),
        log,
        started_at: v["StartedAt"].as_str()?.to_string(),
    })
}

/// Whether the container still runs the start this monitor was made for.
fn current(c: &Container, started_at: &str) -> bool {
    let r = c.lock();
    r.state.status.is_running() && r.state.started_at == started_at && !c.lifecycle.borrow().removed
}

async fn run_probe(d: &Shared, c: &Container, cmd: &[String], timeout: Duration) -> Probe {
    let start = crate::container::now_rfc3339();
    let result = tokio::time::timeout(timeout, exec_capture(d, &c.id, cmd)).await;
    let (exit_code, output) = match result {
        Ok(Ok(x)) => x,
        Ok(Err(msg)) => (-1, msg),
        Err(_) => (
            -1,
            format!("Health check exceeded timeout ({})", go_duration(timeout)),
        ),
    };
    Probe {
        start,
        end: crate::container::now_rfc3339(),
        exit_code,
        output,
    }
}

/// Run `cmd` in the container through the shim; its exit code and (multiplexed) output.
async fn exec_capture(d: &Shared, id: &str, cmd: &[String]) -> Result<(i64, String), String> {
    let cfg = ExecConfig {
        cmd: Some(cmd.to_vec()),
        ..Default::default()
    };
    let rootfs = d
        .images
        .snapshots()
        .container(id)
        .map_err(|e| e.to_string())?
        .merged;
    let process = crate::exec::process_for(d, id, &cfg, &rootfs).map_err(|e| e.message)?;
    let socket = d.paths.shim_socket(id);
    let req = crate::shim::exec_request(process, false, false).map_err(|e| e.message)?;
    let (answer, mut stream) = match crate::shim::request(&socket, &req).await {
        Ok(x) => x,
        // As Docker: a probe that cannot start fails with the runtime's message.
        Err(e) => {
            return Ok((
                if e.message.contains("not found") {
                    127
                } else {
                    126
                },
                e.message,
            ))
        }
    };
    let pid = answer.get("pid").and_then(Value::as_i64).unwrap_or(0);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let output = demux(&raw);
    let status = crate::shim::call(
        &socket,
        crate::shim::Request::ExecStatus { pid: pid as i32 },
    )
    .await
    .map_err(|e| e.message)?;
    let code = status
        .get("exit_code")
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    Ok((code, output))
}

/// The payload of Docker's multiplexed stream, at most 4096 bytes.
fn demux(mut raw: &[u8]) -> String {
    let mut out = Vec::new();
    while raw.len() >= 8 {
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let end = (8 + len).min(raw.len());
        out.extend_from_slice(&raw[8..end]);
        raw = &raw[end..];
    }
    out.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&out).into_owned()
}

/// `State.Health` for inspect, when the container has a health check.
pub fn inspect_json(id: &str) -> Option<Value> {
    with(|m| {
        m.get(id).map(|h| {
            json!({
                "Status": h.status,
                "FailingStreak": h.failing_streak,
                "Log": h.log.iter().map(|p| json!({
                    "Start": p.start, "End": p.end, "ExitCode": p.exit_code, "Output": p.output,
                })).collect::<Vec<_>>(),
            })
        })
    })
}

/// The suffix of ps's Status: "(healthy)", "(unhealthy)", "(health: starting)".
pub fn status_suffix(id: &str) -> Option<String> {
    with(|m| {
        m.get(id).map(|h| match h.status {
            "starting" => "(health: starting)".to_string(),
            s => format!("({s})"),
        })
    })
}

/// Forget a removed container.
pub fn forget(id: &str) {
    with(|m| m.remove(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_commands() {
        let hc = |t: &[&str]| HealthConfig {
            test: Some(t.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert_eq!(probe_command(&hc(&["NONE"])), None);
        assert_eq!(probe_command(&hc(&[])), None);
        assert_eq!(
            probe_command(&hc(&["CMD", "true", "x"])),
            Some(vec!["true".into(), "x".into()])
        );
        assert_eq!(
            probe_command(&hc(&["CMD-SHELL", "test -f /x"])),
            Some(vec!["/bin/sh".into(), "-c".into(), "test -f /x".into()])
        );
    }

    #[test]
    fn demux_and_durations() {
        let mut raw = vec![1, 0, 0, 0, 0, 0, 0, 3];
        raw.extend_from_slice(b"ok\n");
        raw.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        raw.extend_from_slice(b"e\n");
        assert_eq!(demux(&raw), "ok\ne\n");
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
    }
}
