//! `<sysinfo>`: SMBIOS tables and firmware config entries.

use crate::xml::{Element, Node, XmlError};

use super::util::{Ctx, Uuid, missing};

/// SMBIOS blocks and their entry names, in libvirt's order.
const BLOCKS: &[(&str, &[&str])] = &[
    ("bios", &["vendor", "version", "date", "release"]),
    (
        "system",
        &[
            "manufacturer",
            "product",
            "version",
            "serial",
            "uuid",
            "sku",
            "family",
        ],
    ),
    (
        "baseBoard",
        &[
            "manufacturer",
            "product",
            "version",
            "serial",
            "asset",
            "location",
        ],
    ),
    (
        "chassis",
        &["manufacturer", "version", "serial", "asset", "sku"],
    ),
];

/// One `<sysinfo>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sysinfo {
    /// `type='smbios'`.
    Smbios {
        /// Blocks (`bios`, `system`, `baseBoard`..., `chassis`) with their
        /// entries (name, value) in libvirt's order.
        blocks: Vec<(String, Vec<(String, String)>)>,
        /// `<oemStrings><entry>`s.
        oem_strings: Vec<String>,
    },
    /// `type='fwcfg'`: entries (name, file, value).
    Fwcfg(Vec<(String, Option<String>, String)>),
}

fn valid_date(d: &str) -> bool {
    let parts: Vec<&str> = d.split('/').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let num = |s: &str| s.parse::<u32>().ok();
    match (num(parts[0]), num(parts[1]), num(parts[2])) {
        (Some(m), Some(day), Some(y)) => {
            (1..=12).contains(&m)
                && (1..=31).contains(&day)
                && (y < 100 || (1900..=9999).contains(&y))
        }
        _ => false,
    }
}

/// Parses one `<sysinfo>`; checks a system UUID against the domain's.
pub(crate) fn parse(
    n: Node<'_>,
    ctx: &Ctx<'_>,
    uuid: &mut Uuid,
    uuid_given: bool,
) -> Result<Sysinfo, XmlError> {
    if ctx.flags.validate {
        let smbios = n.attr("type") == Some("smbios");
        let mut children: Vec<&str> = vec!["entry"];
        if smbios {
            children.extend(BLOCKS.iter().map(|(b, _)| *b));
            children.push("oemStrings");
        }
        ctx.check(n, &["type"], &children)?;
        let entry: &[&str] = if smbios { &["name"] } else { &["name", "file"] };
        ctx.check_child(n, "entry", entry, &[])?;
        for (block, _) in BLOCKS {
            ctx.check_child(n, block, &[], &["entry"])?;
            for b in super::util::named(n, block) {
                ctx.check_child(b.node(), "entry", &["name"], &[])?;
            }
        }
        ctx.check_child(n, "oemStrings", &[], &["entry"])?;
        if let Some(o) = n.child("oemStrings") {
            ctx.check_leaves(o.node(), &["entry"])?;
        }
    }
    let t = n.attr("type").ok_or_else(|| missing(n.attr_path("type")))?;
    match t {
        "smbios" => {
            let mut blocks = Vec::new();
            for (block, names) in BLOCKS {
                for b in n.children(block) {
                    let b = b.node();
                    let mut entries = Vec::new();
                    for name in *names {
                        let val = b.children("entry").iter().find_map(|e| {
                            let e = e.node();
                            (e.attr("name") == Some(name)).then(|| e.text())
                        });
                        let Some(val) = val.filter(|v| !v.is_empty()) else {
                            continue;
                        };
                        if *block == "bios" && *name == "date" && !valid_date(&val) {
                            return Err(XmlError::bad_value(
                                b.path(),
                                val,
                                "Invalid BIOS 'date' format",
                            ));
                        }
                        if *block == "system" && *name == "uuid" {
                            let u = Uuid::parse(&val).ok_or_else(|| {
                                XmlError::bad_value(b.path(), val.clone(), "malformed uuid element")
                            })?;
                            if !uuid_given {
                                *uuid = u;
                            } else if u != *uuid {
                                return Err(XmlError::invalid(
                                    b.path(),
                                    "UUID mismatch between <uuid> and <sysinfo>",
                                ));
                            }
                        }
                        entries.push(((*name).to_owned(), val));
                    }
                    if !entries.is_empty() {
                        blocks.push(((*block).to_owned(), entries));
                    }
                    if *block != "baseBoard" {
                        break;
                    }
                }
            }
            let oem_strings = n
                .child("oemStrings")
                .map(|o| {
                    o.node()
                        .children("entry")
                        .iter()
                        .map(|e| e.node().text())
                        .collect()
                })
                .unwrap_or_default();
            Ok(Sysinfo::Smbios {
                blocks,
                oem_strings,
            })
        }
        "fwcfg" => {
            let mut entries = Vec::new();
            for e in n.children("entry") {
                let e = e.node();
                let name = e.required_attr("name")?.to_owned();
                entries.push((name, e.attr("file").map(str::to_owned), e.text()));
            }
            Ok(Sysinfo::Fwcfg(entries))
        }
        other => Err(XmlError::bad_value(
            n.attr_path("type"),
            other,
            "unknown sysinfo type",
        )),
    }
}

pub(crate) fn format(s: &Sysinfo) -> Element {
    match s {
        Sysinfo::Smbios {
            blocks,
            oem_strings,
        } => {
            let mut e = Element::new("sysinfo").with_attr("type", "smbios");
            for (block, entries) in blocks {
                let mut b = Element::new(block);
                for (k, v) in entries {
                    b.push(
                        Element::new("entry")
                            .with_attr("name", k)
                            .with_text(v.as_str()),
                    );
                }
                e.push(b);
            }
            if !oem_strings.is_empty() {
                let mut o = Element::new("oemStrings");
                for v in oem_strings {
                    o.push(Element::text_element("entry", v));
                }
                e.push(o);
            }
            e
        }
        Sysinfo::Fwcfg(entries) => {
            let mut e = Element::new("sysinfo").with_attr("type", "fwcfg");
            for (name, file, v) in entries {
                let mut en = Element::new("entry")
                    .with_attr("name", name)
                    .with_opt_attr("file", file.as_deref());
                if !v.is_empty() {
                    en = en.with_text(v.as_str());
                }
                e.push(en);
            }
            e
        }
    }
}
