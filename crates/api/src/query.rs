//! Query strings the way Go's `url.Values.Encode` writes them (keys sorted, repeated keys
//! kept in insertion order), so berth's requests read like docker's.

/// An ordered set of query parameters.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.pairs.push((key.to_string(), value.into()));
        self
    }

    /// Adds `key=value` only when `value` is `Some` and non-empty.
    pub fn opt(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) if !v.is_empty() => self.set(key, v),
            _ => self,
        }
    }

    /// Adds `key=1` when `flag` is set (docker's encoding of booleans).
    pub fn flag(self, key: &str, flag: bool) -> Self {
        if flag {
            self.set(key, "1")
        } else {
            self
        }
    }

    /// Encodes as `?a=1&b=2`, or the empty string when there are no parameters.
    pub fn encode(&self) -> String {
        if self.pairs.is_empty() {
            return String::new();
        }
        let mut sorted: Vec<&(String, String)> = self.pairs.iter().collect();
        // A stable sort keeps repeated keys (names=a&names=b) in the caller's order.
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let parts: Vec<String> = sorted
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        format!("?{}", parts.join("&"))
    }
}

/// Go's `url.QueryEscape`: space becomes `+`, unreserved characters stay.
fn encode_component(s: &str) -> String {
    urlencoding::encode(s).replace("%20", "+")
}

/// Escapes one path segment (a container or image name may contain `/` for images,
/// which docker leaves unescaped, so only characters that would break the URL are escaped).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '.' | '_' | '~' | '/' | ':' | '@' | '+' => {
                out.push(c)
            }
            _ => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_sorted_like_go() {
        let q = Query::new().set("signal", "SIGINT").set("t", "3");
        assert_eq!(q.encode(), "?signal=SIGINT&t=3");
        let q = Query::new().set("t", "3").set("signal", "SIGINT");
        assert_eq!(q.encode(), "?signal=SIGINT&t=3");
    }

    #[test]
    fn escapes_values() {
        let q = Query::new()
            .set("author", "Jane <j@x>")
            .set("changes", "ENV A=B")
            .set("changes", "CMD [\"sh\"]");
        assert_eq!(
            q.encode(),
            "?author=Jane+%3Cj%40x%3E&changes=ENV+A%3DB&changes=CMD+%5B%22sh%22%5D"
        );
        assert_eq!(Query::new().encode(), "");
        assert_eq!(
            Query::new().flag("all", false).opt("x", Some("")).encode(),
            ""
        );
    }

    #[test]
    fn path_segments_keep_image_names() {
        assert_eq!(
            path_segment("localhost:5000/busybox"),
            "localhost:5000/busybox"
        );
        assert_eq!(path_segment("a b"), "a%20b");
    }
}
