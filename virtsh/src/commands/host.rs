//! "Host and Hypervisor" commands: `version`, `hostname`, `uri`.

use proto::domain::v1::{GetHostnameRequest, GetVersionRequest};

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::ctl::Ctl;
use crate::error::Error;

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "version",
        Group::Host,
        "show version",
        "Display the system version information.",
        cmd_version,
    )
    .opts(&[OptDef::flag("daemon", "report daemon version too")]),
    CommandDef::new(
        "hostname",
        Group::Host,
        "print the hypervisor hostname",
        "",
        cmd_hostname,
    ),
    CommandDef::new(
        "uri",
        Group::Host,
        "print the hypervisor canonical URI",
        "Print the hypervisor canonical URI.",
        cmd_uri,
    ),
];

/// The library name shown by `version`.
const LIBRARY: &str = "virt";

/// virtsh's own version.
const OWN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Formats a version packed as `major * 1_000_000 + minor * 1_000 + micro`.
pub fn unpack_version(packed: u64) -> String {
    format!(
        "{}.{}.{}",
        packed / 1_000_000,
        (packed / 1_000) % 1_000,
        packed % 1_000
    )
}

/// `version [--daemon]`.
fn cmd_version<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let mut client = ctl.domain().await?;
        let reply = client.get_version(GetVersionRequest {}).await?.into_inner();
        let library = if reply.daemon_version.is_empty() {
            OWN_VERSION.to_owned()
        } else {
            reply.daemon_version.clone()
        };
        let hv_type = if reply.hypervisor_type.is_empty() {
            "QEMU"
        } else {
            reply.hypervisor_type.as_str()
        };
        let out = ctl.out();
        writeln!(out, "Compiled against library: {LIBRARY} {OWN_VERSION}")?;
        writeln!(out, "Using library: {LIBRARY} {library}")?;
        writeln!(out, "Using API: {hv_type} {library}")?;
        if reply.hypervisor_version_number == 0 {
            writeln!(out, "Cannot extract running {hv_type} hypervisor version")?;
        } else {
            writeln!(
                out,
                "Running hypervisor: {hv_type} {}",
                unpack_version(reply.hypervisor_version_number)
            )?;
        }
        if inv.flag("daemon") {
            let daemon = if reply.daemon_version_number != 0 {
                unpack_version(reply.daemon_version_number)
            } else if !reply.daemon_version.is_empty() {
                reply.daemon_version.clone()
            } else {
                return Err(Error::msg("failed to get the daemon version"));
            };
            writeln!(out, "Running against daemon: {daemon}")?;
        }
        Ok(())
    })
}

/// `hostname`.
fn cmd_hostname<'a>(ctl: &'a mut Ctl, _inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let mut client = ctl.domain().await?;
        let reply = client
            .get_hostname(GetHostnameRequest {})
            .await?
            .into_inner();
        writeln!(ctl.out(), "{}", reply.hostname)?;
        Ok(())
    })
}

/// `uri`: the canonical form of the connection's URI.
fn cmd_uri<'a>(ctl: &'a mut Ctl, _inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let uri = ctl.connection()?.uri().to_string();
        writeln!(ctl.out(), "{uri}")?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_versions() {
        assert_eq!(unpack_version(7_002_000), "7.2.0");
        assert_eq!(unpack_version(8_002_002), "8.2.2");
        assert_eq!(unpack_version(1_000), "0.1.0");
    }
}
