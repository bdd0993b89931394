//! TLS to registries (rustls with the ring provider): the system roots plus the CAs of the
//! registry's own `certs.d/<host[:port]>/` directory (Docker's `/etc/docker/certs.d` layout:
//! `*.crt` are CAs, `*.cert` + `*.key` a client certificate), or no verification at all for
//! insecure registries (loopback and `--insecure-registry`, as Docker's InsecureSkipVerify).
//!
//! certs.d is read again for each endpoint (a CA dropped in takes effect without a restart,
//! as in Docker); the system roots are read once per process.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{RegistryError, Result};

/// Docker's default certs.d for berth.
pub const DEFAULT_CERTS_DIR: &str = "/etc/berth/certs.d";

/// A TLS handshake that has not finished by then is a failure (a peer that never answers).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots (`/etc/ssl/certs`), loaded once.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("loading system CA certificates: {e}");
        }
        found.certs
    })
}

/// What `certs.d/<authority>/` holds for one registry.
#[derive(Default)]
struct HostCerts {
    cas: Vec<CertificateDer<'static>>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

/// Reads `dir/<authority>/`: every `*.crt` is a CA; `X.cert` with `X.key` is the client pair.
fn host_certs(dir: &Path, authority: &str) -> Result<HostCerts> {
    let mut out = HostCerts::default();
    let host_dir = dir.join(authority);
    let entries = match std::fs::read_dir(&host_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    let bad = |p: &Path, e: &dyn std::fmt::Display| {
        RegistryError::Invalid(format!("reading {}: {e}", p.display()))
    };
    for p in &files {
        match p.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                for c in CertificateDer::pem_file_iter(p).map_err(|e| bad(p, &e))? {
                    out.cas.push(c.map_err(|e| bad(p, &e))?);
                }
            }
            Some("cert") => {
                let key = p.with_extension("key");
                if !key.is_file() {
                    return Err(RegistryError::Invalid(format!(
                        "missing key {} for client certificate {}. CA certificates must use the extension .crt",
                        key.display(),
                        p.display()
                    )));
                }
                let chain = CertificateDer::pem_file_iter(p)
                    .map_err(|e| bad(p, &e))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| bad(p, &e))?;
                let k = PrivateKeyDer::from_pem_file(&key).map_err(|e| bad(&key, &e))?;
                out.client = Some((chain, k));
            }
            Some("key") if !p.with_extension("cert").is_file() => {
                return Err(RegistryError::Invalid(format!(
                    "missing client certificate {} for key {}",
                    p.with_extension("cert").display(),
                    p.display()
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The rustls client configuration for a registry at `authority` ("host:port" or "host").
pub(crate) fn client_config(
    certs_dir: Option<&Path>,
    authority: &str,
    verify: bool,
) -> Result<Arc<ClientConfig>> {
    let host = match certs_dir {
        Some(d) => host_certs(d, authority)?,
        None => HostCerts::default(),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Invalid(format!("TLS setup: {e}")))?;
    let builder = if verify {
        let mut roots = RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(system_roots().iter().cloned());
        if ignored > 0 {
            tracing::debug!("{ignored} system CA certificates could not be used");
        }
        for ca in host.cas {
            roots.add(ca).map_err(|e| {
                RegistryError::Invalid(format!("a CA certificate for {authority}: {e}"))
            })?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider())))
    };
    let cfg = match host.client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
            RegistryError::Invalid(format!("the client certificate for {authority}: {e}"))
        })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// TLS over `tcp` to `host`; errors say what went wrong the way Go's x509 package does.
pub(crate) async fn handshake(
    cfg: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> std::result::Result<TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid TLS server name {host}: {e}"))?;
    match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(describe(&e, host)),
        Err(_) => Err("net/http: TLS handshake timeout".to_string()),
    }
}

/// "tls: failed to verify certificate: x509: certificate signed by unknown authority", etc.
fn describe(e: &io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let Some(re) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return format!("tls: {e}");
    };
    let x509 = match re {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "x509: certificate signed by unknown authority".to_string(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("x509: certificate is not valid for {host}")
            }
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => {
                "x509: certificate has expired or is not yet valid".to_string()
            }
            other => format!("x509: {other:?}"),
        },
        // Docker's words for a plain-HTTP server answering a TLS hello.
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            return "http: server gave HTTP response to HTTPS client".to_string()
        }
        other => return format!("tls: {other}"),
    };
    format!("tls: failed to verify certificate: {x509}")
}

/// Accepts any server certificate (insecure registries), still checking handshake signatures.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_without_its_certificate_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("reg:5000")).unwrap();
        std::fs::write(d.path().join("reg:5000/client.key"), "x").unwrap();
        let e = client_config(Some(d.path()), "reg:5000", true).expect_err("an error");
        assert!(e.to_string().contains("missing client certificate"), "{e}");
        // Another host's directory is not read.
        assert!(client_config(Some(d.path()), "other:5000", true).is_ok());
    }

    #[test]
    fn a_garbage_ca_file_is_reported() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("reg")).unwrap();
        std::fs::write(
            d.path().join("reg/ca.crt"),
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(client_config(Some(d.path()), "reg", true).is_err());
    }
}
