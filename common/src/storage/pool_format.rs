//! Formatting a pool definition as `virStoragePoolDefFormat` does.

use crate::xml::Element;

use super::common_xml::{format_auth, format_perms};
use super::pool::{Adapter, PoolDef, PoolNamespace, PoolNamespaceKind, PoolSource, PoolType};

impl PoolDef {
    /// The pool as libvirt writes it (`virStoragePoolDefFormat`).
    pub fn to_xml(&self) -> String {
        self.to_element().to_xml()
    }

    /// The pool as an element tree in libvirt's layout.
    pub fn to_element(&self) -> Element {
        let namespace = self.namespace.as_ref().filter(|ns| match ns {
            PoolNamespace::FsMountOpts(v) => !v.is_empty(),
            PoolNamespace::RbdConfigOpts(v) => !v.is_empty(),
        });
        let mut root = Element::new("pool").with_attr("type", self.pool_type);
        if let Some(ns) = namespace {
            let kind = match ns {
                PoolNamespace::FsMountOpts(_) => PoolNamespaceKind::Fs,
                PoolNamespace::RbdConfigOpts(_) => PoolNamespaceKind::Rbd,
            };
            root.set_attr(&format!("xmlns:{}", kind.prefix()), kind.href());
        }
        if !self.name.is_empty() {
            root.push(Element::text_element("name", self.name.clone()));
        }
        root.push(Element::text_element(
            "uuid",
            self.uuid.unwrap_or_default().to_string(),
        ));
        for (name, v) in [
            ("capacity", self.capacity),
            ("allocation", self.allocation),
            ("available", self.available),
        ] {
            root.push(
                Element::new(name)
                    .with_attr("unit", "bytes")
                    .with_text(v.to_string()),
            );
        }
        if let Some(cow) = self.features.cow {
            root.push(Element::new("features").with_child(
                Element::new("cow").with_attr("state", if cow { "yes" } else { "no" }),
            ));
        }
        root.push(format_source(self.pool_type, &self.source));
        if self.pool_type.has_target() {
            let mut target = Element::open("target");
            if let Some(p) = &self.target.path {
                target.push(Element::text_element("path", p.clone()));
            }
            target.push_opt(format_perms(&self.target.perms));
            root.push(target);
        }
        if let Some(r) = &self.refresh {
            root.push(
                Element::new("refresh").with_child(
                    Element::new("volume").with_attr("allocation", r.volume_allocation),
                ),
            );
        }
        match namespace {
            Some(PoolNamespace::FsMountOpts(opts)) => {
                let mut el = Element::new("fs:mount_opts");
                for o in opts {
                    el.push(Element::new("fs:option").with_attr("name", o));
                }
                root.push(el);
            }
            Some(PoolNamespace::RbdConfigOpts(opts)) => {
                let mut el = Element::new("rbd:config_opts");
                for o in opts {
                    el.push(
                        Element::new("rbd:option")
                            .with_attr("name", &o.name)
                            .with_attr("value", &o.value),
                    );
                }
                root.push(el);
            }
            None => {}
        }
        root
    }
}

/// `virStoragePoolSourceFormat`.
fn format_source(pool_type: PoolType, src: &PoolSource) -> Element {
    let opts = pool_type.options();
    let mut el = Element::open("source");
    if opts.host {
        for h in &src.hosts {
            let mut host = Element::new("host").with_attr("name", &h.name);
            if h.port != 0 {
                host.set_attr("port", h.port);
            }
            el.push(host);
        }
    }
    if opts.device {
        for d in &src.devices {
            let mut dev = Element::new("device").with_attr("path", &d.path);
            if let Some(sep) = d.part_separator {
                dev.set_attr("part_separator", if sep { "yes" } else { "no" });
            }
            for e in &d.free_extents {
                dev.push(
                    Element::new("freeExtent")
                        .with_attr("start", e.start)
                        .with_attr("end", e.end),
                );
            }
            el.push(dev);
        }
    }
    if opts.dir
        && let Some(dir) = &src.dir
    {
        el.push(Element::new("dir").with_attr("path", dir));
    }
    if opts.adapter
        && let Some(a) = &src.adapter
    {
        el.push(format_adapter(a));
    }
    if opts.name
        && let Some(n) = &src.name
    {
        el.push(Element::text_element("name", n.clone()));
    }
    if opts.initiator_iqn
        && let Some(iqn) = &src.initiator_iqn
    {
        el.push(Element::new("initiator").with_child(Element::new("iqn").with_attr("name", iqn)));
    }
    if let Some(kind) = opts.format {
        let f = src
            .format
            .filter(|f| kind.owns(*f))
            .unwrap_or_else(|| kind.default_format());
        el.push(Element::new("format").with_attr("type", f));
    }
    if let Some(auth) = &src.auth {
        el.push(format_auth(auth));
    }
    if let Some(ver) = &src.protocol_ver {
        el.push(Element::new("protocol").with_attr("ver", ver));
    }
    if let Some(v) = &src.vendor {
        el.push(Element::new("vendor").with_attr("name", v));
    }
    if let Some(p) = &src.product {
        el.push(Element::new("product").with_attr("name", p));
    }
    el
}

/// `virStorageAdapterFormat`.
fn format_adapter(a: &Adapter) -> Element {
    match a {
        Adapter::FcHost(f) => {
            let mut el = Element::new("adapter")
                .with_attr("type", "fc_host")
                .with_opt_attr("parent", f.parent.as_deref())
                .with_opt_attr("parent_wwnn", f.parent_wwnn.as_deref())
                .with_opt_attr("parent_wwpn", f.parent_wwpn.as_deref())
                .with_opt_attr("parent_fabric_wwn", f.parent_fabric_wwn.as_deref());
            if let Some(m) = f.managed {
                el.set_attr("managed", if m { "yes" } else { "no" });
            }
            el.with_attr("wwnn", f.wwnn.as_deref().unwrap_or(""))
                .with_attr("wwpn", f.wwpn.as_deref().unwrap_or(""))
        }
        Adapter::ScsiHost(s) => {
            let el = Element::new("adapter").with_attr("type", "scsi_host");
            if let Some(name) = &s.name {
                return el.with_attr("name", name);
            }
            let pa = s.parent_addr.unwrap_or_default();
            let a = pa.address;
            el.with_child(
                Element::new("parentaddr")
                    .with_attr("unique_id", pa.unique_id)
                    .with_child(
                        Element::new("address")
                            .with_attr("domain", format!("0x{:04x}", a.domain))
                            .with_attr("bus", format!("0x{:02x}", a.bus))
                            .with_attr("slot", format!("0x{:02x}", a.slot))
                            .with_attr("function", format!("0x{}", a.function)),
                    ),
            )
        }
    }
}
