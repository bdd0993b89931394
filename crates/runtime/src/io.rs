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
    /// The process gets a terminal. The builtin runtime (like runc with its console socket)
    /// opens a new pty inside the container, makes the slave the process's stdio and
    /// controlling terminal and hands the master back; the three fds above are then unused
    /// placeholders (see [`ProcessIo::terminal`]).
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

    /// For a process with a terminal: /dev/null placeholders; the runtime makes the pty.
    pub fn terminal() -> Result<Self> {
        let null = || {
            rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| RuntimeError::syscall("open /dev/null", e))
        };
        Ok(ProcessIo {
            stdin: null()?,
            stdout: null()?,
            stderr: null()?,
            terminal: true,
        })
    }

    /// Use one pty slave for all three streams (for an external runtime, which ignores them
    /// and makes its own pty, like the builtin one).
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

/// Send one fd over a unix socket with SCM_RIGHTS (one data byte goes along).
pub(crate) fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::mem::MaybeUninit;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !cmsg.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(RuntimeError::Init("no room for the pty master fd".into()));
    }
    loop {
        match sendmsg(
            sock,
            &[std::io::IoSlice::new(b"m")],
            &mut cmsg,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RuntimeError::syscall("send pty master", e)),
        }
    }
}

/// Receive one fd sent with [`send_fd`] (close-on-exec).
pub(crate) fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 16];
    loop {
        match recvmsg(
            sock,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut cmsg,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(RuntimeError::syscall("receive pty master", e)),
        }
    }
    for msg in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(RuntimeError::Init(
        "the container process sent no pty master".into(),
    ))
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

    #[test]
    fn fd_passing_roundtrip() {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let pty = open_pty().unwrap();
        send_fd(a.as_fd(), pty.master.as_fd()).unwrap();
        drop(pty.master);
        let master = recv_fd(b.as_fd()).unwrap();
        rustix::io::write(&pty.slave, b"x\n").unwrap();
        let mut buf = [0u8; 8];
        let n = rustix::io::read(&master, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"x\r\n");
        // A peer that hangs up without sending is an error, not a hang.
        drop(a);
        assert!(recv_fd(b.as_fd()).is_err());
    }
}
