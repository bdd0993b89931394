//! The container process's stdio: three fds, or one pty slave used for all three.

use crate::error::{Result, RuntimeError};
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The stdio handed to a container process.
#[derive(Debug)]
pub struct ProcessIo {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// All three are the same pty slave; the child makes it its controlling terminal.
    pub terminal: bool,
}

impl ProcessIo {
    /// The calling process's own stdin/stdout/stderr, duplicated (runc's "inherited" stdio).
    pub fn inherit() -> Result<Self> {
        let dup = |fd: BorrowedFd<'_>| {
            rustix::io::fcntl_dupfd_cloexec(fd, 3)
                .map_err(|e| RuntimeError::syscall("dup stdio", e))
        };
        Ok(ProcessIo {
            stdin: dup(rustix::stdio::stdin())?,
            stdout: dup(rustix::stdio::stdout())?,
            stderr: dup(rustix::stdio::stderr())?,
            terminal: false,
        })
    }

    /// Use one pty slave for all three streams.
    pub fn from_pty_slave(slave: &OwnedFd) -> Result<Self> {
        let dup = || {
            slave
                .try_clone()
                .map_err(|e| RuntimeError::syscall("dup pty slave", e))
        };
        Ok(ProcessIo {
            stdin: dup()?,
            stdout: dup()?,
            stderr: dup()?,
            terminal: true,
        })
    }
}

/// A pseudo-terminal pair.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a new pty pair (both ends close-on-exec).
pub fn open_pty() -> Result<Pty> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(|e| RuntimeError::syscall("open /dev/ptmx", e))?;
    rustix::pty::grantpt(&master).map_err(|e| RuntimeError::syscall("grantpt", e))?;
    rustix::pty::unlockpt(&master).map_err(|e| RuntimeError::syscall("unlockpt", e))?;
    let name = rustix::pty::ptsname(&master, Vec::new())
        .map_err(|e| RuntimeError::syscall("ptsname", e))?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RuntimeError::syscall("open pty slave", e))?;
    Ok(Pty { master, slave })
}

/// Set a terminal's window size (rows x cols).
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let ws = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd.as_fd(), ws)
        .map_err(|e| RuntimeError::syscall("set window size", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pty_roundtrip_and_winsize() {
        let pty = open_pty().unwrap();
        set_winsize(pty.slave.as_fd(), 40, 120).unwrap();
        let ws = rustix::termios::tcgetwinsize(&pty.slave).unwrap();
        assert_eq!((ws.ws_row, ws.ws_col), (40, 120));
    }
}
