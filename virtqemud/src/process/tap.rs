//! Tap devices for NICs: created on `/dev/net/tun` (non-persistent: the
//! device goes when the last descriptor closes, i.e. when QEMU exits),
//! given a MAC, attached to a bridge and brought up, with the ioctls
//! libvirt's `virNetDevTapCreateInBridgePort` uses.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all zero is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= r.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name '{name}'"),
        ));
    }
    for (d, s) in r.ifr_name.iter_mut().zip(bytes) {
        *d = (*s).cast_signed();
    }
    Ok(r)
}

fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(fd: &OwnedFd, req: libc::c_ulong, r: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: the request takes a struct ifreq, which `r` is.
    if unsafe { libc::ioctl(fd.as_raw_fd(), req as _, r as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A tap device open for QEMU.
#[derive(Debug)]
pub struct Tap {
    /// Its name.
    pub name: String,
    /// The descriptor QEMU gets.
    pub fd: OwnedFd,
}

/// Creates (or opens) tap `name` with a virtio-net header when
/// `vnet_hdr`, sets `mac` (the guest's MAC with the first byte 0xFE, as
/// libvirt does, so that the bridge never takes the guest's address),
/// attaches it to `bridge` when given and brings it up.
///
/// # Errors
/// The device cannot be created, configured or attached.
pub fn create(name: &str, mac: [u8; 6], bridge: Option<&str>, vnet_hdr: bool) -> io::Result<Tap> {
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut r = ifreq(name)?;
    r.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | if vnet_hdr { IFF_VNET_HDR } else { 0 };
    // SAFETY: TUNSETIFF takes a struct ifreq.
    if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut r as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let tap = Tap {
        name: name.to_owned(),
        fd: OwnedFd::from(tun),
    };
    let s = ctl_socket()?;
    let mut r = ifreq(name)?;
    let mut host_mac = mac;
    host_mac[0] = 0xFE;
    // SAFETY: writing the sockaddr member of the union.
    unsafe {
        r.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        for (d, s) in r.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(host_mac) {
            *d = s.cast_signed();
        }
    }
    ioctl(&s, libc::SIOCSIFHWADDR, &mut r)?;
    if let Some(br) = bridge {
        let mut ri = ifreq(name)?;
        ioctl(&s, libc::SIOCGIFINDEX, &mut ri)?;
        // SAFETY: reading the ifindex member SIOCGIFINDEX filled.
        let index = unsafe { ri.ifr_ifru.ifru_ifindex };
        let mut rb = ifreq(br)?;
        rb.ifr_ifru.ifru_ifindex = index;
        ioctl(&s, SIOCBRADDIF, &mut rb).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot attach '{name}' to bridge '{br}': {e}"),
            )
        })?;
    }
    let mut rf = ifreq(name)?;
    ioctl(&s, libc::SIOCGIFFLAGS, &mut rf)?;
    // SAFETY: the flags member SIOCGIFFLAGS filled.
    unsafe {
        rf.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    ioctl(&s, libc::SIOCSIFFLAGS, &mut rf)?;
    Ok(tap)
}

/// Attaches existing interface `name` to `bridge` and brings it up (a
/// tap whose network was restarted, libvirt's
/// `virNetDevTapReattachBridge`).
///
/// # Errors
/// Either interface is missing, or the kernel refuses.
pub fn attach(name: &str, bridge: &str) -> io::Result<()> {
    let s = ctl_socket()?;
    let mut ri = ifreq(name)?;
    ioctl(&s, libc::SIOCGIFINDEX, &mut ri)?;
    // SAFETY: reading the ifindex member SIOCGIFINDEX filled.
    let index = unsafe { ri.ifr_ifru.ifru_ifindex };
    let mut rb = ifreq(bridge)?;
    rb.ifr_ifru.ifru_ifindex = index;
    ioctl(&s, SIOCBRADDIF, &mut rb)?;
    let mut rf = ifreq(name)?;
    ioctl(&s, libc::SIOCGIFFLAGS, &mut rf)?;
    // SAFETY: the flags member SIOCGIFFLAGS filled.
    unsafe {
        rf.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    ioctl(&s, libc::SIOCSIFFLAGS, &mut rf)
}

/// A free tap name `vnetN` (N from `hint` up), as libvirt's `vnet%d`.
pub fn free_name(hint: &mut u32) -> String {
    loop {
        let name = format!("vnet{hint}");
        *hint = hint.wrapping_add(1);
        if !std::path::Path::new("/sys/class/net").join(&name).exists() {
            return name;
        }
    }
}

/// Whether interface `name` exists.
pub fn exists(name: &str) -> bool {
    CString::new(name).is_ok() && std::path::Path::new("/sys/class/net").join(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(args: &[&str]) -> bool {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn a_tap_on_a_bridge_goes_with_its_descriptor() {
        if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/dev/net/tun").exists() {
            eprintln!("not root or no /dev/net/tun: skipped");
            return;
        }
        let br = format!("vtb{}", std::process::id() % 100_000);
        assert!(ip(&["link", "add", &br, "type", "bridge"]), "bridge");
        let mut hint = 9000;
        let name = free_name(&mut hint);
        let tap = create(&name, [0x52, 0x54, 0, 1, 2, 3], Some(&br), true);
        let master = std::fs::read_link(format!("/sys/class/net/{name}/master"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        let mac =
            std::fs::read_to_string(format!("/sys/class/net/{name}/address")).unwrap_or_default();
        drop(tap);
        let gone = !exists(&name);
        ip(&["link", "del", &br]);
        assert_eq!(master.as_deref(), Some(br.as_str()));
        assert_eq!(mac.trim(), "fe:54:00:01:02:03");
        assert!(gone, "the tap goes with its descriptor");
    }
}
