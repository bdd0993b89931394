//! The container side of a process's stdio: pipes or a pty. The child gets one end ([`ChildIo`]),
//! the shim keeps the other ([`ShimIo`]) and multiplexes it in its poll loop.

use crate::shim_protocol::StreamId;
use rustix::fs::{fcntl_getfl, fcntl_setfl, open, Mode, OFlags};
use rustix::io::{fcntl_dupfd_cloexec, Errno};
use rustix::pipe::{pipe_with, PipeFlags};
use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The child's stdin/stdout/stderr (for a tty, three copies of the pty slave).
pub struct ChildIo {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub terminal: bool,
}

/// One readable output of a process: a pipe's read end or the pty master.
pub struct Output {
    pub fd: OwnedFd,
    pub stream: StreamId,
    pub open: bool,
}

/// The shim's ends of a process's stdio.
pub struct ShimIo {
    pub outputs: Vec<Output>,
    /// Where client bytes go: the stdin pipe's write end or the pty master; None without stdin.
    pub stdin: Option<OwnedFd>,
    /// Bytes received from clients and not yet written to `stdin`.
    pub stdin_buf: Vec<u8>,
    /// Close stdin once `stdin_buf` is written (a client's EOF with close_stdin_on_eof).
    pub close_stdin_when_flushed: bool,
    /// The pty master, for resize; None for pipes.
    pub master: Option<OwnedFd>,
}

impl ShimIo {
    pub fn terminal(&self) -> bool {
        self.master.is_some()
    }

    /// True while output may still arrive.
    pub fn any_output_open(&self) -> bool {
        self.outputs.iter().any(|o| o.open)
    }

    /// Stop accepting input; a tty gets an end-of-file character instead of losing its master.
    pub fn close_stdin(&mut self) {
        if self.master.is_some() {
            // VEOF (^D) at the start of a line is what a terminal user would type.
            self.stdin_buf.push(0x04);
            self.close_stdin_when_flushed = true;
        } else if self.stdin_buf.is_empty() {
            self.stdin = None;
        } else {
            self.close_stdin_when_flushed = true;
        }
    }

    /// Wrap a pty master (e.g. received from runc's console socket).
    pub fn from_master(master: OwnedFd, with_stdin: bool) -> io::Result<ShimIo> {
        set_nonblocking(master.as_fd())?;
        let out = fcntl_dupfd_cloexec(&master, 0)?;
        let stdin = if with_stdin {
            Some(fcntl_dupfd_cloexec(&master, 0)?)
        } else {
            None
        };
        Ok(ShimIo {
            outputs: vec![Output {
                fd: out,
                stream: StreamId::Stdout,
                open: true,
            }],
            stdin,
            stdin_buf: Vec::new(),
            close_stdin_when_flushed: false,
            master: Some(master),
        })
    }
}

/// Pipes for stdout and stderr; a pipe for stdin when `with_stdin`, else /dev/null.
pub fn pipes(with_stdin: bool) -> io::Result<(ShimIo, ChildIo)> {
    let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (stdin_w, child_stdin) = if with_stdin {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
        set_nonblocking(w.as_fd())?;
        (Some(w), r)
    } else {
        (None, dev_null()?)
    };
    set_nonblocking(out_r.as_fd())?;
    set_nonblocking(err_r.as_fd())?;
    let shim = ShimIo {
        outputs: vec![
            Output {
                fd: out_r,
                stream: StreamId::Stdout,
                open: true,
            },
            Output {
                fd: err_r,
                stream: StreamId::Stderr,
                open: true,
            },
        ],
        stdin: stdin_w,
        stdin_buf: Vec::new(),
        close_stdin_when_flushed: false,
        master: None,
    };
    let child = ChildIo {
        stdin: child_stdin,
        stdout: out_w,
        stderr: err_w,
        terminal: false,
    };
    Ok((shim, child))
}

/// A new pty: the shim keeps the master, the child gets the slave as stdin/stdout/stderr.
pub fn pty(with_stdin: bool) -> io::Result<(ShimIo, ChildIo)> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let child = ChildIo {
        stdin: fcntl_dupfd_cloexec(&slave, 0)?,
        stdout: fcntl_dupfd_cloexec(&slave, 0)?,
        stderr: slave,
        terminal: true,
    };
    Ok((ShimIo::from_master(master, with_stdin)?, child))
}

/// Placeholder stdio for a runtime that makes its own pty (runc's console socket).
pub fn null_child(terminal: bool) -> io::Result<ChildIo> {
    Ok(ChildIo {
        stdin: dev_null()?,
        stdout: dev_null()?,
        stderr: dev_null()?,
        terminal,
    })
}

fn dev_null() -> io::Result<OwnedFd> {
    Ok(open(
        "/dev/null",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = fcntl_getfl(fd)?;
    fcntl_setfl(fd, flags | OFlags::NONBLOCK)?;
    Ok(())
}

/// What one non-blocking read gave.
pub enum ReadOutcome {
    Data(usize),
    WouldBlock,
    /// End of file; for a pty master, EIO once every slave is closed.
    Closed,
}

pub fn read_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        return match rustix::io::read(fd, &mut *buf) {
            Ok(0) => Ok(ReadOutcome::Closed),
            Ok(n) => Ok(ReadOutcome::Data(n)),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => Ok(ReadOutcome::WouldBlock),
            Err(Errno::IO) => Ok(ReadOutcome::Closed),
            Err(e) => Err(e.into()),
        };
    }
}

/// Write as much of `buf` as the fd takes now; returns how much was written.
pub fn write_nonblocking(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::write(fd, &buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_carry_bytes_and_report_eof() {
        let (shim, child) = pipes(true).expect("pipes");
        rustix::io::write(&child.stdout, b"out").expect("write");
        drop(child);
        let mut buf = [0u8; 16];
        match read_nonblocking(shim.outputs[0].fd.as_fd(), &mut buf).expect("read") {
            ReadOutcome::Data(n) => assert_eq!(&buf[..n], b"out"),
            _ => panic!("expected data"),
        }
        // Another test's fork may hold a copy of the write ends until its exec: allow a moment.
        let closed = |fd: BorrowedFd<'_>, buf: &mut [u8]| {
            (0..200).any(|_| {
                let c = matches!(read_nonblocking(fd, buf), Ok(ReadOutcome::Closed));
                if !c {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                c
            })
        };
        assert!(closed(shim.outputs[0].fd.as_fd(), &mut buf));
        assert!(closed(shim.outputs[1].fd.as_fd(), &mut buf));
        // stdin's reader is gone: writing fails with EPIPE (SIGPIPE is ignored in Rust programs).
        let w = shim.stdin.as_ref().expect("stdin");
        assert!(write_nonblocking(w.as_fd(), b"x").is_err());
    }

    #[test]
    fn pty_echoes_and_closes_with_eio() {
        let (shim, child) = pty(true).expect("pty");
        assert!(child.terminal && shim.terminal());
        rustix::io::write(&child.stdout, b"hi\n").expect("write");
        drop(child);
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        for _ in 0..100 {
            match read_nonblocking(shim.outputs[0].fd.as_fd(), &mut buf).expect("read") {
                ReadOutcome::Data(n) => got.extend_from_slice(&buf[..n]),
                ReadOutcome::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(5)),
                ReadOutcome::Closed => break,
            }
        }
        assert_eq!(got, b"hi\r\n");
    }
}
