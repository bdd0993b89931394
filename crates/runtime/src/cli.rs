//! `berth runtime [--root DIR] create|start|state|kill|delete|run`, with runc's semantics.
//!
//! State lives in `<root>/<id>/state.json`; a created container's init waits on
//! `<root>/<id>/exec.fifo` until `start` opens it. stdio is inherited from the caller.

use crate::builtin::{self, StartGate};
use crate::error::{Result, RuntimeError};
use crate::io::ProcessIo;
use crate::spec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "state.json";
const EXEC_FIFO: &str = "exec.fifo";

/// What we remember about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    id: String,
    pid: i32,
    bundle: PathBuf,
    /// The init's start time (field 22 of /proc/PID/stat), to notice pid reuse.
    start_time: u64,
    created: String,
}

fn container_dir(root: &Path, id: &str) -> Result<PathBuf> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(RuntimeError::InvalidState(format!(
            "invalid container id {id:?}"
        )));
    }
    Ok(root.join(id))
}

fn load(root: &Path, id: &str) -> Result<State> {
    let dir = container_dir(root, id)?;
    let bytes = std::fs::read(dir.join(STATE_FILE)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RuntimeError::NoSuchContainer(id.to_string()),
        _ => RuntimeError::Io(e),
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RuntimeError::InvalidState(format!("corrupt state of {id}: {e}")))
}

fn save(root: &Path, state: &State) -> Result<()> {
    let dir = container_dir(root, &state.id)?;
    let tmp = dir.join(".state.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(state).map_err(|e| RuntimeError::InvalidState(e.to_string()))?,
    )?;
    std::fs::rename(tmp, dir.join(STATE_FILE))?;
    Ok(())
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

fn alive(state: &State) -> bool {
    start_time(state.pid) == Some(state.start_time) && !is_zombie(state.pid)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

fn status(root: &Path, state: &State) -> &'static str {
    if !alive(state) {
        return "stopped";
    }
    if root.join(&state.id).join(EXEC_FIFO).exists() {
        return "created";
    }
    let paused = load_spec(&state.bundle, &state.id).is_ok_and(|s| builtin::is_paused(&s));
    if paused {
        "paused"
    } else {
        "running"
    }
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("@{secs}")
}

fn write_pid_file(pid_file: Option<&Path>, pid: i32) -> Result<()> {
    if let Some(p) = pid_file {
        std::fs::write(p, pid.to_string())?;
    }
    Ok(())
}

fn init_container(
    root: &Path,
    id: &str,
    bundle: &Path,
    gate_fifo: bool,
) -> Result<(PathBuf, oci_spec::runtime::Spec, StartGate)> {
    let dir = container_dir(root, id)?;
    std::fs::create_dir_all(root)?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::AlreadyExists(id.into()))
        }
        Err(e) => return Err(e.into()),
    }
    let bundle = std::fs::canonicalize(bundle)?;
    let spec = match load_spec(&bundle, id) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let gate = if gate_fifo {
        let fifo = dir.join(EXEC_FIFO);
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o622),
        )
        .map_err(|e| RuntimeError::syscall("mkfifo exec.fifo", e))?;
        // mkfifo applies the umask; others must be able to write it (a non-root init).
        rustix::fs::chmod(&fifo, rustix::fs::Mode::from_raw_mode(0o622))
            .map_err(|e| RuntimeError::syscall("chmod exec.fifo", e))?;
        StartGate::Fifo(fifo)
    } else {
        StartGate::Immediate
    };
    Ok((bundle, spec, gate))
}

/// The bundle's spec; a bundle without `linux.cgroupsPath` (as `runc spec` writes) gets
/// `/berth/<id>`, as runc picks a default of its own.
fn load_spec(bundle: &Path, id: &str) -> Result<oci_spec::runtime::Spec> {
    let mut spec = spec::load_bundle(bundle)?;
    if let Some(linux) = spec.linux_mut() {
        if linux
            .cgroups_path()
            .as_ref()
            .is_none_or(|p| p.as_os_str().is_empty())
        {
            linux.set_cgroups_path(Some(PathBuf::from(format!("/berth/{id}"))));
        }
    }
    Ok(spec)
}

fn create_with(
    root: &Path,
    id: &str,
    bundle: &Path,
    pid_file: Option<&Path>,
    fifo: bool,
) -> Result<State> {
    let (bundle, spec, gate) = init_container(root, id, bundle, fifo)?;
    let created = ProcessIo::inherit().and_then(|io| builtin::create(id, &bundle, &spec, io, gate));
    let created = match created {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(root.join(id));
            return Err(e);
        }
    };
    let state = State {
        id: id.to_string(),
        pid: created.pid,
        bundle,
        start_time: start_time(created.pid).unwrap_or(0),
        created: now_rfc3339(),
    };
    save(root, &state)?;
    write_pid_file(pid_file, created.pid)?;
    Ok(state)
}

/// Create a container whose init waits on `<root>/<id>/exec.fifo`.
pub fn create(root: &Path, id: &str, bundle: &Path, pid_file: Option<&Path>) -> Result<()> {
    create_with(root, id, bundle, pid_file, true).map(|_| ())
}

/// Let a created container's init exec its process.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let state = load(root, id)?;
    let fifo = container_dir(root, id)?.join(EXEC_FIFO);
    if !fifo.exists() {
        return Err(RuntimeError::InvalidState(
            "cannot start an already running container".into(),
        ));
    }
    if !alive(&state) {
        return Err(RuntimeError::InvalidState(
            "cannot start a container that has stopped".into(),
        ));
    }
    let mut f = std::fs::File::open(&fifo)?;
    let mut byte = [0u8; 1];
    let n = f.read(&mut byte)?;
    std::fs::remove_file(&fifo)?;
    if n == 0 {
        return Err(RuntimeError::InvalidState(
            "container init exited before start".into(),
        ));
    }
    Ok(())
}

/// The OCI state of a container.
pub fn state(root: &Path, id: &str) -> Result<Value> {
    let st = load(root, id)?;
    let status = status(root, &st);
    Ok(json!({
        "ociVersion": "1.2.0",
        "id": st.id,
        "status": status,
        "pid": if status == "stopped" { 0 } else { st.pid },
        "bundle": st.bundle,
        "created": st.created,
    }))
}

/// Parse "TERM", "SIGTERM", "term", "15".
pub fn parse_signal(sig: &str) -> Result<i32> {
    if let Ok(n) = sig.parse::<i32>() {
        return Ok(n);
    }
    let up = sig.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            return Err(RuntimeError::InvalidState(format!(
                "unknown signal {sig:?}"
            )))
        }
    };
    Ok(n)
}

/// Send a signal to the container's init.
pub fn kill(root: &Path, id: &str, signal: &str) -> Result<()> {
    let sig = parse_signal(signal)?;
    let st = load(root, id)?;
    if !alive(&st) {
        return Err(RuntimeError::InvalidState("container not running".into()));
    }
    builtin::kill(st.pid, sig)
}

/// Delete a stopped container (with `force`, kill it first).
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let st = load(root, id)?;
    if alive(&st) {
        let created = root.join(id).join(EXEC_FIFO).exists();
        if !force && !created {
            return Err(RuntimeError::InvalidState(format!(
                "cannot delete container {id} that is not stopped: {}",
                status(root, &st)
            )));
        }
        let _ = builtin::kill(st.pid, libc::SIGKILL);
        // Wait for the kernel to tear it down so the cgroup can be removed.
        for _ in 0..500 {
            if !alive(&st) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    if let Ok(spec) = load_spec(&st.bundle, &st.id) {
        let _ = builtin::kill_all(&spec, libc::SIGKILL);
        builtin::cleanup(&spec)?;
    }
    std::fs::remove_dir_all(container_dir(root, id)?)?;
    Ok(())
}

/// Signals `run` passes on to the container's init, as runc does.
const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// create + start + wait + delete; returns the process's exit code (128+signal if killed).
/// Signals sent to us meanwhile are forwarded to the container's init.
pub fn run(root: &Path, id: &str, bundle: &Path, pid_file: Option<&Path>) -> Result<i32> {
    use crate::builtin::sys;
    let mut watched = FORWARDED.to_vec();
    watched.push(libc::SIGCHLD);
    // Blocked before the clone so none is lost; the child resets its mask before exec.
    sys::set_signal_mask(&watched, libc::SIG_BLOCK)
        .map_err(|e| RuntimeError::syscall("block signals", e))?;
    let result = create_with(root, id, bundle, pid_file, false).and_then(|st| {
        let pid = rustix::process::Pid::from_raw(st.pid);
        loop {
            let status = rustix::process::waitpid(pid, rustix::process::WaitOptions::NOHANG)
                .map_err(|e| RuntimeError::syscall("wait for container", e))?;
            if let Some((_, s)) = status {
                break Ok(match (s.exit_status(), s.terminating_signal()) {
                    (Some(c), _) => c,
                    (None, Some(sig)) => 128 + sig,
                    _ => 255,
                });
            }
            let sig = sys::wait_signal(&watched)
                .map_err(|e| RuntimeError::syscall("wait for signals", e))?;
            if sig != libc::SIGCHLD {
                let _ = builtin::kill(st.pid, sig);
            }
        }
    });
    let _ = sys::set_signal_mask(&watched, libc::SIG_UNBLOCK);
    let code = result?;
    delete(root, id, true)?;
    Ok(code)
}
