//! Image, registry and auth endpoints (`/images/...`, `/auth`).

use hyper::Method;

use crate::client::{Body, Client, ResponseStream};
use crate::error::Result;
use crate::models::{
    HistoryResponseItem, ImageDeleteResponseItem, ImagePruneResponse, ImageSearchResponseItem,
    ImageSummary, SystemAuthResponse,
};
use crate::query::{path_segment, Query};

impl Client {
    pub async fn image_list(&self, query: Query) -> Result<Vec<ImageSummary>> {
        self.get_json(&format!("/images/json{}", query.encode()))
            .await
    }

    /// `GET /images/{name}/json` verbatim.
    pub async fn image_inspect_raw(&self, name: &str) -> Result<serde_json::Value> {
        self.get_json(&format!("/images/{}/json", path_segment(name)))
            .await
    }

    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryResponseItem>> {
        self.get_json(&format!("/images/{}/history", path_segment(name)))
            .await
    }

    pub async fn image_tag(&self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let q = Query::new().set("repo", repo).opt("tag", tag);
        self.call(
            Method::POST,
            &format!("/images/{}/tag{}", path_segment(source), q.encode()),
            Body::Empty,
        )
        .await
    }

    pub async fn image_remove(
        &self,
        name: &str,
        force: bool,
        no_prune: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let q = Query::new().flag("force", force).flag("noprune", no_prune);
        let resp = self
            .send(
                Method::DELETE,
                &format!("/images/{}{}", path_segment(name), q.encode()),
                Body::Empty,
                &[],
            )
            .await?;
        crate::client::decode_json(resp).await
    }

    pub async fn image_prune(&self, query: Query) -> Result<ImagePruneResponse> {
        self.post_json(&format!("/images/prune{}", query.encode()), Body::Empty)
            .await
    }

    /// `POST /images/load` with a tar stream; the answer is a JSON-message stream.
    pub async fn image_load(&self, tar: Body, quiet: bool) -> Result<ResponseStream> {
        let q = Query::new().flag("quiet", quiet);
        self.stream(
            Method::POST,
            &format!("/images/load{}", q.encode()),
            tar,
            &[],
        )
        .await
    }

    /// `GET /images/get?names=...` — a tar of the images.
    pub async fn image_save(&self, names: &[String]) -> Result<ResponseStream> {
        let q = names
            .iter()
            .fold(Query::new(), |q, n| q.set("names", n.as_str()));
        self.stream(
            Method::GET,
            &format!("/images/get{}", q.encode()),
            Body::Empty,
            &[],
        )
        .await
    }

    /// `POST /images/create?fromSrc=-` (import) or `?fromImage=` (pull); a JSON-message stream.
    pub async fn image_create(
        &self,
        query: Query,
        body: Body,
        registry_auth: Option<&str>,
    ) -> Result<ResponseStream> {
        let headers: Vec<(&str, &str)> = registry_auth
            .map(|a| vec![("X-Registry-Auth", a)])
            .unwrap_or_default();
        self.stream(
            Method::POST,
            &format!("/images/create{}", query.encode()),
            body,
            &headers,
        )
        .await
    }

    /// `POST /images/{name}/push[?tag=]`; a JSON-message stream.
    pub async fn image_push(
        &self,
        name: &str,
        tag: Option<&str>,
        registry_auth: &str,
    ) -> Result<ResponseStream> {
        let q = Query::new().opt("tag", tag);
        self.stream(
            Method::POST,
            &format!("/images/{}/push{}", path_segment(name), q.encode()),
            Body::Empty,
            &[("X-Registry-Auth", registry_auth)],
        )
        .await
    }

    pub async fn image_search(
        &self,
        query: Query,
        registry_auth: &str,
    ) -> Result<Vec<ImageSearchResponseItem>> {
        let resp = self
            .send(
                Method::GET,
                &format!("/images/search{}", query.encode()),
                Body::Empty,
                &[("X-Registry-Auth", registry_auth)],
            )
            .await?;
        crate::client::decode_json(resp).await
    }

    /// `POST /auth` with `{"username","password","serveraddress"}`.
    pub async fn auth(&self, body: &serde_json::Value) -> Result<SystemAuthResponse> {
        self.post_json("/auth", Body::json(body)?).await
    }
}
