//! `compose up -d`, `down`, `ps`: the project on the engine, through the Engine API only.

use anyhow::Context;
use berth_api::{Body, Client, Method, Query};
use berth_compose::Project;
use serde_json::{json, Map, Value};

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_WORKDIR: &str = "com.docker.compose.project.working_dir";

fn filter(project: &str, service: Option<&str>) -> Query {
    let mut labels = vec![format!("{LABEL_PROJECT}={project}")];
    if let Some(s) = service {
        labels.push(format!("{LABEL_SERVICE}={s}"));
    }
    Query::new()
        .flag("all", true)
        .set("filters", json!({ "label": labels }).to_string())
}

/// Containers of the project (or one service), as the API lists them.
pub async fn project_containers(
    client: &Client,
    project: &str,
    service: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let q = filter(project, service);
    let v: Vec<Value> = client
        .get_json(&format!("/containers/json{}", q.encode()))
        .await?;
    Ok(v)
}

fn container_name(p: &Project, service: &str, s: &Value) -> String {
    s["container_name"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{}-{service}-1", p.name))
}

fn env_list(s: &Value) -> Vec<String> {
    s["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                .collect()
        })
        .unwrap_or_default()
}

fn duration_ns(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    humantime::parse_duration(s)
        .ok()
        .map(|d| d.as_nanos() as i64)
}

/// The create body of a service's container.
pub fn create_body(p: &Project, service: &str, network: Option<&str>) -> anyhow::Result<Value> {
    let s = &p.model["services"][service];
    let image = match s["image"].as_str() {
        Some(i) => i.to_string(),
        None => anyhow::bail!(
            "service {service:?} has no image (building is not supported by compose here yet)"
        ),
    };
    let mut labels: Map<String, Value> = s["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(LABEL_PROJECT.into(), json!(p.name));
    labels.insert(LABEL_SERVICE.into(), json!(service));
    labels.insert(LABEL_NUMBER.into(), json!("1"));
    labels.insert(LABEL_ONEOFF.into(), json!("False"));
    labels.insert(
        LABEL_WORKDIR.into(),
        json!(p.working_dir.display().to_string()),
    );
    labels.insert(
        LABEL_HASH.into(),
        json!(p.config_hash(service).unwrap_or_default()),
    );
    let mut mounts = Vec::new();
    for v in s["volumes"].as_array().cloned().unwrap_or_default() {
        let typ = v["type"].as_str().unwrap_or("volume");
        let mut source = v["source"].as_str().unwrap_or("").to_string();
        if typ == "volume" && !source.is_empty() {
            if let Some(name) = p.model["volumes"][&source]["name"].as_str() {
                source = name.to_string();
            }
        }
        let mut m = json!({"Type": typ, "Target": v["target"], "ReadOnly": v["read_only"].as_bool().unwrap_or(false)});
        if !source.is_empty() {
            m["Source"] = json!(source);
        }
        mounts.push(m);
    }
    let mut port_bindings = Map::new();
    let mut exposed = Map::new();
    for port in s["ports"].as_array().cloned().unwrap_or_default() {
        let key = format!(
            "{}/{}",
            port["target"],
            port["protocol"].as_str().unwrap_or("tcp")
        );
        exposed.insert(key.clone(), json!({}));
        let b = json!({"HostIp": port["host_ip"].as_str().unwrap_or(""), "HostPort": port["published"].as_str().unwrap_or("")});
        if let Some(a) = port_bindings
            .entry(key)
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            a.push(b);
        }
    }
    for e in s["expose"].as_array().cloned().unwrap_or_default() {
        if let Some(e) = e.as_str() {
            let k = if e.contains('/') {
                e.to_string()
            } else {
                format!("{e}/tcp")
            };
            exposed.insert(k, json!({}));
        }
    }
    let restart = s["restart"].as_str().unwrap_or("no");
    let (rname, rmax) = match restart.split_once(':') {
        Some((n, m)) => (n, m.parse::<i64>().unwrap_or(0)),
        None => (restart, 0),
    };
    let mut body = json!({
        "Image": image,
        "Env": env_list(s),
        "Labels": labels,
        "Tty": s["tty"].as_bool().unwrap_or(false),
        "OpenStdin": s["stdin_open"].as_bool().unwrap_or(false),
        "ExposedPorts": exposed,
        "HostConfig": {
            "Mounts": mounts,
            "PortBindings": port_bindings,
            "RestartPolicy": {"Name": rname, "MaximumRetryCount": rmax},
            "CapAdd": s["cap_add"],
            "CapDrop": s["cap_drop"],
            "Privileged": s["privileged"].as_bool().unwrap_or(false),
            "ExtraHosts": s["extra_hosts"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k}:{}", v.as_str().unwrap_or(""))).collect::<Vec<_>>()),
            "Dns": s["dns"],
            "NetworkMode": s["network_mode"].as_str().or(network).unwrap_or("bridge"),
        },
    });
    if s["init"].as_bool() == Some(true) {
        body["HostConfig"]["Init"] = json!(true);
    }
    for (k, key) in [("command", "Cmd"), ("entrypoint", "Entrypoint")] {
        if s[k].is_array() {
            body[key] = s[k].clone();
        }
    }
    for (k, key) in [
        ("working_dir", "WorkingDir"),
        ("user", "User"),
        ("hostname", "Hostname"),
        ("stop_signal", "StopSignal"),
    ] {
        if let Some(v) = s[k].as_str() {
            body[key] = json!(v);
        }
    }
    if let Some(g) = s["stop_grace_period"].as_str() {
        if let Ok(d) = humantime::parse_duration(g) {
            body["StopTimeout"] = json!(d.as_secs());
        }
    }
    if let Some(hc) = s["healthcheck"].as_object() {
        let mut h = json!({});
        if hc.get("disable").and_then(Value::as_bool) == Some(true) {
            h["Test"] = json!(["NONE"]);
        } else {
            match hc.get("test") {
                Some(Value::String(t)) => h["Test"] = json!(["CMD-SHELL", t]),
                Some(Value::Array(a)) => h["Test"] = json!(a),
                _ => {}
            }
        }
        for (k, key) in [
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start_period", "StartPeriod"),
            ("start_interval", "StartInterval"),
        ] {
            if let Some(ns) = hc.get(k).and_then(duration_ns) {
                h[key] = json!(ns);
            }
        }
        if let Some(r) = hc.get("retries").and_then(Value::as_i64) {
            h["Retries"] = json!(r);
        }
        body["Healthcheck"] = h;
    }
    Ok(body)
}

/// Create a project resource (`/networks/create`, `/volumes/create`); `Ok(false)` when the
/// daemon does not have that endpoint yet (404).
async fn create_resource(client: &Client, path: &str, body: Value) -> anyhow::Result<bool> {
    match client.call(Method::POST, path, Body::json(&body)?).await {
        Ok(()) => Ok(true),
        Err(e) if e.status() == Some(404) && e.to_string().contains("page not found") => Ok(false),
        Err(e) if e.status() == Some(404) => Ok(false),
        Err(e) if e.status() == Some(409) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// `compose up -d`.
pub async fn up(client: &Client, p: &Project, services: &[String]) -> anyhow::Result<i32> {
    let order = p.start_order()?;
    let wanted: Vec<String> = if services.is_empty() {
        order.clone()
    } else {
        // The named services and what they depend on.
        let mut w = services.to_vec();
        let mut i = 0;
        while i < w.len() {
            if let Some(deps) = p.model["services"][&w[i]]["depends_on"].as_object() {
                for d in deps.keys() {
                    if !w.contains(d) {
                        w.push(d.clone());
                    }
                }
            }
            i += 1;
        }
        order.iter().filter(|s| w.contains(s)).cloned().collect()
    };
    let mut network = None;
    if let Some(nets) = p.model["networks"].as_object() {
        for (key, n) in nets {
            if n["external"].as_bool() == Some(true) {
                continue;
            }
            let name = n["name"].as_str().unwrap_or(key).to_string();
            let body = json!({"Name": name, "Driver": n["driver"].as_str().unwrap_or("bridge"),
                "Internal": n["internal"].as_bool().unwrap_or(false),
                "Labels": {LABEL_PROJECT: p.name, "com.docker.compose.network": key}});
            if create_resource(client, "/networks/create", body).await? {
                println!(" ✔ Network {name}  Created");
                if key == "default" {
                    network = Some(name);
                }
            } else {
                eprintln!("WARN: the daemon has no networks API yet (404): network {name} not created; services use the default bridge");
            }
        }
    }
    if let Some(vols) = p.model["volumes"].as_object() {
        for (key, v) in vols {
            if v["external"].as_bool() == Some(true) {
                continue;
            }
            let name = v["name"].as_str().unwrap_or(key).to_string();
            let body = json!({"Name": name, "Driver": v["driver"].as_str().unwrap_or("local"),
                "DriverOpts": v["driver_opts"].as_object().cloned().unwrap_or_default(),
                "Labels": {LABEL_PROJECT: p.name, "com.docker.compose.volume": key}});
            if create_resource(client, "/volumes/create", body).await? {
                println!(" ✔ Volume {name}  Created");
            } else {
                eprintln!(
                    "WARN: the daemon has no volumes API yet (404): volume {name} not created"
                );
            }
        }
    }
    for service in &wanted {
        let s = &p.model["services"][service];
        let name = container_name(p, service, s);
        let hash = p.config_hash(service).unwrap_or_default();
        let existing = project_containers(client, &p.name, Some(service)).await?;
        let mut reuse = None;
        for c in existing {
            let id = c["Id"].as_str().unwrap_or("").to_string();
            if c["Labels"][LABEL_HASH].as_str() == Some(hash.as_str()) {
                reuse = Some((id, c["State"].as_str() == Some("running")));
            } else {
                client.container_remove(&id, true, false, false).await?;
                println!(" ✔ Container {name}  Removed");
            }
        }
        let id = match reuse {
            Some((_, true)) => {
                println!(" ✔ Container {name}  Running");
                continue;
            }
            Some((id, false)) => id,
            None => {
                let body = create_body(p, service, network.as_deref())?;
                let image = body["Image"].as_str().unwrap_or("").to_string();
                let created = match client.container_create(Some(&name), None, &body).await {
                    Ok(r) => r,
                    Err(e) if e.is_not_found() => {
                        pull(client, &image).await?;
                        client.container_create(Some(&name), None, &body).await?
                    }
                    Err(e) => return Err(e).with_context(|| format!("creating {name}")),
                };
                println!(" ✔ Container {name}  Created");
                created.id
            }
        };
        client
            .container_start(&id, None)
            .await
            .with_context(|| format!("starting {name}"))?;
        println!(" ✔ Container {name}  Started");
    }
    Ok(0)
}

async fn pull(client: &Client, image: &str) -> anyhow::Result<()> {
    let (repo, tag) = match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((r, t)) => (r.to_string(), t.to_string()),
        None => (image.to_string(), "latest".to_string()),
    };
    let q = Query::new().set("fromImage", repo).set("tag", tag);
    let mut msgs = client
        .stream(
            Method::POST,
            &format!("/images/create{}", q.encode()),
            Body::Empty,
            &[],
        )
        .await?
        .json_messages();
    while let Some(m) = msgs.next().await? {
        if let Some(e) = m.error {
            anyhow::bail!("pulling {image}: {e}");
        }
    }
    Ok(())
}

/// `compose down [-v]`: containers in reverse dependency order, then the networks, then
/// (with `-v`) the project's named volumes — never external ones, never another project's.
pub async fn down(client: &Client, p: &Project, volumes: bool) -> anyhow::Result<i32> {
    let mut order = p.start_order()?;
    order.reverse();
    let all = project_containers(client, &p.name, None).await?;
    let rank = |c: &Value| {
        let s = c["Labels"][LABEL_SERVICE].as_str().unwrap_or("");
        order.iter().position(|x| x == s).unwrap_or(usize::MAX)
    };
    let mut all = all;
    all.sort_by_key(|c| rank(c));
    for c in &all {
        let id = c["Id"].as_str().unwrap_or("");
        let name = c["Names"][0].as_str().unwrap_or(id).trim_start_matches('/');
        if c["State"].as_str() == Some("running") {
            client.container_stop(id, None, None).await?;
            println!(" ✔ Container {name}  Stopped");
        }
        client.container_remove(id, true, false, false).await?;
        println!(" ✔ Container {name}  Removed");
    }
    if let Some(nets) = p.model["networks"].as_object() {
        for (key, n) in nets {
            if n["external"].as_bool() == Some(true) {
                continue;
            }
            let name = n["name"].as_str().unwrap_or(key);
            match client
                .call(Method::DELETE, &format!("/networks/{name}"), Body::Empty)
                .await
            {
                Ok(()) => println!(" ✔ Network {name}  Removed"),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if volumes {
        if let Some(vols) = p.model["volumes"].as_object() {
            for (key, v) in vols {
                if v["external"].as_bool() == Some(true) {
                    continue;
                }
                let name = v["name"].as_str().unwrap_or(key);
                match client
                    .call(Method::DELETE, &format!("/volumes/{name}"), Body::Empty)
                    .await
                {
                    Ok(()) => println!(" ✔ Volume {name}  Removed"),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(0)
}

/// `compose ps [-a]`.
pub async fn ps(client: &Client, p: &Project, all: bool, quiet: bool) -> anyhow::Result<i32> {
    let cs = project_containers(client, &p.name, None).await?;
    if !quiet {
        println!("{:<24} {:<20} {:<12} STATUS", "NAME", "IMAGE", "SERVICE");
    }
    for c in cs {
        if !all && c["State"].as_str() != Some("running") {
            continue;
        }
        let id = c["Id"].as_str().unwrap_or("");
        if quiet {
            println!("{id}");
            continue;
        }
        println!(
            "{:<24} {:<20} {:<12} {}",
            c["Names"][0].as_str().unwrap_or("").trim_start_matches('/'),
            c["Image"].as_str().unwrap_or(""),
            c["Labels"][LABEL_SERVICE].as_str().unwrap_or(""),
            c["Status"].as_str().unwrap_or("")
        );
    }
    Ok(0)
}
