//! The container's init, from the moment clone3 returns in the child until execve.
//!
//! Each step is a named function; any failure is reported to the parent over the sync pipe and
//! the child exits (127 / 126 for a missing / non-executable command, 1 otherwise).

use super::process::{finish_process, open_terminal, setup_stdio};
use super::sync::ChildSync;
use super::{mounts, sys, StartGate};
use crate::error::{Result, RuntimeError};
use crate::io::ProcessIo;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

/// What the child needs, prepared by the parent before clone3.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: PathBuf,
    pub cgroup: CgroupEntry,
    pub io: ProcessIo,
    pub gate: StartGate,
    pub sync: OwnedFd,
    /// With a terminal: where the pty master goes (the child's end of a socketpair).
    pub console: Option<OwnedFd>,
    pub seccomp: Option<crate::seccomp::Program>,
}

/// How the init gets into its cgroup.
pub enum CgroupEntry {
    /// The parent writes our pid into cgroup.procs and then one byte into this pipe (EOF means
    /// it failed). We wait for it only where membership matters: before unsharing the cgroup
    /// namespace, else just before dropping privileges, so the wait overlaps our mount work.
    ByParent(OwnedFd),
}

impl CgroupEntry {
    fn wait_joined(self) -> Result<()> {
        let CgroupEntry::ByParent(fd) = self;
        let mut byte = [0u8; 1];
        match std::fs::File::from(fd).read(&mut byte) {
            Ok(1) => Ok(()),
            _ => Err(RuntimeError::Init(
                "the runtime could not place the container in its cgroup".into(),
            )),
        }
    }
}

/// Run the init steps; never returns.
pub fn run(args: InitArgs<'_>) -> ! {
    let sync_fd = match args.sync.try_clone() {
        Ok(fd) => fd,
        Err(_) => sys::exit_now(1),
    };
    let mut sync = ChildSync::new(sync_fd);
    let err = match steps(args, &mut sync) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    sync.error(&err);
    sys::exit_now(match err.exit_code() {
        125 => 1,
        code => code,
    })
}

fn steps(args: InitArgs<'_>, sync: &mut ChildSync) -> Result<std::convert::Infallible> {
    let InitArgs {
        spec,
        rootfs,
        cgroup,
        io,
        gate,
        sync: _,
        console,
        seccomp,
    } = args;
    let process = spec
        .process()
        .clone()
        .ok_or_else(|| RuntimeError::Spec("no process in spec".into()))?;
    let mut cgroup = Some(cgroup);
    join_path_namespaces(spec)?;
    if wants_new(spec, LinuxNamespaceType::Network) {
        sys::loopback_up().map_err(|e| RuntimeError::syscall("bring up loopback", e))?;
    }
    // The fifo must be opened while its path is still visible (before pivot_root).
    let gate = open_gate(gate)?;
    // The cgroup namespace is made as late as the mounts allow: it must be made after the
    // parent has moved us into our cgroup (which becomes its root), and that move, which
    // waits for an RCU grace period on cgroup v1, overlaps the mounts before it.
    let new_cgroupns = wants_new(spec, LinuxNamespaceType::Cgroup);
    let mut enter_cgroupns = || -> Result<()> {
        if !new_cgroupns {
            return Ok(());
        }
        if let Some(entry) = cgroup.take() {
            entry.wait_joined()?;
        }
        // SAFETY: unsharing the cgroup namespace only changes how /proc/self/cgroup reads.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
            .map_err(|e| RuntimeError::syscall("unshare cgroup namespace", e))
    };
    mounts::prepare_rootfs(spec, &rootfs, &mut enter_cgroupns)?;
    // The pty comes from the container's own devpts, like runc's console socket.
    let io = match console {
        Some(sock) if io.terminal => open_terminal(sock, &process, true)?,
        _ => io,
    };
    set_hostname(spec)?;
    // Before finish_rootfs makes /proc/sys read-only.
    write_sysctls(spec)?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| RuntimeError::syscall("set oom_score_adj", e))?;
    }
    mounts::finish_rootfs(spec)?;
    if let Some(entry) = cgroup.take() {
        entry.wait_joined()?;
    }
    setup_stdio(io)?;
    let target = finish_process(&process, seccomp.as_ref())?;
    wait_gate(gate, sync)?;
    Err(target.exec())
}

fn wants_new(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    namespaces(spec)
        .iter()
        .any(|(t, p)| *t == typ && p.is_none())
}

/// The spec's namespaces as (type, optional path to join).
pub fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.typ(), n.path().clone()))
        .collect()
}

/// setns into namespaces given by path (e.g. another container's netns).
fn join_path_namespaces(spec: &Spec) -> Result<()> {
    for (typ, path) in namespaces(spec) {
        let Some(path) = path else { continue };
        if typ == LinuxNamespaceType::Mount || typ == LinuxNamespaceType::Pid {
            // The mount and pid namespaces must be new for a container init.
            return Err(RuntimeError::Spec(format!(
                "joining a {typ:?} namespace by path is not supported"
            )));
        }
        let fd = rustix::fs::open(
            &path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| RuntimeError::syscall("open namespace", e))?;
        rustix::thread::move_into_link_name_space(fd.as_fd(), None)
            .map_err(|e| RuntimeError::syscall("setns", e))?;
    }
    Ok(())
}

enum OpenGate {
    Immediate,
    Pipe(OwnedFd),
    /// An O_PATH fd of the fifo, reopened for writing through /proc/self/fd at the gate.
    Fifo(OwnedFd),
}

fn open_gate(gate: StartGate) -> Result<OpenGate> {
    Ok(match gate {
        StartGate::Immediate => OpenGate::Immediate,
        StartGate::Pipe(fd) => OpenGate::Pipe(fd),
        StartGate::Fifo(path) => OpenGate::Fifo(
            rustix::fs::open(
                &path,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| RuntimeError::syscall("open exec fifo", e))?,
        ),
    })
}

/// Tell the parent we are ready, then block until started.
fn wait_gate(gate: OpenGate, sync: &mut ChildSync) -> Result<()> {
    match gate {
        OpenGate::Immediate => Ok(()),
        OpenGate::Pipe(fd) => {
            sync.ready()?;
            let mut byte = [0u8; 1];
            // One byte or EOF both mean "go".
            let _ = std::fs::File::from(fd).read(&mut byte);
            Ok(())
        }
        OpenGate::Fifo(fd) => {
            use std::os::fd::AsRawFd;
            sync.ready()?;
            // Opening for writing blocks until `start` opens the fifo for reading.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|e| RuntimeError::syscall("open exec fifo for writing", e))?;
            use std::io::Write;
            (&f).write_all(b"0")
                .map_err(|e| RuntimeError::syscall("write exec fifo", e))?;
            Ok(())
        }
    }
}

fn set_hostname(spec: &Spec) -> Result<()> {
    if !wants_new(spec, LinuxNamespaceType::Uts) {
        return Ok(());
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        rustix::system::sethostname(h.as_bytes())
            .map_err(|e| RuntimeError::syscall("sethostname", e))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::set_domainname(d).map_err(|e| RuntimeError::syscall("setdomainname", e))?;
    }
    Ok(())
}

fn write_sysctls(spec: &Spec) -> Result<()> {
    let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().clone()) else {
        return Ok(());
    };
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, &value)
            .map_err(|e| RuntimeError::Init(format!("sysctl {key}={value}: {e}")))?;
    }
    Ok(())
}
