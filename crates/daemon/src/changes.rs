//! `commit --change` / `import --change`: the Dockerfile instructions that edit an image config.

use serde_json::{json, Map, Value};

/// Apply instructions like `CMD ["sh"]`, `ENV A=1`, `EXPOSE 80` to a config (Docker's JSON field names).
pub fn apply(config: &mut Map<String, Value>, changes: &[String]) -> Result<(), String> {
    for change in changes {
        let line = change.trim();
        if line.is_empty() {
            continue;
        }
        let (instr, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match instr.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), json!(command_form(rest, false)?));
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), json!(command_form(rest, true)?));
            }
            "ENV" => {
                let mut env: Vec<String> = list(config, "Env");
                for (k, v) in key_values(rest)? {
                    env.retain(|e| e.split('=').next() != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
                config.insert("Env".into(), json!(env));
            }
            "LABEL" => {
                let mut labels = config
                    .get("Labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in key_values(rest)? {
                    labels.insert(k, json!(v));
                }
                config.insert("Labels".into(), Value::Object(labels));
            }
            "EXPOSE" => {
                let mut ports = config
                    .get("ExposedPorts")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    ports.insert(p, json!({}));
                }
                config.insert("ExposedPorts".into(), Value::Object(ports));
            }
            "VOLUME" => {
                let mut vols = config
                    .get("Volumes")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let paths: Vec<String> = if rest.starts_with('[') {
                    serde_json::from_str(rest).map_err(|e| format!("VOLUME: {e}"))?
                } else {
                    rest.split_whitespace().map(String::from).collect()
                };
                for p in paths {
                    vols.insert(p, json!({}));
                }
                config.insert("Volumes".into(), Value::Object(vols));
            }
            "USER" => {
                config.insert("User".into(), json!(rest));
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(rest));
            }
            "STOPSIGNAL" => {
                config.insert("StopSignal".into(), json!(rest));
            }
            "ONBUILD" => {
                let mut ob = list(config, "OnBuild");
                ob.push(rest.to_string());
                config.insert("OnBuild".into(), json!(ob));
            }
            other => return Err(format!("{other} is not a valid change command")),
        }
    }
    Ok(())
}

fn list(config: &Map<String, Value>, key: &str) -> Vec<String> {
    config
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// JSON (exec) form, or shell form wrapped in `/bin/sh -c`.
fn command_form(rest: &str, _entrypoint: bool) -> Result<Vec<String>, String> {
    if rest.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(v);
        }
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

/// `K=V K2="v 2"` or the legacy `K V` form.
fn key_values(rest: &str) -> Result<Vec<(String, String)>, String> {
    if !rest.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or("missing value")?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, '"') | (None, '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => break,
                (_, '\\') => {
                    chars.next();
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                    continue;
                }
                _ => word.push(c),
            }
            chars.next();
        }
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("missing '=' in {word:?}"))?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn applies_common_changes() {
        let mut m = Map::new();
        apply(
            &mut m,
            &[
                r#"CMD ["sh"]"#.into(),
                "ENV A=1 B=\"two words\"".into(),
                "EXPOSE 80 53/udp".into(),
                "WORKDIR /app".into(),
                "ENTRYPOINT echo hi".into(),
            ],
        )
        .unwrap();
        assert_eq!(m["Cmd"], json!(["sh"]));
        assert_eq!(m["Env"], json!(["A=1", "B=two words"]));
        assert!(m["ExposedPorts"].get("53/udp").is_some());
        assert_eq!(m["WorkingDir"], json!("/app"));
        assert_eq!(m["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert!(apply(&mut m, &["BOGUS x".into()]).is_err());
    }
}
