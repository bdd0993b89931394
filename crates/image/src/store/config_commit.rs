//! What the builder commits: images that differ from their parent only in config (a
//! build's metadata-only steps: the parent's layers, a new config, and a history entry
//! marked `empty_layer`), and layers kept uncompressed.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::layers::Txn;
use super::{ImageMeta, ImageStore, LayerMeta, MEDIA_TYPE_LAYER_TAR};
use crate::config::{HistoryEntry, ImageConfig, RootFs, RunConfig};
use crate::digest::{chain_ids, Digest};
use crate::error::{ImageError, Result};
use crate::layer::{self, UnpackStats};

impl ImageStore {
    /// A build step's layer: like `commit`, with the blob kept as an uncompressed tar (as
    /// Docker keeps local layers; compressing belongs to push) so builds are not bound by
    /// gzip. One pass: the diff is tarred on one thread while this one unpacks it into the
    /// new snapshot and writes it as the blob, hashing it once (for a plain tar the blob's
    /// digest is the diff id). The blob is not fsynced here: the caller syncs the build's
    /// blobs once its answer is out (`sync_blob`).
    pub fn commit_build_layer(
        &self,
        upper: &Path,
        parent: Option<&Digest>,
        run_config: RunConfig,
        created_by: String,
    ) -> Result<Digest> {
        let base = match parent {
            Some(p) => Some(
                self.read_index()
                    .images
                    .get(p)
                    .cloned()
                    .ok_or_else(|| ImageError::NotFound(p.to_string()))?,
            ),
            None => None,
        };
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut config = base
            .as_ref()
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| ImageConfig {
                architecture: super::go_arch().to_string(),
                os: "linux".to_string(),
                ..Default::default()
            });
        config.extra.remove("container");
        config.extra.remove("container_config");
        config.created = Some(created.clone());
        config.author = None;
        config.config = run_config;
        config.comment = None;
        config.history.push(HistoryEntry {
            created: Some(created),
            created_by: Some(created_by),
            ..Default::default()
        });
        let _ops = self.lock_ops();
        let mut txn = Txn::default();
        let tmp = self.tmp_snapshot()?;
        let (blob_tmp, blob_file) = self.content.ingest_file()?;
        let res = (|| {
            let stats = tar_and_unpack(upper, &tmp.join("fs"), blob_file)?;
            let digest = stats.diff_id.clone();
            let dest = self.content.path(&digest);
            if dest.exists() {
                fs::remove_file(&blob_tmp)?;
            } else {
                fs::rename(&blob_tmp, &dest)?;
                txn.blobs.push(digest.clone());
            }
            let mut layers: Vec<LayerMeta> = base
                .as_ref()
                .map(|(m, _)| m.layers.clone())
                .unwrap_or_default();
            let mut diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
            diff_ids.push(digest.clone());
            let chain_id = chain_ids(&diff_ids)
                .pop()
                .ok_or_else(|| ImageError::Other("no layers".into()))?;
            self.publish_snapshot(&tmp, &chain_id, stats.size, &mut txn)?;
            layers.push(LayerMeta {
                diff_id: digest.clone(),
                chain_id,
                blob: digest,
                media_type: MEDIA_TYPE_LAYER_TAR.to_string(),
                size: stats.size,
            });
            config.rootfs = RootFs {
                kind: "layers".into(),
                diff_ids,
            };
            let bytes = serde_json::to_vec(&config)?;
            let id = self.put_blob_txn(&bytes[..], Some(&Digest::from_bytes(&bytes)), &mut txn)?;
            let meta = ImageMeta {
                id: id.clone(),
                layers,
                manifest: None,
                parent: base.map(|(m, _)| m.id),
                repo_digests: Vec::new(),
            };
            self.commit_images(vec![meta], Vec::new())?;
            Ok(id)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&blob_tmp);
            let _ = fs::remove_dir_all(&tmp);
            self.rollback_txn(&txn);
        }
        res
    }

    /// Makes the newest layer blob of image `id` durable (see `commit_build_layer`).
    pub fn sync_top_layer(&self, id: &Digest) -> Result<()> {
        let blob = self
            .read_index()
            .images
            .get(id)
            .and_then(|(m, _)| m.layers.last().map(|l| l.blob.clone()));
        if let Some(b) = blob {
            self.content.open_blob(&b)?.sync_data()?;
        }
        Ok(())
    }

    /// A new image on top of `parent` (none: an image with no layers) with `run_config` and
    /// no new layer; its history entry says `created_by` and is an empty layer.
    pub fn commit_config(
        &self,
        parent: Option<&Digest>,
        run_config: RunConfig,
        created_by: String,
    ) -> Result<Digest> {
        let base = match parent {
            Some(p) => Some(
                self.read_index()
                    .images
                    .get(p)
                    .cloned()
                    .ok_or_else(|| ImageError::NotFound(p.to_string()))?,
            ),
            None => None,
        };
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut config = base
            .as_ref()
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| ImageConfig {
                architecture: super::go_arch().to_string(),
                os: "linux".to_string(),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: Vec::new(),
                },
                ..Default::default()
            });
        config.extra.remove("container");
        config.extra.remove("container_config");
        config.created = Some(created.clone());
        config.config = run_config;
        config.comment = None;
        config.history.push(HistoryEntry {
            created: Some(created),
            created_by: Some(created_by),
            empty_layer: Some(true),
            ..Default::default()
        });
        let _ops = self.lock_ops();
        let mut txn = Txn::default();
        let res = (|| {
            let bytes = serde_json::to_vec(&config)?;
            let id = self.put_blob_txn(&bytes[..], Some(&Digest::from_bytes(&bytes)), &mut txn)?;
            let meta = ImageMeta {
                id: id.clone(),
                layers: base
                    .as_ref()
                    .map(|(m, _)| m.layers.clone())
                    .unwrap_or_default(),
                manifest: None,
                parent: base.map(|(m, _)| m.id),
                repo_digests: Vec::new(),
            };
            self.commit_images(vec![meta], Vec::new())?;
            Ok(id)
        })();
        if res.is_err() {
            self.rollback_txn(&txn);
        }
        res
    }
}

/// Tars the overlay upper dir `upper` on a thread of its own while this one unpacks the
/// stream into `dest` and copies it into `blob`.
fn tar_and_unpack(upper: &Path, dest: &Path, blob: File) -> Result<UnpackStats> {
    let (r, w) = io::pipe()?;
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<()> {
            let mut w = BufWriter::with_capacity(1 << 18, w);
            layer::write_diff(upper, &mut w)?;
            w.flush()?;
            Ok(())
        });
        let mut tee = Tee {
            inner: r,
            out: BufWriter::with_capacity(1 << 18, blob),
        };
        let stats = layer::unpack(&mut tee, dest);
        let Tee { inner, out } = tee;
        // A failed unpack stops reading: closing the pipe ends the writer too.
        drop(inner);
        let flushed = out.into_inner().map_err(|e| e.into_error());
        let wres = writer
            .join()
            .unwrap_or_else(|_| Err(ImageError::Other("layer tar writer panicked".into())));
        let stats = stats?;
        wres?;
        flushed?;
        Ok(stats)
    })
}

/// Copies everything read from `inner` into `out`.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}
