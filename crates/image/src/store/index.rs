//! What the store persists per image (besides the config blob itself).

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// `image/images/<id-hex>.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ImageMeta {
    pub id: Digest,
    pub layers: Vec<LayerMeta>,
    #[serde(default)]
    pub manifest: Option<Digest>,
    #[serde(default)]
    pub parent: Option<Digest>,
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

/// One layer of an image, bottom-most first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerMeta {
    pub diff_id: Digest,
    pub chain_id: Digest,
    /// The blob as stored (compressed or not), what save and push send.
    pub blob: Digest,
    pub media_type: String,
    /// Bytes of file content unpacked.
    pub size: u64,
}
