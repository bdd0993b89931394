//! The image store: images (config digest + layers), tags, and their lifecycle.
//!
//! Metadata lives under `<data-root>/image/` as one JSON file per image
//! (`images/<id-hex>.json`) and one tags file (`repositories.json`), all written
//! atomically, with an in-memory index. Content lives in the content store and unpacked
//! layers in the snapshotter. Writes that make an image visible happen last (tags file
//! rename), so a crash leaves at worst unreferenced data that `open` collects.

mod commit;
mod config_commit;
pub use commit::go_arch;
mod gc;
mod history;
mod index;
pub(crate) mod layers;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use crate::config::{ImageConfig, RunConfig};
use crate::content::{write_atomic, ContentStore};
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::reference::Reference;
use crate::snapshot::Snapshotter;

pub use history::HistoryItem;
pub use index::{ImageMeta, LayerMeta};
pub use layers::UnpackedLayer;

const IMAGE_DIR: &str = "image";
const IMAGES_SUBDIR: &str = "images";
const TAGS_FILE: &str = "repositories.json";

pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image as the daemon sees it.
#[derive(Clone, Debug)]
pub struct ImageRecord {
    pub id: Digest,
    pub config: ImageConfig,
    /// Familiar tags, e.g. "busybox:latest".
    pub repo_tags: Vec<String>,
    /// "busybox@sha256:..." when a manifest digest is known from a registry.
    pub repo_digests: Vec<String>,
    pub created: Option<String>,
    /// Sum of the unpacked layer sizes.
    pub size: u64,
    pub parent: Option<Digest>,
    pub manifest: Option<Digest>,
    pub chain_ids: Vec<Digest>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: Digest,
    pub tags: Vec<String>,
}

/// One line of Docker's DELETE /images response.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    #[serde(rename = "Untagged", skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(rename = "Deleted", skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

/// An image to register whose blobs are in the content store (see `register`).
pub struct Registration<'a> {
    pub config: &'a Digest,
    pub layers: &'a [LayerBlob],
    /// The manifest's digest (its bytes are in the content store).
    pub manifest: Option<Digest>,
    /// "name@digest".
    pub repo_digest: Option<String>,
    pub tag: Option<&'a str>,
}

/// A layer blob to register with an image (already in the content store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    pub digest: Digest,
    pub media_type: String,
}

/// The in-memory index, guarded by one RwLock.
#[derive(Default)]
pub(crate) struct Index {
    pub images: HashMap<Digest, (ImageMeta, ImageConfig)>,
    /// Full reference ("docker.io/library/busybox:latest") → image id.
    pub tags: BTreeMap<String, Digest>,
}

pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    snapshots: Snapshotter,
    index: RwLock<Index>,
    /// Serialises mutations (load, commit, delete...) so GC never races an unpack.
    ops: Mutex<()>,
}

impl ImageStore {
    /// Opens the store, finishing what a crash interrupted (see `gc::recover`).
    pub fn open(data_root: &Path) -> Result<Self> {
        let content = ContentStore::open(&data_root.join("content"))?;
        let snapshots = Snapshotter::open(&data_root.join("snapshots"))?;
        let root = data_root.join(IMAGE_DIR);
        fs::create_dir_all(root.join(IMAGES_SUBDIR))?;
        let store = ImageStore {
            root,
            content,
            snapshots,
            index: RwLock::new(Index::default()),
            ops: Mutex::new(()),
        };
        store.recover()?;
        Ok(store)
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    pub(crate) fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_ops(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn meta_path(&self, id: &Digest) -> PathBuf {
        self.root
            .join(IMAGES_SUBDIR)
            .join(format!("{}.json", id.hex()))
    }

    fn tags_path(&self) -> PathBuf {
        self.root.join(TAGS_FILE)
    }

    pub(crate) fn persist_meta(&self, meta: &ImageMeta) -> Result<()> {
        write_atomic(&self.meta_path(&meta.id), &serde_json::to_vec_pretty(meta)?)
    }

    pub(crate) fn persist_tags(&self, tags: &BTreeMap<String, Digest>) -> Result<()> {
        write_atomic(&self.tags_path(), &serde_json::to_vec_pretty(tags)?)
    }

    fn record(index: &Index, id: &Digest) -> Option<ImageRecord> {
        let (meta, config) = index.images.get(id)?;
        let repo_tags = index
            .tags
            .iter()
            .filter(|(_, v)| *v == id)
            .filter_map(|(k, _)| Reference::parse(k).ok().map(|r| r.familiar()))
            .collect();
        Some(ImageRecord {
            id: id.clone(),
            config: config.clone(),
            repo_tags,
            repo_digests: meta.repo_digests.clone(),
            created: config.created.clone(),
            size: meta.layers.iter().map(|l| l.size).sum(),
            parent: meta.parent.clone(),
            manifest: meta.manifest.clone(),
            chain_ids: meta.layers.iter().map(|l| l.chain_id.clone()).collect(),
        })
    }

    pub fn list(&self) -> Vec<ImageRecord> {
        let idx = self.read_index();
        let mut out: Vec<ImageRecord> = idx
            .images
            .keys()
            .filter_map(|id| Self::record(&idx, id))
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        out
    }

    /// Looks an image up the way Docker does: full/short id, name[:tag], name@digest.
    pub fn resolve(&self, name_or_id: &str) -> Result<ImageRecord> {
        let idx = self.read_index();
        let id = Self::resolve_id(&idx, name_or_id)?;
        Self::record(&idx, &id).ok_or_else(|| ImageError::NotFound(name_or_id.to_string()))
    }

    fn resolve_id(idx: &Index, s: &str) -> Result<Digest> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            return Self::by_id_prefix(idx, hex).ok_or_else(|| ImageError::NotFound(s.to_string()));
        }
        match Reference::parse(s) {
            Ok(r) => {
                if let Some(d) = &r.digest {
                    let wanted = format!("{}@{}", r.repository(), d);
                    let found = idx
                        .images
                        .values()
                        .find(|(m, _)| m.repo_digests.contains(&wanted));
                    if let Some((m, _)) = found {
                        return Ok(m.id.clone());
                    }
                    return Err(ImageError::NotFound(r.familiar()));
                }
                let normalized = Reference {
                    tag: r.tag.clone().or_else(|| Some("latest".into())),
                    ..r.clone()
                };
                if let Some(id) = idx.tags.get(&normalized.full()) {
                    return Ok(id.clone());
                }
                // A bare hex string may be a short id (Docker checks names first).
                if r.tag.is_none() && looks_like_hex(s) {
                    if let Some(id) = Self::by_id_prefix(idx, s) {
                        return Ok(id);
                    }
                }
                Err(ImageError::NotFound(normalized.familiar()))
            }
            Err(e) => {
                if looks_like_hex(s) {
                    if let Some(id) = Self::by_id_prefix(idx, s) {
                        return Ok(id);
                    }
                }
                if s.bytes().any(|b| b.is_ascii_uppercase()) || s.is_empty() {
                    return Err(e);
                }
                Err(ImageError::NotFound(s.to_string()))
            }
        }
    }

    fn by_id_prefix(idx: &Index, hex: &str) -> Option<Digest> {
        if hex.is_empty() {
            return None;
        }
        let mut it = idx.images.keys().filter(|id| id.hex().starts_with(hex));
        match (it.next(), it.next()) {
            (Some(id), None) => Some(id.clone()),
            _ => None,
        }
    }

    /// Points `reference` at image `id` (moving it if it pointed elsewhere).
    pub fn tag(&self, id: &Digest, reference: &str) -> Result<()> {
        let r = Reference::parse_normalized(reference)?;
        if r.digest.is_some() {
            return Err(ImageError::InvalidReference(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let _ops = self.lock_ops();
        let mut idx = self.write_index();
        if !idx.images.contains_key(id) {
            return Err(ImageError::NotFound(id.to_string()));
        }
        let mut tags = idx.tags.clone();
        tags.insert(r.full(), id.clone());
        self.persist_tags(&tags)?;
        idx.tags = tags;
        Ok(())
    }

    /// Removes a tag; returns the image it pointed at.
    pub fn untag(&self, reference: &str) -> Result<Digest> {
        let r = Reference::parse_normalized(reference)?;
        let _ops = self.lock_ops();
        let mut idx = self.write_index();
        let mut tags = idx.tags.clone();
        let id = tags
            .remove(&r.full())
            .ok_or_else(|| ImageError::NotFound(r.familiar()))?;
        self.persist_tags(&tags)?;
        idx.tags = tags;
        Ok(id)
    }

    /// Adds a "name@digest" repo digest to an image (after a pull or push).
    pub fn add_repo_digest(&self, id: &Digest, repo_digest: &str) -> Result<()> {
        let _ops = self.lock_ops();
        let mut idx = self.write_index();
        let Some((meta, _)) = idx.images.get_mut(id) else {
            return Err(ImageError::NotFound(id.to_string()));
        };
        if !meta.repo_digests.iter().any(|d| d == repo_digest) {
            let mut updated = meta.clone();
            updated.repo_digests.push(repo_digest.to_string());
            self.persist_meta(&updated)?;
            *meta = updated;
        }
        Ok(())
    }

    /// The raw config bytes of an image (its id is their digest).
    pub fn config_bytes(&self, id: &Digest) -> Result<Vec<u8>> {
        self.content.read(id)
    }

    /// The layers of an image, bottom-most first (blob digests for push/save).
    pub fn image_layers(&self, id: &Digest) -> Result<Vec<LayerMeta>> {
        let idx = self.read_index();
        idx.images
            .get(id)
            .map(|(m, _)| m.layers.clone())
            .ok_or_else(|| ImageError::NotFound(id.to_string()))
    }

    /// Registers an image whose config and layer blobs are already in the content store
    /// (a registry pull): unpacks missing layers, verifies diff ids, then tags.
    pub fn register(
        &self,
        config_digest: &Digest,
        layers: &[LayerBlob],
        manifest: Option<Digest>,
        repo_digest: Option<String>,
        tag: Option<&str>,
    ) -> Result<Digest> {
        let r = Registration {
            config: config_digest,
            layers,
            manifest,
            repo_digest,
            tag,
        };
        self.register_unpacked(r, Vec::new())
    }

    /// `register`, with layers the caller has unpacked already (`unpacked[i]` for
    /// `layers[i]`, see `unpack_layer_stream`): each is checked against the config's diff id
    /// and becomes its snapshot; the others are unpacked from their blobs.
    pub fn register_unpacked(
        &self,
        r: Registration<'_>,
        unpacked: Vec<Option<UnpackedLayer>>,
    ) -> Result<Digest> {
        let config = self.content.read(r.config)?;
        let tag_ref = r.tag.map(Reference::parse_normalized).transpose()?;
        let _ops = self.lock_ops();
        let mut txn = layers::Txn::default();
        let res = (|| {
            let image = layers::NewImage {
                layers: r.layers,
                manifest: r.manifest,
                parent: None,
                repo_digests: r.repo_digest.into_iter().collect(),
            };
            let meta = self.build_meta_unpacked(&config, image, unpacked, &mut txn)?;
            let id = meta.id.clone();
            self.commit_images(
                vec![meta],
                tag_ref.iter().map(|r| (r.full(), id.clone())).collect(),
            )?;
            Ok(id)
        })();
        if res.is_err() {
            self.rollback_txn(&txn);
        }
        res
    }

    /// Unpacked layer dirs of an image, top-most first; unpacks any missing one first.
    pub fn lowers(&self, id: &Digest) -> Result<Vec<PathBuf>> {
        let layers = self.image_layers(id)?;
        let missing = layers
            .iter()
            .any(|l| !self.snapshots.has_layer(&l.chain_id));
        if missing {
            let _ops = self.lock_ops();
            for l in &layers {
                if !self.snapshots.has_layer(&l.chain_id) {
                    self.unpack_layer_blob(&l.blob, &l.diff_id, &l.chain_id)?;
                }
            }
        }
        let mut dirs: Vec<PathBuf> = layers
            .iter()
            .map(|l| self.snapshots.layer_dir(&l.chain_id))
            .collect();
        dirs.reverse();
        Ok(dirs)
    }

    /// Loads a `docker save` archive (docker-archive and/or OCI layout). All or nothing.
    pub fn load(&self, r: impl Read, progress: &mut dyn FnMut(&str)) -> Result<Vec<LoadedImage>> {
        crate::archive::load(self, r, progress)
    }

    /// Writes images as a tar that is both a docker-archive and an OCI layout.
    pub fn save(&self, names: &[String], w: impl Write) -> Result<()> {
        crate::archive::save(self, names, w)
    }

    /// Imports a (possibly compressed) rootfs tar as a one-layer image.
    pub fn import(
        &self,
        r: impl Read,
        config: RunConfig,
        message: Option<String>,
        tag: Option<&str>,
    ) -> Result<Digest> {
        self.import_rootfs(r, config, message, tag)
    }

    #[allow(clippy::too_many_arguments)]
    /// Commits a container's upper dir as a new image on top of `parent`.
    pub fn commit(
        &self,
        upper: &Path,
        parent: Option<&Digest>,
        run_config: RunConfig,
        author: Option<String>,
        comment: Option<String>,
        created_by: String,
        tag: Option<&str>,
    ) -> Result<Digest> {
        self.commit_upper(upper, parent, run_config, author, comment, created_by, tag)
    }

    /// Docker's image history, newest first.
    pub fn history(&self, id: &Digest) -> Result<Vec<HistoryItem>> {
        let idx = self.read_index();
        let rec = Self::record(&idx, id).ok_or_else(|| ImageError::NotFound(id.to_string()))?;
        let (meta, _) = idx
            .images
            .get(id)
            .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
        Ok(history::build(&rec, meta))
    }
}

fn looks_like_hex(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
