//! The client's typed errors.

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The socket could not be reached (daemon not running, wrong path, no permission).
    #[error("Cannot connect to the berth daemon at unix://{socket}. Is the daemon running?")]
    Connect {
        socket: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered with an error status; `message` is its `{"message": ...}` body.
    #[error("{message}")]
    Status { status: u16, message: String },
    /// `-H` is not a `unix://` address.
    #[error("unsupported daemon host {0:?}: berth speaks to unix:///path/to.sock")]
    InvalidHost(String),
    /// The HTTP exchange itself failed.
    #[error("talking to the daemon: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built (bad header or path).
    #[error("building the request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The daemon's answer was not the JSON we expected.
    #[error("decoding the daemon's answer: {0}")]
    Json(#[from] serde_json::Error),
    /// The daemon refused to hijack the connection for attach/exec.
    #[error("the daemon did not upgrade the connection (HTTP {0})")]
    NoUpgrade(u16),
    /// Reading or writing a stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ApiError {
    /// The HTTP status of a daemon error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 from the daemon ("No such container/image/...").
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;
