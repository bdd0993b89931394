//! The top-level `include:` key: each entry is a compose application of its own (its paths
//! relative to its own directory, its own `.env`), loaded as a sub-project and whose
//! resources are imported into the including model. A resource defined on both sides is an
//! error, as in Docker Compose.

use crate::load::{load_project, Options};
use crate::Error;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One entry: `- path.yaml` or `- {path: [a.yaml, b.yaml], project_directory, env_file}`.
struct Entry {
    files: Vec<PathBuf>,
    project_directory: Option<PathBuf>,
    env_files: Vec<PathBuf>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn entries(base: &Path, include: &Value) -> Result<Vec<Entry>, Error> {
    let list = match include {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        _ => return Err(Error::Invalid("include must be a list".into())),
    };
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let (paths, dir, env) = match e {
            Value::String(s) => (vec![s.clone()], None, Vec::new()),
            Value::Object(o) => (
                o.get("path").map(strings).unwrap_or_default(),
                o.get("project_directory")
                    .and_then(Value::as_str)
                    .map(|d| base.join(d)),
                o.get("env_file").map(strings).unwrap_or_default(),
            ),
            _ => {
                return Err(Error::Invalid(format!(
                    "include[{i}] must be a string or a mapping"
                )))
            }
        };
        if paths.is_empty() {
            return Err(Error::Invalid(format!("include[{i}]: path is required")));
        }
        out.push(Entry {
            files: paths.iter().map(|p| base.join(p)).collect(),
            project_directory: dir,
            env_files: env.iter().map(|p| base.join(p)).collect(),
        });
    }
    Ok(out)
}

/// Import what the `include` entries define into `doc` (before it is normalised).
pub fn apply(
    doc: &mut Value,
    base: &Path,
    include: &Value,
    project: &str,
    opts: &Options,
) -> Result<(), Error> {
    for e in entries(base, include)? {
        let sub = load_project(&Options {
            files: e.files.clone(),
            project_name: Some(project.to_string()),
            project_directory: e.project_directory,
            env_files: e.env_files,
            profiles: opts.profiles.clone(),
            environ: opts.environ.clone(),
            cwd: base.to_path_buf(),
            no_interpolate: opts.no_interpolate,
        })?;
        for kind in ["services", "networks", "volumes", "secrets", "configs"] {
            let Some(theirs) = sub.model[kind].as_object() else {
                continue;
            };
            if !doc[kind].is_object() {
                doc[kind] = Value::Object(Default::default());
            }
            let Some(ours) = doc[kind].as_object_mut() else {
                continue;
            };
            for (k, v) in theirs {
                if let Some(existing) = ours.get(k) {
                    // The implicit default network is the same on both sides.
                    if kind == "networks" && (existing == v || existing.is_null()) {
                        continue;
                    }
                    return Err(Error::Invalid(format!(
                        "{kind}.{k} conflicts with imported resource from {}",
                        e.files[0].display()
                    )));
                }
                ours.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}
