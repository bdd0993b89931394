//! Network namespaces the daemon makes ahead of a container's start.
//!
//! A container on a bridge network gets a namespace made by the daemon rather than by its
//! runtime: the veths can then be plumbed into it while the shim is still starting, instead
//! of after the runtime has cloned the init. The namespace is held by an open nsfs file;
//! nothing is mounted, so a daemon that dies leaves nothing behind (the kernel frees the
//! namespace, and the veth ends in it, with the last reference).

use crate::builtin::sys::loopback_up;
use crate::RuntimeError;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// A fresh network namespace with its loopback up.
#[derive(Debug)]
pub struct Sandbox {
    ns: File,
}

impl Sandbox {
    /// Make one on a short-lived thread of its own (unshare moves only the calling thread).
    pub fn create() -> Result<Sandbox, RuntimeError> {
        std::thread::spawn(|| -> Result<Sandbox, RuntimeError> {
            // SAFETY: only this thread's network namespace changes, and the thread ends here.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .map_err(|e| RuntimeError::syscall("create a network namespace", e))?;
            loopback_up().map_err(|e| RuntimeError::syscall("bring up loopback", e))?;
            let ns = File::open("/proc/thread-self/ns/net")
                .map_err(|e| RuntimeError::syscall("open the network namespace", e))?;
            Ok(Sandbox { ns })
        })
        .join()
        .unwrap_or_else(|_| {
            Err(RuntimeError::Init(
                "network namespace thread panicked".into(),
            ))
        })
    }

    /// The namespace file, for plumbing veths into it.
    pub fn file(&self) -> &File {
        &self.ns
    }

    /// A path any process of this host can open to join the namespace while this process
    /// holds it (the runtime setns()es through it; runc accepts it as a namespace path).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.ns.as_raw_fd()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_is_a_new_namespace_with_loopback_up() {
        if !rustix::process::geteuid().is_root() {
            return; // needs CAP_SYS_ADMIN; the integration tests run as root
        }
        let s = Sandbox::create().expect("sandbox");
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let theirs = std::fs::metadata(s.path()).unwrap().ino();
        assert_ne!(ours, theirs, "a namespace of its own");
        // Enter it on a thread: only lo there, and up.
        let f = s.file().try_clone().unwrap();
        let (links, flags) = std::thread::spawn(move || {
            use std::os::fd::AsFd;
            rustix::thread::move_into_link_name_space(
                f.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            let links = dev.lines().filter(|l| l.contains(':')).count();
            let sock = rustix::net::socket(
                rustix::net::AddressFamily::INET,
                rustix::net::SocketType::DGRAM,
                None,
            )
            .unwrap();
            // SAFETY: ifreq is plain old data; all-zero is a valid value.
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *dst = *src as libc::c_char;
            }
            // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into `req`.
            assert_ne!(
                unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) },
                -1
            );
            // SAFETY: the member SIOCGIFFLAGS filled in.
            (links, unsafe { req.ifr_ifru.ifru_flags })
        })
        .join()
        .unwrap();
        assert_eq!(links, 1, "only loopback in a fresh namespace");
        assert_ne!(flags & libc::IFF_UP as libc::c_short, 0, "loopback is up");
    }
}
