//! The runtime behind the shim: berth's builtin runtime (in this process) or an OCI runtime
//! binary such as runc. The poll loop talks to it through [`ContainerRuntime`] only.

use crate::stdio::ChildIo;
use oci_spec::runtime::Process;
use std::os::fd::OwnedFd;

/// Why a runtime operation failed; `exit_code` is what Docker reports for it.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// Docker's text: the CLI maps it to exit code 127.
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotFound(String),
    /// Docker's text: the CLI maps it to exit code 126.
    #[error("exec: \"{0}\": permission denied")]
    NotExecutable(String),
    #[error("{0}")]
    Runtime(String),
    /// A runtime's message that Docker maps to an exit code (runc's "executable file not found").
    #[error("{0}")]
    RuntimeWithCode(String, i32),
    #[error("{step}: {source}")]
    Io {
        step: &'static str,
        source: std::io::Error,
    },
}

impl ShimError {
    pub fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> ShimError {
        move |source| ShimError::Io { step, source }
    }

    /// 127 (not found), 126 (not executable), 125 (anything else).
    pub fn exit_code(&self) -> i32 {
        match self {
            ShimError::NotFound(_) => 127,
            ShimError::NotExecutable(_) => 126,
            ShimError::RuntimeWithCode(_, code) => *code,
            _ => 125,
        }
    }
}

/// A process the runtime started: its host pid, and the pty master when the runtime made the pty.
pub struct Spawned {
    pub pid: i32,
    pub master: Option<OwnedFd>,
}

/// What the shim needs from a runtime. Each call is synchronous; the shim is single-threaded.
pub trait ContainerRuntime {
    /// Create the container's init, stopped before exec until [`start`](Self::start).
    fn create(&mut self, io: ChildIo) -> Result<Spawned, ShimError>;
    /// Let the init exec the container's process.
    fn start(&mut self) -> Result<(), ShimError>;
    /// Run another process in the running container.
    fn exec(&mut self, init_pid: i32, process: &Process, io: ChildIo)
        -> Result<Spawned, ShimError>;
    /// Signal the init, or every process of the container.
    fn kill(&mut self, init_pid: i32, signal: i32, all: bool) -> Result<(), ShimError>;
    fn pause(&mut self) -> Result<(), ShimError>;
    fn resume(&mut self) -> Result<(), ShimError>;
    /// Remove what the runtime made (cgroups, runc state) after the init has exited.
    fn cleanup(&mut self) -> Result<(), ShimError>;
    /// True when a tty process gets its pty from the runtime (returned in [`Spawned::master`])
    /// rather than from the shim.
    fn makes_own_pty(&self) -> bool {
        false
    }
}
