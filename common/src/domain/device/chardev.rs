//! Character device backends (libvirt's `virDomainChrSourceDef`), shared
//! by serial/parallel/console/channel, smartcards, redirdevs, RNGs and
//! vhost-user interfaces.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, on_off, yes_no};
use super::storage::{self, DeviceSeclabel};

xml_enum! {
    /// The backend type (`type=`).
    pub enum ChrType {
        Null = "null", Vc = "vc", Pty = "pty", Dev = "dev", File = "file", Pipe = "pipe",
        Stdio = "stdio", Udp = "udp", Tcp = "tcp", Unix = "unix", Spicevmc = "spicevmc",
        Spiceport = "spiceport", Nmdm = "nmdm", QemuVdagent = "qemu-vdagent", Dbus = "dbus",
    }
}

xml_enum! {
    /// `<protocol type=>` of a TCP backend.
    pub enum TcpProtocol { Raw = "raw", Telnet = "telnet", Telnets = "telnets", Tls = "tls" }
}

xml_enum! {
    /// `<mouse mode=>` of a qemu-vdagent backend.
    pub enum VdagentMouse { Server = "server", Client = "client" }
}

/// `<reconnect enabled= timeout=>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// `enabled=`.
    pub enabled: bool,
    /// `timeout=` (seconds; only when enabled).
    pub timeout: Option<u32>,
}

/// A backend and its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChrBackend {
    /// Discard output.
    Null,
    /// Virtual console.
    Vc,
    /// Pseudo TTY; the path is live-only.
    Pty {
        /// The allocated `/dev/pts/N`.
        path: Option<String>,
    },
    /// A host device.
    Dev {
        /// `path=`.
        path: Option<String>,
    },
    /// A file.
    File {
        /// `path=`.
        path: Option<String>,
        /// `append=` on/off.
        append: Option<bool>,
    },
    /// A named pipe.
    Pipe {
        /// `path=`.
        path: Option<String>,
    },
    /// The daemon's stdio.
    Stdio,
    /// UDP: optional bind and connect ends.
    Udp {
        /// `<source mode='bind' host=>`.
        bind_host: Option<String>,
        /// `<source mode='bind' service=>`.
        bind_service: Option<String>,
        /// `<source mode='connect' host=>`.
        connect_host: Option<String>,
        /// `<source mode='connect' service=>`.
        connect_service: Option<String>,
    },
    /// TCP client or server.
    Tcp {
        /// `mode='bind'`.
        listen: bool,
        /// `host=`.
        host: Option<String>,
        /// `service=`.
        service: Option<String>,
        /// `tls=`.
        tls: Option<bool>,
        /// `<protocol type=>`.
        protocol: TcpProtocol,
        /// `<reconnect>`.
        reconnect: Option<Reconnect>,
    },
    /// UNIX socket client or server.
    Unix {
        /// `mode='bind'`.
        listen: bool,
        /// `path=` (drivers may generate it).
        path: Option<String>,
        /// `<reconnect>`.
        reconnect: Option<Reconnect>,
    },
    /// SPICE VMC channel.
    Spicevmc,
    /// SPICE port.
    Spiceport {
        /// `<source channel=>`.
        channel: Option<String>,
    },
    /// nmdm (FreeBSD).
    Nmdm {
        /// `master=`.
        master: Option<String>,
        /// `slave=`.
        slave: Option<String>,
    },
    /// QEMU vdagent.
    QemuVdagent {
        /// `<clipboard copypaste=>`.
        clipboard: Option<bool>,
        /// `<mouse mode=>`.
        mouse: Option<VdagentMouse>,
    },
    /// D-Bus.
    Dbus {
        /// `<source channel=>`.
        channel: Option<String>,
    },
}

/// A backend with its security labels and log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChrSource {
    /// The backend.
    pub backend: ChrBackend,
    /// Per-device labels on `<source>` (file/dev/pipe/unix).
    pub seclabels: Vec<DeviceSeclabel>,
    /// `<log file= append=>`.
    pub log: Option<(String, Option<bool>)>,
}

impl Default for ChrSource {
    fn default() -> Self {
        ChrSource {
            backend: ChrBackend::Pty { path: None },
            seclabels: Vec::new(),
            log: None,
        }
    }
}

impl ChrBackend {
    /// The `type=` value.
    pub fn chr_type(&self) -> ChrType {
        match self {
            ChrBackend::Null => ChrType::Null,
            ChrBackend::Vc => ChrType::Vc,
            ChrBackend::Pty { .. } => ChrType::Pty,
            ChrBackend::Dev { .. } => ChrType::Dev,
            ChrBackend::File { .. } => ChrType::File,
            ChrBackend::Pipe { .. } => ChrType::Pipe,
            ChrBackend::Stdio => ChrType::Stdio,
            ChrBackend::Udp { .. } => ChrType::Udp,
            ChrBackend::Tcp { .. } => ChrType::Tcp,
            ChrBackend::Unix { .. } => ChrType::Unix,
            ChrBackend::Spicevmc => ChrType::Spicevmc,
            ChrBackend::Spiceport { .. } => ChrType::Spiceport,
            ChrBackend::Nmdm { .. } => ChrType::Nmdm,
            ChrBackend::QemuVdagent { .. } => ChrType::QemuVdagent,
            ChrBackend::Dbus { .. } => ChrType::Dbus,
        }
    }
}

fn mode_listen(n: Node<'_>) -> Result<bool, XmlError> {
    match n.attr("mode") {
        None | Some("connect") => Ok(false),
        Some("bind") => Ok(true),
        Some(v) => Err(XmlError::bad_value(
            n.attr_path("mode"),
            v,
            "Unknown source mode",
        )),
    }
}

fn parse_reconnect(n: Node<'_>) -> Result<Option<Reconnect>, XmlError> {
    let Some(r) = n.child("reconnect") else {
        return Ok(None);
    };
    let r = r.node();
    let Some(enabled) = r.yes_no_attr("enabled")? else {
        return Ok(None);
    };
    let timeout = if enabled {
        Some(
            r.uint_attr("timeout")?
                .ok_or_else(|| missing(r.attr_path("timeout")))?,
        )
    } else {
        None
    };
    Ok(Some(Reconnect { enabled, timeout }))
}

fn s(n: Node<'_>, a: &str) -> Option<String> {
    n.attr(a).map(str::to_owned)
}

/// Parses the backend of type `ty` from the children of `n` (the device
/// element, which holds `<source>`, `<protocol>` and `<log>`).
/// With the validate flag: the `<source>`, `<protocol>` and `<log>`
/// children of a character device backend `n`.
pub(crate) fn check_source(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    ctx.check_child(
        n,
        "source",
        &[
            "path", "append", "mode", "host", "service", "tls", "channel", "master", "slave",
        ],
        &["reconnect", "seclabel", "clipboard", "mouse"],
    )?;
    for src in super::super::util::named(n, "source") {
        let src = src.node();
        ctx.check_child(src, "reconnect", &["enabled", "timeout"], &[])?;
        ctx.check_child(src, "clipboard", &["copypaste"], &[])?;
        ctx.check_child(src, "mouse", &["mode"], &[])?;
        storage::check_seclabels(src, ctx)?;
    }
    ctx.check_child(n, "protocol", &["type"], &[])?;
    ctx.check_child(n, "log", &["file", "append"], &[])
}

pub(crate) fn parse_source(n: Node<'_>, ty: ChrType) -> Result<ChrSource, XmlError> {
    let sources = n.children("source");
    let max = if ty == ChrType::Udp { 2 } else { 1 };
    if sources.len() > max {
        return Err(XmlError::invalid(
            sources[max].node().path(),
            "only one source element is allowed for this character device",
        ));
    }
    let first = sources.first().map(|s| s.node());
    let attr = |a: &str| first.and_then(|f| s(f, a));
    let backend = match ty {
        ChrType::Null => ChrBackend::Null,
        ChrType::Vc => ChrBackend::Vc,
        ChrType::Stdio => ChrBackend::Stdio,
        ChrType::Spicevmc => ChrBackend::Spicevmc,
        ChrType::Pty => ChrBackend::Pty { path: attr("path") },
        ChrType::Dev => ChrBackend::Dev { path: attr("path") },
        ChrType::Pipe => ChrBackend::Pipe { path: attr("path") },
        ChrType::File => ChrBackend::File {
            path: attr("path"),
            append: match first {
                Some(f) => f.on_off_attr("append")?,
                None => None,
            },
        },
        ChrType::Udp => {
            let (mut bh, mut bs, mut ch, mut cs) = (None, None, None, None);
            for src in &sources {
                let src = src.node();
                if mode_listen(src)? {
                    if bh.is_none() && bs.is_none() {
                        bh = s(src, "host");
                        bs = s(src, "service");
                    }
                } else if ch.is_none() && cs.is_none() {
                    ch = s(src, "host");
                    cs = s(src, "service");
                }
            }
            ChrBackend::Udp {
                bind_host: bh,
                bind_service: bs,
                connect_host: ch,
                connect_service: cs,
            }
        }
        ChrType::Tcp => {
            let protocol = match n.child("protocol") {
                Some(p) => p.node().parse_attr("type")?.unwrap_or(TcpProtocol::Raw),
                None => TcpProtocol::Raw,
            };
            match first {
                Some(f) => ChrBackend::Tcp {
                    listen: mode_listen(f)?,
                    host: s(f, "host"),
                    service: s(f, "service"),
                    tls: f.yes_no_attr("tls")?,
                    protocol,
                    reconnect: parse_reconnect(f)?,
                },
                None => ChrBackend::Tcp {
                    listen: false,
                    host: None,
                    service: None,
                    tls: None,
                    protocol,
                    reconnect: None,
                },
            }
        }
        ChrType::Unix => match first {
            Some(f) => ChrBackend::Unix {
                listen: mode_listen(f)?,
                path: s(f, "path"),
                reconnect: parse_reconnect(f)?,
            },
            None => ChrBackend::Unix {
                listen: false,
                path: None,
                reconnect: None,
            },
        },
        ChrType::Spiceport => ChrBackend::Spiceport {
            channel: attr("channel"),
        },
        ChrType::Nmdm => ChrBackend::Nmdm {
            master: attr("master"),
            slave: attr("slave"),
        },
        ChrType::QemuVdagent => {
            let mut clipboard = None;
            let mut mouse = None;
            if let Some(f) = first {
                if let Some(c) = f.child("clipboard") {
                    clipboard = c.node().yes_no_attr("copypaste")?;
                }
                if let Some(m) = f.child("mouse") {
                    mouse = m.node().parse_attr("mode")?;
                }
            }
            ChrBackend::QemuVdagent { clipboard, mouse }
        }
        ChrType::Dbus => ChrBackend::Dbus {
            channel: attr("channel"),
        },
    };
    let seclabels = match first {
        Some(f) => storage::parse_device_seclabels(f)?,
        None => Vec::new(),
    };
    let log = match n.child("log") {
        None => None,
        Some(l) => {
            let l = l.node();
            let file = l.attr("file").ok_or_else(|| missing(l.attr_path("file")))?;
            Some((file.to_owned(), l.on_off_attr("append")?))
        }
    };
    Ok(ChrSource {
        backend,
        seclabels,
        log,
    })
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref()
}

fn reconnect_el(r: &Option<Reconnect>, e: &mut Element) {
    if let Some(r) = r {
        let mut re = Element::new("reconnect").with_attr("enabled", yes_no(r.enabled));
        if r.enabled {
            re.set_opt_attr("timeout", r.timeout);
        }
        e.push(re);
    }
}

/// Appends `<source>` (and `<protocol>`, `<log>`) to the device element.
pub(crate) fn format_source(src: &ChrSource, flags: &Fmt, e: &mut Element) {
    let seclabels = |se: &mut Element| storage::format_device_seclabels(&src.seclabels, se);
    match &src.backend {
        ChrBackend::Null | ChrBackend::Vc | ChrBackend::Stdio | ChrBackend::Spicevmc => {}
        ChrBackend::Pty { path } => {
            if let Some(p) = path
                && !flags.inactive
            {
                let mut se = Element::new("source").with_attr("path", p);
                seclabels(&mut se);
                e.push(se);
            }
        }
        ChrBackend::Dev { path } | ChrBackend::Pipe { path } => {
            let mut se = Element::new("source").with_opt_attr("path", nonempty(path));
            seclabels(&mut se);
            e.push(se);
        }
        ChrBackend::File { path, append } => {
            let mut se = Element::new("source")
                .with_opt_attr("path", nonempty(path))
                .with_opt_attr("append", append.map(on_off));
            seclabels(&mut se);
            e.push(se);
        }
        ChrBackend::Nmdm { master, slave } => {
            e.push(
                Element::new("source")
                    .with_opt_attr("master", nonempty(master))
                    .with_opt_attr("slave", nonempty(slave)),
            );
        }
        ChrBackend::Udp {
            bind_host,
            bind_service,
            connect_host,
            connect_service,
        } => {
            if bind_host.is_some() || bind_service.is_some() {
                e.push(
                    Element::new("source")
                        .with_attr("mode", "bind")
                        .with_opt_attr("host", nonempty(bind_host))
                        .with_opt_attr("service", nonempty(bind_service)),
                );
            }
            if connect_host.is_some() || connect_service.is_some() {
                e.push(
                    Element::new("source")
                        .with_attr("mode", "connect")
                        .with_opt_attr("host", nonempty(connect_host))
                        .with_opt_attr("service", nonempty(connect_service)),
                );
            }
        }
        ChrBackend::Tcp {
            listen,
            host,
            service,
            tls,
            protocol,
            reconnect,
        } => {
            let mut se = Element::new("source")
                .with_attr("mode", if *listen { "bind" } else { "connect" })
                .with_opt_attr("host", nonempty(host))
                .with_opt_attr("service", nonempty(service))
                .with_opt_attr("tls", tls.map(yes_no));
            reconnect_el(reconnect, &mut se);
            e.push(se);
            e.push(Element::new("protocol").with_attr("type", protocol));
        }
        ChrBackend::Unix {
            listen,
            path,
            reconnect,
        } => {
            if path.is_some() || reconnect.is_some() || !src.seclabels.is_empty() {
                let mut se = Element::new("source")
                    .with_attr("mode", if *listen { "bind" } else { "connect" })
                    .with_opt_attr("path", nonempty(path));
                seclabels(&mut se);
                reconnect_el(reconnect, &mut se);
                e.push(se);
            }
        }
        ChrBackend::Spiceport { channel } | ChrBackend::Dbus { channel } => {
            if let Some(c) = channel {
                e.push(Element::new("source").with_attr("channel", c));
            }
        }
        ChrBackend::QemuVdagent { clipboard, mouse } => {
            let mut se = Element::new("source");
            if let Some(c) = clipboard {
                se.push(Element::new("clipboard").with_attr("copypaste", yes_no(*c)));
            }
            if let Some(m) = mouse {
                se.push(Element::new("mouse").with_attr("mode", m));
            }
            if !se.children.is_empty() {
                e.push(se);
            }
        }
    }
    if let Some((file, append)) = &src.log {
        e.push(
            Element::new("log")
                .with_attr("file", file)
                .with_opt_attr("append", append.map(on_off)),
        );
    }
}

/// libvirt's generic checks of a backend (`virDomainChrSourceDefValidate`).
pub(crate) fn validate_source(
    src: &ChrSource,
    path: &str,
    unix_path_optional: bool,
) -> Result<(), XmlError> {
    let need = |v: &Option<String>, what: &str| -> Result<(), XmlError> {
        if v.as_deref().is_none_or(str::is_empty) {
            Err(XmlError::invalid(
                path,
                format!("Missing source {what} attribute for char device"),
            ))
        } else {
            Ok(())
        }
    };
    let reconnect = |r: &Option<Reconnect>, listen: bool| -> Result<(), XmlError> {
        if let Some(r) = r {
            if r.enabled && r.timeout == Some(0) {
                return Err(XmlError::invalid(
                    path,
                    "chardev reconnect source timeout cannot be '0'",
                ));
            }
            if r.enabled && listen {
                return Err(XmlError::invalid(
                    path,
                    "chardev reconnect is possible only for connect mode",
                ));
            }
        }
        Ok(())
    };
    match &src.backend {
        ChrBackend::Dev { path: p } | ChrBackend::Pipe { path: p } => need(p, "path"),
        ChrBackend::File { path: p, .. } => need(p, "path"),
        ChrBackend::Nmdm { master, slave } => {
            need(master, "master")?;
            need(slave, "slave")
        }
        ChrBackend::Tcp {
            listen,
            host,
            service,
            reconnect: r,
            ..
        } => {
            need(host, "host")?;
            need(service, "service")?;
            reconnect(r, *listen)
        }
        ChrBackend::Udp {
            connect_service, ..
        } => need(connect_service, "service"),
        ChrBackend::Unix {
            listen,
            reconnect: r,
            path: p,
        } => {
            if !unix_path_optional {
                need(p, "path")?;
            }
            reconnect(r, *listen)
        }
        ChrBackend::Spiceport { channel } => need(channel, "channel"),
        _ => Ok(()),
    }
}

/// Source equality as libvirt's `virDomainChrSourceDefIsEqual` (used to
/// match a console with its serial port).
pub fn source_equal(a: &ChrSource, b: &ChrSource) -> bool {
    a.backend == b.backend
}
