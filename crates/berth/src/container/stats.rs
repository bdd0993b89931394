//! `stats`: live resource usage, computed from the daemon's stats documents as the docker CLI
//! computes it (CPU % from the delta to the previous reading, memory without the page cache).

use berth_api::{Client, Query};
use clap::Args;
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

const TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// One row, with the field names docker's templates use.
pub fn row(doc: &Value, no_trunc: bool) -> Value {
    use crate::format::units::{bytes_size, human_size};
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let cpu = &doc["cpu_stats"];
    let pre = &doc["precpu_stats"];
    let cpu_delta = f(&cpu["cpu_usage"]["total_usage"]) - f(&pre["cpu_usage"]["total_usage"]);
    let sys_delta = f(&cpu["system_cpu_usage"]) - f(&pre["system_cpu_usage"]);
    let online = cpu["online_cpus"]
        .as_f64()
        .filter(|n| *n > 0.0)
        .unwrap_or_else(|| {
            cpu["cpu_usage"]["percpu_usage"]
                .as_array()
                .map_or(1.0, |a| a.len() as f64)
        });
    let cpu_perc = if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * online * 100.0
    } else {
        0.0
    };
    let mem = &doc["memory_stats"];
    let usage = f(&mem["usage"]);
    // docker: usage minus the inactive page cache (v1: total_inactive_file, v2: inactive_file).
    let cache = ["total_inactive_file", "inactive_file"]
        .iter()
        .find_map(|k| mem["stats"][k].as_f64())
        .filter(|c| *c < usage)
        .unwrap_or(0.0);
    let mem_used = usage - cache;
    let limit = f(&mem["limit"]);
    let mem_perc = if limit > 0.0 {
        mem_used / limit * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(nets) = doc["networks"].as_object() {
        for n in nets.values() {
            rx += f(&n["rx_bytes"]);
            tx += f(&n["tx_bytes"]);
        }
    }
    let (mut read, mut write) = (0.0, 0.0);
    for e in doc["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += f(&e["value"]),
            Some("write") => write += f(&e["value"]),
            _ => {}
        }
    }
    let id = doc["id"].as_str().unwrap_or_default();
    let id = if no_trunc {
        id.to_string()
    } else {
        crate::format::short_id(id)
    };
    let name = doc["name"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches('/');
    json!({
        "ID": id, "Container": id, "Name": name,
        "CPUPerc": format!("{cpu_perc:.2}%"),
        "MemUsage": format!("{} / {}", bytes_size(mem_used), bytes_size(limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", human_size(rx), human_size(tx)),
        "BlockIO": format!("{} / {}", human_size(read), human_size(write)),
        "PIDs": doc["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

fn render(format: Option<&str>, rows: &[Value]) -> anyhow::Result<String> {
    let fmt = match format {
        None | Some("table") => TABLE,
        Some(f) => f,
    };
    if fmt == "json" {
        return Ok(rows
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join("\n"));
    }
    let headers = json!({
        "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    });
    Ok(crate::format::render_list(fmt, rows, &headers)?)
}

/// The containers to watch: the named ones, or every running (with -a every) container.
async fn targets(client: &Client, a: &StatsArgs) -> anyhow::Result<Vec<String>> {
    if !a.containers.is_empty() {
        return Ok(a.containers.clone());
    }
    let list = client
        .container_list(Query::new().flag("all", a.all))
        .await?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

async fn one(client: &Client, id: &str) -> anyhow::Result<Value> {
    let body = client.container_stats(id, false).await?.collect().await?;
    Ok(serde_json::from_slice(&body)?)
}

pub async fn stats(client: &Client, a: StatsArgs) -> anyhow::Result<i32> {
    use std::io::Write;
    let names = targets(client, &a).await?;
    // Unknown names fail up front, with the daemon's message, as docker does.
    for n in &a.containers {
        client.container_inspect_raw(n, false).await?;
    }
    if a.no_stream {
        let docs = futures_util::future::join_all(names.iter().map(|n| one(client, n))).await;
        let mut rows = Vec::new();
        for d in docs {
            rows.push(row(&d?, a.no_trunc));
        }
        print!("{}", with_newline(render(a.format.as_deref(), &rows)?));
        return Ok(0);
    }
    // Streaming: one stream per container, the screen redrawn each second.
    let latest = std::sync::Arc::new(std::sync::Mutex::new(
        names.iter().map(|_| Value::Null).collect::<Vec<_>>(),
    ));
    for (i, n) in names.iter().enumerate() {
        let mut docs = client
            .container_stats(n, true)
            .await?
            .json_values::<Value>();
        let latest = latest.clone();
        tokio::spawn(async move {
            while let Ok(Some(v)) = docs.next().await {
                latest.lock().unwrap_or_else(|p| p.into_inner())[i] = v;
            }
        });
    }
    let mut out = std::io::stdout();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let rows: Vec<Value> = latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|d| !d.is_null())
            .map(|d| row(d, a.no_trunc))
            .collect();
        let text = render(a.format.as_deref(), &rows)?;
        write!(out, "\x1b[2J\x1b[H{}", with_newline(text))?;
        out.flush()?;
    }
}

fn with_newline(mut s: String) -> String {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_like_the_docker_cli() {
        let doc = json!({
            "id": "0123456789abcdef0123", "name": "/web", "read": "2024-01-01T00:00:01Z",
            "cpu_stats": {"cpu_usage": {"total_usage": 300_000_000u64}, "system_cpu_usage": 4_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100_000_000u64}, "system_cpu_usage": 2_000_000_000u64},
            "memory_stats": {"usage": 12u64 << 20, "limit": 1u64 << 30, "stats": {"total_inactive_file": 2u64 << 20}},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 500}},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 4096}, {"op": "Write", "value": 8192}]},
            "pids_stats": {"current": 3},
        });
        let r = row(&doc, false);
        // (200M / 2000M) * 2 cpus * 100
        assert_eq!(r["CPUPerc"], "20.00%");
        assert_eq!(r["MemUsage"], "10MiB / 1GiB");
        assert_eq!(r["MemPerc"], "0.98%");
        assert_eq!(r["NetIO"], "1.5kB / 500B");
        assert_eq!(r["BlockIO"], "4.1kB / 8.19kB");
        assert_eq!(r["PIDs"], "3");
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Name"], "web");
    }
}
