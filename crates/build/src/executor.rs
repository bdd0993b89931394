//! Running a build: stages in dependency order, each instruction applied to the image config
//! or run through an [`Executor`] (which owns containers and the image store; this crate
//! does not).
//!
//! The image config is Docker's container-config JSON object (`Env`, `Cmd`, `Entrypoint`,
//! `WorkingDir`, `User`, `Labels`, `ExposedPorts`, `Volumes`, `StopSignal`, `Shell`,
//! `Healthcheck`, `OnBuild`), so this crate needs no image types.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::copy::{self, Source, SourceKind};
use crate::instructions::{Args, Build, CopyFlags, Instruction, KeyValue, Step};
use crate::parser::Heredoc;
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
    Err(msg(m))
}

fn msg(m: impl Into<String>) -> BuildError {
    BuildError {
        message: m.into(),
        code: None,
    }
}

/// An image as the build sees it: its id (`None` for `scratch`) and its config.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageState {
    pub id: Option<String>,
    pub config: Map<String, Value>,
}

/// A writable, mounted view of an image's filesystem (a build container's rootfs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    pub id: String,
    pub path: PathBuf,
}

/// A mount for one `RUN` (`RUN --mount=…`), with its source on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
    },
    Tmpfs {
        target: String,
    },
}

/// What the builder needs from the engine.
pub trait Executor {
    /// Finds a base image, pulling it when it is missing (progress to `out`).
    fn resolve(&mut self, name: &str, out: &mut dyn FnMut(&str)) -> Result<ImageState, String>;
    /// Runs `argv` in a container of `image` with `config` (Env, WorkingDir, User) and
    /// `mounts`, sending its output to `out`; on exit 0 commits the container's changes on
    /// top of `image` with `config` and returns the new image; otherwise the exit code.
    fn run(
        &mut self,
        image: &ImageState,
        config: &Map<String, Value>,
        argv: Vec<String>,
        mounts: &[RunMount],
        created_by: &str,
        out: &mut dyn FnMut(&str),
    ) -> Result<Result<ImageState, i64>, String>;
    /// Mounts a writable snapshot of `image`'s filesystem.
    fn open_rootfs(&mut self, image: &ImageState) -> Result<Rootfs, String>;
    /// Commits what changed in `rootfs` as a layer on `image` with `config`; `None` when
    /// nothing changed.
    fn commit_rootfs(
        &mut self,
        rootfs: &Rootfs,
        image: &ImageState,
        config: &Map<String, Value>,
        created_by: &str,
    ) -> Result<Option<ImageState>, String>;
    /// Unmounts and removes a snapshot from `open_rootfs`.
    fn close_rootfs(&mut self, rootfs: &Rootfs);
    /// A new image with `config` and no new layer (a history entry only).
    fn commit_config(
        &mut self,
        image: &ImageState,
        config: &Map<String, Value>,
        created_by: &str,
    ) -> Result<ImageState, String>;
    /// Downloads `url` into the file `dest`; returns its Last-Modified time (Unix seconds).
    fn fetch(&mut self, url: &str, dest: &Path) -> Result<Option<u64>, String>;
    /// The persistent directory behind `RUN --mount=type=cache,id=…`.
    fn cache_mount(&mut self, id: &str) -> Result<PathBuf, String>;
    /// A scratch directory, removed by the caller (or with the build).
    fn temp_dir(&mut self) -> Result<PathBuf, String>;
    /// The image a step with this cache key made before, if it still exists.
    fn cached(&mut self, _key: &str) -> Option<ImageState> {
        None
    }
    /// Records the image a step with this cache key made.
    fn remember(&mut self, _key: &str, _image: &ImageState) {}
    /// Where content digests of unchanged context files are remembered, if anywhere.
    fn digest_cache_dir(&mut self) -> Option<PathBuf> {
        None
    }
    /// The client went away: stop at the next step.
    fn cancelled(&mut self) -> bool {
        false
    }
}

/// Options of one build.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub target: Option<String>,
    pub build_args: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    /// Ignore the layer cache (`--no-cache`).
    pub no_cache: bool,
    /// Content digests of context files known without reading them (path → hex sha256).
    pub context_digests: std::sync::Arc<std::collections::HashMap<String, String>>,
}

/// Build args Docker accepts without an `ARG` (never warned about as unused).
const BUILTIN_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A step's cache key: a digest of its parts.
/// A COPY's scratch dir, made when the step has heredocs or is an ADD.
fn scratch(tmp: Option<&Path>) -> Result<&Path, BuildError> {
    tmp.ok_or_else(|| msg("internal error: no scratch dir for this step"))
}

fn cache_key(parts: &[&str]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
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

fn object<'a>(cfg: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let e = cfg.entry(key).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    match e {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// The state of the stage being built.
struct StageState {
    img: ImageState,
    /// The config changed since the last image was made.
    dirty: bool,
    /// ARGs declared in this stage, with their values.
    args: Vec<(String, String)>,
}

/// One build in progress.
struct Run<'a> {
    b: &'a Build,
    opts: &'a Options,
    context: &'a Path,
    lex: Lex,
    meta: Vec<(String, String)>,
    built: Vec<Option<ImageState>>,
    consumed: BTreeSet<String>,
    exec: &'a mut dyn Executor,
    out: &'a mut dyn FnMut(&str),
}

/// Makes one executor per concurrently built stage.
pub type ExecutorFactory<'f> = dyn Fn() -> Box<dyn Executor + Send> + Sync + 'f;

/// Runs the build one stage after another; `out` receives the classic builder's log text.
/// Returns the image id.
pub fn build(
    b: &Build,
    opts: &Options,
    context: &Path,
    escape: char,
    exec: &mut dyn Executor,
    out: &mut dyn FnMut(&str),
) -> Result<String, BuildError> {
    run_build(b, opts, context, escape, Engine::Serial(exec), out)
}

/// Like [`build`], with stages that do not depend on each other built side by side (one
/// executor each from `factory`). Their logs are shown whole, in stage order, once the
/// group is done; a lone stage streams its log as it runs.
pub fn build_parallel(
    b: &Build,
    opts: &Options,
    context: &Path,
    escape: char,
    factory: &ExecutorFactory<'_>,
    out: &mut dyn FnMut(&str),
) -> Result<String, BuildError> {
    let mut main = factory();
    run_build(
        b,
        opts,
        context,
        escape,
        Engine::Parallel(&mut *main, factory),
        out,
    )
}

enum Engine<'e, 'f> {
    Serial(&'e mut dyn Executor),
    Parallel(&'e mut dyn Executor, &'e ExecutorFactory<'f>),
}

/// The plan's stages grouped in waves: each stage comes after every stage it depends on.
fn waves(b: &Build, plan: &[usize]) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; b.stages.len()];
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &si in plan {
        let l = b
            .deps(si)
            .iter()
            .filter(|d| plan.contains(d))
            .map(|d| level[*d] + 1)
            .max()
            .unwrap_or(0);
        level[si] = l;
        if out.len() <= l {
            out.resize(l + 1, Vec::new());
        }
        out[l].push(si);
    }
    out
}

fn run_build(
    b: &Build,
    opts: &Options,
    context: &Path,
    escape: char,
    engine: Engine<'_, '_>,
    out: &mut dyn FnMut(&str),
) -> Result<String, BuildError> {
    let plan = b.plan(opts.target.as_deref()).map_err(msg)?;
    let total: usize = plan.iter().map(|i| 1 + b.stages[*i].steps.len()).sum();
    // Where each stage's step numbers start, in plan order (as the classic builder counts).
    let mut first_step = vec![0usize; b.stages.len()];
    let mut n = 0;
    for &si in &plan {
        first_step[si] = n;
        n += 1 + b.stages[si].steps.len();
    }
    let lex = Lex::new(escape);
    let given = |k: &str| {
        opts.build_args
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    // Global ARGs, with --build-arg overriding defaults.
    let mut meta: Vec<(String, String)> = Vec::new();
    for (k, v) in &b.meta_args {
        let val = match given(k) {
            Some(v) => Some(v),
            None => match v {
                Some(v) => Some(lex.process_word(v, &meta).map_err(|e| msg(e.0))?),
                None => None,
            },
        };
        if let Some(val) = val {
            meta.push((k.clone(), val));
        }
    }
    let (exec, factory): (&mut dyn Executor, Option<&ExecutorFactory<'_>>) = match engine {
        Engine::Serial(e) => (e, None),
        Engine::Parallel(e, f) => (e, Some(f)),
    };
    let mut run = Run {
        b,
        opts,
        context,
        lex,
        meta,
        built: vec![None; b.stages.len()],
        consumed: BTreeSet::new(),
        exec,
        out,
    };
    // Meta ARGs count as used when a built stage's FROM names them.
    for (k, _) in &b.meta_args {
        if plan.iter().any(|&i| {
            let base = &b.stages[i].base;
            base.contains(&format!("${k}")) || base.contains(&format!("${{{k}"))
        }) {
            run.consumed.insert(k.clone());
        }
    }
    let last_stage = plan.last().copied();
    let groups = match factory {
        Some(_) => waves(b, &plan),
        None => plan.iter().map(|&s| vec![s]).collect(),
    };
    for group in groups {
        match (group.as_slice(), factory) {
            ([si], _) => {
                let mut step = first_step[*si];
                let img = run.stage(*si, &mut step, total, Some(*si) == last_stage)?;
                run.built[*si] = Some(img);
            }
            (_, Some(factory)) => run.stages_side_by_side(&group, &first_step, total, factory)?,
            (_, None) => unreachable!("serial groups hold one stage"),
        }
    }
    let mut leftover: Vec<&str> = opts
        .build_args
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !run.consumed.contains(*k) && !BUILTIN_ARGS.contains(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    leftover.sort();
    if !leftover.is_empty() {
        (run.out)(&format!(
            "[Warning] One or more build-args [{}] were not consumed\n",
            leftover.join(" ")
        ));
    }
    match last_stage
        .and_then(|s| run.built[s].take())
        .and_then(|i| i.id)
    {
        Some(id) => Ok(id),
        None => fail("no image was built: the final stage is scratch with no changes"),
    }
}

/// What a stage built on its own thread gives back: its index, its log, its image, and the
/// build args it used.
type StageOutcome = (
    usize,
    String,
    Result<ImageState, BuildError>,
    BTreeSet<String>,
);

impl Run<'_> {
    /// Builds independent stages on threads, each with its own executor and log buffer.
    fn stages_side_by_side(
        &mut self,
        group: &[usize],
        first_step: &[usize],
        total: usize,
        factory: &ExecutorFactory<'_>,
    ) -> Result<(), BuildError> {
        let results: Vec<StageOutcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .iter()
                .map(|&si| {
                    let built = self.built.clone();
                    let meta = self.meta.clone();
                    let (b, opts, context, lex) = (self.b, self.opts, self.context, self.lex);
                    scope.spawn(move || {
                        let mut exec = factory();
                        let mut log = String::new();
                        let mut sink = |s: &str| log.push_str(s);
                        let mut run = Run {
                            b,
                            opts,
                            context,
                            lex,
                            meta,
                            built,
                            consumed: BTreeSet::new(),
                            exec: &mut *exec,
                            out: &mut sink,
                        };
                        let mut step = first_step[si];
                        // Side-by-side stages are never the final one.
                        let r = run.stage(si, &mut step, total, false);
                        let consumed = std::mem::take(&mut run.consumed);
                        drop(run);
                        (si, log, r, consumed)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (
                            0,
                            String::new(),
                            fail("a build stage panicked"),
                            BTreeSet::new(),
                        )
                    })
                })
                .collect()
        });
        let mut first_err = None;
        for (si, log, r, consumed) in results {
            self.say(&log);
            self.consumed.extend(consumed);
            match r {
                Ok(img) => self.built[si] = Some(img),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Run<'_> {
    fn say(&mut self, s: &str) {
        (self.out)(s)
    }

    fn check_cancelled(&mut self) -> Result<(), BuildError> {
        if self.exec.cancelled() {
            return fail("build cancelled: the client went away");
        }
        Ok(())
    }

    /// Builds one stage; returns its final image.
    fn stage(
        &mut self,
        si: usize,
        step: &mut usize,
        total: usize,
        is_final: bool,
    ) -> Result<ImageState, BuildError> {
        let b = self.b;
        let stage = &b.stages[si];
        *step += 1;
        self.check_cancelled()?;
        self.say(&format!(
            "Step {step}/{total} : {}\n",
            stage.original.trim()
        ));
        let base = self
            .lex
            .process_word(&stage.base, &self.meta)
            .map_err(|e| msg(e.0))?;
        let prior = b.stages[..si]
            .iter()
            .position(|s| s.name.as_deref() == Some(base.to_lowercase().as_str()));
        let img = match prior {
            Some(p) => match &self.built[p] {
                Some(i) => i.clone(),
                None => return fail(format!("stage {base} was not built")),
            },
            None if base.eq_ignore_ascii_case("scratch") => ImageState {
                id: None,
                config: Map::new(),
            },
            None => self.exec.resolve(&base, self.out).map_err(msg)?,
        };
        self.say(&format!(" ---> {}\n", short(&img.id)));
        let mut s = StageState {
            img,
            dirty: false,
            args: Vec::new(),
        };
        self.onbuild_triggers(&mut s, stage.line)?;
        for st in &stage.steps {
            *step += 1;
            self.check_cancelled()?;
            self.say(&format!("Step {step}/{total} : {}\n", st.original));
            self.step(st, &mut s)?;
        }
        if is_final && !self.opts.labels.is_empty() {
            let labels = object(&mut s.img.config, "Labels");
            for (k, v) in &self.opts.labels {
                labels.insert(k.clone(), Value::String(v.clone()));
            }
            s.dirty = true;
        }
        if s.dirty {
            self.commit_config(&mut s, "/bin/sh -c #(nop) config")?;
        }
        Ok(s.img)
    }

    /// Runs the base image's `ONBUILD` triggers, which are not inherited further.
    fn onbuild_triggers(&mut self, s: &mut StageState, line: usize) -> Result<(), BuildError> {
        let triggers: Vec<String> = s
            .img
            .config
            .get("OnBuild")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if triggers.is_empty() {
            return Ok(());
        }
        s.img.config.remove("OnBuild");
        s.dirty = true;
        self.say(&format!(
            "# Executing {} build trigger{}\n",
            triggers.len(),
            if triggers.len() == 1 { "" } else { "s" }
        ));
        for t in triggers {
            let df = crate::parser::parse(&format!("{t}\n"))
                .map_err(|e| msg(format!("invalid ONBUILD trigger {t:?}: {}", e.message)))?;
            for node in &df.nodes {
                let instruction = crate::instructions::parse_instruction(node)
                    .map_err(|e| msg(format!("invalid ONBUILD trigger {t:?}: {}", e.message)))?;
                let st = Step {
                    instruction,
                    original: t.clone(),
                    line,
                };
                self.step(&st, s)?;
            }
        }
        Ok(())
    }

    /// A cache lookup (unless `--no-cache`).
    fn cached(&mut self, key: &str) -> Option<ImageState> {
        if self.opts.no_cache {
            return None;
        }
        self.exec.cached(key)
    }

    fn commit_config(&mut self, s: &mut StageState, created_by: &str) -> Result<(), BuildError> {
        let cfg = s.img.config.clone();
        let key = cache_key(&[
            "config",
            s.img.id.as_deref().unwrap_or(""),
            &Value::Object(cfg.clone()).to_string(),
        ]);
        let img = match self.cached(&key) {
            Some(h) => h,
            None => {
                let n = self
                    .exec
                    .commit_config(&s.img, &cfg, created_by)
                    .map_err(msg)?;
                self.exec.remember(&key, &n);
                n
            }
        };
        s.img = img;
        s.dirty = false;
        Ok(())
    }

    fn step(&mut self, st: &Step, s: &mut StageState) -> Result<(), BuildError> {
        let mut cfg = s.img.config.clone();
        let mut vars = s.args.clone();
        vars.extend(env_list(&cfg));
        let lex = self.lex;
        let expand = |w: &str, vars: &[(String, String)]| {
            lex.process_word(w, &vars.to_vec())
                .map_err(|e| msg(format!("line {}: {}", st.line, e.0)))
        };
        match &st.instruction {
            Instruction::Env(kvs) => {
                for KeyValue { key, value } in kvs {
                    let v = expand(value, &vars)?;
                    let k = expand(key, &vars)?;
                    set_env(&mut cfg, &k, &v);
                    vars.push((k, v));
                }
            }
            Instruction::Label(kvs) => {
                for KeyValue { key, value } in kvs {
                    let k = expand(key, &vars)?;
                    let v = expand(value, &vars)?;
                    object(&mut cfg, "Labels").insert(k, Value::String(v));
                }
            }
            Instruction::Arg(list) => {
                for (k, d) in list {
                    self.consumed.insert(k.clone());
                    let given = self
                        .opts
                        .build_args
                        .iter()
                        .rev()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone());
                    let v = match given {
                        Some(v) => Some(v),
                        None => match d {
                            Some(d) => Some(expand(d, &vars)?),
                            None => self
                                .meta
                                .iter()
                                .find(|(m, _)| m == k)
                                .map(|(_, v)| v.clone()),
                        },
                    };
                    if let Some(v) = v {
                        s.args.retain(|(a, _)| a != k);
                        s.args.push((k.clone(), v.clone()));
                        vars.push((k.clone(), v));
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
                let w = expand(w, &vars)?;
                let cur = cfg.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                let joined = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{}", cur.trim_end_matches('/'), w)
                };
                let wd = crate::dockerignore::clean(&joined);
                cfg.insert("WorkingDir".into(), Value::String(wd.clone()));
                return self.workdir(st, s, cfg, &wd);
            }
            Instruction::User(u) => {
                cfg.insert("User".into(), Value::String(expand(u, &vars)?));
            }
            Instruction::StopSignal(sig) => {
                cfg.insert("StopSignal".into(), Value::String(expand(sig, &vars)?));
            }
            Instruction::Expose(ports) => {
                for p in ports {
                    let p = expand(p, &vars)?;
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    object(&mut cfg, "ExposedPorts").insert(p, json!({}));
                }
            }
            Instruction::Volume(vs) => {
                for v in vs {
                    let v = expand(v, &vars)?;
                    object(&mut cfg, "Volumes").insert(v, json!({}));
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
                    Some(Args::Shell(sh)) => {
                        h.insert("Test".into(), json!(["CMD-SHELL", sh]));
                    }
                }
                for (k, v) in [
                    ("Interval", &flags.interval),
                    ("Timeout", &flags.timeout),
                    ("StartPeriod", &flags.start_period),
                    ("StartInterval", &flags.start_interval),
                ] {
                    if let Some(v) = v {
                        let ns = crate::instructions::parse_duration(v).map_err(msg)?;
                        h.insert(k.into(), json!(ns));
                    }
                }
                if let Some(r) = &flags.retries {
                    h.insert("Retries".into(), json!(r.parse::<i64>().unwrap_or(0)));
                }
                cfg.insert("Healthcheck".into(), Value::Object(h));
            }
            Instruction::Run {
                args: a,
                heredocs,
                mounts,
                ..
            } => return self.run_step(st, s, cfg, vars, a, heredocs, mounts),
            Instruction::Copy {
                sources,
                dest,
                flags,
                heredocs,
            } => return self.copy_step(st, s, cfg, vars, sources, dest, flags, heredocs, false),
            Instruction::Add {
                sources,
                dest,
                flags,
                heredocs,
            } => return self.copy_step(st, s, cfg, vars, sources, dest, flags, heredocs, true),
        }
        // Metadata only: the config rides on the next layer or the stage's final commit.
        s.img.config = cfg;
        s.dirty = true;
        let id = short(&s.img.id);
        self.say(&format!(" ---> {id}\n"));
        Ok(())
    }

    /// `WORKDIR`: the directory is created (root-owned) when the image lacks it.
    fn workdir(
        &mut self,
        _st: &Step,
        s: &mut StageState,
        cfg: Map<String, Value>,
        wd: &str,
    ) -> Result<(), BuildError> {
        let key = cache_key(&[
            "workdir",
            s.img.id.as_deref().unwrap_or(""),
            wd,
            &Value::Object(cfg.clone()).to_string(),
        ]);
        let made = match self.cached(&key) {
            // Remembered as the parent itself: the directory was already there.
            Some(h) if h.id == s.img.id => None,
            Some(h) => Some(h),
            None => {
                let rootfs = self.exec.open_rootfs(&s.img).map_err(msg)?;
                let r = (|| -> Result<Option<ImageState>, BuildError> {
                    copy::apply(&rootfs.path, &[], wd, true, copy::Meta::default())
                        .map_err(|e| msg(format!("WORKDIR: {e}")))?;
                    self.exec
                        .commit_rootfs(&rootfs, &s.img, &cfg, &format!("WORKDIR {wd}"))
                        .map_err(msg)
                })();
                self.exec.close_rootfs(&rootfs);
                let made = r?;
                self.exec.remember(&key, made.as_ref().unwrap_or(&s.img));
                made
            }
        };
        match made {
            Some(img) => {
                s.img = img;
                s.img.config = cfg;
                s.dirty = false;
            }
            None => {
                s.img.config = cfg;
                s.dirty = true;
            }
        }
        let id = short(&s.img.id);
        self.say(&format!(" ---> {id}\n"));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &mut self,
        st: &Step,
        s: &mut StageState,
        cfg: Map<String, Value>,
        vars: Vec<(String, String)>,
        a: &Args,
        heredocs: &[Heredoc],
        mounts: &[String],
    ) -> Result<(), BuildError> {
        let mut cmd = argv(a, &cfg);
        if let (Args::Shell(sh), [h]) = (a, heredocs) {
            if sh.trim() == format!("<<{}", h.name) || sh.trim() == format!("<<-{}", h.name) {
                let mut v = shell_of(&cfg);
                v.push(h.content.clone());
                cmd = v;
            }
        }
        // Build args are in the environment of RUN, not in the image.
        let mut run_cfg = cfg.clone();
        for (k, v) in &s.args {
            if !env_list(&run_cfg).iter().any(|(e, _)| e == k) {
                set_env(&mut run_cfg, k, v);
            }
        }
        let mut held: Vec<Rootfs> = Vec::new();
        let r = self.run_with_mounts(st, s, &cfg, &run_cfg, &vars, a, cmd, mounts, &mut held);
        for h in &held {
            self.exec.close_rootfs(h);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn run_with_mounts(
        &mut self,
        st: &Step,
        s: &mut StageState,
        cfg: &Map<String, Value>,
        run_cfg: &Map<String, Value>,
        vars: &[(String, String)],
        a: &Args,
        cmd: Vec<String>,
        mounts: &[String],
        held: &mut Vec<Rootfs>,
    ) -> Result<(), BuildError> {
        let (run_mounts, mount_key) = self.run_mounts(mounts, vars, held)?;
        let created_by = format!("/bin/sh -c {}", st.original);
        let key = cache_key(&[
            "run",
            s.img.id.as_deref().unwrap_or(""),
            &serde_json::to_string(&cmd).unwrap_or_default(),
            &Value::Object(run_cfg.clone()).to_string(),
            &mount_key,
        ]);
        if let Some(hit) = self.cached(&key) {
            s.img = ImageState {
                id: hit.id,
                config: cfg.clone(),
            };
            s.dirty = false;
            let id = short(&s.img.id);
            self.say(&format!(" ---> Using cache\n ---> {id}\n"));
            return Ok(());
        }
        // The predefined proxy args reach RUN without an ARG, and stay out of the cache key.
        let mut run_cfg = run_cfg.clone();
        for (k, v) in &self.opts.build_args {
            if BUILTIN_ARGS.contains(&k.as_str()) && !env_list(&run_cfg).iter().any(|(e, _)| e == k)
            {
                set_env(&mut run_cfg, k, v);
            }
        }
        let r = self
            .exec
            .run(
                &s.img,
                &run_cfg,
                cmd.clone(),
                &run_mounts,
                &created_by,
                self.out,
            )
            .map_err(msg)?;
        match r {
            Ok(mut new) => {
                self.exec.remember(&key, &new);
                new.config = cfg.clone();
                s.img = new;
                s.dirty = false;
                let id = short(&s.img.id);
                self.say(&format!(" ---> {id}\n"));
                Ok(())
            }
            Err(code) => {
                let cmdtext = match a {
                    Args::Shell(sh) => format!("/bin/sh -c {sh}"),
                    Args::Exec(v) => format!("{v:?}"),
                };
                Err(BuildError {
                    message: format!("The command '{cmdtext}' returned a non-zero code: {code}"),
                    code: Some(code),
                })
            }
        }
    }

    /// `RUN --mount=…` → mounts, and the text they add to the cache key.
    fn run_mounts(
        &mut self,
        raw: &[String],
        vars: &[(String, String)],
        held: &mut Vec<Rootfs>,
    ) -> Result<(Vec<RunMount>, String), BuildError> {
        let mut mounts = Vec::new();
        let mut key = String::new();
        for m in raw {
            let m = self
                .lex
                .process_word(m, &vars.to_vec())
                .map_err(|e| msg(e.0))?;
            let mut kind = "bind".to_string();
            let (mut target, mut source, mut from, mut id) = (None, None, None, None);
            let mut rw = false;
            for kv in m.split(',') {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                match k.trim().to_lowercase().as_str() {
                    "type" => kind = v.to_lowercase(),
                    "target" | "dst" | "destination" => target = Some(v.to_string()),
                    "source" | "src" => source = Some(v.to_string()),
                    "from" => from = Some(v.to_string()),
                    "id" => id = Some(v.to_string()),
                    "rw" | "readwrite" => rw = v.is_empty() || v == "true",
                    "ro" | "readonly" => rw = !(v.is_empty() || v == "true"),
                    "sharing" | "mode" | "uid" | "gid" | "required" | "size" => {}
                    other => return fail(format!("unexpected key '{other}' in '{kv}'")),
                }
            }
            let target = match (&target, kind.as_str()) {
                (Some(t), _) if !t.is_empty() => t.clone(),
                (_, "secret") | (_, "ssh") => String::new(),
                _ => return fail(format!("mount {m:?}: the target must be specified")),
            };
            match kind.as_str() {
                "bind" => {
                    let src = source.unwrap_or_default();
                    let (root, kind) = match &from {
                        None => (self.context.to_path_buf(), SourceKind::Context),
                        Some(f) => {
                            let img = self.image_for(f)?;
                            let r = self.exec.open_rootfs(&img).map_err(msg)?;
                            let p = r.path.clone();
                            held.push(r);
                            (p, SourceKind::Rootfs)
                        }
                    };
                    let found = copy::find_sources(&root, kind, std::slice::from_ref(&src), "RUN --mount")
                        .map_err(msg)?;
                    let digest = copy::digest(&found, &root, None).map_err(msg)?;
                    let Some(Source::Path { real, .. }) = found.into_iter().next() else {
                        return fail(format!("mount source {src:?} not found"));
                    };
                    key.push_str(&format!("bind:{target}:{rw}:{digest};"));
                    mounts.push(RunMount::Bind {
                        source: real,
                        target,
                        readonly: !rw,
                    });
                }
                "cache" => {
                    let id = id.unwrap_or_else(|| target.clone());
                    let dir = self.exec.cache_mount(&id).map_err(msg)?;
                    key.push_str(&format!("cache:{target};"));
                    mounts.push(RunMount::Bind {
                        source: dir,
                        target,
                        readonly: false,
                    });
                }
                "tmpfs" => {
                    key.push_str(&format!("tmpfs:{target};"));
                    mounts.push(RunMount::Tmpfs { target });
                }
                "secret" | "ssh" => {
                    return fail(format!(
                        "RUN --mount=type={kind} needs BuildKit's secret and SSH forwarding, which berth's builder does not provide"
                    ))
                }
                other => return fail(format!("unsupported mount type {other:?}")),
            }
        }
        Ok((mounts, key))
    }

    /// The image behind `--from=`: an earlier stage (by name or index) or an image.
    fn image_for(&mut self, from: &str) -> Result<ImageState, BuildError> {
        let from = self
            .lex
            .process_word(from, &self.meta)
            .map_err(|e| msg(e.0))?;
        if let Some(j) = self.b.stage_index(&from) {
            return match &self.built[j] {
                Some(i) => Ok(i.clone()),
                None => fail(format!("stage {from} was not built before it is used")),
            };
        }
        self.exec.resolve(&from, self.out).map_err(msg)
    }
}

impl Run<'_> {
    #[allow(clippy::too_many_arguments)]
    fn copy_step(
        &mut self,
        st: &Step,
        s: &mut StageState,
        cfg: Map<String, Value>,
        vars: Vec<(String, String)>,
        sources: &[String],
        dest: &str,
        flags: &CopyFlags,
        heredocs: &[Heredoc],
        is_add: bool,
    ) -> Result<(), BuildError> {
        // Scratch space only for what is written before the cache check (heredocs,
        // downloads): a cached COPY creates nothing.
        let tmp = if heredocs.is_empty() && !is_add {
            None
        } else {
            Some(self.exec.temp_dir().map_err(msg)?)
        };
        let mut held = Vec::new();
        let r = self.copy_inner(
            st,
            s,
            cfg,
            &vars,
            sources,
            dest,
            flags,
            heredocs,
            is_add,
            tmp.as_deref(),
            &mut held,
        );
        for h in &held {
            self.exec.close_rootfs(h);
        }
        if let Some(t) = &tmp {
            let _ = std::fs::remove_dir_all(t);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_inner(
        &mut self,
        st: &Step,
        s: &mut StageState,
        cfg: Map<String, Value>,
        vars: &[(String, String)],
        sources: &[String],
        dest: &str,
        flags: &CopyFlags,
        heredocs: &[Heredoc],
        is_add: bool,
        tmp: Option<&Path>,
        held: &mut Vec<Rootfs>,
    ) -> Result<(), BuildError> {
        let instr = if is_add { "ADD" } else { "COPY" };
        let vars = vars.to_vec();
        let lex = self.lex;
        let expand = |w: &str| {
            lex.process_word(w, &vars)
                .map_err(|e| msg(format!("line {}: {}", st.line, e.0)))
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
        let ends_dir = dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest == "..";
        let chown = flags.chown.as_deref().map(expand).transpose()?;
        let chmod = flags
            .chmod
            .as_deref()
            .map(copy::parse_chmod)
            .transpose()
            .map_err(msg)?;
        let (root, kind) = match &flags.from {
            Some(f) => {
                let img = self.image_for(f)?;
                let r = self.exec.open_rootfs(&img).map_err(msg)?;
                let p = r.path.clone();
                held.push(r);
                (p, SourceKind::Rootfs)
            }
            None => (self.context.to_path_buf(), SourceKind::Context),
        };
        let mut found: Vec<Source> = Vec::new();
        for (i, src) in sources.iter().enumerate() {
            if let Some(h) = heredocs
                .iter()
                .find(|h| src == &format!("<<{}", h.name) || src == &format!("<<-{}", h.name))
            {
                let content = if h.expand {
                    self.lex
                        .process_word(&h.content, &vars)
                        .unwrap_or_else(|_| h.content.clone())
                } else {
                    h.content.clone()
                };
                let f = scratch(tmp)?.join(format!("heredoc-{i}"));
                std::fs::write(&f, content).map_err(|e| msg(e.to_string()))?;
                found.push(Source::File {
                    real: f,
                    name: h.name.clone(),
                    mode: 0o644,
                    mtime: 0,
                });
                continue;
            }
            let src = expand(src)?;
            if is_add && (src.starts_with("http://") || src.starts_with("https://")) {
                let f = scratch(tmp)?.join(format!("download-{i}"));
                let mtime = self.exec.fetch(&src, &f).map_err(msg)?;
                let path = src.split(['?', '#']).next().unwrap_or("");
                let name = path
                    .splitn(4, '/')
                    .nth(3)
                    .and_then(|p| p.rsplit('/').next())
                    .unwrap_or("")
                    .to_string();
                if name.is_empty() && ends_dir {
                    return fail(format!(
                        "cannot determine filename from url: {src}: please specify the destination file name"
                    ));
                }
                found.push(Source::File {
                    real: f,
                    name,
                    mode: 0o600,
                    mtime: mtime.unwrap_or(0),
                });
                continue;
            }
            let mut matched =
                copy::find_sources(&root, kind, std::slice::from_ref(&src), instr).map_err(msg)?;
            if is_add && kind == SourceKind::Context {
                for m in matched.iter_mut() {
                    if let Source::Path { real, .. } = m {
                        if real.is_file() && copy::archive_kind(real).is_some() {
                            *m = Source::Archive { real: real.clone() };
                        }
                    }
                }
            }
            found.extend(matched);
        }
        if found.len() > 1 && !ends_dir {
            return fail(format!(
                "When using {instr} with more than one source file, the destination must be a directory and end with a /"
            ));
        }
        let files = self.exec.digest_cache_dir().map(|dir| copy::DigestCache {
            dir,
            known: self.opts.context_digests.clone(),
        });
        let cache = files.as_ref().filter(|_| kind == SourceKind::Context);
        let digest = copy::digest(&found, &root, cache).map_err(msg)?;
        let key = cache_key(&[
            "copy",
            s.img.id.as_deref().unwrap_or(""),
            instr,
            &dest_abs,
            if ends_dir { "dir" } else { "file" },
            &digest,
            chown.as_deref().unwrap_or(""),
            &chmod.map(|m| m.to_string()).unwrap_or_default(),
            &Value::Object(cfg.clone()).to_string(),
        ]);
        if let Some(hit) = self.cached(&key) {
            s.img = ImageState {
                id: hit.id,
                config: cfg,
            };
            s.dirty = false;
            let id = short(&s.img.id);
            self.say(&format!(" ---> Using cache\n ---> {id}\n"));
            return Ok(());
        }
        let rootfs = self.exec.open_rootfs(&s.img).map_err(msg)?;
        let r = (|| -> Result<Option<ImageState>, BuildError> {
            let owner = chown
                .as_deref()
                .map(|c| copy::chown_ids(&rootfs.path, c))
                .transpose()
                .map_err(msg)?;
            let meta = copy::Meta {
                owner,
                mode: chmod,
                root_owned: kind == SourceKind::Context,
            };
            copy::apply(&rootfs.path, &found, &dest_abs, ends_dir, meta)
                .map_err(|e| msg(format!("{instr} failed: {e}")))?;
            self.exec
                .commit_rootfs(
                    &rootfs,
                    &s.img,
                    &cfg,
                    &format!("/bin/sh -c #(nop) {}", st.original),
                )
                .map_err(msg)
        })();
        self.exec.close_rootfs(&rootfs);
        match r? {
            Some(img) => {
                self.exec.remember(&key, &img);
                s.img = img;
                s.img.config = cfg;
                s.dirty = false;
            }
            None => {
                s.img.config = cfg;
                s.dirty = true;
            }
        }
        let id = short(&s.img.id);
        self.say(&format!(" ---> {id}\n"));
        Ok(())
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
        fn resolve(&mut self, name: &str, _: &mut dyn FnMut(&str)) -> Result<ImageState, String> {
            self.log.push(format!("resolve {name}"));
            if name == "missing" {
                return Err("pull access denied for missing".into());
            }
            let mut cfg = Map::new();
            if name == "withtriggers" {
                cfg.insert("OnBuild".into(), json!(["RUN echo triggered"]));
            }
            Ok(self.next(&cfg))
        }
        fn run(
            &mut self,
            _: &ImageState,
            cfg: &Map<String, Value>,
            argv: Vec<String>,
            mounts: &[RunMount],
            _: &str,
            out: &mut dyn FnMut(&str),
        ) -> Result<Result<ImageState, i64>, String> {
            self.log.push(format!(
                "run {argv:?} env={:?} mounts={}",
                cfg.get("Env"),
                mounts.len()
            ));
            out("output\n");
            if argv.last().map(String::as_str) == Some("false") {
                return Ok(Err(1));
            }
            Ok(Ok(self.next(cfg)))
        }
        fn open_rootfs(&mut self, _: &ImageState) -> Result<Rootfs, String> {
            let path = self.temp_dir()?;
            Ok(Rootfs {
                id: path.display().to_string(),
                path,
            })
        }
        fn commit_rootfs(
            &mut self,
            r: &Rootfs,
            _: &ImageState,
            cfg: &Map<String, Value>,
            _: &str,
        ) -> Result<Option<ImageState>, String> {
            let mut files = Vec::new();
            fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
                for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                    let path = e.path();
                    let rel = path
                        .strip_prefix(base)
                        .unwrap_or(&path)
                        .display()
                        .to_string();
                    if path.is_dir() {
                        out.push(format!("{rel}/"));
                        walk(base, &path, out);
                    } else {
                        let c = std::fs::read_to_string(&path).unwrap_or_default();
                        out.push(format!("{rel}={}", c.trim()));
                    }
                }
            }
            walk(&r.path, &r.path, &mut files);
            files.sort();
            if files.is_empty() {
                return Ok(None);
            }
            self.log.push(format!("commit layer={files:?}"));
            Ok(Some(self.next(cfg)))
        }
        fn close_rootfs(&mut self, r: &Rootfs) {
            let _ = std::fs::remove_dir_all(&r.path);
        }
        fn commit_config(
            &mut self,
            _: &ImageState,
            cfg: &Map<String, Value>,
            _: &str,
        ) -> Result<ImageState, String> {
            self.log.push("commit config".into());
            Ok(self.next(cfg))
        }
        fn fetch(&mut self, url: &str, _: &Path) -> Result<Option<u64>, String> {
            Err(format!("no network in unit tests: {url}"))
        }
        fn cache_mount(&mut self, id: &str) -> Result<PathBuf, String> {
            let d = self.tmp.0.join("cache").join(id.replace('/', "_"));
            std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
            Ok(d)
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
        assert!(text.ends_with(&format!(" ---> {}\n", &id[7..19])), "{text}");
        assert_eq!(log[0], "resolve busybox");
        assert!(
            log[1].starts_with("run [\"/bin/sh\", \"-c\", \"echo $A\"]"),
            "{log:?}"
        );
        assert_eq!(log[2], "commit layer=[\"dst/\", \"dst/f.txt=hello\"]");
        // WORKDIR makes the missing directory; CMD after the last layer: a config commit.
        assert_eq!(log[3], "commit layer=[\"sub/\"]");
        assert_eq!(log[4], "commit config");
        assert_eq!(log.len(), 5);
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
        assert_eq!(log[1], "commit layer=[\"etc/\", \"etc/x=hi\"]");
        assert!(
            log[2].starts_with("run [\"/bin/sh\", \"-c\", \"echo a\\n\"]"),
            "{log:?}"
        );
    }

    #[test]
    fn onbuild_unused_args_and_waves() {
        let opts = Options {
            build_args: vec![
                ("UNUSED".into(), "1".into()),
                ("no_proxy".into(), "x".into()),
            ],
            ..Default::default()
        };
        let (r, log, text) = run("FROM withtriggers\nCMD [\"x\"]\n", &[], opts.clone());
        r.unwrap();
        // The proxy args reach RUN's environment without an ARG.
        assert!(log.iter().any(|l| l.contains("no_proxy=x")), "{log:?}");
        assert!(text.contains("# Executing 1 build trigger\n"), "{text}");
        assert!(log.iter().any(|l| l.contains("echo triggered")), "{log:?}");
        assert!(
            text.ends_with("[Warning] One or more build-args [UNUSED] were not consumed\n"),
            "{text}"
        );
        let df = parser::parse(
            "FROM busybox AS a\nRUN x\nFROM busybox AS b\nRUN y\nFROM a AS c\nCOPY --from=b /y /y\nFROM busybox AS unused\nFROM c\n",
        )
        .unwrap();
        let b = instructions::parse(&df).unwrap();
        let plan = b.plan(None).unwrap();
        assert_eq!(waves(&b, &plan), vec![vec![0, 1], vec![2], vec![4]]);
    }
}
