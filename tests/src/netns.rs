//! Network namespaces and a small DHCP client, for tests of virtual
//! networks: a "guest" is a network namespace whose end of a veth pair is
//! plugged into the network's bridge.
//!
//! - [`NetNs`]: a namespace made with `ip netns add`, deleted on drop
//!   (its veth end goes with it); [`NetNs::run`] runs a closure on a
//!   thread that has entered the namespace (`setns(2)`), so sockets it
//!   opens live there.
//! - [`Veth`]: a veth pair, one end in the namespace, the other on a
//!   bridge; the host end is deleted on drop.
//! - [`dhcp_lease`]: DISCOVER / OFFER / REQUEST / ACK over a UDP socket
//!   bound to the interface in the namespace (broadcast flag set, so
//!   replies are broadcast and reach a client without an address yet).
//!   dnsmasq pings an address for about 3 s before it offers it: budget
//!   for that.
//! - [`dhcp_request`]: one REQUEST for an address the client holds (a
//!   renewal from its address, or an INIT-REBOOT check without one):
//!   ACK or NAK.
//! - [`tcp_connect`]: a TCP connection from inside the namespace.
//!
//! The tests run as root; `ip` is used freely here (it is not the
//! daemon's hot path).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `ip ARGS`, panicking with its output on failure.
///
/// # Panics
/// `ip` fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS` ignoring failures (clean-up).
pub fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// Whether a link of that name exists in the host namespace.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates namespace `name` (with its loopback up).
    ///
    /// # Panics
    /// `ip netns add` fails.
    pub fn new(name: &str) -> NetNs {
        ip_quiet(&["netns", "del", name]);
        ip(&["netns", "add", name]);
        let ns = NetNs {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    ///
    /// # Panics
    /// It fails.
    pub fn ip(&self, args: &[&str]) {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        ip(&a);
    }

    /// Runs `f` on a thread inside the namespace and returns its result.
    ///
    /// # Panics
    /// The namespace cannot be entered, or `f` panics.
    pub fn run<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: setns on a namespace file we opened; it changes
                // only this (scoped, short-lived) thread's namespace.
                let r = unsafe { nix::libc::setns(fd.as_raw_fd(), nix::libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns {path}: {}", io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread")
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        ip_quiet(&["netns", "del", &self.name]);
    }
}

/// A veth pair from the host (on a bridge) into a namespace; the host end
/// is deleted on drop.
#[derive(Debug)]
pub struct Veth {
    host: String,
}

impl Veth {
    /// Creates `host_if` on `bridge` and `ns_if` (with MAC `mac`) in `ns`,
    /// both up.
    ///
    /// # Panics
    /// An `ip` command fails.
    pub fn into_bridge(ns: &NetNs, host_if: &str, ns_if: &str, mac: &str, bridge: &str) -> Veth {
        ip_quiet(&["link", "del", host_if]);
        ip(&[
            "link",
            "add",
            host_if,
            "type",
            "veth",
            "peer",
            "name",
            ns_if,
            "address",
            mac,
            "netns",
            ns.name(),
        ]);
        let v = Veth {
            host: host_if.to_owned(),
        };
        ip(&["link", "set", host_if, "master", bridge, "up"]);
        ns.ip(&["link", "set", ns_if, "up"]);
        v
    }

    /// The host end's name.
    pub fn host_name(&self) -> &str {
        &self.host
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        ip_quiet(&["link", "del", &self.host]);
    }
}

/// What a DHCP server gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// The server (option 54).
    pub server: Ipv4Addr,
    /// The prefix length (option 1).
    pub prefix: u32,
    /// The router (option 3), if any.
    pub router: Option<Ipv4Addr>,
    /// The lease time in seconds (option 51).
    pub lease_secs: u32,
    /// The MTU (option 26), if any.
    pub mtu: Option<u16>,
}

const MAGIC: [u8; 4] = [99, 130, 83, 99];

fn message(
    kind: u8,
    xid: u32,
    mac: [u8; 6],
    hostname: Option<&str>,
    extra: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    message_from(kind, xid, mac, Ipv4Addr::UNSPECIFIED, hostname, extra)
}

fn message_from(
    kind: u8,
    xid: u32,
    mac: [u8; 6],
    ciaddr: Ipv4Addr,
    hostname: Option<&str>,
    extra: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[12..16].copy_from_slice(&ciaddr.octets());
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6;
    m[4..8].copy_from_slice(&xid.to_be_bytes());
    m[10..12].copy_from_slice(&0x8000u16.to_be_bytes()); // broadcast replies
    m[28..34].copy_from_slice(&mac);
    m.extend_from_slice(&MAGIC);
    m.extend_from_slice(&[53, 1, kind]);
    let mut client_id = vec![1u8];
    client_id.extend_from_slice(&mac);
    m.push(61);
    m.push(7);
    m.extend_from_slice(&client_id);
    if let Some(h) = hostname {
        m.push(12);
        m.push(u8::try_from(h.len()).unwrap_or(0));
        m.extend_from_slice(h.as_bytes());
    }
    for (code, v) in extra {
        m.push(*code);
        m.push(u8::try_from(v.len()).unwrap_or(0));
        m.extend_from_slice(v);
    }
    m.extend_from_slice(&[55, 6, 1, 3, 6, 15, 26, 51]);
    m.push(255);
    while m.len() < 300 {
        m.push(0);
    }
    m
}

/// A parsed reply: message type and options.
struct Reply {
    kind: u8,
    yiaddr: Ipv4Addr,
    options: Vec<(u8, Vec<u8>)>,
}

impl Reply {
    fn opt(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    fn opt_ip(&self, code: u8) -> Option<Ipv4Addr> {
        self.opt(code)
            .filter(|v| v.len() >= 4)
            .map(|v| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
    }
}

fn parse_reply(b: &[u8], xid: u32, mac: [u8; 6]) -> Option<Reply> {
    if b.len() < 240 || b[0] != 2 || b[4..8] != xid.to_be_bytes() || b[28..34] != mac {
        return None;
    }
    if b[236..240] != MAGIC {
        return None;
    }
    let mut options = Vec::new();
    let mut i = 240;
    while i < b.len() {
        let code = b[i];
        if code == 255 {
            break;
        }
        if code == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*b.get(i + 1)?);
        options.push((code, b.get(i + 2..i + 2 + len)?.to_vec()));
        i += 2 + len;
    }
    let kind = options.iter().find(|(c, _)| *c == 53)?.1.first().copied()?;
    Some(Reply {
        kind,
        yiaddr: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
        options,
    })
}

fn socket_on(ifname: &str) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind("0.0.0.0:68")?;
    s.set_broadcast(true)?;
    nix::sys::socket::setsockopt(
        &s,
        nix::sys::socket::sockopt::BindToDevice,
        &std::ffi::OsString::from(ifname),
    )
    .map_err(io::Error::from)?;
    Ok(s)
}

/// Sends `msg` (again every 2 s) until a reply of one of `kinds` comes.
fn exchange(
    s: &UdpSocket,
    msg: &[u8],
    xid: u32,
    mac: [u8; 6],
    kinds: &[u8],
    deadline: Instant,
) -> io::Result<Reply> {
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let mut buf = [0u8; 1500];
    loop {
        s.send_to(msg, to)?;
        let resend = Instant::now() + Duration::from_secs(2);
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no DHCP reply"));
            }
            s.set_read_timeout(Some(
                resend
                    .min(deadline)
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            ))?;
            match s.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Some(r) = parse_reply(&buf[..n], xid, mac)
                        && kinds.contains(&r.kind)
                    {
                        return Ok(r);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn parse_mac(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (i, p) in mac.split(':').enumerate().take(6) {
        out[i] = u8::from_str_radix(p, 16).expect("hex MAC");
    }
    out
}

/// Gets a lease on `ifname` inside `ns` for `mac`, at most `timeout`
/// (DISCOVER, OFFER, REQUEST, ACK).
///
/// # Errors
/// No offer or acknowledgement in time, a NAK, or a socket error.
pub fn dhcp_lease(
    ns: &NetNs,
    ifname: &str,
    mac: &str,
    hostname: Option<&str>,
    timeout: Duration,
) -> io::Result<Lease> {
    let mac = parse_mac(mac);
    let ifname = ifname.to_owned();
    let hostname = hostname.map(str::to_owned);
    ns.run(move || {
        let deadline = Instant::now() + timeout;
        let s = socket_on(&ifname)?;
        let mut x = [0u8; 4];
        common::xml::values::os_random(&mut x);
        let xid = u32::from_ne_bytes(x);
        let discover = message(1, xid, mac, hostname.as_deref(), &[]);
        let offer = exchange(&s, &discover, xid, mac, &[2], deadline)?;
        let server = offer
            .opt_ip(54)
            .ok_or_else(|| io::Error::other("offer without server id"))?;
        let request = message(
            3,
            xid,
            mac,
            hostname.as_deref(),
            &[
                (50, offer.yiaddr.octets().to_vec()),
                (54, server.octets().to_vec()),
            ],
        );
        let ack = exchange(&s, &request, xid, mac, &[5, 6], deadline)?;
        if ack.kind == 6 {
            return Err(io::Error::other("DHCPNAK"));
        }
        let prefix = ack.opt_ip(1).map_or(32, |m| u32::from(m).leading_ones());
        Ok(Lease {
            ip: ack.yiaddr,
            server,
            prefix,
            router: ack.opt_ip(3),
            lease_secs: ack
                .opt(51)
                .filter(|v| v.len() == 4)
                .map_or(0, |v| u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            mtu: ack
                .opt(26)
                .filter(|v| v.len() == 2)
                .map(|v| u16::from_be_bytes([v[0], v[1]])),
        })
    })
}

/// How [`dhcp_request`] asks for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A client whose interface has the address renews it (REBINDING:
    /// broadcast, `ciaddr` set; the server answers to that address).
    Renew,
    /// A client that believes it has the address asks to keep it
    /// (INIT-REBOOT: no address yet, option 50); the server NAKs an
    /// address leased to someone else.
    InitReboot,
}

/// One DHCPREQUEST for `ip` from `mac` on `ifname` inside `ns`: the ACK's
/// lease, or `None` for a NAK.
///
/// # Errors
/// No answer within `timeout`, or a socket error.
pub fn dhcp_request(
    ns: &NetNs,
    ifname: &str,
    mac: &str,
    ip: Ipv4Addr,
    how: Request,
    timeout: Duration,
) -> io::Result<Option<Lease>> {
    let mac = parse_mac(mac);
    let ifname = ifname.to_owned();
    ns.run(move || {
        let deadline = Instant::now() + timeout;
        let s = socket_on(&ifname)?;
        let mut x = [0u8; 4];
        common::xml::values::os_random(&mut x);
        let xid = u32::from_ne_bytes(x);
        let request = match how {
            Request::Renew => message_from(3, xid, mac, ip, None, &[]),
            Request::InitReboot => message(3, xid, mac, None, &[(50, ip.octets().to_vec())]),
        };
        let ack = exchange(&s, &request, xid, mac, &[5, 6], deadline)?;
        if ack.kind == 6 {
            return Ok(None);
        }
        Ok(Some(Lease {
            ip: ack.yiaddr,
            server: ack.opt_ip(54).unwrap_or(Ipv4Addr::UNSPECIFIED),
            prefix: ack.opt_ip(1).map_or(32, |m| u32::from(m).leading_ones()),
            router: ack.opt_ip(3),
            lease_secs: ack
                .opt(51)
                .filter(|v| v.len() == 4)
                .map_or(0, |v| u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            mtu: ack
                .opt(26)
                .filter(|v| v.len() == 2)
                .map(|v| u16::from_be_bytes([v[0], v[1]])),
        }))
    })
}

/// Connects to `addr` over TCP from inside `ns`.
///
/// # Errors
/// The connection fails or times out.
pub fn tcp_connect(ns: &NetNs, addr: SocketAddr, timeout: Duration) -> io::Result<()> {
    ns.run(move || TcpStream::connect_timeout(&addr, timeout).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let mac = parse_mac("52:54:00:aa:bb:cc");
        let m = message(1, 7, mac, Some("g"), &[]);
        assert!(m.len() >= 300);
        let mut reply = m.clone();
        reply[0] = 2;
        reply[16..20].copy_from_slice(&[10, 0, 0, 5]);
        // Replace the type: DISCOVER -> OFFER.
        reply[242] = 2;
        let r = parse_reply(&reply, 7, mac).expect("parses");
        assert_eq!((r.kind, r.yiaddr), (2, Ipv4Addr::new(10, 0, 0, 5)));
        assert!(parse_reply(&reply, 8, mac).is_none());
    }
}
