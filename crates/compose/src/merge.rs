//! Merging compose files (`-f a.yml -f b.yml`, `extends`, `<<:` merge keys) by the spec's rules:
//! mappings merge key by key, the later file wins for scalars; some sequences are appended
//! (and de-duplicated), others replaced; `ports`/`volumes`/`environment`… merge by their key.

use serde_json::{Map, Value};

/// Merge `over` into `base` (a whole compose document).
pub fn merge_documents(base: &mut Value, over: &Value) {
    let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) else {
        *base = over.clone();
        return;
    };
    for (k, v) in o {
        match (k.as_str(), b.get_mut(k)) {
            ("services", Some(bs)) => {
                if let (Some(bs), Some(os)) = (bs.as_object_mut(), v.as_object()) {
                    for (name, svc) in os {
                        match bs.get_mut(name) {
                            Some(existing) => merge_service(existing, svc),
                            None => {
                                bs.insert(name.clone(), svc.clone());
                            }
                        }
                    }
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
            (_, Some(existing)) => deep_merge(existing, v),
            (_, None) => {
                b.insert(k.clone(), v.clone());
            }
        }
    }
}

/// YAML's `!reset` and `!override` tags, as the reader keeps them: a one-key mapping under
/// one of these keys (no YAML key can hold a NUL).
pub const RESET: &str = "\u{0}!reset";
pub const OVERRIDE: &str = "\u{0}!override";

/// `Some(None)` for `!reset`, `Some(Some(v))` for `!override v`.
fn tagged(v: &Value) -> Option<Option<&Value>> {
    let o = v.as_object().filter(|o| o.len() == 1)?;
    if o.contains_key(RESET) {
        return Some(None);
    }
    o.get(OVERRIDE).map(Some)
}

/// Apply a `!reset`/`!override` in `over` to the key `k` of `b`; false if `v` has no tag.
fn apply_tag(b: &mut Map<String, Value>, k: &str, v: &Value) -> bool {
    match tagged(v) {
        Some(None) => {
            b.remove(k);
        }
        Some(Some(x)) => {
            b.insert(k.to_string(), x.clone());
        }
        None => return false,
    }
    true
}

/// After merging: a `!reset` left is no value, an `!override` its value.
pub fn resolve_tags(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|_, x| tagged(x) != Some(None));
            for x in o.values_mut() {
                if let Some(Some(inner)) = tagged(x) {
                    *x = inner.clone();
                }
                resolve_tags(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(resolve_tags),
        _ => {}
    }
}

/// Merge one service definition over another.
pub fn merge_service(base: &mut Value, over: &Value) {
    let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) else {
        *base = over.clone();
        return;
    };
    for (k, v) in o {
        if apply_tag(b, k, v) {
            continue;
        }
        let Some(existing) = b.get_mut(k) else {
            b.insert(k.clone(), v.clone());
            continue;
        };
        match k.as_str() {
            // Replaced whole.
            "command" | "entrypoint" | "healthcheck" if !v.is_object() => *existing = v.clone(),
            // Sequences appended, duplicates dropped.
            "cap_add" | "cap_drop" | "dns" | "dns_search" | "expose" | "external_links"
            | "security_opt" | "profiles" | "env_file" | "configs" | "secrets" | "devices"
            | "tmpfs" => append_unique(existing, v),
            "environment" | "labels" | "extra_hosts" | "sysctls" | "annotations" => {
                let mut m = to_map(existing);
                for (kk, vv) in to_map(v) {
                    m.insert(kk, vv);
                }
                *existing = if k == "environment" || k == "labels" {
                    // Merged, compose writes them as a `KEY=value` list ordered by key.
                    Value::Array(
                        m.into_iter()
                            .map(|(kk, vv)| match vv {
                                Value::Null => Value::String(kk),
                                Value::String(s) => Value::String(format!("{kk}={s}")),
                                other => Value::String(format!("{kk}={other}")),
                            })
                            .collect(),
                    )
                } else {
                    Value::Object(m)
                };
            }
            "ports" => merge_by(existing, v, |p| p.to_string()),
            "volumes" => merge_by(existing, v, |vol| match vol {
                Value::String(s) => target_of_short_volume(s),
                Value::Object(o) => o
                    .get("target")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                other => other.to_string(),
            }),
            _ => deep_merge(existing, v),
        }
    }
}

fn target_of_short_volume(s: &str) -> String {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.len() {
        1 => parts[0].to_string(),
        _ => parts[1].to_string(),
    }
}

fn append_unique(existing: &mut Value, v: &Value) {
    let mut a = match &*existing {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let add = match v {
        Value::Array(x) => x.clone(),
        other => vec![other.clone()],
    };
    for x in add {
        if !a.contains(&x) {
            a.push(x);
        }
    }
    *existing = Value::Array(a);
}

fn merge_by(existing: &mut Value, v: &Value, key: impl Fn(&Value) -> String) {
    let mut a = existing.as_array().cloned().unwrap_or_default();
    for x in v.as_array().cloned().unwrap_or_default() {
        let k = key(&x);
        match a.iter().position(|y| key(y) == k) {
            Some(i) => a[i] = x,
            None => a.push(x),
        }
    }
    *existing = Value::Array(a);
}

/// `environment`/`labels` as a map, from either the list or the map form.
pub fn to_map(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str())
            .map(|s| match s.split_once('=') {
                Some((k, val)) => (k.to_string(), Value::String(val.to_string())),
                None => (s.to_string(), Value::Null),
            })
            .collect(),
        _ => Map::new(),
    }
}

/// Mappings merged key by key; anything else replaced.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base.as_object_mut(), over.as_object()) {
        (Some(b), Some(o)) => {
            for (k, v) in o {
                if apply_tag(b, k, v) {
                    continue;
                }
                match b.get_mut(k) {
                    Some(e) => deep_merge(e, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *base = over.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn override_rules() {
        let mut a = json!({"services": {"web": {
            "image": "a", "command": ["x"], "environment": ["A=1", "B=2"],
            "ports": ["80:80"], "cap_add": ["NET_ADMIN"], "volumes": ["d:/data"]}}});
        let b = json!({"services": {
            "web": {"image": "b", "command": ["y"], "environment": {"B": "3"},
                    "cap_add": ["NET_ADMIN", "SYS_TIME"], "volumes": ["e:/data", "/x"]},
            "db": {"image": "db"}}});
        merge_documents(&mut a, &b);
        let w = &a["services"]["web"];
        assert_eq!(w["image"], "b");
        assert_eq!(w["command"], json!(["y"]));
        // Merged, the environment is compose's `KEY=value` list, ordered by key.
        assert_eq!(w["environment"], json!(["A=1", "B=3"]));
        assert_eq!(w["cap_add"], json!(["NET_ADMIN", "SYS_TIME"]));
        assert_eq!(w["volumes"], json!(["e:/data", "/x"]));
        assert_eq!(a["services"]["db"]["image"], "db");
    }
}
