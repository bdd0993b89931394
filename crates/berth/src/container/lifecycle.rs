//! Commands that act on existing containers by name: stop, kill, restart, rm, wait, rename,
//! pause, unpause, top, port, update. Like docker, each prints the name it was given and
//! reports failures per container, exiting 1 if any failed.

use berth_api::Client;
use clap::Args;
use serde_json::json;

use crate::errors::{describe, ExitStatus};
use crate::format::units::parse_bytes;

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "timeout", visible_alias = "time")]
    pub timeout: Option<i64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainersArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    pub container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS quota
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs `op` for each name, printing `ok(name)` or the error; 1 if any failed.
async fn for_each<F, Fut, T>(
    names: &[String],
    mut op: F,
    mut ok: impl FnMut(&str, T),
) -> anyhow::Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, berth_api::ApiError>>,
{
    let mut failed = false;
    for name in names {
        match op(name.clone()).await {
            Ok(v) => ok(name, v),
            Err(e) => {
                eprintln!("{}", describe(&e.into()));
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitStatus::code(1).into());
    }
    Ok(0)
}

fn print_name<T>(name: &str, _: T) {
    println!("{name}");
}

pub async fn stop(client: &Client, a: StopArgs) -> anyhow::Result<i32> {
    let sig = a.signal.as_deref();
    for_each(
        &a.containers,
        |c| async move { client.container_stop(&c, sig, a.timeout).await },
        print_name,
    )
    .await
}

pub async fn restart(client: &Client, a: StopArgs) -> anyhow::Result<i32> {
    let sig = a.signal.as_deref();
    for_each(
        &a.containers,
        |c| async move { client.container_restart(&c, sig, a.timeout).await },
        print_name,
    )
    .await
}

pub async fn kill(client: &Client, a: KillArgs) -> anyhow::Result<i32> {
    let sig = a.signal.as_deref();
    for_each(
        &a.containers,
        |c| async move { client.container_kill(&c, sig).await },
        print_name,
    )
    .await
}

pub async fn rm(client: &Client, a: RmArgs) -> anyhow::Result<i32> {
    for_each(
        &a.containers,
        |c| async move {
            client
                .container_remove(&c, a.force, a.volumes, a.link)
                .await
        },
        print_name,
    )
    .await
}

pub async fn pause(client: &Client, a: ContainersArgs) -> anyhow::Result<i32> {
    for_each(
        &a.containers,
        |c| async move { client.container_pause(&c).await },
        print_name,
    )
    .await
}

pub async fn unpause(client: &Client, a: ContainersArgs) -> anyhow::Result<i32> {
    for_each(
        &a.containers,
        |c| async move { client.container_unpause(&c).await },
        print_name,
    )
    .await
}

pub async fn wait(client: &Client, a: ContainersArgs) -> anyhow::Result<i32> {
    for_each(
        &a.containers,
        |c| async move { client.container_wait(&c, None).await },
        |_, r| println!("{}", r.status_code),
    )
    .await
}

pub async fn rename(client: &Client, a: RenameArgs) -> anyhow::Result<i32> {
    client.container_rename(&a.container, &a.new_name).await?;
    Ok(0)
}

pub async fn top(client: &Client, a: TopArgs) -> anyhow::Result<i32> {
    let args = a.ps_args.join(" ");
    let top = client
        .container_top(
            &a.container,
            Some(&args).filter(|s| !s.is_empty()).map(|s| s.as_str()),
        )
        .await?;
    let mut lines = vec![top.titles.unwrap_or_default().join("\t")];
    for row in top.processes.unwrap_or_default() {
        lines.push(row.join("\t"));
    }
    // docker's top uses a tabwriter with padding 3 and no minimum width.
    print!("{}", crate::format::tabwrite(&lines));
    Ok(0)
}

pub async fn port(client: &Client, a: PortArgs) -> anyhow::Result<i32> {
    let info = client.container_inspect(&a.container).await?;
    let ports = info
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default();
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort_by_key(|k| {
        (
            k.split('/').next().and_then(|p| p.parse::<u32>().ok()),
            (*k).clone(),
        )
    });
    let mut found = false;
    for key in keys {
        if want.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in ports[key].iter().flatten() {
            found = true;
            let ip = b
                .host_ip
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into());
            let hp = b.host_port.clone().unwrap_or_default();
            let addr = if ip.contains(':') {
                format!("[{ip}]:{hp}")
            } else {
                format!("{ip}:{hp}")
            };
            if want.is_some() {
                println!("{addr}");
            } else {
                println!("{key} -> {addr}");
            }
        }
    }
    if let (Some(p), false) = (&a.port, found) {
        // docker's wording, with the port as typed.
        anyhow::bail!("Error: No public port '{p}' published for {}", a.container);
    }
    Ok(0)
}

pub async fn update(client: &Client, a: UpdateArgs) -> anyhow::Result<i32> {
    let mut body = serde_json::Map::new();
    let mem = |s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|v| if v == "-1" { Some(-1) } else { parse_bytes(v) })
            .map(|o| o.ok_or_else(|| anyhow::anyhow!("invalid size")))
            .transpose()
    };
    if let Some(m) = mem(&a.memory)? {
        body.insert("Memory".into(), json!(m));
    }
    if let Some(m) = mem(&a.memory_swap)? {
        body.insert("MemorySwap".into(), json!(m));
    }
    if let Some(m) = mem(&a.memory_reservation)? {
        body.insert("MemoryReservation".into(), json!(m));
    }
    if let Some(c) = a.cpus {
        body.insert("NanoCpus".into(), json!((c * 1e9) as i64));
    }
    for (k, v) in [
        ("CpuShares", a.cpu_shares),
        ("CpuPeriod", a.cpu_period),
        ("CpuQuota", a.cpu_quota),
        ("PidsLimit", a.pids_limit),
    ] {
        if let Some(v) = v {
            body.insert(k.into(), json!(v));
        }
    }
    if let Some(c) = &a.cpuset_cpus {
        body.insert("CpusetCpus".into(), json!(c));
    }
    if let Some(c) = &a.cpuset_mems {
        body.insert("CpusetMems".into(), json!(c));
    }
    if let Some(r) = &a.restart {
        let (name, max) = r.split_once(':').unwrap_or((r.as_str(), "0"));
        body.insert(
            "RestartPolicy".into(),
            json!({"Name": name, "MaximumRetryCount": max.parse::<i64>().unwrap_or(0)}),
        );
    }
    let body = serde_json::Value::Object(body);
    let body = &body;
    for_each(
        &a.containers,
        |c| async move { client.container_update(&c, body).await },
        |name, resp| {
            for w in resp.warnings.unwrap_or_default() {
                eprintln!("WARNING: {w}");
            }
            println!("{name}");
        },
    )
    .await
}
