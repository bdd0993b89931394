//! OCI runtime spec generation with Docker's defaults (moby `oci/defaults.go`, `daemon/oci_linux.go`).
//!
//! The spec is written as JSON in Docker's shape and then parsed into `oci_spec`'s types, so what
//! the reader sees here is what lands in config.json.

use crate::capabilities::{self, ALL_CAPS, DOCKER_DEFAULT_CAPS};
use crate::error::{Result, RuntimeError};
use crate::user;
use oci_spec::runtime::{Mount, Spec};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a container's network namespace is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NetworkNamespace {
    /// A fresh namespace with only loopback (up).
    #[default]
    New,
    /// The host's namespace.
    Host,
    /// Join an existing namespace (a bind-mounted nsfs file or /proc/PID/ns/net).
    Path(PathBuf),
}

/// Everything the daemon decides about a container, in the terms the spec needs.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// The already-mounted merged rootfs.
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// "", "1000", "1000:1000", "name", "name:group": resolved against the rootfs.
    pub user: String,
    pub hostname: String,
    pub domainname: String,
    pub terminal: bool,
    pub hosts_file: Option<PathBuf>,
    pub hostname_file: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub extra_mounts: Vec<Mount>,
    pub privileged: bool,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub network: NetworkNamespace,
    pub ipc_host: bool,
    pub pid_host: bool,
    /// e.g. "/berth/<id>".
    pub cgroup_path: String,
    pub memory_limit: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub sysctls: BTreeMap<String, String>,
    pub shm_size: Option<u64>,
    pub no_new_privileges: bool,
    /// Apply Docker's default seccomp profile (ignored when privileged).
    pub seccomp: bool,
    pub oom_score_adj: Option<i32>,
    /// (name like "nofile" or "RLIMIT_NOFILE", soft, hard)
    pub rlimits: Vec<(String, u64, u64)>,
}

/// Docker's default PATH for containers whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's masked paths (bind-mounted over with /dev/null or an empty read-only tmpfs).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default /dev/shm size (64 MiB).
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Build the spec for one container.
pub fn build(opts: &SpecOptions) -> Result<Spec> {
    if opts.args.is_empty() {
        return Err(RuntimeError::Spec("no command specified".into()));
    }
    let user = user::resolve(&opts.rootfs, &opts.user)?;
    let caps = if opts.privileged {
        ALL_CAPS.iter().map(|c| c.to_string()).collect()
    } else {
        capabilities::tweak(DOCKER_DEFAULT_CAPS, &opts.cap_add, &opts.cap_drop)?
    };

    let mut process = json!({
        "terminal": opts.terminal,
        "user": { "uid": user.uid, "gid": user.gid },
        "args": opts.args,
        "env": process_env(opts, &user.home),
        "cwd": if opts.cwd.is_empty() { "/" } else { opts.cwd.as_str() },
        "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
        "noNewPrivileges": opts.no_new_privileges,
    });
    if !user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(user.additional_gids);
    }
    if let Some(adj) = opts.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }
    if !opts.rlimits.is_empty() {
        process["rlimits"] = Value::Array(
            opts.rlimits
                .iter()
                .map(|(n, s, h)| json!({"type": rlimit_name(n), "soft": s, "hard": h}))
                .collect(),
        );
    }

    let mut linux = json!({
        "namespaces": namespaces(opts),
        "resources": resources(opts),
        "cgroupsPath": opts.cgroup_path,
    });
    if !opts.sysctls.is_empty() {
        linux["sysctl"] = json!(opts.sysctls);
    }
    if opts.privileged {
        linux["devices"] = Value::Array(host_devices());
    }
    if !opts.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        if opts.seccomp {
            linux["seccomp"] = crate::seccomp::docker_default_profile(&caps);
        }
    }

    let mut spec = json!({
        "ociVersion": "1.2.0",
        "process": process,
        "root": { "path": opts.rootfs, "readonly": opts.read_only },
        "hostname": opts.hostname,
        "mounts": mounts(opts)?,
        "linux": linux,
    });
    if !opts.domainname.is_empty() {
        spec["domainname"] = json!(opts.domainname);
    }
    serde_json::from_value(spec).map_err(|e| RuntimeError::Spec(e.to_string()))
}

/// The environment as Docker builds it: PATH, HOSTNAME, TERM (tty), then the image/user env,
/// with HOME filled in from /etc/passwd when unset.
fn process_env(opts: &SpecOptions, home: &str) -> Vec<String> {
    let has = |k: &str| opts.env.iter().any(|e| e.split('=').next() == Some(k));
    let mut env = Vec::new();
    if !has("PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has("HOSTNAME") {
        env.push(format!("HOSTNAME={}", opts.hostname));
    }
    if opts.terminal && !has("TERM") {
        env.push("TERM=xterm".to_string());
    }
    env.extend(opts.env.iter().cloned());
    if !has("HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

fn rlimit_name(name: &str) -> String {
    let up = name.to_ascii_uppercase();
    if up.starts_with("RLIMIT_") {
        up
    } else {
        format!("RLIMIT_{up}")
    }
}

fn namespaces(opts: &SpecOptions) -> Value {
    let mut ns = vec![json!({"type": "mount"})];
    match &opts.network {
        NetworkNamespace::New => ns.push(json!({"type": "network"})),
        NetworkNamespace::Host => {}
        NetworkNamespace::Path(p) => ns.push(json!({"type": "network", "path": p})),
    }
    ns.push(json!({"type": "uts"}));
    if !opts.pid_host {
        ns.push(json!({"type": "pid"}));
    }
    if !opts.ipc_host {
        ns.push(json!({"type": "ipc"}));
    }
    ns.push(json!({"type": "cgroup"}));
    Value::Array(ns)
}

/// Docker's device cgroup allow-list plus the limits asked for.
fn resources(opts: &SpecOptions) -> Value {
    let dev = |t: &str, major: Option<i64>, minor: Option<i64>, access: &str| json!({"allow": true, "type": t, "major": major, "minor": minor, "access": access});
    let devices = if opts.privileged {
        vec![json!({"allow": true, "access": "rwm"})]
    } else {
        vec![
            json!({"allow": false, "access": "rwm"}),
            dev("c", None, None, "m"),
            dev("b", None, None, "m"),
            dev("c", Some(1), Some(3), "rwm"),
            dev("c", Some(1), Some(8), "rwm"),
            dev("c", Some(1), Some(7), "rwm"),
            dev("c", Some(5), Some(0), "rwm"),
            dev("c", Some(1), Some(5), "rwm"),
            dev("c", Some(1), Some(9), "rwm"),
            dev("c", Some(136), None, "rwm"),
            dev("c", Some(5), Some(2), "rwm"),
            dev("c", Some(10), Some(200), "rwm"),
        ]
    };
    let mut r = json!({ "devices": devices });
    if let Some(m) = opts.memory_limit {
        r["memory"] = json!({ "limit": m });
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = opts.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(q) = opts.cpu_quota {
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(p) = opts.cpu_period {
        cpu.insert("period".into(), json!(p));
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = opts.pids_limit {
        r["pids"] = json!({ "limit": p });
    }
    r
}

/// Every device node of the host's /dev, as Docker gives a privileged container.
fn host_devices() -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_dir() {
                // The container gets its own pts, shm and mqueue.
                if !matches!(path.to_str(), Some("/dev/pts" | "/dev/shm" | "/dev/mqueue")) {
                    dirs.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if path == Path::new("/dev/console") || path == Path::new("/dev/ptmx") {
                continue;
            }
            let rdev = md.rdev();
            out.push(json!({
                "path": path,
                "type": typ,
                "major": rustix::fs::major(rdev),
                "minor": rustix::fs::minor(rdev),
                "fileMode": md.mode() & 0o777,
                "uid": md.uid(),
                "gid": md.gid(),
            }));
        }
    }
    out
}

fn mounts(opts: &SpecOptions) -> Result<Vec<Value>> {
    let sys_opts = if opts.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let cgroup_opts = if opts.privileged {
        json!(["nosuid", "noexec", "nodev", "relatime"])
    } else {
        json!(["ro", "nosuid", "noexec", "nodev"])
    };
    let shm = opts.shm_size.unwrap_or(DEFAULT_SHM_SIZE);
    let mut m = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": cgroup_opts}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
    ];
    let bind = |dest: &str, src: &Path| json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]});
    if let Some(p) = &opts.resolv_conf {
        m.push(bind("/etc/resolv.conf", p));
    }
    if let Some(p) = &opts.hostname_file {
        m.push(bind("/etc/hostname", p));
    }
    if let Some(p) = &opts.hosts_file {
        m.push(bind("/etc/hosts", p));
    }
    for extra in &opts.extra_mounts {
        m.push(serde_json::to_value(extra).map_err(|e| RuntimeError::Spec(e.to_string()))?);
    }
    Ok(m)
}

/// Write `<bundle>/config.json` atomically (temp file, rename). Not fsynced: the bundle is
/// rewritten at every start and only read by the shim on this boot.
pub fn write_bundle(bundle: &Path, spec: &Spec) -> Result<()> {
    std::fs::create_dir_all(bundle)?;
    let bytes = serde_json::to_vec(spec).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    let tmp = bundle.join(".config.json.tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, bundle.join("config.json"))?;
    Ok(())
}

/// Read `<bundle>/config.json`. A relative root path is resolved against the bundle.
pub fn load_bundle(bundle: &Path) -> Result<Spec> {
    let bytes = std::fs::read(bundle.join("config.json"))?;
    let mut spec: Spec =
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Spec(e.to_string()))?;
    if let Some(root) = spec.root_mut() {
        if root.path().is_relative() {
            let abs = bundle.join(root.path());
            root.set_path(abs);
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Capability, LinuxNamespaceType};

    fn opts(rootfs: &Path) -> SpecOptions {
        SpecOptions {
            rootfs: rootfs.to_path_buf(),
            args: vec!["sh".into()],
            cwd: "/".into(),
            hostname: "abc".into(),
            cgroup_path: "/berth/abc".into(),
            seccomp: true,
            ..Default::default()
        }
    }

    fn mount_dests(spec: &Spec) -> Vec<String> {
        spec.mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect()
    }

    #[test]
    fn docker_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let spec = build(&opts(dir.path())).unwrap();
        let p = spec.process().as_ref().unwrap();
        let caps = p.capabilities().as_ref().unwrap();
        let eff = caps.effective().as_ref().unwrap();
        assert_eq!(eff.len(), 14);
        assert!(eff.contains(&Capability::NetBindService) && !eff.contains(&Capability::SysAdmin));
        assert_eq!(caps.bounding(), caps.effective());
        assert!(caps.inheritable().is_none() && caps.ambient().is_none());
        let env = p.env().as_ref().unwrap();
        assert_eq!(env[0], format!("PATH={DEFAULT_PATH}"));
        assert!(env.contains(&"HOSTNAME=abc".to_string()));
        assert_eq!(spec.hostname().as_deref(), Some("abc"));

        assert_eq!(
            mount_dests(&spec),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/mqueue",
                "/dev/shm"
            ]
        );
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert_eq!(
            ns,
            [
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Cgroup
            ]
        );
        assert_eq!(
            linux.masked_paths().as_ref().unwrap().len(),
            MASKED_PATHS.len()
        );
        assert!(linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/berth/abc"))
        );
        assert!(linux.seccomp().is_some());
        let sys = &spec.mounts().as_ref().unwrap()[3];
        assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));
    }

    #[test]
    fn privileged_host_net_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.privileged = true;
        o.network = NetworkNamespace::Host;
        o.memory_limit = Some(64 << 20);
        o.pids_limit = Some(10);
        o.terminal = true;
        o.hosts_file = Some("/tmp/hosts".into());
        let spec = build(&o).unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.effective().as_ref().unwrap().len(), ALL_CAPS.len());
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.masked_paths().is_none() && linux.seccomp().is_none());
        let devices = linux.devices().as_ref().unwrap();
        assert!(devices.iter().any(|d| d.path() == Path::new("/dev/null")));
        assert!(!linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network));
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(res.pids().as_ref().unwrap().limit(), 10);
        assert!(spec
            .process()
            .as_ref()
            .unwrap()
            .env()
            .as_ref()
            .unwrap()
            .contains(&"TERM=xterm".to_string()));
        assert_eq!(
            mount_dests(&spec).last().map(String::as_str),
            Some("/etc/hosts")
        );
    }

    #[test]
    fn user_is_resolved() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "app:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        let mut o = opts(dir.path());
        o.user = "app".into();
        let spec = build(&o).unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1001));
        assert!(p
            .env()
            .as_ref()
            .unwrap()
            .contains(&"HOME=/home/app".to_string()));
    }

    #[test]
    fn bundle_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let spec = build(&opts(dir.path())).unwrap();
        write_bundle(dir.path(), &spec).unwrap();
        assert_eq!(load_bundle(dir.path()).unwrap(), spec);
    }
}
