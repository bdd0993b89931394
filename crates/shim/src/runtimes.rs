//! The runtimes the shim can drive, chosen by `--runtime`: berth's builtin runtime (in this
//! process; the shim is the parent of the init) or an OCI runtime binary such as runc (its init is
//! reparented to the shim, a child subreaper).

use crate::args::{Args, RuntimeChoice};
use crate::backend::{ContainerRuntime, ShimError, Spawned};
use crate::stdio::ChildIo;
use berth_runtime::builtin::{self, StartGate};
use berth_runtime::external::ExternalRuntime;
use berth_runtime::io::ProcessIo;
use berth_runtime::RuntimeError;
use oci_spec::runtime::{Process, Spec};
use rustix::pipe::{pipe_with, PipeFlags};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

impl From<RuntimeError> for ShimError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NotFound(cmd) => ShimError::NotFound(cmd),
            RuntimeError::NotExecutable(cmd) => ShimError::NotExecutable(cmd),
            // runc words it inside a longer message; Docker maps on the same text.
            RuntimeError::External(msg) if msg.contains("executable file not found") => {
                ShimError::RuntimeWithCode(msg, 127)
            }
            RuntimeError::External(msg)
                if msg.contains("exec:") && msg.contains("permission denied") =>
            {
                ShimError::RuntimeWithCode(msg, 126)
            }
            other => ShimError::Runtime(other.to_string()),
        }
    }
}

fn process_io(io: ChildIo) -> ProcessIo {
    ProcessIo {
        stdin: io.stdin,
        stdout: io.stdout,
        stderr: io.stderr,
        terminal: io.terminal,
    }
}

/// The runtime picked on the command line.
pub enum Selected {
    Builtin(Builtin),
    External(External),
}

pub fn select(args: &Args, spec: Spec) -> Result<Selected, ShimError> {
    Ok(match &args.runtime {
        RuntimeChoice::Builtin => Selected::Builtin(Builtin {
            id: args.id.clone(),
            bundle: args.bundle.clone(),
            spec: Box::new(spec),
            gate: None,
        }),
        RuntimeChoice::External { binary, root } => Selected::External(External {
            rt: ExternalRuntime {
                binary: binary.clone(),
                root: root.clone(),
            },
            id: args.id.clone(),
            bundle: args.bundle.clone(),
        }),
    })
}

impl Selected {
    fn as_dyn(&mut self) -> &mut dyn ContainerRuntime {
        match self {
            Selected::Builtin(b) => b,
            Selected::External(e) => e,
        }
    }
}

impl ContainerRuntime for Selected {
    fn create(&mut self, io: ChildIo) -> Result<Spawned, ShimError> {
        self.as_dyn().create(io)
    }
    fn start(&mut self) -> Result<(), ShimError> {
        self.as_dyn().start()
    }
    fn exec(
        &mut self,
        init_pid: i32,
        process: &Process,
        io: ChildIo,
    ) -> Result<Spawned, ShimError> {
        self.as_dyn().exec(init_pid, process, io)
    }
    fn kill(&mut self, init_pid: i32, signal: i32, all: bool) -> Result<(), ShimError> {
        self.as_dyn().kill(init_pid, signal, all)
    }
    fn pause(&mut self) -> Result<(), ShimError> {
        self.as_dyn().pause()
    }
    fn resume(&mut self) -> Result<(), ShimError> {
        self.as_dyn().resume()
    }
    fn cleanup(&mut self) -> Result<(), ShimError> {
        self.as_dyn().cleanup()
    }
    /// Both make the pty inside the container (runc through its console socket, the builtin
    /// runtime over a socketpair) and hand back the master.
    fn makes_own_pty(&self) -> bool {
        true
    }
}

/// berth's own runtime: the init is cloned from this process and waits on a start pipe.
pub struct Builtin {
    id: String,
    bundle: PathBuf,
    spec: Box<Spec>,
    /// Write end of the start gate; one byte (or closing it) lets the init exec.
    gate: Option<OwnedFd>,
}

impl ContainerRuntime for Builtin {
    fn create(&mut self, io: ChildIo) -> Result<Spawned, ShimError> {
        let (read, write) =
            pipe_with(PipeFlags::CLOEXEC).map_err(|e| ShimError::io("start gate")(e.into()))?;
        let created = builtin::create(
            &self.id,
            &self.bundle,
            &self.spec,
            process_io(io),
            StartGate::Pipe(read),
        )?;
        self.gate = Some(write);
        Ok(Spawned {
            pid: created.pid,
            master: created.pty_master,
        })
    }
    fn start(&mut self) -> Result<(), ShimError> {
        let gate = self
            .gate
            .take()
            .ok_or_else(|| ShimError::Runtime("container is already started".into()))?;
        rustix::io::write(&gate, b"s").map_err(|e| ShimError::io("start gate")(e.into()))?;
        Ok(())
    }
    fn exec(
        &mut self,
        init_pid: i32,
        process: &Process,
        io: ChildIo,
    ) -> Result<Spawned, ShimError> {
        let spawned = builtin::exec(init_pid, &self.spec, process, process_io(io))?;
        Ok(Spawned {
            pid: spawned.pid,
            master: spawned.pty_master,
        })
    }
    fn kill(&mut self, init_pid: i32, signal: i32, all: bool) -> Result<(), ShimError> {
        if all {
            // Every process in the container's cgroup, the init among them; if the cgroup cannot
            // be read, at least the init (with a pid namespace its death takes the rest along).
            if builtin::kill_all(&self.spec, signal).is_ok() {
                return Ok(());
            }
        }
        Ok(builtin::kill(init_pid, signal)?)
    }
    fn pause(&mut self) -> Result<(), ShimError> {
        Ok(builtin::pause(&self.spec)?)
    }
    fn resume(&mut self) -> Result<(), ShimError> {
        Ok(builtin::resume(&self.spec)?)
    }
    fn cleanup(&mut self) -> Result<(), ShimError> {
        Ok(builtin::cleanup(&self.spec)?)
    }
}

/// An OCI runtime binary (runc) driven through its command line with the same bundle.
pub struct External {
    rt: ExternalRuntime,
    id: String,
    bundle: PathBuf,
}

impl ContainerRuntime for External {
    fn create(&mut self, io: ChildIo) -> Result<Spawned, ShimError> {
        let (pid, master) = self.rt.create(&self.id, &self.bundle, process_io(io))?;
        Ok(Spawned { pid, master })
    }
    fn start(&mut self) -> Result<(), ShimError> {
        Ok(self.rt.start(&self.id)?)
    }
    fn exec(
        &mut self,
        _init_pid: i32,
        process: &Process,
        io: ChildIo,
    ) -> Result<Spawned, ShimError> {
        let (pid, master) = self.rt.exec(&self.id, process, process_io(io))?;
        Ok(Spawned { pid, master })
    }
    fn kill(&mut self, _init_pid: i32, signal: i32, all: bool) -> Result<(), ShimError> {
        Ok(self.rt.kill(&self.id, signal, all)?)
    }
    fn pause(&mut self) -> Result<(), ShimError> {
        Ok(self.rt.pause(&self.id)?)
    }
    fn resume(&mut self) -> Result<(), ShimError> {
        Ok(self.rt.resume(&self.id)?)
    }
    fn cleanup(&mut self) -> Result<(), ShimError> {
        Ok(self.rt.delete(&self.id, true)?)
    }
}
