//! The shim's single poll loop: container output to the log and to attached clients, client
//! input to the container, requests on the socket, and process exits (through pidfds).

use crate::backend::{ContainerRuntime, ShimError};
use crate::clock::now_rfc3339_nano;
use crate::exitfile;
use crate::jsonlog::{JsonLog, LogStream};
use crate::shim_protocol::{frame_header, ExitRecord, Request, Response, Status, StreamId};
use crate::stdio::{self, read_nonblocking, write_nonblocking, ReadOutcome, ShimIo};
use rustix::event::Timespec;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::Pid;
use rustix::process::{
    pidfd_open, waitid, waitpid, PidfdFlags, WaitId, WaitIdOptions, WaitOptions,
};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// After a process exits, how long its output may still be drained (a background child can hold
/// the pipe open).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// After the container exits, how long clients get to receive what is queued for them.
const LINGER_AFTER_EXIT: Duration = Duration::from_secs(3);
/// A client that falls this far behind is disconnected rather than stalling the container.
const MAX_CLIENT_BACKLOG: usize = 16 << 20;
/// Stop reading a client's stdin bytes while this much waits to be written to the process.
const MAX_STDIN_BACKLOG: usize = 1 << 20;
const MAX_REQUEST_LINE: usize = 4 << 20;
const READ_CHUNK: usize = 32 * 1024;

/// One process the shim watches: the container init or an exec.
struct Proc {
    pid: i32,
    /// Readable when the process has exited; None once reaped.
    pidfd: Option<OwnedFd>,
    io: Option<ShimIo>,
    terminal: bool,
    exit: Option<(i32, Option<i32>)>,
    exited_at: Option<Instant>,
    /// Exited and its output drained: its streams are closed.
    done: bool,
}

impl Proc {
    fn new(pid: i32, io: ShimIo) -> Proc {
        // A pidfd can be missing only if the process is already gone; reaping still finds it.
        let pidfd = Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
        Proc {
            pid,
            pidfd,
            terminal: io.terminal(),
            io: Some(io),
            exit: None,
            exited_at: None,
            done: false,
        }
    }
}

/// Which process a stream belongs to: None = init, Some(pid) = an exec.
type Target = Option<i32>;

#[derive(Clone, Copy)]
struct StreamSpec {
    target: Target,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    close_stdin_on_eof: bool,
    framed: bool,
}

enum Phase {
    /// Reading the one request line.
    Request,
    /// Waiting for the init to exit.
    Waiting,
    /// Answered; nothing more will be sent.
    Answered,
    /// A raw stdio stream.
    Stream(StreamSpec),
}

struct Client {
    sock: UnixStream,
    phase: Phase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    read_eof: bool,
    close_after_flush: bool,
    dead: bool,
}

impl Client {
    fn answer(&mut self, r: &Response) {
        match serde_json::to_vec(r) {
            Ok(mut line) => {
                line.push(b'\n');
                self.out.extend_from_slice(&line);
            }
            Err(_) => self.dead = true,
        }
    }

    fn queue(&mut self, bytes: &[u8]) {
        if self.out.len() + bytes.len() > MAX_CLIENT_BACKLOG {
            self.dead = true;
        } else {
            self.out.extend_from_slice(bytes);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Token {
    Listener,
    Pidfd(Target),
    Output(Target, usize),
    Stdin(Target),
    Client(usize),
}

/// Everything the shim serves, given a created (gated) container.
pub struct Shim<R: ContainerRuntime> {
    rt: R,
    listener: UnixListener,
    socket_path: PathBuf,
    state_dir: PathBuf,
    log: JsonLog<File>,
    init: Proc,
    status: Status,
    exit: Option<ExitRecord>,
    execs: Vec<Proc>,
    clients: Vec<Client>,
    linger_until: Option<Instant>,
}

impl<R: ContainerRuntime> Shim<R> {
    pub fn new(
        rt: R,
        listener: UnixListener,
        socket_path: PathBuf,
        state_dir: PathBuf,
        log: JsonLog<File>,
        init_pid: i32,
        init_io: ShimIo,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Shim {
            rt,
            listener,
            socket_path,
            state_dir,
            log,
            init: Proc::new(init_pid, init_io),
            status: Status::Created,
            exit: None,
            execs: Vec::new(),
            clients: Vec::new(),
            linger_until: None,
        })
    }

    /// Serve until the container has exited and its clients are answered. Returns the exit record.
    pub fn run(mut self) -> io::Result<Option<ExitRecord>> {
        loop {
            self.progress();
            if self.finished() {
                break;
            }
            let ready = self.poll_once()?;
            let mut reaped = false;
            for (token, ev) in ready {
                match token {
                    Token::Listener => self.accept(),
                    Token::Pidfd(_) if reaped => {}
                    Token::Pidfd(target) => {
                        self.reap();
                        self.reap_stray(target);
                        reaped = true;
                    }
                    Token::Output(target, i) => self.read_output(target, i),
                    Token::Stdin(target) => self.flush_stdin(target),
                    Token::Client(i) => self.client_event(i, ev),
                }
            }
            self.flush_clients();
            self.clients.retain(|c| !c.dead);
        }
        let _ = std::fs::remove_file(&self.socket_path);
        Ok(self.exit)
    }

    fn finished(&self) -> bool {
        match self.linger_until {
            None => false,
            Some(deadline) => {
                Instant::now() >= deadline || self.clients.iter().all(|c| c.out.is_empty())
            }
        }
    }

    fn proc(&self, target: Target) -> Option<&Proc> {
        match target {
            None => Some(&self.init),
            Some(pid) => self.execs.iter().find(|p| p.pid == pid),
        }
    }

    fn proc_mut(&mut self, target: Target) -> Option<&mut Proc> {
        match target {
            None => Some(&mut self.init),
            Some(pid) => self.execs.iter_mut().find(|p| p.pid == pid),
        }
    }

    /// Build the poll set, wait, and return what is ready.
    fn poll_once(&mut self) -> io::Result<Vec<(Token, PollFlags)>> {
        let mut tokens = Vec::with_capacity(8 + self.clients.len());
        let mut fds = Vec::with_capacity(8 + self.clients.len());
        tokens.push(Token::Listener);
        fds.push(PollFd::new(&self.listener, PollFlags::IN));
        let stdin_backlog = |t: Target| {
            self.proc(t)
                .and_then(|p| p.io.as_ref())
                .map_or(usize::MAX, |io| {
                    if io.stdin.is_some() {
                        io.stdin_buf.len()
                    } else {
                        usize::MAX
                    }
                })
        };
        for p in std::iter::once(&self.init).chain(self.execs.iter()) {
            let target = if p.pid == self.init.pid {
                None
            } else {
                Some(p.pid)
            };
            if let Some(fd) = &p.pidfd {
                tokens.push(Token::Pidfd(target));
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
            if let Some(io) = &p.io {
                for (i, o) in io.outputs.iter().enumerate() {
                    if o.open {
                        tokens.push(Token::Output(target, i));
                        fds.push(PollFd::new(&o.fd, PollFlags::IN));
                    }
                }
                if let (Some(w), false) = (&io.stdin, io.stdin_buf.is_empty()) {
                    tokens.push(Token::Stdin(target));
                    fds.push(PollFd::new(w, PollFlags::OUT));
                }
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            let wants_input = !c.read_eof
                && match c.phase {
                    Phase::Request => true,
                    Phase::Stream(s) => s.stdin && stdin_backlog(s.target) < MAX_STDIN_BACKLOG,
                    _ => false,
                };
            let mut flags = PollFlags::empty();
            if wants_input {
                flags |= PollFlags::IN;
            }
            if !c.out.is_empty() {
                flags |= PollFlags::OUT;
            }
            tokens.push(Token::Client(i));
            fds.push(PollFd::new(&c.sock, flags));
        }
        let timeout = self.next_deadline().map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(tokens
            .into_iter()
            .zip(fds.iter().map(|f| f.revents()))
            .filter(|(_, ev)| !ev.is_empty())
            .collect())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let drains = std::iter::once(&self.init)
            .chain(self.execs.iter())
            .filter(|p| !p.done)
            .filter_map(|p| p.exited_at.map(|t| t + DRAIN_AFTER_EXIT));
        drains.chain(self.linger_until).min()
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.clients.push(Client {
                        sock,
                        phase: Phase::Request,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        read_eof: false,
                        close_after_flush: false,
                        dead: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    /// Reap every exited child and record the ones we watch.
    fn reap(&mut self) {
        loop {
            match waitpid(None, WaitOptions::NOHANG) {
                Ok(Some((pid, status))) => {
                    let code = exitfile::exit_code_of(status);
                    let pid = pid.as_raw_nonzero().get();
                    if let Some(p) = std::iter::once(&mut self.init)
                        .chain(self.execs.iter_mut())
                        .find(|p| p.pid == pid && p.exit.is_none())
                    {
                        p.exit = Some(code);
                        p.exited_at = Some(Instant::now());
                        p.pidfd = None;
                    }
                }
                Ok(None) => return,
                Err(Errno::INTR) => continue,
                Err(_) => return, // ECHILD: nothing left to reap
            }
        }
    }

    /// A watched process whose pidfd fired but that is not our child (a runtime that did not
    /// leave it to us): collect its status through the pidfd if we can, or record it as lost.
    fn reap_stray(&mut self, target: Target) {
        let Some(p) = self.proc_mut(target) else {
            return;
        };
        if p.exit.is_some() {
            return;
        }
        let Some(fd) = p.pidfd.take() else { return };
        let code = match waitid(
            WaitId::PidFd(fd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        ) {
            Ok(Some(st)) => {
                if let Some(sig) = st.terminating_signal() {
                    (128 + sig, Some(sig))
                } else {
                    (st.exit_status().unwrap_or(255), None)
                }
            }
            Ok(None) => {
                // Not exited after all; keep watching.
                p.pidfd = Some(fd);
                return;
            }
            Err(_) => (255, None),
        };
        p.exit = Some(code);
        p.exited_at = Some(Instant::now());
    }

    fn read_output(&mut self, target: Target, index: usize) {
        let mut buf = vec![0u8; READ_CHUNK];
        // A few reads per wakeup: enough to keep up, bounded so clients are not starved.
        for _ in 0..8 {
            let Some(out) = self
                .proc(target)
                .and_then(|p| p.io.as_ref())
                .and_then(|io| io.outputs.get(index))
            else {
                return;
            };
            let stream = out.stream;
            let outcome = read_nonblocking(out.fd.as_fd(), &mut buf);
            match outcome {
                Ok(ReadOutcome::Data(n)) => self.deliver(target, stream, &buf[..n]),
                Ok(ReadOutcome::WouldBlock) => return,
                Ok(ReadOutcome::Closed) | Err(_) => {
                    if let Some(o) = self
                        .proc_mut(target)
                        .and_then(|p| p.io.as_mut())
                        .and_then(|io| io.outputs.get_mut(index))
                    {
                        o.open = false;
                    }
                    return;
                }
            }
        }
    }

    /// Container output: to the log (init only) and to every client attached to that stream.
    fn deliver(&mut self, target: Target, stream: StreamId, data: &[u8]) {
        if target.is_none() {
            let log_stream = if stream == StreamId::Stderr {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            };
            if let Err(e) = self.log.write(log_stream, data) {
                eprintln!("berth-shim: writing the log: {e}");
            }
        }
        let mut framed: Option<Vec<u8>> = None;
        for c in &mut self.clients {
            let Phase::Stream(s) = c.phase else { continue };
            let wanted = match stream {
                StreamId::Stderr => s.stderr,
                _ => s.stdout,
            };
            if s.target != target || !wanted || c.dead {
                continue;
            }
            if s.framed {
                let f = framed.get_or_insert_with(|| {
                    let mut v = Vec::with_capacity(8 + data.len());
                    v.extend_from_slice(&frame_header(stream, data.len() as u32));
                    v.extend_from_slice(data);
                    v
                });
                c.queue(f);
            } else {
                c.queue(data);
            }
        }
    }

    fn flush_stdin(&mut self, target: Target) {
        let Some(io) = self.proc_mut(target).and_then(|p| p.io.as_mut()) else {
            return;
        };
        let Some(w) = &io.stdin else {
            io.stdin_buf.clear();
            return;
        };
        match write_nonblocking(w.as_fd(), &io.stdin_buf) {
            Ok(n) => {
                io.stdin_buf.drain(..n);
            }
            Err(_) => {
                // The process closed its stdin: what is left cannot be delivered.
                io.stdin_buf.clear();
                io.stdin = None;
            }
        }
        if io.stdin_buf.is_empty() && io.close_stdin_when_flushed {
            io.stdin = None;
        }
    }

    fn queue_stdin(&mut self, target: Target, bytes: &[u8]) {
        if let Some(io) = self.proc_mut(target).and_then(|p| p.io.as_mut()) {
            if io.stdin.is_some() && !io.close_stdin_when_flushed {
                io.stdin_buf.extend_from_slice(bytes);
            }
        }
        self.flush_stdin(target);
    }

    fn client_event(&mut self, i: usize, ev: PollFlags) {
        if ev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            self.client_read(i);
        }
        if ev.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
            // The peer is gone in both directions.
            if let Some(c) = self.clients.get_mut(i) {
                c.dead = true;
            }
        }
    }

    fn client_read(&mut self, i: usize) {
        let mut buf = vec![0u8; READ_CHUNK];
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        if c.read_eof || c.dead {
            return;
        }
        let n = match (&c.sock).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return
            }
            Err(_) => {
                c.dead = true;
                return;
            }
        };
        if n == 0 {
            c.read_eof = true;
            match c.phase {
                Phase::Request => c.dead = true,
                Phase::Stream(s) if s.stdin && s.close_stdin_on_eof => {
                    if let Some(io) = self.proc_mut(s.target).and_then(|p| p.io.as_mut()) {
                        io.close_stdin();
                    }
                    self.flush_stdin(s.target);
                }
                _ => {}
            }
            return;
        }
        match c.phase {
            Phase::Request => {
                c.inbuf.extend_from_slice(&buf[..n]);
                let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') else {
                    if c.inbuf.len() > MAX_REQUEST_LINE {
                        c.answer(&Response::error("request line too long"));
                        c.phase = Phase::Answered;
                        c.close_after_flush = true;
                    }
                    return;
                };
                let rest = c.inbuf.split_off(nl + 1);
                let line = std::mem::take(&mut c.inbuf);
                match serde_json::from_slice::<Request>(&line) {
                    Ok(req) => self.handle(i, req),
                    Err(e) => {
                        c.answer(&Response::error(format!("bad request: {e}")));
                        c.phase = Phase::Answered;
                        c.close_after_flush = true;
                    }
                }
                // Bytes after the request line are the start of an attach's stdin.
                if let Some(Phase::Stream(s)) = self.clients.get(i).map(|c| &c.phase) {
                    if s.stdin && !rest.is_empty() {
                        let target = s.target;
                        self.queue_stdin(target, &rest);
                    }
                }
            }
            Phase::Stream(s) if s.stdin => self.queue_stdin(s.target, &buf[..n]),
            _ => {}
        }
    }

    fn flush_clients(&mut self) {
        for c in &mut self.clients {
            if c.dead {
                continue;
            }
            let mut written = 0;
            while written < c.out.len() {
                match (&c.sock).write(&c.out[written..]) {
                    Ok(0) => break,
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        c.dead = true;
                        break;
                    }
                }
            }
            c.out.drain(..written.min(c.out.len()));
            if c.out.is_empty() && c.close_after_flush {
                c.dead = true;
            }
        }
    }

    /// Handle one request from client `i`.
    fn handle(&mut self, i: usize, req: Request) {
        let reply = match req {
            Request::Start => self.start(),
            Request::State => Response::state(
                self.init.pid,
                self.status,
                self.exit.as_ref().map(|e| e.exit_code),
            ),
            Request::Wait => match &self.exit {
                Some(e) => Response::exited(e.exit_code, e.finished_at.clone()),
                None => {
                    self.clients[i].phase = Phase::Waiting;
                    return;
                }
            },
            Request::Kill { signal, all } => {
                if self.exit.is_some() || self.init.exit.is_some() {
                    Response::ok() // nothing left to signal
                } else {
                    result(self.rt.kill(self.init.pid, signal, all))
                }
            }
            Request::CloseStdin => {
                if let Some(io) = self.proc_mut(None).and_then(|p| p.io.as_mut()) {
                    io.close_stdin();
                }
                self.flush_stdin(None);
                Response::ok()
            }
            Request::Pause => self.set_paused(true),
            Request::Resume => self.set_paused(false),
            Request::Resize {
                height,
                width,
                exec_pid,
            } => self.resize(height, width, exec_pid),
            Request::Attach {
                stdin,
                stdout,
                stderr,
                close_stdin_on_eof,
            } => {
                let has_stdin = self.init.io.as_ref().is_some_and(|io| io.stdin.is_some());
                let spec = StreamSpec {
                    target: None,
                    stdin: stdin && has_stdin,
                    stdout,
                    stderr,
                    close_stdin_on_eof,
                    framed: !self.init.terminal,
                };
                let c = &mut self.clients[i];
                c.answer(&Response::ok());
                c.phase = Phase::Stream(spec);
                c.close_after_flush = self.init.done;
                return;
            }
            Request::Exec {
                process,
                stdin,
                detach,
            } => match self.exec(&process, stdin) {
                Ok(pid) => {
                    let terminal = process.terminal().unwrap_or(false);
                    let c = &mut self.clients[i];
                    c.answer(&Response::with_pid(pid));
                    if detach {
                        c.phase = Phase::Answered;
                        c.close_after_flush = true;
                    } else {
                        c.phase = Phase::Stream(StreamSpec {
                            target: Some(pid),
                            stdin,
                            stdout: true,
                            stderr: true,
                            close_stdin_on_eof: true,
                            framed: !terminal,
                        });
                    }
                    return;
                }
                Err(
                    e @ (ShimError::NotFound(_)
                    | ShimError::NotExecutable(_)
                    | ShimError::RuntimeWithCode(..)),
                ) => Response::exec_error(e.to_string(), e.exit_code()),
                Err(e) => Response::error(e.to_string()),
            },
            Request::ExecStatus { pid } => match self.execs.iter().find(|p| p.pid == pid) {
                Some(p) => Response::exec_status(p.exit.is_none(), p.exit.map(|e| e.0)),
                None => Response::error(format!("no such exec process: {pid}")),
            },
        };
        let c = &mut self.clients[i];
        c.answer(&reply);
        c.phase = Phase::Answered;
        c.close_after_flush = true;
    }

    fn start(&mut self) -> Response {
        match self.status {
            Status::Created if self.init.exit.is_none() => match self.rt.start() {
                Ok(()) => {
                    self.status = Status::Running;
                    Response::ok()
                }
                Err(e) => Response::error(e.to_string()),
            },
            Status::Exited => Response::error("container has exited"),
            _ if self.init.exit.is_some() => Response::error("container has exited"),
            _ => Response::error("container is already started"),
        }
    }

    fn set_paused(&mut self, pause: bool) -> Response {
        if self.init.exit.is_some() {
            return Response::error("container is not running");
        }
        let r = if pause {
            self.rt.pause()
        } else {
            self.rt.resume()
        };
        match r {
            Ok(()) => {
                if self.status != Status::Created {
                    self.status = if pause {
                        Status::Paused
                    } else {
                        Status::Running
                    };
                }
                Response::ok()
            }
            Err(e) => Response::error(e.to_string()),
        }
    }

    fn resize(&mut self, height: u16, width: u16, exec_pid: Option<i32>) -> Response {
        let Some(p) = self.proc(exec_pid) else {
            return Response::error(format!("no such exec process: {}", exec_pid.unwrap_or(0)));
        };
        // Without a tty there is nothing to size; Docker accepts the call.
        let Some(master) = p.io.as_ref().and_then(|io| io.master.as_ref()) else {
            return Response::ok();
        };
        let ws = rustix::termios::Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        match rustix::termios::tcsetwinsize(master, ws) {
            Ok(()) => Response::ok(),
            Err(e) => Response::error(format!("resize: {e}")),
        }
    }

    fn exec(
        &mut self,
        process: &oci_spec::runtime::Process,
        with_stdin: bool,
    ) -> Result<i32, ShimError> {
        if self.init.exit.is_some() || self.status == Status::Created {
            return Err(ShimError::Runtime(format!(
                "container {} is not running",
                self.init.pid
            )));
        }
        let terminal = process.terminal().unwrap_or(false);
        let (shim_io, child_io) = if terminal && self.rt.makes_own_pty() {
            (
                None,
                stdio::null_child(true).map_err(ShimError::io("exec stdio"))?,
            )
        } else if terminal {
            let (s, c) = stdio::pty(with_stdin).map_err(ShimError::io("exec pty"))?;
            (Some(s), c)
        } else {
            let (s, c) = stdio::pipes(with_stdin).map_err(ShimError::io("exec pipes"))?;
            (Some(s), c)
        };
        let spawned = self.rt.exec(self.init.pid, process, child_io)?;
        let io = match (shim_io, spawned.master) {
            (_, Some(master)) => {
                ShimIo::from_master(master, with_stdin).map_err(ShimError::io("exec pty"))?
            }
            (Some(io), None) => io,
            (None, None) => {
                return Err(ShimError::Runtime(
                    "the runtime returned no pty for a tty exec".into(),
                ))
            }
        };
        self.execs.push(Proc::new(spawned.pid, io));
        Ok(spawned.pid)
    }

    /// Move processes along: a process that exited and whose output is drained closes its
    /// streams; when the init does, the container's exit is recorded and announced.
    fn progress(&mut self) {
        let now = Instant::now();
        let drained = |p: &Proc| {
            p.exit.is_some()
                && !p.done
                && (p.io.as_ref().is_none_or(|io| !io.any_output_open())
                    || p.exited_at.is_some_and(|t| now >= t + DRAIN_AFTER_EXIT))
        };
        for idx in 0..self.execs.len() {
            if drained(&self.execs[idx]) {
                let pid = self.execs[idx].pid;
                self.execs[idx].done = true;
                self.execs[idx].io = None;
                self.close_streams(Some(pid));
            }
        }
        if drained(&self.init) {
            self.init.done = true;
            self.finish_init();
        }
        for c in &mut self.clients {
            if c.close_after_flush && c.out.is_empty() {
                c.dead = true;
            }
        }
        self.clients.retain(|c| !c.dead);
    }

    fn close_streams(&mut self, target: Target) {
        for c in &mut self.clients {
            if matches!(c.phase, Phase::Stream(s) if s.target == target) {
                c.close_after_flush = true;
            }
        }
    }

    /// The init has exited and its output is drained: log, exit.json, waiters, streams, cleanup.
    fn finish_init(&mut self) {
        if let Err(e) = self.log.flush_partial() {
            eprintln!("berth-shim: writing the log: {e}");
        }
        let (exit_code, signal) = self.init.exit.unwrap_or((255, None));
        let record = ExitRecord {
            exit_code,
            signal,
            finished_at: now_rfc3339_nano(),
            oom_killed: false,
        };
        if let Err(e) = exitfile::write(&self.state_dir, &record) {
            eprintln!("berth-shim: writing exit.json: {e}");
        }
        let reply = Response::exited(record.exit_code, record.finished_at.clone());
        self.exit = Some(record);
        self.status = Status::Exited;
        for c in &mut self.clients {
            if matches!(c.phase, Phase::Waiting) {
                c.answer(&reply);
                c.phase = Phase::Answered;
                c.close_after_flush = true;
            }
        }
        self.close_streams(None);
        self.init.io = None;
        // Waiters hear of the exit first: the cleanup (a cgroup rmdir per v1 hierarchy, about
        // 1 ms) is not on `run --rm`'s path.
        self.flush_clients();
        if let Err(e) = self.rt.cleanup() {
            eprintln!("berth-shim: runtime cleanup: {e}");
        }
        // Processes the runtime left behind (runc's, reparented to us) are reaped here too.
        self.reap();
        self.linger_until = Some(Instant::now() + LINGER_AFTER_EXIT);
    }
}

fn result(r: Result<(), ShimError>) -> Response {
    match r {
        Ok(()) => Response::ok(),
        Err(e) => Response::error(e.to_string()),
    }
}
