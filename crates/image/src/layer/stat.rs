//! `docker cp` stat: the X-Docker-Container-Path-Stat header of a path inside a rootfs.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{readlinkat, statat, AtFlags, FileType, Stat};
use serde::{Deserialize, Serialize};

use super::safe_fs::{clamp_components, Resolve, SafeRoot};
use crate::error::{ImageError, Result};

// Go's os.FileMode type bits, which Docker puts in PathStat.mode.
const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;
const GO_MODE_DEVICE: u32 = 1 << 26;
const GO_MODE_NAMED_PIPE: u32 = 1 << 25;
const GO_MODE_SOCKET: u32 = 1 << 24;
const GO_MODE_SETUID: u32 = 1 << 23;
const GO_MODE_SETGID: u32 = 1 << 22;
const GO_MODE_CHAR_DEVICE: u32 = 1 << 21;
const GO_MODE_STICKY: u32 = 1 << 20;

/// Docker's container path stat (JSON, base64'd into a header by the daemon).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Stats `path_in_root` inside `root` (symlinks in parents resolved as if root were `/`;
/// the final component is not followed, as Docker does).
pub fn stat_path(root: &Path, path_in_root: &str) -> Result<PathStat> {
    let safe = SafeRoot::open(root, Resolve::InRoot)?;
    let comps = clamp_components(Path::new(path_in_root));
    let not_found = || {
        ImageError::NotFound(format!(
            "Could not find the file {path_in_root} in container"
        ))
    };
    let (st, target) = match safe.open_parent(&comps, false) {
        Err(e) if e.is_not_found() => return Err(not_found()),
        Err(e) => return Err(e),
        Ok(None) => (statat(safe.fd(), ".", AtFlags::empty())?, None),
        Ok(Some((parent, name))) => {
            let st = statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
                if e == rustix::io::Errno::NOENT {
                    not_found()
                } else {
                    e.into()
                }
            })?;
            let target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                Some(readlinkat(&parent, name, Vec::new())?)
            } else {
                None
            };
            (st, target)
        }
    };
    let name = comps
        .last()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".to_string());
    let link_target = match target {
        None => String::new(),
        Some(t) => resolve_link_lexically(&comps, OsStr::from_bytes(t.as_bytes())),
    };
    Ok(path_stat(name, &st, link_target))
}

pub(crate) fn path_stat(name: String, st: &Stat, link_target: String) -> PathStat {
    PathStat {
        name,
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: rfc3339(st.st_mtime, st.st_mtime_nsec as u32),
        link_target,
    }
}

/// The absolute path (inside the root) a symlink at `comps` points to.
fn resolve_link_lexically(comps: &[&OsStr], target: &OsStr) -> String {
    let t = Path::new(target);
    let joined: PathBuf = if t.is_absolute() {
        t.to_path_buf()
    } else {
        let mut p: PathBuf = Path::new("/").join(
            comps[..comps.len().saturating_sub(1)]
                .iter()
                .collect::<PathBuf>(),
        );
        p.push(t);
        p
    };
    let clean: PathBuf = clamp_components(&joined).iter().collect();
    format!("/{}", clean.display())
}

pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match FileType::from_raw_mode(st_mode) {
        FileType::Directory => GO_MODE_DIR,
        FileType::Symlink => GO_MODE_SYMLINK,
        FileType::BlockDevice => GO_MODE_DEVICE,
        FileType::CharacterDevice => GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE,
        FileType::Fifo => GO_MODE_NAMED_PIPE,
        FileType::Socket => GO_MODE_SOCKET,
        _ => 0,
    };
    if st_mode & 0o4000 != 0 {
        m |= GO_MODE_SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= GO_MODE_SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= GO_MODE_STICKY;
    }
    m
}

pub(crate) fn rfc3339(secs: i64, nanos: u32) -> String {
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}
