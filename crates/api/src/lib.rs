//! berth-api: the Docker Engine API as Rust types, and a client that speaks it over a unix socket.
//!
//! The models are the Docker Engine API's own schema (generated from the same swagger that
//! `../shared/reference/docker-engine-api.yaml` is), re-exported as `berth_api::models`.
//! The client (`Client`) sends docker's requests over HTTP/1.1 on the daemon's unix socket,
//! and reads its streams: JSON progress messages (`jsonstream`), the multiplexed stdio
//! stream (`demux`), and hijacked attach/exec connections.
//! It is not: a server. The daemon uses these types; the CLI and compose use the client.

pub use bollard_stubs::models;

mod client;
mod containers;
pub mod demux;
mod error;
mod images;
pub mod jsonstream;
pub mod query;
mod system;

pub use client::{
    Body, Client, Frames, HijackReader, Hijacked, JsonMessages, JsonValues, ResponseStream,
    API_VERSION, DEFAULT_HOST,
};
pub use error::{ApiError, Result};
pub use hyper::Method;
pub use query::Query;
