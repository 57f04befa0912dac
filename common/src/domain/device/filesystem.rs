//! `<filesystem>`: host directories, images and RAM disks shared with the
//! guest (9p, virtiofs, container mounts).

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, scaled_bytes};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<filesystem type=>`.
    pub enum FsType {
        Mount = "mount", Block = "block", File = "file", Template = "template", Ram = "ram",
        Bind = "bind", Volume = "volume",
    }
}

xml_enum! {
    /// `accessmode=`.
    pub enum FsAccessMode { Passthrough = "passthrough", Mapped = "mapped", Squash = "squash" }
}

xml_enum! {
    /// `model=`.
    pub enum FsModel {
        Virtio = "virtio", VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

xml_enum! {
    /// `multidevs=`.
    pub enum FsMultidevs { Default = "default", Remap = "remap", Forbid = "forbid", Warn = "warn" }
}

xml_enum! {
    /// `<driver type=>`.
    pub enum FsDriverType {
        Path = "path", Handle = "handle", Loop = "loop", Nbd = "nbd", Ploop = "ploop",
        Virtiofs = "virtiofs", Mtp = "mtp",
    }
}

/// `<driver>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsDriver {
    /// `type=`.
    pub kind: Option<FsDriverType>,
    /// `format=`.
    pub format: Option<String>,
    /// `queue=`.
    pub queue: Option<u32>,
    /// `wrpolicy=` (only `immediate`).
    pub wrpolicy: Option<String>,
    /// virtio options.
    pub virtio: VirtioOptions,
}

/// `<source>`, by filesystem type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsSource {
    /// `dir=` (mount, bind).
    Dir(String),
    /// `socket=` (an externally started virtiofsd).
    Socket(String),
    /// `dev=` (block).
    Dev(String),
    /// `file=` (file).
    File(String),
    /// `name=` (template).
    Name(String),
    /// `usage=` in KiB (ram).
    Usage(u64),
    /// `pool=` and `volume=` (volume).
    Volume(String, String),
    /// Nothing given.
    None,
}

/// A filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filesystem {
    /// `type=`.
    pub kind: FsType,
    /// `accessmode=`.
    pub accessmode: FsAccessMode,
    /// `model=`.
    pub model: Option<FsModel>,
    /// `multidevs=`.
    pub multidevs: Option<FsMultidevs>,
    /// `fmode=` (octal).
    pub fmode: Option<u32>,
    /// `dmode=` (octal).
    pub dmode: Option<u32>,
    /// `<driver>`.
    pub driver: FsDriver,
    /// `<binary>` (virtiofsd settings), kept as written.
    pub binary: Option<Element>,
    /// `<idmap>`, kept as written.
    pub idmap: Option<Element>,
    /// `<source>`.
    pub source: FsSource,
    /// `<target dir=>`.
    pub target: String,
    /// `<readonly/>`.
    pub readonly: bool,
    /// `<space_hard_limit>` in bytes.
    pub space_hard_limit: Option<u64>,
    /// `<space_soft_limit>` in bytes.
    pub space_soft_limit: Option<u64>,
    /// Address, alias.
    pub info: DeviceInfo,
}

fn octal(n: Node<'_>, a: &str) -> Result<Option<u32>, XmlError> {
    match n.attr(a) {
        None => Ok(None),
        Some(v) => u32::from_str_radix(v, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .map(Some)
            .ok_or_else(|| XmlError::bad_value(n.attr_path(a), v, "invalid mode")),
    }
}

fn limit(n: Node<'_>, name: &str) -> Result<Option<u64>, XmlError> {
    match n.child(name) {
        None => Ok(None),
        Some(c) => {
            let c = c.node();
            scaled_bytes(c.path(), &c.text(), c.attr("unit"), 1, u64::MAX).map(Some)
        }
    }
}

impl Filesystem {
    /// Parses a `<filesystem>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Filesystem, XmlError> {
        let kind: FsType = match n.attr("type") {
            None => FsType::Mount,
            Some(t) => t.parse().map_err(|_| {
                XmlError::bad_value(n.attr_path("type"), t, "unknown filesystem type")
            })?,
        };
        ctx.check(
            n,
            &["type", "accessmode", "model", "multidevs", "fmode", "dmode"],
            &[
                "source",
                "target",
                "driver",
                "binary",
                "idmap",
                "readonly",
                "space_hard_limit",
                "space_soft_limit",
                "alias",
                "address",
                "acpi",
            ],
        )?;
        ctx.check_child(
            n,
            "source",
            &[
                "dir", "socket", "dev", "file", "name", "usage", "units", "pool", "volume",
            ],
            &[],
        )?;
        ctx.check_child(n, "target", &["dir"], &[])?;
        ctx.check_child(
            n,
            "driver",
            &[
                "type",
                "format",
                "queue",
                "wrpolicy",
                "iommu",
                "ats",
                "packed",
                "page_per_vq",
            ],
            &[],
        )?;
        ctx.check_leaves(n, &["readonly"])?;
        ctx.check_child(n, "space_hard_limit", &["unit"], &[])?;
        ctx.check_child(n, "space_soft_limit", &["unit"], &[])?;
        let src = n.child("source");
        let src = src.as_ref().map(|s| s.node());
        let a = |k: &str| src.and_then(|s| s.attr(k)).map(str::to_owned);
        let source = match kind {
            FsType::Mount | FsType::Bind => match (a("dir"), a("socket")) {
                (Some(d), _) => FsSource::Dir(d),
                (None, Some(s)) => FsSource::Socket(s),
                _ => FsSource::None,
            },
            FsType::Block => a("dev").map_or(FsSource::None, FsSource::Dev),
            FsType::File => a("file").map_or(FsSource::None, FsSource::File),
            FsType::Template => a("name").map_or(FsSource::None, FsSource::Name),
            FsType::Ram => match src.and_then(|s| s.attr("usage")) {
                None => FsSource::None,
                Some(u) => {
                    let s = src.ok_or_else(|| missing(n.child_path("source", None)))?;
                    let units = s.attr("units");
                    let b = scaled_bytes(&s.attr_path("usage"), u, units, 1024, u64::MAX)?;
                    FsSource::Usage(b / 1024)
                }
            },
            FsType::Volume => match (a("pool"), a("volume")) {
                (Some(p), Some(v)) => FsSource::Volume(p, v),
                _ => FsSource::None,
            },
        };
        if source == FsSource::None && kind != FsType::Ram {
            return Err(XmlError::invalid(n.path(), "missing source element"));
        }
        let target = n
            .child("target")
            .and_then(|t| t.node().attr("dir").map(str::to_owned))
            .ok_or_else(|| XmlError::invalid(n.path(), "missing target element"))?;
        let driver = match n.child("driver") {
            None => FsDriver::default(),
            Some(d) => {
                let d = d.node();
                FsDriver {
                    kind: d.parse_attr("type")?,
                    format: d.attr("format").map(str::to_owned),
                    queue: d.uint_attr("queue")?,
                    wrpolicy: d.attr("wrpolicy").map(str::to_owned),
                    virtio: VirtioOptions::parse(d)?,
                }
            }
        };
        if let Some(w) = &driver.wrpolicy
            && w != "immediate"
        {
            return Err(XmlError::bad_value(
                n.child_path("driver", None),
                w,
                "unknown filesystem write policy",
            ));
        }
        Ok(Filesystem {
            kind,
            accessmode: match n.attr("accessmode") {
                None | Some("default") => FsAccessMode::Passthrough,
                Some(m) => m.parse().map_err(|_| {
                    XmlError::bad_value(n.attr_path("accessmode"), m, "unknown accessmode")
                })?,
            },
            model: n.parse_attr("model")?,
            multidevs: n.parse_attr("multidevs")?,
            fmode: octal(n, "fmode")?,
            dmode: octal(n, "dmode")?,
            driver,
            binary: n.child("binary").map(|b| b.node().el.clone()),
            idmap: n.child("idmap").map(|b| b.node().el.clone()),
            source,
            target,
            readonly: n.child("readonly").is_some(),
            space_hard_limit: limit(n, "space_hard_limit")?,
            space_soft_limit: limit(n, "space_soft_limit")?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<filesystem>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("filesystem")
            .with_attr("type", self.kind)
            .with_attr("accessmode", self.accessmode)
            .with_opt_attr("model", self.model)
            .with_opt_attr(
                "multidevs",
                self.multidevs.filter(|m| *m != FsMultidevs::Default),
            )
            .with_opt_attr("fmode", self.fmode.map(|m| format!("{m:04o}")))
            .with_opt_attr("dmode", self.dmode.map(|m| format!("{m:04o}")));
        let d = &self.driver;
        let mut de = Element::new("driver")
            .with_opt_attr("type", d.kind)
            .with_opt_attr("format", d.format.as_deref())
            .with_opt_attr("queue", d.queue)
            .with_opt_attr("wrpolicy", d.wrpolicy.as_deref());
        d.virtio.format(&mut de);
        if !de.is_empty() {
            e.push(de);
        }
        e.push_opt(self.binary.clone());
        e.push_opt(self.idmap.clone());
        let s = Element::new("source");
        let s = match &self.source {
            FsSource::Dir(v) => Some(s.with_attr("dir", v)),
            FsSource::Socket(v) => Some(s.with_attr("socket", v)),
            FsSource::Dev(v) => Some(s.with_attr("dev", v)),
            FsSource::File(v) => Some(s.with_attr("file", v)),
            FsSource::Name(v) => Some(s.with_attr("name", v)),
            FsSource::Usage(v) => Some(s.with_attr("usage", v).with_attr("units", "KiB")),
            FsSource::Volume(p, v) => Some(s.with_attr("pool", p).with_attr("volume", v)),
            FsSource::None => None,
        };
        e.push_opt(s);
        e.push(Element::new("target").with_attr("dir", &self.target));
        if self.readonly {
            e.push(Element::new("readonly"));
        }
        for (name, v) in [
            ("space_hard_limit", self.space_hard_limit),
            ("space_soft_limit", self.space_soft_limit),
        ] {
            if let Some(v) = v {
                e.push(
                    Element::new(name)
                        .with_attr("unit", "bytes")
                        .with_text(v.to_string()),
                );
            }
        }
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
