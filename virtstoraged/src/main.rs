//! virtstoraged: storage pools and volumes. Wiring only: the runtime is
//! `common::daemon`, the transport `service`, the driver `driver`.

use std::process::ExitCode;

use virtstoraged::{driver, service};

fn main() -> ExitCode {
    common::daemon::run("virtstoraged", |ctx| async move {
        let storaged = service::Storaged::new(driver::StorageDriver::new(&ctx).await);
        storaged.close_events_on(ctx.stopping.clone());
        Ok(storaged)
    })
}
