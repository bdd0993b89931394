//! The builtin runtime: runs a bundle in-process, the way youki and runc do, minus the re-exec.
//!
//! Process model: the caller (the shim, or `berth runtime`) is the parent. [`create`] prepares
//! the cgroup, then clone3s a child into new namespaces; the child ([`init`]) sets up the
//! container step by step, reports over a sync pipe, waits at the start gate and execs. [`exec`]
//! joins an existing container the same way. The caller must be single-threaded.

mod init;
mod mounts;
mod process;
mod sync;
pub(crate) mod sys;

use crate::cgroups::Cgroup;
use crate::error::{Result, RuntimeError};
use crate::io::ProcessIo;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use sys::Forked;

pub use mounts::in_root;
pub use process::resolve_executable;

/// How the container's init waits before exec'ing its process.
#[derive(Debug)]
pub enum StartGate {
    /// Exec as soon as set up.
    Immediate,
    /// Block until one byte can be read (or EOF).
    Pipe(OwnedFd),
    /// runc-style exec.fifo: block until someone opens it for reading.
    Fifo(PathBuf),
}

/// A created container's init, or an exec'd process.
#[derive(Debug)]
pub struct Created {
    /// Host pid of the process.
    pub pid: i32,
    /// With a terminal ([`ProcessIo::terminal`]): the master of the pty the process opened in
    /// the container's /dev/pts (the slave is its stdio and controlling terminal).
    pub pty_master: Option<OwnedFd>,
}

/// A socketpair to receive the pty master on, when `io` asks for a terminal:
/// (our end, the child's end).
fn console_pair(io: &ProcessIo) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !io.terminal {
        return Ok((None, None));
    }
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| RuntimeError::syscall("console socketpair", e))?;
    Ok((Some(ours), Some(theirs)))
}

/// The pty master the child sent (after it reported success), if it was to send one.
fn receive_master(ours: Option<OwnedFd>) -> Result<Option<OwnedFd>> {
    ours.map(|sock| crate::io::recv_fd(sock.as_fd()))
        .transpose()
}

/// The container's cgroup, from `linux.cgroupsPath` (required: pause, cleanup and processes
/// only get the spec, so the path must be in it; spec::build always sets it).
fn container_cgroup(spec: &Spec) -> Result<Cgroup> {
    let path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| RuntimeError::Spec("linux.cgroupsPath is required".into()))?;
    Cgroup::new(&path)
}

fn clone_flags(spec: &Spec) -> u64 {
    let mut flags = 0u64;
    for (typ, path) in init::namespaces(spec) {
        if path.is_some() {
            continue;
        }
        flags |= match typ {
            LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
            LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
            LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
            LinuxNamespaceType::Network => libc::CLONE_NEWNET,
            // The cgroup namespace is unshared by the child after it joined its cgroup.
            _ => 0,
        } as u64;
    }
    flags
}

fn rootfs_of(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| RuntimeError::Spec("no root in spec".into()))?;
    let path = if root.path().is_relative() {
        bundle.join(root.path())
    } else {
        root.path().clone()
    };
    std::fs::canonicalize(&path)
        .map_err(|e| RuntimeError::Spec(format!("rootfs {}: {e}", path.display())))
}

/// Create the container: its init is set up and waiting at `gate` (or exec'd, for Immediate)
/// when this returns. The caller is the init's parent and reaps it.
pub fn create(
    id: &str,
    bundle: &Path,
    spec: &Spec,
    io: ProcessIo,
    gate: StartGate,
) -> Result<Created> {
    if !init::namespaces(spec)
        .iter()
        .any(|(t, p)| *t == LinuxNamespaceType::Mount && p.is_none())
    {
        return Err(RuntimeError::Spec(
            "the builtin runtime needs a new mount namespace".into(),
        ));
    }
    let rootfs = rootfs_of(spec, bundle)?;
    // Made after the clone, while the child mounts (the child waits for it before it makes
    // its cgroup namespace, and before it runs anything of the container's).
    let cgroup = container_cgroup(spec)?;

    let seccomp = match process::seccomp_program(spec) {
        Ok(p) => p,
        Err(e) => {
            let _ = cgroup.remove();
            return Err(e);
        }
    };
    let (sync_read, sync_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::syscall("sync pipe", e))?;
    // The parent moves the child into its cgroup while the child sets up its mounts: the
    // first cgroup.procs write waits for an RCU grace period (cgroup v1 especially), and
    // this way that wait overlaps the child's work instead of preceding it.
    let (joined_read, joined_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::syscall("cgroup pipe", e))?;
    let (console_ours, console_theirs) = match console_pair(&io) {
        Ok(p) => p,
        Err(e) => {
            let _ = cgroup.remove();
            return Err(e);
        }
    };
    let forked = match sys::clone3(clone_flags(spec)) {
        Ok(f) => f,
        Err(e) => {
            let _ = cgroup.remove();
            return Err(RuntimeError::syscall("clone3", e));
        }
    };
    let child = match forked {
        Forked::Child => {
            drop(sync_read);
            drop(joined_write);
            drop(console_ours);
            init::run(init::InitArgs {
                spec,
                rootfs,
                cgroup: init::CgroupEntry::ByParent(joined_read),
                io,
                gate,
                sync: sync_write,
                console: console_theirs,
                seccomp,
            })
        }
        Forked::Parent { child } => child,
    };
    drop(sync_write);
    drop(joined_read);
    drop(console_theirs);
    drop(io);
    drop(gate);
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    if let Err(e) = cgroup
        .create(resources)
        .and_then(|_| cgroup.join(child))
        .and_then(|_| {
            rustix::io::write(&joined_write, b"J")
                .map(drop)
                .map_err(|e| RuntimeError::syscall("signal cgroup joined", e))
        })
    {
        // The child sees EOF instead of the byte and exits; it must not run outside its cgroup.
        let _ = sys::kill(child, libc::SIGKILL);
        reap(child);
        let _ = cgroup.remove();
        return Err(e);
    }
    drop(joined_write);
    let report = sync::read_report(sync_read)
        .and_then(|_| receive_master(console_ours))
        .inspect_err(|_| {
            // A child that reported ready but sent no master is still alive: end it.
            let _ = sys::kill(child, libc::SIGKILL);
        });
    match report {
        Ok(pty_master) => {
            tracing::debug!(id, pid = child, "container created");
            Ok(Created {
                pid: child,
                pty_master,
            })
        }
        Err(e) => {
            reap(child);
            let _ = cgroup.remove();
            Err(e)
        }
    }
}

/// Wait for a child that reported a failure (it exits right after).
fn reap(pid: i32) {
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid),
        rustix::process::WaitOptions::empty(),
    );
}

/// Run `process` inside the running container whose init is `init_pid`. Returns the new
/// process's host pid (and pty master, with a terminal); the caller reaps it.
pub fn exec(init_pid: i32, spec: &Spec, process: &Process, io: ProcessIo) -> Result<Created> {
    use rustix::fs::{Mode, OFlags};
    let open_ns = |name: &str| {
        rustix::fs::open(
            format!("/proc/{init_pid}/ns/{name}"),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::syscall("open container namespace", e))
    };
    // Joined in this order: the mount namespace last, the paths above resolve in ours.
    let mut ns_fds = Vec::new();
    for name in ["cgroup", "ipc", "uts", "net", "mnt"] {
        let ours = rustix::fs::stat(format!("/proc/self/ns/{name}"))
            .map(|s| s.st_ino)
            .ok();
        let theirs = rustix::fs::stat(format!("/proc/{init_pid}/ns/{name}"))
            .map_err(|e| RuntimeError::syscall("stat container namespace", e))?
            .st_ino;
        if ours != Some(theirs) {
            ns_fds.push(open_ns(name)?);
        }
    }
    let target_pid_ns = open_ns("pid")?;
    let own_pid_ns = rustix::fs::open(
        "/proc/self/ns/pid",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::syscall("open own pid namespace", e))?;
    let cgroup_procs = container_cgroup(spec).ok();
    let seccomp = process::seccomp_program(spec)?;

    let (sync_read, sync_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| RuntimeError::syscall("sync pipe", e))?;
    let (console_ours, console_theirs) = console_pair(&io)?;
    // Our children land in the container's pid namespace; we switch back right after clone3.
    rustix::thread::move_into_link_name_space(target_pid_ns.as_fd(), None)
        .map_err(|e| RuntimeError::syscall("setns pid namespace", e))?;
    let forked = sys::clone3(0);
    let restored = rustix::thread::move_into_link_name_space(own_pid_ns.as_fd(), None);
    let forked = forked.map_err(|e| RuntimeError::syscall("clone3", e))?;
    let child = match forked {
        Forked::Child => {
            drop(sync_read);
            drop(console_ours);
            let mut sync = sync::ChildSync::new(sync_write);
            let steps = ExecSteps {
                process,
                io,
                console: console_theirs,
                cgroup: cgroup_procs,
                ns_fds: &ns_fds,
                seccomp: seccomp.as_ref(),
            };
            let err = match exec_steps(steps) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            sync.error(&err);
            sys::exit_now(match err.exit_code() {
                125 => 1,
                code => code,
            })
        }
        Forked::Parent { child } => child,
    };
    drop(sync_write);
    drop(console_theirs);
    drop(io);
    restored.map_err(|e| RuntimeError::syscall("restore pid namespace", e))?;
    match sync::read_report(sync_read).and_then(|_| receive_master(console_ours)) {
        Ok(pty_master) => Ok(Created {
            pid: child,
            pty_master,
        }),
        Err(e) => {
            reap(child);
            Err(e)
        }
    }
}

/// What the exec'd child needs, prepared before clone3.
struct ExecSteps<'a> {
    process: &'a Process,
    io: ProcessIo,
    console: Option<OwnedFd>,
    cgroup: Option<Cgroup>,
    ns_fds: &'a [OwnedFd],
    seccomp: Option<&'a crate::seccomp::Program>,
}

fn exec_steps(s: ExecSteps<'_>) -> Result<std::convert::Infallible> {
    let ExecSteps {
        process,
        io,
        console,
        cgroup,
        ns_fds,
        seccomp,
    } = s;
    if let Some(cg) = cgroup {
        cg.join(0)?;
    }
    for fd in ns_fds {
        rustix::thread::move_into_link_name_space(fd.as_fd(), None)
            .map_err(|e| RuntimeError::syscall("setns", e))?;
    }
    // In the container's mount namespace now (root and cwd at its root): its /dev/ptmx.
    let io = match console {
        Some(sock) if io.terminal => process::open_terminal(sock, process, false)?,
        _ => io,
    };
    process::setup_stdio(io)?;
    let target = process::finish_process(process, seccomp)?;
    Err(target.exec())
}

/// Send `signal` to `pid`.
pub fn kill(pid: i32, signal: i32) -> Result<()> {
    sys::kill(pid, signal).map_err(|e| RuntimeError::syscall("kill", e))
}

/// Freeze every process of the container.
pub fn pause(spec: &Spec) -> Result<()> {
    container_cgroup(spec)?.freeze(true)
}

/// Thaw the container.
pub fn resume(spec: &Spec) -> Result<()> {
    container_cgroup(spec)?.freeze(false)
}

/// Whether the container is frozen.
pub fn is_paused(spec: &Spec) -> bool {
    container_cgroup(spec).is_ok_and(|c| c.is_frozen())
}

/// Remove the container's cgroups in every hierarchy; idempotent.
pub fn cleanup(spec: &Spec) -> Result<()> {
    container_cgroup(spec)?.remove()
}

/// The pids in the container's cgroup (for `top`).
pub fn processes(spec: &Spec) -> Result<Vec<i32>> {
    container_cgroup(spec)?.processes()
}

/// Send `signal` to every process of the container.
pub fn kill_all(spec: &Spec, signal: i32) -> Result<()> {
    for pid in processes(spec)? {
        match sys::kill(pid, signal) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(RuntimeError::syscall("kill", e)),
        }
    }
    Ok(())
}
