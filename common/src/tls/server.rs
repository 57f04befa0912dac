//! The server side: virtproxyd's TLS configuration from its config keys
//! (`ca_file`, `cert_file`, `key_file`, `crl_file`,
//! `tls_no_verify_certificate`), defaults from libvirt's pki layout.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{TlsError, install_provider, load_certs, load_crls, load_key, root_store};
use crate::config::DaemonConfig;
use crate::paths::Paths;

/// The files a TLS server uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFiles {
    /// CA certificate(s) that sign the clients' certificates.
    pub ca_file: PathBuf,
    /// The server's certificate (chain).
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
    /// Revoked certificates; `None` when not configured and the default
    /// file does not exist.
    pub crl_file: Option<PathBuf>,
}

impl ServerFiles {
    /// The config's files, or libvirt's defaults under `paths` for the
    /// keys left empty. The default CRL is used only when it exists; a
    /// configured one must exist.
    pub fn from_config(config: &DaemonConfig, paths: &Paths) -> ServerFiles {
        let or = |v: &str, d: PathBuf| {
            if v.is_empty() { d } else { PathBuf::from(v) }
        };
        let crl_file = if config.crl_file.is_empty() {
            let d = paths.ca_dir.join("cacrl.pem");
            d.exists().then_some(d)
        } else {
            Some(PathBuf::from(&config.crl_file))
        };
        ServerFiles {
            ca_file: or(&config.ca_file, paths.ca_dir.join("cacert.pem")),
            cert_file: or(&config.cert_file, paths.pki_dir.join("servercert.pem")),
            key_file: or(
                &config.key_file,
                paths.pki_dir.join("private").join("serverkey.pem"),
            ),
            crl_file,
        }
    }
}

/// A rustls server configuration for HTTP/2 (ALPN `h2`).
///
/// With `verify_clients` a client must present a certificate signed by the
/// CA and not revoked; without (`tls_no_verify_certificate = 1`) any client
/// is admitted, and a certificate it presents is not checked (its DN is
/// still read, but not trusted).
///
/// # Errors
/// A file is missing or invalid, or rustls refuses the combination; the
/// message names the file.
pub fn server_config(
    files: &ServerFiles,
    verify_clients: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    install_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs("server certificate", &files.cert_file)?;
    let key = load_key("server key", &files.key_file)?;
    let roots = Arc::new(root_store(&files.ca_file)?);
    let verifier: Arc<dyn ClientCertVerifier> = if verify_clients {
        let mut b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        if let Some(crl) = &files.crl_file {
            b = b.with_crls(load_crls(crl)?);
        }
        b.build().map_err(|e| TlsError::Setup(e.to_string()))?
    } else {
        Arc::new(AcceptAnyClient {
            provider: provider.clone(),
        })
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Invalid {
            what: "server certificate or key",
            path: files.cert_file.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// `tls_no_verify_certificate = 1`: asks for a certificate, takes any or
/// none; signatures made with a presented one are still checked, so the
/// client holds its key.
#[derive(Debug)]
struct AcceptAnyClient {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AcceptAnyClient {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        super::signatures(&self.provider).tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        super::signatures(&self.provider).tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        super::signatures(&self.provider).schemes()
    }
}
