//! Thin wrappers over the few syscalls rustix does not offer (clone3, execve, close_range,
//! the loopback ioctl). Each `unsafe` block is here, small, with its reason.

use std::ffi::CString;
use std::io;

/// `struct clone_args` (include/uapi/linux/sched.h), the first version (64 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// Where a fork-like clone3 returned.
pub enum Forked {
    Parent { child: i32 },
    Child,
}

/// A fork-like clone3 (no new stack, no CLONE_VM) with `flags` (CLONE_NEW*, CLONE_PARENT...).
/// The child gets a copy of the address space and returns `Forked::Child`.
pub fn clone3(flags: u64) -> io::Result<Forked> {
    let args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // SAFETY: without CLONE_VM and with stack=0 clone3 behaves like fork(): the child runs on a
    // copy of our stack and memory. `args` is a valid clone_args of the size we pass. The callers
    // are single-threaded, so no lock can be held by a thread that does not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { child: pid as i32 }),
    }
}

/// Exit the child at once, without running atexit handlers or flushing the parent's buffers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// execve(path, argv, envp); only returns on failure.
pub fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: all pointers point into CStrings that outlive the call; both arrays are
    // NULL-terminated as execve requires.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Mark every fd >= `from` close-on-exec, so nothing of ours leaks into the container.
pub fn cloexec_from(from: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags; it takes no pointers.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bring the loopback interface of the current network namespace up.
pub fn loopback_up() -> io::Result<()> {
    use rustix::net::{socket, AddressFamily, SocketType};
    use std::os::fd::AsRawFd;
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface name from and writes the flags into `req`,
    // which is a valid, live ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the union member ifru_flags is the one SIOCGIFFLAGS filled in.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS reads name and flags from `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// setdomainname(2) (rustix has sethostname only).
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which live across the call.
    if unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// kill(2) with a raw signal number.
pub fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes no pointers; any pid/signal value is checked by the kernel.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Give the process default signal dispositions and an empty signal mask. Ignored signals and
/// the mask survive execve: a shim that ignores SIGPIPE or blocks SIGCHLD (for its signalfd)
/// must not pass that on to the container.
pub fn reset_signals() -> io::Result<()> {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is a valid disposition for every catchable signal; no handler runs.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    set_signal_mask(&[], libc::SIG_SETMASK)
}

/// sigprocmask(how, signals).
pub fn set_signal_mask(signals: &[i32], how: i32) -> io::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigemptyset(&mut set) };
    for s in signals {
        // SAFETY: as above.
        unsafe { libc::sigaddset(&mut set, *s) };
    }
    // SAFETY: `set` is valid; the old mask is not requested (NULL).
    if unsafe { libc::sigprocmask(how, &set, std::ptr::null_mut()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait for one of `signals` (which the caller has blocked); returns its number.
pub fn wait_signal(signals: &[i32]) -> io::Result<i32> {
    // SAFETY: as in set_signal_mask.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigemptyset(&mut set) };
    for s in signals {
        // SAFETY: as above.
        unsafe { libc::sigaddset(&mut set, *s) };
    }
    loop {
        // SAFETY: `set` is valid; siginfo is not requested (NULL).
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig >= 0 {
            return Ok(sig);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
