//! berth-image: where images live on disk.
//!
//! It owns the content store (blobs by digest, verified on write), image configs and
//! manifests, references (tags), layer unpacking into snapshots (with OCI whiteouts turned
//! into overlayfs whiteouts, and never writing outside the snapshot), layer diffs of a
//! container's upper dir (for commit), container snapshots (overlayfs rootfs), and the
//! archive formats (docker-archive and OCI layout for save/load, plain rootfs tars for
//! import/export).
//!
//! It is not: an HTTP server, a registry client, or a container runtime. A reader of
//! `content/` never needs to know about snapshots.
//!
//! All operations are blocking (filesystem work); async callers use `spawn_blocking`.
//! `ImageStore` is `Send + Sync` and safe to share between threads.

pub mod archive;
pub mod config;
pub mod content;
pub mod digest;
pub mod error;
pub mod layer;
pub mod reference;
pub mod snapshot;
pub mod store;

pub use config::{HistoryEntry, ImageConfig, RootFs, RunConfig};
pub use content::ContentStore;
pub use digest::Digest;
pub use error::ImageError;
pub use reference::Reference;
pub use snapshot::{ContainerSnapshot, Snapshotter};
pub use store::{ImageRecord, ImageStore, LoadedImage};
