//! `<input>`: mice, keyboards, tablets, evdev and virtio passthrough.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, on_off};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<input type=>`.
    pub enum InputType {
        Mouse = "mouse", Tablet = "tablet", Keyboard = "keyboard",
        Passthrough = "passthrough", Evdev = "evdev",
    }
}

xml_enum! {
    /// `<input bus=>`.
    pub enum InputBus { Ps2 = "ps2", Usb = "usb", Xen = "xen", Parallels = "parallels", Virtio = "virtio", None = "none" }
}

xml_enum! {
    /// `<input model=>`.
    pub enum InputModel {
        Virtio = "virtio", VirtioTransitional = "virtio-transitional",
        VirtioNonTransitional = "virtio-non-transitional",
    }
}

xml_enum! {
    /// `<source grab=>`.
    pub enum InputGrab { All = "all" }
}

xml_enum! {
    /// `<source grabToggle=>`.
    pub enum InputGrabToggle {
        CtrlCtrl = "ctrl-ctrl", AltAlt = "alt-alt", ShiftShift = "shift-shift",
        MetaMeta = "meta-meta", Scrolllock = "scrolllock", CtrlScrolllock = "ctrl-scrolllock",
    }
}

/// `<source>` of an evdev or passthrough input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputSource {
    /// `evdev=` (passthrough) or `dev=` (evdev).
    pub path: Option<String>,
    /// `grab=`.
    pub grab: Option<InputGrab>,
    /// `grabToggle=`.
    pub grab_toggle: Option<InputGrabToggle>,
    /// `repeat=`.
    pub repeat: Option<bool>,
}

/// An input device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// `type=`.
    pub kind: InputType,
    /// `bus=` (defaulted from the guest type).
    pub bus: InputBus,
    /// `model=`.
    pub model: Option<InputModel>,
    /// `<source>`.
    pub source: Option<InputSource>,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// Address, alias.
    pub info: DeviceInfo,
}

/// The guest facts input defaults depend on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InputEnv<'a> {
    pub hvm: bool,
    pub xen: bool,
    pub arch: Option<&'a str>,
    pub parallels: bool,
}

fn is_x86(arch: Option<&str>) -> bool {
    matches!(arch, None | Some("i686" | "x86_64"))
}

/// The bus libvirt picks when none is written.
pub(crate) fn default_bus(kind: InputType, env: &InputEnv<'_>) -> InputBus {
    if env.hvm {
        if matches!(kind, InputType::Mouse | InputType::Keyboard) && is_x86(env.arch) {
            InputBus::Ps2
        } else if matches!(env.arch, Some("s390" | "s390x")) || kind == InputType::Passthrough {
            InputBus::Virtio
        } else if kind == InputType::Evdev {
            InputBus::None
        } else {
            InputBus::Usb
        }
    } else if env.xen {
        InputBus::Xen
    } else if env.parallels {
        InputBus::Parallels
    } else if kind == InputType::Evdev {
        InputBus::None
    } else {
        InputBus::Usb
    }
}

impl Input {
    /// A plain input of `kind` on `bus`.
    pub fn new(kind: InputType, bus: InputBus) -> Input {
        Input {
            kind,
            bus,
            model: None,
            source: None,
            virtio: VirtioOptions::default(),
            info: DeviceInfo::default(),
        }
    }

    /// Parses an `<input>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>, env: &InputEnv<'_>) -> Result<Input, XmlError> {
        ctx.check(
            n,
            &["type", "bus", "model"],
            &["source", "driver", "alias", "address", "acpi"],
        )?;
        ctx.check_child(
            n,
            "source",
            &["dev", "evdev", "grab", "grabToggle", "repeat"],
            &[],
        )?;
        ctx.check_child(n, "driver", &["iommu", "ats", "packed", "page_per_vq"], &[])?;
        let t = n.attr("type").ok_or_else(|| missing(n.attr_path("type")))?;
        let kind: InputType = t.parse().map_err(|_| {
            XmlError::bad_value(n.attr_path("type"), t, "unknown input device type")
        })?;
        let bus = match n.attr("bus") {
            Some(b) => b.parse().map_err(|_| {
                XmlError::bad_value(n.attr_path("bus"), b, "unknown input bus type")
            })?,
            None => default_bus(kind, env),
        };
        if env.hvm && bus == InputBus::Ps2 && kind == InputType::Tablet {
            return Err(XmlError::unsupported(
                n.path(),
                "ps2 bus does not support tablet input device",
            ));
        }
        let source = match n.child("source") {
            None => None,
            Some(s) => {
                let s = s.node();
                let path_attr = if kind == InputType::Evdev {
                    "dev"
                } else {
                    "evdev"
                };
                Some(InputSource {
                    path: s.attr(path_attr).map(str::to_owned),
                    grab: s.parse_attr("grab")?,
                    grab_toggle: s.parse_attr("grabToggle")?,
                    repeat: s.on_off_attr("repeat")?,
                })
            }
        };
        if matches!(kind, InputType::Passthrough | InputType::Evdev)
            && source.as_ref().and_then(|s| s.path.as_ref()).is_none()
        {
            return Err(XmlError::invalid(
                n.path(),
                "Missing evdev path for input device",
            ));
        }
        Ok(Input {
            kind,
            bus,
            model: n.parse_attr("model")?,
            source,
            virtio: VirtioOptions::parse_child(n)?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<input>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("input").with_attr("type", self.kind);
        if self.bus != InputBus::None {
            e.set_attr("bus", self.bus);
        }
        e.set_opt_attr("model", self.model);
        e.push_opt(self.virtio.driver_element());
        if let Some(s) = &self.source {
            let path_attr = if self.kind == InputType::Evdev {
                "dev"
            } else {
                "evdev"
            };
            let se = Element::new("source")
                .with_opt_attr(path_attr, s.path.as_deref())
                .with_opt_attr("grab", s.grab)
                .with_opt_attr("grabToggle", s.grab_toggle)
                .with_opt_attr("repeat", s.repeat.map(on_off));
            if !se.is_empty() {
                e.push(se);
            }
        }
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}
