//! Network namespaces the daemon makes ahead of a container's start.
//!
//! A container on a bridge network gets a namespace made by the daemon rather than by its
//! runtime: the veths can then be plumbed into it while the shim is still starting, instead
//! of after the runtime has cloned the init. The namespace is held by an open nsfs file;
//! nothing is mounted, so a daemon that dies leaves nothing behind (the kernel frees the
//! namespace, and the veth ends in it, with the last reference).

use crate::{Error, Result};
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
    pub fn create() -> Result<Sandbox> {
        std::thread::spawn(|| -> Result<Sandbox> {
            // SAFETY: only this thread's network namespace changes, and the thread ends here.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .map_err(|e| Error::Netlink(format!("creating a network namespace: {e}")))?;
            loopback_up()?;
            let ns = File::open("/proc/thread-self/ns/net")?;
            Ok(Sandbox { ns })
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Netlink("network namespace thread panicked".into())))
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

/// `ip link set lo up` in the calling thread's namespace, with one ioctl.
fn loopback_up() -> Result<()> {
    use rustix::net::{socket, AddressFamily, SocketType};
    let sock = socket(AddressFamily::INET, SocketType::DGRAM, None)
        .map_err(|e| Error::Netlink(format!("loopback socket: {e}")))?;
    let mut req = IfReq {
        name: *b"lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        flags: 0,
        _pad: [0; 22],
    };
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write a `struct ifreq`, which `IfReq` lays
    // out (16-byte name, then the flags in the union), padded to the kernel's 40 bytes.
    unsafe {
        if ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        req.flags |= IFF_UP;
        if ioctl(sock.as_raw_fd(), SIOCSIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCSIFFLAGS: u64 = 0x8914;
const IFF_UP: i16 = 0x1;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
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
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
        let theirs = std::fs::metadata(s.path()).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(ours.ino(), theirs.ino(), "a namespace of its own");
        // Enter it on a thread: only lo there, and up.
        let f = s.file().try_clone().unwrap();
        let (links, flags) = std::thread::spawn(move || {
            use std::os::fd::AsFd;
            rustix::thread::move_into_link_name_space(
                f.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            let text = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            let links = text.lines().filter(|l| l.contains(':')).count();
            let sock = rustix::net::socket(
                rustix::net::AddressFamily::INET,
                rustix::net::SocketType::DGRAM,
                None,
            )
            .unwrap();
            let mut req = IfReq {
                name: *b"lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                flags: 0,
                _pad: [0; 22],
            };
            // SAFETY: as in loopback_up.
            assert!(unsafe { ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut req) } >= 0);
            (links, req.flags)
        })
        .join()
        .unwrap();
        assert_eq!(links, 1, "only loopback in a fresh namespace");
        assert_ne!(flags & IFF_UP, 0, "loopback is up");
    }
}
