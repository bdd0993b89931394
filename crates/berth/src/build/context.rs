//! The incremental context upload of berth's own CLI: the entries' metadata first, then a
//! tar of only the files the daemon lacks (see `berth_build::context`).

use std::collections::HashSet;
use std::path::Path;

use berth_api::{Body, Client, Method, ResponseStream};
use berth_build::{context, dockerignore};

/// Tries found when the kept context changes under us (another build with the same key).
const TRIES: usize = 3;

/// Sends the context of `dir` and starts the build (`query` is `/build`'s, encoded).
/// `None` when the daemon or the context needs the classic tar.
pub async fn send(
    client: &Client,
    dir: &Path,
    ignore: &dockerignore::Matcher,
    dockerfile: Option<String>,
    query: &str,
) -> anyhow::Result<Option<ResponseStream>> {
    let key = context::key_for(dir);
    for attempt in 1..=TRIES {
        let Some(files) = context::scan(dir, ignore)? else {
            return Ok(None);
        };
        let manifest = context::Manifest {
            entries: files.iter().map(|(e, _)| e.clone()).collect(),
            dockerfile: dockerfile.clone(),
        };
        #[derive(serde::Deserialize)]
        struct Want {
            want: Vec<String>,
        }
        let want: Want = match client
            .post_json(
                &format!("/berth/build/context?key={key}"),
                Body::json(&manifest)?,
            )
            .await
        {
            Ok(w) => w,
            // Not a berth daemon (or an older one): the classic tar.
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let want: HashSet<String> = want.want.into_iter().collect();
        let tar = context::upload_tar(&manifest, &files, &want)?;
        let sep = if query.is_empty() { "?" } else { "&" };
        match client
            .stream(
                Method::POST,
                &format!("/build{query}{sep}berthcontext={key}"),
                Body::Bytes(tar.into(), "application/x-tar"),
                &[],
            )
            .await
        {
            Ok(s) => return Ok(Some(s)),
            Err(e) if e.status() == Some(409) && attempt < TRIES => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("the build context kept changing while it was sent")
}
