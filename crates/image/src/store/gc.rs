//! Deleting images (two-phase: index first, then disk) and crash recovery at open.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

use super::layers::{is_tmp_snapshot, referenced};
use super::{Deleted, ImageMeta, ImageStore, IMAGES_SUBDIR};
use crate::config::ImageConfig;
use crate::content::write_atomic;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::reference::Reference;

const GC_JOURNAL: &str = "gc-pending.json";

/// Candidates of an interrupted delete: removed from disk if nothing references them.
#[derive(Default, Serialize, Deserialize)]
struct GcJournal {
    chains: Vec<Digest>,
    blobs: Vec<Digest>,
}

impl ImageStore {
    /// Rebuilds the index from disk and finishes interrupted work.
    pub(crate) fn recover(&self) -> Result<()> {
        self.content.gc_ingest();
        for e in fs::read_dir(self.snapshots.root())?.flatten() {
            if e.file_name().to_str().is_some_and(is_tmp_snapshot) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let mut idx = self.write_index();
        for e in fs::read_dir(self.root.join(IMAGES_SUBDIR))?.flatten() {
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let meta: ImageMeta = match fs::read(&path)
                .map_err(ImageError::from)
                .and_then(|b| Ok(serde_json::from_slice(&b)?))
            {
                Ok(m) => m,
                Err(err) => {
                    tracing::warn!(
                        "dropping unreadable image metadata {}: {err}",
                        path.display()
                    );
                    let _ = fs::remove_file(&path);
                    continue;
                }
            };
            match self
                .content
                .read(&meta.id)
                .and_then(|b| Ok(ImageConfig::from_slice(&b)?))
            {
                Ok(config) => {
                    idx.images.insert(meta.id.clone(), (meta, config));
                }
                Err(err) => {
                    tracing::warn!("dropping image {} whose config is unusable: {err}", meta.id);
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let tags: BTreeMap<String, Digest> = match fs::read(self.tags_path()) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        let valid: BTreeMap<String, Digest> = tags
            .iter()
            .filter(|(_, id)| idx.images.contains_key(*id))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if valid.len() != tags.len() {
            self.persist_tags(&valid)?;
        }
        idx.tags = valid;
        drop(idx);
        self.finish_gc().map(|_| ())
    }

    /// Phase two of a delete: removes journaled candidates nothing references any more.
    fn finish_gc(&self) -> Result<Vec<Deleted>> {
        let path = self.root.join(GC_JOURNAL);
        let Ok(bytes) = fs::read(&path) else {
            return Ok(Vec::new());
        };
        let journal: GcJournal = serde_json::from_slice(&bytes).unwrap_or_default();
        let (chains, blobs) = referenced(&self.read_index());
        let mut out = Vec::new();
        for c in journal.chains.iter().filter(|c| !chains.contains(c)) {
            if self.snapshots.has_layer(c) || self.snapshots.layer_snapshot_dir(c).exists() {
                self.snapshots.remove_layer(c)?;
                out.push(Deleted {
                    untagged: None,
                    deleted: Some(c.to_string()),
                });
            }
        }
        for b in journal.blobs.iter().filter(|b| !blobs.contains(b)) {
            self.content.delete(b)?;
        }
        fs::remove_file(&path)?;
        Ok(out)
    }

    /// Removes an image, its tags, and the layers and blobs no other image uses.
    pub fn delete(&self, id: &Digest) -> Result<Vec<Deleted>> {
        let _ops = self.lock_ops();
        self.delete_locked(id).map(|(d, _)| d)
    }

    fn delete_locked(&self, id: &Digest) -> Result<(Vec<Deleted>, u64)> {
        let mut out = Vec::new();
        let reclaimed;
        {
            let mut idx = self.write_index();
            let Some((meta, _)) = idx.images.get(id).cloned() else {
                return Err(ImageError::NotFound(id.to_string()));
            };
            if idx
                .images
                .values()
                .any(|(m, _)| m.parent.as_ref() == Some(id))
            {
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
                    id.short()
                )));
            }
            let journal = GcJournal {
                chains: meta.layers.iter().map(|l| l.chain_id.clone()).collect(),
                blobs: std::iter::once(meta.id.clone())
                    .chain(meta.manifest.clone())
                    .chain(meta.layers.iter().map(|l| l.blob.clone()))
                    .collect(),
            };
            write_atomic(&self.root.join(GC_JOURNAL), &serde_json::to_vec(&journal)?)?;
            // Phase one: out of the index (tags file, then metadata).
            let mut tags = idx.tags.clone();
            tags.retain(|k, v| {
                if v == id {
                    let familiar = Reference::parse(k)
                        .map(|r| r.familiar())
                        .unwrap_or_else(|_| k.clone());
                    out.push(Deleted {
                        untagged: Some(familiar),
                        deleted: None,
                    });
                    false
                } else {
                    true
                }
            });
            for rd in &meta.repo_digests {
                out.push(Deleted {
                    untagged: Some(rd.clone()),
                    deleted: None,
                });
            }
            self.persist_tags(&tags)?;
            idx.tags = tags;
            match fs::remove_file(self.meta_path(id)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            idx.images.remove(id);
            out.push(Deleted {
                untagged: None,
                deleted: Some(id.to_string()),
            });
            let (chains, _) = referenced(&idx);
            reclaimed = meta
                .layers
                .iter()
                .filter(|l| !chains.contains(&l.chain_id))
                .map(|l| l.size)
                .sum::<u64>();
        }
        // Phase two: from disk.
        out.extend(self.finish_gc()?);
        Ok((out, reclaimed))
    }

    /// Deletes unused images: untagged ones (`dangling_only`) or every image no container uses.
    pub fn prune(
        &self,
        dangling_only: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<(Vec<Deleted>, u64)> {
        let _ops = self.lock_ops();
        let mut deleted = Vec::new();
        let mut space = 0;
        loop {
            let candidates: Vec<Digest> = {
                let idx = self.read_index();
                idx.images
                    .keys()
                    .filter(|id| !dangling_only || !idx.tags.values().any(|t| t == *id))
                    .filter(|id| !in_use(id))
                    .filter(|id| {
                        !idx.images
                            .values()
                            .any(|(m, _)| m.parent.as_ref() == Some(*id))
                    })
                    .cloned()
                    .collect()
            };
            if candidates.is_empty() {
                break;
            }
            for id in candidates {
                let (d, s) = self.delete_locked(&id)?;
                deleted.extend(d);
                space += s;
            }
            if dangling_only {
                break;
            }
        }
        // Downloads a failed pull left for a later one to resume.
        space += self.content.prune_partials(std::time::Duration::ZERO);
        Ok((deleted, space))
    }
}
