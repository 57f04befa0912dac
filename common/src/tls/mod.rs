//! TLS for remote access: virtproxyd's listener ([`server`]) and the
//! clients' connector ([`client`]), on rustls with the ring provider.
//!
//! Files follow libvirt's pki layout (relocated under `VIRT_ROOT` like every
//! system path, see [`crate::paths`]):
//!
//! | file                              | who                  |
//! |-----------------------------------|----------------------|
//! | `<ca_dir>/cacert.pem`             | both: the trusted CA |
//! | `<ca_dir>/cacrl.pem`              | server: revoked certificates (optional) |
//! | `<pki_dir>/servercert.pem`        | server               |
//! | `<pki_dir>/private/serverkey.pem` | server               |
//! | `<pki_dir>/clientcert.pem`        | client               |
//! | `<pki_dir>/private/clientkey.pem` | client               |
//!
//! A client's identity is its certificate's subject DN, written as GnuTLS
//! (and so libvirt) writes it: the attributes in certificate order, joined
//! with `,` (`C=GB,ST=London,L=London,O=Red Hat,CN=client1`), matched
//! against `tls_allowed_dn_list` glob patterns ([`dn_allowed`]).

pub mod client;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Once;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// A TLS file could not be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing or unreadable.
    #[error("Cannot read {what} '{}': {source}", path.display())]
    Read {
        /// What the file is for ("CA certificate", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM object of the expected kind.
    #[error("Invalid {what} '{}': {reason}", path.display())]
    Invalid {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The configuration as a whole is refused by rustls.
    #[error("Unable to set up TLS: {0}")]
    Setup(String),
}

/// Installs the ring provider as the process default (once; harmless if
/// another part already did).
pub fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The handshake signature checks both sides keep even when they skip
/// certificate verification (`no_verify`): the peer must hold the key of
/// the certificate it shows.
pub(crate) struct Signatures<'a>(&'a rustls::crypto::WebPkiSupportedAlgorithms);

pub(crate) fn signatures(provider: &rustls::crypto::CryptoProvider) -> Signatures<'_> {
    Signatures(&provider.signature_verification_algorithms)
}

impl Signatures<'_> {
    pub(crate) fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.0)
    }

    pub(crate) fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.0)
    }

    pub(crate) fn schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Every certificate in the PEM file at `path` (at least one).
///
/// # Errors
/// The file cannot be read or holds no certificate.
pub fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            what,
            path: path.to_path_buf(),
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// The private key in the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// The file cannot be read or holds no key.
pub fn load_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| TlsError::Invalid {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Every CRL in the PEM file at `path`.
///
/// # Errors
/// The file cannot be read or holds no CRL.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    const WHAT: &str = "certificate revocation list";
    let data = read(WHAT, path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            what: WHAT,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if crls.is_empty() {
        return Err(TlsError::Invalid {
            what: WHAT,
            path: path.to_path_buf(),
            reason: "no CRL found".into(),
        });
    }
    Ok(crls)
}

/// A root store holding every certificate of the CA file.
///
/// # Errors
/// The file cannot be read, or a certificate is not a usable CA.
pub fn root_store(ca_file: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs("CA certificate", ca_file)? {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            what: "CA certificate",
            path: ca_file.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// The subject DN of `cert` as GnuTLS writes it: attributes in certificate
/// order, `,`-joined, with `,`, `+`, `"`, `\`, `<`, `>`, `;` and a leading
/// `#` or space escaped by `\`.
///
/// # Errors
/// The certificate cannot be parsed.
pub fn subject_dn(cert: &CertificateDer<'_>) -> Result<String, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("cannot parse certificate: {e}"))?;
    let mut out = String::new();
    for rdn in parsed.subject().iter() {
        for (i, attr) in rdn.iter().enumerate() {
            if !out.is_empty() {
                out.push(if i == 0 { ',' } else { '+' });
            }
            let oid = attr.attr_type();
            let key = attr_short_name(&oid.to_id_string());
            out.push_str(&key);
            out.push('=');
            match attr.as_str() {
                Ok(v) => escape_dn_value(v, &mut out),
                Err(_) => {
                    // Not a string type: GnuTLS writes `#` and the DER in hex.
                    out.push('#');
                    for b in attr.attr_value().as_bytes() {
                        out.push_str(&format!("{b:02x}"));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn attr_short_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.5" => "serialNumber",
        "2.5.4.17" => "postalCode",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "EMAIL",
        other => return other.to_owned(),
    }
    .to_owned()
}

fn escape_dn_value(v: &str, out: &mut String) {
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (c == ' ' && i + 1 == v.chars().count());
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Whether `dn` may connect under `tls_allowed_dn_list`: no list admits
/// every verified client, an empty list nobody, otherwise a DN must match
/// one of the glob patterns (`*`, `?`, `[...]`, as fnmatch).
pub fn dn_allowed(dn: &str, list: Option<&[String]>) -> bool {
    match list {
        None => true,
        Some(patterns) => patterns.iter().any(|p| glob_match(p, dn)),
    }
}

/// fnmatch(3) without flags: `*` any run, `?` one character, `[...]` a set
/// (`!` or `^` negates, `a-z` ranges), `\` escapes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match class_match(&p[pi..], t[ti]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                // An unclosed `[` is a literal.
                None => (t[ti] == '[').then_some(1),
            },
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(2),
            Some(&c) => (c == t[ti]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `p` (`[...]`): whether it
/// matched and the class's length, or `None` when the class is not closed.
fn class_match(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            let end = p[i + 2];
            if ch <= c && c <= end {
                matched = true;
            }
            i += 3;
        } else {
            if ch == c {
                matched = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_fnmatch() {
        assert!(glob_match("*", ""));
        assert!(glob_match(
            "C=GB,ST=London,L=London,O=Red Hat,CN=*",
            "C=GB,ST=London,L=London,O=Red Hat,CN=client1"
        ));
        assert!(!glob_match("C=GB,*,CN=admin", "C=GB,O=x,CN=client1"));
        assert!(glob_match("C=GB,*,CN=admin", "C=GB,O=x,CN=admin"));
        assert!(glob_match("CN=client?", "CN=client1"));
        assert!(!glob_match("CN=client?", "CN=client10"));
        assert!(glob_match("CN=client[0-9]", "CN=client7"));
        assert!(!glob_match("CN=client[!0-9]", "CN=client7"));
        assert!(glob_match("CN=a\\*", "CN=a*"));
        assert!(!glob_match("CN=a\\*", "CN=ab"));
        assert!(glob_match("CN=[x", "CN=[x"));
        assert!(glob_match("*a*b*c", "xxaxxbxxc"));
        assert!(!glob_match("*a*b*c", "xxaxxbxx"));
    }

    #[test]
    fn dn_list_semantics() {
        assert!(dn_allowed("CN=x", None));
        assert!(!dn_allowed("CN=x", Some(&[])));
        assert!(dn_allowed("CN=x", Some(&["CN=*".to_owned()])));
        assert!(!dn_allowed("CN=x", Some(&["CN=y".to_owned()])));
    }

    #[test]
    fn dn_values_escaped() {
        let mut s = String::new();
        escape_dn_value("Red Hat, Inc.", &mut s);
        assert_eq!(s, "Red Hat\\, Inc.");
        let mut s = String::new();
        escape_dn_value("#x ", &mut s);
        assert_eq!(s, "\\#x\\ ");
    }
}
