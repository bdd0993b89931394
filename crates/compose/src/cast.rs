//! After interpolation, the values whose type the spec fixes are cast from the strings YAML
//! (or a variable) gave: `stdin_open: "${X:-true}"` is a boolean, `replicas: "${N}"` an
//! integer — and a value that does not cast is an error naming its path, as compose says it.

use serde_json::{json, Value};

use crate::Error;

#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    /// A byte size (`512m`): checked here, written in bytes by the normaliser.
    Bytes,
}

/// compose-go's cast table (paths below `services.<name>` or a top-level resource; `*`
/// matches any key or index).
const SERVICE_CASTS: &[(&[&str], Kind)] = &[
    (&["cpu_count"], Kind::Int),
    (&["cpu_percent"], Kind::Float),
    (&["cpu_period"], Kind::Int),
    (&["cpu_quota"], Kind::Int),
    (&["cpu_rt_period"], Kind::Int),
    (&["cpu_rt_runtime"], Kind::Int),
    (&["cpus"], Kind::Float),
    (&["cpu_shares"], Kind::Int),
    (&["init"], Kind::Bool),
    (&["depends_on", "*", "required"], Kind::Bool),
    (&["depends_on", "*", "restart"], Kind::Bool),
    (&["deploy", "replicas"], Kind::Int),
    (&["deploy", "update_config", "parallelism"], Kind::Int),
    (
        &["deploy", "update_config", "max_failure_ratio"],
        Kind::Float,
    ),
    (&["deploy", "rollback_config", "parallelism"], Kind::Int),
    (
        &["deploy", "rollback_config", "max_failure_ratio"],
        Kind::Float,
    ),
    (&["deploy", "restart_policy", "max_attempts"], Kind::Int),
    (&["deploy", "placement", "max_replicas_per_node"], Kind::Int),
    (&["deploy", "resources", "limits", "cpus"], Kind::Float),
    (&["deploy", "resources", "limits", "pids"], Kind::Int),
    (
        &["deploy", "resources", "reservations", "cpus"],
        Kind::Float,
    ),
    (&["healthcheck", "retries"], Kind::Int),
    (&["healthcheck", "disable"], Kind::Bool),
    (&["oom_kill_disable"], Kind::Bool),
    (&["oom_score_adj"], Kind::Int),
    (&["pids_limit"], Kind::Int),
    (&["ports", "*", "target"], Kind::Int),
    (&["privileged"], Kind::Bool),
    (&["read_only"], Kind::Bool),
    (&["scale"], Kind::Int),
    (&["stdin_open"], Kind::Bool),
    (&["mem_limit"], Kind::Bytes),
    (&["mem_reservation"], Kind::Bytes),
    (&["memswap_limit"], Kind::Bytes),
    (&["shm_size"], Kind::Bytes),
    (&["tty"], Kind::Bool),
    (&["ulimits", "*"], Kind::Int),
    (&["ulimits", "*", "hard"], Kind::Int),
    (&["ulimits", "*", "soft"], Kind::Int),
    (&["volumes", "*", "read_only"], Kind::Bool),
    (&["volumes", "*", "volume", "nocopy"], Kind::Bool),
];

const RESOURCE_CASTS: &[(&str, &str)] = &[
    ("networks", "external"),
    ("networks", "internal"),
    ("networks", "attachable"),
    ("networks", "enable_ipv4"),
    ("networks", "enable_ipv6"),
    ("volumes", "external"),
    ("secrets", "external"),
    ("configs", "external"),
];

/// Cast the typed values of an interpolated document; `warnings` gets compose's note for
/// YAML 1.1 booleans (`yes`, `on`, …).
pub fn cast_types(doc: &mut Value, warnings: &mut Vec<String>) -> Result<(), Error> {
    if let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) {
        for (name, s) in services.iter_mut() {
            for (path, kind) in SERVICE_CASTS {
                cast_at(s, path, *kind, &format!("services.{name}"), warnings)?;
            }
        }
    }
    for (kind, key) in RESOURCE_CASTS {
        if let Some(m) = doc.get_mut(*kind).and_then(Value::as_object_mut) {
            for (name, r) in m.iter_mut() {
                cast_at(r, &[key], Kind::Bool, &format!("{kind}.{name}"), warnings)?;
            }
        }
    }
    Ok(())
}

fn cast_at(
    v: &mut Value,
    path: &[&str],
    kind: Kind,
    at: &str,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let Some((first, rest)) = path.split_first() else {
        return cast(v, kind, at, warnings);
    };
    match (v, *first) {
        (Value::Object(m), "*") => {
            for (k, x) in m.iter_mut() {
                cast_at(x, rest, kind, &format!("{at}.{k}"), warnings)?;
            }
        }
        (Value::Array(a), "*") => {
            for (i, x) in a.iter_mut().enumerate() {
                cast_at(x, rest, kind, &format!("{at}[{i}]"), warnings)?;
            }
        }
        (Value::Object(m), k) => {
            if let Some(x) = m.get_mut(k) {
                cast_at(x, rest, kind, &format!("{at}.{k}"), warnings)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn cast(v: &mut Value, kind: Kind, at: &str, warnings: &mut Vec<String>) -> Result<(), Error> {
    let Value::String(s) = v else {
        return Ok(());
    };
    let failed = |why: String| {
        Error::Invalid(format!(
            "error while interpolating {at}: failed to cast to expected type: {why}"
        ))
    };
    *v = match kind {
        Kind::Bytes if crate::load::byte_size(&json!(s)).is_some() => return Ok(()),
        Kind::Bytes => {
            // compose names it as its decoder does: `services[web].mem_limit`.
            let mut parts = at.splitn(3, '.');
            let (_, service, key) = (parts.next(), parts.next(), parts.next());
            return Err(Error::Invalid(format!(
                "'services[{}].{}' invalid size: '{s}'",
                service.unwrap_or(""),
                key.unwrap_or("")
            )));
        }
        Kind::Bool => match s.to_lowercase().as_str() {
            "true" => json!(true),
            "false" => json!(false),
            l @ ("y" | "yes" | "on" | "n" | "no" | "off") => {
                warnings.push(format!(
                    "\"{s}\" for boolean is not supported by YAML 1.2, please use `{}`",
                    matches!(l, "y" | "yes" | "on")
                ));
                json!(matches!(l, "y" | "yes" | "on"))
            }
            _ => return Err(failed(format!("invalid boolean: {s}"))),
        },
        Kind::Int => match s.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => {
                return Err(failed(format!(
                    "strconv.Atoi: parsing {s:?}: invalid syntax"
                )))
            }
        },
        Kind::Float => match s.parse::<f64>() {
            // Go prints a whole float32 without a fraction.
            Ok(n) if n.fract() == 0.0 && n.abs() < 1e15 => json!(n as i64),
            Ok(n) => json!(n),
            Err(_) => {
                return Err(failed(format!(
                    "strconv.ParseFloat: parsing {s:?}: invalid syntax"
                )))
            }
        },
    };
    Ok(())
}
