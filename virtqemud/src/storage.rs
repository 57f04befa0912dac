//! Volumes of domain disks, resolved through virtstoraged (libvirt's
//! `virDomainDiskTranslateSourcePool`).
//!
//! A `<disk type='volume'><source pool='P' volume='V'/>` is looked up with
//! GetVolumeXml on virtstoraged's read-write socket; its type (`file` or
//! `block`), path and format go into the live definition's source
//! ([`StorageSource::actual`](common::domain::device::storage::StorageSource)),
//! which the command line uses. The XML keeps the pool and volume.
//!
//! virtstoraged is reached lazily: only domains with volume disks need it.
//! When its socket does not answer and we may spawn it (no systemd socket
//! activation to do it for us), virtqemud starts the `virtstoraged` next
//! to its own binary, with the same `VIRT_ROOT`, and waits for its health.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::domain::Device;
use common::domain::DomainDef;
use common::domain::device::storage::{ImageFormat, StorageType};
use common::paths::{Paths, SocketKind};
use common::trace::{TracedChannel, traced};
use common::{ErrorCode, ErrorDomain, VirtError};
use proto::storage::v1 as spb;
use proto::storage::v1::storage_service_client::StorageServiceClient;
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// What a volume turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedVolume {
    /// The pool.
    pub pool: String,
    /// The volume.
    pub volume: String,
    /// `file` or `block`.
    pub kind: StorageType,
    /// Its path on the host.
    pub path: String,
    /// Its format, when the volume says.
    pub format: Option<ImageFormat>,
}

/// The volumes (pool, volume) the disks of `def` name.
pub fn volumes_of(def: &DomainDef) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in &def.devices {
        if let Device::Disk(disk) = d
            && disk.src.kind == StorageType::Volume
            && let Some((pool, vol, _)) = &disk.src.pool
            && !out.iter().any(|(p, v)| p == pool && v == vol)
        {
            out.push((pool.clone(), vol.clone()));
        }
    }
    out
}

/// Fills the resolved volumes into the disks of `def` (path, actual type,
/// and the format when the disk names none).
pub fn apply(def: &mut DomainDef, resolved: &[ResolvedVolume]) {
    for d in &mut def.devices {
        let Device::Disk(disk) = d else { continue };
        if disk.src.kind != StorageType::Volume {
            continue;
        }
        let Some((pool, vol, _)) = &disk.src.pool else {
            continue;
        };
        if let Some(r) = resolved
            .iter()
            .find(|r| &r.pool == pool && &r.volume == vol)
        {
            disk.src.path = Some(r.path.clone());
            disk.src.actual = Some(r.kind);
            if disk.src.format.is_none() {
                disk.src.format = r.format;
            }
        }
    }
}

fn err(code: ErrorCode, msg: String) -> VirtError {
    VirtError::new(code, ErrorDomain::Storage, msg)
}

/// virtstoraged, as a client of it.
#[derive(Debug)]
pub struct StorageClient {
    socket: PathBuf,
    /// Whether virtqemud may start virtstoraged itself.
    spawn: bool,
    channel: Mutex<Option<Channel>>,
}

impl StorageClient {
    /// A client of the virtstoraged of `paths`; `spawn`: start it when it
    /// does not answer.
    pub fn new(paths: &Paths, spawn: bool) -> StorageClient {
        StorageClient {
            socket: paths.socket("virtstoraged", SocketKind::ReadWrite),
            spawn,
            channel: Mutex::new(None),
        }
    }

    /// A client whose calls carry the current span's trace context, so
    /// that virtstoraged's request span joins the caller's trace.
    async fn client(
        &self,
        wait: Duration,
    ) -> Result<StorageServiceClient<TracedChannel>, VirtError> {
        let mut ch = self.channel.lock().await;
        if let Some(c) = ch.as_ref() {
            return Ok(StorageServiceClient::new(traced(c.clone())));
        }
        let c = match common::client::connect_unix(&self.socket).await {
            Ok(c) => c,
            Err(first) => {
                if self.spawn {
                    spawn_sibling("virtstoraged");
                }
                self.connect_until(wait).await.map_err(|e| {
                    err(
                        ErrorCode::OperationFailed,
                        format!(
                            "operation failed: cannot reach the storage daemon at '{}': {first}; {e}",
                            self.socket.display()
                        ),
                    )
                })?
            }
        };
        *ch = Some(c.clone());
        Ok(StorageServiceClient::new(traced(c)))
    }

    async fn connect_until(&self, wait: Duration) -> Result<Channel, String> {
        let deadline = Instant::now() + wait;
        loop {
            match common::client::connect_unix(&self.socket).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "still not answering after {} ms: {e}",
                        wait.as_millis()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Forgets the connection (after an error, the daemon may have
    /// restarted).
    async fn reset(&self) {
        *self.channel.lock().await = None;
    }

    /// Waits, at most `bound`, until virtstoraged answers its health
    /// check (it has finished initialising and autostarting pools).
    pub async fn wait_ready(&self, bound: Duration) -> bool {
        wait_healthy(&self.socket, bound).await
    }

    /// Resolves volume `vol` of pool `pool`.
    ///
    /// # Errors
    /// virtstoraged cannot be reached, or does not know the volume.
    pub async fn resolve(&self, pool: &str, vol: &str) -> Result<ResolvedVolume, VirtError> {
        let mut c = self.client(Duration::from_secs(5)).await?;
        let req = spb::GetVolumeXmlRequest {
            volume: Some(spb::VolumeRef {
                by: Some(spb::volume_ref::By::PoolVolume(spb::PoolVolume {
                    pool: pool.to_owned(),
                    name: vol.to_owned(),
                })),
            }),
        };
        let xml = match c.get_volume_xml(req).await {
            Ok(r) => r.into_inner().xml,
            Err(s) => {
                if s.code() == tonic::Code::Unavailable || s.code() == tonic::Code::Unknown {
                    self.reset().await;
                }
                let e = VirtError::from_status(&s);
                return Err(VirtError::new(
                    e.code,
                    e.domain,
                    format!(
                        "cannot resolve volume '{vol}' in pool '{pool}': {}",
                        e.message
                    ),
                ));
            }
        };
        parse_volume(pool, vol, &xml)
    }

    /// Resolves every volume of `def`.
    ///
    /// # Errors
    /// The first volume that cannot be resolved.
    pub async fn resolve_all(&self, def: &DomainDef) -> Result<Vec<ResolvedVolume>, VirtError> {
        let mut out = Vec::new();
        for (pool, vol) in volumes_of(def) {
            out.push(self.resolve(&pool, &vol).await?);
        }
        Ok(out)
    }
}

/// Type, path and format from a volume's XML.
fn parse_volume(pool: &str, vol: &str, xml: &str) -> Result<ResolvedVolume, VirtError> {
    let bad = |why: &str| {
        err(
            ErrorCode::InternalError,
            format!("internal error: volume '{vol}' in pool '{pool}': {why}"),
        )
    };
    let root = common::xml::parse(xml).map_err(|e| bad(&e.to_string()))?;
    let target = root.child("target").ok_or_else(|| bad("no <target>"))?;
    let path = target
        .child("path")
        .map(|p| p.text().trim().to_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| bad("no target path"))?;
    let kind = match root.attr("type").unwrap_or("file") {
        "file" => StorageType::File,
        "block" => StorageType::Block,
        other => {
            return Err(err(
                ErrorCode::ConfigUnsupported,
                format!(
                    "unsupported configuration: volume '{vol}' in pool '{pool}' is of type '{other}'"
                ),
            ));
        }
    };
    let format = target
        .child("format")
        .and_then(|f| f.attr("type"))
        .and_then(|t| t.parse::<ImageFormat>().ok());
    Ok(ResolvedVolume {
        pool: pool.to_owned(),
        volume: vol.to_owned(),
        kind,
        path,
        format,
    })
}

/// Waits, at most `bound`, until the daemon on `socket` answers its
/// health check as serving.
pub async fn wait_healthy(socket: &Path, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(c) = common::client::connect_unix(socket).await {
            let mut h = tonic_health::pb::health_client::HealthClient::new(c);
            let req = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            if let Ok(r) = h.check(req).await
                && r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts daemon `name` (`virtstoraged`, `virtnetworkd`) from our own
/// directory, detached (its own session), with our environment (so the
/// same `VIRT_ROOT`).
pub fn spawn_sibling(name: &str) {
    let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
    else {
        tracing::warn!("{name} is not next to virtqemud: not starting it");
        return;
    };
    start_detached(&bin, name);
}

fn start_detached(bin: &Path, name: &str) {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(bin);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only setsid between fork and exec.
    unsafe {
        c.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    match c.spawn() {
        Ok(mut child) => {
            tracing::info!(pid = child.id(), "started {name}");
            // Reap it when it exits (it may idle out).
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
        Err(e) => tracing::error!("cannot start {}: {e}", bin.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_xml_gives_type_path_and_format() {
        let xml = "<volume type='file'><name>a.qcow2</name><target><path>/p/a.qcow2</path><format type='qcow2'/></target></volume>";
        let r = parse_volume("p", "a.qcow2", xml).expect("parse");
        assert_eq!(
            r,
            ResolvedVolume {
                pool: "p".into(),
                volume: "a.qcow2".into(),
                kind: StorageType::File,
                path: "/p/a.qcow2".into(),
                format: Some(ImageFormat::Qcow2),
            }
        );
        let lv =
            "<volume type='block'><name>lv</name><target><path>/dev/vg/lv</path></target></volume>";
        assert_eq!(
            parse_volume("vg", "lv", lv).expect("lv").kind,
            StorageType::Block
        );
        assert!(
            parse_volume(
                "p",
                "x",
                "<volume type='network'><target><path>x</path></target></volume>"
            )
            .is_err()
        );
    }
}
