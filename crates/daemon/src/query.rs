//! Query-string helpers: Docker's boolean flags ("1", "true", "True", "") and filters.

use serde::{Deserialize, Deserializer};
use std::collections::HashMap;

/// Docker treats "1"/"true"/"True" as true; "0"/"false"/"" as false.
pub fn bool_flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    Ok(parse_bool(s.as_deref()))
}

pub fn parse_bool(s: Option<&str>) -> bool {
    matches!(
        s.map(|s| s.to_ascii_lowercase()).as_deref(),
        Some("1") | Some("true") | Some("yes")
    )
}

/// `filters={"status":{"exited":true}}` or the older `{"status":["exited"]}` form.
pub fn parse_filters(raw: Option<&str>) -> Result<HashMap<String, Vec<String>>, String> {
    let mut out = HashMap::new();
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(out);
    };
    let v: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| format!("invalid filter: {e}"))?;
    let obj = v.as_object().ok_or("invalid filter: not an object")?;
    for (k, vals) in obj {
        let list: Vec<String> = match vals {
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, b)| b.as_bool() != Some(false))
                .map(|(k, _)| k.clone())
                .collect(),
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => return Err(format!("invalid filter value for {k}")),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn filters_both_forms() {
        let f = parse_filters(Some(r#"{"status":{"exited":true},"name":["web"]}"#)).unwrap();
        assert_eq!(f["status"], vec!["exited"]);
        assert_eq!(f["name"], vec!["web"]);
        assert!(parse_filters(Some("nope")).is_err());
        assert!(parse_bool(Some("True")));
        assert!(!parse_bool(Some("0")));
    }
}
