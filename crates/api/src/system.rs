//! System and other-object endpoints (`/info`, `/version`, networks, volumes for `inspect`).

use crate::client::{Body, Client, ResponseStream};
use crate::error::Result;
use crate::models::{SystemInfo, SystemVersion};
use crate::query::{path_segment, Query};
use hyper::Method;

impl Client {
    pub async fn info(&self) -> Result<SystemInfo> {
        self.get_json("/info").await
    }

    pub async fn info_raw(&self) -> Result<serde_json::Value> {
        self.get_json("/info").await
    }

    /// `GET /events`: one JSON event per line, until `until` or until dropped.
    pub async fn events(&self, query: Query) -> Result<ResponseStream> {
        self.stream(
            Method::GET,
            &format!("/events{}", query.encode()),
            Body::Empty,
            &[],
        )
        .await
    }

    pub async fn version(&self) -> Result<SystemVersion> {
        self.get_json("/version").await
    }

    pub async fn network_inspect_raw(&self, name: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/networks/{}", path_segment(name)))
            .await
    }

    pub async fn volume_inspect_raw(&self, name: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/volumes/{}", path_segment(name)))
            .await
    }
}
