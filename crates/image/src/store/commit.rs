//! New images from a container's upper dir (commit) or a rootfs tar (import).

use std::fs;
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::layers::Txn;
use super::{ImageMeta, ImageStore, LayerMeta, MEDIA_TYPE_LAYER_GZIP};
use crate::config::{HistoryEntry, ImageConfig, RootFs, RunConfig};
use crate::digest::{chain_ids, Digest};
use crate::error::{ImageError, Result};
use crate::layer;
use crate::reference::Reference;

/// Go's name for this machine's architecture, as image configs use it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl ImageStore {
    pub(crate) fn import_rootfs(
        &self,
        r: impl Read,
        run_config: RunConfig,
        message: Option<String>,
        tag: Option<&str>,
    ) -> Result<Digest> {
        let tag_ref = tag.map(Reference::parse_normalized).transpose()?;
        let reader = layer::decompress_ref(r)?;
        let created = now_rfc3339();
        let config = ImageConfig {
            created: Some(created.clone()),
            architecture: go_arch().to_string(),
            os: "linux".to_string(),
            config: run_config,
            history: vec![HistoryEntry {
                created: Some(created),
                comment: Some(
                    message
                        .clone()
                        .unwrap_or_else(|| "Imported from -".to_string()),
                ),
                ..Default::default()
            }],
            comment: message,
            ..Default::default()
        };
        self.add_layer_image(reader, None, config, tag_ref)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit_upper(
        &self,
        upper: &Path,
        parent: Option<&Digest>,
        run_config: RunConfig,
        author: Option<String>,
        comment: Option<String>,
        created_by: String,
        tag: Option<&str>,
    ) -> Result<Digest> {
        self.commit_upper_as(
            upper, parent, run_config, author, comment, created_by, tag, true,
        )
    }

    /// `commit_upper`, with the layer blob gzip-compressed or kept as a plain tar.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn commit_upper_as(
        &self,
        upper: &Path,
        parent: Option<&Digest>,
        run_config: RunConfig,
        author: Option<String>,
        comment: Option<String>,
        created_by: String,
        tag: Option<&str>,
        gzip: bool,
    ) -> Result<Digest> {
        let tag_ref = tag.map(Reference::parse_normalized).transpose()?;
        let base = match parent {
            Some(p) => {
                let idx = self.read_index();
                let (meta, config) = idx
                    .images
                    .get(p)
                    .cloned()
                    .ok_or_else(|| ImageError::NotFound(p.to_string()))?;
                Some((meta, config))
            }
            None => None,
        };
        // The diff goes to a temp file first: the walk must finish before we hash it.
        let (tmp_path, mut tmp) = self.content.ingest_file()?;
        let res = (|| {
            layer::write_diff(upper, &mut tmp)?;
            tmp.flush()?;
            tmp.rewind()?;
            let created = now_rfc3339();
            let mut config = base
                .as_ref()
                .map(|(_, c)| c.clone())
                .unwrap_or_else(|| ImageConfig {
                    architecture: go_arch().to_string(),
                    os: "linux".to_string(),
                    ..Default::default()
                });
            config.extra.remove("container");
            config.extra.remove("container_config");
            config.created = Some(created.clone());
            config.author = author.clone();
            config.config = run_config;
            // `docker commit -m` shows as the image's Comment.
            config.comment = comment.clone();
            config.history.push(HistoryEntry {
                created: Some(created),
                created_by: Some(created_by),
                author,
                comment,
                empty_layer: None,
            });
            self.add_layer_image_as(&mut tmp, base.map(|(m, _)| m), config, tag_ref, gzip)
        })();
        drop(tmp);
        let _ = fs::remove_file(&tmp_path);
        res
    }

    /// Adds one layer (an uncompressed tar) on top of `parent` with `config`, and registers it.
    fn add_layer_image(
        &self,
        tar: impl Read,
        parent: Option<ImageMeta>,
        config: ImageConfig,
        tag: Option<Reference>,
    ) -> Result<Digest> {
        self.add_layer_image_as(tar, parent, config, tag, true)
    }

    fn add_layer_image_as(
        &self,
        tar: impl Read,
        parent: Option<ImageMeta>,
        mut config: ImageConfig,
        tag: Option<Reference>,
        gzip: bool,
    ) -> Result<Digest> {
        let _ops = self.lock_ops();
        let mut txn = Txn::default();
        let res = (|| {
            let (stats, blob, tmp) = self.ingest_layer_as(tar, &mut txn, gzip)?;
            let mut layers: Vec<LayerMeta> = parent
                .as_ref()
                .map(|p| p.layers.clone())
                .unwrap_or_default();
            let mut diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
            diff_ids.push(stats.diff_id.clone());
            let chain_id = chain_ids(&diff_ids)
                .pop()
                .ok_or_else(|| ImageError::Other("no layers".into()))?;
            self.publish_snapshot(&tmp, &chain_id, stats.size, &mut txn)?;
            layers.push(LayerMeta {
                diff_id: stats.diff_id,
                chain_id,
                blob,
                media_type: if gzip {
                    MEDIA_TYPE_LAYER_GZIP
                } else {
                    super::MEDIA_TYPE_LAYER_TAR
                }
                .to_string(),
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
                parent: parent.map(|p| p.id),
                repo_digests: Vec::new(),
            };
            self.commit_images(
                vec![meta],
                tag.iter().map(|r| (r.full(), id.clone())).collect(),
            )?;
            Ok(id)
        })();
        if res.is_err() {
            self.rollback_txn(&txn);
        }
        res
    }
}
