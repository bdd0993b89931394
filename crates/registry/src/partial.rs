//! A blob being downloaded: the content store's partial file for its digest
//! (`ingest/partial-<hex>`). It is kept when the connection breaks, and across daemon
//! restarts, so the next attempt or pull asks the registry only for the rest with an HTTP
//! Range request. It is verified against its digest once complete and only then moved into
//! the content store; a mismatch deletes it.
//!
//! `BlobFeed` is the blob as a `Read`: the bytes already on disk, then those arriving from
//! the registry, each appended to the partial file and hashed as it passes. A pull unpacks
//! the layer from it while it downloads.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use berth_image::{Digest, ImageError, ImageStore};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

/// Writes to the partial file go out in pieces this big (a registry's frames are small).
const WRITE_BUFFER: usize = 1024 * 1024;

/// What the network side sends a feed: data, or why the download stopped.
pub(crate) type Chunk = std::result::Result<Bytes, String>;

pub(crate) struct PartialBlob {
    store: Arc<ImageStore>,
    digest: Digest,
    path: PathBuf,
    file: BufWriter<File>,
    hasher: Sha256,
    len: u64,
}

/// Where the partial download of `digest` lives.
pub(crate) fn partial_path(store: &ImageStore, digest: &Digest) -> PathBuf {
    store.content().partial_path(digest)
}

impl PartialBlob {
    /// Opens (or starts) the partial download of `digest`, locked against prune; with
    /// `restart` what is there is thrown away. Nothing already there is hashed yet (see
    /// `BlobFeed`, which reads it back).
    pub(crate) fn open(
        store: Arc<ImageStore>,
        digest: &Digest,
        restart: bool,
    ) -> io::Result<PartialBlob> {
        let path = partial_path(&store, digest);
        let mut file = store.content().open_partial(digest)?;
        if restart {
            file.set_len(0)?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok(PartialBlob {
            store,
            digest: digest.clone(),
            path,
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            hasher: Sha256::new(),
            len: 0,
        })
    }

    /// Bytes of the blob seen so far (on disk or in the write buffer).
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Hashes `n` bytes that are on disk already (read back from `offset`).
    fn replay(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.get_ref().read_at(buf, offset)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    pub(crate) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Writes out what is buffered (the partial file then holds every byte received).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Verifies the digest; moves the blob into the content store, or deletes it. No fsync:
    /// the image that uses the blob is committed later, and a blob lost to a crash before
    /// then is downloaded again.
    pub(crate) fn finish(mut self) -> Result<(), ImageError> {
        self.file.flush()?;
        let actual = Digest::from_hex(&hex::encode(self.hasher.finalize()))?;
        if actual != self.digest {
            let _ = fs::remove_file(&self.path);
            return Err(ImageError::DigestMismatch {
                expected: self.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        let dest = self.store.content().path(&self.digest);
        if dest.exists() {
            let _ = fs::remove_file(&self.path);
        } else {
            fs::rename(&self.path, &dest)?;
        }
        Ok(())
    }

    /// Throws the download away (more bytes than the manifest said, or not a layer).
    pub(crate) fn discard(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The whole blob as a stream: the `have` bytes of the partial file, then what arrives on
/// `rx`, appended to the partial file as it is read.
pub(crate) struct BlobFeed {
    pub blob: PartialBlob,
    have: u64,
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    /// Why the network side stopped, if it did before the end.
    pub transport_error: Option<String>,
    /// Told the length seen so far after each chunk.
    on_data: Box<dyn FnMut(u64) + Send>,
}

impl BlobFeed {
    pub(crate) fn new(
        blob: PartialBlob,
        have: u64,
        rx: mpsc::Receiver<Chunk>,
        on_data: Box<dyn FnMut(u64) + Send>,
    ) -> BlobFeed {
        BlobFeed {
            blob,
            have,
            rx,
            current: Bytes::new(),
            transport_error: None,
            on_data,
        }
    }

    /// Reads whatever is left (to hash all of it), keeping a transport error for the caller.
    pub(crate) fn drain(&mut self) {
        let mut buf = vec![0u8; 256 * 1024];
        while let Ok(n) = self.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

impl Read for BlobFeed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.current.is_empty() {
            let seen = self.blob.len();
            if seen < self.have {
                let want = buf.len().min((self.have - seen) as usize);
                let n = self.blob.replay(seen, &mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the partial download shrank",
                    ));
                }
                return Ok(n);
            }
            if self.transport_error.is_some() {
                return Err(io::Error::other(
                    self.transport_error.clone().unwrap_or_default(),
                ));
            }
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => {
                    // Everything received so far is on disk for the next attempt.
                    self.blob.flush()?;
                    self.transport_error = Some(e.clone());
                    return Err(io::Error::other(e));
                }
                Some(Ok(data)) => {
                    self.blob.append(&data)?;
                    (self.on_data)(self.blob.len());
                    self.current = data;
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
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

    fn feed_all(blob: PartialBlob, have: u64, chunks: Vec<Chunk>) -> (Vec<u8>, BlobFeed) {
        let (tx, rx) = mpsc::channel(chunks.len().max(1));
        for c in chunks {
            tx.try_send(c).unwrap();
        }
        drop(tx);
        let mut feed = BlobFeed::new(blob, have, rx, Box::new(|_| {}));
        let mut out = Vec::new();
        let _ = feed.read_to_end(&mut out);
        (out, feed)
    }

    #[test]
    fn a_download_continues_where_it_stopped_and_is_verified() {
        let (_d, s) = store();
        let data = b"0123456789".repeat(1000);
        let digest = Digest::from_bytes(&data);
        let p = PartialBlob::open(s.clone(), &digest, false).unwrap();
        let cut = vec![Ok(Bytes::copy_from_slice(&data[..4000])), Err("cut".into())];
        let (got, feed) = feed_all(p, 0, cut);
        assert_eq!(got, &data[..4000]);
        assert_eq!(feed.transport_error.as_deref(), Some("cut"));
        drop(feed);
        assert_eq!(fs::metadata(partial_path(&s, &digest)).unwrap().len(), 4000);
        // Reopened: the 4000 bytes are read back (and hashed) before the rest.
        let p = PartialBlob::open(s.clone(), &digest, false).unwrap();
        let rest = vec![Ok(Bytes::copy_from_slice(&data[4000..]))];
        let (got, feed) = feed_all(p, 4000, rest);
        assert_eq!(got, data);
        feed.blob.finish().unwrap();
        assert_eq!(s.content().read(&digest).unwrap(), data);
        assert!(!partial_path(&s, &digest).exists());
    }

    #[test]
    fn a_mismatch_keeps_nothing_and_restart_starts_over() {
        let (_d, s) = store();
        let digest = Digest::from_bytes(b"right");
        let mut p = PartialBlob::open(s.clone(), &digest, false).unwrap();
        p.append(b"wrong").unwrap();
        assert!(matches!(p.finish(), Err(ImageError::DigestMismatch { .. })));
        assert!(!partial_path(&s, &digest).exists());
        assert!(!s.content().has(&digest));

        let mut p = PartialBlob::open(s.clone(), &digest, false).unwrap();
        p.append(b"garbage").unwrap();
        drop(p);
        let mut p = PartialBlob::open(s.clone(), &digest, true).unwrap();
        p.append(b"right").unwrap();
        p.finish().unwrap();
        assert!(s.content().has(&digest));
    }
}
