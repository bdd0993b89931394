//! The steps shared by a container's init and an exec'd process, from stdio to execve:
//! stdio → rlimits → bounding set → user → capabilities → cwd → resolve args[0] → no_new_privs →
//! seccomp → (start gate) → execve.

use super::sys;
use crate::error::{Result, RuntimeError};
use crate::io::ProcessIo;
use crate::seccomp::Program;
use oci_spec::runtime::{Capabilities, Process, Spec};
use rustix::thread::{CapabilitySet, CapabilitySets};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Make `io` the process's fds 0, 1, 2 and start a new session (with the pty as the
/// controlling terminal when `io.terminal`).
pub fn setup_stdio(io: ProcessIo) -> Result<()> {
    let step = |s: &'static str| move |e: rustix::io::Errno| RuntimeError::syscall(s, e);
    sys::reset_signals().map_err(|e| RuntimeError::syscall("reset signals", e))?;
    rustix::process::setsid().map_err(step("setsid"))?;
    rustix::stdio::dup2_stdin(&io.stdin).map_err(step("dup2 stdin"))?;
    rustix::stdio::dup2_stdout(&io.stdout).map_err(step("dup2 stdout"))?;
    rustix::stdio::dup2_stderr(&io.stderr).map_err(step("dup2 stderr"))?;
    if io.terminal {
        rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())
            .map_err(step("set controlling terminal"))?;
    }
    Ok(())
}

/// Open a new pty through the container's /dev/ptmx (its own devpts instance, so the slave is
/// /dev/pts/N inside), optionally bind the slave over /dev/console (the init), send the master to
/// the parent over `sock`, and return the slave as the process's stdio. The slave goes to the
/// process's user, as runc's fixStdioPermissions does, so a non-root user controls its terminal.
pub fn open_terminal(sock: OwnedFd, process: &Process, console: bool) -> Result<ProcessIo> {
    use rustix::fs::{Mode, OFlags};
    let step = |s: &'static str| move |e: rustix::io::Errno| RuntimeError::syscall(s, e);
    let master = rustix::fs::open(
        "/dev/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(step("open /dev/ptmx in the container"))?;
    rustix::pty::unlockpt(&master).map_err(step("unlockpt"))?;
    let name = rustix::pty::ptsname(&master, Vec::new()).map_err(step("ptsname"))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(step("open pty slave"))?;
    let uid = process.user().uid();
    if uid != 0 {
        rustix::fs::fchown(&slave, Some(rustix::fs::Uid::from_raw(uid)), None)
            .map_err(step("chown pty slave"))?;
    }
    if console {
        let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
        super::mounts::mount_console(&path)?;
    }
    crate::io::send_fd(sock.as_fd(), master.as_fd())?;
    drop(master);
    let dup = || {
        slave
            .try_clone()
            .map_err(|e| RuntimeError::syscall("dup pty slave", e))
    };
    Ok(ProcessIo {
        stdin: dup()?,
        stdout: dup()?,
        stderr: slave,
        terminal: true,
    })
}

/// The rlimits of the process; a hard limit above the inherited one is capped (no CAP_SYS_RESOURCE).
pub fn set_rlimits(process: &Process) -> Result<()> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    for r in process.rlimits().iter().flatten() {
        let res = match r.typ().to_string().as_str() {
            "RLIMIT_CPU" => Resource::Cpu,
            "RLIMIT_FSIZE" => Resource::Fsize,
            "RLIMIT_DATA" => Resource::Data,
            "RLIMIT_STACK" => Resource::Stack,
            "RLIMIT_CORE" => Resource::Core,
            "RLIMIT_RSS" => Resource::Rss,
            "RLIMIT_NPROC" => Resource::Nproc,
            "RLIMIT_NOFILE" => Resource::Nofile,
            "RLIMIT_MEMLOCK" => Resource::Memlock,
            "RLIMIT_AS" => Resource::As,
            "RLIMIT_LOCKS" => Resource::Locks,
            "RLIMIT_SIGPENDING" => Resource::Sigpending,
            "RLIMIT_MSGQUEUE" => Resource::Msgqueue,
            "RLIMIT_NICE" => Resource::Nice,
            "RLIMIT_RTPRIO" => Resource::Rtprio,
            "RLIMIT_RTTIME" => Resource::Rttime,
            other => return Err(RuntimeError::Spec(format!("unknown rlimit {other}"))),
        };
        let inherited = getrlimit(res).maximum;
        let cap = |v: u64| inherited.map_or(v, |h| v.min(h));
        let new = Rlimit {
            current: Some(cap(r.soft())),
            maximum: Some(cap(r.hard())),
        };
        setrlimit(res, new).map_err(|e| RuntimeError::syscall("setrlimit", e))?;
    }
    Ok(())
}

fn cap_set(caps: &Option<Capabilities>) -> CapabilitySet {
    let mut set = CapabilitySet::empty();
    for c in caps.iter().flatten() {
        if let Some(n) = crate::capabilities::number(&c.to_string_cap()) {
            set |= CapabilitySet::from_bits_retain(1 << n);
        }
    }
    set
}

/// oci-spec's Capability displays as "CHOWN"; the kernel name is "CAP_CHOWN".
trait CapName {
    fn to_string_cap(&self) -> String;
}
impl CapName for oci_spec::runtime::Capability {
    fn to_string_cap(&self) -> String {
        format!("CAP_{self}")
    }
}

/// Drop from the bounding set, switch to the spec's user, then set effective, permitted,
/// inheritable and ambient capabilities.
pub fn set_user_and_caps(process: &Process) -> Result<()> {
    let caps = process.capabilities().clone();
    let (bounding, effective, permitted, inheritable, ambient) = match &caps {
        Some(c) => (
            cap_set(c.bounding()),
            cap_set(c.effective()),
            cap_set(c.permitted()),
            cap_set(c.inheritable()),
            cap_set(c.ambient()),
        ),
        None => {
            let e = CapabilitySet::empty();
            (e, e, e, e, e)
        }
    };
    // Nobody can gain a capability they lack (this host withholds CAP_SYS_RESOURCE, say):
    // like runc, grant what is asked for and held, instead of failing capset.
    let held = rustix::thread::capabilities(None)
        .map_err(|e| RuntimeError::syscall("capget", e))?
        .permitted;
    let (effective, permitted, inheritable, ambient) = (
        effective & held,
        permitted & held,
        inheritable & held,
        ambient & held,
    );
    for n in 0..=40u32 {
        let cap = CapabilitySet::from_bits_retain(1 << n);
        if !bounding.contains(cap) {
            match rustix::thread::remove_capability_from_bounding_set(cap) {
                Ok(()) | Err(rustix::io::Errno::INVAL) => {} // EINVAL: the kernel does not know it
                Err(e) => return Err(RuntimeError::syscall("drop bounding capability", e)),
            }
        }
    }

    let user = process.user();
    let uid = rustix::process::Uid::from_raw(user.uid());
    let gid = rustix::process::Gid::from_raw(user.gid());
    let groups: Vec<rustix::process::Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    // Keep the permitted set across the uid change; effective is set explicitly below.
    rustix::thread::set_keep_capabilities(true)
        .map_err(|e| RuntimeError::syscall("keep capabilities", e))?;
    rustix::thread::set_thread_groups(&groups)
        .map_err(|e| RuntimeError::syscall("setgroups", e))?;
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| RuntimeError::syscall("setresgid", e))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| RuntimeError::syscall("setresuid", e))?;
    rustix::thread::set_keep_capabilities(false)
        .map_err(|e| RuntimeError::syscall("keep capabilities", e))?;
    if let Some(mask) = user.umask() {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
    }

    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective,
            permitted,
            inheritable,
        },
    )
    .map_err(|e| RuntimeError::syscall("capset", e))?;
    for n in 0..=40u32 {
        let cap = CapabilitySet::from_bits_retain(1 << n);
        // A capability can only be ambient when it is also permitted and inheritable; a
        // spec that asks otherwise (as `runc spec`'s does) gets what is possible, as runc
        // only warns there.
        if ambient.contains(cap) && permitted.contains(cap) && inheritable.contains(cap) {
            rustix::thread::configure_capability_in_ambient_set(cap, true)
                .map_err(|e| RuntimeError::syscall("raise ambient capability", e))?;
        }
    }
    Ok(())
}

/// Find args[0] the way execvp does, with the container's PATH.
pub fn resolve_executable(cmd: &str, env: &[String]) -> Result<PathBuf> {
    let executable = |p: &Path| -> Option<bool> {
        let md = std::fs::metadata(p).ok()?;
        if !md.is_file() {
            return None;
        }
        Some(
            md.permissions().mode() & 0o111 != 0
                && rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_ok(),
        )
    };
    if cmd.contains('/') {
        return match executable(Path::new(cmd)) {
            Some(true) => Ok(PathBuf::from(cmd)),
            Some(false) => Err(RuntimeError::NotExecutable(cmd.into())),
            None => Err(RuntimeError::NotFound(cmd.into())),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::spec::DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(cmd);
        match executable(&candidate) {
            Some(true) => return Ok(candidate),
            Some(false) => denied = true,
            None => {}
        }
    }
    if denied {
        return Err(RuntimeError::NotExecutable(cmd.into()));
    }
    Err(RuntimeError::NotFound(cmd.into()))
}

/// Everything execve needs, converted before the point of no return.
pub struct ExecTarget {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| RuntimeError::Spec(format!("NUL byte in {s:?}")))
}

impl ExecTarget {
    pub fn new(path: &Path, process: &Process) -> Result<Self> {
        Ok(ExecTarget {
            path: cstring(&path.to_string_lossy())?,
            argv: process
                .args()
                .iter()
                .flatten()
                .map(|a| cstring(a))
                .collect::<Result<_>>()?,
            envp: process
                .env()
                .iter()
                .flatten()
                .map(|e| cstring(e))
                .collect::<Result<_>>()?,
        })
    }

    pub fn exec(&self) -> RuntimeError {
        let err = sys::execve(&self.path, &self.argv, &self.envp);
        let cmd = self
            .argv
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        match err.raw_os_error() {
            Some(libc::ENOENT) => RuntimeError::NotFound(cmd),
            Some(libc::EACCES) | Some(libc::EPERM) => RuntimeError::NotExecutable(cmd),
            _ => RuntimeError::syscall("execve", err),
        }
    }
}

/// The tail common to init and exec. Returns the prepared exec; the caller passes the gate and execs.
/// `filter` is the spec's seccomp program, compiled by the parent (see [`seccomp_program`]).
pub fn finish_process(process: &Process, filter: Option<&Program>) -> Result<ExecTarget> {
    set_rlimits(process)?;
    let nnp = process.no_new_privileges().unwrap_or(false);
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we still have it.
    // Docker's profile allows every syscall we make afterwards.
    if let (Some(f), false) = (filter, nnp) {
        f.load()?;
    }
    set_user_and_caps(process)?;
    let cwd = if process.cwd().as_os_str().is_empty() {
        Path::new("/")
    } else {
        process.cwd().as_path()
    };
    rustix::process::chdir(cwd).map_err(|e| RuntimeError::syscall("chdir to cwd", e))?;
    let cmd = process
        .args()
        .iter()
        .flatten()
        .next()
        .ok_or_else(|| RuntimeError::Spec("process.args is empty".into()))?;
    let env = process.env().clone().unwrap_or_default();
    let path = resolve_executable(cmd, &env)?;
    let target = ExecTarget::new(&path, process)?;
    if nnp {
        rustix::thread::set_no_new_privs(true)
            .map_err(|e| RuntimeError::syscall("no_new_privs", e))?;
        if let Some(f) = filter {
            f.load()?;
        }
    }
    sys::cloexec_from(3).map_err(|e| RuntimeError::syscall("close_range", e))?;
    Ok(target)
}

/// The spec's seccomp filter, compiled (or fetched from the cache) before clone3 so the child
/// neither compiles nor writes the cache from inside the container.
pub fn seccomp_program(spec: &Spec) -> Result<Option<Program>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(crate::seccomp::program)
        .transpose()
}
