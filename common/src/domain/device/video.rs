//! `<video>`: display adapters.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, on_off, yes_no};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<model type=>`.
    pub enum VideoType {
        Default = "default", Vga = "vga", Cirrus = "cirrus", Vmvga = "vmvga", Xen = "xen",
        Vbox = "vbox", Qxl = "qxl", Parallels = "parallels", Virtio = "virtio", Gop = "gop",
        None = "none", Bochs = "bochs", Ramfb = "ramfb",
    }
}

xml_enum! {
    /// `<driver name=>`.
    pub enum VideoBackend { Qemu = "qemu", VhostUser = "vhostuser" }
}

xml_enum! {
    /// `<driver vgaconf=>`.
    pub enum VgaConf { Io = "io", On = "on", Off = "off" }
}

/// `<acceleration>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VideoAccel {
    /// `accel3d=`.
    pub accel3d: Option<bool>,
    /// `accel2d=`.
    pub accel2d: Option<bool>,
    /// `rendernode=`.
    pub rendernode: Option<String>,
}

/// A video device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Video {
    /// `<model type=>`.
    pub kind: VideoType,
    /// `ram=` (KiB; qxl).
    pub ram: u32,
    /// `vram=` (KiB).
    pub vram: u32,
    /// `vram64=` (KiB; qxl).
    pub vram64: u32,
    /// `vgamem=` (KiB; qxl).
    pub vgamem: u32,
    /// `heads=`.
    pub heads: u32,
    /// `primary=`.
    pub primary: bool,
    /// `blob=`.
    pub blob: Option<bool>,
    /// `<acceleration>`.
    pub accel: Option<VideoAccel>,
    /// `<resolution x= y=>`.
    pub resolution: Option<(u32, u32)>,
    /// `<driver name=>`.
    pub backend: Option<VideoBackend>,
    /// `<driver vgaconf=>`.
    pub vgaconf: Option<VgaConf>,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// Address, alias.
    pub info: DeviceInfo,
}

/// Default video RAM (KiB) for a model, as libvirt's `virDomainVideoDefaultRAM`.
pub fn default_vram(kind: VideoType, virt_type: &str) -> u32 {
    match kind {
        VideoType::Vga | VideoType::Cirrus | VideoType::Vmvga => match virt_type {
            "vbox" => 8 * 1024,
            "vmware" => 4 * 1024,
            _ => 16 * 1024,
        },
        VideoType::Bochs => 16 * 1024,
        VideoType::Xen => 4 * 1024,
        VideoType::Qxl => 64 * 1024,
        _ => 0,
    }
}

fn kib(n: Node<'_>, a: &str) -> Result<u32, XmlError> {
    Ok(n.uint_attr(a)?.unwrap_or(0))
}

impl Video {
    /// A video device of `kind` with defaults.
    pub fn new(kind: VideoType) -> Video {
        Video {
            kind,
            ram: 0,
            vram: 0,
            vram64: 0,
            vgamem: 0,
            heads: 1,
            primary: false,
            blob: None,
            accel: None,
            resolution: None,
            backend: None,
            vgaconf: None,
            virtio: VirtioOptions::default(),
            info: DeviceInfo::default(),
        }
    }

    /// Parses a `<video>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Video, XmlError> {
        ctx.check(n, &[], &["model", "driver", "alias", "address", "acpi"])?;
        ctx.check_child(
            n,
            "model",
            &[
                "type", "ram", "vram", "vram64", "vgamem", "heads", "primary", "blob",
            ],
            &["acceleration", "resolution"],
        )?;
        if let Some(m) = n.child("model") {
            let m = m.node();
            ctx.check_child(
                m,
                "acceleration",
                &["accel3d", "accel2d", "rendernode"],
                &[],
            )?;
            ctx.check_child(m, "resolution", &["x", "y"], &[])?;
        }
        ctx.check_child(
            n,
            "driver",
            &["name", "vgaconf", "iommu", "ats", "packed", "page_per_vq"],
            &[],
        )?;
        let mut v = Video::new(VideoType::Default);
        if let Some(m) = n.child("model") {
            let m = m.node();
            if let Some(t) = m.attr("type") {
                v.kind = t.parse().map_err(|_| {
                    XmlError::bad_value(m.attr_path("type"), t, "unknown video model")
                })?;
            }
            v.ram = kib(m, "ram")?;
            v.vram = kib(m, "vram")?;
            v.vram64 = kib(m, "vram64")?;
            v.vgamem = kib(m, "vgamem")?;
            v.heads = m.uint_attr("heads")?.unwrap_or(1);
            v.primary = m.yes_no_attr("primary")?.unwrap_or(false);
            v.blob = m.on_off_attr("blob")?;
            if let Some(a) = m.child("acceleration") {
                let a = a.node();
                v.accel = Some(VideoAccel {
                    accel3d: a.yes_no_attr("accel3d")?,
                    accel2d: a.yes_no_attr("accel2d")?,
                    rendernode: a.attr("rendernode").map(str::to_owned),
                });
            }
            if let Some(r) = m.child("resolution") {
                let r = r.node();
                let x = r.uint_attr("x")?;
                let y = r.uint_attr("y")?;
                match (x, y) {
                    (Some(x), Some(y)) => v.resolution = Some((x, y)),
                    _ => {
                        return Err(XmlError::invalid(
                            r.path(),
                            "missing values for acceleration",
                        ));
                    }
                }
            }
        }
        if let Some(d) = n.child("driver") {
            let d = d.node();
            v.backend = d.parse_attr("name")?;
            v.vgaconf = d.parse_attr("vgaconf")?;
            v.virtio = VirtioOptions::parse(d)?;
        }
        v.info = DeviceInfo::parse(n, ctx, InfoOpts::NONE)?;
        Ok(v)
    }

    /// Formats the `<video>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("video");
        let mut d = Element::new("driver");
        self.virtio.format(&mut d);
        d.set_opt_attr("name", self.backend);
        d.set_opt_attr("vgaconf", self.vgaconf);
        if !d.is_empty() {
            e.push(d);
        }
        let nz = |v: u32| (v != 0).then_some(v);
        let mut m = Element::new("model")
            .with_attr("type", self.kind)
            .with_opt_attr("ram", nz(self.ram))
            .with_opt_attr("vram", nz(self.vram))
            .with_opt_attr("vram64", nz(self.vram64))
            .with_opt_attr("vgamem", nz(self.vgamem))
            .with_opt_attr("heads", nz(self.heads));
        if self.primary {
            m.set_attr("primary", "yes");
        }
        m.set_opt_attr("blob", self.blob.map(on_off));
        if let Some(a) = &self.accel {
            m.push(
                Element::new("acceleration")
                    .with_opt_attr("accel3d", a.accel3d.map(yes_no))
                    .with_opt_attr("accel2d", a.accel2d.map(yes_no))
                    .with_opt_attr("rendernode", a.rendernode.as_deref()),
            );
        }
        if let Some((x, y)) = self.resolution {
            m.push(
                Element::new("resolution")
                    .with_attr("x", x)
                    .with_attr("y", y),
            );
        }
        e.push(m);
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
