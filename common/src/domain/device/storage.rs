//! Storage sources (libvirt's `virStorageSource`): `<source>` of disks,
//! backing chains and NVRAM, with hosts, auth, encryption, slices,
//! per-device security labels and persistent reservations.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, yes_no};
use super::address::PciAddress;
pub use super::storage_sec::{Auth, DeviceSeclabel, Encryption, SecretRef};
pub(crate) use super::storage_sec::{
    attrs_of, format_auth, format_device_seclabels, format_encryption, parse_auth,
    parse_device_seclabels, parse_encryption,
};

xml_enum! {
    /// `<disk type=>`: where the data lives.
    #[derive(Default)]
    pub enum StorageType {
        None = "none",
        #[default]
        File = "file",
        Block = "block",
        Dir = "dir",
        Network = "network",
        Volume = "volume",
        Nvme = "nvme",
        VhostUser = "vhostuser",
        VhostVdpa = "vhostvdpa",
    }
}

xml_enum! {
    /// `<source protocol=>`.
    pub enum NetProtocol {
        Nbd = "nbd", Rbd = "rbd", Sheepdog = "sheepdog", Gluster = "gluster",
        Iscsi = "iscsi", Http = "http", Https = "https", Ftp = "ftp", Ftps = "ftps",
        Tftp = "tftp", Ssh = "ssh", Vxhs = "vxhs", Nfs = "nfs",
    }
}

xml_enum! {
    /// `<host transport=>`.
    pub enum HostTransport { Tcp = "tcp", Unix = "unix", Rdma = "rdma" }
}

xml_enum! {
    /// `<source startupPolicy=>`.
    pub enum StartupPolicy { Mandatory = "mandatory", Requisite = "requisite", Optional = "optional" }
}

xml_enum! {
    /// Image formats (`<driver type=>`, `<format type=>`).
    pub enum ImageFormat {
        Raw = "raw", Dir = "dir", Bochs = "bochs", Cloop = "cloop", Dmg = "dmg", Iso = "iso",
        Vpc = "vpc", Vdi = "vdi", Fat = "fat", Vhd = "vhd", Ploop = "ploop", Cow = "cow",
        Qcow = "qcow", Qcow2 = "qcow2", Qed = "qed", Vmdk = "vmdk",
    }
}

/// `<host>` of a network source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetHost {
    /// `name=`.
    pub name: Option<String>,
    /// `port=`.
    pub port: Option<u32>,
    /// `transport=`.
    pub transport: Option<HostTransport>,
    /// `socket=` (unix transport).
    pub socket: Option<String>,
}

/// `<reservations>` (SCSI persistent reservations).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reservations {
    /// `managed=`.
    pub managed: bool,
    /// `<source path=>` of the helper socket.
    pub path: Option<String>,
    /// `<source mode=>`.
    pub mode: Option<String>,
}

/// `<source type='pci'>` of an NVMe disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NvmeSource {
    /// `managed=`.
    pub managed: Option<bool>,
    /// `namespace=`.
    pub namespace: u64,
    /// The controller's host address.
    pub addr: PciAddress,
}

/// `<source type='unix' path=>` of a vhost-user disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VhostUserSource {
    /// `path=`.
    pub path: String,
    /// `<reconnect>`.
    pub reconnect: Option<super::chardev::Reconnect>,
}

/// A storage source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageSource {
    /// Where the data lives.
    pub kind: StorageType,
    /// `file=`, `dev=`, `dir=` or the network `name=`.
    pub path: Option<String>,
    /// `fdgroup=` (file).
    pub fdgroup: Option<String>,
    /// Network protocol.
    pub protocol: Option<NetProtocol>,
    /// `query=` (http).
    pub query: Option<String>,
    /// `tls=`.
    pub tls: Option<bool>,
    /// `tlsHostname=`.
    pub tls_hostname: Option<String>,
    /// `<host>`s.
    pub hosts: Vec<NetHost>,
    /// `<snapshot name=>`.
    pub snapshot: Option<String>,
    /// `<config file=>`.
    pub config_file: Option<String>,
    /// `<initiator><iqn name=>`.
    pub initiator_iqn: Option<String>,
    /// `<ssl verify=>`.
    pub ssl_verify: Option<bool>,
    /// `<cookies>` (secret: only in secure output).
    pub cookies: Vec<(String, String)>,
    /// `<readahead size=>`.
    pub readahead: Option<u64>,
    /// `<timeout seconds=>`.
    pub timeout: Option<u64>,
    /// `<reconnect delay=>` (nbd).
    pub reconnect_delay: Option<u32>,
    /// `<knownHosts path=>` (ssh).
    pub known_hosts: Option<String>,
    /// `<identity>` attributes in order (ssh / nfs).
    pub identity: Option<Vec<(String, String)>>,
    /// `pool=`, `volume=`, `mode=` (volume sources).
    pub pool: Option<(String, String, Option<String>)>,
    /// NVMe controller.
    pub nvme: Option<NvmeSource>,
    /// vhost-user socket `path=` (type unix), with `<reconnect>`.
    pub vhostuser: Option<VhostUserSource>,
    /// `startupPolicy=`.
    pub startup_policy: Option<StartupPolicy>,
    /// `index=` (live only).
    pub index: Option<u32>,
    /// `<slices><slice type='storage' offset= size=>`.
    pub slice: Option<(u64, u64)>,
    /// Per-device security labels.
    pub seclabels: Vec<DeviceSeclabel>,
    /// `<auth>`.
    pub auth: Option<Auth>,
    /// `<encryption>`.
    pub encryption: Option<Encryption>,
    /// `<reservations>`.
    pub reservations: Option<Reservations>,
    /// Image format (`<driver type=>` or `<format type=>`).
    pub format: Option<ImageFormat>,
    /// `<metadata_cache><max_size>` in bytes.
    pub metadata_cache_max: Option<u64>,
    /// The next image in the chain; a [`StorageType::None`] source is the
    /// `<backingStore/>` terminator.
    pub backing: Option<Box<StorageSource>>,
    /// Runtime only, never formatted: what a `type='volume'` source turned
    /// out to be when the driver resolved it through the storage driver
    /// (`file` or `block`, with `path` and `format` filled in), as
    /// libvirt's `srcpool->actualtype`.
    pub actual: Option<StorageType>,
}

impl StorageSource {
    /// The type the data is accessed as: the resolved type of a volume,
    /// else `kind`.
    pub fn effective_kind(&self) -> StorageType {
        match (self.kind, self.actual) {
            (StorageType::Volume, Some(a)) => a,
            (k, _) => k,
        }
    }

    /// Whether there is no medium (no path, no network name, no pool).
    pub fn is_empty(&self) -> bool {
        match self.kind {
            StorageType::Network => self.protocol.is_none(),
            StorageType::Volume => self.pool.is_none(),
            StorageType::Nvme => self.nvme.is_none(),
            StorageType::VhostUser => self.vhostuser.is_none(),
            StorageType::None => true,
            _ => self.path.is_none(),
        }
    }
}

// === parse ===

fn parse_hosts(n: Node<'_>) -> Result<Vec<NetHost>, XmlError> {
    let mut hosts = Vec::new();
    for h in n.children("host") {
        let h = h.node();
        let transport: Option<HostTransport> = h.parse_attr("transport")?;
        let host = NetHost {
            name: h.attr("name").map(str::to_owned),
            port: match h.attr("port") {
                None => None,
                Some(p) => Some(crate::xml::parse_uint::<u32>(p).ok_or_else(|| {
                    XmlError::bad_value(h.attr_path("port"), p, "failed to parse port number")
                })?),
            },
            transport,
            socket: h.attr("socket").map(str::to_owned),
        };
        if transport == Some(HostTransport::Unix) {
            if host.socket.is_none() {
                return Err(XmlError::invalid(
                    h.path(),
                    "missing socket for unix transport",
                ));
            }
        } else {
            if host.socket.is_some() {
                return Err(XmlError::invalid(
                    h.path(),
                    format!(
                        "transport '{}' does not support socket attribute",
                        transport.unwrap_or(HostTransport::Tcp)
                    ),
                ));
            }
            if host.name.is_none() {
                return Err(XmlError::invalid(h.path(), "missing name for host"));
            }
        }
        hosts.push(host);
    }
    Ok(hosts)
}

fn parse_network(n: Node<'_>, s: &mut StorageSource) -> Result<(), XmlError> {
    let p = n
        .attr("protocol")
        .ok_or_else(|| missing(n.attr_path("protocol")))?;
    let proto: NetProtocol = p
        .parse()
        .map_err(|_| XmlError::bad_value(n.attr_path("protocol"), p, "unknown protocol type"))?;
    s.protocol = Some(proto);
    s.path = n.attr("name").map(str::to_owned);
    if s.path.is_none() && proto != NetProtocol::Nbd {
        return Err(XmlError::invalid(n.path(), "missing name for disk source"));
    }
    s.tls = n.yes_no_attr("tls")?;
    s.tls_hostname = n.attr("tlsHostname").map(str::to_owned);
    if matches!(proto, NetProtocol::Http | NetProtocol::Https) {
        s.query = n.attr("query").map(str::to_owned);
    }
    s.hosts = parse_hosts(n)?;
    s.snapshot = n
        .child("snapshot")
        .and_then(|c| c.node().attr("name").map(str::to_owned));
    s.config_file = n
        .child("config")
        .and_then(|c| c.node().attr("file").map(str::to_owned));
    s.initiator_iqn = n.child("initiator").and_then(|i| {
        i.node()
            .child("iqn")
            .and_then(|q| q.node().attr("name").map(str::to_owned))
    });
    if let Some(v) = n.child("ssl") {
        s.ssl_verify = v.node().yes_no_attr("verify")?;
    }
    if let Some(c) = n.child("cookies") {
        for ck in c.node().children("cookie") {
            let ck = ck.node();
            let name = ck.required_attr("name")?;
            s.cookies.push((name.to_owned(), ck.text()));
        }
    }
    if let Some(r) = n.child("readahead") {
        let r = r.node();
        s.readahead = Some(
            r.uint_attr("size")?
                .ok_or_else(|| missing(r.attr_path("size")))?,
        );
    }
    if let Some(t) = n.child("timeout") {
        let t = t.node();
        s.timeout = Some(
            t.uint_attr("seconds")?
                .ok_or_else(|| missing(t.attr_path("seconds")))?,
        );
    }
    if let Some(r) = n.child("reconnect") {
        let r = r.node();
        s.reconnect_delay = r.uint_attr("delay")?;
    }
    s.known_hosts = n
        .child("knownHosts")
        .and_then(|k| k.node().attr("path").map(str::to_owned));
    s.identity = n.child("identity").map(|i| attrs_of(i.node()));
    Ok(())
}

/// Parses `<source>` (or `<mirror>`-style attributes) for `kind`.
pub(crate) fn parse_source(n: Node<'_>, kind: StorageType) -> Result<StorageSource, XmlError> {
    let mut s = StorageSource {
        kind,
        ..StorageSource::default()
    };
    match kind {
        StorageType::File => {
            s.path = n.attr("file").map(str::to_owned);
            s.fdgroup = n.attr("fdgroup").map(str::to_owned);
        }
        StorageType::Block => s.path = n.attr("dev").map(str::to_owned),
        StorageType::Dir => s.path = n.attr("dir").map(str::to_owned),
        StorageType::Network => parse_network(n, &mut s)?,
        StorageType::Volume => {
            if let (Some(p), Some(v)) = (n.attr("pool"), n.attr("volume")) {
                s.pool = Some((
                    p.to_owned(),
                    v.to_owned(),
                    n.attr("mode").map(str::to_owned),
                ));
            } else if n.attr("pool").is_some() || n.attr("volume").is_some() {
                return Err(XmlError::invalid(
                    n.path(),
                    "'pool' and 'volume' must be specified together",
                ));
            }
        }
        StorageType::Nvme => {
            let ty = n.required_attr("type")?;
            if ty != "pci" {
                return Err(XmlError::bad_value(
                    n.attr_path("type"),
                    ty,
                    "unsupported source type",
                ));
            }
            let ns: u64 = n
                .uint_attr("namespace")?
                .ok_or_else(|| missing(n.attr_path("namespace")))?;
            if ns == 0 {
                return Err(XmlError::invalid(
                    n.attr_path("namespace"),
                    "The 'namespace' must be greater than zero",
                ));
            }
            let a = n.required_child("address")?;
            s.nvme = Some(NvmeSource {
                managed: n.yes_no_attr("managed")?,
                namespace: ns,
                addr: PciAddress::parse(a.node())?,
            });
        }
        StorageType::VhostUser => {
            let ty = n.required_attr("type")?;
            if ty != "unix" {
                return Err(XmlError::invalid(
                    n.attr_path("type"),
                    "invalid source type for vhostuser disk",
                ));
            }
            let path = n.required_attr("path")?.to_owned();
            let reconnect = match n.child("reconnect") {
                None => None,
                Some(r) => {
                    let r = r.node();
                    let enabled = r.yes_no_attr("enabled")?.unwrap_or(false);
                    Some(super::chardev::Reconnect {
                        enabled,
                        timeout: r.uint_attr("timeout")?,
                    })
                }
            };
            s.vhostuser = Some(VhostUserSource { path, reconnect });
        }
        StorageType::VhostVdpa => s.path = n.attr("dev").map(str::to_owned),
        StorageType::None => {}
    }
    if let Some(a) = n.child("auth") {
        s.auth = Some(parse_auth(a.node())?);
    }
    if let Some(e) = n.child("encryption") {
        s.encryption = Some(parse_encryption(e.node())?);
    }
    s.seclabels = parse_device_seclabels(n)?;
    if s.path.as_deref() == Some("") {
        s.path = None;
    }
    if let Some(sl) = n.child("slices")
        && let Some(one) = sl.node().child("slice")
    {
        let one = one.node();
        let ty = one.required_attr("type")?;
        if ty != "storage" {
            return Err(XmlError::bad_value(
                one.attr_path("type"),
                ty,
                "unknown slice type",
            ));
        }
        let off: u64 = one
            .uint_attr("offset")?
            .ok_or_else(|| missing(one.attr_path("offset")))?;
        let size: u64 = one
            .uint_attr("size")?
            .ok_or_else(|| missing(one.attr_path("size")))?;
        s.slice = Some((off, size));
    }
    if let Some(r) = n.child("reservations") {
        let r = r.node();
        let managed = r
            .yes_no_attr("managed")?
            .ok_or_else(|| missing(r.attr_path("managed")))?;
        let mut res = Reservations {
            managed,
            ..Reservations::default()
        };
        if let Some(src) = r.child("source") {
            let src = src.node();
            res.path = src.attr("path").map(str::to_owned);
            res.mode = src.attr("mode").map(str::to_owned);
        }
        if !managed && res.path.is_none() {
            return Err(XmlError::invalid(
                r.path(),
                "missing connection path for unmanaged reservations",
            ));
        }
        s.reservations = Some(res);
    }
    Ok(s)
}

/// Parses the `<startupPolicy>`/`index` attributes of a disk's `<source>`.
pub(crate) fn parse_source_attrs(
    n: Node<'_>,
    s: &mut StorageSource,
    inactive: bool,
) -> Result<(), XmlError> {
    s.startup_policy = n.parse_attr("startupPolicy")?;
    if !inactive {
        s.index = n.uint_attr("index")?.filter(|v: &u32| *v != 0);
    }
    Ok(())
}

pub(crate) fn parse_format(n: Node<'_>, attr: &str) -> Result<Option<ImageFormat>, XmlError> {
    match n.attr(attr) {
        None => Ok(None),
        Some("none") | Some("auto") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| XmlError::bad_value(n.attr_path(attr), v, "unknown driver format value")),
    }
}

/// Parses `./backingStore` of `n` into `s.backing`, recursively.
pub(crate) fn parse_backing(
    n: Node<'_>,
    s: &mut StorageSource,
    inactive: bool,
    depth: usize,
) -> Result<(), XmlError> {
    let Some(b) = n.child("backingStore") else {
        return Ok(());
    };
    let b = b.node();
    if depth > 200 {
        return Err(XmlError::unsupported(b.path(), "backing chain too long"));
    }
    let Some(ty) = b.attr("type") else {
        s.backing = Some(Box::new(StorageSource {
            kind: StorageType::None,
            ..StorageSource::default()
        }));
        return Ok(());
    };
    let kind: StorageType = ty
        .parse()
        .ok()
        .filter(|k| *k != StorageType::None)
        .ok_or_else(|| XmlError::bad_value(b.attr_path("type"), ty, "unknown disk type"))?;
    let fmt = b
        .child("format")
        .ok_or_else(|| missing(b.child_path("format", None)))?;
    let fmt = fmt.node();
    let format = parse_format(fmt, "type")?.ok_or_else(|| missing(fmt.attr_path("type")))?;
    let src = b
        .child("source")
        .ok_or_else(|| missing(b.child_path("source", None)))?;
    let mut bs = parse_source(src.node(), kind)?;
    bs.format = Some(format);
    bs.metadata_cache_max = metadata_cache(fmt)?;
    if !inactive {
        bs.index = b.uint_attr("index")?.filter(|v: &u32| *v != 0);
    }
    parse_backing(b, &mut bs, inactive, depth + 1)?;
    s.backing = Some(Box::new(bs));
    Ok(())
}

/// `<metadata_cache><max_size unit=>` under `n`, in bytes.
pub(crate) fn metadata_cache(n: Node<'_>) -> Result<Option<u64>, XmlError> {
    let Some(mc) = n.child("metadata_cache") else {
        return Ok(None);
    };
    let Some(ms) = mc.node().child("max_size") else {
        return Ok(None);
    };
    let ms = ms.node();
    let v = super::super::util::scaled_bytes(ms.path(), &ms.text(), ms.attr("unit"), 1, u64::MAX)?;
    Ok(Some(v))
}

// === format ===

fn format_network(s: &StorageSource, flags: &Fmt, e: &mut Element) {
    if let Some(p) = s.protocol {
        e.set_attr("protocol", p);
    }
    e.set_opt_attr("name", s.path.as_deref());
    e.set_opt_attr("query", s.query.as_deref());
    e.set_opt_attr("tls", s.tls.map(yes_no));
    e.set_opt_attr("tlsHostname", s.tls_hostname.as_deref());
    for h in &s.hosts {
        e.push(
            Element::new("host")
                .with_opt_attr("name", h.name.as_deref())
                .with_opt_attr("port", h.port.filter(|p| *p != 0))
                .with_opt_attr("transport", h.transport)
                .with_opt_attr("socket", h.socket.as_deref()),
        );
    }
    if let Some(v) = &s.snapshot {
        e.push(Element::new("snapshot").with_attr("name", v));
    }
    if let Some(v) = &s.config_file {
        e.push(Element::new("config").with_attr("file", v));
    }
    if let Some(v) = &s.initiator_iqn {
        e.push(Element::new("initiator").with_child(Element::new("iqn").with_attr("name", v)));
    }
    if let Some(v) = s.ssl_verify {
        e.push(Element::new("ssl").with_attr("verify", yes_no(v)));
    }
    if !s.cookies.is_empty() && flags.secure {
        let mut c = Element::new("cookies");
        for (k, v) in &s.cookies {
            c.push(
                Element::new("cookie")
                    .with_attr("name", k)
                    .with_text(v.as_str()),
            );
        }
        e.push(c);
    }
    if let Some(v) = s.readahead {
        e.push(Element::new("readahead").with_attr("size", v));
    }
    if let Some(v) = s.timeout {
        e.push(Element::new("timeout").with_attr("seconds", v));
    }
    if let Some(v) = s.reconnect_delay {
        e.push(Element::new("reconnect").with_attr("delay", v));
    }
    if let Some(v) = &s.known_hosts {
        e.push(Element::new("knownHosts").with_attr("path", v));
    }
    if let Some(v) = &s.identity {
        let mut i = Element::new("identity");
        i.attrs.clone_from(v);
        e.push(i);
    }
}

/// Formats the source as `<name>` (`source`), or `None` when it would be
/// empty. `with_index` writes `index=` (disk sources in live XML).
pub(crate) fn format_source(
    s: &StorageSource,
    name: &str,
    flags: &Fmt,
    with_index: bool,
) -> Option<Element> {
    format_source_ext(s, name, flags, with_index, false, false)
}

/// As [`format_source`], optionally leaving auth/encryption to the caller
/// (when they were written on the `<disk>`).
pub(crate) fn format_source_ext(
    s: &StorageSource,
    name: &str,
    flags: &Fmt,
    with_index: bool,
    skip_auth: bool,
    skip_enc: bool,
) -> Option<Element> {
    let mut e = Element::new(name);
    match s.kind {
        StorageType::File => {
            e.set_opt_attr("file", s.path.as_deref());
            e.set_opt_attr("fdgroup", s.fdgroup.as_deref());
        }
        StorageType::Block | StorageType::VhostVdpa => e.set_opt_attr("dev", s.path.as_deref()),
        StorageType::Dir => e.set_opt_attr("dir", s.path.as_deref()),
        StorageType::Network => format_network(s, flags, &mut e),
        StorageType::Volume => {
            if let Some((p, v, m)) = &s.pool {
                e.set_attr("pool", p);
                e.set_attr("volume", v);
                e.set_opt_attr("mode", m.as_deref());
            }
        }
        StorageType::Nvme => {
            if let Some(n) = &s.nvme {
                e.set_attr("type", "pci");
                e.set_opt_attr("managed", n.managed.map(yes_no));
                e.set_attr("namespace", n.namespace);
                e.push(n.addr.format_host());
            }
        }
        StorageType::VhostUser => {
            if let Some(v) = &s.vhostuser {
                e.set_attr("type", "unix");
                e.set_attr("path", &v.path);
                if let Some(r) = &v.reconnect {
                    e.push(
                        Element::new("reconnect")
                            .with_attr("enabled", yes_no(r.enabled))
                            .with_opt_attr("timeout", r.timeout),
                    );
                }
            }
        }
        StorageType::None => {}
    }
    if let Some((off, size)) = s.slice {
        e.push(
            Element::new("slices").with_child(
                Element::new("slice")
                    .with_attr("type", "storage")
                    .with_attr("offset", off)
                    .with_attr("size", size),
            ),
        );
    }
    if s.kind != StorageType::Network {
        format_device_seclabels(&s.seclabels, &mut e);
    }
    if let Some(a) = &s.auth
        && !skip_auth
        && s.kind != StorageType::Volume
    {
        e.push(format_auth(a));
    }
    if let Some(enc) = &s.encryption
        && !skip_enc
    {
        e.push(format_encryption(enc));
    }
    if let Some(r) = &s.reservations {
        let mut re = Element::new("reservations").with_attr("managed", yes_no(r.managed));
        if !r.managed
            && let Some(p) = &r.path
        {
            re.push(
                Element::new("source")
                    .with_attr("type", "unix")
                    .with_attr("path", p)
                    .with_attr("mode", r.mode.as_deref().unwrap_or("client")),
            );
        }
        e.push(re);
    }
    if let Some(p) = s.startup_policy
        && s.kind != StorageType::Network
    {
        e.set_attr("startupPolicy", p);
    }
    if with_index
        && !flags.inactive
        && let Some(i) = s.index
    {
        e.set_attr("index", i);
    }
    (!e.is_empty()).then_some(e)
}

pub(crate) fn metadata_cache_el(bytes: u64) -> Element {
    Element::new("metadata_cache").with_child(
        Element::new("max_size")
            .with_attr("unit", "bytes")
            .with_text(bytes.to_string()),
    )
}

/// `<backingStore>` of `s` (recursively), if known.
pub(crate) fn format_backing(s: &StorageSource, flags: &Fmt) -> Option<Element> {
    let b = s.backing.as_deref()?;
    if b.kind == StorageType::None {
        return Some(Element::new("backingStore"));
    }
    let mut e = Element::new("backingStore").with_attr("type", b.kind);
    if !flags.inactive
        && let Some(i) = b.index
    {
        e.set_attr("index", i);
    }
    let mut f = Element::new("format");
    if let Some(fmt) = b.format {
        f.set_attr("type", fmt);
    }
    if let Some(m) = b.metadata_cache_max {
        f.push(metadata_cache_el(m));
    }
    e.push(f);
    // The parser requires `<source>` in a typed `<backingStore>`, so it is
    // written even when empty (libvirt's formatter drops an empty one,
    // producing XML its own parser refuses).
    e.push(format_source(b, "source", flags, false).unwrap_or_else(|| Element::new("source")));
    e.push_opt(format_backing(b, flags));
    Some(e)
}

// === validate ===

/// The attributes and children a storage `<source>` of type `kind`
/// knows; an unknown type gets them all (its parser refuses it).
fn source_shape(kind: Option<StorageType>) -> (Vec<&'static str>, Vec<&'static str>) {
    const NETWORK: &[&str] = &[
        "host",
        "snapshot",
        "config",
        "initiator",
        "ssl",
        "cookies",
        "readahead",
        "timeout",
        "reconnect",
        "knownHosts",
        "identity",
    ];
    let (attrs, children): (&[&str], &[&str]) = match kind {
        Some(StorageType::File) => (&["file", "fdgroup"], &[]),
        Some(StorageType::Block | StorageType::VhostVdpa) => (&["dev"], &[]),
        Some(StorageType::Dir) => (&["dir"], &[]),
        Some(StorageType::Network) => (
            &["protocol", "name", "tls", "tlsHostname", "query"],
            NETWORK,
        ),
        Some(StorageType::Volume) => (&["pool", "volume", "mode"], &[]),
        Some(StorageType::Nvme) => (&["type", "namespace", "managed"], &["address"]),
        Some(StorageType::VhostUser) => (&["type", "path"], &["reconnect"]),
        Some(StorageType::None) => (&[], &[]),
        None => (
            &[
                "file",
                "fdgroup",
                "dev",
                "dir",
                "protocol",
                "name",
                "tls",
                "tlsHostname",
                "query",
                "pool",
                "volume",
                "mode",
                "type",
                "namespace",
                "managed",
                "path",
            ],
            &[
                "host",
                "snapshot",
                "config",
                "initiator",
                "ssl",
                "cookies",
                "readahead",
                "timeout",
                "reconnect",
                "knownHosts",
                "identity",
                "address",
            ],
        ),
    };
    let mut attrs = attrs.to_vec();
    attrs.extend(["startupPolicy", "index"]);
    let mut children = children.to_vec();
    children.extend(["auth", "encryption", "seclabel", "slices", "reservations"]);
    (attrs, children)
}

/// With the validate flag: a storage `<source>` of the storage type
/// named `kind` (`None`: a file) and everything under it.
pub(crate) fn check_source(n: Node<'_>, kind: Option<&str>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    if !ctx.flags.validate {
        return Ok(());
    }
    let kind = match kind {
        None => Some(StorageType::File),
        Some(k) => k.parse().ok(),
    };
    let (attrs, children) = source_shape(kind);
    ctx.check(n, &attrs, &children)?;
    ctx.check_child(n, "host", &["transport", "name", "port", "socket"], &[])?;
    ctx.check_child(n, "snapshot", &["name"], &[])?;
    ctx.check_child(n, "config", &["file"], &[])?;
    ctx.check_child(n, "initiator", &[], &["iqn"])?;
    if let Some(i) = n.child("initiator") {
        ctx.check_child(i.node(), "iqn", &["name"], &[])?;
    }
    ctx.check_child(n, "ssl", &["verify"], &[])?;
    ctx.check_child(n, "cookies", &[], &["cookie"])?;
    if let Some(c) = n.child("cookies") {
        ctx.check_child(c.node(), "cookie", &["name"], &[])?;
    }
    ctx.check_child(n, "readahead", &["size"], &[])?;
    ctx.check_child(n, "timeout", &["seconds"], &[])?;
    ctx.check_child(n, "reconnect", &["delay", "enabled", "timeout"], &[])?;
    ctx.check_child(n, "knownHosts", &["path"], &[])?;
    // `<identity>` keeps whatever attributes it has.
    for i in n.children("identity") {
        i.node().check_children(&[])?;
    }
    for a in n.children("auth") {
        check_auth(a.node(), ctx)?;
    }
    for e in n.children("encryption") {
        check_encryption(e.node(), ctx)?;
    }
    check_seclabels(n, ctx)?;
    ctx.check_child(n, "slices", &[], &["slice"])?;
    if let Some(s) = n.child("slices") {
        ctx.check_child(s.node(), "slice", &["type", "offset", "size"], &[])?;
    }
    ctx.check_child(n, "reservations", &["managed"], &["source"])?;
    if let Some(r) = n.child("reservations") {
        ctx.check_child(r.node(), "source", &["type", "path", "mode"], &[])?;
    }
    // NVMe: a PCI address, its type implied.
    ctx.check_child(
        n,
        "address",
        &["type", "domain", "bus", "slot", "function"],
        &[],
    )
}

/// With the validate flag: `<auth username=><secret/></auth>`.
pub(crate) fn check_auth(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    ctx.check(n, &["type", "username"], &["secret"])?;
    ctx.check_child(n, "secret", &["type", "uuid", "usage"], &[])
}

/// With the validate flag: `<encryption>` (cipher and ivgen keep their
/// attributes as they are).
pub(crate) fn check_encryption(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    ctx.check(n, &["format", "engine"], &["secret", "cipher", "ivgen"])?;
    ctx.check_child(n, "secret", &["type", "uuid", "usage"], &[])?;
    if ctx.flags.validate {
        for c in ["cipher", "ivgen"] {
            for c in n.children(c) {
                c.node().check_children(&[])?;
            }
        }
    }
    Ok(())
}

/// With the validate flag: the `<seclabel>` children of `n`.
pub(crate) fn check_seclabels(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    ctx.check_child(n, "seclabel", &["model", "relabel"], &["label"])?;
    for s in n.children("seclabel") {
        ctx.check_leaves(s.node(), &["label"])?;
    }
    Ok(())
}

/// With the validate flag: `<backingStore>` chains under `n`.
pub(crate) fn check_backing(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    let Some(b) = n.child("backingStore") else {
        return Ok(());
    };
    let b = b.node();
    ctx.check(b, &["type", "index"], &["format", "source", "backingStore"])?;
    ctx.check_child(b, "format", &["type"], &["metadata_cache"])?;
    if let Some(f) = b.child("format") {
        check_metadata_cache(f.node(), ctx)?;
    }
    if let Some(s) = b.child("source") {
        check_source(s.node(), b.attr("type"), ctx)?;
    }
    check_backing(b, ctx)
}

/// With the validate flag: `<metadata_cache><max_size unit=>` under `n`.
pub(crate) fn check_metadata_cache(n: Node<'_>, ctx: &Ctx<'_>) -> Result<(), XmlError> {
    ctx.check_child(n, "metadata_cache", &[], &["max_size"])?;
    if let Some(m) = n.child("metadata_cache") {
        ctx.check_child(m.node(), "max_size", &["unit"], &[])?;
    }
    Ok(())
}
