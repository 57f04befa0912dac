//! Value types and their libvirt spellings: IP addresses (parsed as
//! `getaddrinfo(AI_NUMERICHOST)` does, formatted as glibc's `inet_ntop`),
//! prefixes and netmasks, and PCI addresses. MAC addresses, UUIDs and
//! C-style numbers are the shared [`crate::xml::values`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// === IP addresses ===

/// Parses one part of an `inet_aton` address: `0x` hex, `0` octal or
/// decimal; at least one digit.
fn aton_part(p: &str) -> Option<u64> {
    if !p.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() {
        // "0x" alone: strtoul stops after the 0 and the x is garbage.
        return None;
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = u64::from_str_radix(digits, radix).ok()?;
    (v <= u64::from(u32::MAX)).then_some(v)
}

/// Parses an IPv4 address as glibc's `inet_aton` (what `getaddrinfo`
/// with `AI_NUMERICHOST` accepts): `a.b.c.d`, `a.b.c`, `a.b` or `a`, each
/// part decimal, octal or hex.
pub fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut vals = Vec::with_capacity(4);
    for p in &parts {
        vals.push(aton_part(p)?);
    }
    let n = vals.len();
    let mut addr: u64 = 0;
    for (i, v) in vals.iter().enumerate() {
        if i + 1 < n {
            if *v > 0xff {
                return None;
            }
            addr |= v << (8 * (3 - i));
        } else {
            let bits = 8 * (4 - i);
            if bits < 32 && *v >= (1u64 << bits) {
                return None;
            }
            addr |= v;
        }
    }
    u32::try_from(addr).ok().map(Ipv4Addr::from)
}

/// Parses an IPv4 or IPv6 address as libvirt's `virSocketAddrParse` with
/// `AF_UNSPEC` does.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        parse_ipv4(s).map(IpAddr::V4)
    }
}

/// Formats an IPv6 address as glibc's `inet_ntop` (RFC 5952 style, with
/// glibc's dotted tail for IPv4-mapped and -compatible addresses).
pub fn format_ipv6(a: &Ipv6Addr) -> String {
    let w = a.segments();
    // Longest run of zero words (first one wins ties), at least 2 long.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let (mut cur_base, mut cur_len) = (usize::MAX, 0usize);
    for (i, word) in w.iter().enumerate() {
        if *word == 0 {
            if cur_base == usize::MAX {
                cur_base = i;
                cur_len = 1;
            } else {
                cur_len += 1;
            }
        } else if cur_base != usize::MAX {
            if best_base == usize::MAX || cur_len > best_len {
                best_base = cur_base;
                best_len = cur_len;
            }
            cur_base = usize::MAX;
        }
    }
    if cur_base != usize::MAX && (best_base == usize::MAX || cur_len > best_len) {
        best_base = cur_base;
        best_len = cur_len;
    }
    if best_base != usize::MAX && best_len < 2 {
        best_base = usize::MAX;
    }
    let mut out = String::with_capacity(40);
    let mut i = 0;
    while i < 8 {
        if best_base != usize::MAX && i >= best_base && i < best_base + best_len {
            if i == best_base {
                out.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6
            && best_base == 0
            && (best_len == 6 || (best_len == 7 && w[7] != 1) || (best_len == 5 && w[5] == 0xffff))
        {
            let o = a.octets();
            out.push_str(&format!("{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
            return out;
        }
        out.push_str(&format!("{:x}", w[i]));
        i += 1;
    }
    if best_base != usize::MAX && best_base + best_len == 8 {
        out.push(':');
    }
    out
}

/// Formats an address as libvirt's `virSocketAddrFormat`.
pub fn format_ip(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format_ipv6(v6),
    }
}

/// The number of leading one bits of a netmask, or `None` when the mask
/// is not contiguous (`virSocketAddrGetNumNetmaskBits`).
pub fn netmask_bits(mask: &IpAddr) -> Option<u32> {
    let bits = match mask {
        IpAddr::V4(m) => u128::from(u32::from(*m)) << 96,
        IpAddr::V6(m) => u128::from(*m),
    };
    let ones = bits.leading_ones();
    let total = if mask.is_ipv4() { 32 } else { 128 };
    // Everything after the leading ones must be zero.
    let rest = bits.checked_shl(ones).unwrap_or(0);
    (rest == 0 && ones <= total).then_some(ones)
}

/// `addr` with every bit past `prefix` cleared; `None` when the prefix is
/// too long for the family.
pub fn mask_by_prefix(addr: &IpAddr, prefix: u32) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) => {
            if prefix > 32 {
                return None;
            }
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from(*a) & mask)))
        }
        IpAddr::V6(a) => {
            if prefix > 128 {
                return None;
            }
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            Some(IpAddr::V6(Ipv6Addr::from(u128::from(*a) & mask)))
        }
    }
}

/// `addr` masked by `mask` (both of the same family).
pub fn mask_by_netmask(addr: &IpAddr, mask: &IpAddr) -> Option<IpAddr> {
    match (addr, mask) {
        (IpAddr::V4(a), IpAddr::V4(m)) => {
            Some(IpAddr::V4(Ipv4Addr::from(u32::from(*a) & u32::from(*m))))
        }
        (IpAddr::V6(a), IpAddr::V6(m)) => {
            Some(IpAddr::V6(Ipv6Addr::from(u128::from(*a) & u128::from(*m))))
        }
        _ => None,
    }
}

/// The broadcast address of `addr`'s IPv4 network of length `prefix`.
pub fn broadcast_v4(addr: &Ipv4Addr, prefix: u32) -> Option<Ipv4Addr> {
    if prefix > 32 {
        return None;
    }
    let host = u32::MAX.checked_shr(prefix).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(*addr) | host))
}

/// The classful default prefix of an IPv4 address (8, 16 or 24), as
/// libvirt uses when neither prefix nor netmask is given.
pub fn classful_prefix(a: &Ipv4Addr) -> Option<u32> {
    let b = a.octets()[0];
    if b & 0x80 == 0 {
        Some(8)
    } else if b & 0xc0 == 0x80 {
        Some(16)
    } else if b & 0xe0 == 0xc0 {
        Some(24)
    } else {
        None
    }
}

// === MAC address, UUID ===

pub use crate::xml::values::{MacAddr, Uuid};

// === PCI address ===

/// A PCI address (`<address type='pci' domain= bus= slot= function=/>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PciAddr {
    /// PCI domain.
    pub domain: u32,
    /// Bus (0..=0xff).
    pub bus: u32,
    /// Slot (0..=0x1f).
    pub slot: u32,
    /// Function (0..=7).
    pub function: u32,
    /// `multifunction` (on/off), parsed but not formatted in networks.
    pub multifunction: Option<bool>,
}

impl PciAddr {
    /// Whether every field is zero (libvirt's "empty" address).
    pub fn is_empty(&self) -> bool {
        self.domain == 0 && self.bus == 0 && self.slot == 0 && self.function == 0
    }

    /// `dddd:bb:ss.f`.
    pub fn short(&self) -> String {
        format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_like_inet_aton() {
        assert_eq!(
            parse_ipv4("192.168.1.1"),
            Some(Ipv4Addr::new(192, 168, 1, 1))
        );
        assert_eq!(parse_ipv4("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(parse_ipv4("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(parse_ipv4("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        for bad in [
            "",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.256",
            "a.b.c.d",
            "1..2",
            "08.1.1.1",
            " 1.2.3.4",
            "1.2.3.4 ",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{bad}");
        }
    }

    #[test]
    fn ipv6_like_inet_ntop() {
        let f = |s: &str| format_ip(&parse_ip(s).expect("parses"));
        assert_eq!(f("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
        assert_eq!(f("::"), "::");
        assert_eq!(f("::1"), "::1");
        assert_eq!(f("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(f("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(f("1:0:0:1:0:0:0:1"), "1:0:0:1::1");
        assert_eq!(f("1:0:1:0:1:0:1:0"), "1:0:1:0:1:0:1:0");
        assert_eq!(f("fe80::"), "fe80::");
        assert_eq!(f("2001:db8:ac10:fd01::1:20"), "2001:db8:ac10:fd01::1:20");
    }

    #[test]
    fn netmasks_and_prefixes() {
        let m = parse_ip("255.255.255.0").expect("mask");
        assert_eq!(netmask_bits(&m), Some(24));
        assert_eq!(netmask_bits(&parse_ip("255.0.255.0").expect("mask")), None);
        assert_eq!(netmask_bits(&parse_ip("0.0.0.0").expect("mask")), Some(0));
        let a = parse_ip("192.168.1.77").expect("a");
        assert_eq!(mask_by_prefix(&a, 24), parse_ip("192.168.1.0"));
        assert_eq!(mask_by_prefix(&a, 0), parse_ip("0.0.0.0"));
        assert_eq!(mask_by_prefix(&a, 33), None);
        assert_eq!(
            broadcast_v4(&Ipv4Addr::new(10, 0, 0, 1), 8),
            Some(Ipv4Addr::new(10, 255, 255, 255))
        );
    }
}
