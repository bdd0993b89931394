//! `compose down`: the project's containers in reverse dependency order — each service as
//! soon as every service depending on it is gone, independent ones side by side — then its
//! networks and (with `-v`) named volumes side by side, then (with `--rmi`) images.

use std::collections::{BTreeSet, HashMap};

use berth_api::{Body, Client, Method};
use berth_compose::Project;
use futures_util::future::{join, join_all};
use serde_json::Value;
use tokio::sync::watch;

use super::progress::Progress;
use super::{engine, spec, up};

#[derive(Clone, Debug, Default)]
pub struct DownOptions {
    pub volumes: bool,
    pub rmi: Option<String>,
    pub remove_orphans: bool,
    pub timeout: Option<i64>,
    pub services: Vec<String>,
}

/// `compose down`. It never removes named volumes without `-v`, never external ones, never another project's
/// containers, networks or volumes (they are checked by label).
pub async fn down(client: &Client, p: &Project, o: &DownOptions) -> anyhow::Result<i32> {
    let progress = Progress::new("Running");
    let all = engine::project_containers(client, &p.name, None).await?;
    let orphaned = up::orphans(p, &all);
    if !orphaned.is_empty() && !o.remove_orphans {
        let names: Vec<&str> = orphaned.iter().map(engine::name_of).collect();
        eprintln!("WARN[0000] Found orphan containers ({names:?}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.");
    }
    let only: Option<Vec<String>> = (!o.services.is_empty()).then(|| o.services.clone());
    let doomed: Vec<Value> = all
        .into_iter()
        .filter(|c| {
            let svc = engine::service_of(c);
            let orphan = p.model["services"].get(svc).is_none()
                && c["Labels"][spec::LABEL_ONEOFF].as_str() != Some("True");
            (!orphan || o.remove_orphans)
                && only.as_ref().is_none_or(|s| s.iter().any(|x| x == svc))
        })
        .collect();
    if only.is_some() {
        remove_containers(client, p, doomed, o, &progress).await?;
        return Ok(0);
    }
    // What the project owns is looked up while its containers go.
    let (removed, (networks, volumes)) = join(
        remove_containers(client, p, doomed, o, &progress),
        join(owned_networks(client, p), async {
            if o.volumes {
                owned_volumes(client, p).await
            } else {
                Vec::new()
            }
        }),
    )
    .await;
    removed?;
    let (_, vols) = join(
        join_all(
            networks
                .iter()
                .map(|n| remove_network(client, n, &progress)),
        ),
        join_all(volumes.iter().map(|v| remove_volume(client, v, &progress))),
    )
    .await;
    vols.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    if let Some(mode) = &o.rmi {
        remove_images(client, p, mode, &progress).await?;
    }
    Ok(0)
}

/// Stop and remove containers, a service's only once its dependents' are gone.
async fn remove_containers(
    client: &Client,
    p: &Project,
    doomed: Vec<Value>,
    o: &DownOptions,
    progress: &Progress,
) -> anyhow::Result<()> {
    let (client, progress, timeout, volumes) =
        (client.clone(), progress.clone(), o.timeout, o.volumes);
    in_reverse_dependency_order(p, doomed, move |c| {
        let (client, progress) = (client.clone(), progress.clone());
        async move { remove_one(&client, &c, &progress, timeout, volumes).await }
    })
    .await
}

/// Run `f` on each container — a service's once every service depending on it is done,
/// independent ones side by side — and return the first failure.
pub async fn in_reverse_dependency_order<F, Fut>(
    p: &Project,
    containers: Vec<Value>,
    f: F,
) -> anyhow::Result<()>
where
    F: Fn(Value) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let mut by_service: HashMap<String, Vec<Value>> = HashMap::new();
    for c in containers {
        by_service
            .entry(engine::service_of(&c).to_string())
            .or_default()
            .push(c);
    }
    // Who depends on whom, among the services that have containers here.
    let mut dependents: HashMap<&str, Vec<String>> = HashMap::new();
    for s in by_service.keys() {
        if let Some(deps) = p.model["services"][s]["depends_on"].as_object() {
            for d in deps.keys() {
                if by_service.contains_key(d) {
                    dependents.entry(d.as_str()).or_default().push(s.clone());
                }
            }
        }
    }
    let (mut senders, done): (HashMap<String, _>, HashMap<String, _>) = by_service
        .keys()
        .map(|s| {
            let (tx, rx) = watch::channel(false);
            ((s.clone(), tx), (s.clone(), rx))
        })
        .unzip();
    let mut set = tokio::task::JoinSet::new();
    for (service, containers) in by_service {
        let waits: Vec<watch::Receiver<bool>> = dependents
            .get(service.as_str())
            .map(|v| v.iter().map(|d| done[d].clone()).collect())
            .unwrap_or_default();
        let tx = senders.remove(&service).expect("a channel per service");
        let f = f.clone();
        set.spawn(async move {
            for mut w in waits {
                // A dependent that failed still lets its dependencies go.
                let _ = w.wait_for(|v| *v).await;
            }
            let r = join_all(containers.into_iter().map(&f))
                .await
                .into_iter()
                .collect::<anyhow::Result<Vec<()>>>();
            let _ = tx.send(true);
            r
        });
    }
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(e) => first_err = first_err.or(Some(e.into())),
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Stop (if running) and remove one container, with compose's events.
async fn remove_one(
    client: &Client,
    c: &Value,
    progress: &Progress,
    timeout: Option<i64>,
    volumes: bool,
) -> anyhow::Result<()> {
    let id = c["Id"].as_str().unwrap_or("");
    let name = engine::name_of(c);
    if matches!(
        c["State"].as_str(),
        Some("running" | "restarting" | "paused")
    ) {
        progress.working("Container", name, "Stopping");
        client.container_stop(id, None, timeout).await?;
        progress.done("Container", name, "Stopped");
    }
    progress.working("Container", name, "Removing");
    match client.container_remove(id, true, volumes, false).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(anyhow::Error::new(e)),
    }
    progress.done("Container", name, "Removed");
    Ok(())
}

/// The project's own networks (by label), never a same-named stranger nor an external one.
async fn owned_networks(client: &Client, p: &Project) -> Vec<String> {
    let Some(nets) = p.model["networks"].as_object() else {
        return Vec::new();
    };
    let names: Vec<&str> = nets
        .iter()
        .filter(|(_, n)| n["external"].as_bool() != Some(true))
        .map(|(key, n)| n["name"].as_str().unwrap_or(key))
        .collect();
    let found = join_all(
        names
            .iter()
            .map(|n| async move { client.get_json::<Value>(&format!("/networks/{n}")).await }),
    )
    .await;
    names
        .into_iter()
        .zip(found)
        .filter(|(_, info)| {
            info.as_ref()
                .is_ok_and(|i| i["Labels"][spec::LABEL_PROJECT].as_str() == Some(p.name.as_str()))
        })
        .map(|(n, _)| n.to_string())
        .collect()
}

/// The project's own named volumes (by label), never external ones.
async fn owned_volumes(client: &Client, p: &Project) -> Vec<String> {
    let Some(vols) = p.model["volumes"].as_object() else {
        return Vec::new();
    };
    let names: Vec<&str> = vols
        .iter()
        .filter(|(_, v)| v["external"].as_bool() != Some(true))
        .map(|(key, v)| v["name"].as_str().unwrap_or(key))
        .collect();
    let found = join_all(
        names
            .iter()
            .map(|n| async move { client.get_json::<Value>(&format!("/volumes/{n}")).await }),
    )
    .await;
    let mut out = Vec::new();
    for (name, info) in names.into_iter().zip(found) {
        let Ok(info) = info else { continue };
        if info["Labels"][spec::LABEL_PROJECT].as_str() != Some(p.name.as_str()) {
            eprintln!("WARN[0000] volume {name:?} exists but doesn't belong to this project");
            continue;
        }
        out.push(name.to_string());
    }
    out
}

async fn remove_network(client: &Client, name: &str, progress: &Progress) {
    progress.working("Network", name, "Removing");
    match client
        .call(Method::DELETE, &format!("/networks/{name}"), Body::Empty)
        .await
    {
        Ok(()) => progress.done("Network", name, "Removed"),
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            progress.failed("Network", name, "Error");
            eprintln!("error while removing network {name}: {e}");
        }
    }
}

async fn remove_volume(client: &Client, name: &str, progress: &Progress) -> anyhow::Result<()> {
    progress.working("Volume", name, "Removing");
    match client
        .call(Method::DELETE, &format!("/volumes/{name}"), Body::Empty)
        .await
    {
        Ok(()) => progress.done("Volume", name, "Removed"),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// `--rmi local|all`: the services' images (`local`: those compose named itself).
async fn remove_images(
    client: &Client,
    p: &Project,
    mode: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        mode == "local" || mode == "all",
        "invalid --rmi value {mode:?}: local or all"
    );
    let mut images = BTreeSet::new();
    for s in p.service_names() {
        let local = p.model["services"][&s]["image"].is_null();
        if mode == "all" || local {
            images.insert(spec::image_name(p, &s));
        }
    }
    for img in images {
        if !engine::image_exists(client, &img).await? {
            continue;
        }
        progress.working("Image", &img, "Removing");
        match client.image_remove(&img, false, false).await {
            Ok(_) => progress.done("Image", &img, "Removed"),
            Err(e) => {
                progress.failed("Image", &img, "Error");
                eprintln!("error while removing image {img}: {e}");
            }
        }
    }
    Ok(())
}
