//! virtnetworkd: the gRPC service on the shared daemon runtime. Wiring only.

mod service;

use std::process::ExitCode;

fn main() -> ExitCode {
    common::daemon::run("virtnetworkd", |_ctx| async move { Ok(service::Daemon) })
}
