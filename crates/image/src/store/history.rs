//! Docker's `/images/{name}/history` view of an image.

use serde::{Deserialize, Serialize};

use super::{ImageMeta, ImageRecord};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HistoryItem {
    /// The image id for the newest entry, "<missing>" for the others.
    #[serde(rename = "Id")]
    pub id: String,
    /// Unix seconds.
    #[serde(rename = "Created")]
    pub created: i64,
    #[serde(rename = "CreatedBy")]
    pub created_by: String,
    #[serde(rename = "Tags")]
    pub tags: Option<Vec<String>>,
    #[serde(rename = "Size")]
    pub size: i64,
    #[serde(rename = "Comment")]
    pub comment: String,
}

pub(crate) fn build(rec: &ImageRecord, meta: &ImageMeta) -> Vec<HistoryItem> {
    let mut items = Vec::new();
    let mut layer = meta.layers.iter();
    let history = &rec.config.history;
    if history.is_empty() {
        for l in &meta.layers {
            items.push(HistoryItem {
                id: String::new(),
                created: unix(rec.created.as_deref()),
                created_by: String::new(),
                tags: None,
                size: l.size as i64,
                comment: String::new(),
            });
        }
    } else {
        for h in history {
            let size = if h.empty_layer.unwrap_or(false) {
                0
            } else {
                layer.next().map(|l| l.size as i64).unwrap_or(0)
            };
            items.push(HistoryItem {
                id: String::new(),
                created: unix(h.created.as_deref()),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: None,
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
    }
    items.reverse();
    for (i, item) in items.iter_mut().enumerate() {
        if i == 0 {
            item.id = rec.id.to_string();
            item.tags = Some(rec.repo_tags.clone());
        } else {
            item.id = "<missing>".to_string();
        }
    }
    items
}

fn unix(created: Option<&str>) -> i64 {
    created
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}
