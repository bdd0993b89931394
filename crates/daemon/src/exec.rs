//! Exec instances: `POST /containers/{id}/exec`, `/exec/{id}/start|resize|json`.

use crate::error::{ApiError, ApiResult};
use crate::state::Daemon;
use berth_api::models::ExecConfig;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub running: bool,
    pub started: bool,
    pub pid: i64,
    pub exit_code: Option<i64>,
}

#[derive(Default)]
pub struct ExecRegistry {
    execs: Mutex<HashMap<String, Arc<Mutex<ExecRecord>>>>,
}

impl ExecRegistry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<ExecRecord>>>> {
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn insert(&self, rec: ExecRecord) {
        self.map().insert(rec.id.clone(), Arc::new(Mutex::new(rec)));
    }
    pub fn get(&self, id: &str) -> ApiResult<Arc<Mutex<ExecRecord>>> {
        self.map()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }
    pub fn ids_for_container(&self, cid: &str) -> Vec<String> {
        self.map()
            .values()
            .filter_map(|e| {
                let e = e.lock().unwrap_or_else(|p| p.into_inner());
                (e.container_id == cid && e.running).then(|| e.id.clone())
            })
            .collect()
    }
    pub fn remove_for_container(&self, cid: &str) -> usize {
        let mut m = self.map();
        let before = m.len();
        m.retain(|_, e| e.lock().unwrap_or_else(|p| p.into_inner()).container_id != cid);
        before - m.len()
    }
}

pub fn lock(e: &Mutex<ExecRecord>) -> std::sync::MutexGuard<'_, ExecRecord> {
    e.lock().unwrap_or_else(|p| p.into_inner())
}

/// The OCI process for an exec: the container's process, with the exec's overrides.
pub fn process_for(
    d: &Daemon,
    container_id: &str,
    cfg: &ExecConfig,
    rootfs: &std::path::Path,
) -> ApiResult<Value> {
    let data = std::fs::read(d.paths.bundle_dir(container_id).join("config.json"))?;
    let spec: Value =
        serde_json::from_slice(&data).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut p = spec.get("process").cloned().unwrap_or_else(|| json!({}));
    let args = cfg.cmd.clone().unwrap_or_default();
    if args.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    p["args"] = json!(args);
    p["terminal"] = json!(cfg.tty.unwrap_or(false));
    if let Some(extra) = &cfg.env {
        let mut env: Vec<String> = p["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for e in extra {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        p["env"] = json!(env);
    }
    if let Some(w) = cfg.working_dir.as_deref().filter(|w| !w.is_empty()) {
        p["cwd"] = json!(w);
    }
    if let Some(u) = cfg.user.as_deref().filter(|u| !u.is_empty()) {
        let r = berth_runtime::user::resolve(rootfs, u)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        p["user"] = json!({"uid": r.uid, "gid": r.gid, "additionalGids": r.additional_gids});
    }
    if cfg.privileged.unwrap_or(false) {
        let all = all_caps();
        p["capabilities"] = json!({"bounding": all, "effective": all, "permitted": all});
    }
    if let Some(cs) = &cfg.console_size {
        if cs.len() == 2 && cs[0] > 0 {
            p["consoleSize"] = json!({"height": cs[0], "width": cs[1]});
        }
    }
    Ok(p)
}

fn all_caps() -> Vec<String> {
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
    .iter()
    .map(|c| format!("CAP_{c}"))
    .collect()
}
