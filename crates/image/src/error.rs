//! The one error type of the image crate.

/// Everything that can go wrong in the content store, image store, layers and snapshots.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image (or blob, layer...) does not exist; Display matches Docker's wording.
    #[error("No such image: {0}")]
    NotFound(String),
    /// A reference that does not follow Docker's grammar.
    #[error("{}", invalid_reference_message(.0))]
    InvalidReference(String),
    /// Content whose sha256 is not what was promised.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// A tar / archive that is malformed, truncated or inconsistent.
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    /// A layer or archive entry that would escape its destination directory.
    #[error("unsafe path in layer: {0}")]
    UnsafePath(String),
    /// The image is used (e.g. by a container); the message is Docker's full text.
    #[error("{0}")]
    InUse(String),
    /// Any other conflict (e.g. an ambiguous short id, an image with several tags).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Other(String),
}

/// Docker says plain "invalid reference format" when there is nothing more specific.
fn invalid_reference_message(detail: &str) -> String {
    if detail.is_empty() {
        "invalid reference format".to_string()
    } else {
        format!("invalid reference format: {detail}")
    }
}

impl ImageError {
    pub fn is_not_found(&self) -> bool {
        match self {
            ImageError::NotFound(_) => true,
            ImageError::Io(e) => e.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, ImageError::InUse(_) | ImageError::Conflict(_))
    }
}

impl From<rustix::io::Errno> for ImageError {
    fn from(e: rustix::io::Errno) -> Self {
        ImageError::Io(e.into())
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
