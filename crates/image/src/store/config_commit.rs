//! What the builder commits: images that differ from their parent only in config (a
//! build's metadata-only steps: the parent's layers, a new config, and a history entry
//! marked `empty_layer`), and layers kept uncompressed.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use super::layers::Txn;
use super::{ImageMeta, ImageStore, LayerMeta, MEDIA_TYPE_LAYER_TAR};
use crate::config::{HistoryEntry, ImageConfig, RootFs, RunConfig};
use crate::digest::{chain_ids, Digest, DigestWriter};
use crate::error::{ImageError, Result};
use crate::layer::{self, UnpackStats};

impl ImageStore {
    /// A build step's layer: like `commit`, with the blob kept as an uncompressed tar (as
    /// Docker keeps local layers; compressing belongs to push) so builds are not bound by
    /// gzip. The diff is tarred once into the blob while it is hashed (for a plain tar the
    /// blob's digest is the diff id), and the upper dir itself becomes the layer's snapshot
    /// (it holds overlayfs' own whiteouts, as an unpacked layer does; containerd's
    /// snapshotter commits the same way), so the data is written once more, not twice.
    /// `upper` must be unmounted and is consumed; where it cannot be moved the snapshot is
    /// unpacked from the blob. Nothing is fsynced here: the caller syncs what the build
    /// made in one go (`sync_built`).
    pub fn commit_build_layer(
        &self,
        upper: &Path,
        parent: Option<&Digest>,
        run_config: RunConfig,
        created_by: String,
    ) -> Result<Digest> {
        let base = self.parent_image(parent)?;
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
            let stats = tar_into_snapshot(upper, &tmp.join("fs"), blob_file, &blob_tmp)?;
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
            let id = self.put_config_unsynced(&bytes, &mut txn)?;
            let meta = ImageMeta {
                id: id.clone(),
                layers,
                manifest: None,
                parent: base.map(|(m, _)| m.id),
                repo_digests: Vec::new(),
            };
            self.publish_unsynced(meta)?;
            Ok(id)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&blob_tmp);
            let _ = fs::remove_dir_all(&tmp);
            self.rollback_txn(&txn);
        }
        res
    }

    /// A config blob, written without a sync (see `sync_built`).
    fn put_config_unsynced(&self, bytes: &[u8], txn: &mut Txn) -> Result<Digest> {
        let id = Digest::from_bytes(bytes);
        let dest = self.content.path(&id);
        if !dest.exists() {
            let (tmp, mut f) = self.content.ingest_file()?;
            let written = f.write_all(bytes).and_then(|()| fs::rename(&tmp, &dest));
            if let Err(e) = written {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
            txn.blobs.push(id.clone());
        }
        Ok(id)
    }

    /// Makes an image visible with its metadata written without a sync and the tags left
    /// alone (a build step's image has none).
    fn publish_unsynced(&self, meta: ImageMeta) -> Result<()> {
        let path = self.meta_path(&meta.id);
        // `.tmp-` names are what recovery clears after a crash.
        let tmp = path.with_file_name(format!(".tmp-{:016x}", rand::random::<u64>()));
        fs::write(&tmp, serde_json::to_vec_pretty(&meta)?)
            .and_then(|()| fs::rename(&tmp, &path))
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
        let config = ImageConfig::from_slice(&self.content.read(&meta.id)?)?;
        self.write_index()
            .images
            .insert(meta.id.clone(), (meta, config));
        Ok(())
    }

    /// Makes what `commit_build_layer` and `commit_config` wrote for `ids` durable: each
    /// image's newest layer blob, config blob and metadata, then their directories. The
    /// syncs run side by side, so the filesystem commits them together instead of one
    /// journal commit each; the caller does this before it names the images to anyone.
    pub fn sync_built(&self, ids: &[Digest]) -> Result<()> {
        let mut files = Vec::new();
        {
            let idx = self.read_index();
            for id in ids {
                if let Some((m, _)) = idx.images.get(id) {
                    if let Some(l) = m.layers.last() {
                        files.push(self.content.path(&l.blob));
                    }
                }
                files.push(self.content.path(id));
                files.push(self.meta_path(id));
            }
        }
        files.sort();
        files.dedup();
        sync_all_side_by_side(&files)?;
        let mut dirs: Vec<std::path::PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        dirs.sort();
        dirs.dedup();
        sync_all_side_by_side(&dirs)
    }

    /// A new image on top of `parent` (none: an image with no layers) with `run_config` and
    /// no new layer; its history entry says `created_by` and is an empty layer.
    pub fn commit_config(
        &self,
        parent: Option<&Digest>,
        run_config: RunConfig,
        created_by: String,
    ) -> Result<Digest> {
        let base = self.parent_image(parent)?;
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
            let id = self.put_config_unsynced(&bytes, &mut txn)?;
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
            self.publish_unsynced(meta)?;
            Ok(id)
        })();
        if res.is_err() {
            self.rollback_txn(&txn);
        }
        res
    }

    /// The image a commit builds on (its record and config), when it has a parent.
    fn parent_image(&self, parent: Option<&Digest>) -> Result<Option<(ImageMeta, ImageConfig)>> {
        parent
            .map(|p| {
                self.read_index()
                    .images
                    .get(p)
                    .cloned()
                    .ok_or_else(|| ImageError::NotFound(p.to_string()))
            })
            .transpose()
    }
}

/// Tars the overlay upper dir `upper` into `blob` (hashing it: the diff id) and moves it
/// to `dest` as the layer's snapshot, or unpacks the blob there when it cannot be moved.
fn tar_into_snapshot(
    upper: &Path,
    dest: &Path,
    blob: File,
    blob_path: &Path,
) -> Result<UnpackStats> {
    let mut w = DigestWriter::new(BufWriter::with_capacity(1 << 18, blob));
    layer::write_diff(upper, &mut w)?;
    let (buf, diff_id, _) = w.finish();
    buf.into_inner().map_err(|e| e.into_error())?;
    fs::remove_dir(dest)?;
    if fs::rename(upper, dest).is_ok() {
        return Ok(UnpackStats {
            diff_id,
            size: regular_bytes(dest),
        });
    }
    fs::create_dir(dest)?;
    let stats = layer::unpack(File::open(blob_path)?, dest)?;
    if stats.diff_id != diff_id {
        return Err(ImageError::DigestMismatch {
            expected: diff_id.to_string(),
            actual: stats.diff_id.to_string(),
        });
    }
    Ok(stats)
}

/// The bytes of the regular files under `p` (a layer's size, as an unpack counts it).
fn regular_bytes(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => regular_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// fsyncs every path (files or directories) on threads of their own.
fn sync_all_side_by_side(paths: &[std::path::PathBuf]) -> Result<()> {
    std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .iter()
            .map(|p| s.spawn(move || File::open(p).and_then(|f| f.sync_all())))
            .collect();
        for h in handles {
            h.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("sync thread panicked")))?;
        }
        Ok(())
    })
}
