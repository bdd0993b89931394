//! `docker diff`: what a container's upper dir changed relative to its image.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::error::Result;

/// Docker's change kinds, serialised as their numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

impl Serialize for ChangeKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u8(*self as u8)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: ChangeKind,
}

/// Lists changes in `upper` (an overlay upper dir); a path present in any of `lowers` is
/// Modified, otherwise Added; overlay whiteouts are Deleted. Sorted by path.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    walk(upper, Path::new(""), lowers, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(dir: &Path, rel: &Path, lowers: &[PathBuf], out: &mut Vec<Change>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel_path = rel.join(e.file_name());
        let meta = fs::symlink_metadata(e.path())?;
        let ft = meta.file_type();
        let kind = if ft.is_char_device() && meta.rdev() == 0 {
            ChangeKind::Deleted
        } else if lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(&rel_path)).is_ok())
        {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push(Change {
            path: format!("/{}", rel_path.display()),
            kind,
        });
        if ft.is_dir() {
            walk(&e.path(), &rel_path, lowers, out)?;
        }
    }
    Ok(())
}
