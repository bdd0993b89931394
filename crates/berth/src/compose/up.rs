//! Converging the project on the engine (`up`, `create`) and taking it away (`down`):
//! networks, volumes, images, then each service's containers in dependency order — in
//! parallel where independent, waiting where a `depends_on` condition asks for it.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_api::{Body, Client, Method, Query};
use berth_compose::Project;
use futures_util::future::{try_join3, try_join_all};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::progress::Progress;
use super::spec::{self, Instance};
use super::{build, engine};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildPolicy {
    /// Build a service's image when it is missing (`up`).
    Missing,
    /// `--build`.
    Always,
    /// `--no-build`.
    Never,
}

#[derive(Clone, Debug)]
pub struct UpOptions {
    pub services: Vec<String>,
    pub no_deps: bool,
    pub build: BuildPolicy,
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub remove_orphans: bool,
    pub scale: HashMap<String, u32>,
    /// `false` for `compose create`.
    pub start: bool,
    /// `up --pull always|missing|never`.
    pub pull: String,
}

impl Default for UpOptions {
    fn default() -> Self {
        Self {
            services: Vec::new(),
            no_deps: false,
            build: BuildPolicy::Missing,
            force_recreate: false,
            no_recreate: false,
            remove_orphans: false,
            scale: HashMap::new(),
            start: true,
            pull: "missing".into(),
        }
    }
}

/// A container `up` left running (or created).
#[derive(Clone, Debug)]
pub struct Running {
    pub service: String,
    pub name: String,
    pub id: String,
    pub tty: bool,
}

/// The named services plus (unless `no_deps`) everything they depend on, in start order.
pub fn selection(p: &Project, services: &[String], no_deps: bool) -> anyhow::Result<Vec<String>> {
    let order = p.start_order()?;
    if services.is_empty() {
        return Ok(order);
    }
    let mut wanted: Vec<String> = Vec::new();
    for s in services {
        anyhow::ensure!(p.model["services"].get(s).is_some(), "no such service: {s}");
        wanted.push(s.clone());
    }
    let mut i = 0;
    while i < wanted.len() && !no_deps {
        if let Some(deps) = p.model["services"][&wanted[i]]["depends_on"].as_object() {
            for d in deps.keys() {
                if !wanted.contains(d) && p.model["services"].get(d).is_some() {
                    wanted.push(d.clone());
                }
            }
        }
        i += 1;
    }
    Ok(order.into_iter().filter(|s| wanted.contains(s)).collect())
}

/// Containers labelled for the project whose service is no longer in the model.
pub(super) fn orphans(p: &Project, all: &[Value]) -> Vec<Value> {
    all.iter()
        .filter(|c| {
            c["Labels"][spec::LABEL_ONEOFF].as_str() != Some("True")
                && p.model["services"]
                    .get(c["Labels"][spec::LABEL_SERVICE].as_str().unwrap_or(""))
                    .is_none()
        })
        .cloned()
        .collect()
}

/// `up` / `create`: everything the selected services need, then their containers.
pub async fn converge(
    client: &Client,
    p: &Arc<Project>,
    o: &UpOptions,
    progress: &Progress,
) -> anyhow::Result<Vec<Running>> {
    let selected = selection(p, &o.services, o.no_deps)?;
    let all = engine::project_containers(client, &p.name, None).await?;
    let orphaned = orphans(p, &all);
    if !orphaned.is_empty() {
        if o.remove_orphans {
            for c in &orphaned {
                remove_container(client, c, progress, false).await?;
            }
        } else {
            let names: Vec<&str> = orphaned.iter().map(engine::name_of).collect();
            eprintln!("WARN[0000] Found orphan containers ({names:?}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.");
        }
    }
    let mut nets = BTreeSet::new();
    for s in &selected {
        if let Some(m) = p.model["services"][s]["networks"].as_object() {
            nets.extend(m.keys().cloned());
        }
    }
    let vols: Vec<String> = p.model["volumes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    // Networks, volumes and images do not depend on each other: all of them side by side.
    try_join3(
        try_join_all(nets.iter().map(|k| ensure_network(client, p, k, progress))),
        try_join_all(vols.iter().map(|k| ensure_volume(client, p, k, progress))),
        ensure_images(client, p, &selected, o, progress),
    )
    .await?;

    // One task per service. Its containers are created once its dependencies' are, and
    // started once theirs have started (and met their conditions) — as compose's create and
    // start phases, without a barrier between them. Local tasks: the image progress writers
    // they may use are not `Send`.
    let local = tokio::task::LocalSet::new();
    let (running, first_err) = local
        .run_until(async {
            let mut created: HashMap<String, watch::Receiver<Option<bool>>> = HashMap::new();
            let mut started: HashMap<String, watch::Receiver<Option<bool>>> = HashMap::new();
            let mut recreated: HashMap<String, Rc<Cell<bool>>> = HashMap::new();
            let mut tasks = tokio::task::JoinSet::new();
            for s in &selected {
                let (created_tx, created_rx) = watch::channel(None);
                let (started_tx, started_rx) = watch::channel(None);
                let deps: Vec<Dependency> = p.model["services"][s]["depends_on"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(d, v)| {
                                Some(Dependency {
                                    service: d.clone(),
                                    condition: v["condition"]
                                        .as_str()
                                        .unwrap_or("service_started")
                                        .to_string(),
                                    restart: v["restart"].as_bool() == Some(true),
                                    created: created.get(d)?.clone(),
                                    started: started.get(d)?.clone(),
                                    recreated: recreated.get(d)?.clone(),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                created.insert(s.clone(), created_rx);
                started.insert(s.clone(), started_rx);
                let was_recreated = Rc::new(Cell::new(false));
                recreated.insert(s.clone(), was_recreated.clone());
                // The containers listed at the start are the service's: only this task
                // changes them.
                let existing: Vec<Value> = all
                    .iter()
                    .filter(|c| {
                        engine::service_of(c) == s
                            && c["Labels"][spec::LABEL_ONEOFF].as_str() != Some("True")
                    })
                    .cloned()
                    .collect();
                let (client, p, o, progress, s) = (
                    client.clone(),
                    p.clone(),
                    o.clone(),
                    progress.clone(),
                    s.clone(),
                );
                tasks.spawn_local(async move {
                    let r = async {
                        for d in &deps {
                            d.wait(&s, &d.created).await?;
                        }
                        let made = prepare_service(&client, &p, &s, &o, &progress, existing).await;
                        if let Ok(m) = &made {
                            was_recreated.set(m.iter().any(|c| c.recreated));
                        }
                        let _ = created_tx.send(Some(made.is_ok()));
                        let made = made?;
                        if !o.start {
                            return Ok(made.into_iter().map(|m| m.running).collect());
                        }
                        for d in &deps {
                            d.wait(&s, &d.started).await?;
                            wait_condition(&client, &p, &d.service, &d.condition, &progress)
                                .await?;
                        }
                        // `restart: true`: a dependency that was recreated restarts what
                        // depends on it and kept running.
                        let restart = deps.iter().any(|d| d.restart && d.recreated.get());
                        start_service(&client, made, restart, &progress).await
                    }
                    .await;
                    // A task that failed before creating releases its dependents too.
                    created_tx.send_if_modified(|v| {
                        let unset = v.is_none();
                        if unset {
                            *v = Some(false);
                        }
                        unset
                    });
                    let _ = started_tx.send(Some(r.is_ok()));
                    r
                });
            }
            let mut running = Vec::new();
            let mut first_err = None;
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(Ok(mut v)) => running.append(&mut v),
                    Ok(Err(e)) => {
                        // The first failure is the cause; the others report waiting on it.
                        let waiting = |x: &anyhow::Error| x.to_string().starts_with("dependency ");
                        if first_err.as_ref().is_none_or(waiting) && !waiting(&e)
                            || first_err.is_none()
                        {
                            first_err = Some(e);
                        }
                    }
                    Err(e) => first_err = first_err.or(Some(e.into())),
                }
            }
            (running, first_err)
        })
        .await;
    let mut running = running;
    if let Some(e) = first_err {
        return Err(e);
    }
    let order: Vec<&String> = selected.iter().collect();
    running.sort_by_key(|r| (order.iter().position(|s| **s == r.service), r.name.clone()));
    Ok(running)
}

/// A `depends_on` entry as a service's task sees it: the dependency's progress signals.
struct Dependency {
    service: String,
    condition: String,
    /// `restart: true`.
    restart: bool,
    created: watch::Receiver<Option<bool>>,
    started: watch::Receiver<Option<bool>>,
    /// Whether this `up` recreated any of the dependency's containers (set once created).
    recreated: Rc<Cell<bool>>,
}

impl Dependency {
    /// Wait until the dependency's task passed a stage (`created` or `started`).
    async fn wait(&self, of: &str, stage: &watch::Receiver<Option<bool>>) -> anyhow::Result<()> {
        let mut rx = stage.clone();
        let ok = rx.wait_for(Option::is_some).await.map(|v| *v == Some(true));
        anyhow::ensure!(
            ok.unwrap_or(false),
            "dependency {:?} of {of:?} failed",
            self.service
        );
        Ok(())
    }
}

/// The selected services' images: each distinct image checked (and pulled if needed) once,
/// side by side; services with a `build` built one after the other.
async fn ensure_images(
    client: &Client,
    p: &Project,
    selected: &[String],
    o: &UpOptions,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut distinct = BTreeSet::new();
    let mut pulled = Vec::new();
    for s in selected {
        let svc = &p.model["services"][s];
        if svc["build"].is_object() && o.build != BuildPolicy::Never {
            ensure_image(client, p, s, o, progress).await?;
        } else if distinct.insert((spec::image_name(p, s), svc["pull_policy"].to_string())) {
            pulled.push(s);
        }
    }
    try_join_all(
        pulled
            .into_iter()
            .map(|s| ensure_image(client, p, s, o, progress)),
    )
    .await?;
    Ok(())
}

/// Wait for a dependency's `depends_on` condition.
pub(super) async fn wait_condition(
    client: &Client,
    p: &Project,
    dep: &str,
    condition: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    if condition == "service_started" {
        return Ok(());
    }
    for c in engine::service_containers(client, &p.name, dep).await? {
        let id = c["Id"].as_str().unwrap_or("").to_string();
        let name = engine::name_of(&c).to_string();
        progress.working("Container", &name, "Waiting");
        match condition {
            "service_healthy" => loop {
                let v = client.container_inspect_raw(&id, false).await?;
                let st = &v["State"];
                match st["Health"]["Status"].as_str() {
                    Some("healthy") => {
                        progress.done("Container", &name, "Healthy");
                        break;
                    }
                    Some("unhealthy") => {
                        progress.failed("Container", &name, "Error");
                        anyhow::bail!("dependency failed to start: container {name} is unhealthy");
                    }
                    None if v["Config"]["Healthcheck"].is_null() => {
                        progress.failed("Container", &name, "Error");
                        anyhow::bail!("dependency failed to start: container {name} has no healthcheck configured");
                    }
                    _ => {}
                }
                if st["Running"].as_bool() != Some(true) && st["Restarting"].as_bool() != Some(true)
                {
                    progress.failed("Container", &name, "Error");
                    anyhow::bail!(
                        "dependency failed to start: container {name} exited ({})",
                        st["ExitCode"]
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            },
            "service_completed_successfully" => {
                let status = client
                    .container_wait(&id, Some("not-running"))
                    .await
                    .with_context(|| format!("waiting for {name}"))?;
                if status.status_code != 0 {
                    progress.failed("Container", &name, "Error");
                    anyhow::bail!(
                        "service {dep:?} didn't complete successfully: exit {}",
                        status.status_code
                    );
                }
                progress.done("Container", &name, "Exited");
            }
            other => anyhow::bail!("unknown depends_on condition {other:?}"),
        }
    }
    Ok(())
}

/// A container of a service, created (or found) and not yet started.
struct Prepared {
    running: Running,
    was_running: bool,
    recreated: bool,
}

/// One service's containers: scale down, recreate what diverged, create what is missing.
/// `existing`: the service's containers, by number.
async fn prepare_service(
    client: &Client,
    p: &Project,
    service: &str,
    o: &UpOptions,
    progress: &Progress,
    existing: Vec<Value>,
) -> anyhow::Result<Vec<Prepared>> {
    let mut want = o
        .scale
        .get(service)
        .copied()
        .unwrap_or_else(|| spec::replicas(p, service));
    if p.model["services"][service]["container_name"].is_string() && want > 1 {
        eprintln!("WARN[0000] service {service:?} has a container_name: it cannot be scaled");
        want = 1;
    }
    let hash = p.config_hash(service).unwrap_or_default();
    let tty = p.model["services"][service]["tty"].as_bool() == Some(true);
    for c in &existing {
        if engine::number_of(c) > want {
            remove_container(client, c, progress, true).await?;
        }
    }
    let mut out = Vec::new();
    for n in 1..=want {
        let name = spec::container_name(p, service, n);
        let current = existing.iter().find(|c| engine::number_of(c) == n);
        let diverged = current.is_some_and(|c| {
            o.force_recreate || c["Labels"][spec::LABEL_HASH].as_str() != Some(hash.as_str())
        });
        let (id, was_running, recreated) = match current {
            Some(c) if !diverged || o.no_recreate => (
                c["Id"].as_str().unwrap_or("").to_string(),
                c["State"].as_str() == Some("running"),
                false,
            ),
            Some(c) => {
                progress.working("Container", &name, "Recreate");
                let old = c["Id"].as_str().unwrap_or("");
                if c["State"].as_str() == Some("running") {
                    client.container_stop(old, None, None).await?;
                }
                client.container_remove(old, true, false, false).await?;
                let id = create(client, p, service, n, &name).await?;
                progress.done("Container", &name, "Recreated");
                (id, false, true)
            }
            None => {
                progress.working("Container", &name, "Creating");
                let id = create(client, p, service, n, &name).await?;
                progress.done("Container", &name, "Created");
                (id, false, false)
            }
        };
        out.push(Prepared {
            running: Running {
                service: service.to_string(),
                name,
                id,
                tty,
            },
            was_running,
            recreated,
        });
    }
    Ok(out)
}

/// Start what `prepare_service` left stopped, one container after the other (replicas in
/// order, as compose numbers them); `restart`: restart those that kept running.
async fn start_service(
    client: &Client,
    made: Vec<Prepared>,
    restart: bool,
    progress: &Progress,
) -> anyhow::Result<Vec<Running>> {
    let mut out = Vec::new();
    for m in made {
        let name = &m.running.name;
        if m.was_running && restart {
            progress.working("Container", name, "Restarting");
            client.container_restart(&m.running.id, None, None).await?;
            progress.done("Container", name, "Started");
        } else if m.was_running {
            progress.done("Container", name, "Running");
        } else {
            progress.working("Container", name, "Starting");
            if let Err(e) = client.container_start(&m.running.id, None).await {
                progress.failed("Container", name, "Error");
                return Err(anyhow::Error::new(e).context(format!("starting {name}")));
            }
            progress.done("Container", name, "Started");
        }
        out.push(m.running);
    }
    Ok(out)
}

async fn create(
    client: &Client,
    p: &Project,
    service: &str,
    number: u32,
    name: &str,
) -> anyhow::Result<String> {
    let body = spec::create_body(
        p,
        service,
        &Instance {
            number,
            name,
            oneoff: false,
            publish_ports: true,
        },
    )?;
    create_with_body(client, name, &body).await
}

/// Create a container, pulling its image first if the daemon does not have it.
pub async fn create_with_body(client: &Client, name: &str, body: &Value) -> anyhow::Result<String> {
    let image = body["Image"].as_str().unwrap_or("").to_string();
    let created = match client.container_create(Some(name), None, body).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() && e.to_string().contains("image") => {
            build::pull_image(client, &image, true).await?;
            client.container_create(Some(name), None, body).await?
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("creating {name}"))),
    };
    Ok(created.id)
}

async fn ensure_network(
    client: &Client,
    p: &Project,
    key: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    let n = &p.model["networks"][key];
    let name = n["name"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{}_{key}", p.name));
    let exists = match client.get_json::<Value>(&format!("/networks/{name}")).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e.into()),
    };
    if n["external"].as_bool() == Some(true) {
        anyhow::ensure!(
            exists,
            "network {name} declared as external, but could not be found"
        );
        return Ok(());
    }
    if exists {
        return Ok(());
    }
    progress.working("Network", &name, "Creating");
    let mut labels = n["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(spec::LABEL_PROJECT.into(), json!(p.name));
    labels.insert(spec::LABEL_NETWORK.into(), json!(key));
    labels.insert(spec::LABEL_VERSION.into(), json!(spec::COMPOSE_VERSION));
    let mut body = json!({"Name": name, "Driver": n["driver"].as_str().unwrap_or("bridge"),
        "Internal": n["internal"].as_bool().unwrap_or(false),
        "Attachable": n["attachable"].as_bool().unwrap_or(false),
        "EnableIPv6": n["enable_ipv6"].as_bool().unwrap_or(false),
        "Options": n["driver_opts"].as_object().cloned().unwrap_or_default(),
        "Labels": labels});
    if let Some(cfgs) = n["ipam"]["config"].as_array() {
        let c: Vec<Value> = cfgs
            .iter()
            .map(|c| json!({"Subnet": c["subnet"], "Gateway": c["gateway"], "IPRange": c["ip_range"]}))
            .collect();
        body["IPAM"] =
            json!({"Driver": n["ipam"]["driver"].as_str().unwrap_or("default"), "Config": c});
    }
    match client
        .call(Method::POST, "/networks/create", Body::json(&body)?)
        .await
    {
        Ok(()) => {}
        Err(e) if e.status() == Some(409) => {}
        Err(e) => {
            progress.failed("Network", &name, "Error");
            return Err(anyhow::Error::new(e).context(format!("creating network {name}")));
        }
    }
    progress.done("Network", &name, "Created");
    Ok(())
}

async fn ensure_volume(
    client: &Client,
    p: &Project,
    key: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    let v = &p.model["volumes"][key];
    let name = v["name"].as_str().unwrap_or(key).to_string();
    let exists = match client.get_json::<Value>(&format!("/volumes/{name}")).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e.into()),
    };
    if v["external"].as_bool() == Some(true) {
        anyhow::ensure!(exists, "external volume \"{name}\" not found");
        return Ok(());
    }
    if exists {
        return Ok(());
    }
    progress.working("Volume", &name, "Creating");
    let mut labels = v["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(spec::LABEL_PROJECT.into(), json!(p.name));
    labels.insert(spec::LABEL_VOLUME.into(), json!(key));
    labels.insert(spec::LABEL_VERSION.into(), json!(spec::COMPOSE_VERSION));
    let body = json!({"Name": name, "Driver": v["driver"].as_str().unwrap_or("local"),
        "DriverOpts": v["driver_opts"].as_object().cloned().unwrap_or_default(),
        "Labels": labels});
    client
        .call(Method::POST, "/volumes/create", Body::json(&body)?)
        .await
        .with_context(|| format!("creating volume {name}"))?;
    progress.done("Volume", &name, "Created");
    Ok(())
}

/// Build or pull a service's image as the options and the service's `pull_policy` say.
pub async fn ensure_image(
    client: &Client,
    p: &Project,
    service: &str,
    o: &UpOptions,
    progress: &Progress,
) -> anyhow::Result<()> {
    let s = &p.model["services"][service];
    let image = spec::image_name(p, service);
    let present = engine::image_exists(client, &image).await?;
    let policy = s["pull_policy"].as_str().unwrap_or("");
    if s["build"].is_object() && o.build != BuildPolicy::Never {
        if o.build == BuildPolicy::Always || policy == "build" || !present {
            build::build_service(client, p, service, &build::BuildFlags::default()).await?;
        }
        return Ok(());
    }
    let pull = match (o.pull.as_str(), policy) {
        ("always", _) | (_, "always") => true,
        ("never", _) | (_, "never") => false,
        _ => !present,
    };
    if pull {
        progress.working("Image", &image, "Pulling");
        if let Err(e) = build::pull_image(client, &image, true).await {
            progress.failed("Image", &image, "Error");
            return Err(e);
        }
        progress.done("Image", &image, "Pulled");
    }
    Ok(())
}

/// Stop (if running) and remove a container, with compose's events.
pub async fn remove_container(
    client: &Client,
    c: &Value,
    progress: &Progress,
    volumes: bool,
) -> anyhow::Result<()> {
    let id = c["Id"].as_str().unwrap_or("");
    let name = engine::name_of(c);
    if c["State"].as_str() == Some("running") {
        progress.working("Container", name, "Stopping");
        client.container_stop(id, None, None).await?;
        progress.done("Container", name, "Stopped");
    }
    progress.working("Container", name, "Removing");
    match client.container_remove(id, true, volumes, false).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    progress.done("Container", name, "Removed");
    Ok(())
}

/// `--wait`: every container running, and healthy where it has a health check.
pub async fn wait_ready(
    client: &Client,
    running: &[Running],
    timeout: Option<Duration>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let deadline = timeout.map(|t| Instant::now() + t);
    for r in running {
        progress.working("Container", &r.name, "Waiting");
        loop {
            let v = client.container_inspect_raw(&r.id, false).await?;
            let st = &v["State"];
            let running = st["Running"].as_bool() == Some(true);
            match st["Health"]["Status"].as_str() {
                Some("healthy") => break,
                Some("unhealthy") => {
                    progress.failed("Container", &r.name, "Error");
                    anyhow::bail!("container {} is unhealthy", r.name);
                }
                None if running => break,
                _ => {}
            }
            if !running && st["Restarting"].as_bool() != Some(true) {
                progress.failed("Container", &r.name, "Error");
                anyhow::bail!("container {} exited ({})", r.name, st["ExitCode"]);
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                progress.failed("Container", &r.name, "Error");
                anyhow::bail!(
                    "application not healthy after {:?}",
                    timeout.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        progress.done("Container", &r.name, "Healthy");
    }
    Ok(())
}

/// Query helper for `--filter label=…`.
pub fn label_query(labels: &[String]) -> Query {
    Query::new()
        .flag("all", true)
        .set("filters", json!({ "label": labels }).to_string())
}
