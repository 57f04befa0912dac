//! virtqemud: domains on QEMU. Wiring only: the runtime is
//! `common::daemon`, the transport `service`, the driver `driver`.

use std::process::ExitCode;

use virtqemud::{driver, service};

fn main() -> ExitCode {
    common::daemon::run("virtqemud", |ctx| async move {
        let qemud = service::Qemud::new(driver::QemuDriver::new(&ctx).await);
        qemud.close_events_on(ctx.stopping.clone());
        Ok(qemud)
    })
}
