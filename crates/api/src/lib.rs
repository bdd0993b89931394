//! berth-api: the Docker Engine API as Rust types, and a client that speaks it over a unix socket.
//!
//! The models are the Docker Engine API's own schema (generated from the same swagger that
//! `../shared/reference/docker-engine-api.yaml` is), re-exported as `berth_api::models`.
//! It is not: a server. The daemon uses these types; the CLI and compose use the client.

pub use bollard_stubs::models;
