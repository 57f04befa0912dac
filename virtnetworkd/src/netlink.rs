//! A small rtnetlink client: just the messages virtnetworkd sends
//! (create and delete a bridge, bring a link up, add an address, add a
//! route). Each call opens a `NETLINK_ROUTE` socket, sends one request
//! with `NLM_F_ACK` and reads the kernel's answer; no `ip` command runs.
//!
//! Blocking, but every call is a round trip to the kernel of a few
//! microseconds.

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_BR_FORWARD_DELAY: u16 = 1;
const IFLA_BR_STP_STATE: u16 = 5;
const NLA_F_NESTED: u16 = 0x8000;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_STATIC: u8 = 4;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

const IFF_UP: u32 = 0x1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

static SEQ: AtomicU32 = AtomicU32::new(1);

/// A request being built: header, family header, attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16, family_header: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&SEQ.fetch_add(1, Ordering::Relaxed).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
        buf.extend_from_slice(family_header);
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        self.align();
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.align();
    }

    fn attr_u32(&mut self, kind: u16, v: u32) {
        self.attr(kind, &v.to_ne_bytes());
    }

    fn attr_str(&mut self, kind: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(kind, &v);
    }

    fn begin_nest(&mut self, kind: u16) {
        self.align();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end_nest(&mut self) {
        self.align();
        if let Some(start) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    fn seq(&self) -> u32 {
        u32::from_ne_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
    }

    fn finish(mut self) -> Vec<u8> {
        self.align();
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    // family AF_UNSPEC (0), pad, type 0.
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

fn open() -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    Ok(fd)
}

/// Sends `msg` and waits for the kernel's acknowledgement.
fn request(msg: Msg) -> io::Result<()> {
    let seq = msg.seq();
    let bytes = msg.finish();
    let fd = open()?;
    send(fd.as_raw_fd(), &bytes, MsgFlags::empty())?;
    let mut buf = vec![0u8; 16384];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]);
            let len = usize::try_from(len).unwrap_or(0);
            let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            let mseq =
                u32::from_ne_bytes([buf[off + 8], buf[off + 9], buf[off + 10], buf[off + 11]]);
            if len < 16 || off + len > n {
                return Err(io::Error::other("truncated netlink message"));
            }
            if kind == NLMSG_ERROR && mseq == seq && len >= 20 {
                let err = i32::from_ne_bytes([
                    buf[off + 16],
                    buf[off + 17],
                    buf[off + 18],
                    buf[off + 19],
                ]);
                return if err == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-err))
                };
            }
            off += (len + 3) & !3;
        }
    }
}

/// The index of interface `name`, if it exists.
pub fn ifindex(name: &str) -> Option<i32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let i = unsafe { nix::libc::if_nametoindex(c.as_ptr()) };
    i32::try_from(i).ok().filter(|i| *i > 0)
}

/// Whether interface `name` exists.
pub fn link_exists(name: &str) -> bool {
    ifindex(name).is_some()
}

/// How to create a bridge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeSpec {
    /// The name (at most 15 bytes).
    pub name: String,
    /// Its MAC address.
    pub mac: Option<[u8; 6]>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// Spanning tree on.
    pub stp: bool,
    /// Forward delay in seconds.
    pub delay_secs: u64,
}

/// Creates a bridge (`RTM_NEWLINK`, kind `bridge`), down.
///
/// # Errors
/// `EEXIST` when a link of that name exists; others from the kernel.
pub fn create_bridge(spec: &BridgeSpec) -> io::Result<()> {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifinfomsg(0, 0, 0));
    m.attr_str(IFLA_IFNAME, &spec.name);
    if let Some(mac) = &spec.mac {
        m.attr(IFLA_ADDRESS, mac);
    }
    if let Some(mtu) = spec.mtu {
        m.attr_u32(IFLA_MTU, mtu);
    }
    m.begin_nest(IFLA_LINKINFO);
    m.attr_str(IFLA_INFO_KIND, "bridge");
    m.begin_nest(IFLA_INFO_DATA);
    // The kernel applies the forward delay before the STP state, so a
    // delay below STP's minimum is accepted (as libvirt's sysfs writes).
    let delay = u32::try_from(spec.delay_secs.saturating_mul(100)).unwrap_or(u32::MAX);
    m.attr_u32(IFLA_BR_FORWARD_DELAY, delay);
    m.attr_u32(IFLA_BR_STP_STATE, u32::from(spec.stp));
    m.end_nest();
    m.end_nest();
    request(m)
}

/// Sets a link up.
///
/// # Errors
/// From the kernel.
pub fn set_up(index: i32) -> io::Result<()> {
    request(Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index, IFF_UP, IFF_UP)))
}

/// Sets a link down.
///
/// # Errors
/// From the kernel.
pub fn set_down(index: i32) -> io::Result<()> {
    request(Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index, 0, IFF_UP)))
}

/// Renames a link (it must be down).
///
/// # Errors
/// From the kernel (`EEXIST` when the name is taken, `EBUSY` when up).
pub fn rename(index: i32, name: &str) -> io::Result<()> {
    let mut m = Msg::new(RTM_NEWLINK, 0, &ifinfomsg(index, 0, 0));
    m.attr_str(IFLA_IFNAME, name);
    request(m)
}

/// Deletes a link (its addresses and routes go with it).
///
/// # Errors
/// `ENODEV` when it does not exist; others from the kernel.
pub fn delete_link(index: i32) -> io::Result<()> {
    request(Msg::new(RTM_DELLINK, 0, &ifinfomsg(index, 0, 0)))
}

fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn family(a: &IpAddr) -> u8 {
    if a.is_ipv4() { AF_INET } else { AF_INET6 }
}

/// Adds `addr/prefix` to link `index` (IPv4 with its broadcast address,
/// IPv6 without duplicate address detection: the address is ours and
/// dnsmasq must be able to bind it at once).
///
/// # Errors
/// From the kernel (`EEXIST` when present already).
pub fn add_address(
    index: i32,
    addr: &IpAddr,
    prefix: u8,
    broadcast: Option<IpAddr>,
) -> io::Result<()> {
    let mut h = [0u8; 8];
    h[0] = family(addr);
    h[1] = prefix;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &h);
    let bytes = addr_bytes(addr);
    m.attr(IFA_LOCAL, &bytes);
    m.attr(IFA_ADDRESS, &bytes);
    if let Some(b) = broadcast {
        m.attr(IFA_BROADCAST, &addr_bytes(&b));
    }
    if addr.is_ipv6() {
        m.attr_u32(IFA_FLAGS, IFA_F_NODAD);
    }
    request(m)
}

/// Adds a route to `dst/prefix` via `gateway` out of link `index`.
///
/// # Errors
/// From the kernel.
pub fn add_route(
    index: i32,
    dst: &IpAddr,
    prefix: u8,
    gateway: &IpAddr,
    metric: Option<u32>,
) -> io::Result<()> {
    let mut h = [0u8; 12];
    h[0] = family(dst);
    h[1] = prefix;
    h[4] = RT_TABLE_MAIN;
    h[5] = RTPROT_STATIC;
    h[6] = RT_SCOPE_UNIVERSE;
    h[7] = RTN_UNICAST;
    let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &h);
    m.attr(RTA_DST, &addr_bytes(dst));
    m.attr(RTA_GATEWAY, &addr_bytes(gateway));
    m.attr_u32(RTA_OIF, u32::try_from(index).unwrap_or(0));
    if let Some(p) = metric {
        m.attr_u32(RTA_PRIORITY, p);
    }
    request(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE, &ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, "br0");
        m.begin_nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end_nest();
        let b = m.finish();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        // ifname attribute right after the 16+16 bytes of headers.
        assert_eq!(u16::from_ne_bytes([b[32], b[33]]), 8);
        assert_eq!(&b[36..40], b"br0\0");
        // linkinfo nest: 4 + (4 + 7 "bridge\0" padded to 8) = 16.
        assert_eq!(u16::from_ne_bytes([b[40], b[41]]), 16);
    }

    #[test]
    fn loopback_exists() {
        assert!(link_exists("lo"));
        assert!(!link_exists("no-such-link0"));
    }
}
