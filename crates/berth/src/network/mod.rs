//! `berth network create|ls|inspect|rm|connect|disconnect|prune`, with docker's flags and output.

use std::collections::BTreeMap;

use berth_api::query::path_segment;
use berth_api::{Body, Client, Method, Query};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::errors::{describe, ExitStatus};
use crate::format;
use crate::inspect;

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum NetworkManagement {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long)]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long)]
    pub attachable: bool,
    /// Set metadata on a network
    #[arg(long)]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Enable or disable IPv6 address assignment
    #[arg(long)]
    pub ipv6: bool,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    pub ip: Option<String>,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long)]
    pub force: bool,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

pub async fn run(client: &Client, cmd: NetworkManagement) -> anyhow::Result<i32> {
    match cmd {
        NetworkManagement::Create(a) => create(client, a).await,
        NetworkManagement::Ls(a) => ls(client, a).await,
        NetworkManagement::Inspect(a) => {
            inspect::inspect_kinds(
                client,
                &[inspect::Kind::Network],
                &a.networks,
                a.format.as_deref(),
                false,
            )
            .await
        }
        NetworkManagement::Rm(a) => rm(client, a).await,
        NetworkManagement::Connect(a) => {
            let mut ep = json!({});
            if !a.alias.is_empty() {
                ep["Aliases"] = json!(a.alias);
            }
            if let Some(ip) = &a.ip {
                ep["IPAMConfig"] = json!({"IPv4Address": ip});
            }
            let body = json!({"Container": a.container, "EndpointConfig": ep});
            client
                .call(
                    Method::POST,
                    &format!("/networks/{}/connect", path_segment(&a.network)),
                    Body::json(&body)?,
                )
                .await?;
            Ok(0)
        }
        NetworkManagement::Disconnect(a) => {
            let body = json!({"Container": a.container, "Force": a.force});
            client
                .call(
                    Method::POST,
                    &format!("/networks/{}/disconnect", path_segment(&a.network)),
                    Body::json(&body)?,
                )
                .await?;
            Ok(0)
        }
        NetworkManagement::Prune(a) => prune(client, a).await,
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
    let mut configs = Vec::new();
    for (i, s) in a.subnet.iter().enumerate() {
        let mut c = json!({"Subnet": s});
        if let Some(g) = a.gateway.get(i) {
            c["Gateway"] = json!(g);
        }
        if let Some(r) = a.ip_range.get(i) {
            c["IPRange"] = json!(r);
        }
        configs.push(c);
    }
    if a.subnet.is_empty() && (!a.gateway.is_empty() || !a.ip_range.is_empty()) {
        return Err(ExitStatus {
            code: 1,
            message: Some("every ip-range or gateway must have a corresponding subnet".into()),
        }
        .into());
    }
    let body = json!({
        "Name": a.name,
        "Driver": a.driver,
        "Internal": a.internal,
        "Attachable": a.attachable,
        "EnableIPv6": a.ipv6,
        "IPAM": {"Driver": "default", "Config": configs, "Options": {}},
        "Labels": key_values(&a.label),
        "Options": key_values(&a.opt),
    });
    let v: Value = client
        .post_json("/networks/create", Body::json(&body)?)
        .await?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

async fn ls(client: &Client, a: LsArgs) -> anyhow::Result<i32> {
    let q = Query::new().opt("filters", crate::filters::to_json(&a.filter)?.as_deref());
    let mut nets: Vec<Value> = client.get_json(&format!("/networks{}", q.encode())).await?;
    nets.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    let short = |v: &Value| {
        let id = v["Id"].as_str().unwrap_or_default();
        if a.no_trunc {
            id.to_string()
        } else {
            id.chars().take(12).collect()
        }
    };
    if a.quiet && a.format.is_none() {
        for v in &nets {
            println!("{}", short(v));
        }
        return Ok(0);
    }
    let rows: Vec<Value> = nets
        .iter()
        .map(|v| {
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
                "ID": short(v), "Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"],
                "IPv6": v["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
                "IPv4": "true",
                "Internal": v["Internal"].as_bool().unwrap_or(false).to_string(),
                "Labels": labels, "CreatedAt": v["Created"],
            })
        })
        .collect();
    let headers = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv6": "IPV6", "IPv4": "IPV4", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"});
    let fmt = a
        .format
        .unwrap_or_else(|| "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".into());
    print!("{}", format::render_list(&fmt, &rows, &headers)?);
    Ok(0)
}

async fn rm(client: &Client, a: RmArgs) -> anyhow::Result<i32> {
    let mut errors = Vec::new();
    for name in &a.networks {
        let path = format!("/networks/{}", path_segment(name));
        match client.call(Method::DELETE, &path, Body::Empty).await {
            Ok(()) => println!("{name}"),
            Err(e) => {
                let msg = describe(&e.into());
                if !(a.force && msg.contains("not found")) {
                    errors.push(msg);
                }
            }
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
        eprint!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)?;
        if !matches!(line.trim(), "y" | "Y") {
            return Ok(0);
        }
    }
    let q = Query::new().opt("filters", crate::filters::to_json(&a.filter)?.as_deref());
    let resp: Value = client
        .post_json(&format!("/networks/prune{}", q.encode()), Body::Empty)
        .await?;
    let deleted: Vec<&str> = resp["NetworksDeleted"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for d in deleted {
            println!("{d}");
        }
    }
    Ok(0)
}
