//! A test PKI: certificate authorities, server and client certificates and
//! CRLs made with `rcgen` (ring), written where [`common::tls`] reads them.
//!
//! ```no_run
//! use tests::pki::{Ca, DEFAULT_CLIENT_DN};
//! let ca = Ca::new("Test CA");
//! let server = ca.server(&[]); // localhost, 127.0.0.1, ::1
//! let client = ca.client(DEFAULT_CLIENT_DN);
//! assert_eq!(client.dn, "C=GB,O=Test,CN=client1");
//! let root = std::path::Path::new("/tmp/root");
//! tests::pki::write_ca(root, &ca);
//! tests::pki::write_server(root, &server);
//! tests::pki::write_client(root, &client);
//! tests::pki::write_crl(root, &ca.crl(&[&client])); // client1 revoked
//! tests::pki::write_pkipath(&root.join("mypki"), &ca, &client);
//! ```
//!
//! A subject DN is given as ordered `(attribute, value)` pairs with the
//! short names GnuTLS prints (`C`, `ST`, `L`, `O`, `OU`, `CN`, `DC`, `UID`,
//! `EMAIL`, `STREET`, `title`, `serialNumber`, `postalCode`); each pair is
//! its own RDN, in the order given, so the DN reads back (through
//! [`common::tls::subject_dn`]) as the pairs joined by `,`. rcgen keeps one
//! value per attribute type, so an attribute cannot repeat.
//!
//! Every CA is independent: [`Ca::new`] twice gives two CAs that do not
//! trust each other's certificates ("wrong CA" tests). Keys are written
//! 0600.
//!
//! Layout under a `VIRT_ROOT` (from [`common::paths::Paths::system`]):
//!
//! | file                                          | writer           |
//! |-----------------------------------------------|------------------|
//! | `<root>/etc/pki/CA/cacert.pem`                | [`write_ca`]     |
//! | `<root>/etc/pki/CA/cacrl.pem`                 | [`write_crl`]    |
//! | `<root>/etc/pki/virt/servercert.pem`          | [`write_server`] |
//! | `<root>/etc/pki/virt/private/serverkey.pem`   | [`write_server`] |
//! | `<root>/etc/pki/virt/clientcert.pem`          | [`write_client`] |
//! | `<root>/etc/pki/virt/private/clientkey.pem`   | [`write_client`] |
//!
//! and in a `pkipath=DIR` directory (or `~/.pki/virt`): `cacert.pem`,
//! `clientcert.pem`, `clientkey.pem` ([`write_pkipath`]).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use common::paths::Paths;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber, date_time_ymd,
};
use rustls_pki_types::CertificateDer;

/// The names a server certificate is valid for when none are given.
pub const DEFAULT_SERVER_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// The client DN the tests use by default: `C=GB,O=Test,CN=client1`.
pub const DEFAULT_CLIENT_DN: &[(&str, &str)] = &[("C", "GB"), ("O", "Test"), ("CN", "client1")];

/// A certificate authority that issues certificates and CRLs.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dn: String,
    next_serial: AtomicU64,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("dn", &self.dn)
            .finish_non_exhaustive()
    }
}

/// A certificate issued by a [`Ca`], with its private key.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// Its serial number (what a CRL names).
    pub serial: u64,
    /// Its subject DN as GnuTLS (and [`common::tls::subject_dn`]) writes it.
    pub dn: String,
}

impl Ca {
    /// A new self-signed CA with subject `O=Test,CN=<name>`.
    pub fn new(name: &str) -> Ca {
        Ca::with_dn(&[("O", "Test"), ("CN", name)])
    }

    /// A new self-signed CA with the given subject.
    pub fn with_dn(dn: &[(&str, &str)]) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(dn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from(1u64));
        let key = KeyPair::generate().expect("generate CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign CA");
        Ca {
            issuer,
            dn: dn_string(dn),
            next_serial: AtomicU64::new(2),
        }
    }

    /// The CA certificate, PEM (what `cacert.pem` holds).
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// The CA's subject DN.
    pub fn dn(&self) -> &str {
        &self.dn
    }

    /// A server certificate (subject `O=Test,CN=<first host>`, extended
    /// key usage serverAuth) valid for `hosts`, names or IP addresses;
    /// [`DEFAULT_SERVER_HOSTS`] when `hosts` is empty.
    pub fn server(&self, hosts: &[&str]) -> Issued {
        let hosts = if hosts.is_empty() {
            DEFAULT_SERVER_HOSTS
        } else {
            hosts
        };
        let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server names");
        let dn = [("O", "Test"), ("CN", hosts[0])];
        params.distinguished_name = distinguished_name(&dn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, dn_string(&dn))
    }

    /// A client certificate with subject `dn` (in that order) and
    /// extended key usage clientAuth.
    pub fn client(&self, dn: &[(&str, &str)]) -> Issued {
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(dn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, dn_string(dn))
    }

    fn issue(&self, mut params: CertificateParams, dn: String) -> Issued {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            serial,
            dn,
        }
    }

    /// A CRL (PEM) of this CA revoking `revoked`; an empty slice gives a
    /// valid CRL that revokes nothing.
    pub fn crl(&self, revoked: &[&Issued]) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(4000, 1, 1),
            crl_number: SerialNumber::from(self.next_serial.fetch_add(1, Ordering::Relaxed)),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|c| RevokedCertParams {
                    serial_number: SerialNumber::from(c.serial),
                    revocation_time: date_time_ymd(2024, 1, 1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer)
            .and_then(|crl| crl.pem())
            .expect("sign CRL")
    }
}

fn dn_type(short: &str) -> DnType {
    match short {
        "C" => DnType::CountryName,
        "ST" => DnType::StateOrProvinceName,
        "L" => DnType::LocalityName,
        "O" => DnType::OrganizationName,
        "OU" => DnType::OrganizationalUnitName,
        "CN" => DnType::CommonName,
        "DC" => DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 25]),
        "UID" => DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 1]),
        "EMAIL" => DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]),
        "STREET" => DnType::CustomDnType(vec![2, 5, 4, 9]),
        "title" => DnType::CustomDnType(vec![2, 5, 4, 12]),
        "serialNumber" => DnType::CustomDnType(vec![2, 5, 4, 5]),
        "postalCode" => DnType::CustomDnType(vec![2, 5, 4, 17]),
        other => panic!("unknown DN attribute {other:?}"),
    }
}

fn distinguished_name(dn: &[(&str, &str)]) -> DistinguishedName {
    let mut out = DistinguishedName::new();
    for (k, v) in dn {
        let ty = dn_type(k);
        assert!(out.get(&ty).is_none(), "DN attribute {k} given twice");
        out.push(ty, *v);
    }
    out
}

/// `dn` as GnuTLS writes it: `,`-joined, values escaped as RFC 4514.
pub fn dn_string(dn: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in dn.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        let n = v.chars().count();
        for (j, c) in v.chars().enumerate() {
            if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                || (j == 0 && (c == '#' || c == ' '))
                || (c == ' ' && j + 1 == n)
            {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

fn write_file(path: &Path, text: &str, mode: u32) -> PathBuf {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    path.to_path_buf()
}

/// Where the PKI files live under `VIRT_ROOT=root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootFiles {
    /// `<root>/etc/pki/CA/cacert.pem`.
    pub ca_cert: PathBuf,
    /// `<root>/etc/pki/CA/cacrl.pem`.
    pub ca_crl: PathBuf,
    /// `<root>/etc/pki/virt/servercert.pem`.
    pub server_cert: PathBuf,
    /// `<root>/etc/pki/virt/private/serverkey.pem`.
    pub server_key: PathBuf,
    /// `<root>/etc/pki/virt/clientcert.pem`.
    pub client_cert: PathBuf,
    /// `<root>/etc/pki/virt/private/clientkey.pem`.
    pub client_key: PathBuf,
}

impl RootFiles {
    /// The files of the system layout relocated under `root`.
    pub fn new(root: &Path) -> RootFiles {
        let p = Paths::system(Some(root));
        let private = p.pki_dir.join("private");
        RootFiles {
            ca_cert: p.ca_dir.join("cacert.pem"),
            ca_crl: p.ca_dir.join("cacrl.pem"),
            server_cert: p.pki_dir.join("servercert.pem"),
            server_key: private.join("serverkey.pem"),
            client_cert: p.pki_dir.join("clientcert.pem"),
            client_key: private.join("clientkey.pem"),
        }
    }
}

/// Writes `ca`'s certificate as `<root>/etc/pki/CA/cacert.pem`; returns its path.
pub fn write_ca(root: &Path, ca: &Ca) -> PathBuf {
    write_file(&RootFiles::new(root).ca_cert, &ca.cert_pem(), 0o644)
}

/// Writes a CRL (from [`Ca::crl`]) as `<root>/etc/pki/CA/cacrl.pem`;
/// returns its path.
pub fn write_crl(root: &Path, crl_pem: &str) -> PathBuf {
    write_file(&RootFiles::new(root).ca_crl, crl_pem, 0o644)
}

/// Writes the server certificate and key under `root`; returns
/// `(cert, key)` paths.
pub fn write_server(root: &Path, server: &Issued) -> (PathBuf, PathBuf) {
    let f = RootFiles::new(root);
    (
        write_file(&f.server_cert, &server.cert_pem, 0o644),
        write_file(&f.server_key, &server.key_pem, 0o600),
    )
}

/// Writes the client certificate and key under `root` (the files a root
/// client, or any client with `VIRT_ROOT` set, uses); returns `(cert,
/// key)` paths.
pub fn write_client(root: &Path, client: &Issued) -> (PathBuf, PathBuf) {
    let f = RootFiles::new(root);
    (
        write_file(&f.client_cert, &client.cert_pem, 0o644),
        write_file(&f.client_key, &client.key_pem, 0o600),
    )
}

/// Writes `cacert.pem`, `clientcert.pem` and `clientkey.pem` into `dir`
/// (a `pkipath=` directory, or a user's `~/.pki/virt`).
pub fn write_pkipath(dir: &Path, ca: &Ca, client: &Issued) {
    write_file(&dir.join("cacert.pem"), &ca.cert_pem(), 0o644);
    write_file(&dir.join("clientcert.pem"), &client.cert_pem, 0o644);
    write_file(&dir.join("clientkey.pem"), &client.key_pem, 0o600);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_strings_escape_as_gnutls() {
        assert_eq!(dn_string(DEFAULT_CLIENT_DN), "C=GB,O=Test,CN=client1");
        assert_eq!(
            dn_string(&[("O", "Red Hat, Inc."), ("CN", " x+y ")]),
            "O=Red Hat\\, Inc.,CN=\\ x\\+y\\ "
        );
    }

    #[test]
    fn issued_dn_reads_back_in_order() {
        let ca = Ca::new("Test CA");
        let c = ca.client(&[("CN", "first"), ("O", "Second"), ("C", "GB")]);
        assert_eq!(
            common::tls::subject_dn(&c.cert_der).as_deref(),
            Ok("CN=first,O=Second,C=GB")
        );
        assert_eq!(c.dn, "CN=first,O=Second,C=GB");
        assert_eq!(
            common::tls::subject_dn(&ca.cert_der()).as_deref(),
            Ok("O=Test,CN=Test CA")
        );
        let s = ca.server(&[]);
        assert_eq!(s.dn, "O=Test,CN=localhost");
        assert_ne!(s.serial, c.serial);
    }

    #[test]
    fn files_land_in_the_layout_with_private_keys_0600() {
        let dir = std::env::temp_dir().join(format!("pki-layout-{}", std::process::id()));
        let ca = Ca::new("Test CA");
        let client = ca.client(DEFAULT_CLIENT_DN);
        let server = ca.server(&[]);
        let ca_path = write_ca(&dir, &ca);
        assert_eq!(ca_path, dir.join("etc/pki/CA/cacert.pem"));
        assert_eq!(
            write_crl(&dir, &ca.crl(&[&client])),
            dir.join("etc/pki/CA/cacrl.pem")
        );
        let (sc, sk) = write_server(&dir, &server);
        assert_eq!(sc, dir.join("etc/pki/virt/servercert.pem"));
        assert_eq!(sk, dir.join("etc/pki/virt/private/serverkey.pem"));
        let (cc, ck) = write_client(&dir, &client);
        assert_eq!(cc, dir.join("etc/pki/virt/clientcert.pem"));
        assert_eq!(ck, dir.join("etc/pki/virt/private/clientkey.pem"));
        write_pkipath(&dir.join("user"), &ca, &client);
        for key in [&sk, &ck, &dir.join("user/clientkey.pem")] {
            let mode = std::fs::metadata(key).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
        // What common::tls reads back.
        let sys = common::tls::client::ClientFiles::system(&Paths::system(Some(&dir)));
        assert_eq!(sys.cert_file, cc);
        assert_eq!(sys.key_file, ck);
        assert!(common::tls::load_crls(&dir.join("etc/pki/CA/cacrl.pem")).is_ok());
        assert!(common::tls::client::client_config(&sys, true).is_ok());
        let user = common::tls::client::ClientFiles::in_dir(&dir.join("user"));
        assert!(common::tls::client::client_config(&user, true).is_ok());
        std::fs::remove_dir_all(&dir).ok();
    }
}
