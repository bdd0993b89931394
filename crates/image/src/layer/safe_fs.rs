//! File-descriptor based path resolution that can never leave a root directory.
//!
//! Every write of an unpack happens through `*at` syscalls on a directory fd that was reached
//! from the root fd one component at a time, so a symlink planted by an earlier tar entry (or
//! by a running container) is never followed out of the root.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    mkdirat, openat, openat2, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags,
    CWD,
};
use rustix::io::Errno;

use crate::error::{ImageError, Result};

/// How parent directories are looked up below the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Layer unpack: a symlink anywhere in a parent path is an attack → UnsafePath.
    NoSymlinks,
    /// A container rootfs (`docker cp`): symlinks are followed as if the root were `/`.
    InRoot,
}

/// A directory opened once; every lookup below it is relative to this fd.
pub struct SafeRoot {
    fd: OwnedFd,
    resolve: Resolve,
}

pub(crate) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Splits a tar or user path into normal components: absolute paths become relative to
/// the root, `.` is dropped, and `..` is refused (it is never needed in a layer).
pub fn clean_components(path: &Path) -> Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(ImageError::UnsafePath(path.display().to_string()));
            }
        }
    }
    Ok(out)
}

/// Like `clean_components` but `..` is resolved lexically and clamped at the root
/// (for user-given paths inside a container, where `/../etc` means `/etc`).
pub fn clamp_components(path: &Path) -> Vec<&OsStr> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl SafeRoot {
    pub fn open(root: &Path, resolve: Resolve) -> Result<Self> {
        let fd = openat(CWD, root, DIR_FLAGS, Mode::empty())?;
        Ok(SafeRoot { fd, resolve })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the directory `components` (relative to the root), creating missing ones
    /// with mode 0755 when `create` is set.
    pub fn open_dir(&self, components: &[&OsStr], create: bool) -> Result<OwnedFd> {
        let mut cur = openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        for (i, comp) in components.iter().enumerate() {
            let next = match self.open_child_dir(&cur, components, i) {
                Err(Errno::NOENT) if create => {
                    match mkdirat(&cur, *comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.open_child_dir(&cur, components, i)
                }
                other => other,
            };
            cur = match next {
                Ok(fd) => fd,
                Err(Errno::LOOP) | Err(Errno::XDEV) | Err(Errno::NOTDIR)
                    if self.resolve == Resolve::NoSymlinks =>
                {
                    return Err(ImageError::UnsafePath(join_display(&components[..=i])));
                }
                Err(Errno::NOENT) if create => {
                    // mkdirat said EEXIST but it still cannot be opened: a dangling symlink.
                    return Err(ImageError::UnsafePath(join_display(&components[..=i])));
                }
                Err(e) => return Err(ImageError::Io(std::io::Error::from(e))),
            };
        }
        Ok(cur)
    }

    fn open_child_dir(
        &self,
        cur: &OwnedFd,
        components: &[&OsStr],
        i: usize,
    ) -> rustix::io::Result<OwnedFd> {
        match self.resolve {
            // One component, never following a symlink: ELOOP / ENOTDIR if it is one.
            Resolve::NoSymlinks => openat(
                cur,
                components[i],
                DIR_FLAGS | OFlags::NOFOLLOW,
                Mode::empty(),
            ),
            // The whole prefix again from the root, with the kernel keeping `..` and
            // absolute symlinks inside the root.
            Resolve::InRoot => {
                let prefix: PathBuf = components[..=i].iter().collect();
                openat2(
                    &self.fd,
                    &prefix,
                    DIR_FLAGS,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                )
            }
        }
    }

    /// Opens the parent directory of `path` and returns it with the final name.
    /// `None` for the root itself.
    pub fn open_parent<'p>(
        &self,
        components: &[&'p OsStr],
        create: bool,
    ) -> Result<Option<(OwnedFd, &'p OsStr)>> {
        match components.split_last() {
            None => Ok(None),
            Some((name, parents)) => Ok(Some((self.open_dir(parents, create)?, *name))),
        }
    }
}

fn join_display(c: &[&OsStr]) -> String {
    c.iter().collect::<PathBuf>().display().to_string()
}

/// The file type of `name` in `dir` without following it, `None` if it does not exist.
pub fn lstat_type(dir: impl AsFd, name: &OsStr) -> Result<Option<FileType>> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir`, recursively if it is a directory, never following symlinks.
pub fn remove_all_at(dir: impl AsFd, name: &OsStr) -> Result<()> {
    let dir = dir.as_fd();
    match lstat_type(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let child = openat(dir, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?;
            for n in list_dir(&child)? {
                remove_all_at(&child, OsStr::from_bytes(&n))?;
            }
            unlinkat(dir, name, AtFlags::REMOVEDIR)?;
            Ok(())
        }
        Some(_) => {
            unlinkat(dir, name, AtFlags::empty())?;
            Ok(())
        }
    }
}

/// Names in a directory (without `.` and `..`), sorted bytewise for deterministic output.
pub fn list_dir(dir: impl AsFd) -> Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    let d = Dir::read_from(dir)?;
    for entry in d {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// Opens a regular file at `rel` inside `root` for reading, resolving symlinks as if
/// `root` were `/` (archives may dedup layers with symlinks; none may point out).
pub fn open_file_in_root(root: &Path, rel: &str) -> Result<std::fs::File> {
    let dir = openat(CWD, root, DIR_FLAGS, Mode::empty())?;
    let fd = openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        Errno::NOENT => ImageError::InvalidArchive(format!("{rel} is missing from the archive")),
        e => ImageError::Io(e.into()),
    })?;
    let file = std::fs::File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(ImageError::InvalidArchive(format!(
            "{rel} is not a regular file"
        )));
    }
    Ok(file)
}
