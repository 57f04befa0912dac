//! Connection URIs, as libvirt spells them.
//!
//! ```text
//! qemu[+transport]://[user@][host][:port]/(system|session)[?param=value&...]
//! ```
//!
//! | URI                                              | means                                 |
//! |--------------------------------------------------|---------------------------------------|
//! | `qemu:///system`, `qemu:///session`              | local daemons over their Unix sockets |
//! | `qemu+unix:///system?socket=/path/to/sock`       | everything over one given socket      |
//! | `qemu+tcp://host[:port]/system`                  | plain TCP to virtproxyd (port 16509)  |
//! | `qemu+tls://host[:port]/system?pkipath=DIR&no_verify=1` | TLS to virtproxyd (port 16514) |
//! | `qemu://host/system`                             | a host without a transport means TLS  |
//!
//! Parameters we act on: `socket=`, `pkipath=`, `no_verify=`. Others are
//! kept (and shown by [`ConnectUri`]'s `Display`) but ignored, as libvirt's
//! remote driver passes unknown parameters through.
//!
//! The default URI is chosen by [`default_uri`].

use std::fmt;
use std::path::PathBuf;

use common::paths::Mode;

/// The only driver the daemons implement.
pub const DRIVER: &str = "qemu";

/// libvirt's default port for the `tcp` transport.
pub const DEFAULT_TCP_PORT: u16 = 16509;

/// libvirt's default port for the `tls` transport.
pub const DEFAULT_TLS_PORT: u16 = 16514;

/// How the client reaches the daemons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Local Unix sockets.
    Unix,
    /// Plain TCP (to virtproxyd).
    Tcp,
    /// TLS over TCP (to virtproxyd).
    Tls,
}

impl Transport {
    /// The name used after `+` in a URI scheme.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    fn from_name(name: &str) -> Option<Transport> {
        match name {
            "unix" => Some(Transport::Unix),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a URI was rejected. The `Display` text is libvirt's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// Not a URI at all.
    #[error("internal error: Unable to parse URI {0}")]
    Unparsable(String),
    /// A scheme (driver) we do not serve, or no scheme.
    #[error("no connection driver available for {0}")]
    NoDriver(String),
    /// `qemu://` with a path other than `/system` or `/session`.
    #[error("internal error: unexpected QEMU URI path '{path}', try {suggest}")]
    BadPath {
        /// The path given.
        path: String,
        /// The URI suggested instead.
        suggest: String,
    },
    /// `qemu+X://` with an unknown transport `X`.
    #[error(
        "internal error: remote_open: transport in URL not recognised (should be tls|unix|tcp)"
    )]
    BadTransport(String),
    /// A hostname with the `unix` transport.
    #[error("invalid argument: using unix socket and remote server '{0}' is not supported.")]
    HostWithUnix(String),
    /// A known parameter with a value we cannot use.
    #[error("invalid argument: {0}")]
    BadParam(String),
}

/// A parsed connection URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectUri {
    /// The driver part of the scheme (always [`DRIVER`]).
    pub driver: String,
    /// The transport named in the scheme (`qemu+tls`), if any.
    pub explicit_transport: Option<Transport>,
    /// `user@` of the authority.
    pub user: Option<String>,
    /// The host of the authority (without brackets for IPv6).
    pub host: Option<String>,
    /// The port of the authority.
    pub port: Option<u16>,
    /// `/system` or `/session`.
    pub mode: Mode,
    /// Every query parameter, decoded, in order.
    pub params: Vec<(String, String)>,
    /// `socket=PATH`: every service over this one Unix socket.
    pub socket: Option<PathBuf>,
    /// `pkipath=DIR`: where the TLS client certificate, key and CA live.
    pub pkipath: Option<PathBuf>,
    /// `no_verify=1`: do not verify the server's certificate.
    pub no_verify: bool,
    /// The raw query string (after `?`), kept for display.
    raw_query: Option<String>,
}

impl ConnectUri {
    /// Parses a URI, rejecting what the daemons cannot serve with
    /// libvirt's messages.
    ///
    /// # Errors
    /// See [`UriError`].
    pub fn parse(uri: &str) -> Result<ConnectUri, UriError> {
        let unparsable = || UriError::Unparsable(uri.to_owned());
        if uri.is_empty() || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(unparsable());
        }
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Err(UriError::NoDriver(uri.to_owned()));
        };
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok {
            return Err(UriError::NoDriver(uri.to_owned()));
        }
        let (driver, transport_name) = match scheme.split_once('+') {
            Some((d, t)) => (d, Some(t)),
            None => (scheme, None),
        };
        if !driver.eq_ignore_ascii_case(DRIVER) {
            return Err(UriError::NoDriver(uri.to_owned()));
        }
        let explicit_transport = match transport_name {
            None => None,
            Some(t) => Some(
                Transport::from_name(&t.to_ascii_lowercase())
                    .ok_or_else(|| UriError::BadTransport(t.to_owned()))?,
            ),
        };

        // Drop a fragment, split off the query.
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let (hier, raw_query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q.to_owned())),
            None => (rest, None),
        };
        let (authority, path) = match hier.strip_prefix("//") {
            Some(after) => match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            },
            None => ("", hier),
        };
        let (user, host, port) = parse_authority(authority).ok_or_else(unparsable)?;
        let path = percent_decode(path).ok_or_else(unparsable)?;

        let mode = match path.trim_end_matches('/') {
            "/system" => Mode::System,
            "/session" => Mode::Session,
            _ => {
                return Err(UriError::BadPath {
                    path,
                    suggest: format!("{DRIVER}:///{}", Mode::detect().as_str()),
                });
            }
        };

        let mut params = Vec::new();
        if let Some(q) = &raw_query {
            for part in q.split(['&', ';']).filter(|p| !p.is_empty()) {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                let k = percent_decode(k).ok_or_else(unparsable)?;
                let v = percent_decode(v).ok_or_else(unparsable)?;
                params.push((k, v));
            }
        }

        let mut parsed = ConnectUri {
            driver: driver.to_ascii_lowercase(),
            explicit_transport,
            user,
            host,
            port,
            mode,
            params,
            socket: None,
            pkipath: None,
            no_verify: false,
            raw_query,
        };
        parsed.apply_params()?;
        if parsed.transport() == Transport::Unix
            && let Some(h) = &parsed.host
        {
            return Err(UriError::HostWithUnix(h.clone()));
        }
        Ok(parsed)
    }

    /// Interprets the parameters we know (names are case-insensitive, as in libvirt).
    fn apply_params(&mut self) -> Result<(), UriError> {
        for (k, v) in &self.params {
            match k.to_ascii_lowercase().as_str() {
                "socket" => {
                    if v.is_empty() {
                        return Err(UriError::BadParam(
                            "the 'socket' parameter needs a path".into(),
                        ));
                    }
                    self.socket = Some(PathBuf::from(v));
                }
                "pkipath" => {
                    if v.is_empty() {
                        return Err(UriError::BadParam(
                            "the 'pkipath' parameter needs a directory".into(),
                        ));
                    }
                    self.pkipath = Some(PathBuf::from(v));
                }
                "no_verify" => {
                    self.no_verify = match v.trim().parse::<i64>() {
                        Ok(n) => n != 0,
                        Err(_) => {
                            return Err(UriError::BadParam(format!(
                                "invalid value '{v}' for parameter 'no_verify'"
                            )));
                        }
                    };
                }
                _ => {}
            }
        }
        if self.socket.is_some() && self.transport() != Transport::Unix {
            return Err(UriError::BadParam(format!(
                "the 'socket' parameter is not supported with transport '{}'",
                self.transport()
            )));
        }
        Ok(())
    }

    /// The transport in effect: the explicit one, else `tls` when a host is
    /// named, else `unix` (as libvirt's remote driver decides).
    pub fn transport(&self) -> Transport {
        match (self.explicit_transport, &self.host) {
            (Some(t), _) => t,
            (None, Some(_)) => Transport::Tls,
            (None, None) => Transport::Unix,
        }
    }

    /// The host to dial for `tcp`/`tls` (`localhost` when none is given).
    pub fn remote_host(&self) -> &str {
        self.host.as_deref().unwrap_or("localhost")
    }

    /// The port to dial for `tcp`/`tls`, with libvirt's defaults.
    pub fn remote_port(&self) -> u16 {
        self.port.unwrap_or(match self.transport() {
            Transport::Tcp => DEFAULT_TCP_PORT,
            Transport::Tls | Transport::Unix => DEFAULT_TLS_PORT,
        })
    }
}

impl fmt::Display for ConnectUri {
    /// The canonical form, as `virsh uri` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.driver)?;
        if let Some(t) = self.explicit_transport {
            write!(f, "+{t}")?;
        }
        f.write_str("://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if let Some(h) = &self.host {
            if h.contains(':') {
                write!(f, "[{h}]")?;
            } else {
                f.write_str(h)?;
            }
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "/{}", self.mode.as_str())?;
        if let Some(q) = &self.raw_query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

/// Splits `[user@]host[:port]`; `None` when malformed.
fn parse_authority(auth: &str) -> Option<(Option<String>, Option<String>, Option<u16>)> {
    let (user, hostport) = match auth.rsplit_once('@') {
        Some((u, hp)) => (Some(percent_decode(u)?), hp),
        None => (None, auth),
    };
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        let (h, tail) = after.split_once(']')?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':')?),
        };
        (h.to_owned(), port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.contains(['/', '[', ']']) {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    let host = (!host.is_empty()).then_some(host);
    if host.is_none() && (user.is_some() || port.is_some()) {
        return None;
    }
    Some((user, host, port))
}

/// Decodes `%XX` escapes; `None` on a malformed escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Where the default URI came from, for debugging output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultSource {
    /// `VIRSH_DEFAULT_CONNECT_URI`.
    VirshEnv,
    /// `LIBVIRT_DEFAULT_URI`.
    LibvirtEnv,
    /// Chosen from the user and `VIRT_ROOT`.
    Builtin,
}

/// The URI used when none is given: `VIRSH_DEFAULT_CONNECT_URI`, else
/// `LIBVIRT_DEFAULT_URI`, else `qemu:///system` when running as root or
/// when `VIRT_ROOT` is set, else `qemu:///session`.
pub fn default_uri() -> (String, DefaultSource) {
    default_uri_from(
        |name| std::env::var(name).ok(),
        Mode::detect() == Mode::System,
    )
}

/// [`default_uri`] with the environment and the privilege given, for tests.
pub fn default_uri_from(
    env: impl Fn(&str) -> Option<String>,
    privileged: bool,
) -> (String, DefaultSource) {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(u) = non_empty("VIRSH_DEFAULT_CONNECT_URI") {
        return (u, DefaultSource::VirshEnv);
    }
    if let Some(u) = non_empty("LIBVIRT_DEFAULT_URI") {
        return (u, DefaultSource::LibvirtEnv);
    }
    let mode = if privileged {
        Mode::System
    } else {
        Mode::Session
    };
    (
        format!("{DRIVER}:///{}", mode.as_str()),
        DefaultSource::Builtin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> ConnectUri {
        match ConnectUri::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match ConnectUri::parse(s) {
            Ok(u) => panic!("{s} parsed as {u:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn local_system_and_session() {
        let u = ok("qemu:///system");
        assert_eq!(u.mode, Mode::System);
        assert_eq!(u.transport(), Transport::Unix);
        assert_eq!(u.host, None);
        assert_eq!(u.to_string(), "qemu:///system");
        let u = ok("qemu:///session");
        assert_eq!(u.mode, Mode::Session);
        assert_eq!(u.to_string(), "qemu:///session");
        assert_eq!(ok("qemu:///system/").mode, Mode::System);
    }

    #[test]
    fn unix_with_socket() {
        let u = ok("qemu+unix:///system?socket=/tmp/x/virtqemud-sock");
        assert_eq!(u.transport(), Transport::Unix);
        assert_eq!(u.socket, Some(PathBuf::from("/tmp/x/virtqemud-sock")));
        assert_eq!(
            u.to_string(),
            "qemu+unix:///system?socket=/tmp/x/virtqemud-sock"
        );
        let u = ok("qemu:///session?socket=/a%20b/s");
        assert_eq!(u.socket, Some(PathBuf::from("/a b/s")));
    }

    #[test]
    fn tls_with_params() {
        let u = ok("qemu+tls://host.example:1234/system?pkipath=/etc/pki/x&no_verify=1");
        assert_eq!(u.transport(), Transport::Tls);
        assert_eq!(u.host.as_deref(), Some("host.example"));
        assert_eq!(u.port, Some(1234));
        assert_eq!(u.remote_port(), 1234);
        assert_eq!(u.pkipath, Some(PathBuf::from("/etc/pki/x")));
        assert!(u.no_verify);
        assert_eq!(
            u.to_string(),
            "qemu+tls://host.example:1234/system?pkipath=/etc/pki/x&no_verify=1"
        );
        let u = ok("qemu+tls://h/system?no_verify=0");
        assert!(!u.no_verify);
        assert_eq!(u.remote_port(), DEFAULT_TLS_PORT);
    }

    #[test]
    fn tcp_default_port_user_and_ipv6() {
        let u = ok("qemu+tcp://root@10.0.0.1/session");
        assert_eq!(u.transport(), Transport::Tcp);
        assert_eq!(u.user.as_deref(), Some("root"));
        assert_eq!(u.remote_port(), DEFAULT_TCP_PORT);
        assert_eq!(u.mode, Mode::Session);
        let u = ok("qemu+tcp://[::1]:16000/system");
        assert_eq!(u.host.as_deref(), Some("::1"));
        assert_eq!(u.port, Some(16000));
        assert_eq!(u.to_string(), "qemu+tcp://[::1]:16000/system");
        let u = ok("qemu+tcp:///system");
        assert_eq!(u.remote_host(), "localhost");
    }

    #[test]
    fn host_without_transport_means_tls() {
        let u = ok("qemu://example.org/system");
        assert_eq!(u.transport(), Transport::Tls);
        assert_eq!(u.to_string(), "qemu://example.org/system");
    }

    #[test]
    fn unknown_params_are_kept() {
        let u = ok("qemu:///system?mode=direct");
        assert_eq!(u.params, vec![("mode".to_owned(), "direct".to_owned())]);
        assert_eq!(u.to_string(), "qemu:///system?mode=direct");
    }

    #[test]
    fn rejects_unknown_drivers() {
        assert_eq!(
            err("xen:///system"),
            "no connection driver available for xen:///system"
        );
        assert_eq!(
            err("test:///default"),
            "no connection driver available for test:///default"
        );
        assert_eq!(err("foo"), "no connection driver available for foo");
        assert_eq!(
            err("1qemu:///system"),
            "no connection driver available for 1qemu:///system"
        );
    }

    #[test]
    fn rejects_bad_paths() {
        let e = err("qemu:///foo");
        assert!(
            e.starts_with("internal error: unexpected QEMU URI path '/foo', try qemu:///"),
            "{e}"
        );
        assert!(err("qemu://").contains("unexpected QEMU URI path ''"));
        assert!(err("qemu+tcp://host/").contains("unexpected QEMU URI path '/'"));
    }

    #[test]
    fn rejects_bad_transports_and_syntax() {
        assert_eq!(
            err("qemu+ssh://host/system"),
            "internal error: remote_open: transport in URL not recognised (should be tls|unix|tcp)"
        );
        assert_eq!(
            err("qemu+tcp://host:notaport/system"),
            "internal error: Unable to parse URI qemu+tcp://host:notaport/system"
        );
        assert_eq!(
            err("qemu:///sys tem"),
            "internal error: Unable to parse URI qemu:///sys tem"
        );
        assert!(err("qemu+tcp://[::1/system").starts_with("internal error: Unable to parse URI"));
        assert!(err("").starts_with("internal error: Unable to parse URI"));
    }

    #[test]
    fn rejects_bad_params() {
        assert_eq!(
            err("qemu+unix://host/system"),
            "invalid argument: using unix socket and remote server 'host' is not supported."
        );
        assert!(err("qemu+tls://h/system?no_verify=yes").contains("no_verify"));
        assert!(err("qemu+tcp://h/system?socket=/x").contains("'socket'"));
        assert!(err("qemu:///system?socket=").contains("'socket'"));
    }

    #[test]
    fn default_uri_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            default_uri_from(
                env(&[
                    ("VIRSH_DEFAULT_CONNECT_URI", "qemu:///session"),
                    ("LIBVIRT_DEFAULT_URI", "qemu:///system")
                ]),
                true
            ),
            ("qemu:///session".to_owned(), DefaultSource::VirshEnv)
        );
        assert_eq!(
            default_uri_from(
                env(&[("LIBVIRT_DEFAULT_URI", "qemu+tcp://h/system")]),
                false
            )
            .0,
            "qemu+tcp://h/system"
        );
        assert_eq!(
            default_uri_from(env(&[("VIRSH_DEFAULT_CONNECT_URI", "")]), true).0,
            "qemu:///system"
        );
        assert_eq!(default_uri_from(env(&[]), false).0, "qemu:///session");
    }
}
