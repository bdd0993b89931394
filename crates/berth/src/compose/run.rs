//! `compose run` (a one-off container of a service, its dependencies started first) and
//! `compose exec` (a command in a service's running container), on the CLI's own
//! attach/exec clients.

use std::sync::Arc;

use berth_api::Client;
use berth_compose::Project;
use serde_json::json;

use super::engine;
use super::progress::Progress;
use super::spec::{self, Instance};
use super::up::{self, UpOptions};
use crate::container::exec::{exec as exec_cmd, ExecArgs};
use crate::container::run::{start, StartArgs};
use crate::container::stdio;

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub detach: bool,
    pub rm: bool,
    pub name: Option<String>,
    pub env: Vec<String>,
    pub entrypoint: Option<String>,
    pub no_tty: bool,
    pub no_deps: bool,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub labels: Vec<String>,
    pub service_ports: bool,
    pub volumes: Vec<String>,
    pub build: bool,
}

pub async fn run(
    client: &Client,
    p: &Arc<Project>,
    service: &str,
    command: &[String],
    o: RunOptions,
) -> anyhow::Result<i32> {
    anyhow::ensure!(
        p.model["services"].get(service).is_some(),
        "no such service: {service}"
    );
    // The dependencies first (not the service itself).
    let deps: Vec<String> = p.model["services"][service]["depends_on"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if !o.no_deps && !deps.is_empty() {
        let progress = Progress::new("Running");
        up::converge(
            client,
            p,
            &UpOptions {
                services: deps.clone(),
                ..Default::default()
            },
            &progress,
        )
        .await?;
    }
    // The service's image (built or pulled), but no container of its own.
    let upo = UpOptions {
        build: if o.build {
            up::BuildPolicy::Always
        } else {
            up::BuildPolicy::Missing
        },
        ..Default::default()
    };
    up::ensure_image(client, p, service, &upo, &Progress::new("Running")).await?;

    let name = o
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{service}-run-{}", p.name, &random_hex()[..12]));
    let mut body = spec::create_body(
        p,
        service,
        &Instance {
            number: 1,
            name: &name,
            oneoff: true,
            publish_ports: o.service_ports,
        },
    )?;
    if !command.is_empty() {
        body["Cmd"] = json!(command);
    }
    if let Some(ep) = &o.entrypoint {
        let words = berth_compose::load::shell_split(ep).map_err(anyhow::Error::msg)?;
        body["Entrypoint"] = json!(words);
        if command.is_empty() {
            body["Cmd"] = json!([]);
        }
    }
    if let Some(env) = body["Env"].as_array_mut() {
        for e in &o.env {
            let e = if e.contains('=') {
                e.clone()
            } else {
                match std::env::var(e) {
                    Ok(v) => format!("{e}={v}"),
                    Err(_) => continue,
                }
            };
            let key = e.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.as_str().and_then(|x| x.split('=').next()) != Some(&key));
            env.push(json!(e));
        }
    }
    if let Some(labels) = body["Labels"].as_object_mut() {
        for l in &o.labels {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.into(), json!(v));
        }
        labels.insert(spec::LABEL_NUMBER.into(), json!("1"));
    }
    if let Some(u) = &o.user {
        body["User"] = json!(u);
    }
    if let Some(w) = &o.workdir {
        body["WorkingDir"] = json!(w);
    }
    for v in &o.volumes {
        let parts: Vec<&str> = v.splitn(3, ':').collect();
        if parts.len() >= 2 {
            let src = if parts[0].starts_with('.') {
                p.working_dir.join(parts[0]).display().to_string()
            } else {
                parts[0].to_string()
            };
            let typ = if src.starts_with('/') {
                "bind"
            } else {
                "volume"
            };
            if let Some(m) = body["HostConfig"]["Mounts"].as_array_mut() {
                m.push(json!({"Type": typ, "Source": src, "Target": parts[1],
                    "ReadOnly": parts.get(2) == Some(&"ro")}));
            }
        }
    }
    let tty = !o.no_tty && !o.detach && stdio::stdin_is_tty();
    body["Tty"] = json!(tty);
    let interactive = !o.detach;
    body["OpenStdin"] = json!(interactive);
    body["AttachStdin"] = json!(interactive);
    body["StdinOnce"] = json!(interactive);
    if o.rm {
        body["HostConfig"]["AutoRemove"] = json!(false);
    }
    let id = up::create_with_body(client, &name, &body).await?;
    if o.detach {
        client.container_start(&id, None).await?;
        println!("{name}");
        return Ok(0);
    }
    let code = start(
        client,
        StartArgs {
            attach: true,
            interactive,
            detach_keys: None,
            containers: vec![id.clone()],
        },
    )
    .await;
    if o.rm {
        let _ = client.container_remove(&id, true, true, false).await;
    }
    code
}

fn random_hex() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    pub detach: bool,
    pub no_tty: bool,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub privileged: bool,
    pub index: u32,
}

pub async fn exec(
    client: &Client,
    p: &Project,
    service: &str,
    command: &[String],
    o: ExecOptions,
) -> anyhow::Result<i32> {
    anyhow::ensure!(
        p.model["services"].get(service).is_some(),
        "no such service: {service}"
    );
    let cs = engine::service_containers(client, &p.name, service).await?;
    let c = cs
        .iter()
        .find(|c| engine::number_of(c) == o.index && c["State"].as_str() == Some("running"))
        .ok_or_else(|| anyhow::anyhow!("service \"{service}\" is not running"))?;
    let mut args = vec![engine::name_of(c).to_string()];
    args.extend(command.iter().cloned());
    exec_cmd(
        client,
        ExecArgs {
            detach: o.detach,
            detach_keys: None,
            env: o.env,
            env_file: Vec::new(),
            interactive: !o.detach,
            privileged: o.privileged,
            tty: !o.no_tty && !o.detach && stdio::stdin_is_tty(),
            user: o.user,
            workdir: o.workdir,
            args,
        },
    )
    .await
}
