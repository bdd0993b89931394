//! Turning layer blobs into snapshots, and making new images visible (or undoing it).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::{ImageMeta, ImageStore, Index, LayerBlob, LayerMeta};
use crate::config::ImageConfig;
use crate::content::BlobWriter;
use crate::digest::{chain_ids, Digest, DigestWriter};
use crate::error::{ImageError, Result};
use crate::layer::{self, UnpackStats};

const SIZE_FILE: &str = "size";
const TMP_PREFIX: &str = "tmp-";

/// What an operation created, so a failure can take it back.
#[derive(Default)]
pub(crate) struct Txn {
    pub snapshots: Vec<Digest>,
    pub blobs: Vec<Digest>,
}

/// Everything an image references (for GC).
pub(crate) fn referenced(idx: &Index) -> (HashSet<Digest>, HashSet<Digest>) {
    let mut chains = HashSet::new();
    let mut blobs = HashSet::new();
    for (meta, _) in idx.images.values() {
        blobs.insert(meta.id.clone());
        if let Some(m) = &meta.manifest {
            blobs.insert(m.clone());
        }
        for l in &meta.layers {
            chains.insert(l.chain_id.clone());
            blobs.insert(l.blob.clone());
        }
    }
    (chains, blobs)
}

impl ImageStore {
    /// Puts a blob, remembering it in `txn` if it is new.
    pub(crate) fn put_blob_txn(
        &self,
        r: impl Read,
        expected: Option<&Digest>,
        txn: &mut Txn,
    ) -> Result<Digest> {
        let existed = expected.map(|d| self.content.has(d)).unwrap_or(false);
        let (d, _) = self.content.put_reader(r, expected)?;
        if !existed {
            txn.blobs.push(d.clone());
        }
        Ok(d)
    }

    /// A fresh temp snapshot dir (`snapshots/tmp-<rand>`), removed at open if a crash leaves it.
    pub(crate) fn tmp_snapshot(&self) -> Result<PathBuf> {
        let p = self
            .snapshots
            .root()
            .join(format!("{TMP_PREFIX}{:016x}", rand::random::<u64>()));
        fs::create_dir_all(p.join("fs"))?;
        Ok(p)
    }

    /// Moves a completed temp snapshot into place as `chain_id` (or drops it if one exists).
    pub(crate) fn publish_snapshot(
        &self,
        tmp: &PathBuf,
        chain_id: &Digest,
        size: u64,
        txn: &mut Txn,
    ) -> Result<()> {
        fs::write(tmp.join(SIZE_FILE), size.to_string())?;
        let dest = self.snapshots.layer_snapshot_dir(chain_id);
        if self.snapshots.has_layer(chain_id) {
            fs::remove_dir_all(tmp)?;
            return Ok(());
        }
        if dest.exists() {
            fs::remove_dir_all(&dest)?;
        }
        fs::rename(tmp, &dest)?;
        txn.snapshots.push(chain_id.clone());
        Ok(())
    }

    pub(crate) fn layer_size(&self, chain_id: &Digest) -> u64 {
        fs::read_to_string(self.snapshots.layer_snapshot_dir(chain_id).join(SIZE_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Unpacks `blob` as the layer `chain_id`, checking that it really is `diff_id`.
    pub(crate) fn unpack_layer_blob(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
    ) -> Result<u64> {
        let mut txn = Txn::default();
        self.unpack_layer_blob_txn(blob, diff_id, chain_id, &mut txn)
    }

    fn unpack_layer_blob_txn(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
        txn: &mut Txn,
    ) -> Result<u64> {
        let unpacked = self.unpack_layer_stream(self.content.open_blob(blob)?)?;
        self.publish_unpacked(unpacked, diff_id, chain_id, txn)
    }

    /// The one way a layer is unpacked: a layer blob's bytes (gzip, zstd or a plain tar)
    /// into a temp snapshot. A pull feeds it the bytes as they arrive, before the blob is
    /// verified; the result becomes a snapshot only when an image registers it.
    pub fn unpack_layer_stream(&self, blob: impl Read) -> Result<UnpackedLayer> {
        let tmp = self.tmp_snapshot()?;
        // Owned from here: an error below removes the temp dir.
        let mut out = UnpackedLayer {
            dir: Some(tmp.clone()),
            diff_id: Digest::from_bytes(b""),
            size: 0,
        };
        let stats = layer::unpack(layer::decompress_ref(blob)?, &tmp.join("fs"))?;
        out.diff_id = stats.diff_id;
        out.size = stats.size;
        Ok(out)
    }

    /// Makes an unpacked layer the snapshot of `chain_id` if it is the layer `diff_id`.
    fn publish_unpacked(
        &self,
        mut unpacked: UnpackedLayer,
        diff_id: &Digest,
        chain_id: &Digest,
        txn: &mut Txn,
    ) -> Result<u64> {
        check_diff_id(diff_id, &unpacked.diff_id)?;
        let size = unpacked.size;
        let Some(tmp) = unpacked.dir.take() else {
            return Err(ImageError::Other("layer already published".into()));
        };
        let res = self.publish_snapshot(&tmp, chain_id, size, txn);
        if res.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        res.map(|()| size)
    }

    /// Verifies one layer blob and unpacks it unless its snapshot exists; returns its size.
    fn verify_or_unpack(
        &self,
        blob: &Digest,
        diff_id: &Digest,
        chain_id: &Digest,
        txn: &mut Txn,
    ) -> Result<u64> {
        if self.snapshots.has_layer(chain_id) {
            // Already unpacked: still make sure this blob is that layer.
            let mut w = DigestWriter::new(io::sink());
            io::copy(
                &mut layer::decompress(self.content.open_blob(blob)?)?,
                &mut w,
            )
            .map_err(|e| ImageError::InvalidArchive(format!("layer {blob}: {e}")))?;
            check_diff_id(diff_id, &w.finish().1)?;
            Ok(self.layer_size(chain_id))
        } else {
            self.unpack_layer_blob_txn(blob, diff_id, chain_id, txn)
        }
    }

    /// Every layer's size, unpacking the missing ones side by side: each layer has its own
    /// snapshot directory (overlayfs stacks them later), so their order does not matter here,
    /// and decompression is most of a pull's time once the blobs are local.
    fn unpack_layers(
        &self,
        layers: &[LayerBlob],
        diff_ids: &[Digest],
        chains: &[Digest],
        mut unpacked: Vec<Option<UnpackedLayer>>,
        txn: &mut Txn,
    ) -> Result<Vec<u64>> {
        // Layers the caller unpacked already (a pull, as they downloaded): checked and moved
        // into place here; the workers below take the rest.
        unpacked.resize_with(layers.len(), || None);
        let mut sizes: Vec<Option<u64>> = vec![None; layers.len()];
        for (i, u) in unpacked.into_iter().enumerate() {
            let Some(u) = u else { continue };
            sizes[i] = Some(if self.snapshots.has_layer(&chains[i]) {
                check_diff_id(&diff_ids[i], &u.diff_id)?;
                self.layer_size(&chains[i])
            } else {
                self.publish_unpacked(u, &diff_ids[i], &chains[i], txn)?
            });
        }
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(layers.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut results: Vec<Option<Result<u64>>> = (0..layers.len()).map(|_| None).collect();
        let done = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Txn::default();
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= layers.len() {
                                break;
                            }
                            if let Some(size) = sizes[i] {
                                out.push((i, Ok(size)));
                                continue;
                            }
                            let r = self.verify_or_unpack(
                                &layers[i].digest,
                                &diff_ids[i],
                                &chains[i],
                                &mut mine,
                            );
                            let failed = r.is_err();
                            out.push((i, r));
                            if failed {
                                // Stop taking work; the others finish what they hold.
                                next.store(layers.len(), std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                        }
                        (mine, out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("layer unpack thread panicked"))
                .collect::<Vec<_>>()
        });
        for (mine, out) in done {
            // Everything any worker published goes into the caller's transaction, so a
            // failure anywhere rolls all of it back.
            txn.snapshots.extend(mine.snapshots);
            txn.blobs.extend(mine.blobs);
            for (i, r) in out {
                results[i] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(ImageError::InvalidArchive("layer not unpacked".into())))
            })
            .collect()
    }

    /// Verifies config + layers, unpacking missing layers; returns the image's metadata.
    pub(crate) fn build_meta(
        &self,
        config_bytes: &[u8],
        layers: &[LayerBlob],
        manifest: Option<Digest>,
        parent: Option<Digest>,
        repo_digests: Vec<String>,
        txn: &mut Txn,
    ) -> Result<ImageMeta> {
        let image = NewImage {
            layers,
            manifest,
            parent,
            repo_digests,
        };
        self.build_meta_unpacked(config_bytes, image, Vec::new(), txn)
    }

    /// `build_meta`, with some layers unpacked by the caller already (`unpacked[i]` for
    /// `layers[i]`).
    pub(crate) fn build_meta_unpacked(
        &self,
        config_bytes: &[u8],
        image: NewImage<'_>,
        unpacked: Vec<Option<UnpackedLayer>>,
        txn: &mut Txn,
    ) -> Result<ImageMeta> {
        let NewImage {
            layers,
            manifest,
            parent,
            repo_digests,
        } = image;
        let config = ImageConfig::from_slice(config_bytes)
            .map_err(|e| ImageError::InvalidArchive(format!("invalid image config: {e}")))?;
        let id = self.put_blob_txn(config_bytes, Some(&Digest::from_bytes(config_bytes)), txn)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != layers.len() {
            return Err(ImageError::InvalidArchive(format!(
                "image {} has {} layers but its config lists {} diff ids",
                id.short(),
                layers.len(),
                diff_ids.len()
            )));
        }
        let chains = chain_ids(diff_ids);
        let sizes = self.unpack_layers(layers, diff_ids, &chains, unpacked, txn)?;
        let mut metas = Vec::with_capacity(layers.len());
        for (((blob, diff_id), chain_id), size) in
            layers.iter().zip(diff_ids).zip(&chains).zip(sizes)
        {
            metas.push(LayerMeta {
                diff_id: diff_id.clone(),
                chain_id: chain_id.clone(),
                blob: blob.digest.clone(),
                media_type: blob.media_type.clone(),
                size,
            });
        }
        Ok(ImageMeta {
            id,
            layers: metas,
            manifest,
            parent,
            repo_digests,
        })
    }

    /// Makes images visible: their metadata first, then (the commit point) the tags file.
    pub(crate) fn commit_images(
        &self,
        metas: Vec<ImageMeta>,
        new_tags: Vec<(String, Digest)>,
    ) -> Result<()> {
        for m in &metas {
            self.persist_meta(m)?;
        }
        let mut idx = self.write_index();
        let mut tags = idx.tags.clone();
        for (t, id) in new_tags {
            tags.insert(t, id);
        }
        self.persist_tags(&tags)?;
        for m in metas {
            let config = ImageConfig::from_slice(&self.content.read(&m.id)?)?;
            idx.images.insert(m.id.clone(), (m, config));
        }
        idx.tags = tags;
        Ok(())
    }

    /// Removes what a failed operation created, unless an image references it.
    pub(crate) fn rollback(&self, snapshots: &[Digest], blobs: &[Digest]) {
        let idx = self.read_index();
        let (chains, refs) = referenced(&idx);
        for c in snapshots.iter().filter(|c| !chains.contains(c)) {
            let _ = self.snapshots.remove_layer(c);
        }
        for b in blobs.iter().filter(|b| !refs.contains(b)) {
            let _ = self.content.delete(b);
        }
    }

    pub(crate) fn rollback_txn(&self, txn: &Txn) {
        self.rollback(&txn.snapshots, &txn.blobs)
    }

    /// Streams an uncompressed layer tar: unpacks it into a temp snapshot while writing it
    /// gzip-compressed into the content store. Returns (stats, blob digest, temp snapshot).
    /// Unpacks a layer tar into a new snapshot while storing its blob: gzip-compressed, or
    /// with `gzip == false` as the uncompressed tar (a build's layers: compressing is most of
    /// a local build's cost).
    pub(crate) fn ingest_layer_as(
        &self,
        reader: impl Read,
        txn: &mut Txn,
        gzip: bool,
    ) -> Result<(UnpackStats, Digest, PathBuf)> {
        let tmp = self.tmp_snapshot()?;
        let res = (|| {
            let blob = BlobWriter::new(&self.content)?;
            let out = if gzip {
                BlobOut::Gzip(Box::new(flate2::write::GzEncoder::new(
                    blob,
                    flate2::Compression::fast(),
                )))
            } else {
                BlobOut::Plain(blob)
            };
            let mut tee = TeeReader { inner: reader, out };
            let stats = layer::unpack(&mut tee, &tmp.join("fs"))?;
            let blob = match tee.out {
                BlobOut::Gzip(gz) => gz.finish()?,
                BlobOut::Plain(b) => b,
            };
            let (digest, _) = blob.commit()?;
            txn.blobs.push(digest.clone());
            Ok((stats, digest))
        })();
        match res {
            Ok((stats, digest)) => Ok((stats, digest, tmp)),
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }
}

/// What an image is made of, besides its config.
pub(crate) struct NewImage<'a> {
    pub layers: &'a [LayerBlob],
    pub manifest: Option<Digest>,
    pub parent: Option<Digest>,
    pub repo_digests: Vec<String>,
}

/// A layer unpacked into a temp snapshot that no image has yet; dropping it removes it.
pub struct UnpackedLayer {
    dir: Option<PathBuf>,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of file content.
    pub size: u64,
}

impl Drop for UnpackedLayer {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// Where a layer's bytes go: gzip-compressed or as they are.
enum BlobOut<'a> {
    Gzip(Box<flate2::write::GzEncoder<BlobWriter<'a>>>),
    Plain(BlobWriter<'a>),
}

impl Write for BlobOut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BlobOut::Gzip(w) => w.write(buf),
            BlobOut::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            BlobOut::Gzip(w) => w.flush(),
            BlobOut::Plain(w) => w.flush(),
        }
    }
}

pub(crate) fn check_diff_id(expected: &Digest, actual: &Digest) -> Result<()> {
    if expected != actual {
        return Err(ImageError::DigestMismatch {
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

pub(crate) fn is_tmp_snapshot(name: &str) -> bool {
    name.starts_with(TMP_PREFIX)
}

/// Copies everything read from `inner` into `out`.
struct TeeReader<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}
