//! The container's filesystem: rootfs bind, the spec's mounts, /dev nodes, pivot_root, then
//! masked and read-only paths. Runs in the child, inside its new mount namespace.

use crate::cgroups::Layout;
use crate::error::{Result, RuntimeError};
use oci_spec::runtime::{Linux, Mount, Spec};
use rustix::fs::{FileType, Mode};
use rustix::mount::{MountFlags, UnmountFlags};
use std::path::{Path, PathBuf};

const MS_REC: u32 = libc::MS_REC as u32;
const MS_BIND: u32 = libc::MS_BIND as u32;
const MS_REMOUNT: u32 = libc::MS_REMOUNT as u32;
const MS_RDONLY: u32 = libc::MS_RDONLY as u32;
const MS_PRIVATE: u32 = libc::MS_PRIVATE as u32;
const MS_SLAVE: u32 = libc::MS_SLAVE as u32;
const MS_SHARED: u32 = libc::MS_SHARED as u32;
const MS_UNBINDABLE: u32 = libc::MS_UNBINDABLE as u32;

fn mount(
    step: &'static str,
    src: &str,
    target: &Path,
    fstype: &str,
    flags: u32,
    data: &str,
) -> Result<()> {
    let data =
        std::ffi::CString::new(data).map_err(|_| RuntimeError::Spec("NUL in mount data".into()))?;
    let data = if data.as_bytes().is_empty() {
        None
    } else {
        Some(data.as_c_str())
    };
    rustix::mount::mount(
        src,
        target,
        fstype,
        MountFlags::from_bits_retain(flags),
        data,
    )
    .map_err(|e| RuntimeError::Syscall {
        step,
        source: std::io::Error::other(format!("{}: {e}", target.display())),
    })
}

/// Mount flags, propagation flags and fs data parsed from OCI mount options.
#[derive(Default)]
struct Options {
    flags: u32,
    propagation: u32,
    data: Vec<String>,
}

fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let (set, clear): (u32, u32) = match opt.as_str() {
            "ro" => (MS_RDONLY, 0),
            "rw" => (0, MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID as u32, 0),
            "suid" => (0, libc::MS_NOSUID as u32),
            "nodev" => (libc::MS_NODEV as u32, 0),
            "dev" => (0, libc::MS_NODEV as u32),
            "noexec" => (libc::MS_NOEXEC as u32, 0),
            "exec" => (0, libc::MS_NOEXEC as u32),
            "sync" => (libc::MS_SYNCHRONOUS as u32, 0),
            "noatime" => (libc::MS_NOATIME as u32, 0),
            "nodiratime" => (libc::MS_NODIRATIME as u32, 0),
            "relatime" => (libc::MS_RELATIME as u32, 0),
            "strictatime" => (libc::MS_STRICTATIME as u32, 0),
            "bind" => (MS_BIND, 0),
            "rbind" => (MS_BIND | MS_REC, 0),
            "defaults" | "async" | "atime" | "diratime" | "norelatime" | "nostrictatime" => (0, 0),
            "private" => {
                o.propagation = MS_PRIVATE;
                continue;
            }
            "rprivate" => {
                o.propagation = MS_PRIVATE | MS_REC;
                continue;
            }
            "slave" => {
                o.propagation = MS_SLAVE;
                continue;
            }
            "rslave" => {
                o.propagation = MS_SLAVE | MS_REC;
                continue;
            }
            "shared" => {
                o.propagation = MS_SHARED;
                continue;
            }
            "rshared" => {
                o.propagation = MS_SHARED | MS_REC;
                continue;
            }
            "unbindable" => {
                o.propagation = MS_UNBINDABLE;
                continue;
            }
            "runbindable" => {
                o.propagation = MS_UNBINDABLE | MS_REC;
                continue;
            }
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o
}

/// `dest` inside `rootfs`, with every symlink on the way resolved as if `rootfs` were `/`, so an
/// image's symlink can never send a mount outside the rootfs (what Go's securejoin does for runc).
pub fn in_root(rootfs: &Path, dest: &Path) -> PathBuf {
    use std::path::Component;
    let mut resolved = PathBuf::new(); // relative to rootfs
    let mut pending: Vec<std::ffi::OsString> = dest
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        match std::fs::read_link(rootfs.join(&candidate)) {
            Ok(target) if links < 255 => {
                links += 1;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    rootfs.join(resolved)
}

/// Make the whole tree private-or-slave, bind the rootfs onto itself, mount the spec's mounts,
/// create device nodes, then pivot_root into it. `before_cgroupfs` runs once, just before the
/// first cgroup filesystem is mounted (or after the mounts when there is none): the moment
/// the container's cgroup namespace must exist.
pub fn prepare_rootfs(
    spec: &Spec,
    rootfs: &Path,
    before_cgroupfs: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    let propagation = match linux.rootfs_propagation().as_deref() {
        Some("shared") | Some("rshared") => MS_SHARED | MS_REC,
        Some("private") | Some("rprivate") => MS_PRIVATE | MS_REC,
        Some("unbindable") | Some("runbindable") => MS_UNBINDABLE | MS_REC,
        _ => MS_SLAVE | MS_REC,
    };
    mount("make / private", "", Path::new("/"), "", propagation, "")?;
    mount(
        "bind rootfs",
        &rootfs.to_string_lossy(),
        rootfs,
        "",
        MS_BIND | MS_REC,
        "",
    )?;

    let mounts = spec.mounts().clone().unwrap_or_default();
    let mut cgroupfs_ready = false;
    for m in &mounts {
        if !cgroupfs_ready && m.typ().as_deref() == Some("cgroup") {
            before_cgroupfs()?;
            cgroupfs_ready = true;
        }
        mount_one(rootfs, m)?;
    }
    if !cgroupfs_ready {
        before_cgroupfs()?;
    }
    let dev_is_tmpfs = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs"));
    if dev_is_tmpfs {
        create_devices(rootfs, &linux)?;
    }
    pivot_root(rootfs)
}

/// Bind the container's pty slave (a path in its own /dev/pts) over /dev/console, as runc does.
/// Runs after pivot_root.
pub fn mount_console(slave: &Path) -> Result<()> {
    let target = Path::new("/dev/console");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
    {
        Ok(_) => rustix::fs::chmod(target, Mode::from_raw_mode(0o666))
            .map_err(|e| RuntimeError::syscall("chmod /dev/console", e))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(RuntimeError::syscall("create /dev/console", e)),
    }
    mount(
        "bind /dev/console",
        &slave.to_string_lossy(),
        target,
        "",
        MS_BIND,
        "",
    )
}

fn mount_one(rootfs: &Path, m: &Mount) -> Result<()> {
    let dest = in_root(rootfs, m.destination());
    let typ = m.typ().clone().unwrap_or_default();
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.clone());
    let is_bind = typ == "bind" || opts.flags & MS_BIND != 0;

    if is_bind && Path::new(&source).is_file() {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if !dest.exists() {
            std::fs::File::create(&dest)?;
        }
    } else {
        std::fs::create_dir_all(&dest)?;
    }

    if typ == "cgroup" {
        return mount_cgroups(&dest, opts.flags);
    }
    let data = opts.data.join(",");
    if is_bind {
        mount(
            "bind mount",
            &source,
            &dest,
            "",
            MS_BIND | (opts.flags & MS_REC),
            "",
        )?;
        let extra = opts.flags & !(MS_BIND | MS_REC);
        if extra != 0 {
            mount(
                "remount bind",
                "",
                &dest,
                "",
                extra | MS_BIND | MS_REMOUNT | (opts.flags & MS_REC),
                "",
            )?;
        }
    } else {
        mount("mount", &source, &dest, &typ, opts.flags, &data)?;
    }
    if opts.propagation != 0 {
        mount("mount propagation", "", &dest, "", opts.propagation, "")?;
    }
    Ok(())
}

/// The container's view of /sys/fs/cgroup: cgroup2 on a pure v2 host; otherwise a tmpfs with one
/// v1 mount per host hierarchy, as runc does (a hybrid host's controller-less cgroup2 mount is
/// left out, as runc leaves it out). In the container's
/// cgroup namespace each shows the container's own cgroup as its root.
fn mount_cgroups(dest: &Path, flags: u32) -> Result<()> {
    let layout = Layout::detect()?;
    let flags = flags & !MS_BIND;
    if layout.is_pure_v2() {
        return mount("mount cgroup2", "cgroup2", dest, "cgroup2", flags, "");
    }
    mount(
        "mount cgroup tmpfs",
        "tmpfs",
        dest,
        "tmpfs",
        flags & !MS_RDONLY,
        "mode=755",
    )?;
    for h in &layout.hierarchies {
        let Some(name) = h.mount.file_name() else {
            continue;
        };
        if h.v2 {
            continue;
        }
        let sub = dest.join(name);
        std::fs::create_dir_all(&sub)?;
        let mut data = h.controllers.join(",");
        if h.controllers.iter().all(|c| c.starts_with("name=")) {
            data = format!("none,{data}");
        }
        mount("mount cgroup", "cgroup", &sub, "cgroup", flags, &data)?;
    }
    if flags & MS_RDONLY != 0 {
        mount(
            "remount cgroup tmpfs ro",
            "",
            dest,
            "",
            MS_REMOUNT | MS_BIND | flags,
            "",
        )?;
    }
    Ok(())
}

/// runc's default devices plus the spec's, and the usual /dev symlinks.
fn create_devices(rootfs: &Path, linux: &Linux) -> Result<()> {
    let dev = rootfs.join("dev");
    let mut nodes: Vec<(String, FileType, u32, u32, u32, u32, u32)> = vec![
        ("null".into(), FileType::CharacterDevice, 1, 3, 0o666, 0, 0),
        ("zero".into(), FileType::CharacterDevice, 1, 5, 0o666, 0, 0),
        ("full".into(), FileType::CharacterDevice, 1, 7, 0o666, 0, 0),
        (
            "random".into(),
            FileType::CharacterDevice,
            1,
            8,
            0o666,
            0,
            0,
        ),
        (
            "urandom".into(),
            FileType::CharacterDevice,
            1,
            9,
            0o666,
            0,
            0,
        ),
        ("tty".into(), FileType::CharacterDevice, 5, 0, 0o666, 0, 0),
    ];
    for d in linux.devices().iter().flatten() {
        let Ok(rel) = d.path().strip_prefix("/dev") else {
            continue;
        };
        let ft = match d.typ().as_str() {
            "b" => FileType::BlockDevice,
            "p" => FileType::Fifo,
            _ => FileType::CharacterDevice,
        };
        nodes.push((
            rel.to_string_lossy().into_owned(),
            ft,
            d.major() as u32,
            d.minor() as u32,
            d.file_mode().unwrap_or(0o666),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        ));
    }
    for (name, ft, major, minor, mode, uid, gid) in nodes {
        let path = dev.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let devno = rustix::fs::makedev(major, minor);
        match rustix::fs::mknodat(rustix::fs::CWD, &path, ft, Mode::from_raw_mode(mode), devno) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(RuntimeError::syscall("mknod device", e)),
        }
        // mknod applies the umask; set the exact mode and owner.
        rustix::fs::chmod(&path, Mode::from_raw_mode(mode))
            .map_err(|e| RuntimeError::syscall("chmod device", e))?;
        if uid != 0 || gid != 0 {
            rustix::fs::chown(
                &path,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| RuntimeError::syscall("chown device", e))?;
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        match std::os::unix::fs::symlink(target, dev.join(link)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(RuntimeError::syscall("symlink /dev entry", e)),
        }
    }
    Ok(())
}

/// pivot_root(".", ".") then detach the old root, the trick runc uses to need no put_old dir.
fn pivot_root(rootfs: &Path) -> Result<()> {
    rustix::process::chdir(rootfs).map_err(|e| RuntimeError::syscall("chdir rootfs", e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| RuntimeError::syscall("pivot_root", e))?;
    // The old root is stacked under "."; keep its unmount from propagating to the host.
    mount(
        "make old root slave",
        "",
        Path::new("."),
        "",
        MS_SLAVE | MS_REC,
        "",
    )?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| RuntimeError::syscall("detach old root", e))?;
    rustix::process::chdir("/").map_err(|e| RuntimeError::syscall("chdir /", e))?;
    Ok(())
}

/// After pivot_root: hide masked paths, make read-only paths read-only, and the root if asked.
pub fn finish_rootfs(spec: &Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    for p in linux.masked_paths().iter().flatten() {
        let path = Path::new(p);
        match std::fs::symlink_metadata(path) {
            Ok(md) if md.is_dir() => mount("mask dir", "tmpfs", path, "tmpfs", MS_RDONLY, "")?,
            Ok(_) => mount("mask file", "/dev/null", path, "", MS_BIND, "")?,
            Err(_) => {}
        }
    }
    for p in linux.readonly_paths().iter().flatten() {
        let path = Path::new(p);
        if path.exists() {
            mount("bind read-only path", p, path, "", MS_BIND | MS_REC, "")?;
            let keep = statvfs_flags(path);
            mount(
                "remount read-only path",
                "",
                path,
                "",
                keep | MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC,
                "",
            )?;
        }
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let keep = statvfs_flags(Path::new("/"));
        mount(
            "remount / read-only",
            "",
            Path::new("/"),
            "",
            keep | MS_BIND | MS_REMOUNT | MS_RDONLY,
            "",
        )?;
    }
    Ok(())
}

/// nosuid/nodev/noexec of the mount at `path`, to keep them across a bind remount.
fn statvfs_flags(path: &Path) -> u32 {
    use rustix::fs::StatVfsMountFlags as F;
    let Ok(st) = rustix::fs::statvfs(path) else {
        return 0;
    };
    let mut flags = 0;
    if st.f_flag.contains(F::NOSUID) {
        flags |= libc::MS_NOSUID as u32;
    }
    if st.f_flag.contains(F::NODEV) {
        flags |= libc::MS_NODEV as u32;
    }
    if st.f_flag.contains(F::NOEXEC) {
        flags |= libc::MS_NOEXEC as u32;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::in_root;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../real", root.join("rel")).unwrap();
        assert_eq!(
            in_root(root, "/abs/passwd".as_ref()),
            root.join("etc/passwd")
        );
        assert_eq!(in_root(root, "/rel/x".as_ref()), root.join("real/x"));
        assert_eq!(in_root(root, "/../../x".as_ref()), root.join("x"));
        assert_eq!(in_root(root, "/dev/shm".as_ref()), root.join("dev/shm"));
    }
}
