//! The validate flag: structural checks following libvirt's
//! `storagepool.rng` and `storagevol.rng` (elements and attributes
//! outside the schema, cardinalities, enumerations and value patterns).

use crate::xml::{Element, Node, XmlError, XmlErrorKind};

use super::pool::PoolType;
use super::util::{deep_text, local_name, namespace_of};

type R = Result<(), XmlError>;

// === generic checks ===

fn at_most_one(n: &Node<'_>, name: &str) -> R {
    if n.el.children_named(name).nth(1).is_some() {
        return Err(XmlError::invalid(
            n.child_path(name, Some(2)),
            "element not allowed more than once",
        ));
    }
    Ok(())
}

fn exactly_one(n: &Node<'_>, name: &str) -> R {
    n.required_child(name)?;
    at_most_one(n, name)
}

fn at_least_one(n: &Node<'_>, name: &str) -> R {
    n.required_child(name).map(|_| ())
}

fn singles(n: &Node<'_>, names: &[&str]) -> R {
    names.iter().try_for_each(|name| at_most_one(n, name))
}

fn bad(path: String, value: &str) -> XmlError {
    XmlError::bad_value(path, value, "value does not match the schema:")
}

/// An attribute that, when present, must satisfy `ok`.
fn attr_ok(n: &Node<'_>, name: &str, ok: impl Fn(&str) -> bool) -> R {
    match n.attr(name) {
        Some(v) if !ok(v) => Err(bad(n.attr_path(name), v)),
        _ => Ok(()),
    }
}

/// A required attribute that must satisfy `ok`.
fn attr_req(n: &Node<'_>, name: &str, ok: impl Fn(&str) -> bool) -> R {
    let v = n.required_attr(name)?;
    if ok(v) {
        Ok(())
    } else {
        Err(bad(n.attr_path(name), v))
    }
}

fn text_ok(n: &Node<'_>, ok: impl Fn(&str) -> bool) -> R {
    let t = deep_text(n.el);
    if ok(&t) {
        Ok(())
    } else {
        Err(bad(n.path().to_owned(), &t))
    }
}

fn one_of<'a>(values: &'a [&'a str]) -> impl Fn(&str) -> bool + 'a {
    move |v| values.contains(&v.trim())
}

fn any(_: &str) -> bool {
    true
}

fn xsd_trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn unsigned_long(s: &str) -> bool {
    let s = xsd_trim(s);
    digits(s) && s.parse::<u64>().is_ok()
}

fn unsigned_int(s: &str) -> bool {
    let s = xsd_trim(s);
    digits(s) && s.parse::<u32>().is_ok()
}

fn positive_integer(s: &str) -> bool {
    let s = xsd_trim(s);
    digits(s) && s.bytes().any(|b| b != b'0')
}

fn octal_mode(s: &str) -> bool {
    let s = xsd_trim(s);
    !s.is_empty() && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) && s.parse::<u32>().is_ok()
}

fn id_or_minus_one(s: &str) -> bool {
    unsigned_int(s) || xsd_trim(s) == "-1"
}

fn yes_no(s: &str) -> bool {
    matches!(s.trim(), "yes" | "no")
}

fn unit(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    let b = l.as_bytes();
    matches!(l.as_str(), "b" | "byte" | "bytes")
        || (!b.is_empty() && b"kmgtpe".contains(&b[0]) && matches!(&b[1..], b"" | b"b" | b"ib"))
}

fn uuid(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: &[u8]| r.iter().all(u8::is_ascii_hexdigit);
    (b.len() == 32 && hex(b))
        || (b.len() == 36
            && b.iter().enumerate().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    *c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            }))
}

fn abs_file_path(s: &str) -> bool {
    let b = s.as_bytes();
    (b.first() == Some(&b'/') && s.chars().count() >= 2)
        || (b.len() >= 4 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
}

fn abs_dir_path(s: &str) -> bool {
    s.starts_with('/')
}

fn object_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '\n'])
}

fn vol_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".."
}

fn generic_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
}

fn iqn(s: &str) -> bool {
    // iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-zA-Z0-9\.\-]+(:.+)?
    let Some(r) = s.strip_prefix("iqn.") else {
        return false;
    };
    let b = r.as_bytes();
    if b.len() < 9 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let month = &b[5..7];
    let month_ok = (month[0] == b'0' && (b'1'..=b'9').contains(&month[1]))
        || (month[0] == b'1' && (b'0'..=b'2').contains(&month[1]));
    if !month_ok || b[7] != b'.' {
        return false;
    }
    let rest = &r[8..];
    let (naming, extra) = match rest.split_once(':') {
        Some((n, e)) => (n, Some(e)),
        None => (rest, None),
    };
    !naming.is_empty()
        && naming
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-'))
        && extra.is_none_or(|e| !e.is_empty())
}

fn host_name(s: &str) -> bool {
    let dns = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    dns || s.parse::<std::net::IpAddr>().is_ok()
}

fn port_number(s: &str) -> bool {
    xsd_trim(s)
        .parse::<i64>()
        .is_ok_and(|p| (-1..=65535).contains(&p))
}

fn wwn(s: &str) -> bool {
    let p = s.strip_prefix("0x").unwrap_or(s);
    p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit())
}

fn num_in(s: &str, max: u64) -> bool {
    let t = xsd_trim(s);
    let v = match t.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => t.parse::<u64>().ok(),
    };
    v.is_some_and(|v| v <= max)
}

fn scaled_integer(n: &Node<'_>) -> R {
    n.check_attrs(&["unit"])?;
    n.check_children(&[])?;
    attr_ok(n, "unit", unit)?;
    text_ok(n, unsigned_long)
}

fn permissions(n: &Node<'_>) -> R {
    n.check_attrs(&[])?;
    n.check_children(&["mode", "owner", "group", "label"])?;
    singles(n, &["mode", "owner", "group", "label"])?;
    if let Some(m) = n.child("mode") {
        text_ok(&m.node(), octal_mode)?;
    }
    for id in ["owner", "group"] {
        if let Some(o) = n.child(id) {
            text_ok(&o.node(), id_or_minus_one)?;
        }
    }
    Ok(())
}

fn empty_element(n: &Node<'_>, attrs: &[&str]) -> R {
    n.check_attrs(attrs)?;
    n.check_children(&[])
}

// === pools ===

/// Checks a `<pool>` document against `storagepool.rng`.
///
/// # Errors
/// The first element, attribute or value outside the schema.
pub fn check_pool(root: &Element) -> R {
    let n = Node::root(root);
    n.check_attrs(&["type"])?;
    let t = n.required_attr("type")?;
    let pt: PoolType = t.parse().map_err(|()| bad(n.attr_path("type"), t))?;
    let ns = pt.namespace();
    for c in n.all_children() {
        let c = c.node();
        let name = c.el.name.as_str();
        let ok = match name {
            "name" | "uuid" | "capacity" | "allocation" | "available" | "features" | "source" => {
                true
            }
            "target" => pt.has_target(),
            "refresh" => pt == PoolType::Rbd,
            _ => ns.is_some_and(|k| {
                let container = match k {
                    super::pool::PoolNamespaceKind::Fs => "mount_opts",
                    super::pool::PoolNamespaceKind::Rbd => "config_opts",
                };
                local_name(name) == container && namespace_of(c.el, &[root]) == Some(k.href())
            }),
        };
        if !ok {
            return Err(XmlError::new(c.path(), XmlErrorKind::Unknown));
        }
    }
    singles(
        &n,
        &[
            "name",
            "uuid",
            "capacity",
            "allocation",
            "available",
            "features",
            "source",
            "target",
            "refresh",
        ],
    )?;
    let name_optional = matches!(
        pt,
        PoolType::Logical
            | PoolType::Rbd
            | PoolType::Sheepdog
            | PoolType::Gluster
            | PoolType::Zfs
            | PoolType::Vstorage
    );
    if !name_optional {
        n.required_child("name")?;
    }
    if let Some(c) = n.child("name") {
        let c = c.node();
        c.check_attrs(&[])?;
        c.check_children(&[])?;
        text_ok(&c, object_name)?;
    }
    if let Some(c) = n.child("uuid") {
        let c = c.node();
        c.check_attrs(&[])?;
        c.check_children(&[])?;
        text_ok(&c, uuid)?;
    }
    for s in ["capacity", "allocation", "available"] {
        if let Some(c) = n.child(s) {
            scaled_integer(&c.node())?;
        }
    }
    if let Some(f) = n.child("features") {
        let f = f.node();
        f.check_attrs(&[])?;
        f.check_children(&["cow"])?;
        at_most_one(&f, "cow")?;
        if let Some(c) = f.child("cow") {
            let c = c.node();
            empty_element(&c, &["state"])?;
            attr_req(&c, "state", yes_no)?;
        }
    }
    match n.child("source") {
        Some(s) => check_pool_source(pt, &s.node())?,
        None if !matches!(pt, PoolType::Dir | PoolType::Mpath) => {
            return Err(XmlError::new("source", XmlErrorKind::Missing));
        }
        None => {}
    }
    match n.child("target") {
        Some(t) => {
            let t = t.node();
            t.check_attrs(&[])?;
            t.check_children(&["path", "permissions"])?;
            singles(&t, &["path", "permissions"])?;
            if pt != PoolType::Logical {
                t.required_child("path")?;
            }
            if let Some(p) = t.child("path") {
                text_ok(&p.node(), abs_file_path)?;
            }
            if let Some(p) = t.child("permissions") {
                permissions(&p.node())?;
            }
        }
        None if pt.has_target() && pt != PoolType::Zfs => {
            return Err(XmlError::new("target", XmlErrorKind::Missing));
        }
        None => {}
    }
    if let Some(r) = n.child("refresh") {
        let r = r.node();
        r.check_attrs(&[])?;
        r.check_children(&["volume"])?;
        at_most_one(&r, "volume")?;
        if let Some(v) = r.child("volume") {
            let v = v.node();
            empty_element(&v, &["allocation"])?;
            attr_ok(&v, "allocation", one_of(&["default", "capacity"]))?;
        }
    }
    if let Some(k) = ns {
        let mut count = 0;
        for c in root.elements() {
            if namespace_of(c, &[root]) != Some(k.href()) {
                continue;
            }
            count += 1;
            if count > 1 {
                return Err(XmlError::invalid(
                    c.name.clone(),
                    "element not allowed more than once",
                ));
            }
            let wanted: &[&str] = match k {
                super::pool::PoolNamespaceKind::Fs => &["name"],
                super::pool::PoolNamespaceKind::Rbd => &["name", "value"],
            };
            for o in c.elements() {
                let path = format!("{}/{}", c.name, o.name);
                if local_name(&o.name) != "option" || namespace_of(o, &[c, root]) != Some(k.href())
                {
                    return Err(XmlError::new(path, XmlErrorKind::Unknown));
                }
                for (a, _) in &o.attrs {
                    if !wanted.contains(&a.as_str()) && !a.starts_with("xmlns") {
                        return Err(XmlError::new(format!("{path}/@{a}"), XmlErrorKind::Unknown));
                    }
                }
                for a in wanted {
                    if o.attr(a).is_none() {
                        return Err(XmlError::new(format!("{path}/@{a}"), XmlErrorKind::Missing));
                    }
                }
            }
        }
    }
    Ok(())
}

fn vendor_product(s: &Node<'_>) -> R {
    singles(s, &["vendor", "product"])?;
    for v in ["vendor", "product"] {
        if let Some(c) = s.child(v) {
            let c = c.node();
            empty_element(&c, &["name"])?;
            c.required_attr("name")?;
        }
    }
    Ok(())
}

fn hosts(s: &Node<'_>) -> R {
    at_least_one(s, "host")?;
    for h in s.children("host") {
        let h = h.node();
        empty_element(&h, &["name", "port"])?;
        attr_req(&h, "name", host_name)?;
        attr_ok(&h, "port", port_number)?;
    }
    Ok(())
}

fn devices(s: &Node<'_>, iscsi_direct: bool) -> R {
    for d in s.children("device") {
        let d = d.node();
        if iscsi_direct {
            empty_element(&d, &["path"])?;
            attr_req(&d, "path", iqn)?;
            continue;
        }
        d.check_attrs(&["path", "part_separator"])?;
        d.check_children(&["freeExtent"])?;
        attr_req(&d, "path", |p| {
            abs_file_path(p) || generic_name(p) || iqn(p)
        })?;
        attr_ok(&d, "part_separator", yes_no)?;
        for e in d.children("freeExtent") {
            let e = e.node();
            empty_element(&e, &["start", "end"])?;
            attr_req(&e, "start", unsigned_long)?;
            attr_req(&e, "end", unsigned_long)?;
        }
    }
    Ok(())
}

fn source_names(s: &Node<'_>) -> R {
    for c in s.children("name") {
        let c = c.node();
        c.check_attrs(&[])?;
        c.check_children(&[])?;
    }
    Ok(())
}

fn source_format(s: &Node<'_>, values: &[&str], vendor: bool) -> R {
    at_most_one(s, "format")?;
    if let Some(f) = s.child("format") {
        let f = f.node();
        f.check_attrs(&["type"])?;
        if vendor {
            f.check_children(&["vendor", "product"])?;
            vendor_product(&f)?;
        } else {
            f.check_children(&[])?;
        }
        attr_req(&f, "type", one_of(values))?;
    }
    Ok(())
}

fn auth(s: &Node<'_>) -> R {
    at_most_one(s, "auth")?;
    if let Some(a) = s.child("auth") {
        let a = a.node();
        a.check_attrs(&["type", "username"])?;
        a.check_children(&["secret"])?;
        attr_req(&a, "type", one_of(&["chap", "ceph"]))?;
        a.required_attr("username")?;
        exactly_one(&a, "secret")?;
        if let Some(sec) = a.child("secret") {
            let sec = sec.node();
            empty_element(&sec, &["uuid", "usage"])?;
            if sec.attr("uuid").is_some() == sec.attr("usage").is_some() {
                return Err(XmlError::invalid(
                    sec.path(),
                    "exactly one of 'uuid' and 'usage' is required",
                ));
            }
        }
    }
    Ok(())
}

fn initiator(s: &Node<'_>, required: bool) -> R {
    if required {
        exactly_one(s, "initiator")?;
    } else {
        at_most_one(s, "initiator")?;
    }
    if let Some(i) = s.child("initiator") {
        let i = i.node();
        i.check_attrs(&[])?;
        i.check_children(&["iqn"])?;
        exactly_one(&i, "iqn")?;
        if let Some(q) = i.child("iqn") {
            let q = q.node();
            empty_element(&q, &["name"])?;
            q.required_attr("name")?;
        }
    }
    Ok(())
}

fn adapter(s: &Node<'_>) -> R {
    exactly_one(s, "adapter")?;
    let Some(a) = s.child("adapter") else {
        return Ok(());
    };
    let a = a.node();
    match a.attr("type") {
        Some("fc_host") => {
            empty_element(
                &a,
                &[
                    "type",
                    "parent",
                    "managed",
                    "parent_wwnn",
                    "parent_wwpn",
                    "parent_fabric_wwn",
                    "wwnn",
                    "wwpn",
                ],
            )?;
            attr_ok(&a, "managed", yes_no)?;
            for w in ["parent_wwnn", "parent_wwpn", "parent_fabric_wwn"] {
                attr_ok(&a, w, wwn)?;
            }
            attr_req(&a, "wwnn", wwn)?;
            attr_req(&a, "wwpn", wwn)
        }
        None | Some("scsi_host") => {
            a.check_attrs(&["type", "name"])?;
            if a.attr("name").is_some() {
                return a.check_children(&[]);
            }
            a.check_children(&["parentaddr"])?;
            exactly_one(&a, "parentaddr")?;
            if let Some(p) = a.child("parentaddr") {
                let p = p.node();
                p.check_attrs(&["unique_id"])?;
                p.check_children(&["address"])?;
                attr_ok(&p, "unique_id", positive_integer)?;
                exactly_one(&p, "address")?;
                if let Some(ad) = p.child("address") {
                    let ad = ad.node();
                    empty_element(&ad, &["domain", "bus", "slot", "function", "multifunction"])?;
                    attr_ok(&ad, "domain", |v| num_in(v, u64::from(u32::MAX)))?;
                    attr_ok(&ad, "bus", |v| num_in(v, 0xff))?;
                    attr_ok(&ad, "slot", |v| num_in(v, 0x1f))?;
                    attr_ok(&ad, "function", |v| num_in(v, 7))?;
                    attr_ok(&ad, "multifunction", one_of(&["on", "off"]))?;
                }
            }
            Ok(())
        }
        Some(t) => Err(bad(a.attr_path("type"), t)),
    }
}

fn check_pool_source(pt: PoolType, s: &Node<'_>) -> R {
    s.check_attrs(&[])?;
    let fs_formats = [
        "auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat", "hfs+",
        "xfs", "ocfs2", "vmfs",
    ];
    let disk_formats = [
        "unknown", "dos", "dvh", "gpt", "mac", "bsd", "pc98", "sun", "lvm2",
    ];
    match pt {
        PoolType::Dir => {
            s.check_children(&["vendor", "product"])?;
            vendor_product(s)
        }
        PoolType::Mpath => s.check_children(&[]),
        PoolType::Fs | PoolType::Disk => {
            s.check_children(&["device", "format", "vendor", "product"])?;
            exactly_one(s, "device")?;
            devices(s, false)?;
            if pt == PoolType::Fs {
                source_format(s, &fs_formats, false)?;
            } else {
                source_format(s, &disk_formats, true)?;
            }
            vendor_product(s)
        }
        PoolType::NetFs => {
            s.check_children(&["host", "dir", "format", "protocol", "vendor", "product"])?;
            hosts(s)?;
            exactly_one(s, "dir")?;
            let relative = s
                .child("format")
                .and_then(|f| f.node().attr("type").map(str::trim).map(str::to_owned))
                .is_some_and(|t| t == "cifs" || t == "glusterfs");
            if relative {
                if let Some(p) = s.child("protocol") {
                    return Err(XmlError::new(p.node().path(), XmlErrorKind::Unknown));
                }
                source_format(s, &["cifs", "glusterfs"], false)?;
            } else {
                source_format(s, &["auto", "nfs"], false)?;
                at_most_one(s, "protocol")?;
                if let Some(p) = s.child("protocol") {
                    let p = p.node();
                    empty_element(&p, &["ver"])?;
                    p.required_attr("ver")?;
                }
            }
            if let Some(d) = s.child("dir") {
                let d = d.node();
                empty_element(&d, &["path"])?;
                if relative {
                    attr_req(&d, "path", |p| !p.is_empty())?;
                } else {
                    attr_req(&d, "path", abs_dir_path)?;
                }
            }
            vendor_product(s)
        }
        PoolType::Logical => {
            s.check_children(&["name", "device", "format", "vendor", "product"])?;
            source_names(s)?;
            devices(s, false)?;
            source_format(s, &["unknown", "lvm2"], true)?;
            vendor_product(s)
        }
        PoolType::Iscsi => {
            s.check_children(&["host", "device", "initiator", "auth", "vendor", "product"])?;
            hosts(s)?;
            exactly_one(s, "device")?;
            devices(s, false)?;
            initiator(s, false)?;
            auth(s)?;
            vendor_product(s)
        }
        PoolType::IscsiDirect => {
            s.check_children(&["host", "device", "initiator", "auth"])?;
            hosts(s)?;
            exactly_one(s, "device")?;
            devices(s, true)?;
            initiator(s, true)?;
            auth(s)
        }
        PoolType::Scsi => {
            s.check_children(&["adapter", "vendor", "product"])?;
            adapter(s)?;
            vendor_product(s)
        }
        PoolType::Rbd => {
            s.check_children(&["name", "host", "auth"])?;
            exactly_one(s, "name")?;
            source_names(s)?;
            hosts(s)?;
            auth(s)
        }
        PoolType::Sheepdog => {
            s.check_children(&["host", "name"])?;
            exactly_one(s, "name")?;
            source_names(s)?;
            hosts(s)
        }
        PoolType::Gluster => {
            s.check_children(&["host", "name", "dir"])?;
            exactly_one(s, "name")?;
            source_names(s)?;
            hosts(s)?;
            at_most_one(s, "dir")?;
            if let Some(d) = s.child("dir") {
                let d = d.node();
                empty_element(&d, &["path"])?;
                attr_req(&d, "path", abs_dir_path)?;
            }
            Ok(())
        }
        PoolType::Zfs => {
            s.check_children(&["name", "device"])?;
            exactly_one(s, "name")?;
            source_names(s)?;
            at_most_one(s, "device")?;
            devices(s, false)
        }
        PoolType::Vstorage => {
            s.check_children(&["name"])?;
            exactly_one(s, "name")?;
            source_names(s)
        }
    }
}

// === volumes ===

const VOL_FORMATS: &[&str] = &[
    // formatfile
    "unknown",
    "raw",
    "dir",
    "bochs",
    "cloop",
    "dmg",
    "iso",
    "vpc",
    "vdi",
    "fat",
    "vhd",
    "ploop",
    "luks",
    "cow",
    "qcow",
    "qcow2",
    "qed",
    "vmdk", // formatdev
    "none",
    "auto",
    "ext2",
    "ext3",
    "ext4",
    "ufs",
    "iso9660",
    "udf",
    "gfs",
    "gfs2",
    "vfat",
    "hfs+",
    "xfs",
    "ocfs2",
    "vmfs", // formatdisk
    "linux",
    "fat16",
    "fat32",
    "linux-swap",
    "linux-lvm",
    "linux-raid",
    "extended",
];

fn timestamp(s: &str) -> bool {
    // [0-9]+(\.[0-9]{0,9})?
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    digits(int) && frac.is_none_or(|f| f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()))
}

fn vol_format(n: &Node<'_>) -> R {
    at_most_one(n, "format")?;
    if let Some(f) = n.child("format") {
        let f = f.node();
        empty_element(&f, &["type"])?;
        attr_req(&f, "type", one_of(VOL_FORMATS))?;
    }
    Ok(())
}

fn timestamps(n: &Node<'_>) -> R {
    at_most_one(n, "timestamps")?;
    if let Some(t) = n.child("timestamps") {
        let t = t.node();
        let names = ["atime", "btime", "ctime", "mtime"];
        t.check_attrs(&[])?;
        t.check_children(&names)?;
        singles(&t, &names)?;
        for name in names {
            if let Some(c) = t.child(name) {
                text_ok(&c.node(), timestamp)?;
            }
        }
    }
    Ok(())
}

fn perms_of(n: &Node<'_>) -> R {
    at_most_one(n, "permissions")?;
    if let Some(p) = n.child("permissions") {
        permissions(&p.node())?;
    }
    Ok(())
}

fn encryption(e: &Node<'_>) -> R {
    e.check_attrs(&["format", "engine"])?;
    e.check_children(&["secret", "cipher", "ivgen"])?;
    attr_req(
        e,
        "format",
        one_of(&["default", "qcow", "luks", "luks2", "luks-any"]),
    )?;
    attr_ok(e, "engine", one_of(&["qemu", "librbd"]))?;
    let has_cipher = e.el.child("cipher").is_some();
    let has_ivgen = e.el.child("ivgen").is_some();
    if has_cipher || has_ivgen {
        exactly_one(e, "cipher")?;
        exactly_one(e, "ivgen")?;
        at_least_one(e, "secret")?;
    }
    for s in e.children("secret") {
        let s = s.node();
        empty_element(&s, &["type", "uuid", "usage"])?;
        attr_req(&s, "type", one_of(&["passphrase"]))?;
        if s.attr("uuid").is_some() == s.attr("usage").is_some() {
            return Err(XmlError::invalid(
                s.path(),
                "exactly one of 'uuid' and 'usage' is required",
            ));
        }
        attr_ok(&s, "uuid", uuid)?;
    }
    if let Some(c) = e.child("cipher") {
        let c = c.node();
        empty_element(&c, &["name", "size", "mode", "hash"])?;
        c.required_attr("name")?;
        attr_req(&c, "size", unsigned_int)?;
        if c.attr("mode").is_some() != c.attr("hash").is_some() {
            return Err(XmlError::invalid(
                c.path(),
                "'mode' and 'hash' must be given together",
            ));
        }
    }
    if let Some(i) = e.child("ivgen") {
        let i = i.node();
        empty_element(&i, &["name", "hash"])?;
        i.required_attr("name")?;
    }
    Ok(())
}

/// Checks a `<volume>` document against `storagevol.rng`.
///
/// # Errors
/// The first element, attribute or value outside the schema.
pub fn check_vol(root: &Element) -> R {
    let n = Node::root(root);
    n.check_attrs(&["type"])?;
    attr_ok(
        &n,
        "type",
        one_of(&["file", "block", "dir", "network", "netdir"]),
    )?;
    let kids = [
        "name",
        "key",
        "source",
        "capacity",
        "allocation",
        "physical",
        "target",
        "backingStore",
    ];
    n.check_children(&kids)?;
    singles(&n, &kids)?;
    let name = n.required_child("name")?;
    let name = name.node();
    name.check_attrs(&[])?;
    name.check_children(&[])?;
    text_ok(&name, vol_name)?;
    if let Some(k) = n.child("key") {
        let k = k.node();
        k.check_attrs(&[])?;
        k.check_children(&[])?;
    }
    if let Some(s) = n.child("source") {
        let s = s.node();
        s.check_attrs(&[])?;
        s.check_children(&["device"])?;
        for d in s.children("device") {
            let d = d.node();
            d.check_attrs(&["path"])?;
            d.check_children(&["extent"])?;
            attr_req(&d, "path", abs_file_path)?;
            for e in d.children("extent") {
                let e = e.node();
                empty_element(&e, &["start", "end"])?;
                attr_req(&e, "start", unsigned_long)?;
                attr_req(&e, "end", unsigned_long)?;
            }
        }
    }
    for s in ["capacity", "allocation", "physical"] {
        if let Some(c) = n.child(s) {
            scaled_integer(&c.node())?;
        }
    }
    let t = n.required_child("target")?;
    let t = t.node();
    let tkids = [
        "path",
        "format",
        "permissions",
        "timestamps",
        "encryption",
        "compat",
        "nocow",
        "clusterSize",
        "features",
    ];
    t.check_attrs(&[])?;
    t.check_children(&tkids)?;
    singles(&t, &tkids)?;
    if let Some(p) = t.child("path") {
        let p = p.node();
        p.check_attrs(&[])?;
        p.check_children(&[])?;
        text_ok(&p, any)?;
    }
    vol_format(&t)?;
    perms_of(&t)?;
    timestamps(&t)?;
    if let Some(e) = t.child("encryption") {
        encryption(&e.node())?;
    }
    if let Some(c) = t.child("compat") {
        let c = c.node();
        c.check_attrs(&[])?;
        c.check_children(&[])?;
        text_ok(&c, |s| {
            s.split_once('.')
                .is_some_and(|(a, b)| digits(a) && digits(b))
        })?;
    }
    if let Some(c) = t.child("nocow") {
        empty_element(&c.node(), &[])?;
    }
    if let Some(c) = t.child("clusterSize") {
        scaled_integer(&c.node())?;
    }
    if let Some(f) = t.child("features") {
        let f = f.node();
        f.check_attrs(&[])?;
        f.check_children(&["lazy_refcounts", "extended_l2"])?;
        singles(&f, &["lazy_refcounts", "extended_l2"])?;
        for c in f.all_children() {
            empty_element(&c.node(), &[])?;
        }
    }
    if let Some(b) = n.child("backingStore") {
        let b = b.node();
        b.check_attrs(&[])?;
        b.check_children(&["path", "format", "permissions", "timestamps"])?;
        singles(&b, &["path"])?;
        let p = b.required_child("path")?;
        text_ok(&p.node(), abs_file_path)?;
        vol_format(&b)?;
        perms_of(&b)?;
        timestamps(&b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(unit("KiB") && unit("k") && unit("GB") && unit("bytes") && unit("B"));
        assert!(!unit("x") && !unit("") && !unit("kibb"));
        assert!(iqn("iqn.2013-06.com.example:iscsi-pool"));
        assert!(!iqn("iqn.2013-13.com.example") && !iqn("demo-target"));
        assert!(uuid("70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2"));
        assert!(!uuid("70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb"));
        assert!(host_name("localhost") && host_name("fe80::1") && !host_name("a b"));
        assert!(abs_file_path("/x") && !abs_file_path("/") && !abs_file_path("x"));
        assert!(timestamp("1341933637.273190990") && !timestamp("1.1234567890"));
    }
}
