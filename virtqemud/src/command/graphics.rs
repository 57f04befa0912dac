//! Graphics (VNC) and video devices.

use common::domain::Device;
use common::domain::device::graphics::{GraphicsType, ListenType};
use common::domain::device::video::VideoType;

use super::{Args, BuildError, Builder, Props, Result};

/// The `-vnc` option (and its TLS credentials object).
///
/// # Errors
/// Graphics other than VNC, network listens.
pub fn build_graphics(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let conf = &b.ctx.conf;
    let audio = b.def.devices.iter().find_map(|d| match d {
        Device::Audio(a) => Some(a.id),
        _ => None,
    });
    for d in &b.def.devices {
        let Device::Graphics(g) = d else { continue };
        if g.kind != Some(GraphicsType::Vnc) {
            return Err(BuildError::Unsupported(
                "graphics other than VNC".to_owned(),
            ));
        }
        let listen = g.listens.first();
        let mut v = match listen.map(|l| l.kind) {
            Some(ListenType::Socket) => {
                let path = listen
                    .and_then(|l| l.socket.clone())
                    .unwrap_or_else(|| format!("{}/vnc.sock", b.domain_dir()));
                format!("vnc=unix:{path}")
            }
            Some(ListenType::Network) => {
                let net = listen.and_then(|l| l.network.clone()).unwrap_or_default();
                let addr = b
                    .ctx
                    .network_addresses
                    .iter()
                    .find(|(n, _)| *n == net)
                    .map(|(_, a)| a.clone())
                    .ok_or_else(|| {
                        BuildError::Unsupported(format!("network '{net}' has no listen address"))
                    })?;
                vnc_host_port(&addr, g)
            }
            Some(ListenType::None) => "none".to_owned(),
            Some(ListenType::Address) | None => {
                let addr = listen.and_then(|l| l.address.clone());
                if addr.is_none() && conf.vnc_auto_unix_socket {
                    format!("vnc=unix:{}/vnc.sock", b.domain_dir())
                } else {
                    vnc_host_port(&addr.unwrap_or_else(|| conf.vnc_listen.clone()), g)
                }
            }
        };
        if let Some(ws) = g.websocket {
            // -1: the port allocator's first websocket port.
            let ws = if ws < 0 { 5700 } else { ws };
            v.push_str(&format!(",websocket={ws}"));
        }
        if let Some(sp) = g.share_policy {
            v.push_str(&format!(",share={}", sp.as_str()));
        }
        if g.auth.passwd.is_some() {
            v.push_str(",password=on");
        }
        if conf.vnc_tls {
            b.ctx.tls_objects(
                args,
                "vnc-tls-creds0",
                &conf.vnc_tls_x509_cert_dir,
                true,
                conf.vnc_tls_x509_verify,
                conf.vnc_tls_x509_secret_uuid.as_deref(),
            )?;
            v.push_str(",tls-creds=vnc-tls-creds0");
        }
        if conf.vnc_sasl {
            v.push_str(",sasl=on");
        }
        if g.power_control == Some(true) {
            v.push_str(",power-control=on");
        }
        if let Some(id) = g.audio_id.or(audio) {
            v.push_str(&format!(",audiodev=audio{id}"));
        }
        args.opt("-vnc", v);
        if let Some(k) = &g.keymap {
            args.opt("-k", k.clone());
        }
    }
    Ok(())
}

/// `HOST:DISPLAY`, IPv6 addresses in brackets; autoport takes the port
/// allocator's first port (5900).
fn vnc_host_port(addr: &str, g: &common::domain::device::Graphics) -> String {
    let port = if g.autoport || g.port < 5900 {
        5900
    } else {
        g.port
    };
    if addr.contains(':') {
        format!("[{addr}]:{}", port - 5900)
    } else {
        format!("{addr}:{}", port - 5900)
    }
}

/// Video devices.
///
/// # Errors
/// Unsupported models.
pub fn build_video(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let videos = b.def.devices.iter().filter_map(|d| match d {
        Device::Video(v) => Some(v.as_ref()),
        _ => None,
    });
    for (i, v) in videos.enumerate() {
        let primary = i == 0;
        let driver = match (v.kind, primary) {
            (VideoType::None, _) => continue,
            (VideoType::Cirrus, _) => "cirrus-vga",
            (VideoType::Vga, _) => "VGA",
            (VideoType::Vmvga, _) => "vmware-svga",
            (VideoType::Qxl, true) => "qxl-vga",
            (VideoType::Qxl, false) => "qxl",
            (VideoType::Virtio, true) => "virtio-vga",
            (VideoType::Virtio, false) => "virtio-gpu-pci",
            (VideoType::Bochs, _) => "bochs-display",
            (VideoType::Ramfb, _) => "ramfb",
            (other, _) => {
                return Err(BuildError::Unsupported(format!(
                    "video model '{}'",
                    other.as_str()
                )));
            }
        };
        let mut p = Props::new().s("driver", driver);
        if v.kind == VideoType::Virtio {
            p = p.extend(super::controllers::virtio_props(&v.virtio));
        }
        p = p.s("id", format!("video{i}"));
        match v.kind {
            VideoType::Qxl => {
                p = p
                    .u("max_outputs", u64::from(v.heads))
                    .u("ram_size", u64::from(v.ram) * 1024)
                    .u("vram_size", u64::from(v.vram) * 1024)
                    .u("vram64_size_mb", u64::from(v.vram64) / 1024)
                    .u("vgamem_mb", u64::from(v.vgamem) / 1024);
            }
            VideoType::Virtio => {
                p = p.u("max_outputs", u64::from(v.heads)).b_opt("blob", v.blob);
            }
            VideoType::Vga | VideoType::Vmvga if v.vram > 0 => {
                p = p.u("vgamem_mb", u64::from(v.vram) / 1024);
            }
            VideoType::Bochs if v.vram > 0 => {
                p = p.u("vgamem", u64::from(v.vram) * 1024);
            }
            _ => {}
        }
        if let Some((x, y)) = v.resolution {
            p = p.u("xres", u64::from(x)).u("yres", u64::from(y));
        }
        p = p.extend(b.address_props(&v.info));
        args.device(&p);
    }
    Ok(())
}
