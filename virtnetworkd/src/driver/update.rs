//! `virNetworkUpdate`: one section of the live and/or persistent
//! definition changed in place (`common::network::update`), written to
//! the definition file and the status file, and dnsmasq told (SIGHUP for
//! DHCP and DNS hosts, a restart for ranges and DNS records).

use std::sync::Arc;

use common::network::update::{self, UpdateCommand, UpdateError, UpdateSection};
use common::objlist::ObjRef;
use common::xml::FormatFlags;
use common::{ErrorCode, ErrorDomain, VirtError};

use super::{NetworkDriver, blocking, operation_invalid, persist_error};
use crate::status::NetworkStatus;

/// One update request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateRequest {
    /// What to do.
    pub command: UpdateCommand,
    /// Which section.
    pub section: UpdateSection,
    /// Which `<ip>` (-1: the one that fits).
    pub parent_index: i32,
    /// The element.
    pub xml: String,
    /// Change the running network.
    pub live: bool,
    /// Change the persistent definition.
    pub config: bool,
}

fn update_error(e: UpdateError) -> VirtError {
    match e {
        UpdateError::Xml(x) => x.to_virt_error(ErrorDomain::Network),
        UpdateError::Invalid(_) => VirtError::new(
            ErrorCode::OperationInvalid,
            ErrorDomain::Network,
            e.to_string(),
        ),
        UpdateError::NoSupport(_) => {
            VirtError::new(ErrorCode::NoSupport, ErrorDomain::Network, e.to_string())
        }
    }
}

impl NetworkDriver {
    /// Applies `req` (libvirt's `networkUpdate`). Neither `live` nor
    /// `config` means the live network if it runs, else the definition.
    ///
    /// # Errors
    /// `NO_NETWORK`; OPERATION_INVALID (`live` on an inactive network,
    /// `config` on a transient one, no matching element...); the element
    /// is refused; files or dnsmasq cannot be updated.
    pub async fn update(&self, r: &ObjRef, req: &UpdateRequest) -> Result<(), VirtError> {
        let obj = self.find(r)?;
        let _job = obj.job.lock().await;
        let (mut live, mut config, cur, persistent_def, persistent, active, rt) = {
            let st = obj.lock();
            if st.removed {
                return Err(self.not_found(r));
            }
            (
                req.live,
                req.config,
                st.def.clone(),
                st.persistent_def(),
                st.persistent,
                st.active,
                st.runtime.clone(),
            )
        };
        if !live && !config {
            if active {
                live = true;
            } else {
                config = true;
            }
        }
        if live && !active {
            return Err(operation_invalid("network is not running"));
        }
        if config && !persistent {
            return Err(operation_invalid(
                "cannot change persistent config of a transient network",
            ));
        }
        // Compute both results before changing anything.
        let new_config = if config {
            let mut d = (*persistent_def).clone();
            update::apply(&mut d, req.command, req.section, req.parent_index, &req.xml)
                .map_err(update_error)?;
            Some(Arc::new(d))
        } else {
            None
        };
        let new_live = if live {
            let mut d = (*cur).clone();
            update::apply(&mut d, req.command, req.section, req.parent_index, &req.xml)
                .map_err(update_error)?;
            Some(Arc::new(d))
        } else {
            None
        };
        // A live change takes several writes: journal their result first,
        // so a daemon killed half-way finishes it at its next start.
        let journalled = if let Some(l) = &new_live {
            let j = super::journal::Journal {
                config: new_config.as_deref().cloned(),
                live: Some((**l).clone()),
                restart: req.section.affects_dnsmasq() && !req.section.hup_is_enough(),
            };
            let run = self.run_dir.clone();
            let name = l.name.clone();
            blocking(move || {
                super::journal::write(&run, &name, &j).map_err(|e| {
                    super::system_error(format!("cannot write the update journal: {e}"))
                })
            })
            .await?;
            true
        } else {
            false
        };
        if let Some(d) = &new_config {
            let store = self.store.clone();
            let (n, t) = (
                d.name.clone(),
                d.to_xml(FormatFlags {
                    inactive: true,
                    ..FormatFlags::default()
                }),
            );
            let saved = blocking(move || store.save(&n, &t).map_err(|e| persist_error(&e))).await;
            if let Err(e) = saved {
                if journalled {
                    super::journal::remove(&self.run_dir, &d.name);
                }
                return Err(e);
            }
        }
        let mut new_rt = rt.clone();
        if let Some(d) = &new_live {
            let host = self.host.clone();
            let status = self.status.clone();
            let def = d.clone();
            let mut rt = rt.unwrap_or_default();
            let section = req.section;
            let run = self.run_dir.clone();
            let live_done = blocking(move || {
                if section.affects_dnsmasq() {
                    rt.dnsmasq =
                        host.refresh_dnsmasq(&def, rt.dnsmasq, !section.hup_is_enough())?;
                }
                status
                    .save(&NetworkStatus {
                        def: (*def).clone(),
                        runtime: rt.clone(),
                    })
                    .map_err(super::system_error)?;
                super::journal::remove(&run, &def.name);
                Ok(rt)
            })
            .await;
            match live_done {
                Ok(rt) => new_rt = Some(rt),
                Err(e) => {
                    // Nothing persisted half: the definition file as it was.
                    if new_config.is_some() {
                        let store = self.store.clone();
                        let (n, t) = (
                            persistent_def.name.clone(),
                            persistent_def.to_xml(FormatFlags {
                                inactive: true,
                                ..FormatFlags::default()
                            }),
                        );
                        if let Err(pe) =
                            blocking(move || store.save(&n, &t).map_err(|e| persist_error(&e)))
                                .await
                        {
                            tracing::error!(network = %persistent_def.name, "cannot put the definition back after a failed live update: {}", pe.message);
                        }
                    }
                    super::journal::remove(&self.run_dir, &d.name);
                    return Err(e);
                }
            }
        }
        let mut st = obj.lock();
        match (new_live, new_config) {
            (Some(l), Some(c)) => {
                st.def = l;
                st.new_def = Some(c);
            }
            (Some(l), None) => {
                // The persistent definition stays as it was.
                if st.persistent && st.new_def.is_none() {
                    st.new_def = Some(st.def.clone());
                }
                st.def = l;
            }
            (None, Some(c)) => {
                if active {
                    st.new_def = Some(c);
                } else {
                    st.def = c;
                }
            }
            (None, None) => {}
        }
        if active {
            st.runtime = new_rt;
            drop(st);
            // A change that made the network need dnsmasq.
            self.supervise_dnsmasq(&obj);
        }
        Ok(())
    }
}
