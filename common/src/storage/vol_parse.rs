//! Parsing a `<volume>` document in the context of its pool, with
//! libvirt's `virStorageVolDefParseXML` semantics.

use std::collections::BTreeSet;

use crate::xml::values::{LLONG_MAX, scale_integer, str_to_u32, str_to_u64p};
use crate::xml::{self, Element, Node, XmlError, XmlErrorKind};

use super::common_xml::{parse_encryption, parse_perms};
use super::pool::PoolDef;
use super::schema;
use super::util::{attr_string, child_attr_string, child_string, invalid};
use super::volume::{
    FileFeature, VolBackingStore, VolDef, VolOptions, VolParseFlags, VolTarget, VolType,
};

impl VolDef {
    /// Parses a volume document for a volume of `pool`, then
    /// [`VolDef::post_parse`] and [`VolDef::validate`].
    ///
    /// # Errors
    /// Malformed XML, wrong root, or anything libvirt refuses (missing
    /// name or capacity, bad sizes or units, unknown formats, ...).
    pub fn parse_str(xml: &str, pool: &PoolDef, flags: VolParseFlags) -> Result<VolDef, XmlError> {
        VolDef::parse_str_opt_capacity(xml, pool, flags, false)
    }

    /// As [`VolDef::parse_str`], with libvirt's
    /// `VIR_VOL_XML_PARSE_OPT_CAPACITY`: when `opt_capacity` is set,
    /// `<capacity>` may be left out if the volume has a backing store.
    ///
    /// # Errors
    /// See [`VolDef::parse_str`].
    pub fn parse_str_opt_capacity(
        xml: &str,
        pool: &PoolDef,
        flags: VolParseFlags,
        opt_capacity: bool,
    ) -> Result<VolDef, XmlError> {
        let root = xml::parse(xml)?;
        VolDef::parse_element(&root, pool, flags, opt_capacity)
    }

    /// As [`VolDef::parse_str_opt_capacity`], from a parsed tree.
    ///
    /// # Errors
    /// See [`VolDef::parse_str`].
    pub fn parse_element(
        root: &Element,
        pool: &PoolDef,
        flags: VolParseFlags,
        opt_capacity: bool,
    ) -> Result<VolDef, XmlError> {
        if root.name != "volume" {
            return Err(XmlError::new(
                "",
                XmlErrorKind::WrongRoot {
                    expected: "volume".into(),
                    found: root.name.clone(),
                },
            ));
        }
        if flags.validate {
            schema::check_vol(root)?;
        }
        let node = Node::root(root);
        let mut def = parse_vol(&node, pool.pool_type.vol_options())?;
        let capacity_optional = flags.no_capacity || (opt_capacity && def.backing_store.is_some());
        if child_string(&node, "capacity").is_none() && !capacity_optional {
            return Err(invalid("capacity", "missing capacity element"));
        }
        def.post_parse();
        def.validate()?;
        Ok(def)
    }

    /// Defaults: a `<features>` element implies qcow2 `compat` 1.1.
    /// (The allocation defaults to the capacity while parsing.)
    pub fn post_parse(&mut self) {
        if self.target.features.is_some() && self.target.compat.is_none() {
            self.target.compat = Some("1.1".to_owned());
        }
    }

    /// Checks that never mutate: a name, and a `compat` of the form
    /// `MAJOR.MINOR`.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), XmlError> {
        if self.name.is_empty() {
            return Err(invalid("name", "missing volume name element"));
        }
        if let Some(compat) = &self.target.compat {
            let parts: Vec<&str> = compat.splitn(3, '.').collect();
            let ok = parts.len() == 2 && parts.iter().all(|p| str_to_u32(p, 10).is_some());
            if !ok {
                return Err(XmlError::bad_value(
                    "target/compat",
                    compat.as_str(),
                    "forbidden characters in 'compat' attribute:",
                ));
            }
        }
        Ok(())
    }
}

/// `virStorageSize`: a size with an optional unit, at most `LLONG_MAX`.
fn parse_size(node: &Node<'_>, name: &str, text: &str) -> Result<u64, XmlError> {
    let path = node.child_path(name, None);
    let v = str_to_u64p(text, 10).ok_or_else(|| {
        XmlError::bad_value(path.as_str(), text, format!("malformed {name} element:"))
    })?;
    let unit = child_attr_string(node, name, "unit");
    scale_integer(v, unit.as_deref(), 1, LLONG_MAX).map_err(|e| invalid(path, e.to_string()))
}

fn parse_format(
    opts: &VolOptions,
    node: Option<&Node<'_>>,
    path: &str,
) -> Result<Option<super::volume::VolFormat>, XmlError> {
    if opts.parse.is_none() {
        return Ok(None);
    }
    match node.and_then(|n| child_attr_string(n, "format", "type")) {
        None => Ok(opts.default),
        Some(f) => opts.parse_format(&f).map(Some).ok_or_else(|| {
            XmlError::bad_value(
                format!("{path}/format/@type"),
                f.as_str(),
                "unknown volume format type",
            )
        }),
    }
}

fn parse_vol(root: &Node<'_>, opts: VolOptions) -> Result<VolDef, XmlError> {
    let name = child_string(root, "name").unwrap_or_default();
    if name.is_empty() {
        return Err(invalid("name", "missing volume name element"));
    }
    let key = child_string(root, "key");
    let vol_type = match attr_string(root, "type") {
        None => None,
        Some(t) => Some(t.parse::<VolType>().map_err(|()| {
            XmlError::bad_value(root.attr_path("type"), t.as_str(), "unknown volume type")
        })?),
    };
    let mut backing_store = None;
    if let Some(b) = root.child("backingStore") {
        let b = b.node();
        if let Some(path) = child_string(&b, "path") {
            let format = parse_format(&opts, Some(&b), "backingStore")?;
            let perms = b.child("permissions");
            backing_store = Some(VolBackingStore {
                path,
                format,
                perms: parse_perms(perms.as_ref().map(|p| p.node()).as_ref())?,
            });
        }
    }
    let mut capacity = 0;
    if let Some(c) = child_string(root, "capacity") {
        capacity = parse_size(root, "capacity", &c)?;
    }
    let mut allocation = capacity;
    let mut has_allocation = false;
    if let Some(a) = child_string(root, "allocation") {
        allocation = parse_size(root, "allocation", &a)?;
        has_allocation = true;
    }
    let target_buf = root.child("target");
    let target_node = target_buf.as_ref().map(|t| t.node());
    let mut target = VolTarget {
        format: parse_format(&opts, target_node.as_ref(), "target")?,
        ..VolTarget::default()
    };
    if let Some(t) = &target_node {
        target.path = child_string(t, "path");
        let perms = t.child("permissions");
        target.perms = parse_perms(perms.as_ref().map(|p| p.node()).as_ref())?;
        if let Some(e) = t.child("encryption") {
            target.encryption = Some(parse_encryption(&e.node())?);
        }
        target.compat = child_string(t, "compat");
        target.nocow = t.el.child("nocow").is_some();
        if let Some(cs) = child_string(t, "clusterSize") {
            let path = t.child_path("clusterSize", None);
            let v = str_to_u64p(&cs, 10).ok_or_else(|| {
                XmlError::bad_value(
                    path.as_str(),
                    cs.as_str(),
                    "Invalid value for element or attribute",
                )
            })?;
            let unit = child_attr_string(t, "clusterSize", "unit");
            target.cluster_size = scale_integer(v, unit.as_deref(), 1, u64::MAX)
                .map_err(|e| invalid(path, e.to_string()))?;
        }
        if let Some(f) = t.child("features") {
            let f = f.node();
            let mut set = BTreeSet::new();
            for c in f.all_children() {
                let c = c.node();
                let feat = c.el.name.parse::<FileFeature>().map_err(|()| {
                    XmlError::new(
                        c.path(),
                        XmlErrorKind::Unsupported(format!("unsupported feature {}", c.el.name)),
                    )
                })?;
                set.insert(feat);
            }
            target.features = Some(set);
        }
    }
    Ok(VolDef {
        name,
        key,
        vol_type,
        extents: Vec::new(),
        capacity,
        allocation,
        has_allocation,
        physical: 0,
        target,
        backing_store,
    })
}
