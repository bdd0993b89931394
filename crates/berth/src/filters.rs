//! `--filter key=value` flags to the API's `filters` JSON ({"key":{"value":true}}).

use std::collections::BTreeMap;

pub fn to_json(filters: &[String]) -> anyhow::Result<Option<String>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))?;
        map.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.to_string(), true);
    }
    Ok(Some(serde_json::to_string(&map)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_like_docker() {
        assert_eq!(
            super::to_json(&["status=exited".into()]).unwrap().unwrap(),
            r#"{"status":{"exited":true}}"#
        );
        assert_eq!(super::to_json(&[]).unwrap(), None);
        assert!(super::to_json(&["nope".into()]).is_err());
    }
}
