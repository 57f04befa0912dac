//! Network ports to release, journaled.
//!
//! A port virtnetworkd gave a domain must be deleted when the domain stops,
//! when its start fails or is interrupted, and when a NIC is unplugged. The
//! deletion is a call to another daemon, which may be down or restarting,
//! and virtqemud itself may be killed right after the stop. So a port to
//! release is first written down, one file per port,
//! `<run>/qemu/port-release/<port uuid>` holding the network's name, and
//! the file is removed only once virtnetworkd has deleted the port (or
//! does not know it). A background task works through the files, retrying
//! with back-off while virtnetworkd does not answer; a restarted daemon
//! picks up the files left behind.
//!
//! After a restart, [`QemuDriver::collect_stale_ports`] also finds ports
//! whose owner is one of our domains that no longer holds them (a stop or
//! unplug whose journal entry was never written, a port created by a call
//! cut off before it could record it) and releases them the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::QemuDriver;

/// The first retry delay (doubles, up to 30 s).
const RETRY_FIRST: Duration = Duration::from_millis(200);

/// The releaser's state: whether its task runs, and its wake-up.
#[derive(Debug, Default)]
pub(super) struct Releaser {
    running: Arc<AtomicBool>,
    kick: Arc<tokio::sync::Notify>,
}

fn journal_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("port-release")
}

impl QemuDriver {
    /// Releases `ports` (network, port UUID): written to the journal now,
    /// deleted in virtnetworkd in the background. Returns once written.
    pub(super) fn release_ports_of(&self, ports: &[(String, String)]) {
        if ports.is_empty() || self.network.is_none() {
            return;
        }
        let Some(env) = self.env.as_ref() else {
            return;
        };
        let dir = journal_dir(&env.run_dir);
        for (network, uuid) in ports {
            // A UUID is a file name; anything else is not ours to write.
            if uuid.is_empty() || uuid.contains('/') || uuid.starts_with('.') {
                continue;
            }
            let res = std::fs::create_dir_all(&dir)
                .and_then(|()| common::fsutil::write_atomic(&dir.join(uuid), network.as_bytes()));
            if let Err(e) = res {
                tracing::error!(
                    port = %uuid,
                    "cannot journal the release of port {uuid} of network '{network}': {e}; releasing it without"
                );
                let client = self.network.clone();
                let (network, uuid) = (network.clone(), uuid.clone());
                tokio::spawn(async move {
                    if let Some(c) = client
                        && let Err(e) = c.delete_port(&network, &uuid).await
                    {
                        tracing::warn!(port = %uuid, "cannot release port: {}", e.message);
                    }
                });
            }
        }
        self.run_releaser();
    }

    /// Makes sure the releaser task runs (and looks at the journal again).
    pub(super) fn run_releaser(&self) {
        let (Some(client), Some(env)) = (self.network.clone(), self.env.as_ref()) else {
            return;
        };
        self.releaser.kick.notify_one();
        if self.releaser.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let dir = journal_dir(&env.run_dir);
        let kick = self.releaser.kick.clone();
        tokio::spawn(async move {
            let mut delay = RETRY_FIRST;
            loop {
                let left = release_all(&client, &dir).await;
                if left == 0 {
                    delay = RETRY_FIRST;
                    kick.notified().await;
                } else {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = kick.notified() => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        });
    }

    /// After a restart, once virtnetworkd answers: releases every port
    /// owned by one of our domains that the domain does not hold (it is
    /// not running, or its live definition names other ports). Domains in
    /// the middle of a change (their job taken) are left for next time.
    pub(super) async fn collect_stale_ports(self: Arc<Self>) {
        let Some(client) = self.network.clone() else {
            return;
        };
        if !client.wait_ready(super::reconnect::PEER_WAIT).await {
            return;
        }
        let ports = match client.all_ports().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cannot look for stale network ports: {}", e.message);
                return;
            }
        };
        let mut stale = Vec::new();
        for (network, uuid, owner) in ports {
            let Some(owner) = common::xml::values::Uuid::parse(&owner) else {
                continue;
            };
            let Some(e) = self.domains.find_by_uuid(&owner.0) else {
                continue;
            };
            let Ok(_job) = e.obj.job.try_lock() else {
                continue;
            };
            let held = {
                let st = e.obj.lock();
                st.runtime.is_some()
                    && crate::network::network_nics(&st.def)
                        .iter()
                        .any(|(_, _, _, p)| p.as_deref() == Some(uuid.as_str()))
            };
            if !held {
                tracing::info!(port = %uuid, network = %network, "releasing a port no domain holds");
                stale.push((network, uuid));
            }
        }
        self.release_ports_of(&stale);
    }
}

/// One pass over the journal; returns how many entries are left.
async fn release_all(client: &crate::network::NetworkClient, dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut left = 0;
    for e in entries.flatten() {
        let Some(uuid) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if uuid.starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(network) = std::fs::read_to_string(&path) else {
            continue;
        };
        match client.delete_port(network.trim(), &uuid).await {
            Ok(()) => {
                if let Err(e) = common::fsutil::remove_durable(&path) {
                    tracing::warn!(file = %path.display(), "cannot remove: {e}");
                }
            }
            Err(e) => {
                left += 1;
                tracing::debug!(port = %uuid, "port not released yet: {}", e.message);
            }
        }
    }
    left
}
