//! `berth build`: sends the context (a tar filtered by `.dockerignore`) to `POST /build` and
//! prints the classic builder's log; `--check` parses and lints client-side only.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_api::{Body, Client, Method, Query};
use berth_build::{dockerignore, instructions, lint, parser};
use clap::Args;

use crate::errors::ExitStatus;

mod context;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Check the Dockerfile for problems without building
    #[arg(long)]
    pub check: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    pub network: Option<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    pub force_rm: bool,
    /// Build context: a directory, or "-" for a tar (or a Dockerfile) on stdin
    pub context: String,
}

/// The Dockerfile's name in messages and its content.
struct DockerfileSource {
    display: String,
    content: String,
    /// Where it lives relative to the context root, when it is inside the context.
    in_context: Option<String>,
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut v = Vec::new();
    std::io::stdin()
        .read_to_end(&mut v)
        .context("reading stdin")?;
    Ok(v)
}

fn rel_in(context: &Path, file: &Path) -> Option<String> {
    let c = std::fs::canonicalize(context).ok()?;
    let f = std::fs::canonicalize(file).ok()?;
    f.strip_prefix(&c)
        .ok()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
}

/// Prints the check result; `Err(ExitStatus)` with code 1 on a parse error.
fn check(df_src: &DockerfileSource, ignore: Option<&str>) -> anyhow::Result<i32> {
    let name = &df_src.display;
    let fail = |line: usize, m: &str| -> anyhow::Result<i32> {
        Err(ExitStatus {
            code: 1,
            message: Some(format!("{name}:{line}: {m}")),
        }
        .into())
    };
    let df = match parser::parse(&df_src.content) {
        Ok(d) => d,
        Err(e) => return fail(e.line, &e.message),
    };
    let build = match instructions::parse(&df) {
        Ok(b) => b,
        Err(e) => return fail(e.line, &e.message),
    };
    if let Some(ig) = ignore {
        if let Err(e) = dockerignore::Matcher::new(&dockerignore::read(ig)) {
            return Err(ExitStatus {
                code: 1,
                message: Some(format!(".dockerignore: {e}")),
            }
            .into());
        }
    }
    let warnings = lint::lint(&df, &build);
    let mut out = std::io::stdout().lock();
    match warnings.len() {
        0 => writeln!(out, "Check complete, no warnings found.")?,
        1 => writeln!(out, "Check complete, 1 warning has been found!")?,
        n => writeln!(out, "Check complete, {n} warnings have been found!")?,
    }
    for w in &warnings {
        writeln!(out, "{name}:{}: WARN: {}: {}", w.line, w.rule, w.message)?;
    }
    Ok(0)
}

/// Adds the files of `root` not excluded by `ignore` to a tar, in Docker's walk order.
fn tar_context(root: &Path, ignore: &dockerignore::Matcher) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    fn walk(
        b: &mut tar::Builder<Vec<u8>>,
        root: &Path,
        rel: &str,
        ignore: &dockerignore::Matcher,
    ) -> anyhow::Result<()> {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type()?;
            let excluded = ignore.matches(&r);
            if excluded && !(ft.is_dir() && ignore.has_exclusions()) {
                continue;
            }
            if !excluded {
                b.append_path_with_name(e.path(), &r)
                    .with_context(|| format!("adding {r} to the context"))?;
            }
            if ft.is_dir() {
                walk(b, root, &r, ignore)?;
            }
        }
        Ok(())
    }
    walk(&mut b, root, "", ignore)?;
    Ok(b.into_inner()?)
}

fn append_file(data: Vec<u8>, name: &str, content: &[u8]) -> anyhow::Result<Vec<u8>> {
    // Re-open the archive to append: drop the two zero end blocks, add the entry.
    let mut b = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(&data[..]);
    for e in a.entries()? {
        let mut e = e?;
        let h = e.header().clone();
        b.append(&h, &mut e)?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o600);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, content)?;
    Ok(b.into_inner()?)
}

pub async fn build(client: &Client, a: BuildArgs) -> anyhow::Result<i32> {
    let stdin_context = a.context == "-";
    let stdin_dockerfile = a.file.as_deref() == Some("-");
    if stdin_context && stdin_dockerfile {
        bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    let ctx_dir = PathBuf::from(&a.context);
    if !stdin_context && !ctx_dir.is_dir() {
        bail!("unable to prepare context: path {:?} not found", a.context);
    }
    // The context tar (or the Dockerfile, when stdin is not a tar) from stdin.
    let stdin_data = if stdin_context || stdin_dockerfile {
        Some(read_stdin()?)
    } else {
        None
    };
    let stdin_is_tar = stdin_context
        && stdin_data
            .as_ref()
            .is_some_and(|d| d.len() >= 512 && &d[257..262] == b"ustar");
    let df_src = if stdin_dockerfile || (stdin_context && !stdin_is_tar) {
        // A Dockerfile on stdin (`-f -`, or `-` that is not a tar: no context files).
        DockerfileSource {
            display: "Dockerfile".into(),
            content: String::from_utf8_lossy(stdin_data.as_deref().unwrap_or_default()).into(),
            in_context: None,
        }
    } else if stdin_context {
        // The Dockerfile is inside the tar.
        let want = a.file.clone().unwrap_or_else(|| "Dockerfile".into());
        let mut content = None;
        if let Some(d) = &stdin_data {
            let mut ar = tar::Archive::new(&d[..]);
            for e in ar.entries()? {
                let mut e = e?;
                let p = e
                    .path()?
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_string();
                if p == want {
                    let mut s = String::new();
                    e.read_to_string(&mut s)?;
                    content = Some(s);
                    break;
                }
            }
        }
        DockerfileSource {
            display: want.clone(),
            content: content.unwrap_or_default(),
            in_context: Some(want),
        }
    } else {
        let path = match &a.file {
            Some(f) => PathBuf::from(f),
            None => ctx_dir.join("Dockerfile"),
        };
        let content = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: {}: {e}",
                path.display()
            )
        })?;
        DockerfileSource {
            display: a.file.clone().unwrap_or_else(|| "Dockerfile".into()),
            content,
            in_context: rel_in(&ctx_dir, &path),
        }
    };
    let ignore_text = if stdin_context {
        None
    } else {
        std::fs::read_to_string(ctx_dir.join(".dockerignore")).ok()
    };
    if a.check {
        return check(&df_src, ignore_text.as_deref());
    }

    // The context: berth's daemon keeps the last one and takes only what changed; anything
    // else (stdin, a daemon without that endpoint) gets the whole context as a tar.
    let mut dockerfile_param = df_src.in_context.clone();
    let matcher = if stdin_is_tar {
        None
    } else {
        let mut patterns = ignore_text
            .as_deref()
            .map(dockerignore::read)
            .unwrap_or_default();
        if !stdin_context {
            // Docker keeps the Dockerfile and .dockerignore in the context even when ignored.
            let m = dockerignore::Matcher::new(&patterns)?;
            if m.matches(".dockerignore") {
                patterns.push("!.dockerignore".into());
            }
            if let Some(rel) = &df_src.in_context {
                if m.matches(rel) {
                    patterns.push(format!("!{rel}"));
                }
            }
        }
        Some(
            dockerignore::Matcher::new(&patterns)
                .map_err(|e| anyhow::anyhow!("error checking context: {e}"))?,
        )
    };
    let mut q = Query::new()
        .opt("target", a.target.as_deref())
        .opt("platform", a.platform.as_deref())
        .opt("networkmode", a.network.as_deref())
        .flag("nocache", a.no_cache)
        .flag("pull", a.pull)
        .flag("q", a.quiet)
        .flag("forcerm", a.force_rm)
        .set("rm", if a.rm { "1" } else { "0" });
    for t in &a.tags {
        q = q.set("t", t.as_str());
    }
    let mut build_args = serde_json::Map::new();
    for ba in &a.build_args {
        match ba.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.into(), v.into());
            }
            // `--build-arg NAME` takes the value from the environment, or is left out.
            None => {
                if let Ok(v) = std::env::var(ba) {
                    build_args.insert(ba.clone(), v.into());
                }
            }
        }
    }
    if !build_args.is_empty() {
        q = q.set(
            "buildargs",
            serde_json::Value::Object(build_args).to_string(),
        );
    }
    let mut labels = serde_json::Map::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.into(), v.into());
    }
    if !labels.is_empty() {
        q = q.set("labels", serde_json::Value::Object(labels).to_string());
    }
    let incremental = match &matcher {
        Some(m) if !stdin_context => {
            let outside = df_src.in_context.is_none().then(|| df_src.content.clone());
            let query = q
                .clone()
                .opt("dockerfile", dockerfile_param.as_deref())
                .encode();
            context::send(client, &ctx_dir, m, outside, &query).await?
        }
        _ => None,
    };
    let stream = match incremental {
        Some(s) => s,
        None => {
            let body = if stdin_is_tar {
                stdin_data.unwrap_or_default()
            } else {
                let tar = match &matcher {
                    Some(m) if !stdin_context => tar_context(&ctx_dir, m)?,
                    _ => tar::Builder::new(Vec::new()).into_inner()?,
                };
                if df_src.in_context.is_none() {
                    let name = format!(".dockerfile.{:012x}", rand_suffix());
                    dockerfile_param = Some(name.clone());
                    append_file(tar, &name, df_src.content.as_bytes())?
                } else {
                    tar
                }
            };
            let q = q.opt("dockerfile", dockerfile_param.as_deref());
            client
                .stream(
                    Method::POST,
                    &format!("/build{}", q.encode()),
                    Body::Bytes(body.into(), "application/x-tar"),
                    &[],
                )
                .await?
        }
    };
    let mut msgs = stream.json_messages();
    let mut id = None;
    let mut out = std::io::stdout().lock();
    while let Some(m) = msgs.next().await? {
        if let Some(e) = m.error_message() {
            out.flush()?;
            return Err(ExitStatus {
                code: 1,
                message: Some(e.to_string()),
            }
            .into());
        }
        if let Some(aux) = &m.aux {
            if let Some(i) = aux.get("ID").and_then(|v| v.as_str()) {
                id = Some(i.to_string());
            }
        }
        if let Some(s) = &m.stream {
            if !a.quiet {
                write!(out, "{s}")?;
                out.flush()?;
            }
        }
    }
    if let Some(i) = &id {
        if a.quiet {
            writeln!(out, "{i}")?;
        }
        if let Some(f) = &a.iidfile {
            std::fs::write(f, i).with_context(|| format!("writing {f}"))?;
        }
    }
    Ok(0)
}

fn rand_suffix() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ u64::from(std::process::id()) << 32) & 0xffff_ffff_ffff
}
