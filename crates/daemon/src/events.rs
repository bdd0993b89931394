//! The daemon's event stream (`GET /events`, `docker events`): every change to a container,
//! image, network or volume is published here, kept in a bounded history for `since`, and
//! fanned out to subscribers. Compose v2 follows its containers through this stream.

use berth_api::models::{EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Events kept for `since` (dockerd keeps 256 too).
const HISTORY: usize = 256;

/// One published event, ready to filter and send.
#[derive(Debug, Clone)]
pub struct Event {
    pub typ: EventMessageTypeEnum,
    pub action: String,
    pub id: String,
    pub attributes: HashMap<String, String>,
    pub time_nano: i64,
}

impl Event {
    /// The wire form: the modern fields plus the legacy `status`/`id`/`from` that older
    /// clients read for container and image events.
    pub fn to_json(&self) -> serde_json::Value {
        let msg = EventMessage {
            typ: Some(self.typ),
            action: Some(self.action.clone()),
            actor: Some(EventActor {
                id: Some(self.id.clone()),
                attributes: Some(self.attributes.clone()),
            }),
            scope: Some(EventMessageScopeEnum::LOCAL),
            time: Some(self.time_nano / 1_000_000_000),
            time_nano: Some(self.time_nano),
        };
        let mut v = serde_json::to_value(msg).unwrap_or_default();
        if matches!(
            self.typ,
            EventMessageTypeEnum::CONTAINER | EventMessageTypeEnum::IMAGE
        ) {
            v["status"] = self.action.clone().into();
            v["id"] = self.id.clone().into();
            if let Some(image) = self.attributes.get("image") {
                v["from"] = image.clone().into();
            }
        }
        v
    }
}

pub struct Events {
    tx: broadcast::Sender<Arc<Event>>,
    history: Mutex<VecDeque<Arc<Event>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(1024).0,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
        }
    }
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Events {
    pub fn publish(
        &self,
        typ: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attributes: HashMap<String, String>,
    ) {
        let ev = Arc::new(Event {
            typ,
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            time_nano: now_nanos(),
        });
        {
            let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(ev.clone());
        }
        // No subscribers is not an error.
        let _ = self.tx.send(ev);
    }

    /// The events at or after `since` (nanoseconds) from the history, and a receiver for
    /// what comes next. Both are taken under the history lock so nothing falls between them.
    pub fn subscribe(
        &self,
        since: Option<i64>,
    ) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let past = match since {
            Some(t) => h.iter().filter(|e| e.time_nano >= t).cloned().collect(),
            None => Vec::new(),
        };
        (past, rx)
    }
}

/// Publish a container event with Docker's attributes: the labels, `image` and `name`, plus
/// `extra` (`exitCode` for die, `signal` for kill, …).
pub fn container(
    d: &crate::state::Daemon,
    rec: &crate::container::ContainerRecord,
    action: &str,
    extra: &[(&str, String)],
) {
    let mut attributes = crate::lifecycle::labels_of(rec);
    attributes.insert("image".into(), rec.image.clone());
    attributes.insert("name".into(), rec.name.clone());
    for (k, v) in extra {
        attributes.insert(k.to_string(), v.clone());
    }
    d.events
        .publish(EventMessageTypeEnum::CONTAINER, action, &rec.id, attributes);
}

/// Publish an image, network or volume event; `name` becomes the `name` attribute.
pub fn object(
    d: &crate::state::Daemon,
    typ: EventMessageTypeEnum,
    action: &str,
    id: &str,
    attrs: &[(&str, String)],
) {
    let attributes = attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    d.events.publish(typ, action, id, attributes);
}

/// `filters` of `/events`, as Docker matches them: values of one key are alternatives (OR),
/// different keys must all match (AND).
#[derive(Debug, Default)]
pub struct EventFilter {
    by_key: HashMap<String, Vec<String>>,
}

impl EventFilter {
    pub fn new(by_key: HashMap<String, Vec<String>>) -> Result<Self, String> {
        const KNOWN: &[&str] = &[
            "type",
            "event",
            "container",
            "image",
            "label",
            "network",
            "volume",
            "daemon",
            "scope",
        ];
        if let Some(k) = by_key.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("invalid filter '{k}'"));
        }
        Ok(EventFilter { by_key })
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.by_key
            .iter()
            .all(|(key, values)| values.is_empty() || values.iter().any(|v| self.one(key, v, e)))
    }

    fn one(&self, key: &str, v: &str, e: &Event) -> bool {
        let name = e.attributes.get("name").map(String::as_str);
        let of_type = |t: EventMessageTypeEnum| e.typ == t;
        match key {
            "type" => e.typ.to_string() == v,
            // `exec_start: sh -c …` matches `exec_start`; `health_status: healthy` both ways.
            "event" => e.action == v || e.action.split(':').next() == Some(v),
            "container" => {
                of_type(EventMessageTypeEnum::CONTAINER)
                    && (e.id == v || e.id.starts_with(v) && v.len() >= 12 || name == Some(v))
            }
            "image" => {
                let image = e.attributes.get("image").map(String::as_str);
                (of_type(EventMessageTypeEnum::IMAGE) && (e.id == v || name == Some(v)))
                    || image == Some(v)
                    || image.and_then(|i| i.split(':').next()) == Some(v)
            }
            "network" => {
                of_type(EventMessageTypeEnum::NETWORK)
                    && (e.id == v || e.id.starts_with(v) || name == Some(v))
            }
            "volume" => of_type(EventMessageTypeEnum::VOLUME) && e.id == v,
            "label" => match v.split_once('=') {
                Some((k, val)) => e.attributes.get(k).map(String::as_str) == Some(val),
                None => e.attributes.contains_key(v),
            },
            "scope" => v == "local",
            "daemon" => of_type(EventMessageTypeEnum::DAEMON),
            _ => false,
        }
    }
}

/// A `since`/`until` value as Docker takes it: Unix seconds (`1700000000`, `1700000000.5`),
/// RFC 3339, or a duration back from `now` (`10m`, `1h30m`). In nanoseconds.
pub fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if digits(secs) && (frac.is_empty() || digits(frac)) {
        let secs: i64 = secs
            .parse()
            .map_err(|_| format!("time out of range: \"{s}\""))?;
        let frac_ns: i64 = format!("{frac:0<9}")[..9].parse().unwrap_or(0);
        return Ok(secs * 1_000_000_000 + frac_ns);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now - d.as_nanos() as i64);
    }
    Err(format!(
        "failed to parse value as time or duration: \"{s}\""
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: EventMessageTypeEnum, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            typ,
            action: action.into(),
            id: id.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time_nano: 0,
        }
    }

    fn filter(pairs: &[(&str, &str)]) -> EventFilter {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        EventFilter::new(m).unwrap()
    }

    #[test]
    fn keys_and_and_values_or() {
        let start = ev(
            EventMessageTypeEnum::CONTAINER,
            "start",
            "abcdef0123456789",
            &[("name", "web"), ("image", "busybox:latest"), ("com.x", "1")],
        );
        assert!(filter(&[("type", "container"), ("event", "start")]).matches(&start));
        assert!(filter(&[("event", "die"), ("event", "start")]).matches(&start));
        assert!(!filter(&[("type", "container"), ("event", "die")]).matches(&start));
        assert!(filter(&[("container", "web")]).matches(&start));
        assert!(filter(&[("container", "abcdef012345")]).matches(&start));
        assert!(!filter(&[("container", "other")]).matches(&start));
        assert!(filter(&[("image", "busybox")]).matches(&start));
        assert!(filter(&[("label", "com.x")]).matches(&start));
        assert!(filter(&[("label", "com.x=1")]).matches(&start));
        assert!(!filter(&[("label", "com.x=2")]).matches(&start));
        assert!(!filter(&[("type", "network")]).matches(&start));
        let exec = ev(
            EventMessageTypeEnum::CONTAINER,
            "exec_start: sh -c x",
            "a",
            &[],
        );
        assert!(filter(&[("event", "exec_start")]).matches(&exec));
        assert!(EventFilter::new([("bogus".to_string(), vec![])].into()).is_err());
    }

    #[test]
    fn times_as_docker_takes_them() {
        let now = 2_000_000_000_000_000_000;
        assert_eq!(parse_time("1700000000", now), Ok(1_700_000_000_000_000_000));
        assert_eq!(
            parse_time("1700000000.5", now),
            Ok(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_time("10s", now), Ok(now - 10_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now),
            Ok(1_700_000_000_000_000_000)
        );
        assert!(parse_time("yesterday-ish", now).is_err());
    }

    #[test]
    fn history_replays_since_and_live_events_follow() {
        let events = Events::default();
        events.publish(EventMessageTypeEnum::VOLUME, "create", "v1", HashMap::new());
        let (past, mut rx) = events.subscribe(Some(0));
        assert_eq!(past.len(), 1);
        events.publish(
            EventMessageTypeEnum::VOLUME,
            "destroy",
            "v1",
            HashMap::new(),
        );
        let next = rx.try_recv().unwrap();
        assert_eq!(next.action, "destroy");
        let json = next.to_json();
        assert_eq!(json["Type"], "volume");
        assert_eq!(json["Actor"]["ID"], "v1");
        assert_eq!(json["scope"], "local");
    }
}
