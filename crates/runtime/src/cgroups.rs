//! cgroups for containers, on v1, hybrid and pure v2 hosts.
//!
//! The layout is read from /proc/self/mountinfo. On a v1 or hybrid host every mounted v1
//! hierarchy gets a directory `<mount>/<cgroups_path>` (and so does a cgroup2 mount, which on a
//! hybrid host carries no controllers but still tracks processes); limits go to the v1 files. On a
//! pure v2 host there is one directory, with the controllers enabled in each parent's
//! `cgroup.subtree_control`. Hand-written rather than libcgroups: that crate pulls in a large
//! dependency tree and we only need create / join / limit / freeze / list / remove.

use crate::error::{Result, RuntimeError};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use std::path::{Path, PathBuf};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. /sys/fs/cgroup/memory.
    pub mount: PathBuf,
    /// v1 controllers (and `name=` options); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

impl Hierarchy {
    pub(crate) fn has(&self, ctrl: &str) -> bool {
        self.controllers.iter().any(|c| c == ctrl)
    }
}

/// The cgroup layout of this host.
#[derive(Debug, Clone)]
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Read the mounted hierarchies from /proc/self/mountinfo.
    pub fn detect() -> Result<Layout> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(Self::parse(&text))
    }

    fn parse(mountinfo: &str) -> Layout {
        let mut hierarchies = Vec::new();
        for line in mountinfo.lines() {
            // "<id> <parent> <dev> <root> <mountpoint> <opts> [optional...] - <fstype> <source> <superopts>"
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mountpoint = left.split(' ').nth(4).unwrap_or_default();
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or_default();
            let superopts = r.nth(1).unwrap_or_default();
            match fstype {
                "cgroup" => {
                    let controllers: Vec<String> = superopts
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                        .filter(|o| !o.contains('=') || o.starts_with("name="))
                        .filter(|o| {
                            !matches!(
                                *o,
                                "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode"
                            )
                        })
                        .map(str::to_string)
                        .collect();
                    if hierarchies
                        .iter()
                        .all(|h: &Hierarchy| h.mount != Path::new(mountpoint))
                    {
                        hierarchies.push(Hierarchy {
                            mount: unescape(mountpoint),
                            controllers,
                            v2: false,
                        });
                    }
                }
                "cgroup2" => hierarchies.push(Hierarchy {
                    mount: unescape(mountpoint),
                    controllers: Vec::new(),
                    v2: true,
                }),
                _ => {}
            }
        }
        Layout { hierarchies }
    }

    /// A pure v2 host: one cgroup2 mount and no v1 hierarchies.
    pub fn is_pure_v2(&self) -> bool {
        self.hierarchies.iter().all(|h| h.v2)
    }

    /// The directories a container with `path` ("/berth/<id>") lives in.
    pub fn dirs(&self, path: &str) -> Vec<(&Hierarchy, PathBuf)> {
        let rel = path.trim_start_matches('/');
        self.hierarchies
            .iter()
            .map(|h| (h, h.mount.join(rel)))
            .collect()
    }

    pub(crate) fn find(&self, path: &str, pred: impl Fn(&Hierarchy) -> bool) -> Option<PathBuf> {
        self.dirs(path)
            .into_iter()
            .find(|(h, _)| pred(h))
            .map(|(_, d)| d)
    }
}

fn unescape(p: &str) -> PathBuf {
    PathBuf::from(p.replace("\\040", " "))
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .map_err(|e| RuntimeError::Cgroup(format!("write {value:?} to {}: {e}", path.display())))
}

/// The cgroup of one container.
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub(crate) layout: Layout,
    pub(crate) path: String,
}

impl Cgroup {
    /// The container's cgroup at `path` (e.g. "/berth/<id>"), on this host's layout.
    pub fn new(path: &str) -> Result<Cgroup> {
        if path.split('/').any(|c| c == "..") {
            return Err(RuntimeError::Cgroup(format!(
                "invalid cgroup path {path:?}"
            )));
        }
        Ok(Cgroup {
            layout: Layout::detect()?,
            path: path.to_string(),
        })
    }

    /// Create the directories (all hierarchies) and apply the limits.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<()> {
        let pure_v2 = self.layout.is_pure_v2();
        for (h, dir) in self.layout.dirs(&self.path) {
            if h.v2 && pure_v2 {
                enable_v2_controllers(&h.mount, &dir)?;
            }
            std::fs::create_dir_all(&dir)
                .map_err(|e| RuntimeError::Cgroup(format!("mkdir {}: {e}", dir.display())))?;
            if h.has("cpuset") {
                inherit_cpuset(&h.mount, &dir)?;
            }
        }
        if let Some(r) = resources {
            if pure_v2 {
                self.apply_v2(r)?;
            } else {
                self.apply_v1(r)?;
            }
        }
        Ok(())
    }

    /// Move `pid` (0 = the caller) into the container's cgroup in every hierarchy.
    pub fn join(&self, pid: i32) -> Result<()> {
        let pid = pid.to_string();
        for (_, dir) in self.layout.dirs(&self.path) {
            write(&dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    fn apply_v1(&self, r: &LinuxResources) -> Result<()> {
        let dir = |ctrl: &str| self.layout.find(&self.path, |h| h.has(ctrl));
        if let (Some(m), Some(d)) = (r.memory(), dir("memory")) {
            if let Some(limit) = m.limit() {
                write(&d.join("memory.limit_in_bytes"), &limit.to_string())?;
            }
            if let Some(swap) = m.swap() {
                // Optional: memsw only exists with swap accounting.
                let _ = std::fs::write(d.join("memory.memsw.limit_in_bytes"), swap.to_string());
            }
        }
        if let (Some(c), Some(d)) = (r.cpu(), dir("cpu")) {
            if let Some(s) = c.shares() {
                write(&d.join("cpu.shares"), &s.to_string())?;
            }
            if let Some(p) = c.period() {
                write(&d.join("cpu.cfs_period_us"), &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
            }
        }
        if let (Some(p), Some(d)) = (r.pids(), dir("pids")) {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write(&d.join("pids.max"), &v)?;
        }
        if let (Some(devs), Some(d)) = (r.devices(), dir("devices")) {
            for rule in devs {
                let file = if rule.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(&d.join(file), &device_rule(rule))?;
            }
            // The nodes every container gets (runc's default allow-list): a spec that denies
            // all devices, like `runc spec`'s, still gets a working /dev.
            for rule in DEFAULT_DEVICES {
                write(&d.join("devices.allow"), rule)?;
            }
        }
        Ok(())
    }

    fn apply_v2(&self, r: &LinuxResources) -> Result<()> {
        let Some(d) = self.layout.find(&self.path, |h| h.v2) else {
            return Ok(());
        };
        if let Some(limit) = r.memory().as_ref().and_then(|m| m.limit()) {
            write(&d.join("memory.max"), &limit.to_string())?;
        }
        if let Some(c) = r.cpu() {
            if let Some(s) = c.shares() {
                // The conversion runc and crun use from v1 shares (2..262144) to v2 weight (1..10000).
                let weight = 1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142;
                write(&d.join("cpu.weight"), &weight.to_string())?;
            }
            if c.quota().is_some() || c.period().is_some() {
                let quota = c
                    .quota()
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                write(
                    &d.join("cpu.max"),
                    &format!("{quota} {}", c.period().unwrap_or(100_000)),
                )?;
            }
        }
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write(&d.join("pids.max"), &v)?;
        }
        // Device rules on v2 need an eBPF program; not done yet (see the crate's report).
        Ok(())
    }

    /// Freeze (pause) or thaw (resume) every process of the container.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if let Some(d) = self.layout.find(&self.path, |h| h.has("freezer")) {
            write(
                &d.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            )?;
            // FREEZING is transient: wait until the kernel reports the final state.
            for _ in 0..1000 {
                let now = std::fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
                if now.trim() != "FREEZING" {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            return Err(RuntimeError::Cgroup("freezer stuck in FREEZING".into()));
        }
        if let Some(d) = self
            .layout
            .find(&self.path, |h| h.v2)
            .filter(|_| self.layout.is_pure_v2())
        {
            return write(&d.join("cgroup.freeze"), if frozen { "1" } else { "0" });
        }
        Err(RuntimeError::Cgroup("no freezer available".into()))
    }

    /// Whether the container is frozen.
    pub fn is_frozen(&self) -> bool {
        if let Some(d) = self.layout.find(&self.path, |h| h.has("freezer")) {
            return std::fs::read_to_string(d.join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN");
        }
        self.layout
            .find(&self.path, |h| h.v2)
            .and_then(|d| std::fs::read_to_string(d.join("cgroup.freeze")).ok())
            .is_some_and(|s| s.trim() == "1")
    }

    /// The pids in the container's cgroup.
    pub fn processes(&self) -> Result<Vec<i32>> {
        let dir = self
            .layout
            .find(&self.path, |h| h.has("pids"))
            .or_else(|| self.layout.find(&self.path, |h| h.has("memory")))
            .or_else(|| self.layout.find(&self.path, |h| h.v2))
            .ok_or_else(|| RuntimeError::Cgroup("no cgroup hierarchy mounted".into()))?;
        match std::fs::read_to_string(dir.join("cgroup.procs")) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(RuntimeError::Cgroup(format!("read {}: {e}", dir.display()))),
        }
    }

    /// Remove the directories in every hierarchy; missing ones are fine.
    pub fn remove(&self) -> Result<()> {
        for (_, dir) in self.layout.dirs(&self.path) {
            // A just-exited process can linger in the cgroup for a moment: retry EBUSY briefly.
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                    Err(e) => {
                        return Err(RuntimeError::Cgroup(format!(
                            "rmdir {}: {e}",
                            dir.display()
                        )))
                    }
                }
            }
        }
        Ok(())
    }
}

/// null, zero, full, random, urandom, tty, console, ptmx and the pty slaves.
const DEFAULT_DEVICES: &[&str] = &[
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// "a *:* rwm", "c 1:3 rwm" for devices.allow/deny.
fn device_rule(rule: &LinuxDeviceCgroup) -> String {
    let typ = rule
        .typ()
        .map_or("a".to_string(), |t| t.as_str().to_string());
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
    if typ == "a" {
        return format!("a *:* {access}");
    }
    format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor()))
}

/// A new cpuset cgroup starts with empty cpus/mems; copy them down from the parent level by level.
fn inherit_cpuset(mount: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(cur.join(file)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = std::fs::read_to_string(parent.join(file)).unwrap_or_default();
                write(&cur.join(file), theirs.trim())?;
            }
        }
    }
    Ok(())
}

/// On pure v2, a child only gets the controllers its parents delegate in cgroup.subtree_control.
fn enable_v2_controllers(mount: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let available = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = available
        .split_whitespace()
        .filter(|c| matches!(*c, "cpu" | "memory" | "pids" | "io" | "cpuset"))
        .map(|c| format!("+{c}"))
        .collect();
    let mut cur = mount.to_path_buf();
    for comp in rel.parent().into_iter().flat_map(|p| p.components()) {
        if !wanted.is_empty() {
            let _ = std::fs::write(cur.join("cgroup.subtree_control"), wanted.join(" "));
        }
        cur.push(comp);
        std::fs::create_dir_all(&cur)?;
    }
    if !wanted.is_empty() {
        let _ = std::fs::write(cur.join("cgroup.subtree_control"), wanted.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn parses_hybrid() {
        let l = Layout::parse(HYBRID);
        assert_eq!(l.hierarchies.len(), 4);
        assert!(!l.is_pure_v2());
        assert_eq!(
            l.hierarchies[2].controllers,
            vec!["name=systemd".to_string()]
        );
        let dirs = l.dirs("/berth/x");
        assert_eq!(dirs[1].1, PathBuf::from("/sys/fs/cgroup/memory/berth/x"));
        assert!(dirs[3].0.v2);
    }

    #[test]
    fn parses_pure_v2() {
        let l = Layout::parse("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert!(l.is_pure_v2());
    }
}
