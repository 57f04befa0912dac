//! Character devices: serial ports, consoles and channels, each a
//! `-chardev` backend plus its frontend.

use common::domain::Device;
use common::domain::device::Chardev;
use common::domain::device::address::Address;
use common::domain::device::chardev::{ChrBackend, TcpProtocol};
use common::domain::device::chr::{ChrTarget, ConsoleTargetType, SerialTargetModel};

use super::{Args, BuildError, Builder, Props, Result, qemu_escape};

/// Serials, then channels, then consoles.
///
/// # Errors
/// Unsupported backends or targets.
pub fn build(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let mut fdset = 0;
    let of = |pick: fn(&Device) -> Option<&Chardev>| -> Vec<&Chardev> {
        b.def.devices.iter().filter_map(pick).collect()
    };
    let serials = of(|d| match d {
        Device::Serial(c) => Some(c.as_ref()),
        _ => None,
    });
    let channels = of(|d| match d {
        Device::Channel(c) => Some(c.as_ref()),
        _ => None,
    });
    let consoles = of(|d| match d {
        Device::Console(c) => Some(c.as_ref()),
        _ => None,
    });
    for (i, s) in serials.iter().enumerate() {
        let alias = format!("serial{i}");
        chardev(b, args, &s.source.backend, &alias, &mut fdset)?;
        let (model, port) = match &s.target {
            ChrTarget::Serial { model, port, .. } => (*model, port.unwrap_or(0)),
            _ => (None, 0),
        };
        let driver = match model {
            None | Some(SerialTargetModel::IsaSerial) => "isa-serial",
            Some(SerialTargetModel::UsbSerial) => "usb-serial",
            Some(SerialTargetModel::PciSerial) => "pci-serial",
            Some(other) => {
                return Err(BuildError::Unsupported(format!(
                    "serial model '{}'",
                    other.as_str()
                )));
            }
        };
        let mut p = Props::new()
            .s("driver", driver)
            .s("chardev", format!("char{alias}"))
            .s("id", alias);
        if driver == "isa-serial" {
            p = p.u("index", u64::from(port));
        } else if driver == "usb-serial" {
            p = p.extend(b.usb_props(&s.info));
        } else {
            p = p.extend(b.address_props(&s.info));
        }
        args.device(&p);
    }
    for (i, c) in channels.iter().enumerate() {
        let alias = format!("channel{i}");
        match &c.target {
            ChrTarget::Guestfwd { address, port } => {
                chardev(b, args, &c.source.backend, &alias, &mut fdset)?;
                let fwd =
                    Props::new().s("str", format!("tcp:{address}:{port}-chardev:char{alias}"));
                args.opt(
                    "-netdev",
                    Props::new()
                        .s("type", "user")
                        .arr("guestfwd", vec![fwd])
                        .s("id", alias)
                        .to_json(),
                );
            }
            ChrTarget::Virtio { name, .. } => {
                let backend = match (&c.source.backend, name) {
                    (
                        ChrBackend::Unix {
                            listen: true,
                            path: None,
                            reconnect,
                        },
                        Some(n),
                    ) => ChrBackend::Unix {
                        listen: true,
                        path: Some(format!(
                            "{}/{}.{n}",
                            b.ctx.channel_dir,
                            b.domain_dir().rsplit('/').next().unwrap_or_default()
                        )),
                        reconnect: *reconnect,
                    },
                    (other, _) => other.clone(),
                };
                chardev(b, args, &backend, &alias, &mut fdset)?;
                let p = virtserial_props(c, "virtserialport", &alias).s_opt("name", name.clone());
                args.device(&p);
            }
            _ => {
                return Err(BuildError::Unsupported("channel target type".to_owned()));
            }
        }
    }
    for (i, c) in consoles.iter().enumerate() {
        let ChrTarget::Console { kind, .. } = &c.target else {
            continue;
        };
        match kind {
            Some(ConsoleTargetType::Virtio) => {
                let alias = format!("console{i}");
                chardev(b, args, &c.source.backend, &alias, &mut fdset)?;
                args.device(&virtserial_props(c, "virtconsole", &alias));
            }
            // The first serial console is the serial port itself.
            Some(ConsoleTargetType::Serial) | None if i == 0 => {}
            _ => {
                return Err(BuildError::Unsupported("console target type".to_owned()));
            }
        }
    }
    Ok(())
}

fn virtserial_props(c: &Chardev, driver: &str, alias: &str) -> Props {
    let mut p = Props::new().s("driver", driver);
    if let Some(Address::VirtioSerial {
        controller,
        bus,
        port,
    }) = &c.info.address
    {
        p = p
            .s("bus", format!("virtio-serial{controller}.{bus}"))
            .u("nr", u64::from(*port));
    }
    p.s("chardev", format!("char{alias}")).s("id", alias)
}

/// Emits `-chardev` (and `-add-fd` for files) for `alias`.
///
/// # Errors
/// Backends the builder does not support.
pub fn chardev(
    b: &Builder<'_>,
    args: &mut Args,
    backend: &ChrBackend,
    alias: &str,
    fdset: &mut i32,
) -> Result<()> {
    let id = format!("char{alias}");
    let v = match backend {
        ChrBackend::Null => format!("null,id={id}"),
        ChrBackend::Vc => format!("vc,id={id}"),
        ChrBackend::Pty { .. } => format!("pty,id={id}"),
        ChrBackend::Stdio => format!("stdio,id={id}"),
        ChrBackend::Dev { path } => format!(
            "tty,id={id},path={}",
            qemu_escape(path.as_deref().unwrap_or_default())
        ),
        ChrBackend::Pipe { path } => format!(
            "pipe,id={id},path={}",
            qemu_escape(path.as_deref().unwrap_or_default())
        ),
        ChrBackend::File { path, append } => {
            let set = *fdset;
            let fd = b.ctx.fds.add_fd_first + set;
            *fdset += 1;
            args.fd(super::FdRequest::ChardevFile {
                fd,
                path: path.clone().unwrap_or_default(),
                append: append.unwrap_or(false),
            });
            args.opt(
                "-add-fd",
                format!("set={set},fd={fd},opaque={alias}-source"),
            );
            // libvirt opens the file itself (honouring `append=`); QEMU
            // always appends to the descriptor it is given.
            format!("file,id={id},path=/dev/fdset/{set},append=on")
        }
        ChrBackend::Udp {
            bind_host,
            bind_service,
            connect_host,
            connect_service,
        } => {
            let mut s = format!(
                "udp,id={id},host={},port={}",
                connect_host.as_deref().unwrap_or_default(),
                connect_service.as_deref().unwrap_or_default()
            );
            if let Some(h) = bind_host {
                s.push_str(&format!(",localaddr={h}"));
            }
            if let Some(p) = bind_service {
                s.push_str(&format!(",localport={p}"));
            }
            s
        }
        ChrBackend::Tcp {
            listen,
            host,
            service,
            protocol,
            tls,
            ..
        } => {
            let mut s = format!(
                "socket,id={id},host={},port={}",
                host.as_deref().unwrap_or_default(),
                service.as_deref().unwrap_or_default()
            );
            if *protocol == TcpProtocol::Telnet {
                s.push_str(",telnet=on");
            }
            if *listen {
                s.push_str(",server=on,wait=off");
            }
            let conf = &b.ctx.conf;
            if tls.unwrap_or(conf.chardev_tls) {
                let obj = format!("obj{id}_tls0");
                b.ctx.tls_objects(
                    args,
                    &obj,
                    &conf.chardev_tls_x509_cert_dir,
                    *listen,
                    conf.chardev_tls_x509_verify,
                    conf.chardev_tls_x509_secret_uuid.as_deref(),
                )?;
                s.push_str(&format!(",tls-creds={obj}"));
            }
            s
        }
        ChrBackend::Unix { listen, path, .. } => {
            // A socket without a path is one libvirt creates and listens on.
            if *listen || path.is_none() {
                args.fd(super::FdRequest::ChardevListen {
                    fd: b.ctx.fds.chardev_listen,
                    path: path.clone(),
                });
                format!(
                    "socket,id={id},fd={},server=on,wait=off",
                    b.ctx.fds.chardev_listen
                )
            } else {
                format!(
                    "socket,id={id},path={}",
                    qemu_escape(path.as_deref().unwrap_or_default())
                )
            }
        }
        _ => {
            return Err(BuildError::Unsupported(
                "character device backend".to_owned(),
            ));
        }
    };
    args.opt("-chardev", v);
    Ok(())
}
