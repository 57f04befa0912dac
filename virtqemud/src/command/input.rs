//! Input devices (PS/2 ones are built into the machine).

use common::domain::Device;
use common::domain::device::input::{InputBus, InputType};

use super::{Args, BuildError, Builder, Props, Result};

/// USB and virtio inputs.
///
/// # Errors
/// Unsupported buses.
pub fn build(b: &Builder<'_>, args: &mut Args) -> Result<()> {
    let inputs = b.def.devices.iter().filter_map(|d| match d {
        Device::Input(i) => Some(i),
        _ => None,
    });
    for (i, inp) in inputs.enumerate() {
        let driver = match (inp.bus, inp.kind) {
            (InputBus::Ps2, _) => continue,
            (InputBus::Usb, InputType::Mouse) => "usb-mouse",
            (InputBus::Usb, InputType::Tablet) => "usb-tablet",
            (InputBus::Usb, InputType::Keyboard) => "usb-kbd",
            (InputBus::Virtio, InputType::Mouse) => "virtio-mouse-pci",
            (InputBus::Virtio, InputType::Tablet) => "virtio-tablet-pci",
            (InputBus::Virtio, InputType::Keyboard) => "virtio-keyboard-pci",
            _ => {
                return Err(BuildError::Unsupported(format!(
                    "input '{}' on bus '{}'",
                    inp.kind.as_str(),
                    inp.bus.as_str()
                )));
            }
        };
        let mut p = Props::new().s("driver", driver);
        if inp.bus == InputBus::Virtio {
            p = p.extend(super::controllers::virtio_props(&inp.virtio));
        }
        p = p
            .s("id", format!("input{i}"))
            .extend(if inp.bus == InputBus::Usb {
                b.usb_props(&inp.info)
            } else {
                b.address_props(&inp.info)
            });
        args.device(&p);
    }
    Ok(())
}
