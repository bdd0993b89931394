//! Registry errors, with the messages Docker prints.

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// 401 from the registry or its token server.
    #[error("{0}")]
    Unauthorized(String),
    /// `manifest unknown`, `blob unknown`, `name unknown`.
    #[error("{0}")]
    NotFound(String),
    /// Any other answer the registry gave, with its distribution error text when present.
    #[error("{0}")]
    Registry(String),
    /// The registry could not be reached or the connection broke.
    #[error("{0}")]
    Transport(String),
    #[error("no matching manifest for {0} in the manifest list entries")]
    NoMatchingPlatform(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl RegistryError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound(_))
    }
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, RegistryError::Unauthorized(_))
    }
    /// Worth retrying (connection trouble, a 5xx, a digest mismatch of a broken stream).
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Transport(_))
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;
