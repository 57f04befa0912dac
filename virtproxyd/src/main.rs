//! virtproxyd: the front door for remote and legacy clients. In this first
//! cut it runs on the shared runtime with its admin service; forwarding
//! calls to the owning daemons comes with the proxy work.

use std::process::ExitCode;

use tonic::service::Routes;

/// The proxy daemon.
#[derive(Clone, Copy, Debug)]
struct Proxy;

impl common::daemon::Daemon for Proxy {
    fn routes(&self) -> Routes {
        Routes::default()
    }

    fn service_names(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

fn main() -> ExitCode {
    common::daemon::run("virtproxyd", |_ctx| async move { Ok(Proxy) })
}
