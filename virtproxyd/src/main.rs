//! virtproxyd: the front door for remote and local legacy clients.
//!
//! It serves the same three sockets as every daemon (read-write, read-only,
//! admin) plus, with `--listen` or socket activation, TLS (16514) and plain
//! TCP (16509) (see `common::daemon::remote`). Every call of the domain,
//! storage and network services is forwarded unchanged to the daemon that
//! owns it ([`forward`]); the admin service is the proxy's own. Access is
//! checked here (socket kind, `virt-readonly`, `tls_allowed_dn_list`, the
//! per-client call limit) and again by each daemon on the socket the proxy
//! uses for that client. Mutating calls are audited ([`audit`]).

mod audit;
mod forward;

use std::process::ExitCode;

use tonic::service::Routes;

/// The proxy daemon.
#[derive(Clone, Debug)]
struct Proxy {
    forwarder: forward::Forwarder,
}

impl common::daemon::Daemon for Proxy {
    fn routes(&self) -> Routes {
        Routes::from(
            Routes::default()
                .into_axum_router()
                .fallback_service(self.forwarder.clone()),
        )
    }

    fn service_names(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

fn main() -> ExitCode {
    let remote: Box<dyn common::daemon::Remote> =
        Box::new(common::daemon::remote::TlsRemote::default());
    common::daemon::run_with(
        "virtproxyd",
        |ctx| async move {
            let audit_file = (ctx.config.audit_level >= 1)
                .then(|| ctx.paths.log_dir.join("virtproxyd-audit.log"));
            let audit = audit::Audit::open(audit_file.clone(), ctx.config.audit_logging != 0)
                .map_err(|e| {
                    format!(
                        "Cannot open audit log '{}': {e}",
                        audit_file.unwrap_or_default().display()
                    )
                })?;
            let max_message = usize::try_from(ctx.config.max_message_size).unwrap_or(usize::MAX);
            Ok(Proxy {
                forwarder: forward::Forwarder::new(ctx.paths, ctx.clients, max_message, audit),
            })
        },
        Some(remote),
    )
}
