//! `logical` pools: an LVM volume group whose logical volumes are the
//! pool's volumes (`/dev/<vg>/<lv>`, key = the LV's UUID).
//!
//! Build: `pvcreate` on every source device (refusing devices that carry a
//! signature unless `overwrite`), then `vgcreate`. Start/stop:
//! `vgchange -aly/-aln` (libvirt's command line). Delete: `vgremove -f`,
//! `pvremove`. Refresh: `vgs` for the sizes and `lvs` for the volumes,
//! with libvirt's columns. Volumes: `lvcreate`, `lvremove -f`,
//! `lvresize`.
//!
//! Hosts without device-mapper (some VM kernels) cannot activate logical
//! volumes. With `VIRT_STORAGE_LVM_NO_DM=1` in the environment the
//! backend passes `--driverloaded n` (and creates volumes inactive), so
//! the LVM metadata side still works — for tests on such hosts only:
//! volumes created that way have no device node.

use std::collections::BTreeMap;
use std::sync::Arc;

use common::VirtError;
use common::storage::argv::{self, Command};
use common::storage::{PoolDef, VolBackingStore, VolDef, VolExtent, VolType};

use super::{Backend, BuildFlags, CreateFlags, Refreshed, Resize};
use crate::error::{self, blocking};
use crate::exec;
use crate::pool_obj::{PoolSizes, Vol};

/// The environment switch for hosts without device-mapper.
pub const NO_DM_ENV: &str = "VIRT_STORAGE_LVM_NO_DM";

/// The `logical` backend.
#[derive(Debug)]
pub struct LogicalBackend;

fn no_dm() -> bool {
    std::env::var_os(NO_DM_ENV).is_some_and(|v| v == "1")
}

/// An LVM command, with `--driverloaded n` on hosts without
/// device-mapper.
fn lvm(program: &str) -> Command {
    let mut c = Command::new(program);
    if no_dm() {
        c.args(["--driverloaded", "n"]);
    }
    c
}

fn vg_name(def: &PoolDef) -> Result<&str, VirtError> {
    def.source.name.as_deref().ok_or_else(|| {
        error::invalid_arg(format!("storage pool '{}' has no source name", def.name))
    })
}

/// Whether the volume group exists.
async fn vg_exists(vg: &str) -> bool {
    let mut c = Command::new("vgs");
    c.args(["--noheadings", "-o", "vg_name", vg]);
    exec::run(&c).await.is_ok()
}

/// `vgs` sizes: capacity, free.
///
/// # Errors
/// `vgs` fails or prints something else.
async fn vg_sizes(vg: &str) -> Result<PoolSizes, VirtError> {
    let mut c = Command::new("vgs");
    c.args([
        "--separator",
        ":",
        "--noheadings",
        "--units",
        "b",
        "--unbuffered",
        "--nosuffix",
        "--options",
        "vg_size,vg_free",
        vg,
    ]);
    let out = exec::run(&c).await?;
    parse_vgs(&out.stdout).ok_or_else(|| {
        error::internal(format!(
            "cannot parse vgs output for '{vg}': {}",
            out.stdout.trim()
        ))
    })
}

/// Parses `SIZE:FREE`.
pub fn parse_vgs(text: &str) -> Option<PoolSizes> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let (size, free) = line.trim().split_once(':')?;
    let capacity: u64 = size.trim().parse().ok()?;
    let available: u64 = free.trim().parse().ok()?;
    Some(PoolSizes {
        capacity,
        allocation: capacity.saturating_sub(available),
        available,
    })
}

/// The `lvs` columns libvirt reads.
const LVS_COLUMNS: &str = "lv_name,origin,uuid,devices,seg_size,vg_extent_size,size,lv_attr";

fn lvs_command(target: &str) -> Command {
    let mut c = Command::new("lvs");
    c.args([
        "--separator",
        "#",
        "--noheadings",
        "--units",
        "b",
        "--unbuffered",
        "--nosuffix",
        "--options",
        LVS_COLUMNS,
        target,
    ]);
    c
}

/// Parses `lvs` output into volumes of the pool whose target path is
/// `vg_dir` (`/dev/<vg>`). Thin pools and other internal volumes are left
/// out, as libvirt does; segments become extents.
pub fn parse_lvs(text: &str, vg_dir: &str) -> BTreeMap<String, VolDef> {
    let mut vols: BTreeMap<String, VolDef> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.trim().split('#').collect();
        if f.len() < 8 {
            continue;
        }
        let (name, origin, uuid, devices, seg_size, _extent, size, attr) =
            (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]);
        // Thin pools ('t'), internal volumes ('[...]') are not volumes.
        if name.is_empty() || name.starts_with('[') || attr.starts_with('t') {
            continue;
        }
        let capacity: u64 = size.parse().unwrap_or(0);
        let path = format!("{vg_dir}/{name}");
        let vol = vols.entry(name.to_owned()).or_insert_with(|| VolDef {
            name: name.to_owned(),
            key: Some(uuid.to_owned()),
            vol_type: Some(VolType::Block),
            capacity,
            allocation: capacity,
            has_allocation: true,
            target: common::storage::VolTarget {
                path: Some(path.clone()),
                ..Default::default()
            },
            backing_store: (!origin.is_empty()).then(|| VolBackingStore {
                path: format!("{vg_dir}/{origin}"),
                format: None,
                perms: Default::default(),
            }),
            ..VolDef::default()
        });
        // devices: "/dev/sda2(0),/dev/sdb(12)"; extents in bytes follow the
        // segment size.
        let seg: u64 = seg_size.parse().unwrap_or(0);
        for d in devices.split(',').filter(|d| !d.is_empty()) {
            let Some((dev, start)) = d.trim_end_matches(')').split_once('(') else {
                continue;
            };
            let start_pe: u64 = start.parse().unwrap_or(0);
            let extent: u64 = f[5].parse().unwrap_or(0);
            let start = start_pe * extent;
            vol.extents.push(VolExtent {
                path: dev.to_owned(),
                start,
                end: start + seg,
            });
        }
    }
    vols
}

async fn list_lvs(def: &PoolDef, target: &str) -> Result<BTreeMap<String, VolDef>, VirtError> {
    let out = exec::run(&lvs_command(target)).await?;
    let dir = def
        .target
        .path
        .clone()
        .unwrap_or_else(|| format!("/dev/{}", def.name));
    Ok(parse_lvs(&out.stdout, &dir))
}

/// Applies mode and owner to the LV's device node, when it has one.
fn apply_perms(vol: &VolDef) -> Result<(), VirtError> {
    let Some(path) = vol.target.path.as_deref() else {
        return Ok(());
    };
    if std::fs::metadata(path).is_err() {
        return Ok(());
    }
    let p = &vol.target.perms;
    if let Some(m) = p.mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m))
            .map_err(|e| error::sys(format!("cannot set mode of '{path}'"), &e))?;
    }
    if p.uid.is_some() || p.gid.is_some() {
        std::os::unix::fs::chown(path, p.uid, p.gid)
            .map_err(|e| error::sys(format!("cannot chown '{path}'"), &e))?;
    }
    Ok(())
}

#[tonic::async_trait]
impl Backend for LogicalBackend {
    async fn check(&self, def: Arc<PoolDef>) -> Result<bool, VirtError> {
        Ok(vg_exists(vg_name(&def)?).await)
    }

    async fn build(&self, def: Arc<PoolDef>, flags: BuildFlags) -> Result<(), VirtError> {
        let vg = vg_name(&def)?;
        if def.source.devices.is_empty() {
            return Err(error::invalid_arg(format!(
                "storage pool '{}' has no source device to build on",
                def.name
            )));
        }
        for d in &def.source.devices {
            if !flags.overwrite {
                let mut c = Command::new("blkid");
                c.args(["-p", "-o", "value", "-s", "TYPE", d.path.as_str()]);
                if let Ok(out) = exec::run(&c).await {
                    return Err(error::op_invalid(format!(
                        "Device '{}' already formatted using '{}'",
                        d.path,
                        out.stdout.trim()
                    )));
                }
            } else {
                let mut c = Command::new("wipefs");
                c.args(["-a", d.path.as_str()]);
                exec::run(&c).await?;
            }
            let mut c = Command::new("pvcreate");
            c.args(["-y", d.path.as_str()]);
            exec::run(&c).await?;
        }
        let mut c = Command::new("vgcreate");
        c.arg(vg);
        c.args(def.source.devices.iter().map(|d| d.path.clone()));
        exec::run(&c).await?;
        Ok(())
    }

    async fn start(&self, def: Arc<PoolDef>) -> Result<(), VirtError> {
        let vg = vg_name(&def)?;
        if !vg_exists(vg).await {
            return Err(error::op_invalid(format!(
                "cannot find logical volume group name '{vg}'"
            )));
        }
        let mut cmd =
            argv::vgchange_command("vgchange", &def, true).map_err(|e| error::argv(&e))?;
        if no_dm() {
            cmd.args
                .splice(0..0, ["--driverloaded".to_owned(), "n".to_owned()]);
        }
        exec::run(&cmd).await?;
        Ok(())
    }

    async fn stop(&self, def: Arc<PoolDef>) -> Result<(), VirtError> {
        let mut cmd =
            argv::vgchange_command("vgchange", &def, false).map_err(|e| error::argv(&e))?;
        if no_dm() {
            cmd.args
                .splice(0..0, ["--driverloaded".to_owned(), "n".to_owned()]);
        }
        exec::run(&cmd).await?;
        Ok(())
    }

    async fn delete(&self, def: Arc<PoolDef>, _zeroed: bool) -> Result<(), VirtError> {
        let vg = vg_name(&def)?;
        let mut c = lvm("vgremove");
        c.args(["-f", vg]);
        exec::run(&c).await?;
        for d in &def.source.devices {
            let mut c = Command::new("pvremove");
            c.arg(d.path.as_str());
            exec::run(&c).await?;
        }
        Ok(())
    }

    async fn refresh(
        &self,
        def: Arc<PoolDef>,
        _old: Arc<BTreeMap<String, Vol>>,
    ) -> Result<Refreshed, VirtError> {
        let vg = vg_name(&def)?.to_owned();
        let sizes = vg_sizes(&vg).await?;
        let vols = list_lvs(&def, &vg)
            .await?
            .into_iter()
            .map(|(n, v)| {
                (
                    n,
                    Vol {
                        def: Arc::new(v),
                        stamp: None,
                    },
                )
            })
            .collect();
        Ok(Refreshed { sizes, vols })
    }

    fn prepare_vol(&self, def: &PoolDef, vol: &mut VolDef) -> Result<(), VirtError> {
        let dir = def
            .target
            .path
            .clone()
            .unwrap_or_else(|| format!("/dev/{}", vg_name(def).unwrap_or(&def.name)));
        vol.target.path = Some(format!("{dir}/{}", vol.name));
        vol.vol_type = Some(VolType::Block);
        if vol.target.encryption.is_some() {
            return Err(error::config_unsupported(
                "storage pool does not support encrypted volumes",
            ));
        }
        Ok(())
    }

    async fn create_vol(
        &self,
        def: Arc<PoolDef>,
        vol: VolDef,
        _flags: CreateFlags,
    ) -> Result<Vol, VirtError> {
        let vg = vg_name(&def)?.to_owned();
        if list_lvs(&def, &vg).await?.contains_key(&vol.name) {
            return Err(error::vol_exists(&vol.name));
        }
        let mut c = lvm("lvcreate");
        if no_dm() {
            c.args(["-an", "-Zn"]);
        }
        c.args(["--yes", "--name", vol.name.as_str(), "-L"]);
        c.arg(format!("{}K", vol.capacity.div_ceil(1024).max(1)));
        match &vol.backing_store {
            Some(b) => {
                c.args(["-s", b.path.as_str()]);
            }
            None => {
                c.arg(vg.as_str());
            }
        }
        exec::run(&c).await?;
        let created = async {
            let v = vol.clone();
            blocking(move || apply_perms(&v)).await?;
            self.refresh_vol(def.clone(), Arc::new(vol.clone())).await
        }
        .await;
        if created.is_err() {
            let mut rm = lvm("lvremove");
            rm.args(["-f".to_owned(), format!("{vg}/{}", vol.name)]);
            let _ = exec::run(&rm).await;
        }
        created
    }

    async fn create_vol_from(
        &self,
        def: Arc<PoolDef>,
        vol: VolDef,
        input: Arc<VolDef>,
        flags: CreateFlags,
    ) -> Result<Vol, VirtError> {
        let created = self.create_vol(def.clone(), vol.clone(), flags).await?;
        let copy = async {
            let cmds = argv::qemu_img_commands(
                &created.def,
                Some(&input),
                &argv::QemuImgOptions::default(),
            )
            .map_err(|e| error::argv(&e))?;
            for c in &cmds {
                exec::run_with(c, std::time::Duration::from_secs(3600)).await?;
            }
            Ok::<(), VirtError>(())
        }
        .await;
        if let Err(e) = copy {
            let _ = self.delete_vol(def, created.def.clone(), false).await;
            return Err(e);
        }
        Ok(created)
    }

    async fn delete_vol(
        &self,
        def: Arc<PoolDef>,
        vol: Arc<VolDef>,
        zeroed: bool,
    ) -> Result<(), VirtError> {
        if zeroed && let Some(p) = &vol.target.path {
            super::wipe_local(p.into(), crate::wipe::Algorithm::Zero).await?;
        }
        let vg = vg_name(&def)?;
        let mut c = lvm("lvremove");
        c.args(["-f".to_owned(), format!("{vg}/{}", vol.name)]);
        exec::run(&c).await?;
        Ok(())
    }

    async fn resize_vol(
        &self,
        def: Arc<PoolDef>,
        vol: Arc<VolDef>,
        resize: Resize,
    ) -> Result<(), VirtError> {
        let vg = vg_name(&def)?;
        let mut c = lvm("lvresize");
        if resize.shrink {
            c.arg("-f");
        }
        c.args([
            "-L".to_owned(),
            format!("{}K", resize.capacity.div_ceil(1024)),
            format!("{vg}/{}", vol.name),
        ]);
        exec::run(&c).await?;
        Ok(())
    }

    async fn refresh_vol(&self, def: Arc<PoolDef>, vol: Arc<VolDef>) -> Result<Vol, VirtError> {
        let vg = vg_name(&def)?;
        let mut found = list_lvs(&def, &format!("{vg}/{}", vol.name)).await?;
        let mut v = found.remove(&vol.name).ok_or_else(|| {
            error::no_vol(format!("no storage vol with matching name '{}'", vol.name))
        })?;
        v.target.perms = vol.target.perms.clone();
        Ok(Vol {
            def: Arc::new(v),
            stamp: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vgs_and_lvs_output() {
        assert_eq!(
            parse_vgs("  62914560:50331648\n"),
            Some(PoolSizes {
                capacity: 62_914_560,
                allocation: 12_582_912,
                available: 50_331_648
            })
        );
        let text = "  lv1##KA3tnT-QS9n#/dev/loop0(0)#12582912#4194304#12582912#-wi-a-----\n\
                    \x20 snap#lv1#Zz9#/dev/loop0(3)#4194304#4194304#4194304#swi-a-s---\n\
                    \x20 thin##T1#thin_tdata(0)#4194304#4194304#4194304#twi-a-tz--\n";
        let v = parse_lvs(text, "/dev/vg");
        assert_eq!(v.keys().collect::<Vec<_>>(), ["lv1", "snap"]);
        let lv1 = &v["lv1"];
        assert_eq!(lv1.key.as_deref(), Some("KA3tnT-QS9n"));
        assert_eq!(lv1.capacity, 12_582_912);
        assert_eq!(lv1.target.path.as_deref(), Some("/dev/vg/lv1"));
        assert_eq!(lv1.extents[0].path, "/dev/loop0");
        assert_eq!((lv1.extents[0].start, lv1.extents[0].end), (0, 12_582_912));
        let snap = &v["snap"];
        assert_eq!(
            snap.backing_store.as_ref().map(|b| b.path.as_str()),
            Some("/dev/vg/lv1")
        );
        assert_eq!(snap.extents[0].start, 3 * 4_194_304);
    }
}
