//! Writing tars of directory trees: layer diffs of an overlay upper dir (commit), a path
//! inside a container (`docker cp` GET) and a whole root filesystem (export).
//!
//! The walk goes through directory fds with `O_NOFOLLOW`, so a running container that swaps
//! a directory for a symlink cannot make us read files outside its root. Output is sorted
//! and carries no user/group names, so the same tree always gives the same bytes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{
    fgetxattr, flistxattr, major, minor, openat, readlinkat, statat, AtFlags, FileType, Mode,
    OFlags, Stat,
};
use rustix::io::Errno;
use tar::{Builder, EntryType, Header};

use super::safe_fs::{clamp_components, list_dir, Resolve, SafeRoot, DIR_FLAGS};
use super::stat::{stat_path, PathStat};
use crate::error::Result;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Clone, Copy, PartialEq, Eq)]
enum TreeMode {
    /// Overlay upper dir → OCI layer: whiteouts become `.wh.` entries.
    Diff,
    /// Whole rootfs or a path in it: overlay whiteouts (0:0 char devices) are skipped.
    Plain,
}

/// Writes the overlay upper dir `upper` as an OCI layer tar (uncompressed) to `out`.
pub fn write_diff(upper: &Path, out: impl Write) -> Result<()> {
    write_dir_contents(upper, out, TreeMode::Diff)
}

/// Writes a whole root filesystem (e.g. a mounted container) as a tar, for `docker export`.
pub fn write_rootfs_tar(root: &Path, out: impl Write) -> Result<()> {
    write_dir_contents(root, out, TreeMode::Plain)
}

/// Tars `path_in_root` (resolved inside `root`) under its base name, for `docker cp` GET;
/// returns its stat for the X-Docker-Container-Path-Stat header.
pub fn tar_path(root: &Path, path_in_root: &str, out: impl Write) -> Result<PathStat> {
    let stat = stat_path(root, path_in_root)?;
    let safe = SafeRoot::open(root, Resolve::InRoot)?;
    let comps = clamp_components(Path::new(path_in_root));
    let mut w = TreeWriter::new(out, TreeMode::Plain);
    match safe.open_parent(&comps, false)? {
        None => w.append_children(safe.fd(), Path::new(""))?,
        Some((parent, name)) => w.append(parent.as_fd(), name, Path::new(name))?,
    }
    w.finish()?;
    Ok(stat)
}

fn write_dir_contents(dir: &Path, out: impl Write, mode: TreeMode) -> Result<()> {
    let root = SafeRoot::open(dir, Resolve::NoSymlinks)?;
    let mut w = TreeWriter::new(out, mode);
    w.append_children(root.fd(), Path::new(""))?;
    w.finish()
}

struct TreeWriter<W: Write> {
    builder: Builder<W>,
    mode: TreeMode,
    /// (dev, ino) of multiply-linked files already written → their tar path.
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TreeWriter<W> {
    fn new(out: W, mode: TreeMode) -> Self {
        TreeWriter {
            builder: Builder::new(out),
            mode,
            links: HashMap::new(),
        }
    }

    fn finish(self) -> Result<()> {
        let mut out = self.builder.into_inner()?;
        out.flush()?;
        Ok(())
    }

    fn append_children(&mut self, dir: BorrowedFd<'_>, tar_dir: &Path) -> Result<()> {
        for name in list_dir(dir)? {
            let name = OsStr::from_bytes(&name);
            self.append(dir, name, &tar_dir.join(name))?;
        }
        Ok(())
    }

    fn append(&mut self, parent: BorrowedFd<'_>, name: &OsStr, tar_path: &Path) -> Result<()> {
        let st = match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Gone since we listed it (a running container): nothing to archive.
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let fd = openat(parent, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
                self.append_xattrs(fd.as_fd())?;
                let mut h = header(&st, EntryType::Directory, 0);
                self.builder.append_data(&mut h, tar_path, io::empty())?;
                if self.mode == TreeMode::Diff && is_opaque(fd.as_fd()) {
                    let mut wh = whiteout_header(&st);
                    self.builder.append_data(
                        &mut wh,
                        tar_path.join(OPAQUE_WHITEOUT),
                        io::empty(),
                    )?;
                }
                self.append_children(fd.as_fd(), tar_path)?;
            }
            FileType::RegularFile => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let mut h = header(&st, EntryType::Link, 0);
                        let first = first.clone();
                        self.builder.append_link(&mut h, tar_path, first)?;
                        return Ok(());
                    }
                    self.links.insert(key, tar_path.to_path_buf());
                }
                let fd = openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.append_xattrs(fd.as_fd())?;
                let file = File::from(fd);
                let size = st.st_size.max(0) as u64;
                let mut h = header(&st, EntryType::Regular, size);
                // Exactly `size` bytes even if the file changes under us, or the tar breaks.
                let data = file.take(size).chain(io::repeat(0)).take(size);
                self.builder.append_data(&mut h, tar_path, data)?;
            }
            FileType::Symlink => {
                let target = readlinkat(parent, name, Vec::new())?;
                let mut h = header(&st, EntryType::Symlink, 0);
                self.builder
                    .append_link(&mut h, tar_path, OsStr::from_bytes(target.as_bytes()))?;
            }
            // An overlay whiteout (skipped outside diffs).
            FileType::CharacterDevice if st.st_rdev == 0 && self.mode == TreeMode::Diff => {
                let mut wh = whiteout_header(&st);
                let wh_name = format!("{WHITEOUT_PREFIX}{}", name.to_string_lossy());
                let path = tar_path.parent().unwrap_or(Path::new("")).join(wh_name);
                self.builder.append_data(&mut wh, path, io::empty())?;
            }
            FileType::CharacterDevice if st.st_rdev == 0 => {}
            kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                let et = match kind {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                let mut h = header(&st, et, 0);
                h.set_device_major(major(st.st_rdev))?;
                h.set_device_minor(minor(st.st_rdev))?;
                self.builder.append_data(&mut h, tar_path, io::empty())?;
            }
            // Sockets and unknown types are not archived (as Docker does).
            _ => {}
        }
        Ok(())
    }

    /// Xattrs as PAX `SCHILY.xattr.*` records, except overlay's own.
    fn append_xattrs(&mut self, fd: BorrowedFd<'_>) -> Result<()> {
        let mut names = vec![0u8; 4096];
        let n = match flistxattr(fd, &mut names[..]) {
            Ok(n) => n,
            Err(Errno::NOTSUP) | Err(Errno::RANGE) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut records: Vec<(String, Vec<u8>)> = Vec::new();
        for raw in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
            let Ok(name) = std::str::from_utf8(raw) else {
                continue;
            };
            if name.starts_with("trusted.overlay.") {
                continue;
            }
            let mut value = vec![0u8; 64 * 1024];
            if let Ok(len) = fgetxattr(fd, name, &mut value[..]) {
                value.truncate(len);
                records.push((format!("SCHILY.xattr.{name}"), value));
            }
        }
        if !records.is_empty() {
            self.builder
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        Ok(())
    }
}

fn header(st: &Stat, kind: EntryType, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(size);
    h
}

fn whiteout_header(st: &Stat) -> Header {
    let mut h = header(st, EntryType::Regular, 0);
    h.set_mode(0o600);
    h
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8];
    matches!(fgetxattr(dir, OVERLAY_OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
}
