//! The client side: a rustls client configuration from libvirt's client
//! pki files, and a connector that dials `host:port` over TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{TlsError, install_provider, load_certs, load_key, root_store};
use crate::paths::Paths;

/// The files a TLS client uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFiles {
    /// CA certificate(s) that sign the server's certificate.
    pub ca_file: PathBuf,
    /// The client's certificate (chain).
    pub cert_file: PathBuf,
    /// The client's private key.
    pub key_file: PathBuf,
}

impl ClientFiles {
    /// The files of a `pkipath=DIR` URI parameter: `cacert.pem`,
    /// `clientcert.pem` and `clientkey.pem` in `dir`.
    pub fn in_dir(dir: &Path) -> ClientFiles {
        ClientFiles {
            ca_file: dir.join("cacert.pem"),
            cert_file: dir.join("clientcert.pem"),
            key_file: dir.join("clientkey.pem"),
        }
    }

    /// The system layout's client files under `paths` (relocated under
    /// `VIRT_ROOT` like every system path): `<ca_dir>/cacert.pem`,
    /// `<pki_dir>/clientcert.pem`, `<pki_dir>/private/clientkey.pem`.
    pub fn system(paths: &Paths) -> ClientFiles {
        ClientFiles {
            ca_file: paths.ca_dir.join("cacert.pem"),
            cert_file: paths.pki_dir.join("clientcert.pem"),
            key_file: paths.pki_dir.join("private").join("clientkey.pem"),
        }
    }
}

/// A rustls client configuration for HTTP/2 (ALPN `h2`) that presents the
/// client certificate; with `verify_server` false (`no_verify=1`) the
/// server's certificate is not checked.
///
/// # Errors
/// A file is missing or invalid; the message names it.
pub fn client_config(
    files: &ClientFiles,
    verify_server: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    install_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = load_certs("client certificate", &files.cert_file)?;
    let key = load_key("client key", &files.key_file)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = if verify_server {
        builder.with_root_certificates(root_store(&files.ca_file)?)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer { provider }))
    };
    let mut config = builder
        .with_client_auth_cert(certs, key)
        .map_err(|e| TlsError::Invalid {
            what: "client certificate or key",
            path: files.cert_file.clone(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Dials `host:port` and runs the TLS handshake, checking the server's
/// certificate against `host` (unless the config skips verification).
///
/// # Errors
/// The connection or the handshake fails.
pub async fn connect(
    config: Arc<rustls::ClientConfig>,
    host: &str,
    port: u16,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tcp =
        tokio::net::TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
            .await?;
    tcp.set_nodelay(true)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// `no_verify=1`: any server certificate is taken; handshake signatures
/// are still checked.
#[derive(Debug)]
struct AcceptAnyServer {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
