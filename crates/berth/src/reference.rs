//! Image references the way docker's CLI normalises them before a pull:
//! `busybox` → `docker.io/library/busybox:latest`.

/// A parsed `[registry/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(s: &str) -> Self {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/' (a port is before it).
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => {
                (d.to_string(), p.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Reference {
            domain,
            path,
            tag,
            digest,
        }
    }

    /// `docker.io/library/busybox` (no tag).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, or `latest` when neither a tag nor a digest is given.
    pub fn tag_or_latest(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".into()),
        }
    }

    /// The short form docker prints: `busybox:latest`, `localhost:5000/foo:1.0`.
    pub fn familiar(&self) -> String {
        let repo = if self.domain == "docker.io" {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.repository()
        };
        match (&self.tag_or_latest(), &self.digest) {
            (Some(t), Some(d)) => format!("{repo}:{t}@{d}"),
            (Some(t), None) => format!("{repo}:{t}"),
            (None, Some(d)) => format!("{repo}@{d}"),
            (None, None) => repo,
        }
    }

    /// `docker.io/library/busybox:latest` or `...@sha256:..`.
    pub fn full(&self) -> String {
        match (&self.tag_or_latest(), &self.digest) {
            (_, Some(d)) => format!("{}@{d}", self.repository()),
            (Some(t), None) => format!("{}:{t}", self.repository()),
            (None, None) => self.repository(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("busybox");
        assert_eq!(r.repository(), "docker.io/library/busybox");
        assert_eq!(r.tag_or_latest().as_deref(), Some("latest"));
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse("localhost:5000/foo:1.0");
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("localhost:5000", "foo", Some("1.0"))
        );
        assert_eq!(r.familiar(), "localhost:5000/foo:1.0");
        let r = Reference::parse("alpine@sha256:cd");
        assert_eq!(r.tag_or_latest(), None);
        assert_eq!(r.full(), "docker.io/library/alpine@sha256:cd");
        let r = Reference::parse("localhost:5000/busybox");
        assert_eq!(r.tag, None);
        assert_eq!(
            Reference::parse("user/app:v2").repository(),
            "docker.io/user/app"
        );
    }
}
