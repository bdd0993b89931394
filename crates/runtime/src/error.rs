//! The runtime's typed errors.

use std::io;

/// Everything that can go wrong while building a spec or running a container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// args[0] was not found in the container's `$PATH` (the docker CLI maps this text to exit 127).
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotFound(String),
    /// args[0] exists but cannot be executed (docker maps this to exit 126).
    #[error("exec: \"{0}\": permission denied")]
    NotExecutable(String),
    /// The spec (or the options it is built from) is invalid.
    #[error("invalid spec: {0}")]
    Spec(String),
    /// A user name or group could not be resolved.
    #[error("{0}")]
    User(String),
    /// A syscall of a named step failed.
    #[error("{step}: {source}")]
    Syscall {
        step: &'static str,
        source: io::Error,
    },
    /// The container's init reported a failure in a named step.
    #[error("container init failed: {0}")]
    Init(String),
    /// Setting up, joining or removing cgroups failed.
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// Building or loading the seccomp filter failed.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// The external runtime failed; the text is its stderr.
    #[error("{0}")]
    External(String),
    /// No container with this id in the runtime's state dir.
    #[error("container \"{0}\" does not exist")]
    NoSuchContainer(String),
    /// A container with this id already exists.
    #[error("container \"{0}\" already exists")]
    AlreadyExists(String),
    /// The container is not in a state that allows the operation.
    #[error("{0}")]
    InvalidState(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl RuntimeError {
    /// Wrap the last OS error (errno) of a named step.
    pub(crate) fn syscall(step: &'static str, source: impl Into<io::Error>) -> Self {
        RuntimeError::Syscall {
            step,
            source: source.into(),
        }
    }

    /// The exit code a container process would report for this error (Docker's convention).
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::NotFound(_) => 127,
            RuntimeError::NotExecutable(_) => 126,
            _ => 125,
        }
    }
}

impl From<oci_spec::OciSpecError> for RuntimeError {
    fn from(e: oci_spec::OciSpecError) -> Self {
        RuntimeError::Spec(e.to_string())
    }
}

impl From<rustix::io::Errno> for RuntimeError {
    fn from(e: rustix::io::Errno) -> Self {
        RuntimeError::Io(e.into())
    }
}

/// The crate's result type.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
