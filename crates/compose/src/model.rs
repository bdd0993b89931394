//! The model as written, without interpolation (`config --no-interpolate`): the files merged
//! (with `include` and `extends`), every service whatever its profiles, in compose's canonical
//! long forms where a value is literal — one that holds a variable stays as written, as
//! Docker Compose prints it (its untyped model, keys sorted).

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::load::{
    absolute, clean, parse_port, parse_volume, resolve_host_path, resolve_watch_paths,
    scalar_string,
};

/// `doc`: the merged files before normalisation.
pub fn uninterpolated(doc: &Value, project: &str, dir: &Path) -> Value {
    let mut out = Map::new();
    for (k, v) in doc.as_object().into_iter().flatten() {
        if k.starts_with("x-") {
            out.insert(k.clone(), v.clone());
        }
    }
    out.insert("name".into(), json!(project));
    let mut services = Map::new();
    for (name, s) in doc["services"].as_object().into_iter().flatten() {
        services.insert(name.clone(), service(s, dir));
    }
    let uses_default = services
        .values()
        .any(|s| s["networks"].get("default").is_some());
    let mut networks = doc["networks"].as_object().cloned().unwrap_or_default();
    if uses_default && !networks.contains_key("default") {
        networks.insert("default".into(), Value::Null);
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        let mut m = if kind == "networks" {
            std::mem::take(&mut networks)
        } else {
            doc[kind].as_object().cloned().unwrap_or_default()
        };
        for (key, v) in m.iter_mut() {
            if v.is_null() {
                *v = json!({});
            }
            if let Some(f) = v["file"].as_str().filter(|f| !f.contains('$')) {
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
            out.insert(kind.into(), Value::Object(m));
        }
    }
    out.insert("services".into(), Value::Object(services));
    // serde_json's maps are ordered by key, as Go prints a map.
    Value::Object(out)
}

fn literal(v: &Value) -> bool {
    !scalar_string(v).contains('$')
}

fn service(s: &Value, dir: &Path) -> Value {
    let mut s = s.clone();
    let Some(o) = s.as_object_mut() else {
        return s;
    };
    if let Some(b) = o.get("build").cloned() {
        let mut b = match b {
            Value::String(ctx) => json!({ "context": ctx }),
            other => other,
        };
        let ctx = b["context"].as_str().unwrap_or(".").to_string();
        if !ctx.contains("://") && !ctx.starts_with("git@") && !ctx.contains('$') {
            b["context"] = json!(clean(&absolute(dir, Path::new(&ctx))).display().to_string());
        }
        if b.get("dockerfile").is_none() && b.get("dockerfile_inline").is_none() {
            b["dockerfile"] = json!("Dockerfile");
        }
        if let Some(m) = b
            .get_mut("additional_contexts")
            .and_then(Value::as_object_mut)
        {
            for v in m.values_mut() {
                if let Some(p) = v.as_str().filter(|p| !p.contains(':')) {
                    *v = json!(clean(&absolute(dir, Path::new(p))).display().to_string());
                }
            }
        }
        if let Some(a) = b.get_mut("secrets").and_then(Value::as_array_mut) {
            for r in a.iter_mut() {
                if let Value::String(n) = r {
                    *r = json!({ "source": n });
                }
            }
        }
        // ssh: `id[=path]` entries as a map.
        if let Some(Value::Array(a)) = b.get("ssh").cloned() {
            let m: Map<String, Value> = a
                .iter()
                .map(|e| match scalar_string(e).split_once('=') {
                    Some((k, v)) => (k.to_string(), json!(v)),
                    None => (scalar_string(e), Value::Null),
                })
                .collect();
            b["ssh"] = Value::Object(m);
        }
        // A bare name in the list form has no value yet: compose leaves it out.
        if let Some(args) = b.get_mut("args").and_then(Value::as_array_mut) {
            args.retain(|a| !a.is_string() || scalar_string(a).contains('='));
        }
        o.insert("build".into(), b);
    }
    resolve_watch_paths(o, dir);
    if let Some(g @ Value::String(_)) = o.get("gpus").cloned() {
        o.insert("gpus".into(), json!([{ "count": g }]));
    }
    // An empty command or entrypoint is none at all in compose's untyped model.
    for k in ["command", "entrypoint"] {
        if o.get(k)
            .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
        {
            o.insert(k.into(), Value::Null);
        }
    }
    for k in ["dns"] {
        if let Some(Value::String(x)) = o.get(k).cloned() {
            o.insert(k.into(), json!([x]));
        }
    }
    if let Some(d) = o.remove("depends_on") {
        let mut m = Map::new();
        match d {
            Value::Array(a) => {
                for x in a.iter().filter_map(Value::as_str) {
                    m.insert(x.into(), Value::Null);
                }
            }
            Value::Object(obj) => m = obj,
            _ => {}
        }
        for v in m.values_mut() {
            if v.is_null() {
                *v = json!({});
            }
            if v.get("condition").is_none() {
                v["condition"] = json!("service_started");
            }
            if v.get("required").is_none() {
                v["required"] = json!(true);
            }
        }
        o.insert("depends_on".into(), Value::Object(m));
    }
    if let Some(ef) = o.remove("env_file") {
        let list = match ef {
            Value::Array(a) => a,
            other => vec![other],
        };
        let long: Vec<Value> = list
            .into_iter()
            .map(|e| {
                let mut e = match e {
                    Value::String(p) => json!({ "path": p }),
                    other => other,
                };
                // Joined to the project directory even when it holds a variable.
                if let Some(p) = e["path"].as_str() {
                    e["path"] = json!(clean(&absolute(dir, Path::new(p))).display().to_string());
                }
                if e.get("required").is_none() {
                    e["required"] = json!(true);
                }
                e
            })
            .collect();
        o.insert("env_file".into(), Value::Array(long));
    }
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
            o.insert("networks".into(), json!({ "default": null }));
        }
        None => {}
    }
    // Ports: the long forms if every short one parses; else the list stays as written.
    if let Some(Value::Array(ports)) = o.get("ports") {
        let mut out = Vec::new();
        let all_parse = ports.iter().all(|p| match p {
            Value::Object(m) => {
                let mut m = m.clone();
                m.entry("mode").or_insert(json!("ingress"));
                m.entry("protocol").or_insert(json!("tcp"));
                out.push(Value::Object(m));
                true
            }
            _ if !literal(p) => false,
            _ => parse_port(&scalar_string(p)).is_ok_and(|long| {
                out.extend(long);
                true
            }),
        });
        if all_parse {
            let mut unique: Vec<Value> = Vec::new();
            for p in out {
                if !unique.contains(&p) {
                    unique.push(p);
                }
            }
            o.insert("ports".into(), Value::Array(unique));
        }
    }
    if let Some(Value::Array(vols)) = o.remove("volumes") {
        let long: Vec<Value> = vols
            .into_iter()
            .map(|v| match v {
                Value::String(s) => short_volume(&s, dir),
                Value::Object(mut m) => {
                    if m.get("type").and_then(Value::as_str) == Some("bind") {
                        if let Some(src) = m
                            .get("source")
                            .and_then(Value::as_str)
                            .filter(|s| !s.contains('$'))
                        {
                            let p = resolve_host_path(src, dir);
                            m.insert("source".into(), json!(p));
                        }
                    }
                    Value::Object(m)
                }
                other => other,
            })
            .collect();
        o.insert("volumes".into(), Value::Array(long));
    }
    if let Some(Value::Array(a)) = o.remove("secrets") {
        let long: Vec<Value> = a
            .into_iter()
            .map(|r| match r {
                Value::String(n) => json!({ "source": n, "target": format!("/run/secrets/{n}") }),
                other => other,
            })
            .collect();
        o.insert("secrets".into(), Value::Array(long));
    }
    // A file mode written `0440` is YAML 1.1's octal number to compose's untyped model.
    for kind in ["secrets", "configs"] {
        for r in o
            .get_mut(kind)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let octal = r["mode"]
                .as_str()
                .filter(|m| m.len() > 1 && m.starts_with('0'))
                .and_then(|m| i64::from_str_radix(&m[1..], 8).ok());
            if let Some(n) = octal {
                r["mode"] = json!(n);
            }
        }
    }
    if let Some(Value::Array(a)) = o.remove("configs") {
        let long: Vec<Value> = a
            .into_iter()
            .map(|r| match r {
                Value::String(n) => json!({ "source": n }),
                other => other,
            })
            .collect();
        o.insert("configs".into(), Value::Array(long));
    }
    if let Some(Value::Array(devs)) = o.remove("devices") {
        let long: Vec<Value> = devs
            .into_iter()
            .map(|d| match d {
                Value::String(spec) if !spec.contains('$') => {
                    let parts: Vec<&str> = spec.split(':').collect();
                    let target = parts.get(1).copied().unwrap_or(parts[0]);
                    let perms = parts.get(2).copied().unwrap_or("rwm");
                    json!({"source": parts[0], "target": target, "permissions": perms})
                }
                other => other,
            })
            .collect();
        o.insert("devices".into(), Value::Array(long));
    }
    crate::load::implicit_dependencies(o);
    s
}

/// A short-syntax volume whose parts may hold `${…}` (with its own `:`), parsed as compose
/// does: the variable is one opaque piece of the source or target.
fn short_volume(s: &str, dir: &Path) -> Value {
    let mut vars = Vec::new();
    let mut masked = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let Some(j) = rest[i..].find('}') else { break };
        masked.push_str(&rest[..i]);
        masked.push_str(&format!("\u{1}{}\u{1}", vars.len()));
        vars.push(&rest[i..i + j + 1]);
        rest = &rest[i + j + 1..];
    }
    masked.push_str(rest);
    let mut v = parse_volume(&masked, dir);
    unmask(&mut v, &vars);
    v
}

fn unmask(v: &mut Value, vars: &[&str]) {
    match v {
        Value::String(s) if s.contains('\u{1}') => {
            for (i, var) in vars.iter().enumerate() {
                *s = s.replace(&format!("\u{1}{i}\u{1}"), var);
            }
        }
        Value::Object(m) => m.values_mut().for_each(|x| unmask(x, vars)),
        Value::Array(a) => a.iter_mut().for_each(|x| unmask(x, vars)),
        _ => {}
    }
}
