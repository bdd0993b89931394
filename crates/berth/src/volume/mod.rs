//! `berth volume create|ls|inspect|rm|prune`, with docker's flags, columns and output.

use std::collections::BTreeMap;

use berth_api::query::path_segment;
use berth_api::{Body, Client, Method, Query};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::errors::{describe, ExitStatus};
use crate::format::{self, units};
use crate::inspect;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum VolumeManagement {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", hide = true)]
    pub name_flag: Option<String>,
    /// [VOLUME]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

pub async fn run(client: &Client, cmd: VolumeManagement) -> anyhow::Result<i32> {
    match cmd {
        VolumeManagement::Create(a) => create(client, a).await,
        VolumeManagement::Ls(a) => ls(client, a).await,
        VolumeManagement::Inspect(a) => {
            inspect::inspect_kinds(
                client,
                &[inspect::Kind::Volume],
                &a.volumes,
                a.format.as_deref(),
                false,
            )
            .await
        }
        VolumeManagement::Rm(a) => rm(client, a).await,
        VolumeManagement::Prune(a) => prune(client, a).await,
    }
}

fn key_values(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

async fn create(client: &Client, a: CreateArgs) -> anyhow::Result<i32> {
    let name = match (&a.name, &a.name_flag) {
        (Some(n), Some(f)) if n != f => {
            return Err(ExitStatus {
                code: 1,
                message: Some(
                    "conflicting options: cannot specify a volume-name through both --name and as a positional arg"
                        .into(),
                ),
            }
            .into())
        }
        (Some(n), _) | (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    };
    let mut body = json!({"Driver": a.driver});
    if let Some(n) = &name {
        body["Name"] = json!(n);
    }
    if !a.opt.is_empty() {
        body["DriverOpts"] = json!(key_values(&a.opt));
    }
    if !a.label.is_empty() {
        body["Labels"] = json!(key_values(&a.label));
    }
    let v: Value = client
        .post_json("/volumes/create", Body::json(&body)?)
        .await?;
    println!("{}", v["Name"].as_str().unwrap_or_default());
    Ok(0)
}

fn row(v: &Value) -> Value {
    let labels = v["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"],
        "Mountpoint": v["Mountpoint"], "Labels": labels, "CreatedAt": v["CreatedAt"],
        "Links": "N/A", "Size": "N/A",
    })
}

async fn ls(client: &Client, a: LsArgs) -> anyhow::Result<i32> {
    let q = Query::new().opt("filters", crate::filters::to_json(&a.filter)?.as_deref());
    let resp: Value = client.get_json(&format!("/volumes{}", q.encode())).await?;
    let mut vols: Vec<Value> = resp["Volumes"].as_array().cloned().unwrap_or_default();
    vols.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    for w in resp["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            eprintln!("{w}");
        }
    }
    if a.quiet && a.format.is_none() {
        for v in &vols {
            println!("{}", v["Name"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let rows: Vec<Value> = vols.iter().map(row).collect();
    let headers = json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "CreatedAt": "CREATED", "Links": "LINKS", "Size": "SIZE"});
    let fmt = a
        .format
        .unwrap_or_else(|| "table {{.Driver}}\t{{.Name}}".into());
    print!("{}", format::render_list(&fmt, &rows, &headers)?);
    Ok(0)
}

async fn rm(client: &Client, a: RmArgs) -> anyhow::Result<i32> {
    let mut errors = Vec::new();
    for name in &a.volumes {
        let q = Query::new().flag("force", a.force);
        let path = format!("/volumes/{}{}", path_segment(name), q.encode());
        match client.call(Method::DELETE, &path, Body::Empty).await {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(describe(&e.into())),
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(ExitStatus {
            code: 1,
            message: Some(errors.join("\n")),
        }
        .into())
    }
}

async fn prune(client: &Client, a: PruneArgs) -> anyhow::Result<i32> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all local volumes not used by at least one container."
        } else {
            "WARNING! This will remove anonymous local volumes not used by at least one container."
        };
        eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)?;
        if !matches!(line.trim(), "y" | "Y") {
            return Ok(0);
        }
    }
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("all=true".into());
    }
    let q = Query::new().opt("filters", crate::filters::to_json(&filters)?.as_deref());
    let resp: Value = client
        .post_json(&format!("/volumes/prune{}", q.encode()), Body::Empty)
        .await?;
    let deleted: Vec<&str> = resp["VolumesDeleted"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for d in deleted {
            println!("{d}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        units::human_size(resp["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
    Ok(0)
}
