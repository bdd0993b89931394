//! Reading the project back from the engine: its containers (by compose's labels), their
//! names and numbers, images, and the dependency levels used to start and stop in order.

use std::collections::HashMap;

use berth_api::Client;
use berth_compose::Project;
use serde_json::Value;

use super::spec;

/// Every container of the project (one-off `run` containers too), as `/containers/json`
/// lists them, ordered by service and number.
pub async fn project_containers(
    client: &Client,
    project: &str,
    service: Option<&str>,
) -> anyhow::Result<Vec<Value>> {
    let mut labels = vec![format!("{}={project}", spec::LABEL_PROJECT)];
    if let Some(s) = service {
        labels.push(format!("{}={s}", spec::LABEL_SERVICE));
    }
    let q = super::up::label_query(&labels);
    let mut v: Vec<Value> = client
        .get_json(&format!("/containers/json{}", q.encode()))
        .await?;
    v.sort_by(|a, b| {
        let key = |c: &Value| {
            (
                c["Labels"][spec::LABEL_SERVICE]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                number_of(c),
                name_of(c).to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(v)
}

/// A service's own containers (not `run`'s one-offs), by number.
pub async fn service_containers(
    client: &Client,
    project: &str,
    service: &str,
) -> anyhow::Result<Vec<Value>> {
    Ok(project_containers(client, project, Some(service))
        .await?
        .into_iter()
        .filter(|c| c["Labels"][spec::LABEL_ONEOFF].as_str() != Some("True"))
        .collect())
}

pub fn name_of(c: &Value) -> &str {
    c["Names"][0]
        .as_str()
        .map(|n| n.trim_start_matches('/'))
        .or_else(|| c["Id"].as_str())
        .unwrap_or("")
}

pub fn number_of(c: &Value) -> u32 {
    c["Labels"][spec::LABEL_NUMBER]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub fn service_of(c: &Value) -> &str {
    c["Labels"][spec::LABEL_SERVICE].as_str().unwrap_or("")
}

pub async fn image_exists(client: &Client, image: &str) -> anyhow::Result<bool> {
    match client.image_inspect_raw(image).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Each service's depth in the dependency graph (0: depends on nothing).
pub fn levels(p: &Project) -> anyhow::Result<HashMap<String, usize>> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for s in p.start_order()? {
        let level = p.model["services"][&s]["depends_on"]
            .as_object()
            .map(|m| {
                m.keys()
                    .filter_map(|d| out.get(d).map(|l| l + 1))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        out.insert(s, level);
    }
    Ok(out)
}
