//! Registry credentials in docker's config.json (`auths.<server>.auth` = base64 "user:pass"),
//! and the `X-Registry-Auth` header built from them.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use serde_json::{json, Value};

/// docker's key for Docker Hub.
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

/// `$BERTH_CONFIG`, `$DOCKER_CONFIG`, or `~/.docker`.
pub fn config_dir() -> PathBuf {
    std::env::var_os("BERTH_CONFIG")
        .or_else(|| std::env::var_os("DOCKER_CONFIG"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".docker")
        })
}

pub fn config_path() -> PathBuf {
    config_dir().join("config.json")
}

pub fn load_config() -> Value {
    std::fs::read(config_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}))
}

pub fn save_config(cfg: &Value) -> anyhow::Result<()> {
    let dir = config_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(cfg, &mut ser)?;
    let path = config_path();
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, &out)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// The config key for a registry domain.
pub fn server_key(domain: &str) -> String {
    if domain == "docker.io" || domain == "index.docker.io" || domain.is_empty() {
        INDEX_SERVER.to_string()
    } else {
        domain.to_string()
    }
}

/// The credential helper configured for `key` (`credHelpers.<key>`, else `credsStore`).
pub fn helper_for(cfg: &Value, key: &str) -> Option<String> {
    cfg["credHelpers"][key]
        .as_str()
        .or_else(|| cfg["credsStore"].as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns its stdout.
pub fn run_helper(helper: &str, action: &str, input: &str) -> anyhow::Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running the credential helper {prog}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    anyhow::ensure!(
        out.status.success(),
        "error getting credentials - err: {prog} {action}: {text}"
    );
    Ok(text)
}

/// Stored credentials for `key`: from the credential helper, else from `auths`.
pub fn credentials(key: &str) -> Option<(String, String)> {
    let cfg = load_config();
    if let Some(h) = helper_for(&cfg, key) {
        let out = run_helper(&h, "get", key).ok()?;
        let v: Value = serde_json::from_str(&out).ok()?;
        return Some((
            v["Username"].as_str()?.to_string(),
            v["Secret"].as_str()?.to_string(),
        ));
    }
    let pair = cfg["auths"][key]["auth"]
        .as_str()
        .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
        .and_then(|b| String::from_utf8(b).ok())?;
    let (u, p) = pair.split_once(':').unwrap_or((pair.as_str(), ""));
    Some((u.to_string(), p.to_string()))
}

/// The base64url `X-Registry-Auth` value for `domain` ("e30=" = "{}" when none stored).
pub fn registry_auth_header(domain: &str) -> String {
    let key = server_key(domain);
    let auth = match credentials(&key) {
        Some((u, p)) => json!({"username": u, "password": p, "serveraddress": key}),
        None => json!({}),
    };
    base64::engine::general_purpose::URL_SAFE.encode(auth.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys() {
        assert_eq!(super::server_key("docker.io"), super::INDEX_SERVER);
        assert_eq!(super::server_key("localhost:5000"), "localhost:5000");
    }
}
