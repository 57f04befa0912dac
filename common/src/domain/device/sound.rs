//! `<sound>` cards and `<audio>` backends.

use crate::xml::{Element, Node, XmlError};
use crate::xml_enum;

use super::super::util::{Ctx, Fmt, missing, yes_no};
use super::info::{DeviceInfo, InfoOpts};
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<sound model=>`.
    pub enum SoundModel {
        Sb16 = "sb16", Es1370 = "es1370", Pcspk = "pcspk", Ac97 = "ac97", Ich6 = "ich6",
        Ich9 = "ich9", Usb = "usb", Ich7 = "ich7", Virtio = "virtio",
    }
}

xml_enum! {
    /// `<codec type=>`.
    pub enum CodecType { Duplex = "duplex", Micro = "micro", Output = "output" }
}

xml_enum! {
    /// `<audio type=>`.
    pub enum AudioType {
        None = "none", Alsa = "alsa", Coreaudio = "coreaudio", Jack = "jack", Oss = "oss",
        Pulseaudio = "pulseaudio", Sdl = "sdl", Spice = "spice", File = "file", Dbus = "dbus",
        Pipewire = "pipewire",
    }
}

/// A sound card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sound {
    /// `model=`.
    pub model: SoundModel,
    /// `multichannel=` (usb).
    pub multichannel: Option<bool>,
    /// `streams=` (virtio).
    pub streams: Option<u32>,
    /// `<codec type=>`s.
    pub codecs: Vec<CodecType>,
    /// `<audio id=>`.
    pub audio_id: Option<u32>,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// Address, alias.
    pub info: DeviceInfo,
}

/// An audio backend (`<devices><audio>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audio {
    /// `id=`.
    pub id: u32,
    /// `type=`.
    pub kind: AudioType,
    /// The backend's other attributes as written (`timerPeriod`, `path`, ...).
    pub attrs: Vec<(String, String)>,
    /// `<input>` settings, kept as written.
    pub input: Option<Element>,
    /// `<output>` settings, kept as written.
    pub output: Option<Element>,
}

impl Sound {
    /// Parses a `<sound>`.
    pub(crate) fn parse(n: Node<'_>, ctx: &Ctx<'_>) -> Result<Sound, XmlError> {
        let m = n
            .attr("model")
            .ok_or_else(|| missing(n.attr_path("model")))?;
        let model: SoundModel = m
            .parse()
            .map_err(|_| XmlError::bad_value(n.attr_path("model"), m, "unknown sound model"))?;
        ctx.check(
            n,
            &["model", "multichannel", "streams"],
            &["codec", "audio", "driver", "alias", "address", "acpi"],
        )?;
        ctx.check_child(n, "codec", &["type"], &[])?;
        ctx.check_child(n, "audio", &["id"], &[])?;
        ctx.check_child(n, "driver", &["iommu", "ats", "packed", "page_per_vq"], &[])?;
        let mut codecs = Vec::new();
        for c in n.children("codec") {
            codecs.push(c.node().required_parse_attr("type")?);
        }
        Ok(Sound {
            model,
            multichannel: n.yes_no_attr("multichannel")?,
            streams: n.uint_attr("streams")?,
            codecs,
            audio_id: match n.child("audio") {
                Some(a) => a.node().uint_attr("id")?,
                None => None,
            },
            virtio: VirtioOptions::parse_child(n)?,
            info: DeviceInfo::parse(n, ctx, InfoOpts::NONE)?,
        })
    }

    /// Formats the `<sound>`.
    pub(crate) fn format(&self, flags: &Fmt) -> Element {
        let mut e = Element::new("sound")
            .with_attr("model", self.model)
            .with_opt_attr("multichannel", self.multichannel.map(yes_no))
            .with_opt_attr("streams", self.streams);
        for c in &self.codecs {
            e.push(Element::new("codec").with_attr("type", c));
        }
        if let Some(a) = self.audio_id {
            e.push(Element::new("audio").with_attr("id", a));
        }
        e.push_opt(self.virtio.driver_element());
        self.info.format(flags, InfoOpts::NONE, &mut e);
        e
    }
}

impl Audio {
    /// Parses an `<audio>`.
    pub(crate) fn parse(n: Node<'_>) -> Result<Audio, XmlError> {
        let id: u32 = n
            .uint_attr("id")?
            .ok_or_else(|| missing(n.attr_path("id")))?;
        if id == 0 {
            return Err(XmlError::invalid(
                n.attr_path("id"),
                "audio id must be greater than 0",
            ));
        }
        let t = n.attr("type").ok_or_else(|| missing(n.attr_path("type")))?;
        let kind: AudioType = t
            .parse()
            .map_err(|_| XmlError::bad_value(n.attr_path("type"), t, "unknown audio type"))?;
        Ok(Audio {
            id,
            kind,
            attrs: n
                .el
                .attrs
                .iter()
                .filter(|(k, _)| k != "id" && k != "type")
                .cloned()
                .collect(),
            input: n.child("input").map(|c| c.node().el.clone()),
            output: n.child("output").map(|c| c.node().el.clone()),
        })
    }

    /// Formats the `<audio>`.
    pub(crate) fn format(&self) -> Element {
        let mut e = Element::new("audio")
            .with_attr("id", self.id)
            .with_attr("type", self.kind);
        e.attrs.extend(self.attrs.iter().cloned());
        e.push_opt(self.input.clone());
        e.push_opt(self.output.clone());
        e
    }
}
