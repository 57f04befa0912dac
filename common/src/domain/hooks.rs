//! Driver hooks into the parse → post-parse → validate pipeline (libvirt's
//! `virDomainDefParserConfig` callbacks, as a trait).

use crate::xml::XmlError;
pub use crate::xml::values::os_random;

use super::DomainDef;
use super::device::Device;

/// One implementation per driver. Every method has a do-nothing default.
///
/// Order, as libvirt's `virDomainDefPostParse`: [`post_parse`] (driver
/// defaults), then for each device the generic device defaults followed
/// by [`post_parse_device`], then [`assign_addresses`], then the generic
/// domain-wide defaults. [`validate`] and [`validate_device`] run after
/// the generic checks and must not (and cannot) modify the definition.
///
/// [`post_parse`]: DomainDefHooks::post_parse
/// [`post_parse_device`]: DomainDefHooks::post_parse_device
/// [`assign_addresses`]: DomainDefHooks::assign_addresses
/// [`validate`]: DomainDefHooks::validate
/// [`validate_device`]: DomainDefHooks::validate_device
pub trait DomainDefHooks {
    /// Driver defaults for the whole definition, implicit devices.
    ///
    /// # Errors
    /// The definition cannot be completed.
    fn post_parse(&self, def: &mut DomainDef) -> Result<(), XmlError> {
        let _ = def;
        Ok(())
    }

    /// Driver defaults for one device. `def` is the definition as it is
    /// (with this device's previous state at its place).
    ///
    /// # Errors
    /// The device cannot be completed.
    fn post_parse_device(&self, def: &DomainDef, dev: &mut Device) -> Result<(), XmlError> {
        let _ = (def, dev);
        Ok(())
    }

    /// Assigns device addresses (PCI slots, drive units...).
    ///
    /// # Errors
    /// No address can be found.
    fn assign_addresses(&self, def: &mut DomainDef) -> Result<(), XmlError> {
        let _ = def;
        Ok(())
    }

    /// Driver checks of the whole definition (read-only).
    ///
    /// # Errors
    /// The driver refuses the definition.
    fn validate(&self, def: &DomainDef) -> Result<(), XmlError> {
        let _ = def;
        Ok(())
    }

    /// Driver checks of one device (read-only).
    ///
    /// # Errors
    /// The driver refuses the device.
    fn validate_device(&self, def: &DomainDef, dev: &Device) -> Result<(), XmlError> {
        let _ = (def, dev);
        Ok(())
    }

    /// The host architecture the definition defaults to when `<os><type>`
    /// has no `arch` (libvirt looks it up in the driver's capabilities,
    /// preferring the host's).
    fn default_arch(&self) -> Option<&str> {
        host_arch()
    }

    /// Random bytes for generated UUIDs and MAC addresses.
    fn random_bytes(&self, buf: &mut [u8]) {
        os_random(buf);
    }
}

/// The driver-neutral hooks: only libvirt's generic defaults and checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct GenericHooks;

impl DomainDefHooks for GenericHooks {}

/// [`GenericHooks`] in libvirt's test world: an x86_64 host and the
/// mocked random source (bytes `00 01 02 ...` from every request), so
/// generated UUIDs and MAC addresses match libvirt's expected files.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestHooks;

impl DomainDefHooks for TestHooks {
    fn default_arch(&self) -> Option<&str> {
        Some("x86_64")
    }

    fn random_bytes(&self, buf: &mut [u8]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i % 256) as u8;
        }
    }
}

/// The host architecture in libvirt's spelling.
pub fn host_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86_64"),
        "x86" => Some("i686"),
        "aarch64" => Some("aarch64"),
        "arm" => Some("armv7l"),
        "powerpc64" => Some("ppc64"),
        "s390x" => Some("s390x"),
        "riscv64" => Some("riscv64"),
        "loongarch64" => Some("loongarch64"),
        _ => None,
    }
}
