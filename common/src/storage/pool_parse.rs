//! Parsing a `<pool>` document: parse → post-parse (defaults) → validate,
//! with libvirt's `virStoragePoolDefParseXML` semantics.

use crate::xml::values::{str_to_i32, str_to_u32p};
use crate::xml::{self, Element, Node, ParseFlags, XmlError, XmlErrorKind};

use super::common::Uuid;
use super::common_xml::{parse_auth, parse_perms};
use super::pool::{
    Adapter, FcHostAdapter, ParentAddr, PciAddress, PoolDef, PoolFeatures, PoolFormat,
    PoolNamespace, PoolNamespaceKind, PoolRefresh, PoolSource, PoolTarget, PoolType, RbdOption,
    RefreshAllocation, ScsiHostAdapter, SourceDevice, SourceHost,
};
use super::schema;
use super::util::{
    attr_string, child_attr_string, child_string, invalid, local_name, namespace_of, sanitize_path,
};

impl PoolDef {
    /// Parses a pool document: parse, then [`PoolDef::post_parse`], then
    /// [`PoolDef::validate`]. With `flags.validate`, elements, attributes
    /// and values outside the schema are refused first.
    ///
    /// # Errors
    /// Malformed XML, wrong root, or anything libvirt refuses.
    pub fn parse_str(xml: &str, flags: ParseFlags) -> Result<PoolDef, XmlError> {
        let root = xml::parse(xml)?;
        PoolDef::parse_element(&root, flags)
    }

    /// As [`PoolDef::parse_str`], from a parsed tree.
    ///
    /// # Errors
    /// See [`PoolDef::parse_str`].
    pub fn parse_element(root: &Element, flags: ParseFlags) -> Result<PoolDef, XmlError> {
        if root.name != "pool" {
            return Err(XmlError::new(
                "",
                XmlErrorKind::WrongRoot {
                    expected: "pool".into(),
                    found: root.name.clone(),
                },
            ));
        }
        if flags.validate {
            schema::check_pool(root)?;
        }
        let mut def = parse_pool(&Node::root(root))?;
        def.post_parse();
        def.validate()?;
        Ok(def)
    }

    /// Fills libvirt's defaults: the source format, gluster's source dir
    /// `/`, the pool name from the source name (and back), the target
    /// path of logical (`/dev/NAME`) and zfs (`/dev/zvol/NAME`) pools, and
    /// a random UUID when none was given.
    pub fn post_parse(&mut self) {
        let opts = self.pool_type.options();
        if let Some(kind) = opts.format
            && self.source.format.is_none()
        {
            self.source.format = Some(kind.default_format());
        }
        if self.pool_type == PoolType::Gluster && self.source.dir.is_none() {
            self.source.dir = Some("/".to_owned());
        }
        if self.name.is_empty()
            && opts.name
            && let Some(n) = &self.source.name
        {
            self.name = n.clone();
        }
        if opts.name && self.source.name.is_none() && !self.name.is_empty() {
            self.source.name = Some(self.name.clone());
        }
        if !opts.network {
            let prefix = match self.pool_type {
                PoolType::Logical => Some("/dev/"),
                PoolType::Zfs => Some("/dev/zvol/"),
                _ => None,
            };
            if let (Some(prefix), Some(n)) = (prefix, &self.source.name) {
                self.target.path = Some(sanitize_path(&format!("{prefix}{n}")));
            }
        }
        if self.uuid.is_none() {
            self.uuid = Some(Uuid::generate());
        }
    }

    /// The checks libvirt makes after parsing (never mutates): a name
    /// without `/`, the source items the pool type requires, a valid
    /// adapter, a target path for local pools, an initiator IQN for
    /// iscsi-direct, an auth type, the NFS protocol version, `cow` only on
    /// fs/dir pools.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), XmlError> {
        let opts = self.pool_type.options();
        if self.name.is_empty() {
            return Err(invalid("name", "missing pool source name element"));
        }
        if self.name.contains('/') {
            return Err(XmlError::bad_value(
                "name",
                self.name.as_str(),
                "pool name cannot contain '/':",
            ));
        }
        if self.features.cow.is_some() && !matches!(self.pool_type, PoolType::Fs | PoolType::Dir) {
            return Err(XmlError::unsupported(
                "features/cow",
                "cow feature may only be used for 'fs' and 'dir' pools",
            ));
        }
        let src = &self.source;
        if let Some(f) = src.format
            && let Some(kind) = opts.format
            && !kind.owns(f)
        {
            return Err(XmlError::bad_value(
                "source/format/@type",
                f.as_str(),
                "unknown pool format type",
            ));
        }
        if let Some(auth) = &src.auth
            && auth.auth_type == super::common::AuthType::None
        {
            return Err(invalid(
                "source/auth/@type",
                "storage pool missing auth type",
            ));
        }
        if let Some(ver) = &src.protocol_ver {
            let index = src.format.map_or(0, PoolFormat::index);
            if index > 1 {
                return Err(invalid(
                    "source/protocol/@ver",
                    format!(
                        "storage pool protocol ver unsupported for pool type '{}'",
                        src.format.map_or("", PoolFormat::as_str)
                    ),
                ));
            }
            if ver.contains(',') {
                return Err(XmlError::bad_value(
                    "source/protocol/@ver",
                    ver.as_str(),
                    "storage pool protocol ver must not contain ',':",
                ));
            }
        }
        if opts.host && src.hosts.is_empty() {
            return Err(invalid(
                "source/host",
                "missing storage pool source host name",
            ));
        }
        if opts.dir && src.dir.is_none() {
            return Err(invalid("source/dir", "missing storage pool source path"));
        }
        if opts.name && src.name.is_none() {
            return Err(invalid("source/name", "missing storage pool source name"));
        }
        if opts.adapter {
            validate_adapter(src.adapter.as_ref())?;
        }
        if opts.device_only() && src.devices.is_empty() {
            return Err(invalid(
                "source/device",
                "missing storage pool source device name",
            ));
        }
        if !opts.network && self.target.path.is_none() {
            return Err(invalid("target/path", "missing storage pool target path"));
        }
        // A relative path would be taken from the daemon's working
        // directory: a build or a volume would land wherever that is.
        if let Some(p) = &self.target.path
            && !p.starts_with('/')
        {
            return Err(XmlError::bad_value(
                "target/path",
                p.as_str(),
                "storage pool target path must be absolute:",
            ));
        }
        if self.pool_type == PoolType::IscsiDirect && src.initiator_iqn.is_none() {
            return Err(invalid("source/initiator/iqn", "missing initiator IQN"));
        }
        Ok(())
    }
}

/// `virStorageAdapterValidate`.
fn validate_adapter(adapter: Option<&Adapter>) -> Result<(), XmlError> {
    const P: &str = "source/adapter";
    match adapter {
        None => Err(invalid(P, "missing storage pool source adapter")),
        Some(Adapter::ScsiHost(s)) => match (&s.name, &s.parent_addr) {
            (None, None) => Err(invalid(
                P,
                "Either 'name' or 'parent' must be specified for the 'scsi_host' adapter",
            )),
            (Some(_), Some(_)) => Err(invalid(
                P,
                "The 'name' and 'parent' cannot be both specified for the 'scsi_host' adapter",
            )),
            _ => Ok(()),
        },
        Some(Adapter::FcHost(f)) => {
            let (Some(wwnn), Some(wwpn)) = (&f.wwnn, &f.wwpn) else {
                return Err(invalid(
                    P,
                    "'wwnn' and 'wwpn' must be specified for adapter type 'fchost'",
                ));
            };
            check_wwn("wwnn", wwnn)?;
            check_wwn("wwpn", wwpn)?;
            match (&f.parent_wwnn, &f.parent_wwpn) {
                (Some(n), None) => {
                    return Err(invalid(
                        P,
                        format!(
                            "when providing parent_wwnn='{n}', the parent_wwpn must also be provided"
                        ),
                    ));
                }
                (None, Some(p)) => {
                    return Err(invalid(
                        P,
                        format!(
                            "when providing parent_wwpn='{p}', the parent_wwnn must also be provided"
                        ),
                    ));
                }
                (Some(n), Some(p)) => {
                    check_wwn("parent_wwnn", n)?;
                    check_wwn("parent_wwpn", p)?;
                }
                (None, None) => {}
            }
            if let Some(w) = &f.parent_fabric_wwn {
                check_wwn("parent_fabric_wwn", w)?;
            }
            Ok(())
        }
    }
}

/// `virValidateWWN`: optional `0x`, then exactly 16 hex digits.
pub fn valid_wwn(wwn: &str) -> bool {
    let p = wwn.strip_prefix("0x").unwrap_or(wwn);
    p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_wwn(attr: &str, wwn: &str) -> Result<(), XmlError> {
    if valid_wwn(wwn) {
        Ok(())
    } else {
        Err(XmlError::bad_value(
            format!("source/adapter/@{attr}"),
            wwn,
            "Malformed wwn:",
        ))
    }
}

/// `virStoragePoolDefParseXML` without the defaults and checks done by
/// post-parse and validate.
fn parse_pool(root: &Node<'_>) -> Result<PoolDef, XmlError> {
    let pool_type = match attr_string(root, "type") {
        None => return Err(XmlError::new(root.attr_path("type"), XmlErrorKind::Missing)),
        Some(t) => t.parse::<PoolType>().map_err(|()| {
            XmlError::bad_value(
                root.attr_path("type"),
                t.as_str(),
                "unknown storage pool type",
            )
        })?,
    };
    let opts = pool_type.options();
    let source = match root.child("source") {
        Some(s) => parse_source(&s.node(), pool_type)?,
        None => PoolSource::default(),
    };
    let name = child_string(root, "name").unwrap_or_default();
    let uuid = match child_string(root, "uuid") {
        None => None,
        Some(u) => Some(
            u.parse::<Uuid>()
                .map_err(|()| XmlError::bad_value("uuid", u.as_str(), "malformed uuid element"))?,
        ),
    };
    let mut features = PoolFeatures::default();
    if let Some(f) = root.child("features")
        && let Some(state) = child_attr_string(&f.node(), "cow", "state")
    {
        features.cow = Some(match state.as_str() {
            "yes" => true,
            "no" => false,
            _ => {
                return Err(XmlError::bad_value(
                    "features/cow/@state",
                    state.as_str(),
                    "invalid storage pool cow feature state",
                ));
            }
        });
    }
    let mut target = PoolTarget::default();
    if !opts.network
        && let Some(t) = root.child("target")
    {
        let t = t.node();
        if !matches!(pool_type, PoolType::Logical | PoolType::Zfs) {
            target.path = child_string(&t, "path").map(|p| sanitize_path(&p));
        }
        let perms = t.child("permissions");
        target.perms = parse_perms(perms.as_ref().map(|p| p.node()).as_ref())?;
    }
    let refresh = match root.child("refresh") {
        Some(r) => match child_attr_string(&r.node(), "volume", "allocation") {
            None => None,
            Some(a) => Some(PoolRefresh {
                volume_allocation: a.parse::<RefreshAllocation>().map_err(|()| {
                    XmlError::bad_value(
                        "refresh/volume/@allocation",
                        a.as_str(),
                        "unknown storage pool volume refresh allocation type",
                    )
                })?,
            }),
        },
        None => None,
    };
    let namespace = match pool_type.namespace() {
        Some(kind) => parse_namespace(root, kind)?,
        None => None,
    };
    Ok(PoolDef {
        pool_type,
        name,
        uuid,
        capacity: 0,
        allocation: 0,
        available: 0,
        features,
        source,
        target,
        refresh,
        namespace,
    })
}

/// `virStoragePoolDefParseSource`.
fn parse_source(node: &Node<'_>, pool_type: PoolType) -> Result<PoolSource, XmlError> {
    let opts = pool_type.options();
    let mut src = PoolSource {
        name: child_string(node, "name"),
        ..PoolSource::default()
    };
    if pool_type == PoolType::Rbd && src.name.is_none() {
        return Err(invalid(
            node.child_path("name", None),
            "element 'name' is mandatory for RBD pool",
        ));
    }
    if let Some(kind) = opts.format {
        src.format = match child_attr_string(node, "format", "type") {
            None => Some(kind.default_format()),
            Some(f) => Some(kind.parse(&f).ok_or_else(|| {
                XmlError::bad_value(
                    node.child_path("format", None) + "/@type",
                    f.as_str(),
                    "unknown pool format type",
                )
            })?),
        };
    }
    for h in node.children("host") {
        let h = h.node();
        let name = h
            .attr("name")
            .ok_or_else(|| invalid(h.attr_path("name"), "missing storage pool host name"))?;
        let port = match h.attr("port") {
            None => 0,
            Some(p) => str_to_i32(p, 10).ok_or_else(|| {
                XmlError::bad_value(h.attr_path("port"), p, "Invalid port number:")
            })?,
        };
        src.hosts.push(SourceHost {
            name: name.to_owned(),
            port,
        });
    }
    if let Some(i) = node.child("initiator") {
        src.initiator_iqn = child_attr_string(&i.node(), "iqn", "name");
    }
    for d in node.children("device") {
        let d = d.node();
        let path = d.attr("path").ok_or_else(|| {
            invalid(
                d.attr_path("path"),
                "missing storage pool source device path",
            )
        })?;
        let part_separator = match d.attr("part_separator") {
            None => None,
            Some("yes") => Some(true),
            Some("no") => Some(false),
            Some(v) => {
                return Err(XmlError::bad_value(
                    d.attr_path("part_separator"),
                    v,
                    "invalid part_separator setting",
                ));
            }
        };
        src.devices.push(SourceDevice {
            path: path.to_owned(),
            part_separator,
            free_extents: Vec::new(),
        });
    }
    src.dir = child_attr_string(node, "dir", "path").map(|d| sanitize_path(&d));
    if let Some(a) = node.child("adapter") {
        src.adapter = parse_adapter(&a.node())?;
    }
    if let Some(a) = node.child("auth") {
        src.auth = Some(parse_auth(&a.node())?);
    }
    src.protocol_ver = child_attr_string(node, "protocol", "ver");
    src.vendor = child_attr_string(node, "vendor", "name");
    src.product = child_attr_string(node, "product", "name");
    Ok(src)
}

/// `virStorageAdapterParseXML` (`None`: libvirt's "default" adapter type,
/// i.e. a legacy adapter without a name).
fn parse_adapter(node: &Node<'_>) -> Result<Option<Adapter>, XmlError> {
    let own = |n: &str| node.attr(n).map(str::to_owned);
    match node.attr("type") {
        Some("fc_host") => {
            let managed = match node.attr("managed") {
                None | Some("default") => None,
                Some("yes") => Some(true),
                Some("no") => Some(false),
                Some(v) => {
                    return Err(XmlError::bad_value(
                        node.attr_path("managed"),
                        v,
                        "unknown fc_host managed setting",
                    ));
                }
            };
            Ok(Some(Adapter::FcHost(FcHostAdapter {
                parent: own("parent"),
                parent_wwnn: own("parent_wwnn"),
                parent_wwpn: own("parent_wwpn"),
                parent_fabric_wwn: own("parent_fabric_wwn"),
                managed,
                wwnn: own("wwnn"),
                wwpn: own("wwpn"),
            })))
        }
        Some("scsi_host") => {
            let parent_addr = match node.child("parentaddr") {
                None => None,
                Some(pa) => Some(parse_parent_addr(&pa.node())?),
            };
            Ok(Some(Adapter::ScsiHost(ScsiHostAdapter {
                name: own("name"),
                parent_addr,
            })))
        }
        Some(t) => Err(XmlError::new(
            node.attr_path("type"),
            XmlErrorKind::Unsupported(format!("Unknown pool adapter type '{t}'")),
        )),
        None => {
            if node.attr("wwnn").is_some() || node.attr("wwpn").is_some() {
                return Err(invalid(
                    node.path(),
                    "Use of 'wwnn' and 'wwpn' attributes requires use of the adapter 'type'",
                ));
            }
            if node.attr("parent").is_some() {
                return Err(invalid(
                    node.path(),
                    "Use of 'parent' attribute requires use of the adapter 'type'",
                ));
            }
            if node.el.child("parentaddr").is_some() {
                return Err(invalid(
                    node.path(),
                    "Use of 'parentaddr' element requires use of the adapter 'type'",
                ));
            }
            Ok(own("name").map(|name| {
                Adapter::ScsiHost(ScsiHostAdapter {
                    name: Some(name),
                    parent_addr: None,
                })
            }))
        }
    }
}

/// `<parentaddr unique_id=><address .../></parentaddr>`.
fn parse_parent_addr(node: &Node<'_>) -> Result<ParentAddr, XmlError> {
    let addr = node.child("address").ok_or_else(|| {
        invalid(
            node.child_path("address", None),
            "Missing scsi_host PCI address element",
        )
    })?;
    let address = parse_pci_address(&addr.node())?;
    let uid = node.attr("unique_id").unwrap_or("");
    let unique_id = str_to_i32(uid, 10).filter(|v| *v >= 0).ok_or_else(|| {
        XmlError::bad_value(
            node.attr_path("unique_id"),
            uid,
            "Missing or invalid scsi adapter 'unique_id' value",
        )
    })?;
    Ok(ParentAddr { unique_id, address })
}

/// `virPCIDeviceAddressParseXML`.
fn parse_pci_address(node: &Node<'_>) -> Result<PciAddress, XmlError> {
    let num = |name: &str| -> Result<u32, XmlError> {
        match node.attr(name) {
            None => Ok(0),
            Some(v) => str_to_u32p(v, 0).ok_or_else(|| {
                XmlError::bad_value(
                    node.attr_path(name),
                    v,
                    "Expected non-negative integer value, got",
                )
            }),
        }
    };
    let mut a = PciAddress {
        domain: num("domain")?,
        bus: num("bus")?,
        slot: num("slot")?,
        function: num("function")?,
        multifunction: None,
    };
    a.multifunction = match node.attr("multifunction") {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(v) => {
            return Err(XmlError::bad_value(
                node.attr_path("multifunction"),
                v,
                "unsupported value",
            ));
        }
    };
    let empty = a.domain == 0 && a.bus == 0 && a.slot == 0;
    if !empty {
        if a.bus > 0xff {
            return Err(invalid(
                node.attr_path("bus"),
                format!("Invalid PCI address bus='0x{:x}', must be <= 0xFF", a.bus),
            ));
        }
        if a.slot > 0x1f {
            return Err(invalid(
                node.attr_path("slot"),
                format!("Invalid PCI address slot='0x{:x}', must be <= 0x1F", a.slot),
            ));
        }
        if a.function > 7 {
            return Err(invalid(
                node.attr_path("function"),
                format!(
                    "Invalid PCI address function=0x{:x}, must be <= 7",
                    a.function
                ),
            ));
        }
    }
    Ok(a)
}

/// The pool type's namespace extension (`fs:mount_opts` or
/// `rbd:config_opts`), matched by namespace URI as libvirt's XPath does.
fn parse_namespace(
    root: &Node<'_>,
    kind: PoolNamespaceKind,
) -> Result<Option<PoolNamespace>, XmlError> {
    let (container, item) = match kind {
        PoolNamespaceKind::Fs => ("mount_opts", "option"),
        PoolNamespaceKind::Rbd => ("config_opts", "option"),
    };
    let href = kind.href();
    let mut fs_opts = Vec::new();
    let mut rbd_opts = Vec::new();
    let mut ncont = 0usize;
    for c in root.el.elements() {
        if local_name(&c.name) != container || namespace_of(c, &[root.el]) != Some(href) {
            continue;
        }
        ncont += 1;
        let mut nopt = 0usize;
        for o in c.elements() {
            if local_name(&o.name) != item || namespace_of(o, &[c, root.el]) != Some(href) {
                continue;
            }
            nopt += 1;
            let path = format!(
                "{}:{container}[{ncont}]/{}:{item}[{nopt}]",
                kind.prefix(),
                kind.prefix()
            );
            let name = o.attr("name").ok_or_else(|| match kind {
                PoolNamespaceKind::Fs => {
                    invalid(format!("{path}/@name"), "no fs mount option name specified")
                }
                PoolNamespaceKind::Rbd => {
                    invalid(format!("{path}/@name"), "no rados option name specified")
                }
            })?;
            match kind {
                PoolNamespaceKind::Fs => fs_opts.push(name.to_owned()),
                PoolNamespaceKind::Rbd => {
                    let value = o.attr("value").ok_or_else(|| {
                        invalid(format!("{path}/@value"), "no rados option value specified")
                    })?;
                    rbd_opts.push(RbdOption {
                        name: name.to_owned(),
                        value: value.to_owned(),
                    });
                }
            }
        }
    }
    Ok(match kind {
        PoolNamespaceKind::Fs if !fs_opts.is_empty() => Some(PoolNamespace::FsMountOpts(fs_opts)),
        PoolNamespaceKind::Rbd if !rbd_opts.is_empty() => {
            Some(PoolNamespace::RbdConfigOpts(rbd_opts))
        }
        _ => None,
    })
}
