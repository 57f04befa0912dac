//! `<graphics>`: VNC, SPICE, SDL, RDP, desktop, egl-headless and D-Bus
//! displays, with their `<listen>` elements.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, yes_no};

xml_enum! {
    /// `<graphics type=>`.
    pub enum GraphicsType {
        Sdl = "sdl", Vnc = "vnc", Rdp = "rdp", Desktop = "desktop", Spice = "spice",
        EglHeadless = "egl-headless", Dbus = "dbus",
    }
}

xml_enum! {
    /// `<listen type=>`.
    pub enum ListenType { Address = "address", Network = "network", Socket = "socket", None = "none" }
}

xml_enum! {
    /// `<graphics sharePolicy=>` (VNC).
    pub enum SharePolicy { AllowExclusive = "allow-exclusive", ForceShared = "force-shared", Ignore = "ignore" }
}

xml_enum! {
    /// `<graphics connected=>`: what to do with clients on password change.
    pub enum AuthConnected { Fail = "fail", Disconnect = "disconnect", Keep = "keep" }
}

xml_enum! {
    /// SPICE `defaultMode=` and `<channel mode=>`.
    pub enum SpiceMode { Any = "any", Secure = "secure", Insecure = "insecure" }
}

/// One `<listen>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// `type=`.
    pub kind: ListenType,
    /// `address=`.
    pub address: Option<String>,
    /// `network=`.
    pub network: Option<String>,
    /// `socket=`.
    pub socket: Option<String>,
}

impl Listen {
    fn new(kind: ListenType) -> Listen {
        Listen {
            kind,
            address: None,
            network: None,
            socket: None,
        }
    }
}

/// Password settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphicsAuth {
    /// `passwd=` (only in secure output).
    pub passwd: Option<String>,
    /// `passwdValidTo=` as written.
    pub valid_to: Option<String>,
    /// `connected=`.
    pub connected: Option<AuthConnected>,
}

/// A graphics device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graphics {
    /// `type=`.
    pub kind: Option<GraphicsType>,
    /// `port=` (VNC, SPICE, RDP); 0 when automatic.
    pub port: i32,
    /// `tlsPort=` (SPICE).
    pub tls_port: i32,
    /// `autoport=`.
    pub autoport: bool,
    /// `websocket=` (VNC).
    pub websocket: Option<i32>,
    /// `sharePolicy=`.
    pub share_policy: Option<SharePolicy>,
    /// `keymap=`.
    pub keymap: Option<String>,
    /// `powerControl=`.
    pub power_control: Option<bool>,
    /// `defaultMode=` (SPICE).
    pub default_mode: Option<SpiceMode>,
    /// Password settings.
    pub auth: GraphicsAuth,
    /// SDL/desktop `display=`.
    pub display: Option<String>,
    /// SDL `xauth=`.
    pub xauth: Option<String>,
    /// SDL/desktop `fullscreen=`.
    pub fullscreen: bool,
    /// RDP `replaceUser=`.
    pub replace_user: bool,
    /// RDP `multiUser=`.
    pub multi_user: bool,
    /// D-Bus `address=`.
    pub dbus_address: Option<String>,
    /// D-Bus `p2p=`.
    pub dbus_p2p: Option<bool>,
    /// `<listen>`s.
    pub listens: Vec<Listen>,
    /// SPICE `<channel name= mode=>`.
    pub channels: Vec<(String, SpiceMode)>,
    /// SPICE `<image>`, `<jpeg>`, `<zlib>`, `<playback>` compression,
    /// `<streaming mode>`, `<clipboard copypaste>`, `<mouse mode>`,
    /// `<filetransfer enable>`: (element, attribute, value) in order.
    pub spice_settings: Vec<(String, String, String)>,
    /// `<gl enable= rendernode=>`.
    pub gl: Option<(Option<bool>, Option<String>)>,
    /// `<audio id=>`.
    pub audio_id: Option<u32>,
}

const SPICE_SETTINGS: &[(&str, &str)] = &[
    ("image", "compression"),
    ("jpeg", "compression"),
    ("zlib", "compression"),
    ("playback", "compression"),
    ("streaming", "mode"),
    ("clipboard", "copypaste"),
    ("mouse", "mode"),
    ("filetransfer", "enable"),
];

fn s(n: Node<'_>, a: &str) -> Option<String> {
    n.attr(a).map(str::to_owned)
}

fn int(n: Node<'_>, a: &str) -> Result<Option<i32>, XmlError> {
    n.int_attr::<i32>(a)
}

fn parse_listens(n: Node<'_>, g: &mut Graphics) -> Result<(), XmlError> {
    let ty = g.kind;
    let listen_attr = n.attr("listen").filter(|s| !s.is_empty());
    if matches!(
        ty,
        Some(GraphicsType::Vnc | GraphicsType::Spice | GraphicsType::Rdp)
    ) {
        for (i, l) in n.children("listen").iter().enumerate() {
            let l = l.node();
            let kind: ListenType = l.attr("type").map_or_else(
                || {
                    Err(XmlError::invalid(
                        l.path(),
                        "graphics listen type must be specified",
                    ))
                },
                |t| {
                    t.parse().map_err(|_| {
                        XmlError::bad_value(l.attr_path("type"), t, "unknown graphics listen type")
                    })
                },
            )?;
            let mut li = Listen::new(kind);
            match kind {
                ListenType::Address => li.address = s(l, "address").filter(|a| !a.is_empty()),
                ListenType::Network => {
                    li.network = s(l, "network");
                    if li.network.is_none() {
                        return Err(XmlError::invalid(
                            l.path(),
                            "'network' attribute is required for listen type 'network'",
                        ));
                    }
                    li.address = s(l, "address").filter(|a| !a.is_empty());
                }
                ListenType::Socket => li.socket = s(l, "socket"),
                ListenType::None => {}
            }
            if i == 0
                && kind == ListenType::Address
                && let Some(la) = listen_attr
            {
                match &li.address {
                    Some(a) if a != la => {
                        return Err(XmlError::invalid(
                            l.path(),
                            format!(
                                "graphics 'listen' attribute '{la}' must match 'address' attribute of first listen element (found '{a}')"
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => li.address = Some(la.to_owned()),
                }
            }
            g.listens.push(li);
        }
    }
    let socket = if ty == Some(GraphicsType::Vnc) {
        n.attr("socket").map(str::to_owned)
    } else {
        None
    };
    let mut first = Listen::new(ListenType::Address);
    if let Some(sock) = socket {
        first = Listen::new(ListenType::Socket);
        first.socket = Some(sock);
        match g.listens.first_mut() {
            None => g.listens.push(first),
            Some(l) if matches!(l.kind, ListenType::Address | ListenType::Network) => *l = first,
            Some(_) => {}
        }
    } else if g.listens.is_empty()
        && matches!(
            ty,
            Some(GraphicsType::Vnc | GraphicsType::Spice | GraphicsType::Rdp)
        )
    {
        first.address = listen_attr.map(str::to_owned);
        g.listens.push(first);
    }
    Ok(())
}

/// The legacy `listen=` attribute: the first listen's address.
fn listen_attr(first: Option<&Listen>, flags: &Fmt, e: &mut Element) {
    if let Some(l) = first
        && matches!(l.kind, ListenType::Address | ListenType::Network)
        && !(l.kind == ListenType::Network && flags.inactive)
        && let Some(a) = &l.address
    {
        e.set_attr("listen", a);
    }
}

/// With the validate flag: the attributes and children a `<graphics>` of
/// type `kind` knows.
fn check_graphics(n: Node<'_>, ctx: &Ctx<'_>, kind: GraphicsType) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    const AUTH: &[&str] = &["passwd", "passwdValidTo", "connected"];
    let attrs: Vec<&str> = match kind {
        GraphicsType::Vnc => [
            "port",
            "autoport",
            "websocket",
            "sharePolicy",
            "powerControl",
            "keymap",
            "socket",
            "listen",
        ]
        .iter()
        .chain(AUTH)
        .copied()
        .collect(),
        GraphicsType::Spice => [
            "port",
            "tlsPort",
            "autoport",
            "defaultMode",
            "keymap",
            "listen",
        ]
        .iter()
        .chain(AUTH)
        .copied()
        .collect(),
        GraphicsType::Rdp => vec!["port", "autoport", "replaceUser", "multiUser", "listen"],
        GraphicsType::Sdl => vec!["display", "xauth", "fullscreen"],
        GraphicsType::Desktop => vec!["display", "fullscreen"],
        GraphicsType::Dbus => vec!["address", "p2p"],
        GraphicsType::EglHeadless => vec![],
    };
    let mut attrs = attrs;
    attrs.push("type");
    let mut children = vec!["gl", "audio"];
    if matches!(
        kind,
        GraphicsType::Vnc | GraphicsType::Spice | GraphicsType::Rdp
    ) {
        children.push("listen");
    }
    if kind == GraphicsType::Spice {
        children.push("channel");
        children.extend(SPICE_SETTINGS.iter().map(|(e, _)| *e));
        ctx.check_child(n, "channel", &["name", "mode"], &[])?;
        for (el, attr) in SPICE_SETTINGS {
            ctx.check_child(n, el, &[attr], &[])?;
        }
    }
    ctx.check(n, &attrs, &children)?;
    ctx.check_child(n, "listen", &["type", "address", "network", "socket"], &[])?;
    ctx.check_child(n, "gl", &["enable", "rendernode"], &[])?;
    ctx.check_child(n, "audio", &["id"], &[])
}

fn parse_auth(n: Node<'_>) -> Result<GraphicsAuth, XmlError> {
    Ok(GraphicsAuth {
        passwd: s(n, "passwd"),
        valid_to: s(n, "passwdValidTo"),
        connected: n.parse_attr("connected")?,
    })
}

impl Graphics {
    /// Parses a `<graphics>`; `running` keeps automatic ports of a live
    /// domain.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>, running: bool) -> Result<Graphics, XmlError> {
        let t = n.attr("type").ok_or_else(|| missing(n.attr_path("type")))?;
        let kind: GraphicsType = t.parse().map_err(|_| {
            XmlError::bad_value(n.attr_path("type"), t, "unknown graphics device type")
        })?;
        check_graphics(n, ctx, kind)?;
        let mut g = Graphics {
            kind: Some(kind),
            ..Graphics::default()
        };
        let keep_port = running && !ctx.inactive();
        match kind {
            GraphicsType::Vnc => {
                match n.attr("port") {
                    Some(p) => {
                        g.port = p.trim().parse().map_err(|_| {
                            XmlError::bad_value(n.attr_path("port"), p, "cannot parse vnc port")
                        })?;
                        if g.port == -1 {
                            g.port = 0;
                            g.autoport = true;
                        }
                    }
                    None => g.autoport = true,
                }
                match n.yes_no_attr("autoport")? {
                    Some(true) => g.autoport = true,
                    Some(false) => g.autoport = false,
                    None => {}
                }
                if g.autoport && !keep_port {
                    g.port = 0;
                }
                g.websocket = int(n, "websocket")?;
                g.share_policy = n.parse_attr("sharePolicy")?;
                g.power_control = n.yes_no_attr("powerControl")?;
                g.keymap = s(n, "keymap");
                g.auth = parse_auth(n)?;
            }
            GraphicsType::Spice => {
                g.port = int(n, "port")?.unwrap_or(0);
                g.tls_port = int(n, "tlsPort")?.unwrap_or(0);
                if g.port == -1 || g.tls_port == -1 {
                    g.autoport = true;
                }
                if let Some(a) = n.yes_no_attr("autoport")? {
                    g.autoport = a;
                }
                if g.autoport && !keep_port {
                    g.port = 0;
                    g.tls_port = 0;
                }
                if g.port < 0 {
                    g.port = 0;
                }
                if g.tls_port < 0 {
                    g.tls_port = 0;
                }
                g.default_mode = n.parse_attr("defaultMode")?;
                g.keymap = s(n, "keymap");
                g.auth = parse_auth(n)?;
                for c in n.children("channel") {
                    let c = c.node();
                    let name = c.required_attr("name")?.to_owned();
                    let mode: SpiceMode = c.required_parse_attr("mode")?;
                    g.channels.push((name, mode));
                }
                for (el, attr) in SPICE_SETTINGS {
                    if let Some(c) = n.child(el) {
                        let c = c.node();
                        let v = c.required_attr(attr)?;
                        g.spice_settings
                            .push(((*el).to_owned(), (*attr).to_owned(), v.to_owned()));
                    }
                }
            }
            GraphicsType::Rdp => {
                g.port = int(n, "port")?.unwrap_or(0);
                if g.port == -1 {
                    g.port = 0;
                    g.autoport = true;
                }
                if n.yes_no_attr("autoport")? == Some(true) {
                    g.autoport = true;
                }
                if g.autoport && !keep_port {
                    g.port = 0;
                }
                g.replace_user = n.yes_no_attr("replaceUser")?.unwrap_or(false);
                g.multi_user = n.yes_no_attr("multiUser")?.unwrap_or(false);
            }
            GraphicsType::Sdl | GraphicsType::Desktop => {
                g.display = s(n, "display");
                g.xauth = if kind == GraphicsType::Sdl {
                    s(n, "xauth")
                } else {
                    None
                };
                g.fullscreen = n.yes_no_attr("fullscreen")?.unwrap_or(false);
            }
            GraphicsType::Dbus => {
                g.dbus_address = s(n, "address");
                g.dbus_p2p = n.yes_no_attr("p2p")?;
            }
            GraphicsType::EglHeadless => {}
        }
        if let Some(gl) = n.child("gl") {
            let gl = gl.node();
            let enable = if kind == GraphicsType::EglHeadless {
                None
            } else {
                Some(
                    gl.yes_no_attr("enable")?
                        .ok_or_else(|| missing(gl.attr_path("enable")))?,
                )
            };
            g.gl = Some((enable, s(gl, "rendernode")));
        }
        if let Some(a) = n.child("audio") {
            g.audio_id = a.node().uint_attr("id")?;
        }
        parse_listens(n, &mut g)?;
        Ok(g)
    }

    fn format_auth(&self, flags: &Fmt, e: &mut Element) {
        if let Some(p) = &self.auth.passwd {
            if flags.secure {
                e.set_attr("passwd", p);
            }
            e.set_opt_attr("passwdValidTo", self.auth.valid_to.as_deref());
            e.set_opt_attr("connected", self.auth.connected);
        }
    }

    /// Formats the `<graphics>`; `running` prints automatic ports.
    pub(crate) fn format(&self, flags: &Fmt, running: bool) -> Element {
        let kind = self.kind.unwrap_or(GraphicsType::Vnc);
        let mut e = Element::new("graphics").with_attr("type", kind);
        let first = self.listens.first();
        let first_kind = first.map(|l| l.kind);
        match kind {
            GraphicsType::Vnc => {
                match first_kind {
                    Some(ListenType::Socket) => {
                        if let Some(sock) = first.and_then(|l| l.socket.as_deref()) {
                            e.set_attr("socket", sock);
                        }
                    }
                    Some(ListenType::Address | ListenType::Network) => {
                        if self.port != 0 && (!self.autoport || running) {
                            e.set_attr("port", self.port);
                        } else if self.autoport {
                            e.set_attr("port", "-1");
                        }
                        e.set_attr("autoport", yes_no(self.autoport));
                        e.set_opt_attr("websocket", self.websocket);
                        listen_attr(first, flags, &mut e);
                    }
                    _ => {}
                }
                e.set_opt_attr("keymap", self.keymap.as_deref());
                e.set_opt_attr("sharePolicy", self.share_policy);
                self.format_auth(flags, &mut e);
                e.set_opt_attr("powerControl", self.power_control.map(yes_no));
            }
            GraphicsType::Sdl => {
                e.set_opt_attr("display", self.display.as_deref());
                e.set_opt_attr("xauth", self.xauth.as_deref());
                if self.fullscreen {
                    e.set_attr("fullscreen", "yes");
                }
            }
            GraphicsType::Rdp => {
                if self.port != 0 {
                    e.set_attr("port", self.port);
                } else if self.autoport {
                    e.set_attr("port", "0");
                }
                if self.autoport {
                    e.set_attr("autoport", "yes");
                }
                if self.replace_user {
                    e.set_attr("replaceUser", "yes");
                }
                if self.multi_user {
                    e.set_attr("multiUser", "yes");
                }
                listen_attr(first, flags, &mut e);
            }
            GraphicsType::Desktop => {
                e.set_opt_attr("display", self.display.as_deref());
                if self.fullscreen {
                    e.set_attr("fullscreen", "yes");
                }
            }
            GraphicsType::Spice => {
                if matches!(first_kind, Some(ListenType::Address | ListenType::Network)) {
                    if self.port != 0 {
                        e.set_attr("port", self.port);
                    }
                    if self.tls_port != 0 {
                        e.set_attr("tlsPort", self.tls_port);
                    }
                    e.set_attr("autoport", yes_no(self.autoport));
                    listen_attr(first, flags, &mut e);
                }
                e.set_opt_attr("keymap", self.keymap.as_deref());
                if let Some(m) = self.default_mode
                    && m != SpiceMode::Any
                {
                    e.set_attr("defaultMode", m);
                }
                self.format_auth(flags, &mut e);
            }
            GraphicsType::Dbus => {
                e.set_opt_attr("address", self.dbus_address.as_deref());
                e.set_opt_attr("p2p", self.dbus_p2p.map(yes_no));
            }
            GraphicsType::EglHeadless => {}
        }
        for l in &self.listens {
            let mut le = Element::new("listen").with_attr("type", l.kind);
            if let Some(a) = &l.address
                && (l.kind == ListenType::Address
                    || (l.kind == ListenType::Network && !flags.inactive))
            {
                le.set_attr("address", a);
            }
            if l.kind == ListenType::Network {
                le.set_opt_attr("network", l.network.as_deref());
            }
            if l.kind == ListenType::Socket {
                le.set_opt_attr("socket", l.socket.as_deref());
            }
            e.push(le);
        }
        for (name, mode) in &self.channels {
            e.push(
                Element::new("channel")
                    .with_attr("name", name)
                    .with_attr("mode", mode),
            );
        }
        for (el, attr, v) in &self.spice_settings {
            e.push(Element::new(el).with_attr(attr, v));
        }
        if let Some((enable, rn)) = &self.gl {
            e.push(
                Element::new("gl")
                    .with_opt_attr("enable", enable.map(yes_no))
                    .with_opt_attr("rendernode", rn.as_deref()),
            );
        }
        if let Some(a) = self.audio_id {
            e.push(Element::new("audio").with_attr("id", a));
        }
        e
    }
}
