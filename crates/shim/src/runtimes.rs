//! The runtimes the shim can drive, chosen by `--runtime`.

use crate::args::{Args, RuntimeChoice};
use crate::backend::{ContainerRuntime, ShimError, Spawned};
use crate::stdio::ChildIo;
use oci_spec::runtime::{Process, Spec};

/// The runtime picked on the command line.
/// (No variants yet: waiting on berth-runtime's builtin and external drivers.)
pub enum Selected {}

pub fn select(args: &Args, _spec: Spec) -> Result<Selected, ShimError> {
    match &args.runtime {
        RuntimeChoice::Builtin => Err(ShimError::Unavailable("the builtin runtime")),
        RuntimeChoice::External { .. } => Err(ShimError::Unavailable("an external runtime")),
    }
}

impl ContainerRuntime for Selected {
    fn create(&mut self, _io: ChildIo) -> Result<Spawned, ShimError> {
        match *self {}
    }
    fn start(&mut self) -> Result<(), ShimError> {
        match *self {}
    }
    fn exec(
        &mut self,
        _init_pid: i32,
        _process: &Process,
        _io: ChildIo,
    ) -> Result<Spawned, ShimError> {
        match *self {}
    }
    fn kill(&mut self, _init_pid: i32, _signal: i32, _all: bool) -> Result<(), ShimError> {
        match *self {}
    }
    fn pause(&mut self) -> Result<(), ShimError> {
        match *self {}
    }
    fn resume(&mut self) -> Result<(), ShimError> {
        match *self {}
    }
    fn cleanup(&mut self) -> Result<(), ShimError> {
        match *self {}
    }
}
