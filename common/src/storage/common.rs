//! Data types shared by pools and volumes: permissions, secrets and
//! authentication, encryption.

pub use crate::xml::Uuid;

/// `<permissions>` of a pool target, a volume or its backing store.
/// `None` is libvirt's `-1` ("not set").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Perms {
    /// `<mode>`: octal permission bits (at most `0777`).
    pub mode: Option<u32>,
    /// `<owner>`: user id.
    pub uid: Option<u32>,
    /// `<group>`: group id.
    pub gid: Option<u32>,
    /// `<label>`: security label.
    pub label: Option<String>,
}

impl Perms {
    /// Whether any field is set (libvirt writes `<permissions>` then).
    pub fn is_set(&self) -> bool {
        self.mode.is_some() || self.uid.is_some() || self.gid.is_some() || self.label.is_some()
    }
}

/// How a secret is looked up: `<secret uuid=...>` or `<secret usage=...>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretLookup {
    /// By UUID.
    Uuid(Uuid),
    /// By usage name.
    Usage(String),
}

crate::xml_enum! {
    /// `<auth type=...>`.
    pub enum AuthType {
        /// No type given (libvirt's "none"); pools refuse it.
        None = "none",
        /// iSCSI CHAP.
        Chap = "chap",
        /// Ceph (RBD) cephx.
        Ceph = "ceph",
    }
}

/// `<auth type=... username=...><secret .../></auth>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthDef {
    /// The type attribute (`None` when absent).
    pub auth_type: AuthType,
    /// `username`.
    pub username: String,
    /// `<secret type=...>` as written (used by domain disks).
    pub secret_type: Option<String>,
    /// The secret.
    pub secret: SecretLookup,
}

crate::xml_enum! {
    /// `<encryption format=...>`.
    pub enum EncryptionFormat {
        /// Default.
        Default = "default",
        /// Legacy qcow encryption.
        Qcow = "qcow",
        /// LUKS.
        Luks = "luks",
        /// LUKS2.
        Luks2 = "luks2",
        /// Either LUKS version.
        LuksAny = "luks-any",
    }
}

crate::xml_enum! {
    /// `<encryption engine=...>` ("default" is refused on input).
    pub enum EncryptionEngine {
        /// QEMU.
        Qemu = "qemu",
        /// librbd.
        Librbd = "librbd",
    }
}

crate::xml_enum! {
    /// `<secret type=...>` inside `<encryption>`.
    pub enum EncryptionSecretType {
        /// A passphrase.
        Passphrase = "passphrase",
    }
}

/// One `<secret>` of an `<encryption>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptionSecret {
    /// The secret's type.
    pub secret_type: EncryptionSecretType,
    /// The lookup.
    pub lookup: SecretLookup,
}

/// `<cipher name= size= mode= hash=/>` (LUKS only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cipher {
    /// Cipher name, e.g. `aes`.
    pub name: String,
    /// Key size in bits.
    pub size: u32,
    /// Cipher mode, e.g. `cbc`.
    pub mode: Option<String>,
    /// Hash, e.g. `sha256`.
    pub hash: Option<String>,
}

/// `<ivgen name= hash=/>` (LUKS only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ivgen {
    /// Generator name, e.g. `plain64`.
    pub name: String,
    /// Hash.
    pub hash: Option<String>,
}

/// `<encryption>` of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// Format.
    pub format: EncryptionFormat,
    /// Engine (`None`: default).
    pub engine: Option<EncryptionEngine>,
    /// Secrets, in order.
    pub secrets: Vec<EncryptionSecret>,
    /// LUKS cipher.
    pub cipher: Option<Cipher>,
    /// LUKS IV generator (only with a cipher).
    pub ivgen: Option<Ivgen>,
}
