//! `COPY` and `ADD`: finding the sources (paths and Go globs, resolved inside their root so a
//! symlink never leads out of the context or a stage's filesystem), a digest of what they
//! hold for the cache key, and writing them into a build container's root filesystem.
//!
//! Writes go through `berth_image::layer::unpack_into_root` (fd-based, `RESOLVE_IN_ROOT`),
//! so neither a hostile context, a stage's symlinks nor an archive's `..` entries or
//! symlink-then-write tricks can reach outside the rootfs.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
use sha2::Digest as _;

use crate::glob;

/// Where sources are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The build context: `..` out of it is an error; files become root-owned.
    Context,
    /// Another stage's or image's filesystem (`--from`): ownership is kept.
    Rootfs,
}

/// One source after globbing.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file, directory or (resolved) symlink on disk; `name` is its base name.
    Path { real: PathBuf, name: String },
    /// A local archive that `ADD` extracts.
    Archive { real: PathBuf },
    /// Bytes written as one file (`COPY <<EOF`, a download); `mode` and `mtime` as given.
    File {
        real: PathBuf,
        name: String,
        mode: u32,
        mtime: u64,
    },
}

/// Resolves `rel` inside `root` (symlinks followed as if `root` were `/`) to a real path,
/// or `None` when it does not exist. The kernel (`openat2(RESOLVE_IN_ROOT)`) does the walk.
pub fn resolve_in_root(root: &Path, rel: &str) -> io::Result<Option<PathBuf>> {
    let dir = rustix::fs::openat(
        CWD,
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = rel.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let fd = match rustix::fs::openat2(
        &dir,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let link = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))?;
    // Belt and braces: the kernel promised this, refuse anything else.
    let canon_root = std::fs::canonicalize(root)?;
    if !link.starts_with(&canon_root) {
        return Err(io::Error::other(format!(
            "{} resolves outside its root",
            rel
        )));
    }
    Ok(Some(link))
}

/// Cleans a source path to components under the root; `..` above the root is `None`.
fn clean_source(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n.to_str().unwrap_or_default()),
            Component::ParentDir => {
                out.pop()?;
            }
            _ => {}
        }
    }
    Some(out.join("/"))
}

/// Expands the source patterns of one instruction (already variable-expanded).
pub fn find_sources(
    root: &Path,
    kind: SourceKind,
    patterns: &[String],
    instr: &str,
) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    for pat in patterns {
        let clean = match clean_source(pat) {
            Some(c) => c,
            None if kind == SourceKind::Context => {
                return Err(format!(
                    "{instr} failed: forbidden path outside the build context: {pat} ()"
                ))
            }
            None => String::new(),
        };
        if glob::has_meta(&clean) {
            let before = out.len();
            glob_sources(root, &clean, &mut out).map_err(|e| format!("{instr} failed: {e}"))?;
            if out.len() == before {
                return Err(format!("{instr} failed: no source files were specified"));
            }
            continue;
        }
        let real = resolve_in_root(root, &clean)
            .map_err(|e| format!("{instr} failed: {e}"))?
            .ok_or_else(|| match kind {
                SourceKind::Context => format!(
                    "{instr} failed: file not found in build context or excluded by .dockerignore: stat {pat}: file does not exist"
                ),
                SourceKind::Rootfs => format!(
                    "{instr} failed: stat {pat}: file does not exist"
                ),
            })?;
        let name = Path::new(&clean)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(Source::Path { real, name });
    }
    Ok(out)
}

/// Walks from the pattern's literal prefix, matching every path below it; a matching
/// directory is taken whole (not descended), as Docker's classic builder does.
fn glob_sources(root: &Path, pat: &str, out: &mut Vec<Source>) -> Result<(), String> {
    let comps: Vec<&str> = pat.split('/').collect();
    let lit = comps.iter().take_while(|c| !glob::has_meta(c)).count();
    let prefix = comps[..lit].join("/");
    let Some(start) = resolve_in_root(root, &prefix).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    if !start.is_dir() {
        return Ok(());
    }
    glob::matches(pat, "").map_err(|e| e.to_string())?;
    fn walk(
        dir: &Path,
        rel: &str,
        pat: &str,
        root: &Path,
        out: &mut Vec<Source>,
    ) -> Result<(), String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let n = n.to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let p = dir.join(&n);
            if glob::matches(pat, &r).map_err(|e| e.to_string())? {
                if let Some(real) = resolve_in_root(root, &r).map_err(|e| e.to_string())? {
                    out.push(Source::Path { real, name: n });
                }
                continue;
            }
            let md = std::fs::symlink_metadata(&p).map_err(|e| e.to_string())?;
            if md.is_dir() {
                walk(&p, &r, pat, root, out)?;
            }
        }
        Ok(())
    }
    walk(&start, &prefix, pat, root, out)
}

/// The compression of a local file that `ADD` would extract, or `None` if it is not a tar.
pub fn archive_kind(path: &Path) -> Option<Compression> {
    let mut head = [0u8; 6];
    let mut f = File::open(path).ok()?;
    let n = f.read(&mut head).ok()?;
    let c = if head[..n].starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head[..n].starts_with(b"BZh") {
        Compression::Bzip2
    } else if head[..n].starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else {
        Compression::None
    };
    // Like Docker: it is an archive only if a tar header can be read from it.
    let r = open_archive(path, c).ok()?;
    let mut a = tar::Archive::new(r);
    let first = a.entries().ok()?.next()?;
    first.ok().map(|_| c)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

fn open_archive(path: &Path, c: Compression) -> io::Result<Box<dyn Read>> {
    let f = BufReader::new(File::open(path)?);
    Ok(match c {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Compression::Xz => {
            // lzma-rs decodes to a writer: stage it in an unlinked temp file.
            let mut tmp = tempfile_in(path.parent().unwrap_or(Path::new("/tmp")))?;
            let mut input = f;
            lzma_rs::xz_decompress(&mut input, &mut tmp)
                .map_err(|e| io::Error::other(format!("xz: {e}")))?;
            use std::io::Seek;
            tmp.rewind()?;
            Box::new(BufReader::new(tmp))
        }
    })
}

fn tempfile_in(dir: &Path) -> io::Result<File> {
    let fd = rustix::fs::openat(
        CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Ownership and mode overrides (`--chown`, `--chmod`), and whether owners are reset to root.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta {
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
    pub root_owned: bool,
}

/// Remembers file content digests by where the file sits in its root and its metadata
/// (size, mtime to the nanosecond, mode, owner), so an unchanged 10 MB context file is not
/// hashed again on every rebuild. An entry is trusted only for files whose mtime is older
/// than the moment they were hashed (git's "racily clean" rule): a file written in the same
/// second as it was hashed is always hashed again.
pub struct DigestCache {
    pub dir: PathBuf,
    /// Digests known for certain (path in the root → hex sha256): a kept context's files,
    /// hashed as the daemon wrote them.
    pub known: std::sync::Arc<std::collections::HashMap<String, String>>,
}

impl DigestCache {
    fn key(rel: &str, md: &std::fs::Metadata) -> String {
        let mut h = sha2::Sha256::new();
        h.update(
            format!(
                "{rel}\0{}\0{}.{}\0{:o}\0{}:{}",
                md.len(),
                md.mtime(),
                md.mtime_nsec(),
                md.mode(),
                md.uid(),
                md.gid()
            )
            .as_bytes(),
        );
        hex::encode(h.finalize())
    }

    fn get(&self, rel: &str, md: &std::fs::Metadata) -> Option<String> {
        if let Some(d) = self.known.get(rel) {
            return Some(d.clone());
        }
        let text = std::fs::read_to_string(self.dir.join(Self::key(rel, md))).ok()?;
        let (at, digest) = text.split_once(' ')?;
        let at: i64 = at.parse().ok()?;
        (md.mtime() < at - 1).then(|| digest.trim().to_string())
    }

    fn put(&self, rel: &str, md: &std::fs::Metadata, digest: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if md.mtime() >= now - 1 || std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let key = Self::key(rel, md);
        let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
        if std::fs::write(&tmp, format!("{now} {digest}")).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(key));
        }
    }
}

/// A digest of everything a set of sources would write (names, types, modes, owners, link
/// targets, contents; not mtimes), for the cache key. `root` is where the sources were
/// found; `cache` may answer for unchanged files.
pub fn digest(
    sources: &[Source],
    root: &Path,
    cache: Option<&DigestCache>,
) -> Result<String, String> {
    let mut h = sha2::Sha256::new();
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    for s in sources {
        match s {
            Source::Path { real, name } => {
                h.update(format!("path\0{name}\0").as_bytes());
                let rel = real
                    .strip_prefix(&root)
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| real.to_string_lossy().into_owned());
                let cache = if real.starts_with(&root) { cache } else { None };
                hash_tree(&mut h, real, "", &rel, cache).map_err(|e| e.to_string())?;
            }
            Source::Archive { real } | Source::File { real, .. } => {
                if let Source::File {
                    name, mode, mtime, ..
                } = s
                {
                    h.update(format!("file\0{name}\0{mode}\0{mtime}\0").as_bytes());
                }
                let mut f = File::open(real).map_err(|e| e.to_string())?;
                io::copy(&mut f, &mut h).map_err(|e| e.to_string())?;
            }
        }
        h.update(b"\0\0");
    }
    Ok(hex::encode(h.finalize()))
}

fn hash_tree(
    h: &mut sha2::Sha256,
    p: &Path,
    rel: &str,
    in_root: &str,
    cache: Option<&DigestCache>,
) -> io::Result<()> {
    let md = std::fs::symlink_metadata(p)?;
    h.update(format!("{rel}\0{:o}:{}:{}\0", md.mode(), md.uid(), md.gid()).as_bytes());
    let ft = md.file_type();
    if ft.is_symlink() {
        h.update(std::fs::read_link(p)?.as_os_str().as_bytes());
    } else if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)?
            .collect::<io::Result<Vec<_>>>()?
            .into_iter()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let n = n.to_string_lossy();
            hash_tree(
                h,
                &p.join(&*n),
                &format!("{rel}/{n}"),
                &format!("{in_root}/{n}"),
                cache,
            )?;
        }
    } else if ft.is_file() {
        let known = cache.and_then(|c| c.get(in_root, &md));
        let content = match known {
            Some(d) => d,
            None => {
                let mut fh = sha2::Sha256::new();
                io::copy(&mut File::open(p)?, &mut fh)?;
                let d = hex::encode(fh.finalize());
                if let Some(c) = cache {
                    c.put(in_root, &md, &d);
                }
                d
            }
        };
        h.update(content.as_bytes());
    }
    h.update(b"\0");
    Ok(())
}

/// Writes `sources` into `rootfs` at `dest` (absolute, in the image). `dest_is_dir` when
/// the destination names a directory (trailing `/`, or several sources).
pub fn apply(
    rootfs: &Path,
    sources: &[Source],
    dest: &str,
    dest_is_dir: bool,
    meta: Meta,
) -> Result<(), String> {
    let dest = clean_source(dest).unwrap_or_default();
    // A single file onto an existing directory goes inside it, as Docker does.
    let dest_exists_dir = resolve_in_root(rootfs, &dest)
        .map_err(|e| e.to_string())?
        .map(|p| p.is_dir())
        .unwrap_or(false);
    let into_dir = dest_is_dir || dest_exists_dir || dest.is_empty();
    let (dir, file_name) = if into_dir {
        (dest.clone(), None)
    } else {
        match dest.rsplit_once('/') {
            Some((d, f)) => (d.to_string(), Some(f.to_string())),
            None => (String::new(), Some(dest.clone())),
        }
    };
    let (uid, gid) = meta.owner.unwrap_or((0, 0));
    // Missing directories up to the destination: created 0755, owned by --chown's user.
    let mut pre = tar::Builder::new(Vec::new());
    let mut so_far = String::new();
    for c in dir.split('/').filter(|c| !c.is_empty()) {
        so_far = if so_far.is_empty() {
            c.to_string()
        } else {
            format!("{so_far}/{c}")
        };
        if resolve_in_root(rootfs, &so_far)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            let mut hd = header(tar::EntryType::Directory, 0o755, uid, gid, 0, 0);
            pre.append_data(&mut hd, &so_far, io::empty())
                .map_err(|e| e.to_string())?;
        }
    }
    // A directory or an archive onto a path that is not a directory yet: its contents go
    // into that path, created like the parents (`COPY dir /new` fills /new).
    let contents_into_dest = file_name.is_some()
        && sources.iter().any(|s| match s {
            Source::Archive { .. } => true,
            Source::Path { real, .. } => real.is_dir(),
            Source::File { .. } => false,
        });
    if contents_into_dest {
        let mut hd = header(tar::EntryType::Directory, 0o755, uid, gid, 0, 0);
        pre.append_data(&mut hd, &dest, io::empty())
            .map_err(|e| e.to_string())?;
    }
    let pre = pre.into_inner().map_err(|e| e.to_string())?;
    unpack(rootfs, &pre[..])?;
    let contents_dir = if contents_into_dest { &dest } else { &dir };
    for s in sources {
        match s {
            Source::Archive { real } => {
                let c = archive_kind(real).unwrap_or(Compression::None);
                let r = open_archive(real, c).map_err(|e| e.to_string())?;
                let filtered = rebase_archive(r, contents_dir, meta)?;
                unpack(rootfs, &filtered[..])?;
            }
            Source::Path { real, name } => {
                let md = std::fs::metadata(real).map_err(|e| e.to_string())?;
                let base = if md.is_dir() {
                    contents_dir.clone()
                } else {
                    join(&dir, file_name.as_deref().unwrap_or(name))
                };
                if md.is_file() && copy_file_into(rootfs, real, &base, meta)? {
                    continue;
                }
                write_tar_streaming(rootfs, |b| {
                    if md.is_dir() {
                        append_children(b, real, &base, meta)
                    } else {
                        append_tree(b, real, &base, meta)
                    }
                })?;
            }
            Source::File {
                real,
                name,
                mode,
                mtime,
            } => {
                let path = join(&dir, file_name.as_deref().unwrap_or(name));
                write_tar_streaming(rootfs, |b| {
                    let f = File::open(real)?;
                    let size = f.metadata()?.len();
                    let m = Meta {
                        root_owned: true,
                        ..meta
                    };
                    let (u, g) = m.owner.unwrap_or((0, 0));
                    let mut hd = header(
                        tar::EntryType::Regular,
                        m.mode.unwrap_or(*mode),
                        u,
                        g,
                        size,
                        *mtime,
                    );
                    b.append_data(&mut hd, &path, f)
                })?;
            }
        }
    }
    Ok(())
}

/// Copies one regular file to `rel` in the rootfs without a tar in between (the kernel
/// copies the data: a 10 MB file no longer goes through a tar writer, a pipe and an unpack),
/// with the metadata the tar path gives it. The parent is resolved inside the rootfs
/// (`RESOLVE_IN_ROOT`) and the file created with `O_NOFOLLOW`. `false` when a directory is
/// in the way: the tar path handles that.
fn copy_file_into(rootfs: &Path, src: &Path, rel: &str, meta: Meta) -> Result<bool, String> {
    use rustix::fs::{
        fchmod, fchown, futimens, openat, openat2, statat, unlinkat, AtFlags, FileType, Gid,
        Timespec, Timestamps, Uid,
    };
    let err = |e: rustix::io::Errno| format!("{rel}: {}", io::Error::from(e));
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if name.is_empty() || name == "." || name == ".." {
        return Ok(false);
    }
    let root = openat(
        CWD,
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let dir = openat2(
        &root,
        if parent.is_empty() { "." } else { parent },
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(err)?;
    match statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => return Ok(false),
        Ok(_) => unlinkat(&dir, name, AtFlags::empty()).map_err(err)?,
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(err(e)),
    }
    let mut from = File::open(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let md = from.metadata().map_err(|e| e.to_string())?;
    let fd = openat(
        &dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(err)?;
    let mut to = File::from(fd);
    io::copy(&mut (&mut from).take(md.len()), &mut to).map_err(|e| format!("{rel}: {e}"))?;
    let (uid, gid) = owner_of(&md, meta);
    match fchown(&to, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid))) {
        Ok(()) | Err(rustix::io::Errno::PERM) | Err(rustix::io::Errno::INVAL) => {}
        Err(e) => return Err(err(e)),
    }
    // After the owner: chown clears set-id bits.
    let mode = meta.mode.unwrap_or(md.mode()) & 0o7777;
    fchmod(&to, Mode::from_raw_mode(mode)).map_err(err)?;
    let t = Timespec {
        tv_sec: md.mtime().max(0),
        tv_nsec: 0,
    };
    futimens(
        &to,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
    )
    .map_err(err)?;
    Ok(true)
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn unpack(rootfs: &Path, tar: impl Read) -> Result<(), String> {
    berth_image::layer::unpack_into_root(tar, rootfs, "/").map_err(|e| e.to_string())
}

/// Builds a tar on one thread while another unpacks it, so big files are never held in memory.
fn write_tar_streaming(
    rootfs: &Path,
    fill: impl FnOnce(&mut tar::Builder<&mut dyn Write>) -> io::Result<()> + Send,
) -> Result<(), String> {
    let (r, mut w) = io::pipe().map_err(|e| e.to_string())?;
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> io::Result<()> {
            let mut b = tar::Builder::new(&mut w as &mut dyn Write);
            fill(&mut b)?;
            b.finish()?;
            drop(b);
            drop(w);
            Ok(())
        });
        let res = unpack(rootfs, r);
        let wres = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("tar writer panicked")));
        res?;
        wres.map_err(|e| e.to_string())
    })
}

fn header(
    kind: tar::EntryType,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: u64,
) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_size(size);
    h.set_mtime(mtime);
    h
}

fn owner_of(md: &std::fs::Metadata, meta: Meta) -> (u32, u32) {
    match meta.owner {
        Some(o) => o,
        None if meta.root_owned => (0, 0),
        None => (md.uid(), md.gid()),
    }
}

fn append_children(
    b: &mut tar::Builder<&mut dyn Write>,
    dir: &Path,
    base: &str,
    meta: Meta,
) -> io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .collect::<io::Result<Vec<_>>>()?
        .into_iter()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for n in names {
        append_tree(b, &dir.join(&n), &join(base, &n.to_string_lossy()), meta)?;
    }
    Ok(())
}

/// Appends `p` (never following a symlink below the source) as `name`.
fn append_tree(
    b: &mut tar::Builder<&mut dyn Write>,
    p: &Path,
    name: &str,
    meta: Meta,
) -> io::Result<()> {
    let md = std::fs::symlink_metadata(p)?;
    let (uid, gid) = owner_of(&md, meta);
    let mode = meta.mode.unwrap_or(md.mode() & 0o7777);
    let mtime = md.mtime().max(0) as u64;
    let ft = md.file_type();
    if ft.is_symlink() {
        let mut h = header(tar::EntryType::Symlink, 0o777, uid, gid, 0, mtime);
        b.append_link(&mut h, name, std::fs::read_link(p)?)?;
    } else if ft.is_dir() {
        let mut h = header(tar::EntryType::Directory, mode, uid, gid, 0, mtime);
        b.append_data(&mut h, name, io::empty())?;
        append_children(b, p, name, meta)?;
    } else if ft.is_file() {
        let f = File::open(p)?;
        let size = md.len();
        let mut h = header(tar::EntryType::Regular, mode, uid, gid, size, mtime);
        // Exactly `size` bytes, whatever happens to the file meanwhile.
        let data = f.take(size).chain(io::repeat(0)).take(size);
        b.append_data(&mut h, name, data)?;
    }
    // Sockets, devices and fifos in a context are skipped, as Docker does.
    Ok(())
}

/// Re-roots an archive's entries under `dir`; an entry that climbs out with `..` is an error.
fn rebase_archive(r: impl Read, dir: &str, meta: Meta) -> Result<Vec<u8>, String> {
    let mut a = tar::Archive::new(r);
    let mut out = tar::Builder::new(Vec::new());
    let bad = |e: io::Error| format!("ADD failed: reading the archive: {e}");
    for e in a.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let p = e.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some(clean) = clean_source(&p) else {
            return Err(format!(
                "ADD failed: archive entry {p:?} is outside the destination"
            ));
        };
        if clean.is_empty() {
            continue;
        }
        let mut h = e.header().clone();
        if let Some((u, g)) = meta.owner {
            h.set_uid(u as u64);
            h.set_gid(g as u64);
        }
        if let Some(m) = meta.mode {
            h.set_mode(m);
        }
        let name = join(dir, &clean);
        match h.entry_type() {
            tar::EntryType::Link => {
                let t = e
                    .link_name()
                    .map_err(bad)?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let Some(t) = clean_source(&t) else {
                    return Err(format!(
                        "ADD failed: archive hardlink {p:?} points outside the destination"
                    ));
                };
                out.append_link(&mut h, &name, join(dir, &t))
                    .map_err(|e| e.to_string())?;
            }
            tar::EntryType::Symlink => {
                let t = e.link_name().map_err(bad)?.unwrap_or_default().into_owned();
                out.append_link(&mut h, &name, t)
                    .map_err(|e| e.to_string())?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            _ => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).map_err(bad)?;
                out.append_data(&mut h, &name, &data[..])
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    out.into_inner().map_err(|e| e.to_string())
}

/// `--chown=user[:group]` resolved against the image's /etc/passwd and /etc/group (numbers
/// are taken as they are; a lone user stands for the group too, as Docker's classic builder).
pub fn chown_ids(rootfs: &Path, spec: &str) -> Result<(u32, u32), String> {
    let (u, g) = match spec.split(':').collect::<Vec<_>>()[..] {
        [u] => (u, u),
        [u, g] => (u, g),
        _ => return Err(format!("invalid chown string format: {spec}")),
    };
    let read = |f: &str| -> String {
        resolve_in_root(rootfs, f)
            .ok()
            .flatten()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    };
    let lookup = |name: &str, file: &str, what: &str| -> Result<u32, String> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok(n);
        }
        read(file)
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[0] == name)
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                format!(
                    "unable to convert uid/gid chown string to host mapping: can't find {what} for {}: no such {}: {name}",
                    if what == "uid" { format!("user {name}") } else { format!("group {name}") },
                    if what == "uid" { "user" } else { "group" },
                )
            })
    };
    let uid = lookup(u, "etc/passwd", "uid")?;
    let gid = if g.is_empty() {
        uid
    } else {
        lookup(g, "etc/group", "gid")?
    };
    Ok((uid, gid))
}

/// `--chmod=` (octal only, as the classic builder).
pub fn parse_chmod(m: &str) -> Result<u32, String> {
    u32::from_str_radix(m, 8)
        .ok()
        .filter(|v| *v <= 0o7777)
        .ok_or_else(|| format!("invalid chmod parameter: {m}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "berth-copy-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tmp();
        let root = d.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f"), "in").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("/sub", root.join("abs-sub")).unwrap();
        // An absolute link resolves inside the root: /etc of the root does not exist.
        assert_eq!(resolve_in_root(&root, "etc-link/passwd").unwrap(), None);
        let up = resolve_in_root(&root, "up").unwrap().unwrap();
        assert_eq!(up, std::fs::canonicalize(&root).unwrap());
        let f = resolve_in_root(&root, "abs-sub/f").unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(f).unwrap(), "in");
        let e = find_sources(&root, SourceKind::Context, &["../x".into()], "COPY").unwrap_err();
        assert!(e.contains("outside the build context"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn globs_and_chown_lookup() {
        let d = tmp();
        let root = d.join("root");
        std::fs::create_dir_all(root.join("src/dir")).unwrap();
        for f in ["a.txt", "b.txt", "c.md", "dir/d.txt"] {
            std::fs::write(root.join("src").join(f), f).unwrap();
        }
        let names = |pats: &[&str]| -> Vec<String> {
            let p: Vec<String> = pats.iter().map(|s| s.to_string()).collect();
            find_sources(&root, SourceKind::Context, &p, "COPY")
                .unwrap()
                .into_iter()
                .map(|s| match s {
                    Source::Path { name, .. } => name,
                    _ => String::new(),
                })
                .collect()
        };
        assert_eq!(names(&["src/*.txt"]), ["a.txt", "b.txt"]);
        assert_eq!(names(&["src/?.md", "src/d*"]), ["c.md", "dir"]);
        assert_eq!(names(&["*/dir/*.txt"]), ["d.txt"]);
        let e =
            find_sources(&root, SourceKind::Context, &["src/*.none".into()], "COPY").unwrap_err();
        assert_eq!(e, "COPY failed: no source files were specified");

        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/group"),
            "root:x:0:\nstaff:x:50:\napp:x:1000:\n",
        )
        .unwrap();
        assert_eq!(chown_ids(&root, "app").unwrap(), (1000, 1000));
        assert_eq!(chown_ids(&root, "app:staff").unwrap(), (1000, 50));
        assert_eq!(chown_ids(&root, "7:8").unwrap(), (7, 8));
        assert!(chown_ids(&root, "nobody")
            .unwrap_err()
            .contains("no such user: nobody"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn digest_cache_trusts_only_files_older_than_their_hash() {
        let d = tmp();
        let root = d.join("root");
        std::fs::create_dir_all(&root).unwrap();
        let cache = DigestCache {
            dir: d.join("cache"),
            known: Default::default(),
        };
        let f = root.join("f");
        std::fs::write(&f, "one").unwrap();
        let src =
            |root: &Path| find_sources(root, SourceKind::Context, &["f".into()], "COPY").unwrap();
        // Written just now: racy, never remembered.
        let a = digest(&src(&root), &root, Some(&cache)).unwrap();
        assert!(
            std::fs::read_dir(&cache.dir)
                .map(|r| r.count())
                .unwrap_or(0)
                == 0
        );
        // An old file is remembered, and the same content elsewhere gives the same digest.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let b = digest(&src(&root), &root, Some(&cache)).unwrap();
        assert_eq!(std::fs::read_dir(&cache.dir).unwrap().count(), 1);
        let c = digest(&src(&root), &root, Some(&cache)).unwrap();
        assert_eq!(b, c);
        assert_eq!(a, digest(&src(&root), &root, None).unwrap());
        // Changed content changes the metadata (mtime) and so the digest.
        std::fs::write(&f, "two").unwrap();
        assert_ne!(digest(&src(&root), &root, Some(&cache)).unwrap(), b);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
