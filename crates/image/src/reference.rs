//! Image references with Docker's normalisation: `busybox` = `docker.io/library/busybox`.

use std::fmt;

use crate::digest::Digest;
use crate::error::ImageError;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host[:port], "docker.io" for Docker Hub.
    pub domain: String,
    /// Repository path; Docker Hub official images get "library/".
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses like Docker's `ParseNormalizedNamed`: no default tag is added.
    pub fn parse(s: &str) -> Result<Reference, ImageError> {
        let invalid = || ImageError::InvalidReference(String::new());
        if s.is_empty() {
            return Err(invalid());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((name, d)) => (name, Some(Digest::parse(d).map_err(|_| invalid())?)),
            None => (s, None),
        };
        // A ':' after the last '/' is a tag; before it, it is a registry port.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(invalid());
            }
        }
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(invalid());
        }
        let (domain, path) = split_domain(name);
        if path.is_empty() {
            return Err(invalid());
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ImageError::InvalidReference(format!(
                "repository name ({path}) must be lowercase"
            )));
        }
        if !valid_domain(&domain) || !path.split('/').all(valid_component) {
            return Err(invalid());
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Like `parse`, then adds `:latest` when there is neither tag nor digest.
    pub fn parse_normalized(s: &str) -> Result<Reference, ImageError> {
        let mut r = Reference::parse(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// The short repository name `docker images` shows: "busybox", "me/app", "localhost:5000/x".
    pub fn repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The fully qualified repository: "docker.io/library/busybox".
    pub fn full_repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The familiar form: "busybox:latest", "localhost:5000/me/x:1", "busybox@sha256:...".
    pub fn familiar(&self) -> String {
        self.with_suffix(self.repository())
    }

    /// The fully qualified form: "docker.io/library/busybox:latest".
    pub fn full(&self) -> String {
        self.with_suffix(self.full_repository())
    }

    fn with_suffix(&self, mut s: String) -> String {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

/// Docker's rule: the first component is a registry if it has a '.' or ':' or is "localhost"
/// (or has an uppercase letter, which then fails later as an invalid path).
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A path component: lowercase alphanumerics separated by '.', '_', '__' or runs of '-'.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host[1..host.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':');
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse_normalized("busybox").unwrap();
        assert_eq!(r.domain, "docker.io");
        assert_eq!(r.path, "library/busybox");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.full(), "docker.io/library/busybox:latest");
        assert_eq!(r.repository(), "busybox");
        assert!(Reference::parse("busybox").unwrap().tag.is_none());

        let r = Reference::parse("localhost:5000/me/x:1").unwrap();
        assert_eq!(r.domain, "localhost:5000");
        assert_eq!(r.familiar(), "localhost:5000/me/x:1");

        let r = Reference::parse("docker.io/library/busybox:1.36").unwrap();
        assert_eq!(r.familiar(), "busybox:1.36");
        let r = Reference::parse("me/app").unwrap();
        assert_eq!(r.familiar(), "me/app");
        assert_eq!(r.full(), "docker.io/me/app");

        let d = Digest::from_bytes(b"x");
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.digest.as_ref(), Some(&d));
        assert_eq!(r.familiar(), format!("busybox@{d}"));
    }

    #[test]
    fn rejects_bad_names() {
        let e = Reference::parse("Busybox").unwrap_err();
        assert!(e.to_string().contains("must be lowercase"), "{e}");
        for bad in ["", ":tag", "a:", "a b", "a//b", "-a", "a:t@x", "a/", "a::b"] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid reference format"),
                "{bad}: {e}"
            );
        }
    }
}
