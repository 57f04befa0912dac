//! Formatting a volume definition as `virStorageVolDefFormat` does.

use crate::xml::Element;

use super::common::Perms;
use super::common_xml::{format_encryption, format_perms};
use super::pool::PoolDef;
use super::volume::{Timestamp, VolDef, VolFormat, VolOptions, VolTarget, VolType};

impl VolDef {
    /// The volume as libvirt writes it for a volume of `pool`: the pool
    /// type decides whether and how `<format>` is written.
    pub fn to_xml(&self, pool: &PoolDef) -> String {
        self.to_element(pool).to_xml()
    }

    /// The volume as an element tree in libvirt's layout.
    pub fn to_element(&self, pool: &PoolDef) -> Element {
        let opts = pool.pool_type.vol_options();
        let mut root =
            Element::new("volume").with_attr("type", self.vol_type.unwrap_or(VolType::File));
        root.push(Element::text_element("name", self.name.clone()));
        if let Some(k) = &self.key {
            root.push(Element::text_element("key", k.clone()));
        }
        if !self.extents.is_empty() {
            let mut source = Element::new("source");
            let mut device: Option<Element> = None;
            for e in &self.extents {
                if device.as_ref().and_then(|d| d.attr("path")) != Some(e.path.as_str()) {
                    source.push_opt(device.take());
                    device = Some(Element::new("device").with_attr("path", &e.path));
                }
                if let Some(d) = device.as_mut() {
                    d.push(
                        Element::new("extent")
                            .with_attr("start", e.start)
                            .with_attr("end", e.end),
                    );
                }
            }
            source.push_opt(device);
            root.push(source);
        }
        for (name, v, always) in [
            ("capacity", self.capacity, true),
            ("allocation", self.allocation, true),
            ("physical", self.physical, false),
        ] {
            if always || v != 0 {
                root.push(
                    Element::new(name)
                        .with_attr("unit", "bytes")
                        .with_text(v.to_string()),
                );
            }
        }
        root.push(format_target(&opts, &self.target));
        if let Some(b) = &self.backing_store {
            let mut el = Element::new("backingStore");
            el.push(Element::text_element("path", b.path.clone()));
            push_format(&mut el, &opts, b.format);
            push_perms(&mut el, &b.perms);
            root.push(el);
        }
        root
    }
}

fn push_format(el: &mut Element, opts: &VolOptions, format: Option<VolFormat>) {
    if let Some(name) = opts.format_name(format) {
        el.push(Element::new("format").with_attr("type", name));
    }
}

fn push_perms(el: &mut Element, perms: &Perms) {
    el.push_opt(format_perms(perms));
}

fn timestamp(name: &str, ts: Option<Timestamp>) -> Option<Element> {
    let ts = ts?;
    let text = if ts.nsec != 0 {
        format!("{}.{:09}", ts.sec, ts.nsec)
    } else {
        ts.sec.to_string()
    };
    Some(Element::text_element(name, text))
}

/// `virStorageVolTargetDefFormat` for `<target>`.
fn format_target(opts: &VolOptions, t: &VolTarget) -> Element {
    let mut el = Element::open("target");
    if let Some(p) = &t.path {
        el.push(Element::text_element("path", p.clone()));
    }
    push_format(&mut el, opts, t.format);
    push_perms(&mut el, &t.perms);
    if let Some(ts) = &t.timestamps {
        let mut tel = Element::open("timestamps");
        for (name, v) in [
            ("atime", ts.atime),
            ("btime", ts.btime),
            ("ctime", ts.ctime),
            ("mtime", ts.mtime),
        ] {
            tel.push_opt(timestamp(name, v));
        }
        el.push(tel);
    }
    if let Some(enc) = &t.encryption {
        el.push(format_encryption(enc));
    }
    if let Some(c) = &t.compat {
        el.push(Element::text_element("compat", c.clone()));
    }
    if t.cluster_size > 0 {
        el.push(
            Element::new("clusterSize")
                .with_attr("unit", "B")
                .with_text(t.cluster_size.to_string()),
        );
    }
    if let Some(features) = &t.features {
        let mut f = Element::new("features");
        for feat in features {
            f.push(Element::new(feat.as_str()));
        }
        el.push(f);
    }
    el
}
