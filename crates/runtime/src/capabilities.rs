//! Capability names: Docker's default set, the full list, and `--cap-add/--cap-drop` arithmetic.

use crate::error::{Result, RuntimeError};

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux knows, in number order (0..=40).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The kernel number of a capability name ("CAP_CHOWN" -> 0).
pub fn number(name: &str) -> Option<u32> {
    ALL_CAPS.iter().position(|c| *c == name).map(|n| n as u32)
}

/// "net_admin", "NET_ADMIN", "CAP_NET_ADMIN" -> "CAP_NET_ADMIN"; "ALL" stays "ALL".
fn normalize(name: &str) -> Result<String> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if number(&full).is_none() {
        return Err(RuntimeError::Spec(format!(
            "unknown capability: \"{full}\""
        )));
    }
    Ok(full)
}

/// Docker's capability arithmetic: start from `base`, add `add`, drop `drop` ("ALL" allowed in both).
pub fn tweak(base: &[&str], add: &[String], drop: &[String]) -> Result<Vec<String>> {
    let add = add
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<Vec<_>>>()?;
    let drop = drop
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<Vec<_>>>()?;
    let start: &[&str] = if add.iter().any(|c| c == "ALL") {
        ALL_CAPS
    } else {
        base
    };
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        start
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    for c in add.into_iter().filter(|c| c != "ALL") {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_drop() {
        let caps = tweak(
            DOCKER_DEFAULT_CAPS,
            &["net_admin".into()],
            &["CHOWN".into()],
        )
        .unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(caps.len(), DOCKER_DEFAULT_CAPS.len());
    }

    #[test]
    fn drop_all_keeps_adds() {
        let caps = tweak(DOCKER_DEFAULT_CAPS, &["KILL".into()], &["ALL".into()]).unwrap();
        assert_eq!(caps, vec!["CAP_KILL".to_string()]);
    }

    #[test]
    fn unknown_is_an_error() {
        assert!(tweak(DOCKER_DEFAULT_CAPS, &["FOO".into()], &[]).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
    }
}
