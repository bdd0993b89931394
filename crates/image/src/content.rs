//! The content store: immutable blobs addressed by their sha256 digest.
//!
//! Writes go to `ingest/` first, are fsynced, verified and then renamed into
//! `blobs/sha256/<hex>`, so a reader never sees a half-written or unverified blob.
//! Downloads in progress are `ingest/partial-<hex>`: kept across restarts (a later pull
//! resumes them) until they are a day old or an image prune removes them.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{flock, FlockOperation};

use crate::digest::{Digest, DigestWriter};
use crate::error::{ImageError, Result};

const PARTIAL_PREFIX: &str = "partial-";
/// A partial download older than this is not worth resuming.
const PARTIAL_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) a content store rooted at `root` (`<data-root>/content`).
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join("blobs/sha256"))?;
        fs::create_dir_all(root.join("ingest"))?;
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm()).join(d.hex())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn size(&self, d: &Digest) -> Result<u64> {
        Ok(self.open_blob(d)?.metadata()?.len())
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open_blob(d)?.read_to_end(&mut buf)?;
        Ok(buf)
    }

    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::NotFound(d.to_string()),
            _ => ImageError::Io(e),
        })
    }

    /// Stores `data`, returning its digest. Idempotent.
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest> {
        let (d, _) = self.put_reader(data, None)?;
        Ok(d)
    }

    /// Streams `r` into the store; with `expected`, a mismatch keeps nothing and errors.
    pub fn put_reader(&self, mut r: impl Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let (tmp_path, file) = self.ingest_file()?;
        let result = (|| {
            let mut w = DigestWriter::new(io::BufWriter::new(file));
            io::copy(&mut r, &mut w)?;
            let (buf, digest, size) = w.finish();
            let file = buf.into_inner().map_err(|e| e.into_error())?;
            if let Some(exp) = expected {
                if *exp != digest {
                    return Err(ImageError::DigestMismatch {
                        expected: exp.to_string(),
                        actual: digest.to_string(),
                    });
                }
            }
            file.sync_all()?;
            Ok((digest, size))
        })();
        match result {
            Ok((digest, size)) => {
                let dest = self.path(&digest);
                if dest.exists() {
                    let _ = fs::remove_file(&tmp_path);
                } else {
                    fs::rename(&tmp_path, &dest)?;
                    sync_dir(dest.parent().unwrap_or(&self.root));
                }
                Ok((digest, size))
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                Err(e)
            }
        }
    }

    /// Removes a blob; a missing blob is not an error (deletes are idempotent).
    pub fn delete(&self, d: &Digest) -> Result<()> {
        match fs::remove_file(self.path(d)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// All blob digests in the store.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join("blobs/sha256"))? {
            let name = entry?.file_name();
            if let Some(d) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes temp files a crash left in `ingest/` (call at startup, before any writer),
    /// and partial downloads a day old; younger ones wait for a pull to resume them.
    pub fn gc_ingest(&self) {
        if let Ok(entries) = fs::read_dir(self.root.join("ingest")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX) {
                    continue;
                }
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
        self.prune_partials(PARTIAL_MAX_AGE);
    }

    /// Where the partial download of `d` is kept.
    pub fn partial_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("ingest")
            .join(format!("{PARTIAL_PREFIX}{}", d.hex()))
    }

    /// Opens (creating) the partial download of `d`, locked for its writer: a prune skips
    /// it while it is open.
    pub fn open_partial(&self, d: &Digest) -> io::Result<File> {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.partial_path(d))?;
        flock(&f, FlockOperation::LockExclusive)?;
        Ok(f)
    }

    /// Removes partial downloads nobody is writing that were last written `idle` ago or
    /// more; returns the bytes freed.
    pub fn prune_partials(&self, idle: Duration) -> u64 {
        let mut freed = 0;
        let Ok(entries) = fs::read_dir(self.root.join("ingest")) else {
            return 0;
        };
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX) {
                continue;
            }
            let Ok(f) = File::open(e.path()) else {
                continue;
            };
            if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
                continue; // being downloaded
            }
            let Ok(meta) = f.metadata() else { continue };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .unwrap_or_default();
            if age >= idle && fs::remove_file(e.path()).is_ok() {
                freed += meta.len();
            }
        }
        freed
    }

    /// A fresh temp file in `ingest/`, for writers that need to stream then `commit_file`.
    pub fn ingest_file(&self) -> Result<(PathBuf, File)> {
        let dir = self.root.join("ingest");
        loop {
            let name = format!("tmp-{:016x}", rand::random::<u64>());
            let p = dir.join(name);
            match fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&p)
            {
                Ok(f) => return Ok((p, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A fresh temp directory in `ingest/` (removed by `gc_ingest` if a crash leaves it).
    pub fn ingest_dir(&self) -> Result<PathBuf> {
        let p = self
            .root
            .join("ingest")
            .join(format!("dir-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&p)?;
        Ok(p)
    }
}

/// A writer into the content store whose digest is known only at the end (e.g. a gzip layer).
pub struct BlobWriter<'a> {
    store: &'a ContentStore,
    tmp: PathBuf,
    w: Option<DigestWriter<io::BufWriter<File>>>,
}

impl<'a> BlobWriter<'a> {
    pub fn new(store: &'a ContentStore) -> Result<Self> {
        let (tmp, f) = store.ingest_file()?;
        Ok(BlobWriter {
            store,
            tmp,
            w: Some(DigestWriter::new(io::BufWriter::new(f))),
        })
    }

    /// Fsyncs and moves the blob into place; returns its digest and size.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        let w = self
            .w
            .take()
            .ok_or_else(|| ImageError::Other("blob writer already committed".into()))?;
        let (buf, digest, size) = w.finish();
        let f = buf.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        let dest = self.store.path(&digest);
        if dest.exists() {
            fs::remove_file(&self.tmp)?;
        } else {
            fs::rename(&self.tmp, &dest)?;
            sync_dir(dest.parent().unwrap_or(self.store.root()));
        }
        Ok((digest, size))
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.w {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer already committed")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.w {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        if self.w.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Makes a rename durable; best effort (some filesystems refuse fsync on dirs).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Writes `data` to `path` atomically: temp file in the same dir, fsync, rename, fsync dir.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| ImageError::Other(format!("no parent for {}", path.display())))?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    sync_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_verify() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.put_bytes(b"hello").unwrap();
        assert!(cs.has(&d));
        assert_eq!(cs.read(&d).unwrap(), b"hello");
        assert_eq!(cs.size(&d).unwrap(), 5);
        // idempotent
        assert_eq!(cs.put_bytes(b"hello").unwrap(), d);

        let wrong = Digest::from_bytes(b"other");
        let e = cs.put_reader(&b"hello!"[..], Some(&wrong)).unwrap_err();
        assert!(matches!(e, ImageError::DigestMismatch { .. }));
        assert!(!cs.has(&Digest::from_bytes(b"hello!")));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);

        assert!(cs.read(&wrong).unwrap_err().is_not_found());
        cs.delete(&d).unwrap();
        cs.delete(&d).unwrap();
        assert!(!cs.has(&d));

        let mut w = BlobWriter::new(&cs).unwrap();
        w.write_all(b"streamed").unwrap();
        let (d2, n) = w.commit().unwrap();
        assert_eq!(n, 8);
        assert_eq!(d2, Digest::from_bytes(b"streamed"));
        assert_eq!(cs.list().unwrap(), vec![d2]);
    }
}
