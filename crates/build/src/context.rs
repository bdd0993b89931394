//! Incremental build contexts (berth's own CLI ↔ daemon; the docker CLI keeps the classic
//! tar). The CLI lists the context's entries with their metadata ([`Manifest`]); the daemon
//! keeps the last context it received under a client-chosen key with an index of the
//! metadata each file was written from, answers which files it lacks ([`ContextStore::want`]),
//! and then applies a tar of only those files plus deletions ([`ContextLock::apply`]).
//!
//! Every write goes through a directory fd reached with `RESOLVE_BENEATH | NO_SYMLINKS`, so
//! neither a manifest path nor a tar entry (`..`, a path through a symlink, a symlink swapped
//! in for a directory) can touch anything outside the stored tree.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{
    fchmod, flock, futimens, mkdirat, openat, openat2, renameat, symlinkat, unlinkat, AtFlags, Dir,
    FlockOperation, Mode, OFlags, ResolveFlags, Timespec, Timestamps, CWD,
};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::dockerignore;

/// The first entry of the tar the CLI sends: the manifest itself.
pub const MANIFEST_NAME: &str = ".berth-context-manifest.json";
/// Contexts kept (least recently used ones beyond this are removed after a build).
pub const KEEP_CONTEXTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One context entry as the client sees it. `mode`, `mtime` (whole seconds, as a tar carries
/// it) and `link` are what the daemon writes; the rest only tells whether the file changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub mode: u32,
    #[serde(default)]
    pub size: u64,
    pub mtime: i64,
    #[serde(default)]
    pub mtime_nsec: i64,
    #[serde(default)]
    pub ctime: i64,
    #[serde(default)]
    pub ctime_nsec: i64,
    #[serde(default)]
    pub ino: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The whole context: entries in walk order (a directory before what it holds), and the
/// Dockerfile's content when it lives outside the context.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub entries: Vec<Entry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// Bad input from the client: refused, nothing written outside the stored tree.
    #[error("invalid build context: {0}")]
    Invalid(String),
    /// The stored context changed since the client asked what to send (another build with
    /// the same key): the client starts over.
    #[error("build context changed while it was sent, retry: {0}")]
    Stale(String),
    #[error("build context: {0}")]
    Io(String),
}

impl From<io::Error> for ContextError {
    fn from(e: io::Error) -> Self {
        ContextError::Io(e.to_string())
    }
}

impl From<Errno> for ContextError {
    fn from(e: Errno) -> Self {
        ContextError::Io(io::Error::from(e).to_string())
    }
}

// ---- the client side -------------------------------------------------------------------

/// Lists the files of `root` not excluded by `ignore`, in Docker's walk order, with where
/// each lives on disk. `None` when the context holds something only the classic tar can
/// carry (a device, a fifo, a name that is not UTF-8).
pub fn scan(
    root: &Path,
    ignore: &dockerignore::Matcher,
) -> io::Result<Option<Vec<(Entry, PathBuf)>>> {
    fn walk(
        root: &Path,
        rel: &str,
        ignore: &dockerignore::Matcher,
        out: &mut Vec<(Entry, PathBuf)>,
        dirs: &mut HashSet<String>,
    ) -> io::Result<bool> {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                return Ok(false);
            };
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let md = std::fs::symlink_metadata(e.path())?;
            let ft = md.file_type();
            let excluded = ignore.matches(&r);
            if excluded && !(ft.is_dir() && ignore.has_exclusions()) {
                continue;
            }
            if !excluded {
                // A file let back in by a `!` pattern under an excluded directory: its
                // directories come first (a tar unpack would have made them).
                add_parents(root, &r, out, dirs)?;
                let (kind, link) = if ft.is_dir() {
                    (Kind::Dir, None)
                } else if ft.is_file() {
                    (Kind::File, None)
                } else if ft.is_symlink() {
                    match std::fs::read_link(e.path())?.to_str() {
                        Some(l) => (Kind::Symlink, Some(l.to_string())),
                        None => return Ok(false),
                    }
                } else {
                    return Ok(false);
                };
                if kind == Kind::Dir {
                    dirs.insert(r.clone());
                }
                out.push((entry_of(&r, &md, kind, link), e.path()));
            }
            if ft.is_dir() && !walk(root, &r, ignore, out, dirs)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
    let mut out = Vec::new();
    let mut dirs = HashSet::new();
    Ok(walk(root, "", ignore, &mut out, &mut dirs)?.then_some(out))
}

fn entry_of(path: &str, md: &std::fs::Metadata, kind: Kind, link: Option<String>) -> Entry {
    Entry {
        path: path.to_string(),
        kind,
        mode: md.mode() & 0o7777,
        size: if kind == Kind::File { md.size() } else { 0 },
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec(),
        ctime: md.ctime(),
        ctime_nsec: md.ctime_nsec(),
        ino: md.ino(),
        link,
    }
}

/// Lists the directories above `rel` that are not listed yet.
fn add_parents(
    root: &Path,
    rel: &str,
    out: &mut Vec<(Entry, PathBuf)>,
    dirs: &mut HashSet<String>,
) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut p = rel;
    while let Some((parent, _)) = p.rsplit_once('/') {
        if dirs.contains(parent) {
            break;
        }
        missing.push(parent);
        p = parent;
    }
    for parent in missing.into_iter().rev() {
        let real = root.join(parent);
        let md = std::fs::symlink_metadata(&real)?;
        out.push((entry_of(parent, &md, Kind::Dir, None), real));
        dirs.insert(parent.to_string());
    }
    Ok(())
}

/// A tar of the manifest followed by the files the daemon asked for.
pub fn upload_tar(
    manifest: &Manifest,
    files: &[(Entry, PathBuf)],
    want: &HashSet<String>,
) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let json = serde_json::to_vec(manifest)?;
    let mut h = tar::Header::new_gnu();
    h.set_size(json.len() as u64);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, MANIFEST_NAME, &json[..])?;
    for (e, real) in files {
        if e.kind != Kind::File || !want.contains(&e.path) {
            continue;
        }
        let f = File::open(real)?;
        let size = f.metadata()?.len();
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(e.mode);
        h.set_mtime(e.mtime.max(0) as u64);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &e.path, f)?;
    }
    b.into_inner()
}

// ---- the daemon side -------------------------------------------------------------------

/// Checks the manifest's shape: clean relative paths, no duplicates, every parent listed
/// as a directory before its children.
pub fn validate(m: &Manifest) -> Result<(), ContextError> {
    let mut dirs: HashSet<&str> = HashSet::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for e in &m.entries {
        check_path(&e.path)?;
        if !seen.insert(&e.path) {
            return Err(ContextError::Invalid(format!(
                "{:?} is listed twice",
                e.path
            )));
        }
        if let Some((parent, _)) = e.path.rsplit_once('/') {
            if !dirs.contains(parent) {
                return Err(ContextError::Invalid(format!(
                    "{:?}: its parent {parent:?} is not a directory of the context",
                    e.path
                )));
            }
        }
        match e.kind {
            Kind::Dir => {
                dirs.insert(&e.path);
            }
            Kind::Symlink if e.link.as_deref().is_none_or(str::is_empty) => {
                return Err(ContextError::Invalid(format!(
                    "{:?}: a symlink without a target",
                    e.path
                )));
            }
            _ => {}
        }
        if e.mode > 0o7777 {
            return Err(ContextError::Invalid(format!("{:?}: bad mode", e.path)));
        }
    }
    Ok(())
}

fn check_path(p: &str) -> Result<(), ContextError> {
    let bad = p.is_empty()
        || p.starts_with('/')
        || p.contains('\0')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(ContextError::Invalid(format!(
            "{p:?} is not a clean path inside the context"
        )));
    }
    Ok(())
}

/// The contexts kept under `<data-root>/build-cache/contexts`, one dir per key:
/// `tree/` (the files), `index.json` (what each was written from), `lock`.
pub struct ContextStore {
    pub root: PathBuf,
}

type Index = HashMap<String, Entry>;

/// An index entry on disk: the client's metadata, and for files the sha256 of the content
/// the daemon wrote (COPY's cache key uses it instead of reading the file again).
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    entry: Entry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
}

/// What `ContextLock::apply` leaves: the manifest, and the content digests of the files.
#[derive(Debug)]
pub struct Applied {
    pub manifest: Manifest,
    /// Path in the context → hex sha256 of its content.
    pub digests: HashMap<String, String>,
}

impl ContextStore {
    pub fn new(root: PathBuf) -> Self {
        ContextStore { root }
    }

    /// Keys are client-chosen: 16 to 64 lowercase hex digits.
    pub fn valid_key(key: &str) -> bool {
        (16..=64).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    fn dir(&self, key: &str) -> Result<PathBuf, ContextError> {
        if !Self::valid_key(key) {
            return Err(ContextError::Invalid(format!("bad context key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    /// The files of `m` the stored context lacks or has from other metadata.
    pub fn want(&self, key: &str, m: &Manifest) -> Result<Vec<String>, ContextError> {
        validate(m)?;
        let (index, _) = read_index(&self.dir(key)?);
        Ok(m.entries
            .iter()
            .filter(|e| e.kind == Kind::File && index.get(&e.path) != Some(e))
            .map(|e| e.path.clone())
            .collect())
    }

    /// Takes the key's lock (waiting for another build with the same key to finish).
    pub fn lock(&self, key: &str) -> Result<ContextLock, ContextError> {
        let dir = self.dir(key)?;
        loop {
            std::fs::create_dir_all(&dir)?;
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join("lock"))?;
            flock(&f, FlockOperation::LockExclusive)?;
            // A prune may have removed the context while we waited: lock the new one.
            let held = f.metadata()?.ino();
            match std::fs::metadata(dir.join("lock")) {
                Ok(m) if m.ino() == held => return Ok(ContextLock { dir, _lock: f }),
                _ => continue,
            }
        }
    }

    /// Removes the least recently used contexts beyond `keep` (skipping ones in use);
    /// returns the keys removed and the bytes freed.
    pub fn prune(&self, keep: usize) -> (Vec<String>, u64) {
        let mut all: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let used = std::fs::metadata(e.path().join("lock"))
                    .and_then(|m| m.modified())
                    .ok()?;
                Some((used, e.path()))
            })
            .collect();
        all.sort();
        let excess = all.len().saturating_sub(keep);
        let mut removed = Vec::new();
        let mut freed = 0;
        for (_, dir) in all.into_iter().take(excess) {
            let Ok(f) = File::options().write(true).open(dir.join("lock")) else {
                continue;
            };
            if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
                continue;
            }
            freed += du(&dir);
            // The index goes first: a builder that takes the lock next starts over.
            let _ = std::fs::remove_file(dir.join("index.json"));
            let _ = std::fs::remove_dir_all(&dir);
            if let Some(k) = dir.file_name().and_then(|n| n.to_str()) {
                removed.push(k.to_string());
            }
        }
        (removed, freed)
    }
}

fn du(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| du(&e.path()))
            .sum()
    } else {
        md.len()
    }
}

fn read_index(dir: &Path) -> (Index, HashMap<String, String>) {
    let stored = std::fs::read(dir.join("index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Stored>>(&b).ok())
        .unwrap_or_default();
    let mut index = Index::new();
    let mut digests = HashMap::new();
    for s in stored {
        if let Some(d) = s.digest {
            digests.insert(s.entry.path.clone(), d);
        }
        index.insert(s.entry.path.clone(), s.entry);
    }
    (index, digests)
}

/// A stored context held for one build; dropping it lets the next build with the key in.
pub struct ContextLock {
    dir: PathBuf,
    _lock: File,
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);
const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

fn ts(secs: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl ContextLock {
    /// The context's files, for the build to read.
    pub fn tree(&self) -> PathBuf {
        self.dir.join("tree")
    }

    /// Reads the manifest (the tar's first entry) and the files that follow, and makes the
    /// stored tree exactly the manifest's. Returns the manifest.
    pub fn apply(&self, tar: impl Read) -> Result<Applied, ContextError> {
        let mut archive = tar::Archive::new(tar);
        let mut entries = archive.entries()?;
        let manifest: Manifest = {
            let mut first = entries
                .next()
                .ok_or_else(|| ContextError::Invalid("empty upload".into()))??;
            if first.path_bytes().as_ref() != MANIFEST_NAME.as_bytes() {
                return Err(ContextError::Invalid(format!(
                    "the upload must start with {MANIFEST_NAME}"
                )));
            }
            let mut b = Vec::new();
            first.read_to_end(&mut b)?;
            serde_json::from_slice(&b)
                .map_err(|e| ContextError::Invalid(format!("manifest: {e}")))?
        };
        validate(&manifest)?;
        let (mut index, mut digests) = read_index(&self.dir);
        let tree = self.tree();
        if index.is_empty() {
            // No index (first use, or a crash mid-update): start from an empty tree.
            let _ = std::fs::remove_dir_all(&tree);
        }
        std::fs::create_dir_all(&tree)?;
        let root = openat(CWD, &tree, DIR, Mode::empty())?;
        let wanted: HashMap<&str, &Entry> = manifest
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e))
            .collect();
        let mut touched: HashSet<String> = HashSet::new();
        // Marked dirty before the first change: a crash mid-update leaves no index, so the
        // next build starts over. An unchanged context writes nothing at all.
        let index_path = self.dir.join("index.json");
        let mut dirty = false;
        let mut mark_dirty = || {
            if !dirty {
                dirty = true;
                let _ = std::fs::remove_file(&index_path);
            }
        };

        // Deletions: what the manifest no longer has, or has as another type (deepest first).
        let mut gone: Vec<String> = index
            .values()
            .filter(|old| {
                wanted
                    .get(old.path.as_str())
                    .is_none_or(|new| new.kind != old.kind)
            })
            .map(|e| e.path.clone())
            .collect();
        gone.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        if !gone.is_empty() {
            mark_dirty();
        }
        for p in &gone {
            let (parent, name) = split(p);
            // A parent already gone (or replaced) took this entry with it.
            if let Ok(d) = open_dir_raw(&root, parent) {
                remove_all_at(&d, OsStr::new(name))?;
            }
            index.remove(p);
            digests.remove(p);
            touched.insert(parent.to_string());
        }
        index.retain(|p, _| wanted.contains_key(p.as_str()));
        digests.retain(|p, _| wanted.contains_key(p.as_str()));

        // Directories and symlinks, parents first (the manifest's order).
        for e in &manifest.entries {
            let (parent, name) = split(&e.path);
            match e.kind {
                Kind::Dir => {
                    let old = index.get(&e.path);
                    if old != Some(e) {
                        mark_dirty();
                    }
                    if old.is_none() {
                        let pd = open_dir(&root, parent)?;
                        match mkdirat(&pd, name, Mode::from_raw_mode(0o700)) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => return Err(e.into()),
                        }
                        touched.insert(parent.to_string());
                    }
                    if old.is_none_or(|o| o.mode != e.mode || o.mtime != e.mtime) {
                        let d = open_dir(&root, &e.path)?;
                        fchmod(&d, Mode::from_raw_mode(e.mode))?;
                        touched.insert(e.path.clone());
                    }
                    index.insert(e.path.clone(), e.clone());
                }
                Kind::Symlink => {
                    if index.get(&e.path) != Some(e) {
                        mark_dirty();
                        let pd = open_dir(&root, parent)?;
                        remove_all_at(&pd, OsStr::new(name))?;
                        symlinkat(e.link.as_deref().unwrap_or_default(), &pd, name)?;
                        touched.insert(parent.to_string());
                        index.insert(e.path.clone(), e.clone());
                    }
                }
                Kind::File => {}
            }
        }

        // Files from the tar: each a regular file the manifest lists, written beside its
        // target and renamed over it (a build holding the old one keeps reading it whole).
        let mut sent: HashSet<String> = HashSet::new();
        for entry in entries {
            let mut entry = entry?;
            let raw = entry.path_bytes();
            let path = std::str::from_utf8(&raw)
                .map_err(|_| ContextError::Invalid("a tar entry name is not UTF-8".into()))?
                .trim_start_matches("./")
                .to_string();
            check_path(&path)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(ContextError::Invalid(format!(
                    "tar entry {path:?}: only regular files may be sent"
                )));
            }
            let e = match wanted.get(path.as_str()) {
                Some(e) if e.kind == Kind::File => *e,
                _ => {
                    return Err(ContextError::Invalid(format!(
                        "tar entry {path:?} is not a file of the manifest"
                    )))
                }
            };
            if !sent.insert(path.clone()) {
                return Err(ContextError::Invalid(format!(
                    "tar entry {path:?} sent twice"
                )));
            }
            if entry.size() != e.size {
                return Err(ContextError::Invalid(format!(
                    "tar entry {path:?}: {} bytes, the manifest says {}",
                    entry.size(),
                    e.size
                )));
            }
            mark_dirty();
            let (parent, name) = split(&path);
            let pd = open_dir(&root, parent)?;
            let tmp = format!(".berth-tmp-{:016x}", rand_u64());
            let fd = openat(
                &pd,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut f = File::from(fd);
            let written = (|| -> io::Result<String> {
                let digest = copy_hashing(&mut entry, &mut f)?;
                fchmod(&f, Mode::from_raw_mode(e.mode))?;
                futimens(&f, &ts(e.mtime))?;
                Ok(digest)
            })();
            let written = match written {
                Ok(d) => {
                    digests.insert(path.clone(), d);
                    Ok(())
                }
                Err(e) => Err(e),
            };
            let done = written.map_err(ContextError::from).and_then(|()| {
                // A directory in the way was removed above (its type changed); anything
                // else still there is refused by rename.
                renameat(&pd, tmp.as_str(), &pd, name).map_err(ContextError::from)
            });
            if let Err(err) = done {
                let _ = unlinkat(&pd, tmp.as_str(), AtFlags::empty());
                return Err(err);
            }
            index.insert(path.clone(), e.clone());
            touched.insert(parent.to_string());
        }

        // Every file not sent must be one the store already had, unchanged.
        for e in manifest.entries.iter().filter(|e| e.kind == Kind::File) {
            if !sent.contains(&e.path) && index.get(&e.path) != Some(e) {
                return Err(ContextError::Stale(format!("{} was not sent", e.path)));
            }
        }
        // Directory times last: adding or removing a child changed them.
        for p in touched.iter().filter(|p| !p.is_empty()) {
            if let Some(e) = wanted.get(p.as_str()) {
                let d = open_dir(&root, p)?;
                futimens(&d, &ts(e.mtime))?;
            }
        }
        if dirty {
            let list: Vec<Stored> = manifest
                .entries
                .iter()
                .filter(|e| index.contains_key(&e.path))
                .map(|e| Stored {
                    entry: e.clone(),
                    digest: digests.get(&e.path).cloned(),
                })
                .collect();
            let tmp = self.dir.join("index.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&list).map_err(io::Error::other)?)?;
            std::fs::rename(&tmp, &index_path)?;
        }
        // The lock file's mtime is the context's last use, for pruning.
        let _ = futimens(&self._lock, &ts(now()));
        Ok(Applied { manifest, digests })
    }
}

/// Copies `r` into `w`, returning the hex sha256 of what went through.
fn copy_hashing(r: &mut impl Read, w: &mut impl Write) -> io::Result<String> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 18];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        w.write_all(&buf[..n])?;
    }
    Ok(hex::encode(h.finalize()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn split(p: &str) -> (&str, &str) {
    p.rsplit_once('/').unwrap_or(("", p))
}

/// Opens the directory `rel` under `root`, refusing symlinks anywhere on the way.
fn open_dir_raw(root: &OwnedFd, rel: &str) -> Result<OwnedFd, Errno> {
    let rel = if rel.is_empty() { "." } else { rel };
    openat2(root, rel, DIR, Mode::empty(), BENEATH)
}

fn open_dir(root: &OwnedFd, rel: &str) -> Result<OwnedFd, ContextError> {
    open_dir_raw(root, rel).map_err(|e| match e {
        // A symlink where a directory should be: never followed.
        Errno::LOOP | Errno::XDEV | Errno::NOTDIR => ContextError::Invalid(format!(
            "{rel:?} is not a directory of the context (a symlink or a file is in the way)"
        )),
        e => e.into(),
    })
}

/// Removes `name` in `dir`, recursively, never following a symlink.
fn remove_all_at(dir: &impl AsFd, name: &OsStr) -> Result<(), ContextError> {
    match unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let child = openat(dir, name, DIR, Mode::empty())?;
    let names: Vec<Vec<u8>> = Dir::read_from(&child)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_bytes().to_vec())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    for n in names {
        remove_all_at(&child, OsStr::from_bytes(&n))?;
    }
    unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(())
}

/// The key a client keeps a context under: its canonical directory.
pub fn key_for(dir: &Path) -> String {
    use sha2::Digest as _;
    let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    hex::encode(sha2::Sha256::digest(canon.as_os_str().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: Kind, size: u64, mtime: i64) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            size,
            mtime,
            mtime_nsec: 0,
            ctime: 0,
            ctime_nsec: 0,
            ino: 0,
            link: (kind == Kind::Symlink).then(|| "target".to_string()),
        }
    }

    fn upload(m: &Manifest, files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let json = serde_json::to_vec(m).expect("json");
        let mut h = tar::Header::new_gnu();
        h.set_size(json.len() as u64);
        h.set_mode(0o600);
        b.append_data(&mut h, MANIFEST_NAME, &json[..])
            .expect("tar");
        for (p, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, *data).expect("tar");
        }
        b.into_inner().expect("tar")
    }

    fn tmpdir() -> PathBuf {
        let p = std::env::temp_dir().join(format!("berth-ctx-test-{:016x}", rand_u64()));
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    #[test]
    fn manifests_with_unclean_paths_or_missing_parents_are_refused() {
        for bad in ["../x", "/x", "a//b", "a/./b", "", "a/.."] {
            let m = Manifest {
                entries: vec![entry(bad, Kind::File, 0, 0)],
                dockerfile: None,
            };
            assert!(
                matches!(validate(&m), Err(ContextError::Invalid(_))),
                "{bad}"
            );
        }
        let orphan = Manifest {
            entries: vec![entry("d/f", Kind::File, 0, 0)],
            dockerfile: None,
        };
        assert!(validate(&orphan).is_err());
        let under_link = Manifest {
            entries: vec![
                entry("l", Kind::Symlink, 0, 0),
                entry("l/f", Kind::File, 0, 0),
            ],
            dockerfile: None,
        };
        assert!(validate(&under_link).is_err());
        let twice = Manifest {
            entries: vec![entry("f", Kind::File, 0, 0), entry("f", Kind::File, 0, 0)],
            dockerfile: None,
        };
        assert!(validate(&twice).is_err());
    }

    #[test]
    fn apply_sends_only_changes_and_detects_stale_uploads() {
        let root = tmpdir();
        let store = ContextStore::new(root.clone());
        let key = "0123456789abcdef";
        let m1 = Manifest {
            entries: vec![
                entry("a", Kind::File, 1, 100),
                entry("d", Kind::Dir, 0, 100),
                entry("d/b", Kind::File, 2, 100),
                entry("l", Kind::Symlink, 0, 100),
            ],
            dockerfile: None,
        };
        assert_eq!(store.want(key, &m1).expect("want"), vec!["a", "d/b"]);
        let lock = store.lock(key).expect("lock");
        let applied = lock
            .apply(&upload(&m1, &[("a", b"1"), ("d/b", b"22")])[..])
            .expect("apply");
        // sha256("22")
        assert_eq!(
            applied.digests.get("d/b").map(String::as_str),
            Some("785f3ec7eb32f30b90cd0fcf3657d388b5ff4297f2f9716ff66e9b69c05ddd09")
        );
        let tree = lock.tree();
        drop(lock);
        assert_eq!(std::fs::read(tree.join("d/b")).expect("read"), b"22");
        assert_eq!(
            std::fs::read_link(tree.join("l")).expect("link"),
            Path::new("target")
        );
        assert!(store.want(key, &m1).expect("want").is_empty());

        // d/b changes, a goes away, l becomes a directory holding a file.
        let m2 = Manifest {
            entries: vec![
                entry("d", Kind::Dir, 0, 100),
                entry("d/b", Kind::File, 3, 200),
                entry("l", Kind::Dir, 0, 100),
                entry("l/n", Kind::File, 1, 100),
            ],
            dockerfile: None,
        };
        assert_eq!(store.want(key, &m2).expect("want"), vec!["d/b", "l/n"]);
        // Leaving out a changed file is a stale upload, not a silent mismatch.
        let lock = store.lock(key).expect("lock");
        let r = lock.apply(&upload(&m2, &[("l/n", b"n")])[..]);
        assert!(matches!(r, Err(ContextError::Stale(_))), "{r:?}");
        lock.apply(&upload(&m2, &[("d/b", b"333"), ("l/n", b"n")])[..])
            .expect("apply");
        drop(lock);
        assert!(!tree.join("a").exists());
        assert_eq!(std::fs::read(tree.join("d/b")).expect("read"), b"333");
        assert_eq!(std::fs::read(tree.join("l/n")).expect("read"), b"n");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(tree.join("d/b")).expect("md").mtime(),
            200
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
