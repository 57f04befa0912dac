//! The QEMU driver: plain Rust types, no gRPC. In this first cut it answers
//! host-level questions; domains come with the lifecycle work.

use common::daemon::Context;
use common::{ErrorCode, ErrorDomain, VirtError};
use tokio::sync::OnceCell;

use crate::caps::{self, NodeInfo, Version};

/// Versions reported by GetVersion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    /// The QEMU binary's version.
    pub hypervisor: Version,
    /// Ours.
    pub daemon: Version,
}

/// The driver.
#[derive(Debug)]
pub struct QemuDriver {
    emulator: Option<std::path::PathBuf>,
    qemu_version: OnceCell<Version>,
}

impl QemuDriver {
    pub fn new(_ctx: &Context) -> QemuDriver {
        QemuDriver {
            emulator: caps::find_emulator(),
            qemu_version: OnceCell::new(),
        }
    }

    /// QEMU's and our versions; QEMU's is probed once.
    pub async fn version(&self) -> Result<Versions, VirtError> {
        let daemon = Version::parse(common::daemon::VERSION).unwrap_or_default();
        let emulator = self.emulator.as_deref().ok_or_else(|| {
            VirtError::new(
                ErrorCode::InternalError,
                ErrorDomain::Qemu,
                "Cannot find QEMU binary qemu-system-x86_64: No such file or directory",
            )
        })?;
        let hypervisor = *self
            .qemu_version
            .get_or_try_init(|| caps::probe_version(emulator))
            .await?;
        Ok(Versions { hypervisor, daemon })
    }

    pub fn hostname(&self) -> Result<String, VirtError> {
        nix::unistd::gethostname()
            .map_err(|e| {
                VirtError::new(
                    ErrorCode::SystemError,
                    ErrorDomain::Qemu,
                    format!("Cannot get host name: {e}"),
                )
            })?
            .into_string()
            .map_err(|_| {
                VirtError::new(
                    ErrorCode::InternalError,
                    ErrorDomain::Qemu,
                    "Host name is not UTF-8",
                )
            })
    }

    pub fn node_info(&self) -> Result<NodeInfo, VirtError> {
        caps::node_info()
    }
}
