//! Container lifecycle: create, start, stop, kill, remove, exit handling and re-adoption.

use crate::container::{
    now_rfc3339, Container, ContainerRecord, Lifecycle, RunState, Status, ZERO_TIME,
};
use crate::error::{ApiError, ApiResult};
use crate::shim;
use crate::signal;
use crate::state::{Daemon, Shared};
use berth_api::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use berth_image::ImageRecord;
use berth_runtime::spec::{NetworkNamespace, SpecOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `POST /containers/create`.
pub async fn create(
    d: &Shared,
    name: Option<String>,
    body: ContainerCreateBody,
) -> ApiResult<(String, Vec<String>)> {
    let image_name = body.image.clone().unwrap_or_default();
    if image_name.is_empty() {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    }
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => {
            let n = n.strip_prefix('/').unwrap_or(&n).to_string();
            if !valid_name(&n) {
                return Err(ApiError::bad_request(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            if let Some(holder) = d.name_holder(&n) {
                return Err(crate::state::name_conflict(&n, &holder.id));
            }
            n
        }
        None => generate_name(d),
    };
    let images = d.images.clone();
    let lookup = image_name.clone();
    let image = tokio::task::spawn_blocking(move || images.resolve(&lookup)).await??;
    let mut host_config = body.host_config.clone().unwrap_or_default();
    validate_host_config(&host_config)?;
    if host_config
        .network_mode
        .as_deref()
        .is_none_or(|m| m.is_empty() || m == "default")
    {
        host_config.network_mode = Some("bridge".into());
    }
    if host_config
        .log_config
        .as_ref()
        .is_none_or(|l| l.typ.as_deref().is_none_or(str::is_empty))
    {
        host_config.log_config = Some(berth_api::models::HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::new()),
        });
    }
    let config = merge_config(&body, &image)?;
    let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
    argv.extend(config.cmd.clone().unwrap_or_default());
    if argv.is_empty() {
        return Err(ApiError::bad_request("no command specified"));
    }
    let mut mounts = {
        let from = |n: &str| -> ApiResult<Vec<crate::mounts::MountPoint>> {
            Ok(d.find(n)?.lock().mounts.clone())
        };
        crate::mounts::parse_all(&host_config, config.volumes.as_ref(), &from)?
    };
    let vols = d.volumes.clone();
    let (mounts, created_volumes) = tokio::task::spawn_blocking(move || {
        crate::mounts::resolve(&mut mounts, &vols).map(|c| (mounts, c))
    })
    .await??;
    let drop_created = |d: &Shared| {
        for v in &created_volumes {
            let _ = d.volumes.remove(v);
        }
    };
    let id = new_id();
    let record = ContainerRecord {
        id: id.clone(),
        name,
        created: now_rfc3339(),
        image: image_name,
        image_id: image.id.to_string(),
        path: argv[0].clone(),
        args: argv[1..].to_vec(),
        config,
        host_config,
        state: RunState::default(),
        restart_count: 0,
        manually_stopped: false,
        mounts,
    };
    let dir = d.paths.container_dir(&id);
    // The files and the snapshot in one trip to the blocking pool (each trip is a thread
    // hand-off on `run`'s path).
    let prepared = {
        let (d2, rec2, img) = (d.clone(), record.clone(), image.id.clone());
        tokio::task::spawn_blocking(move || -> ApiResult<()> {
            std::fs::create_dir_all(d2.paths.bundle_dir(&rec2.id))?;
            write_etc_files(&d2, &rec2)?;
            let lowers = d2.images.lowers(&img)?;
            d2.images.snapshots().prepare_container(&rec2.id, &lowers)?;
            Ok(())
        })
        .await?
    };
    let undo_disk = |d: &Shared| {
        drop_created(d);
        let _ = d.images.snapshots().remove_container(&id);
        let _ = std::fs::remove_dir_all(&dir);
    };
    if let Err(e) = prepared {
        undo_disk(d);
        return Err(e);
    }
    let c = match d.insert(record) {
        Ok(c) => c,
        Err(e) => {
            undo_disk(d);
            return Err(e);
        }
    };
    let (cname, chc) = {
        let r = c.lock();
        (r.name.clone(), r.host_config.clone())
    };
    let joined =
        crate::networking::join_for_create(d, &id, &cname, &chc, body.networking_config.as_ref());
    // An --rm container need not survive a crash; skipping the fsync keeps `run --rm` fast.
    let durable = c.lock().host_config.auto_remove != Some(true);
    if let Err(e) = joined.and_then(|_| d.save(&c, durable)) {
        crate::networking::forget(d, &id).await;
        d.remove_from_index(&id);
        undo_disk(d);
        return Err(e);
    }
    crate::events::container(d, &c.get(), "create", &[]);
    Ok((id, Vec::new()))
}

fn validate_host_config(hc: &HostConfig) -> ApiResult<()> {
    if let Some(rp) = &hc.restart_policy {
        use berth_api::models::RestartPolicyNameEnum as R;
        if hc.auto_remove == Some(true)
            && matches!(
                rp.name,
                Some(R::ALWAYS) | Some(R::UNLESS_STOPPED) | Some(R::ON_FAILURE)
            )
        {
            return Err(ApiError::bad_request(
                "conflicting options: cannot specify both --restart and --rm",
            ));
        }
    }
    Ok(())
}

pub fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    n.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn generate_name(d: &Daemon) -> String {
    const LEFT: &[&str] = &[
        "admiring", "bold", "brave", "clever", "eager", "festive", "gallant", "happy", "jolly",
        "keen", "loving", "nifty", "quirky", "serene", "stoic", "tender", "vibrant", "wizardly",
        "zealous", "upbeat",
    ];
    const RIGHT: &[&str] = &[
        "albattani",
        "babbage",
        "curie",
        "darwin",
        "euler",
        "fermi",
        "galileo",
        "hopper",
        "kepler",
        "lovelace",
        "meitner",
        "newton",
        "noether",
        "pascal",
        "ritchie",
        "shannon",
        "tesla",
        "turing",
        "wozniak",
        "yalow",
    ];
    loop {
        let n = format!(
            "{}_{}",
            LEFT[rand::random_range(0..LEFT.len())],
            RIGHT[rand::random_range(0..RIGHT.len())]
        );
        if d.name_holder(&n).is_none() {
            return n;
        }
    }
}

/// The image's config as the API's container config (same JSON field names).
pub fn image_run_config(image: &ImageRecord) -> ContainerConfig {
    serde_json::to_value(&image.config.config)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// Docker's rules for combining the create body with the image's defaults.
fn merge_config(body: &ContainerCreateBody, image: &ImageRecord) -> ApiResult<ContainerConfig> {
    let img = image_run_config(image);
    let v = serde_json::to_value(body).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut c: ContainerConfig =
        serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Env: the image's, overridden by key.
    let mut env: Vec<String> = img.env.clone().unwrap_or_default();
    for e in c.env.clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next() != Some(key.as_str()));
        env.push(e);
    }
    c.env = Some(env);
    let entry_given = c.entrypoint.as_ref().is_some_and(|e| !e.is_empty());
    let entry_cleared = c
        .entrypoint
        .as_ref()
        .is_some_and(|e| e.is_empty() || e == &vec![String::new()]);
    if entry_cleared {
        c.entrypoint = None;
    } else if !entry_given {
        c.entrypoint = img.entrypoint.clone();
    }
    if c.cmd.as_ref().is_none_or(|x| x.is_empty()) && !entry_given {
        c.cmd = img.cmd.clone();
    }
    if c.working_dir.as_deref().is_none_or(str::is_empty) {
        c.working_dir = img.working_dir.clone().filter(|w| !w.is_empty());
    }
    if c.user.as_deref().is_none_or(str::is_empty) {
        c.user = img.user.clone();
    }
    let mut labels = img.labels.clone().unwrap_or_default();
    labels.extend(c.labels.clone().unwrap_or_default());
    c.labels = Some(labels);
    if let Some(ports) = img.exposed_ports.clone() {
        let mut p = ports;
        p.extend(c.exposed_ports.clone().unwrap_or_default());
        c.exposed_ports = Some(p);
    }
    if let Some(vols) = img.volumes.clone() {
        let mut v = vols;
        v.extend(c.volumes.clone().unwrap_or_default());
        c.volumes = Some(v);
    }
    if c.stop_signal.as_deref().is_none_or(str::is_empty) {
        c.stop_signal = img.stop_signal.clone();
    }
    if c.healthcheck.is_none() {
        c.healthcheck = img.healthcheck.clone();
    }
    c.image = body.image.clone();
    if c.hostname.as_deref().is_none_or(str::is_empty) {
        c.hostname = None;
    }
    Ok(c)
}

fn write_etc_files(d: &Daemon, rec: &ContainerRecord) -> ApiResult<()> {
    let dir = d.paths.container_dir(&rec.id);
    let hostname = hostname_of(rec);
    let host_net = rec.host_config.network_mode.as_deref() == Some("host");
    let hostname_data = if host_net {
        std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| format!("{hostname}\n"))
    } else {
        format!("{hostname}\n")
    };
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    if host_net {
        hosts = std::fs::read_to_string("/etc/hosts").unwrap_or(hosts);
    }
    for h in rec.host_config.extra_hosts.clone().unwrap_or_default() {
        if let Some((name, ip)) = h.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let resolv = resolv_conf(&rec.host_config);
    std::fs::write(dir.join("hostname"), hostname_data)?;
    std::fs::write(dir.join("hosts"), hosts)?;
    std::fs::write(dir.join("resolv.conf"), resolv)?;
    Ok(())
}

/// The host's resolv.conf without loopback resolvers (unreachable from a container), plus --dns*.
fn resolv_conf(hc: &HostConfig) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let dns = hc.dns.clone().unwrap_or_default();
    let search = hc.dns_search.clone().unwrap_or_default();
    let opts = hc.dns_options.clone().unwrap_or_default();
    let mut out = String::new();
    for line in host.lines() {
        let t = line.trim();
        if t.starts_with("nameserver") {
            if !dns.is_empty() {
                continue;
            }
            let addr = t.split_whitespace().nth(1).unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
        }
        if (t.starts_with("search") && !search.is_empty())
            || (t.starts_with("options") && !opts.is_empty())
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for s in dns {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !opts.is_empty() {
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

pub fn hostname_of(rec: &ContainerRecord) -> String {
    rec.config
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| rec.id[..12].to_string())
}

/// The daemon-managed file for `dest`, unless one of the container's mounts targets it.
fn managed_file(rec: &ContainerRecord, dest: &str, file: PathBuf) -> Option<PathBuf> {
    crate::mounts::covered(&rec.mounts, dest)
        .is_none()
        .then_some(file)
}

/// Build the OCI spec for a container from its record.
fn spec_options(d: &Daemon, rec: &ContainerRecord, rootfs: PathBuf) -> SpecOptions {
    let hc = &rec.host_config;
    let dir = d.paths.container_dir(&rec.id);
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    let network = match hc.network_mode.as_deref() {
        Some("host") => NetworkNamespace::Host,
        _ => NetworkNamespace::New,
    };
    let mut opts = SpecOptions {
        rootfs,
        args,
        env: rec.config.env.clone().unwrap_or_default(),
        cwd: rec
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: rec.config.user.clone().unwrap_or_default(),
        hostname: hostname_of(rec),
        domainname: rec.config.domainname.clone().unwrap_or_default(),
        terminal: rec.config.tty.unwrap_or(false),
        // A user's mount on one of these files replaces the daemon's (as Docker).
        hosts_file: managed_file(rec, "/etc/hosts", dir.join("hosts")),
        hostname_file: managed_file(rec, "/etc/hostname", dir.join("hostname")),
        resolv_conf: managed_file(rec, "/etc/resolv.conf", dir.join("resolv.conf")),
        extra_mounts: crate::mounts::oci_mounts(&rec.mounts),
        privileged: hc.privileged.unwrap_or(false),
        read_only: hc.readonly_rootfs.unwrap_or(false),
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        network,
        ipc_host: hc.ipc_mode.as_deref() == Some("host"),
        pid_host: hc.pid_mode.as_deref() == Some("host"),
        cgroup_path: format!("/berth/{}", rec.id),
        memory_limit: hc.memory.filter(|m| *m > 0),
        cpu_shares: hc.cpu_shares.filter(|s| *s > 0).map(|s| s as u64),
        pids_limit: hc.pids_limit.filter(|p| *p > 0),
        cpu_quota: hc.cpu_quota.filter(|q| *q > 0),
        cpu_period: hc.cpu_period.filter(|p| *p > 0).map(|p| p as u64),
        sysctls: hc.sysctls.clone().unwrap_or_default().into_iter().collect(),
        shm_size: hc.shm_size.filter(|s| *s > 0).map(|s| s as u64),
        no_new_privileges: hc.security_opt.as_ref().is_some_and(|o| {
            o.iter()
                .any(|s| s == "no-new-privileges" || s == "no-new-privileges:true")
        }),
        seccomp: !hc.privileged.unwrap_or(false)
            && !hc.security_opt.as_ref().is_some_and(|o| {
                o.iter()
                    .any(|s| s == "seccomp=unconfined" || s == "seccomp:unconfined")
            }),
        oom_score_adj: hc.oom_score_adj.filter(|o| *o != 0).map(|o| o as i32),
        rlimits: hc
            .ulimits
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|u| Some((u.name?, u.soft? as u64, u.hard? as u64)))
            .collect(),
    };
    if let Some(nano) = hc.nano_cpus.filter(|n| *n > 0) {
        opts.cpu_period = Some(100_000);
        opts.cpu_quota = Some(nano / 10_000);
    }
    // Under a mount of a parent (e.g. a volume on /etc), the managed files go on top of it.
    for (dest, name) in [
        ("/etc/resolv.conf", "resolv.conf"),
        ("/etc/hostname", "hostname"),
        ("/etc/hosts", "hosts"),
    ] {
        if crate::mounts::covered(&rec.mounts, dest) == Some(false) {
            opts.extra_mounts
                .extend(crate::mounts::file_bind(dest, &dir.join(name)));
        }
    }
    opts
}

/// `POST /containers/{id}/start`. `Ok(false)` means it was already running (304).
pub async fn start(d: &Shared, c: &Arc<Container>) -> ApiResult<bool> {
    let _op = c.op_lock.lock().await;
    if !c.status().is_running() {
        crate::restart::manual_start(c);
    }
    start_locked(d, c).await
}

/// Mount the rootfs and write the bundle for a start. `sandbox`: the network namespace the
/// daemon made for the container, to join.
async fn prepare_bundle(
    d: &Shared,
    rec: &ContainerRecord,
    sandbox: Option<PathBuf>,
) -> ApiResult<()> {
    // --network container:X joins X's namespace, which must exist now.
    let joined_netns = crate::networking::joined_netns(d, rec)?.or(sandbox);
    let id = rec.id.clone();
    let d2 = d.clone();
    let image_id = rec.image_id.clone();
    let rec2 = rec.clone();
    // Mount the rootfs and write the bundle.
    tokio::task::spawn_blocking(move || -> ApiResult<()> {
        let digest = berth_image::Digest::parse(&image_id)?;
        let lowers = d2.images.lowers(&digest)?;
        let snap = d2.images.snapshots().prepare_container(&id, &lowers)?;
        if !snap.is_mounted() {
            snap.mount()?;
        }
        for m in rec2.mounts.iter().filter(|m| m.typ == "volume") {
            d2.volumes.ensure_mounted(&m.name)?;
        }
        crate::mounts::copy_up(&snap.merged, &rec2.mounts)?;
        let mut opts = spec_options(&d2, &rec2, snap.merged.clone());
        if let Some(ns) = joined_netns {
            opts.network = NetworkNamespace::Path(ns);
        }
        let spec = berth_runtime::spec::build(&opts)?;
        berth_runtime::spec::write_bundle(&d2.paths.bundle_dir(&id), &spec)?;
        Ok(())
    })
    .await?
}

pub(crate) async fn start_locked(d: &Shared, c: &Arc<Container>) -> ApiResult<bool> {
    let rec = c.get();
    if rec.state.status.is_running() {
        return Ok(false);
    }
    if rec.state.status == Status::Removing || rec.state.status == Status::Dead {
        return Err(ApiError::conflict(format!(
            "container {} is marked for removal and cannot be started",
            rec.id
        )));
    }
    // The network namespace is made here and plumbed while the shim starts, rather than after
    // the runtime has made it: the veths (a few ms of kernel work) leave the critical path.
    let sandbox = match &d.networks {
        Some(nets) if crate::networking::wants_sandbox(d, &rec) => Some(match nets.take_spare() {
            Some(s) => s,
            None => tokio::task::spawn_blocking(berth_runtime::netns::Sandbox::create)
                .await?
                .map_err(|e| ApiError::internal(format!("network namespace: {e}")))?,
        }),
        _ => None,
    };
    let plumbing = {
        let netns = match &sandbox {
            Some(s) => Some(s.file().try_clone()?),
            None => None,
        };
        let (d2, rec2) = (d.clone(), rec.clone());
        tokio::spawn(async move { crate::networking::setup(&d2, &rec2, netns).await })
    };
    // Whatever stops the start below first waits for the plumbing, then undoes it.
    let unplumb = |plumbing: tokio::task::JoinHandle<ApiResult<()>>| {
        let id = rec.id.clone();
        async move {
            let _ = plumbing.await;
            crate::networking::teardown(d, &id).await;
        }
    };
    if let Err(e) = prepare_bundle(d, &rec, sandbox.as_ref().map(|s| s.path())).await {
        unplumb(plumbing).await;
        // Nothing ran. Clients waiting for this start (attach, wait) are released, and an
        // --rm container is removed, as after a failed shim start below: `docker run --rm`
        // waits for that removal.
        c.lock().state.error = e.message.clone();
        let _ = d.save(c, false);
        unmount(d, &rec.id).await;
        c.gate().waiting.clear();
        c.lifecycle.send_modify(|l| {
            l.exits += 1;
            l.exit_code = 128;
        });
        if rec.host_config.auto_remove == Some(true) {
            let d2 = d.clone();
            let c2 = c.clone();
            tokio::spawn(async move {
                let _ = remove(&d2, &c2, true, true).await;
            });
        }
        return Err(e);
    }
    let open_stdin = rec.config.open_stdin.unwrap_or(false);
    let pid = match shim::spawn(d, &rec.id, open_stdin).await {
        Ok(pid) => pid,
        Err(f) => {
            unplumb(plumbing).await;
            {
                let mut r = c.lock();
                r.state.status = Status::Exited;
                r.state.exit_code = f.exit_code;
                r.state.error = f.message.clone();
                r.state.finished_at = now_rfc3339();
            }
            let _ = d.save(c, false);
            unmount(d, &rec.id).await;
            // Attaches waiting for this start will never get a stream.
            c.gate().waiting.clear();
            c.lifecycle.send_modify(|l| {
                l.exits += 1;
                l.exit_code = f.exit_code;
            });
            if rec.host_config.auto_remove == Some(true) {
                // As moby: a failed start of an --rm container removes it (docker run waits for that).
                let d2 = d.clone();
                let c2 = c.clone();
                tokio::spawn(async move {
                    let _ = remove(&d2, &c2, true, true).await;
                });
            }
            let msg = format!("failed to create task for container: {}", f.message);
            return Err(if f.exit_code == 126 || f.exit_code == 127 {
                ApiError::bad_request(msg)
            } else {
                ApiError::internal(msg)
            });
        }
    };
    let plumbed = plumbing
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
        .and_then(|r| r);
    if let Err(e) = plumbed {
        // The init never ran the user's process: kill it; the monitor records the exit.
        let socket = d.paths.shim_socket(&rec.id);
        let _ = shim::call(
            &socket,
            crate::shim::Request::Kill {
                signal: 9,
                all: true,
            },
        )
        .await;
        monitor(d.clone(), c.clone());
        return Err(e);
    }
    let socket = d.paths.shim_socket(&rec.id);
    // Attach streams that were waiting for the start connect now, before the process runs,
    // so they see all of its output.
    let pending: Vec<_> = {
        let mut gate = c.gate();
        gate.shim_up = true;
        std::mem::take(&mut gate.waiting)
    };
    for p in pending {
        let stream = shim::request(&socket, &p.request).await.map(|(_, s)| s);
        let _ = p.reply.send(stream);
    }
    shim::call(&socket, crate::shim::Request::Start).await?;
    // The init is in the namespace now: the daemon's hold on it can go, and the next one be made.
    if sandbox.is_some() {
        drop(sandbox);
        if let Some(nets) = &d.networks {
            nets.refill_sandbox();
        }
    }
    {
        let mut r = c.lock();
        r.state = RunState {
            status: Status::Running,
            pid,
            exit_code: 0,
            error: String::new(),
            started_at: now_rfc3339(),
            finished_at: ZERO_TIME.to_string(),
            oom_killed: false,
        };
        r.manually_stopped = false;
    }
    c.lifecycle.send_modify(|l| l.running = true);
    crate::events::container(d, &c.get(), "start", &[]);
    d.save(c, false)?;
    monitor(d.clone(), c.clone());
    crate::health::start(d, c);
    Ok(true)
}

/// Watch the shim for the container's exit.
pub fn monitor(d: Shared, c: Arc<Container>) {
    tokio::spawn(async move {
        let socket = d.paths.shim_socket(&c.id);
        let answer = shim::call(&socket, crate::shim::Request::Wait).await;
        let (code, finished) = match answer {
            Ok(v) => (
                v.get("exit_code").and_then(|x| x.as_i64()).unwrap_or(255),
                v.get("finished_at")
                    .and_then(|x| x.as_str())
                    .map(String::from),
            ),
            Err(_) => read_exit_file(&d, &c.id).unwrap_or((255, None)),
        };
        on_exit(&d, &c, code, finished).await;
    });
}

fn read_exit_file(d: &Daemon, id: &str) -> Option<(i64, Option<String>)> {
    let data = std::fs::read(d.paths.shim_state_dir(id).join("exit.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    Some((
        v.get("exit_code")?.as_i64()?,
        v.get("finished_at")
            .and_then(|x| x.as_str())
            .map(String::from),
    ))
}

async fn on_exit(d: &Shared, c: &Arc<Container>, code: i64, finished: Option<String>) {
    let auto_remove;
    {
        let mut r = c.lock();
        r.state.status = Status::Exited;
        r.state.exit_code = code;
        r.state.pid = 0;
        r.state.finished_at = finished.unwrap_or_else(now_rfc3339);
        auto_remove = r.host_config.auto_remove.unwrap_or(false);
    }
    crate::events::container(d, &c.get(), "die", &[("exitCode", code.to_string())]);
    c.gate().shim_up = false;
    if !auto_remove {
        let _ = d.save(c, false);
        unmount(d, &c.id).await;
        crate::networking::teardown(d, &c.id).await;
        let _ = tokio::fs::remove_dir_all(d.paths.shim_state_dir(&c.id)).await;
    }
    // An --rm container goes on to its removal, which does all of that off the waiting
    // client's path (the unmount waits for an RCU grace period) or, after a crash, at the next
    // start: its record still says running, and a running container without a shim is exited
    // and then removed there.
    c.lifecycle.send_modify(|l| {
        l.running = false;
        l.exits += 1;
        l.exit_code = code;
    });
    if auto_remove {
        let _ = remove(d, c, true, true).await;
    } else {
        crate::restart::on_exit(d, c);
    }
}

async fn unmount(d: &Daemon, id: &str) {
    let images = d.images.clone();
    let id = id.to_string();
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(snap) = images.snapshots().container(&id) {
            if snap.is_mounted() {
                let _ = snap.unmount();
            }
        }
    })
    .await;
}

/// Send a signal through the shim. 409 if not running.
pub async fn kill(d: &Shared, c: &Arc<Container>, sig: Option<&str>) -> ApiResult<()> {
    let signo = match sig.filter(|s| !s.is_empty()) {
        Some(s) => {
            signal::parse(s).ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {s}")))?
        }
        None => 9,
    };
    let rec = c.get();
    if !rec.state.status.is_running() {
        return Err(ApiError::conflict(format!(
            "cannot kill container: {}: container {} is not running",
            rec.name, rec.id
        )));
    }
    if rec.state.status == Status::Restarting {
        // No process to signal during the restart back-off: a conflict, as Docker's.
        return Err(ApiError::conflict(format!(
            "cannot kill container: {}: container {} is restarting, wait until the container is running",
            rec.name, rec.id
        )));
    }
    if signo == 9 || signo == 15 {
        c.lock().manually_stopped = true;
    }
    crate::events::container(d, &rec, "kill", &[("signal", signo.to_string())]);
    let mut rx = c.lifecycle.subscribe();
    shim::call(
        &d.paths.shim_socket(&rec.id),
        crate::shim::Request::Kill {
            signal: signo,
            all: false,
        },
    )
    .await?;
    if signo == 9 {
        // As Docker's: a SIGKILL returns once the container is down, so the next inspect
        // (or `compose kill` then `rm`) sees it stopped. Bounded for a process stuck in D state.
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| !l.running)).await;
    }
    Ok(())
}

/// `stop`: the stop signal, `timeout` seconds, then SIGKILL. `Ok(false)` = was not running (304).
pub async fn stop(
    d: &Shared,
    c: &Arc<Container>,
    timeout: Option<i64>,
    sig: Option<&str>,
) -> ApiResult<bool> {
    let _op = c.op_lock.lock().await;
    stop_locked(d, c, timeout, sig).await
}

async fn stop_locked(
    d: &Shared,
    c: &Arc<Container>,
    timeout: Option<i64>,
    sig: Option<&str>,
) -> ApiResult<bool> {
    let rec = c.get();
    if !rec.state.status.is_running() {
        return Ok(false);
    }
    c.lock().manually_stopped = true;
    if rec.state.status == Status::Restarting {
        // Waiting to be restarted: no process to signal; it just stays exited.
        crate::restart::cancel(d, c);
        return Ok(true);
    }
    let sig_name = sig
        .filter(|s| !s.is_empty())
        .map(String::from)
        .or_else(|| rec.config.stop_signal.clone().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "TERM".into());
    let signo = signal::parse(&sig_name)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {sig_name}")))?;
    let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
    let socket = d.paths.shim_socket(&rec.id);
    let mut rx = c.lifecycle.subscribe();
    crate::events::container(d, &rec, "kill", &[("signal", signo.to_string())]);
    let _ = shim::call(
        &socket,
        crate::shim::Request::Kill {
            signal: signo,
            all: false,
        },
    )
    .await;
    let exited = async {
        let _ = rx.wait_for(|l| !l.running).await;
    };
    let done = if timeout < 0 {
        exited.await;
        true
    } else {
        tokio::time::timeout(Duration::from_secs(timeout as u64), exited)
            .await
            .is_ok()
    };
    if !done {
        let _ = shim::call(
            &socket,
            crate::shim::Request::Kill {
                signal: 9,
                all: true,
            },
        )
        .await;
        let mut rx = c.lifecycle.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| !l.running)).await;
    }
    crate::events::container(d, &c.get(), "stop", &[]);
    Ok(true)
}

pub async fn restart(
    d: &Shared,
    c: &Arc<Container>,
    timeout: Option<i64>,
    sig: Option<&str>,
) -> ApiResult<()> {
    let _op = c.op_lock.lock().await;
    stop_locked(d, c, timeout, sig).await?;
    // The monitor records the exit asynchronously; wait for it before starting again.
    let mut rx = c.lifecycle.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| !l.running)).await;
    crate::restart::manual_start(c);
    start_locked(d, c).await?;
    crate::events::container(d, &c.get(), "restart", &[]);
    Ok(())
}

/// `DELETE /containers/{id}`.
pub async fn remove(d: &Shared, c: &Arc<Container>, force: bool, volumes: bool) -> ApiResult<()> {
    let rec = c.get();
    if rec.state.status == Status::Removing {
        return Ok(());
    }
    if rec.state.status.is_running() {
        if !force {
            return Err(ApiError::conflict(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                rec.name
            )));
        }
        let socket = d.paths.shim_socket(&rec.id);
        let mut rx = c.lifecycle.subscribe();
        if rec.state.status == Status::Paused {
            let _ = shim::call(&socket, crate::shim::Request::Resume).await;
        }
        let _ = shim::call(
            &socket,
            crate::shim::Request::Kill {
                signal: 9,
                all: true,
            },
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| !l.running)).await;
        if c.status() == Status::Removing {
            // The exit handler's auto-remove got there first.
            let mut rx = c.lifecycle.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|l| l.removed)).await;
            return Ok(());
        }
    }
    c.lock().state.status = Status::Removing;
    // Recorded so a crash before the disk is clean finishes the removal at the next start.
    let _ = d.save(c, false);
    // Two-phase: out of the index first, then from disk.
    d.remove_from_index(&rec.id);
    crate::networking::forget(d, &rec.id).await;
    crate::restart::reset(&rec.id);
    crate::health::forget(&rec.id);
    let _ = d.execs.remove_for_container(&rec.id);
    let images = d.images.clone();
    let id = rec.id.clone();
    let paths = d.paths.clone();
    // The disk part runs on its own: the container is already gone for every client, and its
    // unmount waits for an RCU grace period that a `run --rm` should not wait for.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = images.snapshots().remove_container(&id) {
            tracing::warn!("removing snapshot of {id}: {e}");
        }
        let _ = std::fs::remove_dir_all(paths.container_dir(&id));
        let _ = std::fs::remove_dir_all(paths.shim_state_dir(&id));
    });
    if volumes {
        // `rm -v` / `--rm`: this container's anonymous volumes go too, never named ones, and
        // never one another container still uses (through --volumes-from).
        for m in rec
            .mounts
            .iter()
            .filter(|m| m.typ == "volume" && m.anonymous)
        {
            if volume_users(d, &m.name).is_empty() {
                let vols = d.volumes.clone();
                let name = m.name.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || vols.remove(&name)).await {
                    tracing::warn!("removing volume {}: {e}", m.name);
                }
            }
        }
    }
    crate::events::container(d, &rec, "destroy", &[]);
    c.lifecycle.send_modify(|l| l.removed = true);
    Ok(())
}

/// The ids of the containers whose mounts use volume `name`.
pub fn volume_users(d: &Daemon, name: &str) -> Vec<String> {
    let mut ids: Vec<String> = d
        .all()
        .into_iter()
        .filter(|c| {
            c.lock()
                .mounts
                .iter()
                .any(|m| m.typ == "volume" && m.name == name)
        })
        .map(|c| c.id.clone())
        .collect();
    ids.sort();
    ids
}

/// At daemon start: re-adopt containers whose shims are alive; record the exit of the others.
pub async fn restore(d: &Shared) {
    let all = d.load_all();
    for c in all {
        let rec = c.get();
        if rec.state.status == Status::Removing {
            let _ = remove(d, &c, true, false).await;
            continue;
        }
        if rec.state.status == Status::Restarting {
            // The daemon stopped during the back-off: the back-off goes on.
            crate::restart::resume(d, &c);
            continue;
        }
        if !rec.state.status.is_running() {
            if rec.state.status == Status::Exited && crate::restart::wants_start_at_boot(&rec) {
                let (d2, c2) = (d.clone(), c.clone());
                tokio::spawn(async move {
                    if let Err(e) = start(&d2, &c2).await {
                        tracing::warn!("starting {} at boot: {}", &c2.id[..12], e.message);
                    }
                });
            }
            continue;
        }
        let socket = d.paths.shim_socket(&rec.id);
        match shim::call(&socket, crate::shim::Request::State).await {
            Ok(v) if v.get("status").and_then(|s| s.as_str()) != Some("exited") => {
                tracing::info!("re-adopted container {}", &rec.id[..12]);
                monitor(d.clone(), c.clone());
                crate::health::start(d, &c);
            }
            _ => {
                let (code, finished) = read_exit_file(d, &rec.id).unwrap_or((255, None));
                on_exit(d, &c, code, finished).await;
            }
        }
    }
}

/// Wait conditions of `POST /containers/{id}/wait`.
pub async fn wait(c: Arc<Container>, condition: &str) -> i64 {
    let mut rx = c.lifecycle.subscribe();
    let start: Lifecycle = rx.borrow().clone();
    let res = match condition {
        "next-exit" => rx
            .wait_for(|l| l.exits > start.exits || l.removed)
            .await
            .map(|l| l.exit_code),
        "removed" => rx.wait_for(|l| l.removed).await.map(|l| l.exit_code),
        _ => rx
            .wait_for(|l| !l.running || l.removed)
            .await
            .map(|l| l.exit_code),
    };
    // The sender lives as long as the container; a closed channel means it is gone.
    res.unwrap_or_else(|_| c.lock().state.exit_code)
}

/// For `ps`: "Up 5 seconds", "Exited (0) 3 seconds ago", "Created".
pub fn status_text(rec: &ContainerRecord) -> String {
    let since = |t: &str| -> String {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| human_duration(chrono::Utc::now().signed_duration_since(t).num_seconds()))
            .unwrap_or_else(|_| "Less than a second".into())
    };
    match rec.state.status {
        Status::Running => match crate::health::status_suffix(&rec.id) {
            Some(h) => format!("Up {} {h}", since(&rec.state.started_at)),
            None => format!("Up {}", since(&rec.state.started_at)),
        },
        Status::Paused => format!("Up {} (Paused)", since(&rec.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            rec.state.exit_code,
            since(&rec.state.finished_at)
        ),
        Status::Exited if rec.state.finished_at != ZERO_TIME => {
            format!(
                "Exited ({}) {} ago",
                rec.state.exit_code,
                since(&rec.state.finished_at)
            )
        }
        Status::Exited => format!("Exited ({})", rec.state.exit_code),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// Go's units.HumanDuration, as Docker uses it.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ if s < 7200 => "About an hour".into(),
        _ if s < 48 * 3600 => format!("{} hours", s / 3600),
        _ if s < 7 * 24 * 3600 * 2 => format!("{} days", s / 86400),
        _ if s < 24 * 3600 * 30 * 2 => format!("{} weeks", s / (7 * 86400)),
        _ if s < 24 * 3600 * 365 * 2 => format!("{} months", s / (30 * 86400)),
        _ => format!("{} years", s / (365 * 86400)),
    }
}

/// Labels as a plain map (for filters).
pub fn labels_of(rec: &ContainerRecord) -> HashMap<String, String> {
    rec.config.labels.clone().unwrap_or_default()
}
