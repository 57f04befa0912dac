//! Errors that name the place: `devices/disk[2]/driver/@cache: unsupported value 'fast'`.

use std::fmt;

use crate::error::{ErrorCode, ErrorDomain, VirtError};

/// What is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XmlErrorKind {
    /// The document is not well-formed XML.
    Syntax(String),
    /// The root element is not the expected one.
    WrongRoot {
        /// What we wanted.
        expected: String,
        /// What we got.
        found: String,
    },
    /// A required element or attribute is missing.
    Missing,
    /// A value that does not parse or is not allowed.
    BadValue {
        /// The value as written.
        value: String,
        /// Why, e.g. "unsupported value" or "expected an unsigned integer".
        reason: String,
    },
    /// An element or attribute outside the model (validate flag only).
    Unknown,
    /// A combination that is not allowed (free text).
    Invalid(String),
    /// The configuration is valid XML but not supported.
    Unsupported(String),
}

/// An XML error at a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlError {
    /// Where: `devices/disk[2]/driver/@cache`; empty for the document.
    pub path: String,
    /// What.
    pub kind: XmlErrorKind,
}

impl XmlError {
    /// A new error at `path`.
    pub fn new(path: impl Into<String>, kind: XmlErrorKind) -> XmlError {
        XmlError {
            path: path.into(),
            kind,
        }
    }

    /// An invalid combination at `path`.
    pub fn invalid(path: impl Into<String>, msg: impl Into<String>) -> XmlError {
        XmlError::new(path, XmlErrorKind::Invalid(msg.into()))
    }

    /// An unsupported configuration at `path`.
    pub fn unsupported(path: impl Into<String>, msg: impl Into<String>) -> XmlError {
        XmlError::new(path, XmlErrorKind::Unsupported(msg.into()))
    }

    /// A bad value at `path`.
    pub fn bad_value(
        path: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> XmlError {
        XmlError::new(
            path,
            XmlErrorKind::BadValue {
                value: value.into(),
                reason: reason.into(),
            },
        )
    }

    /// The libvirt-style error for the API boundary.
    pub fn to_virt_error(&self, domain: ErrorDomain) -> VirtError {
        let code = match self.kind {
            XmlErrorKind::Syntax(_) | XmlErrorKind::WrongRoot { .. } => ErrorCode::XmlError,
            XmlErrorKind::Unknown => ErrorCode::XmlInvalidSchema,
            XmlErrorKind::Unsupported(_) => ErrorCode::ConfigUnsupported,
            XmlErrorKind::Missing | XmlErrorKind::BadValue { .. } | XmlErrorKind::Invalid(_) => {
                ErrorCode::XmlDetail
            }
        };
        VirtError::new(code, domain, self.to_string())
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |f: &mut fmt::Formatter<'_>| {
            if self.path.is_empty() {
                Ok(())
            } else {
                write!(f, "{}: ", self.path)
            }
        };
        match &self.kind {
            XmlErrorKind::Syntax(m) => write!(f, "XML syntax error: {m}"),
            XmlErrorKind::WrongRoot { expected, found } => {
                write!(
                    f,
                    "unexpected root element <{found}>, expecting <{expected}>"
                )
            }
            XmlErrorKind::Missing => {
                at(f)?;
                f.write_str("missing")
            }
            XmlErrorKind::BadValue { value, reason } => {
                at(f)?;
                write!(f, "{reason} '{value}'")
            }
            XmlErrorKind::Unknown => {
                at(f)?;
                f.write_str("not allowed here")
            }
            XmlErrorKind::Invalid(m) => {
                at(f)?;
                f.write_str(m)
            }
            XmlErrorKind::Unsupported(m) => {
                at(f)?;
                write!(f, "unsupported configuration: {m}")
            }
        }
    }
}

impl std::error::Error for XmlError {}
