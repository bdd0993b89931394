//! Loading a project: finding the files, the environment (`.env`, `--env-file`, the shell),
//! YAML with anchors and merge keys, interpolation, `-f` merging, `extends`, profiles,
//! validation, and the normalised model `config` prints.

use crate::merge::{merge_documents, merge_service, to_map};
use crate::{dotenv, interp, Error};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The variables to interpolate with, or none (`--no-interpolate`).
type Interpolation<'a> = Option<&'a dyn Fn(&str) -> Option<String>>;

/// What the command line says (`-f`, `-p`, `--env-file`, `--profile`, `--project-directory`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub project_directory: Option<PathBuf>,
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// The shell's environment (wins over `.env`).
    pub environ: HashMap<String, String>,
    /// Where to look for the default files when `files` is empty.
    pub cwd: PathBuf,
    /// `config --no-interpolate`: the model as written (see `model::uninterpolated`).
    pub no_interpolate: bool,
}

/// The resolved project.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub working_dir: PathBuf,
    /// The normalised model (`config --format json`).
    pub model: Value,
    /// Warnings to print (obsolete `version`, …).
    pub warnings: Vec<String>,
    /// The compose files it was read from (absolute).
    pub files: Vec<PathBuf>,
    /// The interpolation environment: the shell's over the `.env` file's.
    pub environment: BTreeMap<String, String>,
    /// Every profile a service names, enabled or not (`config --profiles`).
    pub all_profiles: BTreeSet<String>,
}

impl Project {
    /// The `com.docker.compose.project.config_files` label: the files, comma-separated.
    pub fn config_files(&self) -> String {
        self.files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn service_names(&self) -> Vec<String> {
        self.model["services"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The `com.docker.compose.config-hash` of a service: sha256 of its resolved config
    /// (without what does not change the container: build, pull_policy, scale).
    pub fn config_hash(&self, service: &str) -> Option<String> {
        use sha2::Digest;
        let mut s = self.model["services"].get(service)?.clone();
        if let Some(o) = s.as_object_mut() {
            for k in ["build", "pull_policy", "scale"] {
                o.remove(k);
            }
            if let Some(d) = o.get_mut("deploy").and_then(Value::as_object_mut) {
                d.remove("replicas");
            }
        }
        let bytes = serde_json::to_vec(&s).ok()?;
        Some(hex::encode(sha2::Sha256::digest(&bytes)))
    }

    /// Services in dependency order (dependencies first).
    pub fn start_order(&self) -> Result<Vec<String>, Error> {
        let services = self.model["services"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut order = Vec::new();
        let mut state: HashMap<String, u8> = HashMap::new();
        fn visit(
            n: &str,
            services: &Map<String, Value>,
            state: &mut HashMap<String, u8>,
            order: &mut Vec<String>,
            path: &mut Vec<String>,
        ) -> Result<(), Error> {
            match state.get(n) {
                Some(2) => return Ok(()),
                Some(1) => {
                    path.push(n.to_string());
                    return Err(Error::Invalid(format!(
                        "dependency cycle detected: {}",
                        path.join(" -> ")
                    )));
                }
                _ => {}
            }
            state.insert(n.to_string(), 1);
            path.push(n.to_string());
            if let Some(deps) = services.get(n).and_then(|s| s["depends_on"].as_object()) {
                for dep in deps.keys() {
                    if services.contains_key(dep) {
                        visit(dep, services, state, order, path)?;
                    }
                }
            }
            path.pop();
            state.insert(n.to_string(), 2);
            order.push(n.to_string());
            Ok(())
        }
        for n in services.keys() {
            visit(n, &services, &mut state, &mut order, &mut Vec::new())?;
        }
        Ok(order)
    }
}

const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

const TOP_KEYS: &[&str] = &[
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
];

const SERVICE_KEYS: &[&str] = &[
    "annotations",
    "attach",
    "build",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "labels",
    "label_file",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "security_opt",
    "shm_size",
    "secrets",
    "sysctls",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "uts",
    "userns_mode",
    "volumes",
    "volumes_from",
    "working_dir",
    "models",
    "provider",
    "use_api_socket",
];

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Find the compose files, read the environment, and resolve the project.
pub fn load_project(opts: &Options) -> Result<Project, Error> {
    let files = find_files(opts)?;
    let working_dir = match &opts.project_directory {
        Some(d) => absolute(&opts.cwd, d),
        None => files
            .first()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.cwd.clone()),
    };
    // The environment: the shell wins over the env files.
    let mut dotenv_vars: HashMap<String, String> = HashMap::new();
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        let p = working_dir.join(".env");
        if p.is_file() {
            vec![p]
        } else {
            vec![]
        }
    } else {
        opts.env_files
            .iter()
            .map(|p| absolute(&opts.cwd, p))
            .collect()
    };
    for f in &env_files {
        let content = std::fs::read_to_string(f).map_err(io_err(f))?;
        let known = dotenv_vars.clone();
        let environ = &opts.environ;
        let parsed = dotenv::parse(&content, &|k| {
            environ.get(k).cloned().or_else(|| known.get(k).cloned())
        })
        .map_err(|e| Error::EnvFile(format!("{}: {e}", f.display())))?;
        dotenv_vars.extend(parsed);
    }
    let mut env = dotenv_vars;
    env.extend(opts.environ.clone());
    let lookup = |k: &str| env.get(k).cloned();
    let interpolation: Interpolation<'_> = (!opts.no_interpolate).then_some(&lookup);

    let mut warnings = Vec::new();
    let mut doc = Value::Object(Map::new());
    let mut includes: Vec<(PathBuf, Value)> = Vec::new();
    for f in &files {
        let mut d = read_document(f, interpolation, &mut warnings)?;
        if let Some(inc) = d.as_object_mut().and_then(|o| o.remove("include")) {
            let base = f.parent().unwrap_or(&working_dir).to_path_buf();
            includes.push((base, inc));
        }
        merge_documents(&mut doc, &d);
    }
    if doc.get("services").is_none() && includes.is_empty() {
        return Err(Error::Invalid("no service selected".into()));
    }
    validate_keys(&doc)?;
    resolve_extends(&mut doc, &working_dir, interpolation, &mut warnings)?;
    crate::merge::resolve_tags(&mut doc);

    let name = opts
        .project_name
        .clone()
        .or_else(|| env.get("COMPOSE_PROJECT_NAME").cloned())
        .filter(|n| !n.is_empty())
        .or_else(|| doc["name"].as_str().map(String::from))
        .unwrap_or_else(|| {
            working_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "default".into())
        });
    let name = normalize_project_name(&name);
    let mut profiles: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if let Some(p) = env.get("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
    }
    for (base, inc) in &includes {
        crate::include::apply(&mut doc, base, inc, &name, opts)?;
    }
    let all_profiles: BTreeSet<String> = doc["services"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(|s| s["profiles"].as_array())
        .flatten()
        .filter_map(|p| p.as_str().map(String::from))
        .collect();
    let model = if opts.no_interpolate {
        crate::model::uninterpolated(&doc, &name, &working_dir)
    } else {
        normalize(doc, &name, &working_dir, &profiles, &lookup)?
    };
    let project = Project {
        name,
        working_dir,
        model,
        warnings,
        files,
        environment: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        all_profiles,
    };
    project.start_order()?;
    Ok(project)
}

/// Makes a service's `develop.watch` paths absolute from `dir`; returns the rules.
pub(crate) fn resolve_watch_paths<'a>(
    o: &'a mut Map<String, Value>,
    dir: &Path,
) -> &'a mut [Value] {
    let Some(rules) = o
        .get_mut("develop")
        .and_then(|d| d.get_mut("watch"))
        .and_then(Value::as_array_mut)
    else {
        return &mut [];
    };
    for w in rules.iter_mut() {
        if let Some(p) = w.get("path").and_then(Value::as_str) {
            w["path"] = json!(clean(&absolute(dir, Path::new(p))).display().to_string());
        }
    }
    rules
}

pub(crate) fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

/// Lowercase, only `[a-z0-9_-]`, starting with a letter or digit (as compose normalises).
pub fn normalize_project_name(n: &str) -> String {
    let s: String = n
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    s.trim_start_matches(['_', '-']).to_string()
}

fn find_files(opts: &Options) -> Result<Vec<PathBuf>, Error> {
    if !opts.files.is_empty() {
        return Ok(opts.files.iter().map(|f| absolute(&opts.cwd, f)).collect());
    }
    if let Some(cf) = opts.environ.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        return Ok(cf
            .split(':')
            .map(|f| absolute(&opts.cwd, Path::new(f)))
            .collect());
    }
    let mut dir = Some(opts.cwd.as_path());
    while let Some(d) = dir {
        for f in DEFAULT_FILES {
            let p = d.join(f);
            if p.is_file() {
                let mut out = vec![p.clone()];
                let stem = f.rsplit_once('.').map(|x| x.0).unwrap_or(f);
                for ext in ["yaml", "yml"] {
                    let o = d.join(format!("{stem}.override.{ext}"));
                    if o.is_file() {
                        out.push(o);
                        break;
                    }
                }
                return Ok(out);
            }
        }
        dir = d.parent();
    }
    Err(Error::Invalid(
        "no configuration file provided: not found".into(),
    ))
}

/// One file: YAML (anchors, merge keys) → JSON → interpolated.
fn read_document(
    path: &Path,
    lookup: Interpolation<'_>,
    warnings: &mut Vec<String>,
) -> Result<Value, Error> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    parse_yaml_as(&text, &path.display().to_string(), lookup, warnings)
}

/// Parse a compose document from text (exposed for tests).
pub fn parse_yaml(
    text: &str,
    name: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Value, Error> {
    parse_yaml_as(text, name, Some(lookup), warnings)
}

/// Parse a compose document, interpolated with `lookup` if there is one.
fn parse_yaml_as(
    text: &str,
    name: &str,
    lookup: Interpolation<'_>,
    warnings: &mut Vec<String>,
) -> Result<Value, Error> {
    let mut y: serde_norway::Value = serde_norway::from_str(text).map_err(|e| Error::Yaml {
        path: name.to_string(),
        message: e.to_string(),
    })?;
    y.apply_merge().map_err(|e| Error::Yaml {
        path: name.to_string(),
        message: e.to_string(),
    })?;
    let mut v = to_json(&y).map_err(|m| Error::Yaml {
        path: name.to_string(),
        message: m,
    })?;
    if v.is_null() {
        v = Value::Object(Map::new());
    }
    if !v.is_object() {
        return Err(Error::Yaml {
            path: name.to_string(),
            message: "top-level object must be a mapping".into(),
        });
    }
    if let Some(o) = v.as_object_mut() {
        if o.remove("version").is_some() {
            warnings.push(format!(
                "{name}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion"
            ));
        }
        // Top-level extension fields (x-…) stay (compose prints them); a service's do not.
    }
    let Some(lookup) = lookup else {
        return Ok(v);
    };
    interp::take_unset();
    interpolate_values(&mut v, lookup, "")?;
    for name in interp::take_unset() {
        warnings.push(format!(
            "The \"{name}\" variable is not set. Defaulting to a blank string."
        ));
    }
    crate::cast::cast_types(&mut v, warnings)?;
    Ok(v)
}

fn to_json(y: &serde_norway::Value) -> Result<Value, String> {
    use serde_norway::Value as Y;
    Ok(match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().unwrap_or(0.0))
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(s) => Value::Array(s.iter().map(to_json).collect::<Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut o = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err("mapping keys must be strings".into()),
                };
                o.insert(key, to_json(v)?);
            }
            Value::Object(o)
        }
        // `!reset` / `!override` are kept for the merge; other tags are only their value.
        Y::Tagged(t) => match t.tag.to_string().trim_start_matches('!') {
            "reset" => json!({ crate::merge::RESET: to_json(&t.value)? }),
            "override" => json!({ crate::merge::OVERRIDE: to_json(&t.value)? }),
            _ => to_json(&t.value)?,
        },
    })
}

fn interpolate_values(
    v: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    path: &str,
) -> Result<(), Error> {
    match v {
        Value::String(s) => {
            *s = interp::interpolate(s, lookup).map_err(|e| match e {
                Error::Interpolation(m) if !path.is_empty() => {
                    Error::Interpolation(format!("{m} (in {path})"))
                }
                other => other,
            })?;
        }
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                interpolate_values(x, lookup, &format!("{path}[{i}]"))?;
            }
        }
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                interpolate_values(x, lookup, &p)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn validate_keys(doc: &Value) -> Result<(), Error> {
    let Some(o) = doc.as_object() else {
        return Ok(());
    };
    for k in o.keys() {
        if !TOP_KEYS.contains(&k.as_str()) && !k.starts_with("x-") {
            return Err(Error::Invalid(format!(
                "validating compose file: additional properties '{k}' not allowed"
            )));
        }
    }
    let Some(services) = o.get("services").and_then(Value::as_object) else {
        return Err(Error::Invalid("services must be a mapping".into()));
    };
    for (name, s) in services {
        let Some(so) = s.as_object() else {
            return Err(Error::Invalid(format!("services.{name} must be a mapping")));
        };
        for k in so.keys() {
            if !SERVICE_KEYS.contains(&k.as_str()) && !k.starts_with("x-") {
                return Err(Error::Invalid(format!(
                    "validating compose file: services.{name} additional properties '{k}' not allowed"
                )));
            }
        }
    }
    Ok(())
}

fn resolve_extends(
    doc: &mut Value,
    dir: &Path,
    lookup: Interpolation<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let names: Vec<String> = doc["services"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for n in names {
        let mut seen = vec![n.clone()];
        let resolved = extended(doc, &n, dir, lookup, warnings, &mut seen)?;
        doc["services"][&n] = resolved;
    }
    Ok(())
}

fn extended(
    doc: &Value,
    name: &str,
    dir: &Path,
    lookup: Interpolation<'_>,
    warnings: &mut Vec<String>,
    seen: &mut Vec<String>,
) -> Result<Value, Error> {
    let Some(svc) = doc["services"].get(name).cloned() else {
        return Err(Error::Invalid(format!(
            "cannot extend service {name:?}: service not found"
        )));
    };
    let Some(ext) = svc.get("extends").cloned() else {
        return Ok(svc);
    };
    let (base_name, file) = match &ext {
        Value::String(s) => (s.clone(), None),
        Value::Object(o) => (
            o.get("service")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            o.get("file").and_then(Value::as_str).map(String::from),
        ),
        _ => {
            return Err(Error::Invalid(format!(
                "services.{name}.extends must be a string or a mapping"
            )))
        }
    };
    if seen.contains(&base_name) && file.is_none() {
        return Err(Error::Invalid(format!(
            "circular extends: {} -> {base_name}",
            seen.join(" -> ")
        )));
    }
    seen.push(base_name.clone());
    let mut base = match file {
        Some(f) => {
            let p = absolute(dir, Path::new(&f));
            let other = read_document(&p, lookup, warnings)?;
            let d = p
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| dir.to_path_buf());
            let mut base = extended(&other, &base_name, &d, lookup, warnings, seen)?;
            if d != dir {
                rebase_paths(&mut base, &d);
            }
            base
        }
        None => extended(doc, &base_name, dir, lookup, warnings, seen)?,
    };
    if let Some(o) = base.as_object_mut() {
        // Never inherited: links, volumes_from, depends_on (the spec's rule).
        for k in ["links", "volumes_from", "depends_on"] {
            o.remove(k);
        }
    }
    let mut own = svc.clone();
    if let Some(o) = own.as_object_mut() {
        o.remove("extends");
    }
    merge_service(&mut base, &own);
    Ok(base)
}

/// The model as `docker compose config` prints it.
fn normalize(
    doc: Value,
    project: &str,
    dir: &Path,
    profiles: &BTreeSet<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, Error> {
    let mut services = Map::new();
    let all = doc["services"].as_object().cloned().unwrap_or_default();
    for (name, s) in &all {
        let svc_profiles: Vec<String> = s["profiles"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let active = svc_profiles.is_empty()
            || profiles.contains("*")
            || svc_profiles.iter().any(|p| profiles.contains(p));
        if active {
            services.insert(name.clone(), normalize_service(name, s, dir, lookup)?);
        }
    }
    // depends_on must name a service that exists.
    for (name, s) in &services {
        if let Some(deps) = s["depends_on"].as_object() {
            for dep in deps.keys() {
                if !services.contains_key(dep) {
                    let required = deps[dep]["required"].as_bool().unwrap_or(true);
                    if all.contains_key(dep) && !required {
                        continue;
                    }
                    return Err(Error::Invalid(format!(
                        "service {name:?} depends on undefined service {dep:?}: invalid compose project"
                    )));
                }
            }
        }
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(project));
    // Networks: every service on `default` unless it names networks or a network_mode.
    let mut networks = doc["networks"].as_object().cloned().unwrap_or_default();
    let uses_default = services
        .values()
        .any(|s| s["networks"].get("default").is_some());
    if uses_default && !networks.contains_key("default") {
        networks.insert("default".into(), json!({}));
    }
    for (k, n) in networks.iter_mut() {
        if n.is_null() {
            *n = json!({});
        }
        let external = n["external"].as_bool().unwrap_or(false);
        if n.get("name").is_none() {
            n["name"] = json!(if external {
                k.clone()
            } else {
                format!("{project}_{k}")
            });
        }
        if n["ipam"].is_null() && !external && n.get("ipam").is_none() {
            n["ipam"] = json!({});
        }
    }
    let mut volumes = doc["volumes"].as_object().cloned().unwrap_or_default();
    for n in networks.values_mut().chain(volumes.values_mut()) {
        if let Some(l) = n.get("labels").filter(|l| l.is_array()).cloned() {
            let m: BTreeMap<String, Value> = to_map(&l)
                .into_iter()
                .map(|(k, v)| (k, json!(scalar_string(&v))))
                .collect();
            n["labels"] = json!(m);
        }
    }
    for (k, v) in volumes.iter_mut() {
        if v.is_null() {
            *v = json!({});
        }
        let external = v["external"].as_bool().unwrap_or(false);
        if v.get("name").is_none() {
            v["name"] = json!(if external {
                k.clone()
            } else {
                format!("{project}_{k}")
            });
        }
    }
    // Resources no enabled service uses are left out, as compose does.
    let used = |kind: &str, key: &str| {
        services.values().any(|s| match kind {
            "networks" => s["networks"].get(key).is_some(),
            "volumes" => s["volumes"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|v| v["type"] == "volume" && v["source"].as_str() == Some(key))
            }),
            _ => s[kind]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["source"].as_str() == Some(key))),
        })
    };
    networks.retain(|k, _| used("networks", k));
    volumes.retain(|k, _| used("volumes", k));
    for (k, v) in doc.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("services".into(), Value::Object(services.clone()));
    if !networks.is_empty() {
        out.insert("networks".into(), Value::Object(networks));
    }
    if !volumes.is_empty() {
        out.insert("volumes".into(), Value::Object(volumes));
    }
    for k in ["secrets", "configs"] {
        if let Some(m) = doc[k].as_object() {
            let mut m = m.clone();
            m.retain(|key, _| used(k, key));
            for (key, v) in m.iter_mut() {
                if v.is_null() {
                    *v = json!({});
                }
                if let Some(f) = v["file"].as_str() {
                    v["file"] = json!(clean(&absolute(dir, Path::new(f))).display().to_string());
                }
                if v.get("name").is_none() {
                    let external = v["external"].as_bool().unwrap_or(false);
                    v["name"] = json!(if external {
                        key.clone()
                    } else {
                        format!("{project}_{key}")
                    });
                }
            }
            if !m.is_empty() {
                out.insert(k.into(), Value::Object(m));
            }
        }
    }
    let mut out = Value::Object(out);
    omit_false(&mut out);
    Ok(out)
}

/// Booleans compose's model leaves out when false (Go's `omitempty`): a `false` there is
/// the same as not saying it.
fn omit_false(model: &mut Value) {
    fn drop(v: Option<&mut Value>, keys: &[&str]) {
        if let Some(o) = v.and_then(Value::as_object_mut) {
            o.retain(|k, x| !(keys.contains(&k.as_str()) && *x == Value::Bool(false)));
        }
    }
    fn each(v: Option<&mut Value>) -> impl Iterator<Item = &mut Value> {
        v.and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|m| m.values_mut())
    }
    for s in each(model.get_mut("services")) {
        drop(
            Some(&mut *s),
            &[
                "privileged",
                "read_only",
                "stdin_open",
                "tty",
                "oom_kill_disable",
            ],
        );
        drop(s.get_mut("healthcheck"), &["disable"]);
        for d in each(s.get_mut("depends_on")) {
            drop(Some(d), &["restart"]);
        }
        let volumes = s.get_mut("volumes").and_then(Value::as_array_mut);
        for v in volumes.into_iter().flatten() {
            drop(Some(v), &["read_only"]);
        }
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        for r in each(model.get_mut(kind)) {
            drop(Some(r), &["external", "internal", "attachable"]);
        }
    }
}

fn normalize_service(
    name: &str,
    s: &Value,
    dir: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, Error> {
    let mut s = s.clone();
    let Some(o) = s.as_object_mut() else {
        return Ok(s);
    };
    match o.remove("profiles") {
        // An empty list is no profile at all.
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(p) => {
            o.insert("profiles".into(), p);
        }
        None => {}
    }
    // build: a string is the context.
    if let Some(b) = o.get("build").cloned() {
        let mut b = match b {
            Value::String(ctx) => json!({"context": ctx}),
            other => other,
        };
        let ctx = b["context"].as_str().unwrap_or(".").to_string();
        if !ctx.contains("://") && !ctx.starts_with("git@") {
            b["context"] = json!(clean(&absolute(dir, Path::new(&ctx))).display().to_string());
        }
        if b.get("dockerfile").is_none() && b.get("dockerfile_inline").is_none() {
            b["dockerfile"] = json!("Dockerfile");
        }
        normalize_build(&mut b, dir);
        o.insert("build".into(), b);
    }
    for k in ["command", "entrypoint"] {
        if let Some(Value::String(c)) = o.get(k).cloned() {
            o.insert(
                k.into(),
                json!(shell_split(&c)
                    .map_err(|m| Error::Invalid(format!("services.{name}.{k}: {m}")))?),
            );
        }
    }
    // environment: env_file entries first, later files over earlier, environment over all.
    let mut env: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(ef) = o.remove("env_file") {
        let entries: Vec<(String, bool)> = match ef {
            Value::String(p) => vec![(p, true)],
            Value::Array(a) => a
                .iter()
                .filter_map(|e| match e {
                    Value::String(p) => Some((p.clone(), true)),
                    Value::Object(m) => Some((
                        m.get("path")?.as_str()?.to_string(),
                        m.get("required").and_then(Value::as_bool).unwrap_or(true),
                    )),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        };
        for (p, required) in entries {
            let path = absolute(dir, Path::new(&p));
            let content = match std::fs::read_to_string(&path) {
                Ok(c) => c,
                Err(_) if !required => continue,
                Err(e) => return Err(Error::EnvFile(format!("{} not found: {e}", path.display()))),
            };
            for (k, v) in dotenv::parse(&content, lookup)? {
                env.insert(k, json!(v));
            }
        }
    }
    if let Some(e) = o.remove("environment") {
        for (k, v) in to_map(&e) {
            let v = match v {
                // A bare `KEY` takes the value from the environment, or stays unset.
                Value::Null => match lookup(&k) {
                    Some(x) => json!(x),
                    None => Value::Null,
                },
                Value::String(s) => json!(s),
                other => json!(scalar_string(&other)),
            };
            env.insert(k, v);
        }
    }
    if !env.is_empty() {
        o.insert("environment".into(), json!(env));
    }
    if let Some(l) = o.remove("labels") {
        let m: BTreeMap<String, Value> = to_map(&l)
            .into_iter()
            .map(|(k, v)| (k, json!(scalar_string(&v))))
            .collect();
        o.insert("labels".into(), json!(m));
    }
    // depends_on: the long form with its defaults.
    if let Some(d) = o.remove("depends_on") {
        let mut m = Map::new();
        match d {
            Value::Array(a) => {
                for x in a.iter().filter_map(Value::as_str) {
                    m.insert(
                        x.into(),
                        json!({"condition": "service_started", "required": true}),
                    );
                }
            }
            Value::Object(obj) => {
                for (k, mut v) in obj {
                    if v.is_null() {
                        v = json!({});
                    }
                    if v.get("condition").is_none() {
                        v["condition"] = json!("service_started");
                    }
                    if v.get("required").is_none() {
                        v["required"] = json!(true);
                    }
                    m.insert(k, v);
                }
            }
            _ => {}
        }
        o.insert("depends_on".into(), Value::Object(m));
    }
    // networks: a list is a map of nulls; none at all means `default`.
    match o.remove("networks") {
        Some(Value::Array(a)) => {
            let m: Map<String, Value> = a
                .iter()
                .filter_map(Value::as_str)
                .map(|n| (n.to_string(), Value::Null))
                .collect();
            o.insert("networks".into(), Value::Object(m));
        }
        Some(other) => {
            o.insert("networks".into(), other);
        }
        None if o.get("network_mode").is_none() => {
            o.insert("networks".into(), json!({"default": null}));
        }
        None => {}
    }
    if let Some(Value::Array(ports)) = o.remove("ports") {
        let mut out = Vec::new();
        for p in ports {
            match p {
                Value::Object(mut m) => {
                    // The long form's defaults, as compose prints them.
                    m.entry("mode").or_insert(json!("ingress"));
                    m.entry("protocol").or_insert(json!("tcp"));
                    out.push(Value::Object(m));
                }
                other => out.extend(
                    parse_port(&scalar_string(&other))
                        .map_err(|m| Error::Invalid(format!("services.{name}.ports: {m}")))?,
                ),
            }
        }
        // The same binding twice is one.
        let mut unique: Vec<Value> = Vec::new();
        for p in out {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        o.insert("ports".into(), Value::Array(unique));
    }
    if let Some(Value::Array(vols)) = o.remove("volumes") {
        let mut out = Vec::new();
        for v in vols {
            out.push(match v {
                Value::String(s) => parse_volume(&s, dir),
                Value::Object(mut m) => {
                    if m.get("type").and_then(Value::as_str) == Some("bind") {
                        if let Some(src) = m.get("source").and_then(Value::as_str) {
                            let p = resolve_host_path(src, dir);
                            m.insert("source".into(), json!(p));
                        }
                    }
                    Value::Object(m)
                }
                other => other,
            });
        }
        o.insert("volumes".into(), Value::Array(out));
    }
    if let Some(Value::Array(expose)) = o.remove("expose") {
        o.insert(
            "expose".into(),
            json!(expose.iter().map(scalar_string).collect::<Vec<_>>()),
        );
    }
    // sysctls: a map of strings, from either form.
    if let Some(x) = o.remove("sysctls") {
        let m: BTreeMap<String, Value> = to_map(&x)
            .into_iter()
            .map(|(k, v)| (k, json!(scalar_string(&v))))
            .collect();
        o.insert("sysctls".into(), json!(m));
    }
    // develop.watch: paths from the project directory, an `exec` with no command.
    for w in resolve_watch_paths(o, dir) {
        if w.get("exec").is_none() {
            w["exec"] = json!({ "command": null });
        }
    }
    // gpus: `all` is every device.
    if o.get("gpus").and_then(Value::as_str) == Some("all") {
        o.insert("gpus".into(), json!([{ "count": -1 }]));
    }
    normalize_service_forms(o, lookup);
    implicit_dependencies(o);
    Ok(s)
}

/// A service read from another file (`extends.file`): its relative paths are relative to
/// that file's directory, so they are made absolute before it merges into this one.
fn rebase_paths(svc: &mut Value, from: &Path) {
    let rebase = |p: &str| -> Option<String> {
        let relative = !p.starts_with('/') && !p.starts_with('~') && !p.contains("://");
        relative.then(|| clean(&absolute(from, Path::new(p))).display().to_string())
    };
    let Some(o) = svc.as_object_mut() else {
        return;
    };
    match o.get_mut("build") {
        Some(Value::String(ctx)) => {
            if let Some(p) = rebase(ctx) {
                *ctx = p;
            }
        }
        Some(b @ Value::Object(_)) => {
            let ctx = b["context"].as_str().unwrap_or(".").to_string();
            if !ctx.starts_with("git@") {
                if let Some(p) = rebase(&ctx) {
                    b["context"] = json!(p);
                }
            }
        }
        _ => {}
    }
    match o.get_mut("env_file") {
        Some(Value::String(f)) => {
            if let Some(p) = rebase(f) {
                *f = p;
            }
        }
        Some(Value::Array(a)) => {
            for e in a {
                match e {
                    Value::String(f) => {
                        if let Some(p) = rebase(f) {
                            *f = p;
                        }
                    }
                    Value::Object(m) => {
                        if let Some(p) = m.get("path").and_then(Value::as_str).and_then(rebase) {
                            m.insert("path".into(), json!(p));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    for v in o
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        match v {
            // Only a source that is a path (`./x`, `../x`) — a bare name is a volume.
            Value::String(spec) if spec.starts_with('.') => {
                if let Some((src, rest)) = spec.split_once(':') {
                    if let Some(p) = rebase(src) {
                        *spec = format!("{p}:{rest}");
                    }
                }
            }
            Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("bind") => {
                if let Some(p) = m.get("source").and_then(Value::as_str).and_then(rebase) {
                    m.insert("source".into(), json!(p));
                }
            }
            _ => {}
        }
    }
}

/// `extra_hosts` (a service's or a build's) as compose writes them: `host=ip`, one entry
/// per address.
fn host_entries(h: Value) -> Vec<String> {
    match h {
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| match v {
                Value::Array(ips) => ips
                    .iter()
                    .map(|ip| format!("{k}={}", scalar_string(ip)))
                    .collect(),
                other => vec![format!("{k}={}", scalar_string(other))],
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(scalar_string)
            .map(|e| {
                if e.contains('=') {
                    e
                } else {
                    match e.split_once(':') {
                        Some((h, ip)) => format!("{h}={ip}"),
                        None => e,
                    }
                }
            })
            .collect(),
        other => vec![scalar_string(&other)],
    }
}

/// The build section's own forms: extra contexts that are paths made absolute, hosts as
/// `host=ip`, secrets in the long form, the shm size in bytes.
fn normalize_build(b: &mut Value, dir: &Path) {
    if let Some(m) = b
        .get_mut("additional_contexts")
        .and_then(Value::as_object_mut)
    {
        for v in m.values_mut() {
            if let Some(p) = v.as_str() {
                let path = !p.contains("://") && !p.contains(':');
                if path {
                    *v = json!(clean(&absolute(dir, Path::new(p))).display().to_string());
                }
            }
        }
    }
    if let Some(h) = b.get_mut("extra_hosts") {
        *h = json!(host_entries(h.take()));
    }
    if let Some(a) = b.get_mut("secrets").and_then(Value::as_array_mut) {
        for r in a.iter_mut() {
            if let Value::String(n) = r {
                *r = json!({ "source": n });
            }
        }
    }
    if let Some(n) = b.get("shm_size").and_then(byte_size) {
        b["shm_size"] = json!(n.to_string());
    }
}

/// What `links`, `volumes_from` and `service:` modes imply: a `depends_on` entry (started,
/// required, restart) unless the service already names that dependency.
pub(crate) fn implicit_dependencies(o: &mut Map<String, Value>) {
    let mut deps: Vec<String> = Vec::new();
    for k in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(s) = o.get(k).and_then(Value::as_str) {
            if let Some(svc) = s.strip_prefix("service:") {
                deps.push(svc.to_string());
            }
        }
    }
    for v in o
        .get("volumes_from")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let first = scalar_string(v).split(':').next().unwrap_or("").to_string();
        if !first.is_empty() && first != "container" {
            deps.push(first);
        }
    }
    for l in o
        .get("links")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        deps.push(scalar_string(l).split(':').next().unwrap_or("").to_string());
    }
    if deps.is_empty() {
        return;
    }
    let d = o.entry("depends_on").or_insert_with(|| json!({}));
    for name in deps {
        if d.get(&name).is_none() {
            d[&name] = json!({"condition": "service_started", "required": true, "restart": true});
        }
    }
}

/// The canonical forms compose prints for the remaining keys: `command`/`entrypoint`
/// always present, string lists, `extra_hosts` as `host=ip`, the long forms of
/// `secrets`/`configs` and `healthcheck.test`, byte sizes in bytes, build args as a map.
fn normalize_service_forms(o: &mut Map<String, Value>, lookup: &dyn Fn(&str) -> Option<String>) {
    o.retain(|k, _| !k.starts_with("x-"));
    for k in ["command", "entrypoint"] {
        o.entry(k).or_insert(Value::Null);
    }
    for k in ["dns", "dns_search", "tmpfs"] {
        if let Some(Value::String(x)) = o.get(k).cloned() {
            o.insert(k.into(), json!([x]));
        }
    }
    if let Some(h) = o.remove("extra_hosts") {
        o.insert("extra_hosts".into(), json!(host_entries(h)));
    }
    if let Some(Value::Array(a)) = o.remove("secrets") {
        let long: Vec<Value> = a
            .into_iter()
            .map(|r| {
                let mut r = match r {
                    Value::String(n) => json!({ "source": n }),
                    other => other,
                };
                let src = r["source"].as_str().unwrap_or("").to_string();
                // A relative target stays as written (the engine puts it under
                // /run/secrets).
                if r["target"].is_null() {
                    r["target"] = json!(format!("/run/secrets/{src}"));
                }
                r
            })
            .collect();
        o.insert("secrets".into(), json!(long));
    }
    if let Some(Value::Array(a)) = o.remove("configs") {
        let long: Vec<Value> = a
            .into_iter()
            .map(|r| match r {
                Value::String(n) => json!({ "source": n }),
                other => other,
            })
            .collect();
        o.insert("configs".into(), json!(long));
    }
    if let Some(Value::String(t)) = o.get("healthcheck").map(|h| h["test"].clone()) {
        if let Some(h) = o.get_mut("healthcheck") {
            h["test"] = json!(["CMD-SHELL", t]);
        }
    }
    if let Some(Value::Array(vols)) = o.get_mut("volumes") {
        for v in vols {
            if let Some(size) = v.get("tmpfs").map(|t| t["size"].clone()) {
                if let Some(b) = byte_size(&size) {
                    v["tmpfs"]["size"] = json!(b.to_string());
                }
            }
        }
    }
    if let Some(res) = o
        .get_mut("deploy")
        .and_then(|d| d.get_mut("resources"))
        .and_then(Value::as_object_mut)
    {
        for r in res.values_mut() {
            if let Some(m) = r.get("memory").and_then(byte_size) {
                r["memory"] = json!(m.to_string());
            }
        }
    }
    if let Some(d) = o.get_mut("deploy").and_then(Value::as_object_mut) {
        if let Some(l) = d.remove("labels") {
            let m: BTreeMap<String, Value> = to_map(&l)
                .into_iter()
                .map(|(k, v)| (k, json!(scalar_string(&v))))
                .collect();
            d.insert("labels".into(), json!(m));
        }
        d.entry("resources").or_insert(json!({}));
        d.entry("placement").or_insert(json!({}));
    }
    for k in [
        "mem_limit",
        "mem_reservation",
        "memswap_limit",
        "shm_size",
        "mem_swappiness",
    ] {
        if let Some(b) = o.get(k).and_then(byte_size) {
            o.insert(k.into(), json!(b.to_string()));
        }
    }
    if let Some(Value::Array(devs)) = o.remove("devices") {
        let long: Vec<Value> = devs
            .into_iter()
            .map(|d| match d {
                Value::String(spec) => {
                    let parts: Vec<&str> = spec.split(':').collect();
                    let target = parts.get(1).copied().unwrap_or(parts[0]);
                    let perms = parts.get(2).copied().unwrap_or("rwm");
                    json!({"source": parts[0], "target": target, "permissions": perms})
                }
                other => other,
            })
            .collect();
        o.insert("devices".into(), json!(long));
    }
    if let Some(h) = o.get_mut("healthcheck").and_then(Value::as_object_mut) {
        for k in ["interval", "timeout", "start_period", "start_interval"] {
            if let Some(d) = h.get(k).and_then(Value::as_str).and_then(go_duration) {
                h.insert(k.into(), json!(d));
            }
        }
    }
    if let Some(d) = o
        .get("stop_grace_period")
        .and_then(Value::as_str)
        .and_then(go_duration)
    {
        o.insert("stop_grace_period".into(), json!(d));
    }
    if let Some(args) = o
        .get_mut("build")
        .and_then(|b| b.get_mut("args"))
        .filter(|a| a.is_array())
    {
        let mut m = Map::new();
        for e in args.as_array().cloned().unwrap_or_default() {
            let e = scalar_string(&e);
            match e.split_once('=') {
                Some((k, v)) => {
                    m.insert(k.into(), json!(v));
                }
                // A bare name takes its value from the environment, or is left out.
                None => {
                    if let Some(v) = lookup(&e) {
                        m.insert(e, json!(v));
                    }
                }
            }
        }
        *args = Value::Object(m);
    }
}

/// Parse a duration as compose accepts it (Go's `1m30s`, `1.5s`, `500ms`, `2h`).
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    Some(std::time::Duration::from_secs_f64(total))
}

/// A duration in Go's `time.Duration.String()` form (`1m0s`, `1.5s`, `500ms`), as compose
/// prints them.
fn go_duration(s: &str) -> Option<String> {
    let d = parse_duration(s)?;
    let ns = d.as_nanos();
    if ns == 0 {
        return Some("0s".into());
    }
    if ns < 1_000_000_000 {
        let (v, unit) = if ns < 1_000 {
            (ns as f64, "ns")
        } else if ns < 1_000_000 {
            (ns as f64 / 1e3, "µs")
        } else {
            (ns as f64 / 1e6, "ms")
        };
        return Some(format!("{}{unit}", trim_float(v)));
    }
    let secs_total = ns as f64 / 1e9;
    let h = (ns / 3_600_000_000_000) as u64;
    let m = ((ns / 60_000_000_000) % 60) as u64;
    let secs = secs_total - (h * 3600 + m * 60) as f64;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_float(secs)));
    Some(out)
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A compose byte size (`512M`, `1g`, `1000`) in bytes.
pub(crate) fn byte_size(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1i64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.trim()
        .parse::<f64>()
        .ok()
        .map(|n| (n * mult as f64) as i64)
}

pub(crate) fn scalar_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

pub(crate) fn resolve_host_path(src: &str, dir: &Path) -> String {
    if let Some(rest) = src.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return Path::new(&home).join(rest).display().to_string();
        }
    }
    clean(&absolute(dir, Path::new(src))).display().to_string()
}

/// A short-syntax volume: `[source:]target[:mode]`.
pub(crate) fn parse_volume(s: &str, dir: &Path) -> Value {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, target, mode) = match parts.len() {
        1 => (None, parts[0], None),
        2 => (Some(parts[0]), parts[1], None),
        _ => (Some(parts[0]), parts[1], Some(parts[2..].join(":"))),
    };
    let mut v = Map::new();
    let ro = mode
        .as_deref()
        .is_some_and(|m| m.split(',').any(|x| x == "ro"));
    match src {
        None => {
            v.insert("type".into(), json!("volume"));
            v.insert("target".into(), json!(target));
            v.insert("volume".into(), json!({}));
        }
        Some(src) if src.starts_with('.') || src.starts_with('/') || src.starts_with('~') => {
            v.insert("type".into(), json!("bind"));
            v.insert("source".into(), json!(resolve_host_path(src, dir)));
            v.insert("target".into(), json!(target));
            v.insert("bind".into(), json!({"create_host_path": true}));
        }
        Some(src) => {
            v.insert("type".into(), json!("volume"));
            v.insert("source".into(), json!(src));
            v.insert("target".into(), json!(target));
            v.insert("volume".into(), json!({}));
        }
    }
    if ro {
        v.insert("read_only".into(), json!(true));
    }
    // SELinux relabelling and propagation options of a bind.
    if v.get("type") == Some(&json!("bind")) {
        for opt in mode.as_deref().unwrap_or("").split(',') {
            match opt {
                "z" | "Z" => v["bind"]["selinux"] = json!(opt),
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                    v["bind"]["propagation"] = json!(opt)
                }
                _ => {}
            }
        }
    }
    if v.get("type") == Some(&json!("volume"))
        && mode
            .as_deref()
            .is_some_and(|m| m.split(',').any(|x| x == "nocopy"))
    {
        v["volume"]["nocopy"] = json!(true);
    }
    Value::Object(v)
}

/// A short-syntax port: `[[ip:]published[-range]:]target[-range][/proto]`.
pub fn parse_port(s: &str) -> Result<Vec<Value>, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((a, p)) => (a, p),
        None => (s, "tcp"),
    };
    // An IPv6 host ip is in brackets.
    let (ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, r) = r
            .split_once("]:")
            .ok_or_else(|| format!("invalid port {s:?}"))?;
        (Some(ip.to_string()), r.to_string())
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (None, spec.to_string()),
            // `ip:published:target`; an unbracketed IPv6 address holds colons too.
            n => (
                Some(parts[..n - 2].join(":")),
                format!("{}:{}", parts[n - 2], parts[n - 1]),
            ),
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (Some(p.to_string()), t.to_string()),
        None => (None, rest.clone()),
    };
    let range = |r: &str| -> Result<(u16, u16), String> {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: u16 = a.parse().map_err(|_| format!("invalid port {s:?}"))?;
        let b: u16 = b.parse().map_err(|_| format!("invalid port {s:?}"))?;
        Ok((a, b))
    };
    let (t0, t1) = range(&target)?;
    let mut out = Vec::new();
    let pubr = match published.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => Some(range(p)?),
        None => None,
    };
    for (i, t) in (t0..=t1).enumerate() {
        let mut v = json!({"mode": "ingress", "target": t, "protocol": proto});
        if let Some((p0, p1)) = pubr {
            let published = if p0 == p1 || t0 == t1 {
                if p0 == p1 {
                    p0.to_string()
                } else {
                    format!("{p0}-{p1}")
                }
            } else {
                (p0 as usize + i).to_string()
            };
            v["published"] = json!(published);
        }
        if let Some(ip) = &ip {
            if !ip.is_empty() {
                v["host_ip"] = json!(ip);
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// Split a command string the way compose does (POSIX shell words: quotes, backslashes).
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\'' => {
                have = true;
                loop {
                    match it.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                have = true;
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(x) = it.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)], opts: impl FnOnce(&mut Options)) -> Result<Project, Error> {
        let dir = std::env::temp_dir().join(format!(
            "berth-compose-test-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let dir = dir.join("My_App");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (n, c) in files {
            std::fs::write(dir.join(n), c).expect("write");
        }
        let mut o = Options {
            cwd: dir.clone(),
            ..Default::default()
        };
        opts(&mut o);
        let r = load_project(&o);
        let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(&dir));
        r
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn anchors_merge_keys_env_and_defaults() {
        let p = project(
            &[
                (
                    "compose.yaml",
                    "version: '3'\nx-common: &common\n  restart: always\n  environment:\n    A: from-anchor\nservices:\n  web:\n    <<: *common\n    image: busybox:${TAG:-latest}\n    command: sh -c 'echo \"hi there\"'\n    env_file: [web.env]\n    environment:\n      B: $$literal\n    ports: [\"8080:80\", \"127.0.0.1:53:53/udp\"]\n    volumes: [\"./src:/src:ro\", \"data:/data\", \"/anon\"]\n    depends_on: [db]\n  db:\n    image: db\n    profiles: [never]\nvolumes:\n  data:\n",
                ),
                ("web.env", "A=from-file\nC=c\n"),
                (".env", "TAG=1.36\n"),
            ],
            |o| o.profiles = vec!["never".into()],
        )
        .expect("load");
        assert_eq!(p.name, "my_app");
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains("`version` is obsolete")));
        let w = &p.model["services"]["web"];
        assert_eq!(w["image"], "busybox:1.36");
        assert_eq!(w["restart"], "always");
        assert_eq!(w["command"], json!(["sh", "-c", "echo \"hi there\""]));
        // Merge keys are shallow: the service's own environment replaces the anchor's;
        // env_file gives A and C, environment wins where both set a key.
        assert_eq!(
            w["environment"],
            json!({"A": "from-file", "B": "$literal", "C": "c"})
        );
        assert_eq!(
            w["ports"][0],
            json!({"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"})
        );
        assert_eq!(w["ports"][1]["host_ip"], "127.0.0.1");
        assert_eq!(w["ports"][1]["protocol"], "udp");
        assert_eq!(w["volumes"][0]["type"], "bind");
        assert_eq!(w["volumes"][0]["read_only"], true);
        assert!(w["volumes"][0]["source"]
            .as_str()
            .unwrap_or("")
            .ends_with("/My_App/src"));
        assert_eq!(
            w["volumes"][1],
            json!({"type": "volume", "source": "data", "target": "/data", "volume": {}})
        );
        assert_eq!(w["volumes"][2]["type"], "volume");
        assert_eq!(
            w["depends_on"],
            json!({"db": {"condition": "service_started", "required": true}})
        );
        assert_eq!(w["networks"], json!({"default": null}));
        assert_eq!(p.model["networks"]["default"]["name"], "my_app_default");
        assert_eq!(p.model["volumes"]["data"]["name"], "my_app_data");
        assert_eq!(p.start_order().expect("order"), vec!["db", "web"]);
        let h = p.config_hash("web").expect("hash");
        assert_eq!(h.len(), 64);
    }

    #[test]
    fn profiles_override_files_and_extends() {
        let p = project(
            &[
                (
                    "compose.yaml",
                    "name: Proj\nservices:\n  base:\n    image: a\n    environment: [X=1]\n  web:\n    extends: base\n    command: [\"x\"]\n  dbg:\n    image: d\n    profiles: [debug]\n",
                ),
                ("compose.override.yaml", "services:\n  web:\n    image: b\n"),
            ],
            |_| {},
        )
        .expect("load");
        assert_eq!(p.name, "proj");
        assert_eq!(p.service_names(), vec!["base", "web"]);
        assert_eq!(p.model["services"]["web"]["image"], "b");
        assert_eq!(p.model["services"]["web"]["environment"], json!({"X": "1"}));
        assert!(p.model["services"]["web"].get("extends").is_none());
    }

    #[test]
    fn bad_input_is_reported() {
        let e = project(
            &[("compose.yaml", "services:\n  web:\n    image: [\n")],
            |_| {},
        )
        .expect_err("yaml error");
        assert!(e.to_string().contains("line"), "{e}");
        let e = project(
            &[("compose.yaml", "services:\n  web:\n    imagee: a\n")],
            |_| {},
        )
        .expect_err("unknown key");
        assert!(
            e.to_string()
                .contains("services.web additional properties 'imagee' not allowed"),
            "{e}"
        );
        let e = project(
            &[(
                "compose.yaml",
                "services:\n  web:\n    image: \"${NEED:?set NEED please}\"\n",
            )],
            |_| {},
        )
        .expect_err("required");
        assert!(e.to_string().contains("set NEED please"), "{e}");
        let e = project(
            &[("compose.yaml", "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n")],
            |_| {},
        )
        .expect_err("cycle");
        assert!(e.to_string().contains("cycle"), "{e}");
        let e = project(
            &[(
                "compose.yaml",
                "services:\n  a:\n    image: x\n    depends_on: [zz]\n",
            )],
            |_| {},
        )
        .expect_err("missing dep");
        assert!(e.to_string().contains("undefined service \"zz\""), "{e}");
        let e = project(
            &[(
                "compose.yaml",
                "services:\n  a:\n    image: x\n    env_file: missing.env\n",
            )],
            |_| {},
        )
        .expect_err("env_file");
        assert!(e.to_string().contains("missing.env"), "{e}");
        project(
            &[("compose.yaml", "services:\n  a:\n    image: x\n    env_file:\n      - path: missing.env\n        required: false\n")],
            |_| {},
        )
        .expect("optional env_file");
    }

    #[test]
    fn include_imports_a_sub_project_with_its_own_paths_and_env() {
        let dir = std::env::temp_dir().join(format!("berth-include-{}", rand_suffix()));
        std::fs::create_dir_all(dir.join("app/sub")).expect("mkdir");
        std::fs::write(
            dir.join("app/compose.yaml"),
            "include:\n  - sub/compose.yaml\nservices:\n  web:\n    image: busybox\n    depends_on: [db]\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("app/sub/compose.yaml"),
            "services:\n  db:\n    image: busybox:${DB_TAG}\n    volumes: [./data:/data, dbv:/v]\nvolumes:\n  dbv:\n",
        )
        .expect("write");
        std::fs::write(dir.join("app/sub/.env"), "DB_TAG=1.35\n").expect("write");
        let r = load_project(&Options {
            cwd: dir.join("app"),
            ..Default::default()
        });
        let conflict = {
            std::fs::write(
                dir.join("app/compose.yaml"),
                "include:\n  - sub/compose.yaml\nservices:\n  db:\n    image: busybox\n",
            )
            .expect("write");
            load_project(&Options {
                cwd: dir.join("app"),
                ..Default::default()
            })
        };
        let _ = std::fs::remove_dir_all(&dir);
        let p = r.expect("load with include");
        let db = &p.model["services"]["db"];
        assert_eq!(db["image"], "busybox:1.35");
        assert_eq!(
            db["volumes"][0]["source"],
            dir.join("app/sub/data").display().to_string()
        );
        assert_eq!(p.model["volumes"]["dbv"]["name"], "app_dbv");
        assert_eq!(p.start_order().expect("order"), vec!["db", "web"]);
        let e = conflict.expect_err("a service defined twice").to_string();
        assert!(e.contains("services.db conflicts"), "{e}");
    }

    #[test]
    fn port_and_shell_forms() {
        assert_eq!(parse_port("3000-3001:80-81").expect("range").len(), 2);
        assert_eq!(
            parse_port("80").expect("p")[0],
            json!({"mode": "ingress", "target": 80, "protocol": "tcp"})
        );
        assert!(parse_port("x:y").is_err());
        assert_eq!(
            shell_split("a 'b c' \"d\\\"e\" f\\ g").expect("split"),
            vec!["a", "b c", "d\"e", "f g"]
        );
    }
}
