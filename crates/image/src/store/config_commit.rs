//! What the builder commits: images that differ from their parent only in config (a
//! build's metadata-only steps: the parent's layers, a new config, and a history entry
//! marked `empty_layer`), and layers kept uncompressed.

use super::layers::Txn;
use super::{ImageMeta, ImageStore};
use crate::config::{HistoryEntry, ImageConfig, RootFs, RunConfig};
use crate::digest::Digest;
use crate::error::{ImageError, Result};

impl ImageStore {
    /// A build step's layer: like `commit`, with the blob kept as an uncompressed tar (as
    /// Docker keeps local layers; compressing belongs to push) so builds are not bound by
    /// gzip.
    pub fn commit_build_layer(
        &self,
        upper: &std::path::Path,
        parent: Option<&Digest>,
        run_config: RunConfig,
        created_by: String,
    ) -> Result<Digest> {
        self.commit_upper_as(
            upper, parent, run_config, None, None, created_by, None, false,
        )
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
