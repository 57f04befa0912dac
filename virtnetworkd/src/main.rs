//! virtnetworkd: wiring only. The runtime is `common::daemon`, the
//! transport `service`, the driver `driver`.
//!
//! Started under the name `virt_leaseshelper` (a symlink dnsmasq runs as
//! its `--dhcp-script`), the binary is the DHCP lease helper instead.

use std::process::ExitCode;

use virtnetworkd::{driver, leases, service};

fn main() -> ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    if std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        == Some(leases::HELPER_NAME)
    {
        let rest: Vec<String> = args.collect();
        return ExitCode::from(u8::try_from(leases::helper_main(&rest)).unwrap_or(1));
    }
    common::daemon::run("virtnetworkd", |ctx| async move {
        let networkd = service::Networkd::new(driver::NetworkDriver::new(&ctx).await);
        networkd.close_events_on(ctx.stopping.clone());
        Ok(networkd)
    })
}
