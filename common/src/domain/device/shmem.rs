//! `<shmem>`: inter-VM shared memory (ivshmem).

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, on_off, scaled_bytes};
use super::info::{DeviceInfo, InfoOpts};

xml_enum! {
    /// `<model type=>`.
    pub enum ShmemModel { Ivshmem = "ivshmem", IvshmemPlain = "ivshmem-plain", IvshmemDoorbell = "ivshmem-doorbell" }
}

xml_enum! {
    /// `role=`.
    pub enum ShmemRole { Master = "master", Peer = "peer" }
}

/// A shared memory device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shmem {
    /// `name=`.
    pub name: String,
    /// `role=`.
    pub role: Option<ShmemRole>,
    /// `<model type=>`.
    pub model: Option<ShmemModel>,
    /// `<size>` in bytes (0: unset).
    pub size: u64,
    /// `<server path=>`: `Some(None)` is a server without a path.
    pub server: Option<Option<String>>,
    /// `<msi vectors= ioeventfd=>`.
    pub msi: Option<(Option<u32>, Option<bool>)>,
    /// Address, alias.
    pub info: DeviceInfo,
}

impl Shmem {
    /// Parses a `<shmem>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Shmem, XmlError> {
        ctx.check(
            n,
            &["name", "role"],
            &["model", "size", "server", "msi", "alias", "address", "acpi"],
        )?;
        ctx.check_child(n, "model", &["type"], &[])?;
        ctx.check_child(n, "size", &["unit"], &[])?;
        ctx.check_child(n, "server", &["path"], &[])?;
        ctx.check_child(n, "msi", &["vectors", "ioeventfd"], &[])?;
        let name = n.attr("name").ok_or_else(|| missing(n.attr_path("name")))?;
        let size = match n.child("size") {
            None => 0,
            Some(s) => {
                let s = s.node();
                let b = scaled_bytes(s.path(), &s.text(), s.attr("unit"), 1024 * 1024, u64::MAX)?;
                if !b.is_power_of_two() || b < 1024 * 1024 {
                    return Err(XmlError::invalid(
                        s.path(),
                        "shmem size must be a power of 2 and at least 1 MiB (1024 KiB)",
                    ));
                }
                b
            }
        };
        let server = n
            .child("server")
            .map(|s| s.node().attr("path").map(str::to_owned));
        let msi = match n.child("msi") {
            None => None,
            Some(m) => {
                let m = m.node();
                Some((m.uint_attr("vectors")?, m.on_off_attr("ioeventfd")?))
            }
        };
        if msi.is_some() && server.is_none() {
            return Err(XmlError::invalid(
                n.path(),
                "msi option is only supported with a server",
            ));
        }
        Ok(Shmem {
            name: name.to_owned(),
            role: n.parse_attr("role")?,
            model: match n.child("model") {
                Some(m) => m.node().parse_attr("type")?,
                None => None,
            },
            size,
            server,
            msi,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<shmem>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("shmem")
            .with_attr("name", &self.name)
            .with_opt_attr("role", self.role);
        if let Some(m) = self.model {
            e.push(Element::new("model").with_attr("type", m));
        }
        if self.size != 0 {
            e.push(
                Element::new("size")
                    .with_attr("unit", "M")
                    .with_text((self.size >> 20).to_string()),
            );
        }
        if let Some(p) = &self.server {
            e.push(Element::new("server").with_opt_attr("path", p.as_deref()));
        }
        if let Some((v, io)) = self.msi {
            e.push(
                Element::new("msi")
                    .with_opt_attr("vectors", v)
                    .with_opt_attr("ioeventfd", io.map(on_off)),
            );
        }
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
