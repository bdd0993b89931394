//! Manifests, indexes and platform selection (Docker v2 schema 2 and OCI).

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// What a pull asks for, best first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<PlatformSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PlatformSpec {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

/// A manifest or an index, told apart by its media type or its fields.
#[derive(Clone, Debug, Deserialize)]
pub struct AnyManifest {
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

impl AnyManifest {
    pub fn parse(bytes: &[u8], content_type: &str) -> Result<AnyManifest> {
        let mut m: AnyManifest = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::Invalid(format!("invalid manifest: {e}")))?;
        if m.schema_version == 1 {
            return Err(RegistryError::Invalid(
                "Docker Image manifest schema 1 is not supported; push the image again with a newer client".into(),
            ));
        }
        if m.media_type.is_empty() {
            m.media_type = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
        }
        Ok(m)
    }

    pub fn is_index(&self) -> bool {
        self.media_type == DOCKER_LIST
            || self.media_type == OCI_INDEX
            || (self.config.is_none() && !self.manifests.is_empty())
    }
}

/// `os/arch[/variant]`, defaulting to the host's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        let arch = berth_image::store::go_arch();
        Platform {
            os: "linux".into(),
            architecture: arch.to_string(),
            variant: (arch == "arm64").then(|| "v8".to_string()),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Parses `--platform` ("linux/amd64", "linux/arm/v7", "amd64"); empty = host.
    pub fn parse(s: &str) -> Result<Platform> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Platform::default());
        }
        let parts: Vec<&str> = s.split('/').collect();
        let norm_arch = |a: &str| match a {
            "x86_64" | "x86-64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            other => other.to_ascii_lowercase(),
        };
        let (os, arch, variant) = match parts.as_slice() {
            [a] if *a != "linux" => ("linux".to_string(), norm_arch(a), None),
            [os] => (
                os.to_string(),
                berth_image::store::go_arch().to_string(),
                None,
            ),
            [os, a] => (os.to_string(), norm_arch(a), None),
            [os, a, v] => (os.to_string(), norm_arch(a), Some(v.to_string())),
            _ => {
                return Err(RegistryError::Invalid(format!(
                    "\"{s}\": unknown operating system or architecture: invalid argument"
                )))
            }
        };
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            architecture: arch,
            variant,
        })
    }

    /// The index entry for this platform: exact variant first, then any variant.
    pub fn select<'a>(&self, entries: &'a [Descriptor]) -> Option<&'a Descriptor> {
        let matches = |d: &&Descriptor, want_variant: bool| {
            d.platform.as_ref().is_some_and(|p| {
                p.os == self.os
                    && p.architecture == self.architecture
                    && (!want_variant || self.variant.is_none() || p.variant == self.variant)
            })
        };
        entries
            .iter()
            .find(|d| matches(d, true))
            .or_else(|| entries.iter().find(|d| matches(d, false)))
    }

    /// Docker's "linux/amd64" in the no-match message (no variant).
    pub fn short(&self) -> String {
        format!("{}/{}", self.os, self.architecture)
    }
}

/// Builds a single-platform manifest for an image that has none from a registry.
/// Docker's schema2 has no type for an uncompressed or zstd layer, so an image with any OCI
/// layer (a local build on a pulled base) gets an OCI manifest, its Docker-typed layers
/// described by their OCI equivalents: the same bytes under the other spec's name.
pub fn build_manifest(config: &Descriptor, layers: &[Descriptor]) -> (String, Vec<u8>) {
    let oci = layers.is_empty()
        || layers
            .iter()
            .any(|l| l.media_type.starts_with("application/vnd.oci."));
    let (mt, cfg_mt) = if oci {
        (OCI_MANIFEST, OCI_CONFIG)
    } else {
        (DOCKER_MANIFEST, DOCKER_CONFIG)
    };
    let mut cfg = config.clone();
    cfg.media_type = cfg_mt.to_string();
    let layers: Vec<Descriptor> = layers
        .iter()
        .map(|l| {
            let mut l = l.clone();
            if oci {
                l.media_type = match l.media_type.as_str() {
                    "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                        "application/vnd.oci.image.layer.v1.tar+gzip".into()
                    }
                    "application/vnd.docker.image.rootfs.diff.tar" => {
                        "application/vnd.oci.image.layer.v1.tar".into()
                    }
                    other => other.to_string(),
                };
            }
            l
        })
        .collect();
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": cfg,
        "layers": layers,
    });
    let bytes = serde_json::to_vec_pretty(&v).unwrap_or_default();
    (mt.to_string(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_layer_on_a_docker_base_gets_an_oci_manifest() {
        let layer = |mt: &str, d: &str| Descriptor {
            media_type: mt.into(),
            digest: d.into(),
            size: 1,
            platform: None,
        };
        let cfg = layer("", "sha256:c");
        let docker_gz = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        let (mt, bytes) = build_manifest(
            &cfg,
            &[
                layer(docker_gz, "sha256:a"),
                layer("application/vnd.oci.image.layer.v1.tar", "sha256:b"),
            ],
        );
        assert_eq!(mt, OCI_MANIFEST);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(
            v["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let (mt, _) = build_manifest(&cfg, &[layer(docker_gz, "sha256:a")]);
        assert_eq!(mt, DOCKER_MANIFEST);
    }

    fn entry(os: &str, arch: &str, variant: Option<&str>, d: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: d.into(),
            size: 1,
            platform: Some(PlatformSpec {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(str::to_string),
            }),
        }
    }

    #[test]
    fn selects_platform() {
        let e = vec![
            entry("linux", "arm", Some("v6"), "a"),
            entry("linux", "arm", Some("v7"), "b"),
            entry("linux", "amd64", None, "c"),
        ];
        assert_eq!(
            Platform::parse("linux/arm/v7")
                .unwrap()
                .select(&e)
                .unwrap()
                .digest,
            "b"
        );
        assert_eq!(
            Platform::parse("linux/amd64")
                .unwrap()
                .select(&e)
                .unwrap()
                .digest,
            "c"
        );
        assert_eq!(
            Platform::parse("x86_64")
                .unwrap()
                .select(&e)
                .unwrap()
                .digest,
            "c"
        );
        assert!(Platform::parse("linux/s390x").unwrap().select(&e).is_none());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn tells_index_from_manifest() {
        let m = AnyManifest::parse(
            br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:x","size":1}]}"#,
            "",
        )
        .unwrap();
        assert!(m.is_index());
        let m = AnyManifest::parse(
            br#"{"schemaVersion":2,"config":{"digest":"sha256:x","size":1},"layers":[]}"#,
            DOCKER_MANIFEST,
        )
        .unwrap();
        assert!(!m.is_index());
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert!(AnyManifest::parse(br#"{"schemaVersion":1}"#, "").is_err());
    }
}
