//! virtqemud: domains on QEMU. Wiring only: the runtime is
//! `common::daemon`, the transport `service`, the driver `driver`.

mod caps;
mod domain_event;
mod domain_obj;
mod driver;
mod hooks;
mod monitor;
mod persist;
mod service;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::daemon::run("virtqemud", |ctx| async move {
        let qemud = service::Qemud::new(driver::QemuDriver::new(&ctx));
        qemud.close_events_on(ctx.stopping.clone());
        Ok(qemud)
    })
}
