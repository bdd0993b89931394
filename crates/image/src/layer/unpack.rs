//! Applying a layer tar to a directory, safely.
//!
//! Every entry is created through a parent directory fd reached by `SafeRoot`, with
//! `O_NOFOLLOW` / `AT_SYMLINK_NOFOLLOW` on the final name, so neither `..`, absolute names,
//! nor symlinks or hardlinks planted by earlier entries can make us write outside `dest`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::Timespec;
use rustix::fs::{
    chownat, fchmod, fchown, fsetxattr, futimens, linkat, makedev, mkdirat, mknodat, openat,
    symlinkat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;
use tar::EntryType;

use super::safe_fs::{
    clamp_components, clean_components, lstat_type, remove_all_at, Resolve, SafeRoot, DIR_FLAGS,
};
use crate::digest::{Digest, DigestReader};
use crate::error::{ImageError, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// What an unpack produced: the layer's diff id and the bytes of file content written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackStats {
    pub diff_id: Digest,
    pub size: u64,
}

/// Unpacks an uncompressed layer tar into `dest` (normally an empty snapshot dir),
/// turning OCI whiteouts into overlayfs whiteouts.
pub fn unpack(reader: impl Read, dest: &Path) -> Result<UnpackStats> {
    let root = SafeRoot::open(dest, Resolve::NoSymlinks)?;
    let mut hashed = DigestReader::new(reader);
    let size = apply_tar(&mut hashed, &root, &[], true)?;
    // The diff id covers the whole stream, including the end-of-archive padding.
    io::copy(&mut hashed, &mut io::sink())?;
    let (_, diff_id, _) = hashed.finish();
    Ok(UnpackStats { diff_id, size })
}

/// Unpacks a tar into an existing tree (`docker cp` into a container): no whiteout
/// translation, existing directories are merged, symlinks are resolved as if `dest` were `/`.
pub fn unpack_into_existing(reader: impl Read, dest: &Path) -> Result<()> {
    unpack_into_root(reader, dest, "/")
}

/// Like `unpack_into_existing`, extracting into `path_in_root` resolved inside `root`.
pub fn unpack_into_root(mut reader: impl Read, root: &Path, path_in_root: &str) -> Result<()> {
    let safe = SafeRoot::open(root, Resolve::InRoot)?;
    let base = clamp_components(Path::new(path_in_root));
    // The destination must exist and be a directory (Docker answers 404 / 400 otherwise).
    safe.open_dir(&base, false).map_err(|e| match e {
        ImageError::Io(ref io) if io.kind() == io::ErrorKind::NotFound => {
            ImageError::NotFound(path_in_root.to_string())
        }
        other => other,
    })?;
    apply_tar(&mut reader, &safe, &base, false)?;
    Ok(())
}

/// Metadata shared by every kind of entry.
struct EntryMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn apply_tar(
    reader: &mut dyn Read,
    root: &SafeRoot,
    base: &[&OsStr],
    whiteouts: bool,
) -> Result<u64> {
    let mut archive = tar::Archive::new(reader);
    let mut size = 0u64;
    let mut dir_times: Vec<(PathBuf, i64)> = Vec::new();
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let path = entry.path().map_err(bad_tar)?.into_owned();
        let mut comps: Vec<&OsStr> = base.to_vec();
        comps.extend(clean_components(&path)?);
        let header = entry.header();
        let kind = header.entry_type();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let mut meta = EntryMeta {
            // Some writers leave numeric fields blank: treat those as 0, as GNU tar does.
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            mtime: header.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
        };
        let (dev_major, dev_minor) = (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        if let Some(exts) = entry.pax_extensions().map_err(bad_tar)? {
            for ext in exts {
                let ext = ext.map_err(bad_tar)?;
                if let Some(name) = ext
                    .key()
                    .ok()
                    .and_then(|k| k.strip_prefix(PAX_XATTR_PREFIX))
                {
                    meta.xattrs
                        .push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }

        let name = comps.last().copied();
        if whiteouts {
            if let Some(n) = name.and_then(|n| n.to_str()) {
                if n == OPAQUE_WHITEOUT {
                    let dir = root.open_dir(&comps[..comps.len() - 1], true)?;
                    fsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())?;
                    continue;
                }
                if let Some(hidden) = n.strip_prefix(WHITEOUT_PREFIX) {
                    let mut target = comps.clone();
                    let last = target.len() - 1;
                    target[last] = OsStr::new(hidden);
                    make_whiteout(root, &target)?;
                    continue;
                }
            }
        }

        match kind {
            EntryType::Directory => {
                if let Some(dir) = make_dir(root, &comps, &meta, whiteouts)? {
                    drop(dir);
                    dir_times.push((comps.iter().collect(), meta.mtime));
                }
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let expected = if kind == EntryType::GNUSparse {
                    None
                } else {
                    Some(entry.header().size().map_err(bad_tar)?)
                };
                size += write_file(root, &comps, &meta, &mut entry, expected)?;
            }
            EntryType::Symlink => {
                let target = link.ok_or_else(|| {
                    ImageError::InvalidArchive(format!("symlink {} has no target", path.display()))
                })?;
                make_symlink(root, &comps, &meta, &target)?;
            }
            EntryType::Link => {
                let target = link.ok_or_else(|| {
                    ImageError::InvalidArchive(format!("hardlink {} has no target", path.display()))
                })?;
                let target_path = PathBuf::from(OsStr::from_bytes(&target));
                let mut src: Vec<&OsStr> = base.to_vec();
                src.extend(clean_components(&target_path)?);
                make_hardlink(root, &src, &comps)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                make_node(root, &comps, &meta, ft, makedev(dev_major, dev_minor))?;
            }
            // Pax global headers, GNU volume labels and the like carry no file.
            _ => {}
        }
    }
    // Directory mtimes last: creating their children changed them.
    for (dir, mtime) in dir_times.iter().rev() {
        let comps: Vec<&OsStr> = dir.iter().collect();
        match root.open_dir(&comps, false) {
            Ok(fd) => futimens(&fd, &times(*mtime))?,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(size)
}

fn bad_tar(e: io::Error) -> ImageError {
    ImageError::InvalidArchive(e.to_string())
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Opens the parent of `comps` (creating it) and clears the final name unless it is a
/// directory that `keep_dir` allows us to merge into.
fn prepare_slot<'a>(
    root: &SafeRoot,
    comps: &[&'a OsStr],
    keep_dir: bool,
) -> Result<Option<(OwnedFd, &'a OsStr, bool)>> {
    let Some((parent, name)) = root.open_parent(comps, true)? else {
        return Ok(None);
    };
    let existing = lstat_type(&parent, name)?;
    let is_dir = existing == Some(FileType::Directory);
    if existing.is_some() && !(keep_dir && is_dir) {
        remove_all_at(&parent, name)?;
    }
    Ok(Some((parent, name, keep_dir && is_dir)))
}

fn make_whiteout(root: &SafeRoot, comps: &[&OsStr]) -> Result<()> {
    if let Some((parent, name, _)) = prepare_slot(root, comps, false)? {
        mknodat(
            &parent,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            makedev(0, 0),
        )?;
    }
    Ok(())
}

/// Returns the directory's fd, or None for the root entry of a `docker cp` (left alone).
fn make_dir(
    root: &SafeRoot,
    comps: &[&OsStr],
    meta: &EntryMeta,
    is_layer: bool,
) -> Result<Option<OwnedFd>> {
    let fd = match prepare_slot(root, comps, true)? {
        None if !is_layer => return Ok(None),
        None => root.open_dir(&[], false)?,
        Some((parent, name, exists)) => {
            if !exists {
                mkdirat(&parent, name, Mode::from_raw_mode(0o700))?;
            }
            openat(&parent, name, DIR_FLAGS | OFlags::NOFOLLOW, Mode::empty())?
        }
    };
    apply_fd_meta(&fd, meta)?;
    Ok(Some(fd))
}

fn write_file(
    root: &SafeRoot,
    comps: &[&OsStr],
    meta: &EntryMeta,
    data: &mut dyn Read,
    expected: Option<u64>,
) -> Result<u64> {
    let Some((parent, name, _)) = prepare_slot(root, comps, false)? else {
        return Err(ImageError::InvalidArchive(
            "regular file entry for the root directory".into(),
        ));
    };
    let fd = openat(
        &parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut file = File::from(fd);
    let written = copy_content(data, &mut file, expected.unwrap_or(0)).map_err(bad_tar)?;
    if let Some(exp) = expected {
        if written != exp {
            return Err(ImageError::InvalidArchive(format!(
                "unexpected end of archive in {}",
                display(comps)
            )));
        }
    }
    apply_fd_meta(&file, meta)?;
    futimens(&file, &times(meta.mtime))?;
    Ok(written)
}

/// Copies a file's content in pieces of up to 1 MiB (io::copy's 8 KiB made a write and an
/// inflate call per 8 KiB: most of a layer's syscalls).
fn copy_content(data: &mut dyn Read, file: &mut File, size_hint: u64) -> io::Result<u64> {
    const MAX_PIECE: u64 = 1024 * 1024;
    if size_hint <= 8 * 1024 {
        return io::copy(data, file);
    }
    let mut buf = vec![0u8; size_hint.min(MAX_PIECE) as usize];
    let mut written = 0u64;
    loop {
        let mut filled = 0;
        // Fill the buffer (the tar entry hands out what the decompressor has) before writing.
        while filled < buf.len() {
            match data.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(written);
        }
        io::Write::write_all(file, &buf[..filled])?;
        written += filled as u64;
    }
}

fn make_symlink(root: &SafeRoot, comps: &[&OsStr], meta: &EntryMeta, target: &[u8]) -> Result<()> {
    let Some((parent, name, _)) = prepare_slot(root, comps, false)? else {
        return Err(ImageError::InvalidArchive(
            "symlink entry for the root directory".into(),
        ));
    };
    symlinkat(OsStr::from_bytes(target), &parent, name)?;
    chown_at(&parent, name, meta)?;
    utimensat(&parent, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn make_hardlink(root: &SafeRoot, src: &[&OsStr], dst: &[&OsStr]) -> Result<()> {
    let Some((src_parent, src_name)) = root.open_parent(src, false)? else {
        return Err(ImageError::UnsafePath(
            "hardlink to the root directory".into(),
        ));
    };
    match lstat_type(&src_parent, src_name)? {
        None => {
            return Err(ImageError::InvalidArchive(format!(
                "hardlink target {} does not exist",
                display(src)
            )))
        }
        Some(FileType::Directory) => {
            return Err(ImageError::UnsafePath(format!(
                "hardlink to directory {}",
                display(src)
            )))
        }
        Some(_) => {}
    }
    let Some((parent, name, _)) = prepare_slot(root, dst, false)? else {
        return Err(ImageError::InvalidArchive(
            "hardlink entry for the root directory".into(),
        ));
    };
    // No AT_SYMLINK_FOLLOW: a symlink source is linked itself, never its target.
    linkat(&src_parent, src_name, &parent, name, AtFlags::empty())?;
    Ok(())
}

fn make_node(
    root: &SafeRoot,
    comps: &[&OsStr],
    meta: &EntryMeta,
    ft: FileType,
    dev: u64,
) -> Result<()> {
    let Some((parent, name, _)) = prepare_slot(root, comps, false)? else {
        return Err(ImageError::InvalidArchive(
            "device entry for the root directory".into(),
        ));
    };
    mknodat(
        &parent,
        name,
        ft,
        Mode::from_raw_mode(meta.mode & 0o777),
        dev,
    )?;
    chown_at(&parent, name, meta)?;
    rustix::fs::chmodat(
        &parent,
        name,
        Mode::from_raw_mode(meta.mode),
        AtFlags::empty(),
    )?;
    utimensat(&parent, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Owner, then mode (chown clears set-id bits), then xattrs, on an fd we created.
fn apply_fd_meta(fd: impl AsFd, meta: &EntryMeta) -> Result<()> {
    let fd = fd.as_fd();
    match fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    ) {
        Ok(()) | Err(Errno::PERM) | Err(Errno::INVAL) => {}
        Err(e) => return Err(e.into()),
    }
    fchmod(fd, Mode::from_raw_mode(meta.mode))?;
    for (name, value) in &meta.xattrs {
        // overlayfs trusts trusted.overlay.* (redirects, metacopy): never from a tarball.
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        match fsetxattr(fd, name.as_str(), value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) | Err(Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn chown_at(parent: &OwnedFd, name: &OsStr, meta: &EntryMeta) -> Result<()> {
    match chownat(
        parent,
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(()) | Err(Errno::PERM) | Err(Errno::INVAL) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn display(comps: &[&OsStr]) -> String {
    comps.iter().collect::<PathBuf>().display().to_string()
}
