//! Container and exec endpoints (`/containers/...`, `/exec/...`).

use hyper::Method;

use crate::client::{Body, Client, Hijacked, ResponseStream};
use crate::error::Result;
use crate::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerTopResponse,
    ContainerUpdateResponse, ContainerWaitResponse, ExecInspectResponse, FilesystemChange,
    IdResponse,
};
use crate::query::{path_segment, Query};

impl Client {
    /// `POST /containers/create[?name=]` with docker's create body (Config + HostConfig +
    /// NetworkingConfig flattened), as a JSON value so every field docker sends is kept.
    pub async fn container_create(
        &self,
        name: Option<&str>,
        platform: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<ContainerCreateResponse> {
        let q = Query::new().opt("name", name).opt("platform", platform);
        self.post_json(
            &format!("/containers/create{}", q.encode()),
            Body::json(body)?,
        )
        .await
    }

    /// `GET /containers/json`.
    pub async fn container_list(&self, query: Query) -> Result<Vec<ContainerSummary>> {
        self.get_json(&format!("/containers/json{}", query.encode()))
            .await
    }

    /// `GET /containers/{id}/json` as the typed model.
    pub async fn container_inspect(&self, id: &str) -> Result<ContainerInspectResponse> {
        self.get_json(&format!("/containers/{}/json", path_segment(id)))
            .await
    }

    /// `GET /containers/{id}/json` verbatim (for `inspect` output, which must not drop fields).
    pub async fn container_inspect_raw(&self, id: &str, size: bool) -> Result<serde_json::Value> {
        let q = Query::new().flag("size", size);
        self.get_json(&format!(
            "/containers/{}/json{}",
            path_segment(id),
            q.encode()
        ))
        .await
    }

    pub async fn container_start(&self, id: &str, detach_keys: Option<&str>) -> Result<()> {
        let q = Query::new().opt("detachKeys", detach_keys);
        self.call(
            Method::POST,
            &format!("/containers/{}/start{}", path_segment(id), q.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn container_stop(
        &self,
        id: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let q = Query::new()
            .opt("signal", signal)
            .opt("t", timeout.map(|t| t.to_string()).as_deref());
        self.call(
            Method::POST,
            &format!("/containers/{}/stop{}", path_segment(id), q.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn container_restart(
        &self,
        id: &str,
        signal: Option<&str>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let q = Query::new()
            .opt("signal", signal)
            .opt("t", timeout.map(|t| t.to_string()).as_deref());
        self.call(
            Method::POST,
            &format!("/containers/{}/restart{}", path_segment(id), q.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn container_kill(&self, id: &str, signal: Option<&str>) -> Result<()> {
        let q = Query::new().opt("signal", signal);
        self.call(
            Method::POST,
            &format!("/containers/{}/kill{}", path_segment(id), q.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn container_remove(
        &self,
        id: &str,
        force: bool,
        volumes: bool,
        link: bool,
    ) -> Result<()> {
        let q = Query::new()
            .flag("force", force)
            .flag("link", link)
            .flag("v", volumes);
        self.call(
            Method::DELETE,
            &format!("/containers/{}{}", path_segment(id), q.encode()),
            Body::Empty,
        )
        .await
    }

    /// `POST /containers/{id}/wait?condition=` — returns when the condition is met.
    pub async fn container_wait(
        &self,
        id: &str,
        condition: Option<&str>,
    ) -> Result<ContainerWaitResponse> {
        let q = Query::new().opt("condition", condition);
        self.post_json(
            &format!("/containers/{}/wait{}", path_segment(id), q.encode()),
            Body::Empty,
        )
        .await
    }

    /// `POST /containers/{id}/wait` sent now, answered later: the daemon has registered the
    /// wait when this returns, so a following `start` cannot race past it (docker's order).
    pub async fn container_wait_begin(
        &self,
        id: &str,
        condition: Option<&str>,
    ) -> Result<impl std::future::Future<Output = Result<ContainerWaitResponse>>> {
        let q = Query::new().opt("condition", condition);
        // The daemon sends the headers at once and the body at the exit.
        let resp = self
            .send(
                Method::POST,
                &format!("/containers/{}/wait{}", path_segment(id), q.encode()),
                Body::Empty,
                &[],
            )
            .await?;
        Ok(crate::client::decode_json(resp))
    }

    pub async fn container_attach(&self, id: &str, query: Query) -> Result<Hijacked> {
        self.upgrade(
            &format!("/containers/{}/attach{}", path_segment(id), query.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn container_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let q = Query::new()
            .set("h", height.to_string())
            .set("w", width.to_string());
        self.call(
            Method::POST,
            &format!("/containers/{}/resize{}", path_segment(id), q.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn container_logs(&self, id: &str, query: Query) -> Result<ResponseStream> {
        self.stream(
            Method::GET,
            &format!("/containers/{}/logs{}", path_segment(id), query.encode()),
            Body::Empty,
            &[],
        )
        .await
    }

    pub async fn container_top(
        &self,
        id: &str,
        ps_args: Option<&str>,
    ) -> Result<ContainerTopResponse> {
        let q = Query::new().opt("ps_args", ps_args);
        self.get_json(&format!(
            "/containers/{}/top{}",
            path_segment(id),
            q.encode()
        ))
        .await
    }

    pub async fn container_rename(&self, id: &str, name: &str) -> Result<()> {
        let q = Query::new().set("name", name);
        self.call(
            Method::POST,
            &format!("/containers/{}/rename{}", path_segment(id), q.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn container_pause(&self, id: &str) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/containers/{}/pause", path_segment(id)),
            Body::Empty,
        )
        .await
    }

    pub async fn container_unpause(&self, id: &str) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/containers/{}/unpause", path_segment(id)),
            Body::Empty,
        )
        .await
    }

    pub async fn container_changes(&self, id: &str) -> Result<Option<Vec<FilesystemChange>>> {
        self.get_json(&format!("/containers/{}/changes", path_segment(id)))
            .await
    }

    pub async fn container_export(&self, id: &str) -> Result<ResponseStream> {
        self.stream(
            Method::GET,
            &format!("/containers/{}/export", path_segment(id)),
            Body::Empty,
            &[],
        )
        .await
    }

    pub async fn container_update(
        &self,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<ContainerUpdateResponse> {
        self.post_json(
            &format!("/containers/{}/update", path_segment(id)),
            Body::json(body)?,
        )
        .await
    }

    /// `GET /containers/{id}/archive?path=` — a tar of the path.
    pub async fn container_archive_get(&self, id: &str, path: &str) -> Result<ResponseStream> {
        let q = Query::new().set("path", path);
        self.stream(
            Method::GET,
            &format!("/containers/{}/archive{}", path_segment(id), q.encode()),
            Body::Empty,
            &[],
        )
        .await
    }

    /// `PUT /containers/{id}/archive?path=` — extract a tar into the container.
    pub async fn container_archive_put(&self, id: &str, path: &str, tar: Body) -> Result<()> {
        let q = Query::new()
            .set("noOverwriteDirNonDir", "true")
            .set("path", path);
        self.call(
            Method::PUT,
            &format!("/containers/{}/archive{}", path_segment(id), q.encode()),
            tar,
        )
        .await
    }

    pub async fn container_stats(&self, id: &str, stream: bool) -> Result<ResponseStream> {
        let q = Query::new().set("stream", if stream { "1" } else { "0" });
        self.stream(
            Method::GET,
            &format!("/containers/{}/stats{}", path_segment(id), q.encode()),
            Body::Empty,
            &[],
        )
        .await
    }

    /// `POST /commit`.
    pub async fn commit(&self, query: Query) -> Result<IdResponse> {
        self.post_json(&format!("/commit{}", query.encode()), Body::Empty)
            .await
    }

    /// `POST /containers/{id}/exec` with docker's exec body.
    pub async fn exec_create(&self, id: &str, body: &serde_json::Value) -> Result<IdResponse> {
        self.post_json(
            &format!("/containers/{}/exec", path_segment(id)),
            Body::json(body)?,
        )
        .await
    }

    /// `POST /exec/{id}/start` attached: hijacks the connection.
    pub async fn exec_start_attached(
        &self,
        exec_id: &str,
        body: &serde_json::Value,
    ) -> Result<Hijacked> {
        self.upgrade(
            &format!("/exec/{}/start", path_segment(exec_id)),
            Body::json(body)?,
        )
        .await
    }

    /// `POST /exec/{id}/start` with `Detach: true`.
    pub async fn exec_start_detached(&self, exec_id: &str, body: &serde_json::Value) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/exec/{}/start", path_segment(exec_id)),
            Body::json(body)?,
        )
        .await
    }

    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let q = Query::new()
            .set("h", height.to_string())
            .set("w", width.to_string());
        self.call(
            Method::POST,
            &format!("/exec/{}/resize{}", path_segment(exec_id), q.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        self.get_json(&format!("/exec/{}/json", path_segment(exec_id)))
            .await
    }
}
