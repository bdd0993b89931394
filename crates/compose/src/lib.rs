//! berth-compose: the compose file model (compose-spec), interpolation, `.env` files,
//! `-f` merging, profiles, `extends`, and the resolved project with per-service config hashes.
//!
//! It is not: the executor (that talks to the engine through `berth_api::Client`, in the CLI).

pub mod cast;
pub mod dotenv;
pub mod include;
pub mod interp;
pub mod load;
pub mod merge;
pub mod model;

pub use load::{load_project, Options, Project};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Interpolation(String),
    /// `${VAR:?msg}` with VAR unset or empty: compose prints the message.
    #[error("required variable {0} is missing a value: {1}")]
    RequiredVariable(String, String),
    #[error("env file {0}")]
    EnvFile(String),
    #[error("{path}: {message}")]
    Yaml { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
