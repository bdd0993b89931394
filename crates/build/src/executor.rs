//! Running a build: stages in order, each instruction applied to the image config or run
//! through an [`Executor`] (which owns containers and the image store; this crate does not).
//!
//! The image config is Docker's container-config JSON object (`Env`, `Cmd`, `Entrypoint`,
//! `WorkingDir`, `User`, `Labels`, `ExposedPorts`, `Volumes`, `StopSignal`, `Shell`,
//! `Healthcheck`, `OnBuild`), so this crate needs no image types.

use std::path::{Component, Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::instructions::{Args, Build, Instruction, KeyValue};
use crate::shell::Lex;

/// A failed build; the message is what the client prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    pub message: String,
    /// For a failed `RUN`: the command's exit code.
    pub code: Option<i64>,
}

fn fail<T>(m: impl Into<String>) -> Result<T, BuildError> {
    Err(BuildError {
        message: m.into(),
        code: None,
    })
}

/// An image as the build sees it: its id (`None` for `scratch`) and its config.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageState {
    pub id: Option<String>,
    pub config: Map<String, Value>,
}

/// What the builder needs from the engine.
pub trait Executor {
    /// Finds (or pulls) a base image.
    fn resolve(&mut self, name: &str) -> Result<ImageState, String>;
    /// Runs `argv` in a container of `image` with `config` (Env, WorkingDir, User), sending
    /// its output to `out`; on exit 0 commits the container's changes on top of `image`
    /// with `config` and returns the new image; otherwise returns the exit code.
    fn run(
        &mut self,
        image: &ImageState,
        config: &Map<String, Value>,
        argv: Vec<String>,
        created_by: &str,
        out: &mut dyn FnMut(&str),
    ) -> Result<Result<ImageState, i64>, String>;
    /// Commits the directory `layer` (its content laid out from `/`) on top of `image` with
    /// `config`; `layer == None` adds a history entry without a layer.
    fn commit(
        &mut self,
        image: &ImageState,
        layer: Option<&Path>,
        config: &Map<String, Value>,
        created_by: &str,
    ) -> Result<ImageState, String>;
    /// A scratch directory for a layer, removed by the caller.
    fn temp_dir(&mut self) -> Result<PathBuf, String>;
    /// The image a step with this cache key made before, if it still exists.
    fn cached(&mut self, _key: &str) -> Option<ImageState> {
        None
    }
    /// Records the image a step with this cache key made.
    fn remember(&mut self, _key: &str, _image: &ImageState) {}
}

/// Options of one build.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub target: Option<String>,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    /// Ignore the layer cache (`--no-cache`).
    pub no_cache: bool,
}

/// A step's cache key: a digest of its parts.
fn cache_key(parts: &[&str]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A digest of a layer directory's names, modes, owners, link targets and contents.
fn hash_dir(dir: &Path) -> String {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    fn walk(h: &mut sha2::Sha256, base: &Path, p: &Path) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            h.update(format!("{rel}\0{}:{}:{}\0", md.mode(), md.uid(), md.gid()).as_bytes());
            if md.file_type().is_symlink() {
                if let Ok(t) = std::fs::read_link(&path) {
                    h.update(t.to_string_lossy().as_bytes());
                }
            } else if md.is_dir() {
                walk(h, base, &path);
            } else if let Ok(mut f) = std::fs::File::open(&path) {
                let _ = std::io::copy(&mut f, h);
            }
            h.update(b"\0");
        }
    }
    let mut h = sha2::Sha256::new();
    walk(&mut h, dir, dir);
    hex::encode(h.finalize())
}

fn short(id: &Option<String>) -> String {
    match id {
        Some(i) => i.trim_start_matches("sha256:").chars().take(12).collect(),
        None => "scratch".into(),
    }
}

fn env_list(cfg: &Map<String, Value>) -> Vec<(String, String)> {
    cfg.get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.to_string(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_env(cfg: &mut Map<String, Value>, k: &str, v: &str) {
    let mut env = env_list(cfg);
    env.retain(|(ek, _)| ek != k);
    env.push((k.to_string(), v.to_string()));
    cfg.insert(
        "Env".into(),
        Value::Array(
            env.into_iter()
                .map(|(k, v)| Value::String(format!("{k}={v}")))
                .collect(),
        ),
    );
}

fn shell_of(cfg: &Map<String, Value>) -> Vec<String> {
    cfg.get("Shell")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

fn argv(args: &Args, cfg: &Map<String, Value>) -> Vec<String> {
    match args {
        Args::Exec(v) => v.clone(),
        Args::Shell(s) => {
            let mut v = shell_of(cfg);
            v.push(s.clone());
            v
        }
    }
}

fn to_json(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

/// Joins `p` to `base` lexically, refusing to leave `base`.
fn inside(base: &Path, p: &str) -> Option<PathBuf> {
    let mut out = base.to_path_buf();
    let mut depth = 0usize;
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => {
                out.push(n);
                depth += 1;
            }
            Component::ParentDir => {
                if depth == 0 {
                    return None;
                }
                out.pop();
                depth -= 1;
            }
            _ => {}
        }
    }
    Some(out)
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    let md = std::fs::symlink_metadata(src)?;
    if md.file_type().is_symlink() {
        let target = std::fs::read_link(src)?;
        let _ = std::fs::remove_file(dst);
        std::os::unix::fs::symlink(target, dst)?;
    } else if md.is_dir() {
        std::fs::create_dir_all(dst)?;
        std::fs::set_permissions(dst, md.permissions())?;
        let mut entries: Vec<_> = std::fs::read_dir(src)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
    } else {
        if let Some(p) = dst.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::copy(src, dst)?;
    }
    Ok(())
}

fn chown_tree(p: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(p)?.is_dir() {
        for e in std::fs::read_dir(p)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn chmod_tree(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(p)?;
    if md.file_type().is_symlink() {
        return Ok(());
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    if md.is_dir() {
        for e in std::fs::read_dir(p)? {
            chmod_tree(&e?.path(), mode)?;
        }
    }
    Ok(())
}

/// Runs the build; `out` receives the classic builder's log text. Returns the image id.
pub fn build(
    b: &Build,
    opts: &Options,
    context: &Path,
    escape: char,
    exec: &mut dyn Executor,
    out: &mut dyn FnMut(&str),
) -> Result<String, BuildError> {
    let plan = b.plan(opts.target.as_deref()).map_err(|m| BuildError {
        message: m,
        code: None,
    })?;
    let total: usize = plan.iter().map(|i| 1 + b.stages[*i].steps.len()).sum();
    let lex = Lex::new(escape);
    // Global ARGs, with --build-arg overriding defaults.
    let given = |k: &str| {
        opts.build_args
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let mut meta: Vec<(String, String)> = Vec::new();
    for (k, v) in &b.meta_args {
        let val = match given(k) {
            Some(v) => Some(v),
            None => match v {
                Some(v) => Some(lex.process_word(v, &meta).map_err(|e| BuildError {
                    message: e.0,
                    code: None,
                })?),
                None => None,
            },
        };
        if let Some(val) = val {
            meta.push((k.clone(), val));
        }
    }
    let mut built: Vec<Option<ImageState>> = vec![None; b.stages.len()];
    let mut step = 0;
    let mut last = None;
    for &si in &plan {
        let stage = &b.stages[si];
        step += 1;
        out(&format!(
            "Step {step}/{total} : {}\n",
            stage.original.trim()
        ));
        let base = lex
            .process_word(&stage.base, &meta)
            .map_err(|e| BuildError {
                message: e.0,
                code: None,
            })?;
        let prior = b.stages[..si]
            .iter()
            .position(|s| s.name.as_deref() == Some(base.to_lowercase().as_str()));
        let mut img = match prior {
            Some(p) => match &built[p] {
                Some(i) => i.clone(),
                None => return fail(format!("stage {base} was not built")),
            },
            None if base.eq_ignore_ascii_case("scratch") => ImageState {
                id: None,
                config: Map::new(),
            },
            None => exec.resolve(&base).map_err(|m| BuildError {
                message: m,
                code: None,
            })?,
        };
        out(&format!(" ---> {}\n", short(&img.id)));
        // Build args declared in this stage, and the env they see.
        let mut args: Vec<(String, String)> = Vec::new();
        let mut dirty = false;
        for st in &stage.steps {
            step += 1;
            out(&format!("Step {step}/{total} : {}\n", st.original));
            let mut cfg = img.config.clone();
            let mut vars = args.clone();
            vars.extend(env_list(&cfg));
            let expand = |w: &str| {
                lex.process_word(w, &vars).map_err(|e| BuildError {
                    message: format!("line {}: {}", st.line, e.0),
                    code: None,
                })
            };
            let mut layer: Option<PathBuf> = None;
            match &st.instruction {
                Instruction::Env(kvs) => {
                    for KeyValue { key, value } in kvs {
                        let v = lex.process_word(value, &vars).map_err(|e| BuildError {
                            message: e.0,
                            code: None,
                        })?;
                        let k = lex.process_word(key, &vars).map_err(|e| BuildError {
                            message: e.0,
                            code: None,
                        })?;
                        set_env(&mut cfg, &k, &v);
                        vars.push((k, v));
                    }
                }
                Instruction::Label(kvs) => {
                    let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
                    if !labels.is_object() {
                        *labels = json!({});
                    }
                    for KeyValue { key, value } in kvs {
                        let k = expand(key)?;
                        let v = expand(value)?;
                        if let Some(m) = labels.as_object_mut() {
                            m.insert(k, Value::String(v));
                        }
                    }
                }
                Instruction::Arg(list) => {
                    for (k, d) in list {
                        let v = match given(k) {
                            Some(v) => Some(v),
                            None => match d {
                                Some(d) => Some(expand(d)?),
                                None => meta.iter().find(|(m, _)| m == k).map(|(_, v)| v.clone()),
                            },
                        };
                        if let Some(v) = v {
                            args.retain(|(a, _)| a != k);
                            args.push((k.clone(), v));
                        }
                    }
                }
                Instruction::Cmd(a) => {
                    cfg.insert("Cmd".into(), to_json(&argv(a, &cfg)));
                }
                Instruction::Entrypoint(a) => {
                    let v = match a {
                        Args::Shell(s) if s.is_empty() => Vec::new(),
                        _ => argv(a, &cfg),
                    };
                    cfg.insert("Entrypoint".into(), to_json(&v));
                    cfg.insert("Cmd".into(), Value::Null);
                }
                Instruction::Shell(v) => {
                    cfg.insert("Shell".into(), to_json(v));
                }
                Instruction::Workdir(w) => {
                    let w = expand(w)?;
                    let cur = cfg.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                    let joined = if w.starts_with('/') {
                        w
                    } else {
                        format!("{}/{}", cur.trim_end_matches('/'), w)
                    };
                    cfg.insert(
                        "WorkingDir".into(),
                        Value::String(crate::dockerignore::clean(&joined)),
                    );
                }
                Instruction::User(u) => {
                    cfg.insert("User".into(), Value::String(expand(u)?));
                }
                Instruction::StopSignal(s) => {
                    cfg.insert("StopSignal".into(), Value::String(expand(s)?));
                }
                Instruction::Expose(ports) => {
                    let e = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
                    if !e.is_object() {
                        *e = json!({});
                    }
                    for p in ports {
                        let p = expand(p)?;
                        let p = if p.contains('/') {
                            p
                        } else {
                            format!("{p}/tcp")
                        };
                        if let Some(m) = e.as_object_mut() {
                            m.insert(p, json!({}));
                        }
                    }
                }
                Instruction::Volume(vs) => {
                    let e = cfg.entry("Volumes").or_insert_with(|| json!({}));
                    if !e.is_object() {
                        *e = json!({});
                    }
                    for v in vs {
                        let v = expand(v)?;
                        if let Some(m) = e.as_object_mut() {
                            m.insert(v, json!({}));
                        }
                    }
                }
                Instruction::Maintainer(_) => {}
                Instruction::Onbuild(t) => {
                    let e = cfg.entry("OnBuild").or_insert_with(|| json!([]));
                    if !e.is_array() {
                        *e = json!([]);
                    }
                    if let Some(a) = e.as_array_mut() {
                        a.push(Value::String(t.clone()));
                    }
                }
                Instruction::Healthcheck { test, flags } => {
                    let mut h = Map::new();
                    match test {
                        None => {
                            h.insert("Test".into(), json!(["NONE"]));
                        }
                        Some(Args::Exec(v)) => {
                            let mut t = vec!["CMD".to_string()];
                            t.extend(v.iter().cloned());
                            h.insert("Test".into(), to_json(&t));
                        }
                        Some(Args::Shell(s)) => {
                            h.insert("Test".into(), json!(["CMD-SHELL", s]));
                        }
                    }
                    for (k, v) in [
                        ("Interval", &flags.interval),
                        ("Timeout", &flags.timeout),
                        ("StartPeriod", &flags.start_period),
                        ("StartInterval", &flags.start_interval),
                    ] {
                        if let Some(v) = v {
                            let ns =
                                crate::instructions::parse_duration(v).map_err(|m| BuildError {
                                    message: m,
                                    code: None,
                                })?;
                            h.insert(k.into(), json!(ns));
                        }
                    }
                    if let Some(r) = &flags.retries {
                        h.insert("Retries".into(), json!(r.parse::<i64>().unwrap_or(0)));
                    }
                    cfg.insert("Healthcheck".into(), Value::Object(h));
                }
                Instruction::Run {
                    args: a, heredocs, ..
                } => {
                    let mut cmd = argv(a, &cfg);
                    if let (Args::Shell(s), [h]) = (a, heredocs.as_slice()) {
                        if s.trim() == format!("<<{}", h.name)
                            || s.trim() == format!("<<-{}", h.name)
                        {
                            let mut v = shell_of(&cfg);
                            v.push(h.content.clone());
                            cmd = v;
                        }
                    }
                    // Build args are in the environment of RUN, not in the image.
                    let mut run_cfg = cfg.clone();
                    for (k, v) in &args {
                        if !env_list(&run_cfg).iter().any(|(e, _)| e == k) {
                            set_env(&mut run_cfg, k, v);
                        }
                    }
                    let created_by = format!("/bin/sh -c {}", st.original);
                    let key = cache_key(&[
                        "run",
                        img.id.as_deref().unwrap_or(""),
                        &serde_json::to_string(&cmd).unwrap_or_default(),
                        &Value::Object(run_cfg.clone()).to_string(),
                    ]);
                    if let Some(hit) = (!opts.no_cache).then(|| exec.cached(&key)).flatten() {
                        img = ImageState {
                            id: hit.id,
                            config: cfg.clone(),
                        };
                        dirty = false;
                        out(" ---> Using cache\n");
                        out(&format!(" ---> {}\n", short(&img.id)));
                        continue;
                    }
                    let r = exec
                        .run(&img, &run_cfg, cmd.clone(), &created_by, out)
                        .map_err(|m| BuildError {
                            message: m,
                            code: None,
                        })?;
                    match r {
                        Ok(mut new) => {
                            exec.remember(&key, &new);
                            new.config = cfg.clone();
                            img = new;
                            dirty = false;
                            out(&format!(" ---> {}\n", short(&img.id)));
                            continue;
                        }
                        Err(code) => {
                            let shown = match a {
                                Args::Shell(_) => format!("{:?}", cmd).replace("\",\"", "\" \""),
                                Args::Exec(v) => format!("{v:?}"),
                            };
                            let cmdtext = match a {
                                Args::Shell(s) => format!("/bin/sh -c {s}"),
                                Args::Exec(_) => shown,
                            };
                            return Err(BuildError {
                                message: format!(
                                    "The command '{cmdtext}' returned a non-zero code: {code}"
                                ),
                                code: Some(code),
                            });
                        }
                    }
                }
                Instruction::Copy {
                    sources,
                    dest,
                    flags,
                    heredocs,
                }
                | Instruction::Add {
                    sources,
                    dest,
                    flags,
                    heredocs,
                } => {
                    let dir = exec.temp_dir().map_err(|m| BuildError {
                        message: m,
                        code: None,
                    })?;
                    let r = (|| -> Result<(), BuildError> {
                        let src_root: PathBuf = match &flags.from {
                            Some(_) => {
                                return fail("COPY --from is not supported by this builder yet")
                            }
                            None => context.to_path_buf(),
                        };
                        let dest = expand(dest)?;
                        let wd = cfg
                            .get("WorkingDir")
                            .and_then(Value::as_str)
                            .unwrap_or("/")
                            .to_string();
                        let dest_abs = if dest.starts_with('/') {
                            dest.clone()
                        } else {
                            format!("{}/{}", wd.trim_end_matches('/'), dest)
                        };
                        let dest_is_dir = dest.ends_with('/')
                            || dest.ends_with("/.")
                            || dest == "."
                            || sources.len() > 1;
                        let target = inside(&dir, &dest_abs).ok_or_else(|| BuildError {
                            message: "invalid destination".into(),
                            code: None,
                        })?;
                        for s in sources {
                            if let Some(h) = heredocs.iter().find(|h| {
                                s == &format!("<<{}", h.name) || s == &format!("<<-{}", h.name)
                            }) {
                                let content = if h.expand {
                                    lex.process_word(&h.content, &vars)
                                        .unwrap_or_else(|_| h.content.clone())
                                } else {
                                    h.content.clone()
                                };
                                let t = if dest_is_dir {
                                    target.join(&h.name)
                                } else {
                                    target.clone()
                                };
                                if let Some(p) = t.parent() {
                                    std::fs::create_dir_all(p).map_err(|e| BuildError {
                                        message: e.to_string(),
                                        code: None,
                                    })?;
                                }
                                std::fs::write(&t, content).map_err(|e| BuildError {
                                    message: e.to_string(),
                                    code: None,
                                })?;
                                continue;
                            }
                            let s = expand(s)?;
                            let Some(src) = inside(&src_root, &s) else {
                                return fail(format!(
                                    "COPY failed: forbidden path outside the build context: {s}"
                                ));
                            };
                            let md = std::fs::symlink_metadata(&src).map_err(|_| BuildError {
                                message: format!("COPY failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"),
                                code: None,
                            })?;
                            let t = if md.is_dir() {
                                target.clone()
                            } else if dest_is_dir {
                                target.join(src.file_name().unwrap_or_default())
                            } else {
                                target.clone()
                            };
                            copy_tree(&src, &t).map_err(|e| BuildError {
                                message: format!("COPY failed: {e}"),
                                code: None,
                            })?;
                            if let Some(c) = &flags.chown {
                                let (u, g) = c.split_once(':').unwrap_or((c, c));
                                match (u.parse::<u32>(), g.parse::<u32>()) {
                                    (Ok(u), Ok(g)) => chown_tree(&t, u, g).map_err(|e| BuildError { message: e.to_string(), code: None })?,
                                    _ => return fail(format!("unable to convert uid/gid chown string to host mapping: {c}: only numeric ids are supported by this builder")),
                                }
                            }
                            if let Some(m) = &flags.chmod {
                                let mode = u32::from_str_radix(m, 8).map_err(|_| BuildError {
                                    message: format!("invalid chmod parameter: {m}"),
                                    code: None,
                                })?;
                                chmod_tree(&t, mode).map_err(|e| BuildError {
                                    message: e.to_string(),
                                    code: None,
                                })?;
                            }
                        }
                        Ok(())
                    })();
                    if let Err(e) = r {
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(e);
                    }
                    layer = Some(dir);
                }
            }
            let Some(l) = layer else {
                // Metadata only: the config rides on the next layer or the final commit.
                img.config = cfg;
                dirty = true;
                out(&format!(" ---> {}\n", short(&img.id)));
                continue;
            };
            let created_by = format!("/bin/sh -c #(nop) {}", st.original);
            let key = cache_key(&[
                "layer",
                img.id.as_deref().unwrap_or(""),
                &st.original,
                &hash_dir(&l),
                &Value::Object(cfg.clone()).to_string(),
            ]);
            if let Some(hit) = (!opts.no_cache).then(|| exec.cached(&key)).flatten() {
                let _ = std::fs::remove_dir_all(&l);
                img = hit;
                dirty = false;
                out(" ---> Using cache\n");
                out(&format!(" ---> {}\n", short(&img.id)));
                continue;
            }
            let r = exec.commit(&img, Some(&l), &cfg, &created_by);
            if let Ok(new) = &r {
                exec.remember(&key, new);
            }
            let _ = std::fs::remove_dir_all(&l);
            img = r.map_err(|m| BuildError {
                message: m,
                code: None,
            })?;
            dirty = false;
            out(&format!(" ---> {}\n", short(&img.id)));
        }
        if dirty {
            let cfg = img.config.clone();
            let key = cache_key(&[
                "config",
                img.id.as_deref().unwrap_or(""),
                &Value::Object(cfg.clone()).to_string(),
            ]);
            let hit = (!opts.no_cache).then(|| exec.cached(&key)).flatten();
            img = match hit {
                Some(h) => Ok(h),
                None => exec
                    .commit(&img, None, &cfg, "/bin/sh -c #(nop) config")
                    .inspect(|n| exec.remember(&key, n)),
            }
            .map_err(|m| BuildError {
                message: m,
                code: None,
            })?;
        }
        built[si] = Some(img.clone());
        last = Some(img);
    }
    let Some(mut img) = last else {
        return fail("no stage to build");
    };
    if !opts.labels.is_empty() {
        let mut cfg = img.config.clone();
        let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in &opts.labels {
            if let Some(m) = labels.as_object_mut() {
                m.insert(k.clone(), Value::String(v.clone()));
            }
        }
        img = exec
            .commit(&img, None, &cfg, "LABEL")
            .map_err(|m| BuildError {
                message: m,
                code: None,
            })?;
    }
    match img.id {
        Some(id) => {
            out(&format!(
                "Successfully built {}\n",
                short(&Some(id.clone()))
            ));
            Ok(id)
        }
        None => fail("no image was built: the final stage is scratch with no changes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{instructions, parser};

    /// An executor that records what it is asked, with images as numbered ids.
    struct Fake {
        n: usize,
        log: Vec<String>,
        tmp: tempdir::Dir,
    }
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }
    impl Fake {
        fn next(&mut self, config: &Map<String, Value>) -> ImageState {
            self.n += 1;
            ImageState {
                id: Some(format!("sha256:{:064}", self.n)),
                config: config.clone(),
            }
        }
    }
    impl Executor for Fake {
        fn resolve(&mut self, name: &str) -> Result<ImageState, String> {
            self.log.push(format!("resolve {name}"));
            if name == "missing" {
                return Err("pull access denied for missing".into());
            }
            Ok(self.next(&Map::new()))
        }
        fn run(
            &mut self,
            _: &ImageState,
            cfg: &Map<String, Value>,
            argv: Vec<String>,
            _: &str,
            out: &mut dyn FnMut(&str),
        ) -> Result<Result<ImageState, i64>, String> {
            self.log
                .push(format!("run {argv:?} env={:?}", cfg.get("Env")));
            out("output\n");
            if argv.last().map(String::as_str) == Some("false") {
                return Ok(Err(1));
            }
            Ok(Ok(self.next(cfg)))
        }
        fn commit(
            &mut self,
            _: &ImageState,
            layer: Option<&Path>,
            cfg: &Map<String, Value>,
            _: &str,
        ) -> Result<ImageState, String> {
            let mut files = Vec::new();
            if let Some(l) = layer {
                fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
                    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                        let path = e.path();
                        if path.is_dir() {
                            walk(base, &path, out);
                        } else {
                            let c = std::fs::read_to_string(&path).unwrap_or_default();
                            out.push(format!(
                                "{}={}",
                                path.strip_prefix(base).unwrap_or(&path).display(),
                                c.trim()
                            ));
                        }
                    }
                }
                walk(l, l, &mut files);
                files.sort();
            }
            self.log.push(format!("commit layer={files:?}"));
            Ok(self.next(cfg))
        }
        fn temp_dir(&mut self) -> Result<PathBuf, String> {
            self.n += 1;
            let d = self.tmp.0.join(format!("layer{}", self.n));
            std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
            Ok(d)
        }
    }

    fn run(
        src: &str,
        ctx: &[(&str, &str)],
        opts: Options,
    ) -> (Result<String, BuildError>, Vec<String>, String) {
        let base = std::env::temp_dir().join(format!(
            "berth-build-test-{}-{}",
            std::process::id(),
            rand_id()
        ));
        let ctxdir = base.join("ctx");
        std::fs::create_dir_all(&ctxdir).unwrap();
        for (p, c) in ctx {
            let f = ctxdir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, c).unwrap();
        }
        let df = parser::parse(src).unwrap();
        let b = instructions::parse(&df).unwrap();
        let mut fake = Fake {
            n: 0,
            log: vec![],
            tmp: tempdir::Dir(base.clone()),
        };
        let mut text = String::new();
        let r = build(&b, &opts, &ctxdir, df.escape, &mut fake, &mut |s| {
            text.push_str(s)
        });
        (r, fake.log.clone(), text)
    }
    fn rand_id() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    }

    #[test]
    fn steps_and_output() {
        let (r, log, text) = run(
            "ARG BASE=busybox\nFROM $BASE\nENV A=1\nRUN echo $A\nCOPY f.txt /dst/\nWORKDIR sub\nCMD [\"sh\"]\n",
            &[("f.txt", "hello")],
            Options::default(),
        );
        let id = r.unwrap();
        assert!(text.starts_with("Step 1/6 : FROM $BASE\n"));
        assert!(text.contains("Step 3/6 : RUN echo $A\n"));
        assert!(text.contains("output\n"));
        assert!(text.ends_with(&format!("Successfully built {}\n", &id[7..19])));
        assert_eq!(log[0], "resolve busybox");
        assert!(
            log[1].starts_with("run [\"/bin/sh\", \"-c\", \"echo $A\"]"),
            "{log:?}"
        );
        assert_eq!(log[2], "commit layer=[\"dst/f.txt=hello\"]");
        // WORKDIR and CMD after the last layer: one config-only commit.
        assert_eq!(log[3], "commit layer=[]");
        assert_eq!(log.len(), 4);
    }

    #[test]
    fn failing_run_stops_the_build() {
        let (r, log, _) = run(
            "FROM busybox\nRUN false\nRUN never\n",
            &[],
            Options::default(),
        );
        let e = r.unwrap_err();
        assert_eq!(e.code, Some(1));
        assert_eq!(
            e.message,
            "The command '/bin/sh -c false' returned a non-zero code: 1"
        );
        assert!(!log.iter().any(|l| l.contains("never")));
    }

    #[test]
    fn build_args_and_target() {
        let opts = Options {
            build_args: vec![("V".into(), "9".into())],
            target: Some("a".into()),
            ..Default::default()
        };
        let (r, log, _) = run(
            "FROM busybox AS a\nARG V=1\nRUN echo\nFROM missing\n",
            &[],
            opts,
        );
        r.unwrap();
        assert!(log.iter().any(|l| l.contains("V=9")), "{log:?}");
        assert!(!log.iter().any(|l| l.contains("missing")));
    }

    #[test]
    fn copy_errors() {
        let (r, _, _) = run("FROM busybox\nCOPY nope /x\n", &[], Options::default());
        assert!(r
            .unwrap_err()
            .message
            .contains("file not found in build context"));
        let (r, _, _) = run("FROM busybox\nCOPY ../x /x\n", &[], Options::default());
        assert!(r.unwrap_err().message.contains("outside the build context"));
        let (r, _, _) = run("FROM missing\n", &[], Options::default());
        assert_eq!(r.unwrap_err().message, "pull access denied for missing");
    }

    #[test]
    fn heredoc_copy_and_run() {
        let (r, log, _) = run(
            "FROM busybox\nCOPY <<EOF /etc/x\nhi\nEOF\nRUN <<EOF\necho a\nEOF\n",
            &[],
            Options::default(),
        );
        r.unwrap();
        assert_eq!(log[1], "commit layer=[\"etc/x=hi\"]");
        assert!(
            log[2].starts_with("run [\"/bin/sh\", \"-c\", \"echo a\\n\"]"),
            "{log:?}"
        );
    }
}
