//! Push: blobs the registry has are skipped (HEAD), blobs of another repository of the same
//! registry are mounted, the rest stream from the content store; the manifest goes last.

use std::sync::Arc;

use berth_image::{Digest, ImageStore, Reference};
use bytes::Bytes;
use hyper::{Method, StatusCode};

use crate::error::{RegistryError, Result};
use crate::http::{distribution_error, read_body, Credentials, Endpoint, ReqBody, SentFn};
use crate::manifest::{build_manifest, AnyManifest, Descriptor};
use crate::{emit, scope, ProgressFn, RegistryConfig};

#[derive(Clone, Debug)]
pub struct PushOutcome {
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
}

/// Layers uploaded at once (Docker's default `max-concurrent-uploads` is 5).
const PARALLEL_UPLOADS: usize = 5;

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// Pushes the image named `r` (with its tag) to its registry.
pub async fn push(
    cfg: &RegistryConfig,
    store: Arc<ImageStore>,
    r: &Reference,
    creds: Option<Credentials>,
    progress: ProgressFn,
) -> Result<PushOutcome> {
    let tag = r
        .tag
        .clone()
        .unwrap_or_else(|| berth_image::reference::DEFAULT_TAG.to_string());
    let mut named = r.clone();
    named.tag = Some(tag.clone());
    named.digest = None;
    let img = store.resolve(&named.familiar()).map_err(|_| {
        RegistryError::NotFound(format!("tag does not exist: {}", named.familiar()))
    })?;
    let ep = cfg.endpoint(&r.domain, creds);
    emit(
        &progress,
        "",
        &format!("The push refers to repository [{}]", r.full_repository()),
        None,
    );
    let layers = store.image_layers(&img.id)?;
    // Another repository of the same registry that has these blobs (from earlier pulls/pushes).
    let mount_from: Option<String> = img
        .repo_digests
        .iter()
        .filter_map(|rd| rd.split_once('@').map(|(n, _)| n.to_string()))
        .filter_map(|n| Reference::parse(&n).ok())
        .find(|o| o.domain == r.domain && o.path != r.path)
        .map(|o| o.path);
    let sc = format!(
        "{}{}",
        scope(r, "pull,push"),
        mount_from
            .as_ref()
            .map(|m| format!(" repository:{m}:pull"))
            .unwrap_or_default()
    );
    for l in layers.iter().rev() {
        emit(&progress, &short(&l.blob), "Preparing", None);
    }
    // The config first: its small upload settles the auth handshake (one token, cached and
    // shared) before the layers go up in parallel.
    let config_size = store.content().size(&img.id)?;
    push_blob(
        &ep,
        &store,
        r,
        &img.id,
        config_size,
        mount_from.as_deref(),
        &sc,
        None,
    )
    .await?;
    let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL_UPLOADS));
    let shared = Arc::new(ep.clone_for_tasks());
    let mut tasks = Vec::new();
    for l in &layers {
        let size = store.content().size(&l.blob)?;
        let (ep, store, sem, progress, r) = (
            shared.clone(),
            store.clone(),
            sem.clone(),
            progress.clone(),
            r.clone(),
        );
        let (blob, from, sc) = (l.blob.clone(), mount_from.clone(), sc.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem
                .acquire()
                .await
                .map_err(|e| RegistryError::Registry(e.to_string()))?;
            let id = short(&blob);
            let st = push_blob(
                &ep,
                &store,
                &r,
                &blob,
                size,
                from.as_deref(),
                &sc,
                Some((&progress, &id)),
            )
            .await?;
            emit(&progress, &id, &st, None);
            Ok::<_, RegistryError>(size)
        }));
    }
    let mut descs = Vec::new();
    let mut first_err = None;
    for (l, t) in layers.iter().zip(tasks) {
        match t
            .await
            .map_err(|e| RegistryError::Registry(e.to_string()))
            .and_then(|r| r)
        {
            Ok(size) => descs.push(Descriptor {
                media_type: l.media_type.clone(),
                digest: l.blob.to_string(),
                size,
                platform: None,
            }),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }

    // The manifest: the pulled one if it describes this very image, else a new one.
    let stored = img.manifest.as_ref().and_then(|d| {
        let b = store.content().read(d).ok()?;
        let m = AnyManifest::parse(&b, "").ok()?;
        let same = m
            .config
            .as_ref()
            .is_some_and(|c| c.digest == img.id.as_str())
            && m.layers
                .iter()
                .map(|l| l.digest.as_str())
                .eq(descs.iter().map(|d| d.digest.as_str()));
        same.then_some((m.media_type, b))
    });
    let (media_type, bytes) = match stored {
        Some(x) => x,
        None => build_manifest(
            &Descriptor {
                media_type: String::new(),
                digest: img.id.to_string(),
                size: config_size,
                platform: None,
            },
            &descs,
        ),
    };
    let digest = Digest::from_bytes(&bytes);
    let size = bytes.len() as u64;
    let resp = ep
        .send(
            Method::PUT,
            &format!("/v2/{}/manifests/{tag}", r.path),
            &[("Content-Type", media_type)],
            ReqBody::Bytes(Bytes::from(bytes.clone())),
            &sc,
        )
        .await?;
    check(resp, r, "pushing the manifest").await?;
    let s = store.clone();
    let rd = format!("{}@{digest}", r.repository());
    let id = img.id.clone();
    let md = digest.clone();
    tokio::task::spawn_blocking(move || {
        s.content().put_reader(&bytes[..], Some(&md))?;
        s.add_repo_digest(&id, &rd)
    })
    .await
    .map_err(|e| RegistryError::Registry(e.to_string()))??;
    emit(
        &progress,
        "",
        &format!("{tag}: digest: {digest} size: {size}"),
        None,
    );
    Ok(PushOutcome { tag, digest, size })
}

async fn check(
    resp: hyper::Response<hyper::body::Incoming>,
    r: &Reference,
    what: &str,
) -> Result<()> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = read_body(resp).await?;
    let msg = distribution_error(status, &body);
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized(msg),
        StatusCode::NOT_FOUND => RegistryError::NotFound(msg),
        s if s.is_server_error() => {
            RegistryError::Transport(format!("{what} to {}: {msg}", r.domain))
        }
        _ => RegistryError::Registry(msg),
    })
}

/// One blob: HEAD, else mount, else a monolithic streamed upload. Returns Docker's status.
#[allow(clippy::too_many_arguments)]
async fn push_blob(
    ep: &Endpoint,
    store: &Arc<ImageStore>,
    r: &Reference,
    d: &Digest,
    size: u64,
    mount_from: Option<&str>,
    sc: &str,
    progress: Option<(&ProgressFn, &str)>,
) -> Result<String> {
    let resp = ep
        .send(
            Method::HEAD,
            &format!("/v2/{}/blobs/{d}", r.path),
            &[],
            ReqBody::Empty,
            sc,
        )
        .await?;
    if resp.status().is_success() {
        return Ok("Layer already exists".to_string());
    }
    if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized(
            "unauthorized: authentication required".to_string(),
        ));
    }
    let start = match mount_from {
        Some(from) => format!(
            "/v2/{}/blobs/uploads/?mount={d}&from={}",
            r.path,
            urlencoding::encode(from)
        ),
        None => format!("/v2/{}/blobs/uploads/", r.path),
    };
    let resp = ep
        .send(Method::POST, &start, &[], ReqBody::Empty, sc)
        .await?;
    if let (StatusCode::CREATED, Some(from)) = (resp.status(), mount_from) {
        return Ok(format!("Mounted from {from}"));
    }
    if resp.status() != StatusCode::ACCEPTED {
        check(resp, r, "starting an upload").await?;
        return Err(RegistryError::Registry(
            "registry did not start an upload".into(),
        ));
    }
    let loc = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Registry("upload started without a Location".into()))?
        .to_string();
    let url = ep.absolute(&loc, &format!("{}{start}", ep.base()));
    let url = format!(
        "{url}{}digest={}",
        if url.contains('?') { '&' } else { '?' },
        urlencoding::encode(d.as_str())
    );
    let sent = progress.map(|(p, id)| {
        emit(p, id, "Pushing", Some((0, size)));
        let (p, id) = (p.clone(), id.to_string());
        SentFn(Arc::new(move |n| emit(&p, &id, "Pushing", Some((n, size)))))
    });
    let resp = ep
        .send(
            Method::PUT,
            &url,
            &[("Content-Type", "application/octet-stream".to_string())],
            ReqBody::File(store.content().path(d), size, sent),
            sc,
        )
        .await?;
    check(resp, r, "uploading a blob").await?;
    Ok("Pushed".to_string())
}
