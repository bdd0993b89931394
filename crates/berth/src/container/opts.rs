//! `run`/`create` flags (docker's names) and their mapping to the create body
//! (Config + HostConfig + NetworkingConfig), field for field as docker 28 sends it.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::{ArgAction, Args};
use serde_json::{json, Map, Value};

use crate::format::units::parse_bytes;

#[derive(Debug, Args, Clone, Default)]
pub struct ContainerOpts {
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container MAC address
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add link to another container
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// Restart policy to apply when a container exits
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
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
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Ulimit options
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// Sysctl options
    #[arg(long = "sysctl")]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// User namespace to use
    #[arg(long)]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Runtime to use for this container
    #[arg(long)]
    pub runtime: Option<String>,
    /// Add a host device to the container
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj")]
    pub oom_score_adj: Option<i64>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Write the container ID to the file
    #[arg(long = "cidfile")]
    pub cidfile: Option<String>,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Reads `K=V` lines, skipping blanks and comments (docker's env-file/label-file format).
fn read_kv_file(path: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open {path}"))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `-e K` without `=` takes K from berth's own environment, or is dropped if unset.
fn resolve_env(entries: Vec<String>) -> Vec<String> {
    entries
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect()
}

/// A parsed `-p` entry: (container port key "80/tcp", host ip, host port).
pub fn parse_publish(spec: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let (addr, proto) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, p),
        None => (spec, "tcp"),
    };
    // IPv6 host ips are bracketed: [::1]:8080:80
    let (ip, rest) = if let Some(stripped) = addr.strip_prefix('[') {
        let (ip, rest) = stripped
            .split_once("]:")
            .context("invalid IPv6 address in port spec")?;
        (ip.to_string(), rest.to_string())
    } else {
        let parts: Vec<&str> = addr.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), addr.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => bail!("invalid port format: {spec}"),
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest),
    };
    let crange =
        parse_range(&container).with_context(|| format!("invalid containerPort: {container}"))?;
    let hrange = if host.is_empty() {
        None
    } else {
        Some(parse_range(&host).with_context(|| format!("invalid hostPort: {host}"))?)
    };
    let mut out = Vec::new();
    for (i, cport) in (crange.0..=crange.1).enumerate() {
        let hport = match hrange {
            None => String::new(),
            Some((lo, hi)) if hi - lo == crange.1 - crange.0 => (lo + i as u32).to_string(),
            Some((lo, hi)) if lo == hi => lo.to_string(),
            // docker lets a host range map a single container port: the daemon picks one.
            Some((lo, hi)) => format!("{lo}-{hi}"),
        };
        out.push((format!("{cport}/{proto}"), ip.clone(), hport));
    }
    Ok(out)
}

fn parse_range(s: &str) -> anyhow::Result<(u32, u32)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let lo: u32 = a.parse()?;
    let hi: u32 = b.parse()?;
    if lo > hi || hi > 65535 {
        bail!("invalid range {s}");
    }
    Ok((lo, hi))
}

/// Go duration strings ("30s", "1m30s", "500ms") to nanoseconds.
fn parse_go_duration(s: &str) -> anyhow::Result<i64> {
    let d = humantime::parse_duration(s).with_context(|| format!("invalid duration {s:?}"))?;
    Ok(d.as_nanos() as i64)
}

fn parse_mount(spec: &str) -> anyhow::Result<Value> {
    let mut m = Map::new();
    let mut kind = "volume".to_string();
    let mut volume_opts = Map::new();
    let mut bind_opts = Map::new();
    let mut tmpfs_opts = Map::new();
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, "true"));
        match k.to_ascii_lowercase().as_str() {
            "type" => kind = v.to_string(),
            "source" | "src" => {
                m.insert("Source".into(), json!(v));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), json!(v));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(matches!(v, "true" | "1")));
            }
            "consistency" => {
                m.insert("Consistency".into(), json!(v));
            }
            "bind-propagation" => {
                bind_opts.insert("Propagation".into(), json!(v));
            }
            "bind-recursive" => {
                bind_opts.insert("NonRecursive".into(), json!(v == "disabled"));
            }
            "volume-nocopy" | "volume-no-copy" => {
                volume_opts.insert("NoCopy".into(), json!(matches!(v, "true" | "1")));
            }
            "volume-subpath" => {
                volume_opts.insert("Subpath".into(), json!(v));
            }
            "volume-driver" => {
                volume_opts.insert("DriverConfig".into(), json!({"Name": v}));
            }
            "volume-label" => {
                let (lk, lv) = v.split_once('=').unwrap_or((v, ""));
                let labels = volume_opts.entry("Labels").or_insert_with(|| json!({}));
                labels[lk] = json!(lv);
            }
            "volume-opt" => {
                let (ok, ov) = v.split_once('=').unwrap_or((v, ""));
                let cfg = volume_opts
                    .entry("DriverConfig")
                    .or_insert_with(|| json!({"Name": ""}));
                if cfg.get("Options").is_none() {
                    cfg["Options"] = json!({});
                }
                cfg["Options"][ok] = json!(ov);
            }
            "tmpfs-size" => {
                tmpfs_opts.insert(
                    "SizeBytes".into(),
                    json!(parse_bytes(v).context("invalid tmpfs-size")?),
                );
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(v, 8).context("invalid tmpfs-mode")?;
                tmpfs_opts.insert("Mode".into(), json!(mode));
            }
            other => bail!("unexpected key '{other}' in '{field}'"),
        }
    }
    if !m.contains_key("Target") {
        bail!("target is required");
    }
    m.insert("Type".into(), json!(kind));
    if !volume_opts.is_empty() {
        m.insert("VolumeOptions".into(), Value::Object(volume_opts));
    }
    if !bind_opts.is_empty() {
        m.insert("BindOptions".into(), Value::Object(bind_opts));
    }
    if !tmpfs_opts.is_empty() {
        m.insert("TmpfsOptions".into(), Value::Object(tmpfs_opts));
    }
    Ok(Value::Object(m))
}

fn parse_ulimit(s: &str) -> anyhow::Result<Value> {
    let (name, vals) = s
        .split_once('=')
        .with_context(|| format!("invalid ulimit argument: {s}"))?;
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    let soft: i64 = soft
        .parse()
        .with_context(|| format!("invalid ulimit soft value: {soft}"))?;
    let hard: i64 = hard
        .parse()
        .with_context(|| format!("invalid ulimit hard value: {hard}"))?;
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

fn parse_device(s: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, cont, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.chars().all(|ch| "rwm".contains(ch)) && !c.starts_with('/') => (*h, *h, *c),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => bail!("invalid device specification: {s}"),
    };
    Ok(json!({"PathOnHost": host, "PathInContainer": cont, "CgroupPermissions": perms}))
}

fn kv_map(entries: &[String]) -> Map<String, Value> {
    entries
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k.to_string(), json!(v))
        })
        .collect()
}

fn list_or_null(v: &[String]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

fn mem(flag: &str, v: &Option<String>) -> anyhow::Result<i64> {
    match v {
        None => Ok(0),
        Some(s) if s == "-1" => Ok(-1),
        Some(s) => {
            parse_bytes(s).with_context(|| format!("invalid argument {s:?} for \"{flag}\" flag"))
        }
    }
}

/// What the CLI decided about streams, needed both for the body and for `run`'s flow.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attach {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl ContainerOpts {
    /// Which streams to attach: `-a` wins; otherwise stdout+stderr (plus stdin with -i)
    /// unless detached.
    pub fn attach_streams(&self, detach: bool) -> Attach {
        if !self.attach.is_empty() {
            let has = |s: &str| self.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
            return Attach {
                stdin: has("stdin"),
                stdout: has("stdout"),
                stderr: has("stderr"),
            };
        }
        if detach {
            return Attach::default();
        }
        Attach {
            stdin: self.interactive,
            stdout: true,
            stderr: true,
        }
    }

    /// The JSON body of `POST /containers/create`.
    pub fn create_body(
        &self,
        image: &str,
        cmd: &[String],
        attach: Attach,
        console: Option<(u16, u16)>,
    ) -> anyhow::Result<Value> {
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(read_kv_file(f)?);
        }
        env.extend(self.env.iter().cloned());
        let env = resolve_env(env);

        let mut labels_list = Vec::new();
        for f in &self.label_file {
            labels_list.extend(read_kv_file(f)?);
        }
        labels_list.extend(self.label.iter().cloned());

        let mut exposed: BTreeMap<String, Value> = BTreeMap::new();
        let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in &self.publish {
            for (key, ip, hport) in parse_publish(p)? {
                exposed.insert(key.clone(), json!({}));
                bindings
                    .entry(key)
                    .or_default()
                    .push(json!({"HostIp": ip, "HostPort": hport}));
            }
        }
        for e in &self.expose {
            let (ports, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
            let (lo, hi) = parse_range(ports)
                .with_context(|| format!("invalid range format for --expose: {e}"))?;
            for p in lo..=hi {
                exposed.insert(format!("{p}/{proto}"), json!({}));
            }
        }

        // `-v /path` (no source) is an anonymous volume: Config.Volumes, not a bind.
        let mut volumes = Map::new();
        let mut binds = Vec::new();
        for v in &self.volume {
            if v.starts_with('/') && !v.contains(':') {
                volumes.insert(v.clone(), json!({}));
            } else {
                binds.push(v.clone());
            }
        }
        let mounts = self
            .mount
            .iter()
            .map(|m| parse_mount(m))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tmpfs: Map<String, Value> = self
            .tmpfs
            .iter()
            .map(|t| {
                let (path, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
                (path.to_string(), json!(opts))
            })
            .collect();

        let (restart_name, restart_max) = match self.restart.split_once(':') {
            Some((n, c)) => (
                n.to_string(),
                c.parse::<i64>()
                    .with_context(|| format!("invalid restart policy {}", self.restart))?,
            ),
            None => (self.restart.clone(), 0),
        };
        if !matches!(
            restart_name.as_str(),
            "no" | "always" | "on-failure" | "unless-stopped" | ""
        ) {
            bail!("invalid restart policy: unknown policy '{restart_name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'");
        }
        if self.rm && !matches!(restart_name.as_str(), "no" | "") {
            bail!("conflicting options: cannot specify both --restart and --rm");
        }

        let entrypoint = match &self.entrypoint {
            Some(e) if !e.is_empty() => json!([e]),
            Some(_) => json!([""]),
            None => Value::Null,
        };

        let network_mode = self.network.clone().unwrap_or_else(|| "default".into());
        let mut endpoints = Map::new();
        let advanced = !self.network_alias.is_empty()
            || self.ip.is_some()
            || self.ip6.is_some()
            || !self.link.is_empty()
            || self.mac_address.is_some();
        if self.network.is_none() || advanced {
            let ipam = if self.ip.is_some() || self.ip6.is_some() {
                json!({"IPv4Address": self.ip.clone().unwrap_or_default(), "IPv6Address": self.ip6.clone().unwrap_or_default()})
            } else {
                Value::Null
            };
            endpoints.insert(
                network_mode.clone(),
                json!({"IPAMConfig": ipam, "Links": list_or_null(&self.link), "Aliases": list_or_null(&self.network_alias),
                       "MacAddress": self.mac_address.clone().unwrap_or_default(), "DriverOpts": null, "GwPriority": 0,
                       "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                       "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null}),
            );
        }

        let healthcheck = if self.no_healthcheck {
            Some(json!({"Test": ["NONE"]}))
        } else if self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
        {
            let dur = |v: &Option<String>| {
                v.as_deref()
                    .map(parse_go_duration)
                    .transpose()
                    .map(|d| d.unwrap_or(0))
            };
            let test = match &self.health_cmd {
                Some(c) => json!(["CMD-SHELL", c]),
                None => Value::Null,
            };
            Some(
                json!({"Test": test, "Interval": dur(&self.health_interval)?, "Timeout": dur(&self.health_timeout)?,
                        "StartPeriod": dur(&self.health_start_period)?, "StartInterval": dur(&self.health_start_interval)?,
                        "Retries": self.health_retries.unwrap_or(0)}),
            )
        } else {
            None
        };

        let ulimits = self
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let devices = self
            .device
            .iter()
            .map(|d| parse_device(d))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let nano_cpus = self.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0);
        let shm_size = match &self.shm_size {
            Some(s) => parse_bytes(s)
                .with_context(|| format!("invalid argument {s:?} for \"--shm-size\" flag"))?,
            None => 0,
        };
        let stdin_once = attach.stdin && self.interactive;

        let mut body = json!({
            "Hostname": self.hostname.clone().unwrap_or_default(),
            "Domainname": self.domainname.clone().unwrap_or_default(),
            "User": self.user.clone().unwrap_or_default(),
            "AttachStdin": attach.stdin,
            "AttachStdout": attach.stdout,
            "AttachStderr": attach.stderr,
            "Tty": self.tty,
            "OpenStdin": self.interactive,
            "StdinOnce": stdin_once,
            "Env": list_or_null(&env),
            "Cmd": list_or_null(cmd),
            "Image": image,
            "Volumes": volumes,
            "WorkingDir": self.workdir.clone().unwrap_or_default(),
            "Entrypoint": entrypoint,
            "OnBuild": null,
            "Labels": kv_map(&labels_list),
            "HostConfig": {
                "Binds": list_or_null(&binds),
                "ContainerIDFile": self.cidfile.clone().unwrap_or_default(),
                "LogConfig": {"Type": self.log_driver.clone().unwrap_or_default(), "Config": kv_map(&self.log_opt)},
                "NetworkMode": network_mode,
                "PortBindings": bindings,
                "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": restart_max},
                "AutoRemove": self.rm,
                "VolumeDriver": "",
                "VolumesFrom": list_or_null(&self.volumes_from),
                "ConsoleSize": [console.map(|c| c.0).unwrap_or(0), console.map(|c| c.1).unwrap_or(0)],
                "CapAdd": list_or_null(&self.cap_add),
                "CapDrop": list_or_null(&self.cap_drop),
                "CgroupnsMode": self.cgroupns.clone().unwrap_or_default(),
                "Dns": self.dns,
                "DnsOptions": self.dns_option,
                "DnsSearch": self.dns_search,
                "ExtraHosts": list_or_null(&self.add_host),
                "GroupAdd": list_or_null(&self.group_add),
                "IpcMode": self.ipc.clone().unwrap_or_default(),
                "Cgroup": "",
                "Links": list_or_null(&self.link),
                "OomScoreAdj": self.oom_score_adj.unwrap_or(0),
                "PidMode": self.pid.clone().unwrap_or_default(),
                "Privileged": self.privileged,
                "PublishAllPorts": self.publish_all,
                "ReadonlyRootfs": self.read_only,
                "SecurityOpt": list_or_null(&self.security_opt),
                "UTSMode": self.uts.clone().unwrap_or_default(),
                "UsernsMode": self.userns.clone().unwrap_or_default(),
                "ShmSize": shm_size,
                "Isolation": "",
                "CpuShares": self.cpu_shares.unwrap_or(0),
                "Memory": mem("--memory", &self.memory)?,
                "NanoCpus": nano_cpus,
                "CgroupParent": self.cgroup_parent.clone().unwrap_or_default(),
                "BlkioWeight": 0,
                "BlkioWeightDevice": [],
                "BlkioDeviceReadBps": [],
                "BlkioDeviceWriteBps": [],
                "BlkioDeviceReadIOps": [],
                "BlkioDeviceWriteIOps": [],
                "CpuPeriod": self.cpu_period.unwrap_or(0),
                "CpuQuota": self.cpu_quota.unwrap_or(0),
                "CpuRealtimePeriod": 0,
                "CpuRealtimeRuntime": 0,
                "CpusetCpus": self.cpuset_cpus.clone().unwrap_or_default(),
                "CpusetMems": self.cpuset_mems.clone().unwrap_or_default(),
                "Devices": devices,
                "DeviceCgroupRules": null,
                "DeviceRequests": null,
                "MemoryReservation": mem("--memory-reservation", &self.memory_reservation)?,
                "MemorySwap": mem("--memory-swap", &self.memory_swap)?,
                "MemorySwappiness": -1,
                "OomKillDisable": self.oom_kill_disable,
                "PidsLimit": self.pids_limit.unwrap_or(0),
                "Ulimits": ulimits,
                "CpuCount": 0,
                "CpuPercent": 0,
                "IOMaximumIOps": 0,
                "IOMaximumBandwidth": 0,
                "MaskedPaths": null,
                "ReadonlyPaths": null
            },
            "NetworkingConfig": {"EndpointsConfig": endpoints}
        });
        // Fields docker sends only when set (omitempty pointers in its types).
        if !exposed.is_empty() {
            body["ExposedPorts"] = json!(exposed);
        }
        if let Some(h) = healthcheck {
            body["Healthcheck"] = h;
        }
        if let Some(s) = &self.stop_signal {
            body["StopSignal"] = json!(s);
        }
        if let Some(t) = self.stop_timeout {
            body["StopTimeout"] = json!(t);
        }
        if let Some(m) = &self.mac_address {
            body["MacAddress"] = json!(m);
        }
        let hc = &mut body["HostConfig"];
        if !mounts.is_empty() {
            hc["Mounts"] = json!(mounts);
        }
        if !tmpfs.is_empty() {
            hc["Tmpfs"] = Value::Object(tmpfs);
        }
        if !self.sysctl.is_empty() {
            hc["Sysctls"] = Value::Object(kv_map(&self.sysctl));
        }
        if self.init {
            hc["Init"] = json!(true);
        }
        if let Some(r) = &self.runtime {
            hc["Runtime"] = json!(r);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            vec![("80/tcp".into(), "".into(), "8080".into())]
        );
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp").unwrap(),
            vec![("80/udp".into(), "127.0.0.1".into(), "8080".into())]
        );
        assert_eq!(
            parse_publish("80").unwrap(),
            vec![("80/tcp".into(), "".into(), "".into())]
        );
        assert_eq!(parse_publish("8000-8001:80-81").unwrap().len(), 2);
        assert!(parse_publish("x:80").is_err());
    }

    #[test]
    fn body_matches_docker_for_run_it() {
        let opts = ContainerOpts {
            interactive: true,
            tty: true,
            rm: true,
            name: Some("X".into()),
            publish: vec!["8080:80".into()],
            volume: vec!["vol:/data".into()],
            env: vec!["K=V".into()],
            network: Some("net".into()),
            restart: "no".into(),
            pull: "missing".into(),
            sig_proxy: true,
            ..Default::default()
        };
        let attach = opts.attach_streams(false);
        let body = opts
            .create_body("busybox", &["sh".into()], attach, Some((40, 120)))
            .unwrap();
        assert_eq!(body["AttachStdin"], true);
        assert_eq!(body["StdinOnce"], true);
        assert_eq!(body["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(
            body["HostConfig"]["PortBindings"],
            json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
        assert_eq!(body["HostConfig"]["Binds"], json!(["vol:/data"]));
        assert_eq!(body["HostConfig"]["ConsoleSize"], json!([40, 120]));
        assert_eq!(body["HostConfig"]["NetworkMode"], "net");
        assert_eq!(body["NetworkingConfig"]["EndpointsConfig"], json!({}));
        assert_eq!(body["Entrypoint"], Value::Null);
    }

    #[test]
    fn default_network_and_detached() {
        let opts = ContainerOpts {
            restart: "on-failure:3".into(),
            ..Default::default()
        };
        let body = opts
            .create_body("busybox", &[], opts.attach_streams(true), None)
            .unwrap();
        assert_eq!(body["AttachStdout"], false);
        assert_eq!(body["Cmd"], Value::Null);
        assert_eq!(
            body["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert!(body["NetworkingConfig"]["EndpointsConfig"]["default"].is_object());
        assert!(body.get("ExposedPorts").is_none());
    }

    #[test]
    fn mounts_ulimits_devices() {
        let m = parse_mount("type=bind,src=/a,dst=/b,ro").unwrap();
        assert_eq!(
            m,
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        assert!(parse_mount("type=volume").is_err());
        assert_eq!(
            parse_ulimit("nofile=1024:2048").unwrap(),
            json!({"Name": "nofile", "Soft": 1024, "Hard": 2048})
        );
        assert_eq!(
            parse_device("/dev/fuse").unwrap()["PathInContainer"],
            "/dev/fuse"
        );
    }
}
