//! Driving an OCI runtime binary (Debian's runc) with the same bundle as the builtin runtime.
//!
//! runc's errors are captured through `--log FILE --log-format json` (its stdio is the
//! container's). With a terminal, runc is given `--console-socket` and sends the pty master
//! back over it with SCM_RIGHTS. The caller (the shim) should be PR_SET_CHILD_SUBREAPER so
//! the container's init, orphaned when runc exits, is reparented to it.

use crate::error::{Result, RuntimeError};
use crate::io::ProcessIo;
use oci_spec::runtime::Process;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// An OCI runtime binary and its state dir (`--root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRuntime {
    pub binary: PathBuf,
    pub root: PathBuf,
}

/// A per-call scratch dir for the log, pid file, process.json and console socket.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Result<Self> {
        Ok(Scratch(
            tempfile::Builder::new().prefix("berth-runc-").tempdir()?,
        ))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

impl ExternalRuntime {
    fn command(&self, log: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        if let Some(log) = log {
            cmd.arg("--log").arg(log).args(["--log-format", "json"]);
        }
        cmd
    }

    /// Run a command that needs no stdio of ours; its stderr becomes the error.
    fn simple(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = self
            .command(None)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| RuntimeError::External(format!("{}: {e}", self.binary.display())))?;
        if !out.status.success() {
            return Err(RuntimeError::External(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(out.stdout)
    }

    /// `runc create`: returns the init's pid and, with a terminal, the pty master.
    pub fn create(&self, id: &str, bundle: &Path, io: ProcessIo) -> Result<(i32, Option<OwnedFd>)> {
        let scratch = Scratch::new()?;
        let mut cmd = self.command(Some(&scratch.path("log.json")));
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(scratch.path("pid"));
        self.spawn_with_io(cmd, id, io, &scratch)
    }

    /// `runc exec --detach`: returns the process's pid and, with a terminal, the pty master.
    pub fn exec(
        &self,
        id: &str,
        process: &Process,
        io: ProcessIo,
    ) -> Result<(i32, Option<OwnedFd>)> {
        let scratch = Scratch::new()?;
        let json = serde_json::to_vec(process).map_err(|e| RuntimeError::Spec(e.to_string()))?;
        std::fs::write(scratch.path("process.json"), json)?;
        let mut cmd = self.command(Some(&scratch.path("log.json")));
        cmd.args(["exec", "--detach", "--process"])
            .arg(scratch.path("process.json"))
            .arg("--pid-file")
            .arg(scratch.path("pid"));
        self.spawn_with_io(cmd, id, io, &scratch)
    }

    fn spawn_with_io(
        &self,
        mut cmd: Command,
        id: &str,
        io: ProcessIo,
        scratch: &Scratch,
    ) -> Result<(i32, Option<OwnedFd>)> {
        let listener = if io.terminal {
            let sock = scratch.path("console.sock");
            let l = UnixListener::bind(&sock)?;
            l.set_nonblocking(true)?;
            cmd.arg("--console-socket").arg(&sock);
            // runc gives the container a pty of its own; ours is not used.
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            Some(l)
        } else {
            cmd.stdin(Stdio::from(io.stdin))
                .stdout(Stdio::from(io.stdout))
                .stderr(Stdio::from(io.stderr));
            None
        };
        cmd.arg(id);
        let mut child = cmd
            .spawn()
            .map_err(|e| RuntimeError::External(format!("{}: {e}", self.binary.display())))?;
        drop(cmd); // close our copies of the container's stdio
        let mut master = None;
        if let Some(l) = &listener {
            master = loop {
                match l.accept() {
                    Ok((conn, _)) => break Some(receive_fd(&conn)?),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if child.try_wait()?.is_some() {
                            break None;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(runc_error(&scratch.path("log.json"), status));
        }
        let pid = std::fs::read_to_string(scratch.path("pid"))?
            .trim()
            .parse::<i32>()
            .map_err(|e| RuntimeError::External(format!("bad pid file: {e}")))?;
        Ok((pid, master))
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.simple(&["start", id]).map(|_| ())
    }

    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.simple(&args).map(|_| ())
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.simple(&["pause", id]).map(|_| ())
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.simple(&["resume", id]).map(|_| ())
    }

    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = vec!["delete"];
        if force {
            args.push("--force");
        }
        args.push(id);
        self.simple(&args).map(|_| ())
    }

    /// runc's OCI state JSON.
    pub fn state(&self, id: &str) -> Result<serde_json::Value> {
        let out = self.simple(&["state", id])?;
        serde_json::from_slice(&out).map_err(|e| RuntimeError::External(format!("runc state: {e}")))
    }

    /// The pids of the container (`runc ps --format json`).
    pub fn processes(&self, id: &str) -> Result<Vec<i32>> {
        let out = self.simple(&["ps", "--format", "json", id])?;
        let pids: Option<Vec<i32>> = serde_json::from_slice(&out)
            .map_err(|e| RuntimeError::External(format!("runc ps: {e}")))?;
        Ok(pids.unwrap_or_default())
    }
}

/// The last error runc logged, mapped to NotFound/NotExecutable like the builtin runtime's.
fn runc_error(log: &Path, status: std::process::ExitStatus) -> RuntimeError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let msg = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error")
        .filter_map(|v| v["msg"].as_str().map(str::to_string))
        .next()
        .unwrap_or_else(|| format!("runc exited with {status}"));
    if let Some(cmd) = quoted_command(&msg, "executable file not found in $PATH")
        .or_else(|| quoted_command(&msg, "no such file or directory"))
    {
        return RuntimeError::NotFound(cmd);
    }
    if let Some(cmd) = quoted_command(&msg, "permission denied") {
        return RuntimeError::NotExecutable(cmd);
    }
    RuntimeError::External(msg)
}

/// `... exec: "nosuch": <suffix>` -> "nosuch".
fn quoted_command(msg: &str, suffix: &str) -> Option<String> {
    if !msg.contains(suffix) {
        return None;
    }
    let start = msg.find("exec: \"")? + 7;
    let end = msg[start..].find('"')? + start;
    Some(msg[start..end].to_string())
}

/// Receive one fd sent with SCM_RIGHTS.
fn receive_fd(conn: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    conn.set_nonblocking(false)?;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 4096];
    recvmsg(
        conn,
        &mut [std::io::IoSliceMut::new(&mut buf)],
        &mut cmsg,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| RuntimeError::syscall("receive console fd", e))?;
    for msg in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(RuntimeError::External("runc sent no console fd".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_runc_messages() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        std::fs::write(&log, "{\"level\":\"error\",\"msg\":\"runc create failed: unable to start container process: exec: \\\"nosuch\\\": executable file not found in $PATH\"}\n").unwrap();
        let st = std::process::Command::new("false").status().unwrap();
        assert!(matches!(runc_error(&log, st), RuntimeError::NotFound(c) if c == "nosuch"));
    }
}
