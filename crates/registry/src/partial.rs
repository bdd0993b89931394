//! A blob being downloaded: `<content>/ingest/partial-<hex>`. It is kept when the connection
//! breaks, so the next attempt (or the next pull, while the daemon runs: the content store
//! empties `ingest/` at start) asks the registry only for the rest with an HTTP Range
//! request. It is verified against its digest once complete and only then moved into the
//! content store; a mismatch deletes it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use berth_image::{Digest, ImageError, ImageStore};
use sha2::{Digest as _, Sha256};

pub(crate) struct PartialBlob {
    store: Arc<ImageStore>,
    digest: Digest,
    path: PathBuf,
    file: File,
    hasher: Sha256,
    len: u64,
}

/// Where the partial download of `digest` lives.
pub(crate) fn partial_path(store: &ImageStore, digest: &Digest) -> PathBuf {
    store
        .content()
        .root()
        .join("ingest")
        .join(format!("partial-{}", digest.hex()))
}

impl PartialBlob {
    /// Opens (or starts) the partial download of `digest`, hashing what is already there.
    pub(crate) fn open(store: Arc<ImageStore>, digest: &Digest) -> io::Result<PartialBlob> {
        let path = partial_path(&store, digest);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        Ok(PartialBlob {
            store,
            digest: digest.clone(),
            path,
            file,
            hasher,
            len,
        })
    }

    /// Bytes already downloaded.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Starts over (the registry sent the whole blob, not the rest).
    pub(crate) fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    pub(crate) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Verifies the digest; moves the blob into the content store, or deletes it.
    pub(crate) fn finish(self) -> Result<(), ImageError> {
        let actual = Digest::from_hex(&hex::encode(self.hasher.finalize()))?;
        if actual != self.digest {
            let _ = fs::remove_file(&self.path);
            return Err(ImageError::DigestMismatch {
                expected: self.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        self.file.sync_all()?;
        let dest = self.store.content().path(&self.digest);
        if dest.exists() {
            let _ = fs::remove_file(&self.path);
        } else {
            fs::rename(&self.path, &dest)?;
            if let Some(dir) = dest.parent() {
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        }
        Ok(())
    }

    /// Throws the download away (more bytes than the manifest said).
    pub(crate) fn discard(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// One download of a blob at a time in this process (two pulls sharing a layer would
/// otherwise write the same partial file).
pub(crate) struct BlobLock {
    key: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

fn locks() -> &'static Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    LOCKS.get_or_init(|| Mutex::new(HashMap::new()))
}

pub(crate) async fn lock_blob(store: &ImageStore, digest: &Digest) -> BlobLock {
    let key = partial_path(store, digest).to_string_lossy().into_owned();
    let m = locks()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.clone())
        .or_default()
        .clone();
    BlobLock {
        key,
        _guard: m.lock_owned().await,
    }
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        let mut map = locks().lock().unwrap_or_else(|p| p.into_inner());
        // Ours (the guard's Arc) and the map's: nobody else waits, forget the entry.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<ImageStore>) {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(ImageStore::open(d.path()).unwrap());
        (d, s)
    }

    #[test]
    fn a_download_continues_where_it_stopped_and_is_verified() {
        let (_d, s) = store();
        let data = b"0123456789".repeat(1000);
        let digest = Digest::from_bytes(&data);
        let mut p = PartialBlob::open(s.clone(), &digest).unwrap();
        p.append(&data[..4000]).unwrap();
        drop(p);
        // Reopened: the 4000 bytes are there and hashed; the rest completes the blob.
        let mut p = PartialBlob::open(s.clone(), &digest).unwrap();
        assert_eq!(p.len(), 4000);
        p.append(&data[4000..]).unwrap();
        p.finish().unwrap();
        assert_eq!(s.content().read(&digest).unwrap(), data);
        assert!(!partial_path(&s, &digest).exists());
    }

    #[test]
    fn a_mismatch_keeps_nothing_and_restart_starts_over() {
        let (_d, s) = store();
        let digest = Digest::from_bytes(b"right");
        let mut p = PartialBlob::open(s.clone(), &digest).unwrap();
        p.append(b"wrong").unwrap();
        assert!(matches!(p.finish(), Err(ImageError::DigestMismatch { .. })));
        assert!(!partial_path(&s, &digest).exists());
        assert!(!s.content().has(&digest));

        let mut p = PartialBlob::open(s.clone(), &digest).unwrap();
        p.append(b"garbage").unwrap();
        p.restart().unwrap();
        p.append(b"right").unwrap();
        p.finish().unwrap();
        assert!(s.content().has(&digest));
    }
}
