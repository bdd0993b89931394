//! berth-registry: the OCI distribution client. Pulls images into berth's image store
//! (manifest lists resolved for a platform, layers fetched in parallel, each unpacked while
//! it streams in and verified against its digest at the end, blobs already present skipped,
//! partial downloads resumed with Range requests, also after a restart, and stalled ones
//! cut after `RegistryConfig::stall_timeout`), pushes them back (HEAD
//! to skip, cross-repository mount, streamed uploads, manifest last), and does the auth
//! handshake (anonymous, basic, bearer tokens cached per scope).
//!
//! It is not: an HTTP server, nor a place for image-store logic (that is `berth-image`).
//!
//! Why hyper and not `oci-client`: the workspace already builds hyper's HTTP/1 client; the
//! pull writes straight into berth's content store (verifying digests as it writes, resuming
//! partial layers with Range requests) from a streaming body, and reports Docker's per-layer
//! progress, which needs the byte stream in our hands; oci-client would add reqwest to a
//! 2-core build. TLS is rustls with the ring provider (`tls`): aws-lc-rs needs cmake.

pub mod error;
pub mod http;
mod manifest;
mod partial;
mod pull;
mod push;
pub mod tls;

pub use error::{RegistryError, Result};
pub use http::Credentials;
pub use manifest::Platform;
pub use pull::{pull, PullOutcome};
pub use push::{push, PushOutcome};

use std::net::IpAddr;

use berth_image::Reference;
use hyper::{Method, StatusCode};

use crate::http::{distribution_error, read_body, Endpoint, ReqBody, TlsPolicy};

/// Daemon-wide registry settings (`--registry-mirror`, `--insecure-registry`, the certs.d).
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    pub mirrors: Vec<String>,
    pub insecure: Vec<String>,
    /// `<dir>/<host[:port]>/{*.crt,*.cert,*.key}` (Docker's /etc/docker/certs.d layout);
    /// None reads no per-registry certificates.
    pub certs_dir: Option<std::path::PathBuf>,
    /// A blob download that receives nothing for this long is cut, then resumed or failed
    /// (None: `DEFAULT_STALL_TIMEOUT`).
    pub stall_timeout: Option<std::time::Duration>,
}

/// How long a pull waits for a registry that stopped sending mid-blob.
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One progress line, as Docker's JSON message stream carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Short layer id ("a1b2c3d4e5f6"), a tag, or empty.
    pub id: String,
    pub status: String,
    /// (current, total) bytes.
    pub bytes: Option<(u64, u64)>,
}

/// Receives progress lines; called from async tasks and blocking threads alike.
pub type ProgressFn = std::sync::Arc<dyn Fn(Progress) + Send + Sync>;

pub(crate) fn emit(p: &ProgressFn, id: &str, status: &str, bytes: Option<(u64, u64)>) {
    p(Progress {
        id: id.to_string(),
        status: status.to_string(),
        bytes,
    })
}

fn is_loopback_host(domain: &str) -> bool {
    let host = match domain.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => domain,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Whether `domain` ("10.1.2.3:5000", "[fd00::1]:5000") is an IP address inside `cidr`.
fn in_cidr(cidr: &str, domain: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    let host = match domain.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => domain,
    };
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

impl RegistryConfig {
    pub fn stall_timeout(&self) -> std::time::Duration {
        self.stall_timeout.unwrap_or(DEFAULT_STALL_TIMEOUT)
    }

    /// Loopback registries (as Docker) and those named insecure: certificates not verified,
    /// plain HTTP when https fails.
    /// Entries are `host[:port]` or a CIDR (`10.0.0.0/8`) that an IP address host falls in.
    pub fn is_insecure(&self, domain: &str) -> bool {
        is_loopback_host(domain)
            || self.insecure.iter().any(|i| {
                let i = i
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/');
                i == domain || in_cidr(i, domain)
            })
    }

    /// The endpoints to try for a registry domain, mirrors first (docker.io only). https
    /// unless a mirror says otherwise; insecure ones fall back to HTTP (see `Endpoint`).
    pub fn endpoints(&self, domain: &str) -> Vec<String> {
        let mut out = Vec::new();
        if domain == berth_image::reference::DEFAULT_DOMAIN {
            out.extend(self.mirrors.iter().map(|m| {
                let m = m.trim_end_matches('/');
                if m.contains("://") {
                    m.to_string()
                } else {
                    format!("https://{m}")
                }
            }));
            out.push("https://registry-1.docker.io".to_string());
        } else {
            out.push(format!("https://{domain}"));
        }
        out
    }

    /// The endpoint at `base` for `domain`, with the TLS policy of `base`'s host.
    pub(crate) fn endpoint_at(
        &self,
        domain: &str,
        base: &str,
        creds: Option<Credentials>,
    ) -> Endpoint {
        let host = base.split_once("://").map(|(_, h)| h).unwrap_or(base);
        let host = host.split('/').next().unwrap_or(host);
        let tls = TlsPolicy {
            certs_dir: self.certs_dir.clone(),
            insecure: self.is_insecure(host),
        };
        Endpoint::new(domain, base, creds, tls)
    }

    pub(crate) fn endpoint(&self, domain: &str, creds: Option<Credentials>) -> Endpoint {
        let base = self
            .endpoints(domain)
            .pop()
            .unwrap_or_else(|| format!("https://{domain}"));
        self.endpoint_at(domain, &base, creds)
    }
}

/// The registry host of a `serveraddress` ("localhost:5000", "https://index.docker.io/v1/").
pub fn server_domain(server: &str) -> String {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let s = s.split('/').next().unwrap_or(s);
    match s {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => {
            berth_image::reference::DEFAULT_DOMAIN.to_string()
        }
        _ => s.to_string(),
    }
}

/// Checks credentials against a registry (`POST /auth`): `GET /v2/` with them.
pub async fn login(cfg: &RegistryConfig, server: &str, creds: Credentials) -> Result<()> {
    let domain = server_domain(server);
    let ep = cfg.endpoint(&domain, Some(creds));
    let resp = ep
        .send(Method::GET, "/v2/", &[], ReqBody::Empty, "")
        .await
        .map_err(|e| match e {
            RegistryError::Unauthorized(m) => RegistryError::Unauthorized(format!(
                "login attempt to {}/v2/ failed with status: 401 Unauthorized ({m})",
                ep.base()
            )),
            other => other,
        })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = read_body(resp).await?;
    if status == StatusCode::UNAUTHORIZED {
        return Err(RegistryError::Unauthorized(format!(
            "login attempt to {}/v2/ failed with status: 401 Unauthorized",
            ep.base()
        )));
    }
    Err(RegistryError::Registry(format!(
        "login attempt to {}/v2/ failed with status: {} ({})",
        ep.base(),
        status,
        distribution_error(status, &body)
    )))
}

/// One search result (`GET /images/search`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchResult {
    pub name: String,
    pub description: String,
    pub star_count: u64,
    pub is_official: bool,
}

/// Searches a private registry's catalog (`/v2/_catalog`) when `term` names a registry
/// (`localhost:5000/busy`); Docker Hub's search API otherwise.
pub async fn search(
    cfg: &RegistryConfig,
    term: &str,
    limit: usize,
    creds: Option<Credentials>,
) -> Result<Vec<SearchResult>> {
    let (domain, needle) = match term.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (
            berth_image::reference::DEFAULT_DOMAIN.to_string(),
            term.to_string(),
        ),
    };
    if domain == berth_image::reference::DEFAULT_DOMAIN {
        let url = format!(
            "https://index.docker.io/v1/search?q={}&n={limit}",
            urlencoding::encode(&needle)
        );
        let ep = cfg.endpoint_at(&domain, "https://index.docker.io", creds);
        let resp = ep.send(Method::GET, &url, &[], ReqBody::Empty, "").await?;
        let status = resp.status();
        let body = read_body(resp).await?;
        if !status.is_success() {
            return Err(RegistryError::Registry(format!(
                "Unexpected status code {}: {}",
                status.as_u16(),
                distribution_error(status, &body)
            )));
        }
        return parse_hub_search(&body, limit);
    }
    let ep = cfg.endpoint(&domain, creds);
    let resp = ep
        .send(
            Method::GET,
            "/v2/_catalog?n=1000",
            &[],
            ReqBody::Empty,
            "registry:catalog:*",
        )
        .await?;
    let status = resp.status();
    let body = read_body(resp).await?;
    if status == StatusCode::UNAUTHORIZED {
        return Err(RegistryError::Unauthorized(format!(
            "unauthorized: {}",
            distribution_error(status, &body).trim_start_matches("unauthorized: ")
        )));
    }
    if !status.is_success() {
        return Err(RegistryError::Registry(distribution_error(status, &body)));
    }
    #[derive(serde::Deserialize)]
    struct Catalog {
        #[serde(default)]
        repositories: Vec<String>,
    }
    let cat: Catalog = serde_json::from_slice(&body)
        .map_err(|e| RegistryError::Registry(format!("bad catalog answer: {e}")))?;
    Ok(cat
        .repositories
        .into_iter()
        .filter(|r| r.contains(needle.as_str()))
        .take(limit.max(1))
        .map(|r| SearchResult {
            name: format!("{domain}/{r}"),
            description: String::new(),
            star_count: 0,
            is_official: false,
        })
        .collect())
}

/// Docker Hub's `/v1/search` answer: `{"results":[{"name","description","star_count",
/// "is_official"}, …]}`.
fn parse_hub_search(body: &[u8], limit: usize) -> Result<Vec<SearchResult>> {
    #[derive(serde::Deserialize)]
    struct Hit {
        #[serde(default)]
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        star_count: u64,
        #[serde(default)]
        is_official: bool,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        results: Vec<Hit>,
    }
    let a: Answer = serde_json::from_slice(body)
        .map_err(|e| RegistryError::Registry(format!("bad search answer: {e}")))?;
    Ok(a.results
        .into_iter()
        .take(limit.max(1))
        .map(|h| SearchResult {
            name: h.name,
            description: h.description.unwrap_or_default(),
            star_count: h.star_count,
            is_official: h.is_official,
        })
        .collect())
}

/// `repository:<path>:<actions>`.
pub(crate) fn scope(r: &Reference, actions: &str) -> String {
    format!("repository:{}:{actions}", r.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_insecure() {
        let c = RegistryConfig::default();
        assert!(c.is_insecure("localhost:5000"));
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(!c.is_insecure("example.com:5000"));
        let c = RegistryConfig {
            insecure: vec!["example.com:5000".into()],
            ..Default::default()
        };
        assert!(c.is_insecure("example.com:5000"));
        let c = RegistryConfig {
            insecure: vec!["10.49.0.0/16".into(), "fd00::/8".into()],
            ..Default::default()
        };
        assert!(c.is_insecure("10.49.3.1:5000"));
        assert!(c.is_insecure("10.49.3.1"));
        assert!(!c.is_insecure("10.50.3.1:5000"));
        assert!(c.is_insecure("[fd00::1]:5000"));
        assert!(!c.is_insecure("example.com:5000"));
        assert_eq!(
            c.endpoints("example.com:5000"),
            vec!["https://example.com:5000"]
        );
    }

    #[test]
    fn parses_docker_hub_search_answers() {
        let body = br#"{"num_pages":1,"num_results":2,"page":1,"query":"busybox","results":[
            {"name":"busybox","description":"Busybox base image.","star_count":3400,"is_official":true,"is_automated":false},
            {"name":"radial/busyboxplus","description":null,"star_count":50,"is_official":false}]}"#;
        let r = parse_hub_search(body, 25).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            SearchResult {
                name: "busybox".into(),
                description: "Busybox base image.".into(),
                star_count: 3400,
                is_official: true,
            }
        );
        assert_eq!(r[1].description, "");
        assert_eq!(parse_hub_search(body, 1).unwrap().len(), 1);
        assert!(parse_hub_search(b"<html>", 1).is_err());
    }

    #[test]
    fn mirrors_first_for_docker_io() {
        let c = RegistryConfig {
            mirrors: vec!["http://127.0.0.1:9/".into()],
            ..Default::default()
        };
        assert_eq!(
            c.endpoints("docker.io"),
            vec!["http://127.0.0.1:9", "https://registry-1.docker.io"]
        );
        assert_eq!(server_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(server_domain("localhost:5000"), "localhost:5000");
    }
}
