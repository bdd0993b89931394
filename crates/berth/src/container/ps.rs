//! `ps` / `container ls`.

use berth_api::models::ContainerSummary;
use berth_api::{Client, Query};
use clap::Args;
use serde_json::{json, Value};

use crate::format::{self, ellipsis, short_id, units};

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_negative_numbers = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("State", "STATE"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Platform", "PLATFORM"),
];

pub fn headers() -> Value {
    Value::Object(
        HEADERS
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    )
}

pub async fn ps(client: &Client, a: PsArgs) -> anyhow::Result<i32> {
    let limit = if a.latest { 1 } else { a.last };
    let q = Query::new()
        .flag("all", a.all)
        .opt("filters", crate::filters::to_json(&a.filter)?.as_deref())
        .opt("limit", (limit > 0).then(|| limit.to_string()).as_deref())
        .flag(
            "size",
            a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size")),
        );
    let list = client.container_list(q).await?;
    if a.quiet && a.format.is_none() {
        for c in &list {
            let id = c.id.clone().unwrap_or_default();
            println!("{}", if a.no_trunc { id } else { short_id(&id) });
        }
        return Ok(0);
    }
    let fmt = a.format.clone().unwrap_or_else(|| {
        let mut f = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
        if a.size {
            f.push_str("\t{{.Size}}");
        }
        f
    });
    let rows: Vec<Value> = list.iter().map(|c| row(c, a.no_trunc)).collect();
    print!("{}", format::render_list(&fmt, &rows, &headers())?);
    Ok(0)
}

/// docker's container-context fields, pre-rendered as strings.
pub fn row(c: &ContainerSummary, no_trunc: bool) -> Value {
    let id = c.id.clone().unwrap_or_default();
    let command = c.command.clone().unwrap_or_default();
    let command = if no_trunc {
        format!("\"{command}\"")
    } else {
        format!("\"{}\"", ellipsis(&command, 20))
    };
    let names: Vec<String> = c
        .names
        .iter()
        .flatten()
        .map(|n| n.trim_start_matches('/').to_string())
        // Link aliases ("/other/alias") are not names of this container.
        .filter(|n| no_trunc || !n.contains('/'))
        .collect();
    let created = c.created.unwrap_or(0);
    let size = match (c.size_rw, c.size_root_fs) {
        (None, None) => String::new(),
        (rw, root) => {
            let rw = units::human_size(rw.unwrap_or(0) as f64);
            match root {
                Some(r) if r > 0 => format!("{rw} (virtual {})", units::human_size(r as f64)),
                _ => rw,
            }
        }
    };
    let mut labels: Vec<String> = c
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.sort();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .flatten()
        .map(|m| {
            let n = m
                .name
                .clone()
                .filter(|s| !s.is_empty())
                .or(m.source.clone())
                .unwrap_or_default();
            if no_trunc {
                n
            } else {
                ellipsis(&n, 15)
            }
        })
        .collect();
    let mut networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let image = c.image.clone().unwrap_or_default();
    let image = if !no_trunc && image.starts_with("sha256:") {
        short_id(&image)
    } else {
        image
    };
    json!({
        "ID": if no_trunc { id } else { short_id(&id) },
        "Image": image,
        "Command": command,
        "CreatedAt": created_at(created),
        "RunningFor": units::ago(created),
        "Ports": ports(c),
        "Status": c.status.clone().unwrap_or_default(),
        "Size": size,
        "Names": names.join(","),
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": networks.join(","),
        "State": c.state.map(|s| s.to_string()).unwrap_or_default(),
        "LocalVolumes": c.mounts.iter().flatten().filter(|m| m.driver.as_deref() == Some("local")).count().to_string(),
        "Platform": "",
    })
}

/// Go's `time.Time.String()` for a unix time, in UTC.
pub fn created_at(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

/// docker's port column: "0.0.0.0:8080->80/tcp, 443/tcp".
fn ports(c: &ContainerSummary) -> String {
    let mut ports = c.ports.clone().unwrap_or_default();
    ports.sort_by_key(|p| {
        (
            p.private_port,
            p.public_port.unwrap_or(0),
            p.ip.clone().unwrap_or_default(),
        )
    });
    let parts: Vec<String> = ports
        .iter()
        .map(|p| {
            let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
            match p.public_port {
                Some(public) if public > 0 => {
                    let ip = p.ip.clone().unwrap_or_else(|| "0.0.0.0".into());
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip
                    };
                    format!("{ip}:{public}->{}/{proto}", p.private_port)
                }
                _ => format!("{}/{proto}", p.private_port),
            }
        })
        .collect();
    let mut seen = Vec::new();
    for p in parts {
        if !seen.contains(&p) {
            seen.push(p);
        }
    }
    seen.join(", ")
}
