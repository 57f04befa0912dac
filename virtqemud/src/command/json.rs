//! Ordered JSON objects for `-device`/`-object`/`-blockdev`/`-netdev`
//! arguments: keys stay in insertion order, which is libvirt's order.

use std::fmt::Write as _;

/// A JSON value as QEMU's command line needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Str(String),
    /// A signed number.
    Int(i64),
    /// An unsigned number.
    Uint(u64),
    /// `true`/`false`.
    Bool(bool),
    /// A nested object.
    Obj(Props),
    /// An array of objects.
    Arr(Vec<Props>),
    /// `null`.
    Null,
}

/// An object with keys in insertion order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Props(Vec<(String, Value)>);

impl Props {
    /// An empty object.
    pub fn new() -> Props {
        Props(Vec::new())
    }

    /// Adds a string member.
    #[must_use]
    pub fn s(mut self, key: &str, v: impl Into<String>) -> Props {
        self.0.push((key.to_owned(), Value::Str(v.into())));
        self
    }

    /// Adds a string member when `v` is set.
    #[must_use]
    pub fn s_opt(self, key: &str, v: Option<impl Into<String>>) -> Props {
        match v {
            Some(v) => self.s(key, v),
            None => self,
        }
    }

    /// Adds an unsigned number.
    #[must_use]
    pub fn u(mut self, key: &str, v: u64) -> Props {
        self.0.push((key.to_owned(), Value::Uint(v)));
        self
    }

    /// Adds an unsigned number when set.
    #[must_use]
    pub fn u_opt(self, key: &str, v: Option<u64>) -> Props {
        match v {
            Some(v) => self.u(key, v),
            None => self,
        }
    }

    /// Adds a signed number.
    #[must_use]
    pub fn i(mut self, key: &str, v: i64) -> Props {
        self.0.push((key.to_owned(), Value::Int(v)));
        self
    }

    /// Adds a boolean.
    #[must_use]
    pub fn b(mut self, key: &str, v: bool) -> Props {
        self.0.push((key.to_owned(), Value::Bool(v)));
        self
    }

    /// Adds a boolean when set.
    #[must_use]
    pub fn b_opt(self, key: &str, v: Option<bool>) -> Props {
        match v {
            Some(v) => self.b(key, v),
            None => self,
        }
    }

    /// Adds `key: null`.
    #[must_use]
    pub fn null(mut self, key: &str) -> Props {
        self.0.push((key.to_owned(), Value::Null));
        self
    }

    /// Adds a nested object.
    #[must_use]
    pub fn obj(mut self, key: &str, v: Props) -> Props {
        self.0.push((key.to_owned(), Value::Obj(v)));
        self
    }

    /// Adds an array of objects.
    #[must_use]
    pub fn arr(mut self, key: &str, v: Vec<Props>) -> Props {
        self.0.push((key.to_owned(), Value::Arr(v)));
        self
    }

    /// Appends all members of `other`.
    #[must_use]
    pub fn extend(mut self, other: Props) -> Props {
        self.0.extend(other.0);
        self
    }

    /// Whether the object has no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The compact JSON text.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        write_obj(&mut s, self);
        s
    }
}

fn write_obj(s: &mut String, p: &Props) {
    s.push('{');
    for (i, (k, v)) in p.0.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        write_str(s, k);
        s.push(':');
        match v {
            Value::Str(x) => write_str(s, x),
            Value::Int(x) => {
                let _ = write!(s, "{x}");
            }
            Value::Uint(x) => {
                let _ = write!(s, "{x}");
            }
            Value::Bool(x) => s.push_str(if *x { "true" } else { "false" }),
            Value::Null => s.push_str("null"),
            Value::Obj(o) => write_obj(s, o),
            Value::Arr(a) => {
                s.push('[');
                for (j, o) in a.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    write_obj(s, o);
                }
                s.push(']');
            }
        }
    }
    s.push('}');
}

fn write_str(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_escapes() {
        let p = Props::new()
            .s("driver", "x\"y")
            .u("n", 3)
            .b("on", true)
            .obj("cache", Props::new().b("direct", false));
        assert_eq!(
            p.to_json(),
            r#"{"driver":"x\"y","n":3,"on":true,"cache":{"direct":false}}"#
        );
    }
}
