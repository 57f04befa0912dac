//! XML plumbing shared by every model (domain, network, pool, volume).
//!
//! Parsing and formatting go through one small tree type, [`Element`]:
//!
//! ```text
//!   text ──parse()──▶ Element ──Model::parse(&Node)──▶ model
//!   model ──Model::format()──▶ Element ──to_string()──▶ text
//! ```
//!
//! - [`parse`] reads a document with quick-xml into an [`Element`] tree
//!   (comments, processing instructions and whitespace between elements are
//!   dropped, as libvirt's XPath-based parser never sees them).
//! - [`Node`] is an element plus its path (`devices/disk[2]/driver`), so
//!   every error names the place and the value:
//!   `devices/disk[2]/driver/@cache: unsupported value 'fast'`.
//! - [`Element::to_xml`] writes libvirt's canonical layout: two-space
//!   indent, attributes in insertion order with single quotes,
//!   self-closing empty elements, text inline, libvirt's escaping.
//! - [`values`]: UUIDs, MAC addresses, C-style integers and scaled sizes
//!   with libvirt's parsing rules, shared by every model.
//! - [`xml_enum!`](crate::xml_enum) declares an enum of attribute values
//!   with its XML spellings.

mod error;
mod node;
mod tree;
pub mod values;

pub use error::{XmlError, XmlErrorKind};
pub use node::{Node, NodeBuf, parse_uint};
pub use tree::{Child, Element, MAX_DEPTH, escape, escape_attr_into, escape_into, parse};
pub use values::{MacAddr, Uuid};

/// Flags for parsing a definition, as libvirt's `VIR_DOMAIN_DEF_PARSE_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseFlags {
    /// Parse as an inactive (persistent) definition: live-only data such as
    /// `id` or aliases of active devices is ignored.
    pub inactive: bool,
    /// Refuse elements and attributes outside the model, and values the
    /// schema forbids, instead of ignoring them.
    pub validate: bool,
    /// Keep the definition when a post-parse hook fails, marking it for a
    /// retry (used when loading existing definitions at daemon start).
    pub allow_post_parse_fail: bool,
}

/// Flags for formatting, as libvirt's `VIR_DOMAIN_XML_*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FormatFlags {
    /// Format the inactive (persistent) form: no live-only data.
    pub inactive: bool,
    /// Include secrets (passwords); only for read-write callers.
    pub secure: bool,
    /// Format for migration (drop defaults added for compatibility).
    pub migratable: bool,
}

/// The flag sets under which a parsed definition must format to XML that
/// parses again to the same text (live, inactive, validating parse; all
/// formatted with `secure`, since without it secrets are dropped by design).
/// The fuzz targets and their regression tests check exactly these.
pub const ROUND_TRIP_MODES: [(&str, ParseFlags, FormatFlags); 3] = [
    (
        "live",
        ParseFlags {
            inactive: false,
            validate: false,
            allow_post_parse_fail: false,
        },
        FormatFlags {
            inactive: false,
            secure: true,
            migratable: false,
        },
    ),
    (
        "inactive",
        ParseFlags {
            inactive: true,
            validate: false,
            allow_post_parse_fail: false,
        },
        FormatFlags {
            inactive: true,
            secure: true,
            migratable: false,
        },
    ),
    (
        "validate",
        ParseFlags {
            inactive: false,
            validate: true,
            allow_post_parse_fail: false,
        },
        FormatFlags {
            inactive: false,
            secure: true,
            migratable: false,
        },
    ),
];

/// Declares an enum of XML attribute values: `FromStr` (with libvirt's
/// spellings), `as_str`, `Display` and `ALL`.
///
/// # Examples
/// ```
/// common::xml_enum! {
///     /// Disk cache mode.
///     pub enum CacheMode {
///         Default = "default",
///         None = "none",
///         WriteBack = "writeback",
///     }
/// }
/// assert_eq!("none".parse::<CacheMode>(), Ok(CacheMode::None));
/// assert_eq!(CacheMode::WriteBack.as_str(), "writeback");
/// assert!("fast".parse::<CacheMode>().is_err());
/// ```
#[macro_export]
macro_rules! xml_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vm])* $var,)* }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$var,)*];

            /// The XML spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $text,)* }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> ::std::result::Result<Self, ()> {
                match s { $($text => Ok($name::$var),)* _ => Err(()) }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
