//! `GET /containers/{id}/stats`: Docker's stats JSON from the container's cgroup, its network
//! namespace's counters, and the host's CPU time, once or every second.

use crate::error::ApiResult;
use crate::query::bool_flag;
use crate::state::Shared;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use berth_runtime::cgroup_stats::CgroupStats;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Deserialize)]
pub struct StatsQuery {
    #[serde(default = "yes", deserialize_with = "bool_flag")]
    stream: bool,
    #[serde(default, rename = "one-shot", deserialize_with = "bool_flag")]
    one_shot: bool,
}

fn yes() -> bool {
    true
}

/// One reading: the cgroup's counters plus what is needed around them.
#[derive(Clone)]
struct Sample {
    at: String,
    cgroup: CgroupStats,
    system_cpu_ns: u64,
    networks: Value,
}

/// The host's total CPU time, from the `cpu` line of /proc/stat (USER_HZ ticks).
fn system_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum::<u64>()
                * 10_000_000
        })
        .unwrap_or(0)
}

/// Interface counters of the namespace `pid` lives in (loopback left out, as Docker does).
fn networks(pid: i64) -> Value {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return json!({});
    };
    let mut out = serde_json::Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 12 {
            continue;
        }
        out.insert(
            name.to_string(),
            json!({
                "rx_bytes": f[0], "rx_packets": f[1], "rx_errors": f[2], "rx_dropped": f[3],
                "tx_bytes": f[8], "tx_packets": f[9], "tx_errors": f[10], "tx_dropped": f[11],
            }),
        );
    }
    Value::Object(out)
}

fn sample(id: &str, pid: i64) -> Sample {
    let cgroup = berth_runtime::cgroups::Cgroup::new(&format!("/berth/{id}"))
        .map(|c| c.stats())
        .unwrap_or_default();
    Sample {
        at: crate::container::now_rfc3339(),
        cgroup,
        system_cpu_ns: system_cpu_ns(),
        networks: if pid > 0 { networks(pid) } else { json!({}) },
    }
}

fn cpu_json(s: Option<&Sample>, online: usize) -> Value {
    let Some(s) = s else {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                      "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
    };
    let c = &s.cgroup;
    json!({
        "cpu_usage": {
            "total_usage": c.cpu_total_ns,
            "percpu_usage": c.cpu_percpu_ns,
            "usage_in_kernelmode": c.cpu_system_ns,
            "usage_in_usermode": c.cpu_user_ns,
        },
        "system_cpu_usage": s.system_cpu_ns,
        "online_cpus": online,
        "throttling_data": {
            "periods": c.periods,
            "throttled_periods": c.throttled_periods,
            "throttled_time": c.throttled_time_ns,
        },
    })
}

fn blkio_json(list: &[berth_runtime::cgroup_stats::BlkioEntry]) -> Value {
    list.iter()
        .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
        .collect()
}

/// Docker's stats document for `now`, with `pre` as the previous reading.
fn document(name: &str, id: &str, now: &Sample, pre: Option<&Sample>) -> Value {
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    let c = &now.cgroup;
    let mut memory = json!({
        "usage": c.memory_usage,
        "max_usage": c.memory_max_usage,
        "failcnt": c.memory_failcnt,
        "stats": c.memory_stat,
        // An unlimited container is bounded by the host's memory, which is what Docker shows.
        "limit": c.memory_limit.unwrap_or_else(super::system::host_memory),
    });
    if c.memory_usage == 0 && c.memory_stat.is_empty() {
        memory = json!({});
    }
    let mut pids = json!({"current": c.pids_current});
    if let Some(l) = c.pids_limit {
        pids["limit"] = l.into();
    }
    json!({
        "read": now.at,
        "preread": pre.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), |p| p.at.clone()),
        "pids_stats": pids,
        "blkio_stats": {
            "io_service_bytes_recursive": blkio_json(&c.io_service_bytes),
            "io_serviced_recursive": blkio_json(&c.io_serviced),
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(Some(now), online),
        "precpu_stats": cpu_json(pre, online),
        "memory_stats": memory,
        "name": format!("/{name}"),
        "id": id,
        "networks": now.networks,
    })
}

/// Without `stream`, one document after a second reading (so CPU % can be computed), unless
/// `one-shot`. With it, a document every second until the client goes away or the container
/// is removed; a stopped container reports zeros, as Docker's does.
pub async fn stats(
    State(d): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Response> {
    let c = d.find(&id)?;
    let rec = c.get();
    let (id, name) = (rec.id.clone(), rec.name.clone());
    let read = {
        let c = c.clone();
        let id = id.clone();
        move || {
            let rec = c.get();
            let running = rec.state.status.is_running();
            let id = id.clone();
            async move {
                if running {
                    tokio::task::spawn_blocking(move || sample(&id, rec.state.pid))
                        .await
                        .ok()
                } else {
                    None
                }
            }
        }
    };
    let zero = |at: String| Sample {
        at,
        cgroup: CgroupStats::default(),
        system_cpu_ns: 0,
        networks: json!({}),
    };
    if !q.stream {
        let first = read().await;
        let (pre, now) = if q.one_shot {
            (None, first)
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            (first, read().await)
        };
        let now = now.unwrap_or_else(|| zero(crate::container::now_rfc3339()));
        let doc = document(&name, &id, &now, pre.as_ref());
        return Ok((
            [(header::CONTENT_TYPE, "application/json")],
            format!("{doc}\n"),
        )
            .into_response());
    }
    let lifecycle = c.clone();
    let body = super::produced_body(4, move |tx| async move {
        let mut pre: Option<Sample> = None;
        loop {
            if lifecycle.lifecycle.borrow().removed {
                return;
            }
            let now = read()
                .await
                .unwrap_or_else(|| zero(crate::container::now_rfc3339()));
            let doc = document(&name, &id, &now, pre.as_ref());
            if tx
                .send(Ok(format!("{doc}\n").into_bytes().into()))
                .await
                .is_err()
            {
                return;
            }
            pre = Some(now);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
