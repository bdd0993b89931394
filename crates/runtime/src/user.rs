//! Resolving Docker's `--user` strings against the container's /etc/passwd and /etc/group.
//!
//! The files are opened with `RESOLVE_IN_ROOT`, so a symlink in the image can never make us
//! read a host file.

use crate::error::{Result, RuntimeError};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::Read;
use std::path::Path;

/// A user resolved to numeric ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: every group in /etc/group that lists the user as a member.
    pub additional_gids: Vec<u32>,
    /// The home directory from /etc/passwd ("/" when unknown).
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolve `user` ("", "1000", "1000:1000", "name", "name:group", "uid:group", ...) inside `rootfs`.
pub fn resolve(rootfs: &Path, user: &str) -> Result<ResolvedUser> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = parse_passwd(&read_in_root(rootfs, "etc/passwd"));
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|e| e.uid == uid),
        Err(_) => Some(passwd.iter().find(|e| e.name == user_part).ok_or_else(|| {
            RuntimeError::User(format!(
                "unable to find user {user_part}: no matching entries in passwd file"
            ))
        })?),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user_part
            .parse::<u32>()
            .map_err(|_| RuntimeError::User(format!("invalid user {user_part}")))?,
    };
    let mut gid = entry.map_or(0, |e| e.gid);
    let home = entry.map_or_else(|| "/".to_string(), |e| e.home.clone());

    let groups = parse_group(&read_in_root(rootfs, "etc/group"));
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    RuntimeError::User(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    // Docker only adds supplementary groups when the user was given by (or resolved to) a name.
    let additional_gids = match entry {
        Some(e) => groups
            .iter()
            .filter(|g| g.gid != gid && g.members.contains(&e.name))
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Read `rel` below `rootfs` without escaping it; a missing file reads as empty.
fn read_in_root(rootfs: &Path, rel: &str) -> String {
    let Ok(root) = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return String::new();
    };
    let Ok(fd) = rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT,
    ) else {
        return String::new();
    };
    let mut text = String::new();
    let _ = std::fs::File::from(fd).read_to_string(&mut text);
    text
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f
                    .get(5)
                    .filter(|h| !h.is_empty())
                    .map_or("/", |h| h)
                    .to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nalice:x:1000:\nwheel:x:10:alice,bob\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn empty_is_root() {
        let r = resolve(rootfs().path(), "").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn by_name_with_groups() {
        let r = resolve(rootfs().path(), "alice").unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone()),
            (1000, 1000, vec![10])
        );
        assert_eq!(r.home, "/home/alice");
    }

    #[test]
    fn numeric_without_entry() {
        let r = resolve(rootfs().path(), "4242:99").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (4242, 99, "/"));
    }

    #[test]
    fn name_and_group_name() {
        let r = resolve(rootfs().path(), "alice:wheel").unwrap();
        assert_eq!((r.uid, r.gid), (1000, 10));
    }

    #[test]
    fn unknown_name_has_dockers_text() {
        let e = resolve(rootfs().path(), "bob").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user bob: no matching entries in passwd file"
        );
    }

    #[test]
    fn symlink_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/passwd")).unwrap();
        // /etc/passwd resolves inside the (empty) rootfs, so root's host entry is not seen.
        assert!(resolve(dir.path(), "root").is_err());
    }
}
