//! berth-runtime: berth's OCI runtime.
//!
//! - [`spec`] builds OCI runtime specs with Docker's defaults (and [`user`] resolves `--user`);
//! - [`builtin`] runs a bundle in-process: clone3 into namespaces → mounts → pivot_root → cgroup →
//!   capabilities → seccomp → execve. It must be called from a single-threaded process (the shim,
//!   or `berth runtime`), because the child runs ordinary Rust code after a fork-like clone;
//! - [`external`] drives an OCI runtime binary (runc) with the same bundle;
//! - [`cli`] is `berth runtime create|start|state|kill|delete|run`, with runc's semantics.
//!
//! It knows nothing about images, networks or HTTP: the daemon composes those.

pub mod builtin;
pub mod capabilities;
pub mod cgroup_stats;
pub mod cgroups;
pub mod cli;
pub mod error;
pub mod external;
pub mod io;
pub mod netns;
pub mod seccomp;
pub mod shim_protocol;
pub mod spec;
pub mod user;

pub use error::RuntimeError;

use std::path::PathBuf;

/// Which runtime runs a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    /// The builtin runtime; `root` is its state dir (e.g. `<exec-root>/runtime`).
    Builtin { root: PathBuf },
    /// An OCI runtime binary such as runc, with its own `--root`.
    External { binary: PathBuf, root: PathBuf },
}
