//! `<serial>`, `<parallel>`, `<console>` and `<channel>`: a
//! [`ChrSource`] backend plus a guest-side target.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt};
use super::chardev::{self, ChrBackend, ChrSource, ChrType};
use super::info::{DeviceInfo, InfoOpts};

xml_enum! {
    /// Which of the four character device kinds.
    pub enum ChrKind { Serial = "serial", Parallel = "parallel", Console = "console", Channel = "channel" }
}

xml_enum! {
    /// `<serial><target type=>`.
    pub enum SerialTargetType {
        IsaSerial = "isa-serial", UsbSerial = "usb-serial", PciSerial = "pci-serial",
        SpaprVioSerial = "spapr-vio-serial", SystemSerial = "system-serial",
        SclpSerial = "sclp-serial", IsaDebug = "isa-debug",
    }
}

xml_enum! {
    /// `<serial><target><model name=>`.
    pub enum SerialTargetModel {
        IsaSerial = "isa-serial", UsbSerial = "usb-serial", PciSerial = "pci-serial",
        SpaprVty = "spapr-vty", Pl011 = "pl011", SclpConsole = "sclpconsole",
        SclpLmConsole = "sclplmconsole", Uart16550a = "16550a", IsaDebugcon = "isa-debugcon",
    }
}

xml_enum! {
    /// `<console><target type=>`.
    pub enum ConsoleTargetType {
        Serial = "serial", Xen = "xen", Uml = "uml", Virtio = "virtio", Lxc = "lxc",
        Openvz = "openvz", Sclp = "sclp", Sclplm = "sclplm",
    }
}

xml_enum! {
    /// `<channel><target state=>` (live only).
    pub enum ChannelState { Connected = "connected", Disconnected = "disconnected" }
}

/// The guest side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChrTarget {
    /// `<serial><target type= port=><model name=>`.
    Serial {
        /// `type=` (`None`: let the driver choose).
        kind: Option<SerialTargetType>,
        /// `port=` (`None`: assigned in post-parse).
        port: Option<u32>,
        /// `<model name=>`.
        model: Option<SerialTargetModel>,
    },
    /// `<parallel><target port=>`.
    Parallel {
        /// `port=`.
        port: Option<u32>,
    },
    /// `<console><target type= port=>`.
    Console {
        /// `type=` (`None` is written `none`).
        kind: Option<ConsoleTargetType>,
        /// `port=`.
        port: Option<u32>,
    },
    /// `<channel><target type='guestfwd' address= port=>`.
    Guestfwd {
        /// `address=`.
        address: String,
        /// `port=`.
        port: u32,
    },
    /// `<channel><target type='virtio' name= state=>`.
    Virtio {
        /// `name=`.
        name: Option<String>,
        /// `state=`.
        state: Option<ChannelState>,
    },
    /// `<channel><target type='xen' name=>`.
    Xen {
        /// `name=`.
        name: Option<String>,
    },
}

impl ChrTarget {
    /// The port of a serial/parallel/console target.
    pub fn port(&self) -> Option<u32> {
        match self {
            ChrTarget::Serial { port, .. }
            | ChrTarget::Parallel { port }
            | ChrTarget::Console { port, .. } => *port,
            _ => None,
        }
    }

    /// Sets the port of a serial/parallel/console target.
    pub fn set_port(&mut self, p: u32) {
        match self {
            ChrTarget::Serial { port, .. }
            | ChrTarget::Parallel { port }
            | ChrTarget::Console { port, .. } => *port = Some(p),
            _ => {}
        }
    }
}

/// A serial port, parallel port, console or channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chardev {
    /// The host side.
    pub source: ChrSource,
    /// The guest side.
    pub target: ChrTarget,
    /// Address, alias.
    pub info: DeviceInfo,
}

fn port_attr(t: Option<Node<'_>>) -> Result<Option<u32>, XmlError> {
    let Some(t) = t else { return Ok(None) };
    match t.attr("port") {
        None => Ok(None),
        Some(p) => crate::xml::parse_uint::<u32>(p)
            .map(Some)
            .ok_or_else(|| XmlError::bad_value(t.attr_path("port"), p, "Invalid port number:")),
    }
}

fn bad_target(t: Node<'_>, v: &str) -> XmlError {
    XmlError::bad_value(
        t.attr_path("type"),
        v,
        "unknown target type specified for character device:",
    )
}

fn parse_target(n: Node<'_>, kind: ChrKind, ctx: &Ctx<'_>) -> Result<ChrTarget, XmlError> {
    let tn = n.child("target");
    let t = tn.as_ref().map(|t| t.node());
    let ty = t.and_then(|t| t.attr("type"));
    let ty = ty.filter(|v| *v != "none" || kind == ChrKind::Channel);
    Ok(match kind {
        ChrKind::Serial => {
            let k = match (t, ty) {
                (Some(t), Some(v)) => Some(v.parse().map_err(|_| bad_target(t, v))?),
                _ => None,
            };
            let model = match t.and_then(|t| t.child("model")) {
                None => None,
                Some(m) => m.node().parse_attr("name")?,
            };
            ChrTarget::Serial {
                kind: k,
                port: port_attr(t)?,
                model,
            }
        }
        ChrKind::Parallel => ChrTarget::Parallel {
            port: port_attr(t)?,
        },
        ChrKind::Console => {
            let k = match (t, ty) {
                (Some(t), Some(v)) => Some(v.parse().map_err(|_| bad_target(t, v))?),
                _ => None,
            };
            ChrTarget::Console {
                kind: k,
                port: port_attr(t)?,
            }
        }
        ChrKind::Channel => {
            let (Some(t), Some(ty)) = (t, ty) else {
                return Err(XmlError::invalid(
                    n.path(),
                    "target type must be specified for channel device",
                ));
            };
            match ty {
                "guestfwd" => {
                    let address = t.attr("address").ok_or_else(|| {
                        XmlError::invalid(
                            t.path(),
                            "guestfwd channel does not define a target address",
                        )
                    })?;
                    if address.parse::<std::net::IpAddr>().is_err() {
                        return Err(XmlError::bad_value(
                            t.attr_path("address"),
                            address,
                            "Cannot parse address",
                        ));
                    }
                    let port = port_attr(Some(t))?.ok_or_else(|| {
                        XmlError::invalid(
                            t.path(),
                            "guestfwd channel does not define a target port",
                        )
                    })?;
                    ChrTarget::Guestfwd {
                        address: address.to_owned(),
                        port,
                    }
                }
                "virtio" => ChrTarget::Virtio {
                    name: t.attr("name").map(str::to_owned),
                    state: if ctx.inactive() {
                        None
                    } else {
                        t.parse_attr("state")?
                    },
                },
                "xen" => ChrTarget::Xen {
                    name: t.attr("name").map(str::to_owned),
                },
                other => return Err(bad_target(t, other)),
            }
        }
    })
}

impl Chardev {
    /// Parses one `<serial>`/`<parallel>`/`<console>`/`<channel>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>, kind: ChrKind) -> Result<Chardev, XmlError> {
        ctx.check(
            n,
            &["type", "tty"],
            &[
                "source", "protocol", "log", "target", "alias", "address", "acpi",
            ],
        )?;
        chardev::check_source(n, ctx)?;
        ctx.check_child(
            n,
            "target",
            &["type", "port", "address", "name", "state"],
            &["model"],
        )?;
        if let Some(t) = n.child("target") {
            ctx.check_child(t.node(), "model", &["name"], &[])?;
        }
        let ty: ChrType = match n.attr("type") {
            None => ChrType::Pty,
            Some(v) => v.parse().map_err(|_| {
                XmlError::bad_value(
                    n.attr_path("type"),
                    v,
                    "unknown type presented to host for character device:",
                )
            })?,
        };
        let target = parse_target(n, kind, ctx)?;
        let mut source = chardev::parse_source(n, ty)?;
        if let ChrBackend::Pty { path } = &mut source.backend
            && ctx.inactive()
        {
            *path = None;
        }
        if ty == ChrType::Spicevmc && !matches!(target, ChrTarget::Virtio { .. }) {
            return Err(XmlError::invalid(
                n.path(),
                "spicevmc device type only supports virtio",
            ));
        }
        let info = DeviceInfo::parse(n, ctx, InfoOpts::NONE)?;
        Ok(Chardev {
            source,
            target,
            info,
        })
    }

    /// Formats as `<elem>`.
    pub(crate) fn format(&self, elem: &str, flags: &Fmt) -> Element {
        let mut e = Element::new(elem).with_attr("type", self.source.backend.chr_type());
        if let ChrBackend::Pty { path: Some(p) } = &self.source.backend
            && !flags.inactive
        {
            e.set_attr("tty", p);
        }
        chardev::format_source(&self.source, flags, &mut e);
        e.push(self.format_target());
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }

    fn format_target(&self) -> Element {
        let t = Element::new("target");
        match &self.target {
            ChrTarget::Serial { kind, port, model } => {
                let mut t = t.with_opt_attr("type", *kind).with_opt_attr("port", *port);
                if let Some(m) = model {
                    t.push(Element::new("model").with_attr("name", m));
                }
                t
            }
            ChrTarget::Parallel { port } => t.with_opt_attr("port", *port),
            ChrTarget::Console { kind, port } => t
                .with_attr("type", kind.map(|k| k.as_str()).unwrap_or("none"))
                .with_opt_attr("port", *port),
            ChrTarget::Guestfwd { address, port } => t
                .with_attr("type", "guestfwd")
                .with_attr("address", address)
                .with_attr("port", port),
            ChrTarget::Virtio { name, state } => t
                .with_attr("type", "virtio")
                .with_opt_attr("name", name.as_deref())
                .with_opt_attr("state", *state),
            ChrTarget::Xen { name } => t
                .with_attr("type", "xen")
                .with_opt_attr("name", name.as_deref()),
        }
    }

    /// Generic checks.
    pub(crate) fn validate(&self, path: &str) -> Result<(), XmlError> {
        let optional = matches!(
            self.target,
            ChrTarget::Virtio { .. } | ChrTarget::Xen { .. }
        );
        chardev::validate_source(&self.source, path, optional)
    }
}
