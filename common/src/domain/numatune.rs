//! `<numatune>`: host NUMA placement of guest memory.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::util::{Bitmap, CPUMASK_LEN, Ctx, missing};
use super::vcpu::Placement;

xml_enum! {
    /// `mode=` of `<memory>`/`<memnode>`.
    pub enum NumaMode { Strict = "strict", Preferred = "preferred", Interleave = "interleave", Restrictive = "restrictive" }
}

/// `<numatune><memory>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumaMemory {
    /// `mode=` (default strict).
    pub mode: NumaMode,
    /// `placement=`.
    pub placement: Placement,
    /// `nodeset=` (static placement).
    pub nodeset: Option<Bitmap>,
}

/// `<numatune><memnode>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemNode {
    /// `cellid=`.
    pub cellid: u32,
    /// `mode=`.
    pub mode: NumaMode,
    /// `nodeset=`.
    pub nodeset: Bitmap,
}

/// `<numatune>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NumaTune {
    /// `<memory>`.
    pub memory: Option<NumaMemory>,
    /// `<memnode>`s.
    pub memnodes: Vec<MemNode>,
}

fn nodeset(n: Node<'_>, required: bool) -> Result<Option<Bitmap>, XmlError> {
    match n.attr("nodeset") {
        None if required => Err(missing(n.attr_path("nodeset"))),
        None => Ok(None),
        Some(v) => {
            let b = Bitmap::parse(v, CPUMASK_LEN).ok_or_else(|| {
                XmlError::bad_value(n.attr_path("nodeset"), v, "Failed to parse bitmap")
            })?;
            if b.is_empty() {
                return Err(XmlError::bad_value(
                    n.attr_path("nodeset"),
                    v,
                    "Invalid value of 'nodeset':",
                ));
            }
            Ok(Some(b))
        }
    }
}

/// Parses `<numatune>`; `vcpu_placement` is the default placement and
/// `ncells` the number of guest NUMA cells.
pub(crate) fn parse(
    n: Node<'_>,
    ctx: &Ctx<'_>,
    vcpu_placement: Placement,
    ncells: usize,
) -> Result<NumaTune, XmlError> {
    ctx.check(n, &[], &["memory", "memnode"])?;
    ctx.check_child(n, "memory", &["mode", "nodeset", "placement"], &[])?;
    ctx.check_child(n, "memnode", &["cellid", "mode", "nodeset"], &[])?;
    let mut t = NumaTune::default();
    if let Some(m) = n.child("memory") {
        let m = m.node();
        let mode = m.parse_attr("mode")?.unwrap_or(NumaMode::Strict);
        let ns = nodeset(m, false)?;
        let placement = match m.parse_attr::<Placement>("placement")? {
            Some(p) => p,
            None if ns.is_some() => Placement::Static,
            None => vcpu_placement,
        };
        if placement == Placement::Static && ns.is_none() {
            return Err(XmlError::unsupported(
                m.path(),
                "nodeset for NUMA memory tuning must be set if 'placement' is 'static'",
            ));
        }
        t.memory = Some(NumaMemory {
            mode,
            placement,
            nodeset: if placement == Placement::Auto {
                None
            } else {
                ns
            },
        });
    }
    for mn in n.children("memnode") {
        let mn = mn.node();
        if ncells == 0 {
            return Err(XmlError::invalid(
                mn.path(),
                "Element 'memnode' is invalid without any guest NUMA cells",
            ));
        }
        let cellid: u32 = mn
            .uint_attr("cellid")?
            .ok_or_else(|| missing(mn.attr_path("cellid")))?;
        if cellid as usize >= ncells {
            return Err(XmlError::invalid(
                mn.attr_path("cellid"),
                format!(
                    "Argument 'cellid' '{cellid}' in memnode element must correspond to existing guest's NUMA cell"
                ),
            ));
        }
        if t.memnodes.iter().any(|x| x.cellid == cellid) {
            return Err(XmlError::invalid(
                mn.path(),
                format!("Multiple memnode elements with cellid {cellid}"),
            ));
        }
        let mode = mn.parse_attr("mode")?.unwrap_or(NumaMode::Strict);
        let ns = nodeset(mn, true)?.unwrap_or_default();
        t.memnodes.push(MemNode {
            cellid,
            mode,
            nodeset: ns,
        });
    }
    t.memnodes.sort_by_key(|m| m.cellid);
    Ok(t)
}

pub(crate) fn format(t: &NumaTune) -> Option<Element> {
    let mut e = Element::new("numatune");
    if let Some(m) = &t.memory {
        let mut me = Element::new("memory").with_attr("mode", m.mode);
        if m.placement == Placement::Static {
            if let Some(ns) = &m.nodeset {
                me.set_attr("nodeset", ns);
            }
        } else {
            me.set_attr("placement", m.placement);
        }
        e.push(me);
    }
    for mn in &t.memnodes {
        e.push(
            Element::new("memnode")
                .with_attr("cellid", mn.cellid)
                .with_attr("mode", mn.mode)
                .with_attr("nodeset", &mn.nodeset),
        );
    }
    (!e.children.is_empty()).then_some(e)
}
