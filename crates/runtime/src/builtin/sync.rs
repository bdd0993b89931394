//! The sync pipe between the parent and the container's init (or exec'd process).
//!
//! The child holds the close-on-exec write end. It writes `R` when it reached the start gate,
//! or `E`, a kind byte and a message when a step failed. EOF without a message means it
//! exec'd: the pipe closed with the exec.

use crate::error::{Result, RuntimeError};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

const READY: u8 = b'R';
const ERROR: u8 = b'E';

const KIND_OTHER: u8 = 0;
const KIND_NOT_FOUND: u8 = 1;
const KIND_NOT_EXECUTABLE: u8 = 2;

/// What the child reported.
pub enum Report {
    /// Waiting at the start gate.
    Ready,
    /// Exec'd (the pipe closed).
    Execed,
}

/// The child's end.
pub struct ChildSync(std::fs::File);

impl ChildSync {
    pub fn new(fd: OwnedFd) -> Self {
        ChildSync(fd.into())
    }

    pub fn ready(&mut self) -> Result<()> {
        self.0
            .write_all(&[READY])
            .map_err(|e| RuntimeError::syscall("report ready", e))
    }

    /// Report an error; best effort, the parent sees EOF if this fails.
    pub fn error(&mut self, err: &RuntimeError) {
        let (kind, text) = match err {
            RuntimeError::NotFound(cmd) => (KIND_NOT_FOUND, cmd.clone()),
            RuntimeError::NotExecutable(cmd) => (KIND_NOT_EXECUTABLE, cmd.clone()),
            other => (KIND_OTHER, other.to_string()),
        };
        let mut msg = vec![ERROR, kind];
        msg.extend_from_slice(text.as_bytes());
        let _ = self.0.write_all(&msg);
    }
}

/// The parent's end: read one report.
pub fn read_report(fd: OwnedFd) -> Result<Report> {
    let mut f = std::fs::File::from(fd);
    let mut first = [0u8; 1];
    loop {
        match f.read(&mut first) {
            Ok(0) => return Ok(Report::Execed),
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RuntimeError::syscall("read sync pipe", e)),
        }
    }
    if first[0] == READY {
        return Ok(Report::Ready);
    }
    let mut rest = Vec::new();
    f.read_to_end(&mut rest)
        .map_err(|e| RuntimeError::syscall("read sync pipe", e))?;
    let (kind, text) = match rest.split_first() {
        Some((k, t)) => (*k, String::from_utf8_lossy(t).into_owned()),
        None => (KIND_OTHER, "container init reported an empty error".into()),
    };
    Err(match kind {
        KIND_NOT_FOUND => RuntimeError::NotFound(text),
        KIND_NOT_EXECUTABLE => RuntimeError::NotExecutable(text),
        _ => RuntimeError::Init(text),
    })
}
