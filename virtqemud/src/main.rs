//! virtqemud: domains on QEMU. Wiring only: the runtime is
//! `common::daemon`, the transport `service`, the driver `driver`.

mod caps;
mod driver;
mod monitor;
mod service;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::daemon::run("virtqemud", |ctx| async move {
        Ok(service::Qemud::new(driver::QemuDriver::new(&ctx)))
    })
}
