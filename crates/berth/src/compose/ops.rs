//! Commands on the containers a project already has: `start`, `stop`, `restart`, `kill`,
//! `rm`, `pause`, `unpause`, and the listings `ps`, `ls`, `images`, `top`, `port`.

use std::collections::{BTreeMap, HashMap};

use berth_api::{Client, Query};
use berth_compose::Project;
use serde_json::{json, Value};

use super::engine;
use super::progress::Progress;
use super::spec;
use crate::format::{self, units};

/// The project's containers of the named services (all when none), in dependency order
/// (reversed for stopping), without `run`'s one-offs unless asked.
async fn targets(
    client: &Client,
    p: &Project,
    services: &[String],
    reverse: bool,
    oneoff: bool,
) -> anyhow::Result<Vec<Value>> {
    for s in services {
        anyhow::ensure!(p.model["services"].get(s).is_some(), "no such service: {s}");
    }
    let levels = engine::levels(p)?;
    let mut cs: Vec<Value> = engine::project_containers(client, &p.name, None)
        .await?
        .into_iter()
        .filter(|c| oneoff || c["Labels"][spec::LABEL_ONEOFF].as_str() != Some("True"))
        .filter(|c| services.is_empty() || services.iter().any(|s| s == engine::service_of(c)))
        .collect();
    cs.sort_by_key(|c| levels.get(engine::service_of(c)).copied().unwrap_or(0));
    if reverse {
        cs.reverse();
    }
    Ok(cs)
}

fn id(c: &Value) -> &str {
    c["Id"].as_str().unwrap_or("")
}

fn state(c: &Value) -> &str {
    c["State"].as_str().unwrap_or("")
}

pub async fn start(client: &Client, p: &Project, services: &[String]) -> anyhow::Result<i32> {
    let progress = Progress::new("Running");
    let cs = targets(client, p, services, false, false).await?;
    anyhow::ensure!(
        !cs.is_empty(),
        "service {:?} has no container to start",
        services.first().cloned().unwrap_or_default()
    );
    for c in cs {
        if state(&c) == "running" {
            continue;
        }
        let name = engine::name_of(&c);
        progress.working("Container", name, "Starting");
        client.container_start(id(&c), None).await?;
        progress.done("Container", name, "Started");
    }
    Ok(0)
}

/// `compose stop`: a service's containers once those of the services depending on it are
/// stopped, independent ones side by side.
pub async fn stop(
    client: &Client,
    p: &Project,
    services: &[String],
    timeout: Option<i64>,
) -> anyhow::Result<i32> {
    let progress = Progress::new("Stopping");
    let running: Vec<Value> = targets(client, p, services, true, false)
        .await?
        .into_iter()
        .filter(|c| matches!(state(c), "running" | "restarting" | "paused"))
        .collect();
    let client = client.clone();
    super::down::in_reverse_dependency_order(p, running, move |c| {
        let (client, progress) = (client.clone(), progress.clone());
        async move {
            let name = engine::name_of(&c);
            progress.working("Container", name, "Stopping");
            client.container_stop(id(&c), None, timeout).await?;
            progress.done("Container", name, "Stopped");
            Ok(())
        }
    })
    .await?;
    Ok(0)
}

/// `compose restart`: the named services (all when none) and — unless `no_deps` — every
/// service that depends on one of them with `restart: true`, in dependency order (each
/// waiting for its `restart: true` dependencies' conditions), as Docker Compose does.
pub async fn restart(
    client: &Client,
    p: &Project,
    services: &[String],
    timeout: Option<i64>,
    no_deps: bool,
) -> anyhow::Result<i32> {
    for s in services {
        anyhow::ensure!(p.model["services"].get(s).is_some(), "no such service: {s}");
    }
    let progress = Progress::new("Restarting");
    // Only `restart: true` edges matter here.
    let restart_deps = |s: &str| -> Vec<String> {
        p.model["services"][s]["depends_on"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v["restart"].as_bool() == Some(true))
                    .map(|(d, _)| d.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    let order = p.start_order()?;
    let mut selected: Vec<String> = if services.is_empty() {
        order.clone()
    } else {
        services.to_vec()
    };
    if !services.is_empty() && !no_deps {
        // Dependents, transitively: `order` has dependencies first, so one pass suffices.
        for s in &order {
            if !selected.contains(s) && restart_deps(s).iter().any(|d| selected.contains(d)) {
                selected.push(s.clone());
            }
        }
    }
    let all = targets(client, p, &[], false, false).await?;
    // Each service's depth among the selected along `restart: true` edges: one level at a
    // time, the services of a level side by side.
    let mut level: HashMap<&str, usize> = HashMap::new();
    for s in order.iter().filter(|s| selected.contains(s)) {
        let l = restart_deps(s)
            .iter()
            .filter_map(|d| level.get(d.as_str()).map(|l| l + 1))
            .max()
            .unwrap_or(0);
        level.insert(s.as_str(), l);
    }
    let depth = level.values().copied().max().map_or(0, |m| m + 1);
    for l in 0..depth {
        let now: Vec<&str> = order
            .iter()
            .map(String::as_str)
            .filter(|s| level.get(s) == Some(&l))
            .collect();
        futures_util::future::try_join_all(now.iter().map(|s| async {
            for d in restart_deps(s).iter().filter(|d| selected.contains(d)) {
                let cond = p.model["services"][*s]["depends_on"][d]["condition"]
                    .as_str()
                    .unwrap_or("service_started");
                super::up::wait_condition(client, p, d, cond, &progress).await?;
            }
            let mine = all.iter().filter(|c| engine::service_of(c) == *s);
            futures_util::future::try_join_all(mine.map(|c| async {
                let name = engine::name_of(c);
                progress.working("Container", name, "Restarting");
                client.container_restart(id(c), None, timeout).await?;
                progress.done("Container", name, "Started");
                anyhow::Ok(())
            }))
            .await?;
            anyhow::Ok(())
        }))
        .await?;
    }
    Ok(0)
}

pub async fn kill(
    client: &Client,
    p: &Project,
    services: &[String],
    signal: &str,
) -> anyhow::Result<i32> {
    let progress = Progress::new("Killing");
    let cs: Vec<Value> = targets(client, p, services, true, false)
        .await?
        .into_iter()
        .filter(|c| state(c) == "running")
        .collect();
    anyhow::ensure!(!cs.is_empty(), "no container to kill");
    for c in cs {
        let name = engine::name_of(&c);
        progress.working("Container", name, "Killing");
        client.container_kill(id(&c), Some(signal)).await?;
        progress.done("Container", name, "Killed");
    }
    Ok(0)
}

pub async fn pause(
    client: &Client,
    p: &Project,
    services: &[String],
    pause: bool,
) -> anyhow::Result<i32> {
    let progress = Progress::new(if pause { "Pausing" } else { "Unpausing" });
    for c in targets(client, p, services, false, false).await? {
        let name = engine::name_of(&c);
        if pause && state(&c) == "running" {
            progress.working("Container", name, "Pausing");
            client.container_pause(id(&c)).await?;
            progress.done("Container", name, "Paused");
        } else if !pause && state(&c) == "paused" {
            progress.working("Container", name, "Unpausing");
            client.container_unpause(id(&c)).await?;
            progress.done("Container", name, "Unpaused");
        }
    }
    Ok(0)
}

pub struct RmOptions {
    pub force: bool,
    pub stop: bool,
    pub volumes: bool,
}

pub async fn rm(
    client: &Client,
    p: &Project,
    services: &[String],
    o: RmOptions,
) -> anyhow::Result<i32> {
    let progress = Progress::new("Removing");
    let all = targets(client, p, services, true, false).await?;
    if o.stop {
        for c in all.iter().filter(|c| state(c) == "running") {
            let name = engine::name_of(c);
            progress.working("Container", name, "Stopping");
            client.container_stop(id(c), None, None).await?;
            progress.done("Container", name, "Stopped");
        }
    }
    let doomed: Vec<&Value> = all
        .iter()
        .filter(|c| o.stop || !matches!(state(c), "running" | "restarting" | "paused"))
        .collect();
    if doomed.is_empty() {
        eprintln!("No stopped containers");
        return Ok(0);
    }
    if !o.force {
        let names: Vec<&str> = doomed.iter().map(|c| engine::name_of(c)).collect();
        eprint!(
            "Going to remove {}\n? Are you sure? (y/N) ",
            names.join(", ")
        );
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    for c in doomed {
        let name = engine::name_of(c);
        progress.working("Container", name, "Removing");
        client
            .container_remove(id(c), true, o.volumes, false)
            .await?;
        progress.done("Container", name, "Removed");
    }
    Ok(0)
}

/// Compose's `Publishers`/`Ports` of a listed container.
fn publishers(c: &Value) -> Vec<Value> {
    c["Ports"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            json!({"URL": p["IP"].as_str().unwrap_or(""), "TargetPort": p["PrivatePort"],
                "PublishedPort": p["PublicPort"].as_u64().unwrap_or(0), "Protocol": p["Type"]})
        })
        .collect()
}

pub struct PsOptions {
    pub all: bool,
    pub quiet: bool,
    pub services: bool,
    pub format: Option<String>,
    pub status: Vec<String>,
    pub filter: Vec<String>,
}

pub async fn ps(
    client: &Client,
    p: &Project,
    services: &[String],
    o: PsOptions,
) -> anyhow::Result<i32> {
    let raw = targets(client, p, services, false, true).await?;
    let typed = client
        .container_list(Query::new().flag("all", true).set(
            "filters",
            json!({"label": [format!("{}={}", spec::LABEL_PROJECT, p.name)]}).to_string(),
        ))
        .await?;
    let mut rows = Vec::new();
    for c in &raw {
        let st = state(c);
        let wanted_status = if o.status.is_empty() {
            o.all || st == "running" || st == "restarting" || st == "paused"
        } else {
            o.status.iter().any(|s| s == st)
        };
        let wanted_filter = o.filter.iter().all(|f| match f.split_once('=') {
            Some(("status", s)) => s == st,
            Some(("source", _)) => true,
            _ => true,
        });
        if !wanted_status || !wanted_filter {
            continue;
        }
        let Some(t) = typed.iter().find(|t| t.id.as_deref() == Some(id(c))) else {
            continue;
        };
        let mut row = crate::container::ps::row(t, false);
        let name = engine::name_of(c).to_string();
        let status = c["Status"].as_str().unwrap_or("");
        let health = ["healthy", "unhealthy", "starting"]
            .into_iter()
            .find(|h| {
                status.contains(&format!("({h})")) || status.contains(&format!("(health: {h})"))
            })
            .unwrap_or("");
        row["Name"] = json!(name);
        row["Service"] = json!(engine::service_of(c));
        row["Project"] = json!(p.name);
        row["Health"] = json!(health);
        row["ExitCode"] = json!(exit_code(status));
        row["Publishers"] = json!(publishers(c));
        row["CreatedAt"] = json!(crate::container::ps::created_at(
            c["Created"].as_i64().unwrap_or(0)
        ));
        rows.push(row);
    }
    if o.services {
        let mut seen = Vec::new();
        for r in &rows {
            let s = r["Service"].as_str().unwrap_or("").to_string();
            if !seen.contains(&s) {
                println!("{s}");
                seen.push(s);
            }
        }
        return Ok(0);
    }
    if o.quiet {
        for c in &raw {
            if rows
                .iter()
                .any(|r| r["ID"].as_str().is_some_and(|i| id(c).starts_with(i)))
            {
                println!("{}", id(c));
            }
        }
        return Ok(0);
    }
    let fmt = match o.format.as_deref() {
        None | Some("table") => "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}".to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let headers = json!({"Name": "NAME", "Image": "IMAGE", "Command": "COMMAND", "Service": "SERVICE",
        "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "ID": "CONTAINER ID",
        "State": "STATE", "Health": "HEALTH", "ExitCode": "EXIT CODE", "Project": "PROJECT",
        "CreatedAt": "CREATED AT", "Names": "NAMES", "Labels": "LABELS", "Networks": "NETWORKS",
        "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE"});
    print!("{}", format::render_list(&fmt, &rows, &headers)?);
    Ok(0)
}

/// `Exited (3) 2 seconds ago` → 3.
fn exit_code(status: &str) -> i64 {
    status
        .strip_prefix("Exited (")
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `compose ls`: every project on the engine (by label), with its states and files.
pub async fn ls(client: &Client, all: bool, quiet: bool, format: &str) -> anyhow::Result<i32> {
    let q = super::up::label_query(&[spec::LABEL_PROJECT.to_string()]);
    let cs: Vec<Value> = client
        .get_json(&format!("/containers/json{}", q.encode()))
        .await?;
    let mut projects: BTreeMap<String, (BTreeMap<String, usize>, String)> = BTreeMap::new();
    for c in &cs {
        let name = c["Labels"][spec::LABEL_PROJECT].as_str().unwrap_or("");
        let e = projects.entry(name.to_string()).or_default();
        *e.0.entry(state(c).to_string()).or_default() += 1;
        if e.1.is_empty() {
            e.1 = c["Labels"][spec::LABEL_CONFIG_FILES]
                .as_str()
                .unwrap_or("")
                .to_string();
        }
    }
    let mut rows = Vec::new();
    for (name, (states, files)) in projects {
        if !all && !states.contains_key("running") {
            continue;
        }
        let status = states
            .iter()
            .map(|(s, n)| format!("{s}({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(json!({"Name": name, "Status": status, "ConfigFiles": files}));
    }
    if quiet {
        for r in rows {
            println!("{}", r["Name"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    match format {
        "json" => println!("{}", serde_json::to_string(&rows)?),
        _ => {
            let headers =
                json!({"Name": "NAME", "Status": "STATUS", "ConfigFiles": "CONFIG FILES"});
            print!(
                "{}",
                format::render_list(
                    "table {{.Name}}\t{{.Status}}\t{{.ConfigFiles}}",
                    &rows,
                    &headers
                )?
            );
        }
    }
    Ok(0)
}

/// `compose images`: the image of each of the project's containers.
pub async fn images(
    client: &Client,
    p: &Project,
    services: &[String],
    quiet: bool,
    format: &str,
) -> anyhow::Result<i32> {
    let mut rows = Vec::new();
    for c in targets(client, p, services, false, true).await? {
        let img = client
            .image_inspect_raw(c["ImageID"].as_str().unwrap_or(""))
            .await
            .unwrap_or(Value::Null);
        let shown = c["Image"].as_str().unwrap_or("");
        let (repo, tag) = match shown.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((r, t)) => (r.to_string(), t.to_string()),
            None => (shown.to_string(), "latest".to_string()),
        };
        let id = img["Id"].as_str().unwrap_or("").to_string();
        let created = chrono::DateTime::parse_from_rfc3339(img["Created"].as_str().unwrap_or(""))
            .map(|t| t.timestamp())
            .ok();
        rows.push(json!({
            "ContainerName": engine::name_of(&c),
            "Repository": repo,
            "Tag": tag,
            "Platform": format!("{}/{}", img["Os"].as_str().unwrap_or("linux"), img["Architecture"].as_str().unwrap_or("amd64")),
            "ID": id,
            "ShortID": format::short_id(&id),
            "Size": units::human_size(img["Size"].as_f64().unwrap_or(0.0)),
            "Created": created.map(units::ago).unwrap_or_default(),
        }));
    }
    if quiet {
        let mut seen = Vec::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or("").to_string();
            if !seen.contains(&id) {
                println!("{id}");
                seen.push(id);
            }
        }
        return Ok(0);
    }
    if format == "json" {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(0);
    }
    let headers = json!({"ContainerName": "CONTAINER", "Repository": "REPOSITORY", "Tag": "TAG",
        "Platform": "PLATFORM", "ShortID": "IMAGE ID", "Size": "SIZE", "Created": "CREATED"});
    print!(
        "{}",
        format::render_list(
            "table {{.ContainerName}}\t{{.Repository}}\t{{.Tag}}\t{{.Platform}}\t{{.ShortID}}\t{{.Size}}\t{{.Created}}",
            &rows,
            &headers
        )?
    );
    Ok(0)
}

/// `compose top`: the processes of every running container, one table.
pub async fn top(client: &Client, p: &Project, services: &[String]) -> anyhow::Result<i32> {
    let mut lines: Vec<String> = Vec::new();
    for c in targets(client, p, services, false, false).await? {
        if state(&c) != "running" {
            continue;
        }
        let top = client.container_top(id(&c), None).await?;
        if lines.is_empty() {
            let mut h = vec!["SERVICE".to_string(), "#".to_string()];
            h.extend(top.titles.clone().unwrap_or_default());
            lines.push(h.join("\t"));
        }
        for row in top.processes.unwrap_or_default() {
            let mut r = vec![
                engine::service_of(&c).to_string(),
                engine::number_of(&c).to_string(),
            ];
            r.extend(row);
            lines.push(r.join("\t"));
        }
    }
    print!("{}", tabwrite2(&lines));
    Ok(0)
}

/// Compose's top table: columns padded with two spaces, no minimum width.
fn tabwrite2(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let mut widths = Vec::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == r.len() {
                    c.to_string()
                } else {
                    format!("{c:<w$}", w = widths[i] + 2)
                }
            })
            .collect();
        out.push_str(&cells.concat());
        out.push('\n');
    }
    out
}

/// `compose port SERVICE PRIVATE_PORT`: the published address.
pub async fn port(
    client: &Client,
    p: &Project,
    service: &str,
    private: &str,
    protocol: &str,
    index: u32,
) -> anyhow::Result<i32> {
    let cs = engine::service_containers(client, &p.name, service).await?;
    let c = cs
        .iter()
        .find(|c| engine::number_of(c) == index)
        .ok_or_else(|| anyhow::anyhow!("service \"{service}\" is not running"))?;
    let info = client.container_inspect_raw(id(c), false).await?;
    let key = format!("{private}/{protocol}");
    let b = &info["NetworkSettings"]["Ports"][&key][0];
    let name = engine::name_of(c);
    anyhow::ensure!(b.is_object(), "no port {key} for container {name}: ");
    let ip = b["HostIp"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("0.0.0.0");
    println!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""));
    Ok(0)
}
