//! A service of the resolved model as an Engine API container-create body: labels compose
//! uses, mounts, ports, networks with aliases, health check, restart policy.

use berth_compose::Project;
use serde_json::{json, Map, Value};

pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";
pub const LABEL_ONEOFF: &str = "com.docker.compose.oneoff";
pub const LABEL_WORKDIR: &str = "com.docker.compose.project.working_dir";
pub const LABEL_CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const LABEL_DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const LABEL_VERSION: &str = "com.docker.compose.version";
pub const LABEL_NETWORK: &str = "com.docker.compose.network";
pub const LABEL_VOLUME: &str = "com.docker.compose.volume";

/// The compose version berth's labels carry (the spec level it follows).
pub const COMPOSE_VERSION: &str = "2.40.3";

/// The image a service runs: its `image`, or `<project>-<service>` for a build-only service.
pub fn image_name(p: &Project, service: &str) -> String {
    let s = &p.model["services"][service];
    match s["image"].as_str() {
        Some(i) => i.to_string(),
        None => format!("{}-{service}", p.name),
    }
}

/// `<project>-<service>-<n>`, or the service's `container_name`.
pub fn container_name(p: &Project, service: &str, number: u32) -> String {
    p.model["services"][service]["container_name"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{}-{service}-{number}", p.name))
}

/// How many containers a service wants: `scale`, `deploy.replicas`, or 1.
pub fn replicas(p: &Project, service: &str) -> u32 {
    let s = &p.model["services"][service];
    s["scale"]
        .as_u64()
        .or_else(|| s["deploy"]["replicas"].as_u64())
        .unwrap_or(1) as u32
}

/// The full names of the networks a service joins, primary first (`priority`, then name).
pub fn service_networks(p: &Project, service: &str) -> Vec<(String, Value)> {
    let s = &p.model["services"][service];
    let mut nets: Vec<(String, Value)> = s["networks"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    nets.sort_by(|a, b| {
        let pa = a.1["priority"].as_i64().unwrap_or(0);
        let pb = b.1["priority"].as_i64().unwrap_or(0);
        pb.cmp(&pa).then(a.0.cmp(&b.0))
    });
    nets.into_iter()
        .map(|(k, v)| {
            let full = p.model["networks"][&k]["name"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("{}_{k}", p.name));
            (full, v)
        })
        .collect()
}

fn env_list(s: &Value) -> Vec<String> {
    s["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| match v {
                    Value::Null => None,
                    Value::String(v) => Some(format!("{k}={v}")),
                    other => Some(format!("{k}={other}")),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn duration_ns(v: &Value) -> Option<i64> {
    berth_compose::load::parse_duration(v.as_str()?).map(|d| d.as_nanos() as i64)
}

/// Byte sizes compose accepts (`64m`, `1g`, a number).
fn bytes(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1i64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .map(|n| (n * mult as f64) as i64)
}

/// What differs between the containers of one service.
pub struct Instance<'a> {
    pub number: u32,
    pub name: &'a str,
    /// `compose run`'s container (oneoff, no published ports unless asked).
    pub oneoff: bool,
    pub publish_ports: bool,
}

/// The create body of a service's container.
pub fn create_body(p: &Project, service: &str, inst: &Instance) -> anyhow::Result<Value> {
    let s = &p.model["services"][service];
    anyhow::ensure!(
        s.is_object(),
        "no such service: {service}: service not found"
    );
    let image = image_name(p, service);
    let mut labels: Map<String, Value> = s["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(LABEL_PROJECT.into(), json!(p.name));
    labels.insert(LABEL_SERVICE.into(), json!(service));
    labels.insert(LABEL_NUMBER.into(), json!(inst.number.to_string()));
    labels.insert(
        LABEL_ONEOFF.into(),
        json!(if inst.oneoff { "True" } else { "False" }),
    );
    labels.insert(
        LABEL_WORKDIR.into(),
        json!(p.working_dir.display().to_string()),
    );
    labels.insert(LABEL_CONFIG_FILES.into(), json!(p.config_files()));
    labels.insert(LABEL_VERSION.into(), json!(COMPOSE_VERSION));
    labels.insert(
        LABEL_HASH.into(),
        json!(p.config_hash(service).unwrap_or_default()),
    );
    let deps = s["depends_on"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    format!(
                        "{k}:{}:{}",
                        v["condition"].as_str().unwrap_or("service_started"),
                        v["restart"].as_bool().unwrap_or(false)
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    labels.insert(LABEL_DEPENDS_ON.into(), json!(deps));

    let mut mounts = Vec::new();
    for v in s["volumes"].as_array().cloned().unwrap_or_default() {
        let typ = v["type"].as_str().unwrap_or("volume");
        let mut source = v["source"].as_str().unwrap_or("").to_string();
        if typ == "volume" && !source.is_empty() {
            if let Some(name) = p.model["volumes"][&source]["name"].as_str() {
                source = name.to_string();
            }
        }
        if typ == "bind"
            && !source.is_empty()
            && v["bind"]["create_host_path"].as_bool() != Some(false)
            && !std::path::Path::new(&source).exists()
        {
            // The short syntax creates a missing host directory, as compose does.
            let _ = std::fs::create_dir_all(&source);
        }
        let mut m = json!({"Type": typ, "Target": v["target"], "ReadOnly": v["read_only"].as_bool().unwrap_or(false)});
        if !source.is_empty() {
            m["Source"] = json!(source);
        }
        if typ == "volume" && v["volume"]["nocopy"].as_bool() == Some(true) {
            m["VolumeOptions"] = json!({"NoCopy": true});
        }
        if typ == "tmpfs" {
            if let Some(size) = bytes(&v["tmpfs"]["size"]) {
                m["TmpfsOptions"] = json!({"SizeBytes": size});
            }
        }
        mounts.push(m);
    }
    // Secrets and configs from files: read-only binds (/run/secrets/<name>, /<name>).
    for (kind, dir) in [("secrets", "/run/secrets/"), ("configs", "/")] {
        for r in s[kind].as_array().cloned().unwrap_or_default() {
            let (src, target) = match &r {
                Value::String(n) => (n.clone(), None),
                o => (
                    o["source"].as_str().unwrap_or("").to_string(),
                    o["target"].as_str().map(String::from),
                ),
            };
            let Some(file) = p.model[kind][&src]["file"].as_str() else {
                continue;
            };
            let target = match target {
                Some(t) if t.starts_with('/') => t,
                Some(t) => format!("{dir}{t}"),
                None => format!("{dir}{src}"),
            };
            mounts
                .push(json!({"Type": "bind", "Source": file, "Target": target, "ReadOnly": true}));
        }
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
        if !inst.publish_ports {
            continue;
        }
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
        let e = match e {
            Value::String(e) => e,
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let k = if e.contains('/') {
            e
        } else {
            format!("{e}/tcp")
        };
        exposed.insert(k, json!({}));
    }
    let restart = if inst.oneoff {
        "no"
    } else {
        s["restart"].as_str().unwrap_or("no")
    };
    let (rname, rmax) = match restart.split_once(':') {
        Some((n, m)) => (n, m.parse::<i64>().unwrap_or(0)),
        None => (restart, 0),
    };

    // Networks: the primary one is the network mode; every one gets the service name and
    // its aliases so that services resolve each other by name.
    let nets = service_networks(p, service);
    let mut endpoints = Map::new();
    for (full, cfg) in &nets {
        let mut aliases = vec![json!(service)];
        if !inst.oneoff {
            aliases.insert(0, json!(inst.name));
        }
        for a in cfg["aliases"].as_array().cloned().unwrap_or_default() {
            aliases.push(a);
        }
        let mut ep = json!({"Aliases": aliases});
        let mut ipam = Map::new();
        if let Some(ip) = cfg["ipv4_address"].as_str() {
            ipam.insert("IPv4Address".into(), json!(ip));
        }
        if let Some(ip) = cfg["ipv6_address"].as_str() {
            ipam.insert("IPv6Address".into(), json!(ip));
        }
        if !ipam.is_empty() {
            ep["IPAMConfig"] = Value::Object(ipam);
        }
        endpoints.insert(full.clone(), ep);
    }
    let network_mode = match s["network_mode"].as_str() {
        Some(m) => match m.strip_prefix("service:") {
            Some(svc) => format!("container:{}", container_name(p, svc, 1)),
            None => m.to_string(),
        },
        None => nets
            .first()
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| "bridge".into()),
    };

    let mut host = json!({
        "Mounts": mounts,
        "PortBindings": port_bindings,
        "RestartPolicy": {"Name": rname, "MaximumRetryCount": rmax},
        "CapAdd": s["cap_add"],
        "CapDrop": s["cap_drop"],
        "Privileged": s["privileged"].as_bool().unwrap_or(false),
        "ReadonlyRootfs": s["read_only"].as_bool().unwrap_or(false),
        // compose's `host=ip` is the API's `host:ip`.
        "ExtraHosts": s["extra_hosts"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(|e| e.replacen('=', ":", 1)).collect::<Vec<_>>()),
        "Devices": s["devices"].as_array().map(|a| a.iter().map(|d| json!({"PathOnHost": d["source"], "PathInContainer": d["target"], "CgroupPermissions": d["permissions"].as_str().unwrap_or("rwm")})).collect::<Vec<_>>()),
        "Dns": s["dns"],
        "DnsSearch": s["dns_search"],
        "DnsOptions": s["dns_opt"],
        "SecurityOpt": s["security_opt"],
        "GroupAdd": s["group_add"],
        "Sysctls": s["sysctls"],
        "NetworkMode": network_mode,
    });
    if let Some(t) = s["tmpfs"].as_array() {
        let m: Map<String, Value> = t
            .iter()
            .filter_map(Value::as_str)
            .map(|x| match x.split_once(':') {
                Some((p, o)) => (p.to_string(), json!(o)),
                None => (x.to_string(), json!("")),
            })
            .collect();
        host["Tmpfs"] = Value::Object(m);
    }
    if let Some(t) = s["tmpfs"].as_str() {
        host["Tmpfs"] = json!({ t: "" });
    }
    for (k, key) in [
        ("mem_limit", "Memory"),
        ("memswap_limit", "MemorySwap"),
        ("shm_size", "ShmSize"),
    ] {
        if let Some(b) = bytes(&s[k]) {
            host[key] = json!(b);
        }
    }
    if let Some(n) = s["pids_limit"].as_i64() {
        host["PidsLimit"] = json!(n);
    }
    for (k, key) in [("pid", "PidMode"), ("ipc", "IpcMode")] {
        if let Some(v) = s[k].as_str() {
            host[key] = json!(v);
        }
    }
    if s["init"].as_bool() == Some(true) {
        host["Init"] = json!(true);
    }
    let mut body = json!({
        "Image": image,
        "Env": env_list(s),
        "Labels": labels,
        "Tty": s["tty"].as_bool().unwrap_or(false),
        "OpenStdin": s["stdin_open"].as_bool().unwrap_or(false),
        "AttachStdin": s["stdin_open"].as_bool().unwrap_or(false),
        "AttachStdout": true,
        "AttachStderr": true,
        "ExposedPorts": exposed,
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    });
    for (k, key) in [("command", "Cmd"), ("entrypoint", "Entrypoint")] {
        if s[k].is_array() {
            body[key] = s[k].clone();
        }
    }
    for (k, key) in [
        ("working_dir", "WorkingDir"),
        ("user", "User"),
        ("hostname", "Hostname"),
        ("domainname", "Domainname"),
        ("stop_signal", "StopSignal"),
    ] {
        if let Some(v) = s[k].as_str() {
            body[key] = json!(v);
        }
    }
    if let Some(d) = s["stop_grace_period"]
        .as_str()
        .and_then(berth_compose::load::parse_duration)
    {
        body["StopTimeout"] = json!(d.as_secs());
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
