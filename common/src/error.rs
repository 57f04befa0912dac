//! Errors that cross the API boundary: a libvirt-style code and domain plus
//! a message, mapped to `tonic::Status` in exactly one place
//! ([`VirtError::to_status`]) and back ([`VirtError::from_status`]).
//!
//! The code and domain travel encoded as `virt.common.v1.ErrorDetail` in the
//! status details, so clients get libvirt's stable numbers while the gRPC
//! code stays meaningful on its own (NotFound, InvalidArgument,
//! FailedPrecondition, Unimplemented, ...).

use std::fmt;

use prost::Message;
use proto::common::v1::ErrorDetail;
use tonic::{Code, Status};

macro_rules! numbered_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $num:expr => $text:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var,)* }

        impl $name {
            /// libvirt's number for this value.
            pub fn number(self) -> i32 {
                match self { $($name::$var => $num,)* }
            }
            /// libvirt's name for this value, without prefix.
            pub fn name(self) -> &'static str {
                match self { $($name::$var => $text,)* }
            }
            /// The value with libvirt's number `n`, if we know it.
            pub fn from_number(n: i32) -> Option<Self> {
                match n { $($num => Some($name::$var),)* _ => None }
            }
        }
    };
}

numbered_enum! {
    /// libvirt's `virErrorNumber` (the ones our daemons produce).
    ErrorCode {
        /// VIR_ERR_INTERNAL_ERROR
        InternalError = 1 => "INTERNAL_ERROR",
        /// VIR_ERR_NO_SUPPORT
        NoSupport = 3 => "NO_SUPPORT",
        /// VIR_ERR_NO_CONNECT
        NoConnect = 5 => "NO_CONNECT",
        /// VIR_ERR_INVALID_ARG
        InvalidArg = 8 => "INVALID_ARG",
        /// VIR_ERR_OPERATION_FAILED
        OperationFailed = 9 => "OPERATION_FAILED",
        /// VIR_ERR_XML_ERROR
        XmlError = 27 => "XML_ERROR",
        /// VIR_ERR_DOM_EXIST
        DomExist = 28 => "DOM_EXIST",
        /// VIR_ERR_OPERATION_DENIED
        OperationDenied = 29 => "OPERATION_DENIED",
        /// VIR_ERR_OPEN_FAILED
        OpenFailed = 30 => "OPEN_FAILED",
        /// VIR_ERR_READ_FAILED
        ReadFailed = 31 => "READ_FAILED",
        /// VIR_ERR_PARSE_FAILED
        ParseFailed = 32 => "PARSE_FAILED",
        /// VIR_ERR_CONF_SYNTAX
        ConfSyntax = 33 => "CONF_SYNTAX",
        /// VIR_ERR_WRITE_FAILED
        WriteFailed = 34 => "WRITE_FAILED",
        /// VIR_ERR_XML_DETAIL
        XmlDetail = 35 => "XML_DETAIL",
        /// VIR_ERR_NETWORK_EXIST
        NetworkExist = 37 => "NETWORK_EXIST",
        /// VIR_ERR_SYSTEM_ERROR
        SystemError = 38 => "SYSTEM_ERROR",
        /// VIR_ERR_RPC
        Rpc = 39 => "RPC",
        /// VIR_ERR_NO_DOMAIN
        NoDomain = 42 => "NO_DOMAIN",
        /// VIR_ERR_NO_NETWORK
        NoNetwork = 43 => "NO_NETWORK",
        /// VIR_ERR_INVALID_MAC
        InvalidMac = 44 => "INVALID_MAC",
        /// VIR_ERR_AUTH_FAILED
        AuthFailed = 45 => "AUTH_FAILED",
        /// VIR_ERR_NO_STORAGE_POOL
        NoStoragePool = 49 => "NO_STORAGE_POOL",
        /// VIR_ERR_NO_STORAGE_VOL
        NoStorageVol = 50 => "NO_STORAGE_VOL",
        /// VIR_ERR_OPERATION_INVALID
        OperationInvalid = 55 => "OPERATION_INVALID",
        /// VIR_ERR_CONFIG_UNSUPPORTED
        ConfigUnsupported = 67 => "CONFIG_UNSUPPORTED",
        /// VIR_ERR_OPERATION_TIMEOUT
        OperationTimeout = 68 => "OPERATION_TIMEOUT",
        /// VIR_ERR_ARGUMENT_UNSUPPORTED
        ArgumentUnsupported = 74 => "ARGUMENT_UNSUPPORTED",
        /// VIR_ERR_OPERATION_ABORTED
        OperationAborted = 78 => "OPERATION_ABORTED",
        /// VIR_ERR_OVERFLOW
        Overflow = 82 => "OVERFLOW",
        /// VIR_ERR_OPERATION_UNSUPPORTED
        OperationUnsupported = 84 => "OPERATION_UNSUPPORTED",
        /// VIR_ERR_AGENT_UNRESPONSIVE
        AgentUnresponsive = 86 => "AGENT_UNRESPONSIVE",
        /// VIR_ERR_RESOURCE_BUSY
        ResourceBusy = 87 => "RESOURCE_BUSY",
        /// VIR_ERR_ACCESS_DENIED
        AccessDenied = 88 => "ACCESS_DENIED",
        /// VIR_ERR_STORAGE_VOL_EXIST
        StorageVolExist = 90 => "STORAGE_VOL_EXIST",
        /// VIR_ERR_XML_INVALID_SCHEMA
        XmlInvalidSchema = 92 => "XML_INVALID_SCHEMA",
        /// VIR_ERR_NO_SERVER
        NoServer = 95 => "NO_SERVER",
        /// VIR_ERR_NO_CLIENT
        NoClient = 96 => "NO_CLIENT",
        /// VIR_ERR_DEVICE_MISSING
        DeviceMissing = 99 => "DEVICE_MISSING",
        /// VIR_ERR_INVALID_NETWORK_PORT
        InvalidNetworkPort = 105 => "INVALID_NETWORK_PORT",
        /// VIR_ERR_NETWORK_PORT_EXIST
        NetworkPortExist = 106 => "NETWORK_PORT_EXIST",
        /// VIR_ERR_NO_NETWORK_PORT
        NoNetworkPort = 107 => "NO_NETWORK_PORT",
        /// VIR_ERR_MULTIPLE_DOMAINS
        MultipleDomains = 110 => "MULTIPLE_DOMAINS",
    }
}

numbered_enum! {
    /// libvirt's `virErrorDomain`: which part of the system raised the error.
    ErrorDomain {
        /// VIR_FROM_NONE
        None = 0 => "NONE",
        /// VIR_FROM_XML
        Xml = 5 => "XML",
        /// VIR_FROM_DOM
        Dom = 6 => "DOM",
        /// VIR_FROM_RPC
        Rpc = 7 => "RPC",
        /// VIR_FROM_CONF
        Conf = 9 => "CONF",
        /// VIR_FROM_QEMU
        Qemu = 10 => "QEMU",
        /// VIR_FROM_REMOTE
        Remote = 13 => "REMOTE",
        /// VIR_FROM_STORAGE
        Storage = 18 => "STORAGE",
        /// VIR_FROM_NETWORK
        Network = 19 => "NETWORK",
        /// VIR_FROM_DOMAIN
        Domain = 20 => "DOMAIN",
        /// VIR_FROM_SECURITY
        Security = 24 => "SECURITY",
        /// VIR_FROM_STREAMS
        Streams = 38 => "STREAMS",
        /// VIR_FROM_EVENT
        Event = 40 => "EVENT",
        /// VIR_FROM_URI
        Uri = 45 => "URI",
        /// VIR_FROM_AUTH
        Auth = 46 => "AUTH",
        /// VIR_FROM_DEVICE
        Device = 49 => "DEVICE",
        /// VIR_FROM_ACCESS
        Access = 55 => "ACCESS",
        /// VIR_FROM_SYSTEMD
        Systemd = 56 => "SYSTEMD",
        /// VIR_FROM_FIREWALL
        Firewall = 59 => "FIREWALL",
        /// VIR_FROM_ADMIN
        Admin = 62 => "ADMIN",
        /// VIR_FROM_LOGGING
        Logging = 63 => "LOGGING",
    }
}

impl ErrorCode {
    /// The gRPC code a status with this libvirt code carries.
    pub fn grpc_code(self) -> Code {
        use ErrorCode::*;
        match self {
            NoDomain | NoNetwork | NoStoragePool | NoStorageVol | NoNetworkPort | NoServer
            | NoClient | DeviceMissing => Code::NotFound,
            InvalidArg | XmlError | XmlDetail | XmlInvalidSchema | ParseFailed | ConfSyntax
            | InvalidMac | InvalidNetworkPort | MultipleDomains => Code::InvalidArgument,
            DomExist | NetworkExist | StorageVolExist | NetworkPortExist => Code::AlreadyExists,
            OperationInvalid | ResourceBusy => Code::FailedPrecondition,
            NoSupport | OperationUnsupported | ArgumentUnsupported | ConfigUnsupported => {
                Code::Unimplemented
            }
            OperationDenied | AccessDenied => Code::PermissionDenied,
            AuthFailed => Code::Unauthenticated,
            OperationTimeout | AgentUnresponsive => Code::DeadlineExceeded,
            OperationAborted => Code::Aborted,
            Overflow => Code::OutOfRange,
            NoConnect => Code::Unavailable,
            InternalError | OperationFailed | OpenFailed | ReadFailed | WriteFailed
            | SystemError | Rpc => Code::Internal,
        }
    }

    /// The libvirt code that best describes a bare gRPC code (a status that
    /// came without our detail, e.g. from tonic itself).
    pub fn from_grpc_code(code: Code) -> ErrorCode {
        match code {
            Code::NotFound => ErrorCode::OperationFailed,
            Code::InvalidArgument => ErrorCode::InvalidArg,
            Code::AlreadyExists => ErrorCode::OperationFailed,
            Code::FailedPrecondition => ErrorCode::OperationInvalid,
            Code::Unimplemented => ErrorCode::NoSupport,
            Code::PermissionDenied => ErrorCode::OperationDenied,
            Code::Unauthenticated => ErrorCode::AuthFailed,
            Code::DeadlineExceeded => ErrorCode::OperationTimeout,
            Code::Aborted | Code::Cancelled => ErrorCode::OperationAborted,
            Code::Unavailable => ErrorCode::NoConnect,
            Code::ResourceExhausted => ErrorCode::ResourceBusy,
            Code::OutOfRange => ErrorCode::Overflow,
            _ => ErrorCode::InternalError,
        }
    }
}

/// An error as a client sees it: libvirt code, domain and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtError {
    /// What went wrong.
    pub code: ErrorCode,
    /// Which part of the system raised it.
    pub domain: ErrorDomain,
    /// A sentence for people, naming the field and value involved.
    pub message: String,
    /// The gRPC code, when it differs from the one `code` implies (e.g.
    /// RESOURCE_EXHAUSTED for limits).
    pub grpc_code: Option<Code>,
}

/// Shorthand for results at the API boundary.
pub type Result<T, E = VirtError> = std::result::Result<T, E>;

impl VirtError {
    /// A new error.
    pub fn new(code: ErrorCode, domain: ErrorDomain, message: impl Into<String>) -> VirtError {
        VirtError {
            code,
            domain,
            message: message.into(),
            grpc_code: None,
        }
    }

    /// The error of an RPC whose body a later issue fills:
    /// UNIMPLEMENTED naming the method.
    pub fn unimplemented(method: &str) -> VirtError {
        VirtError::new(
            ErrorCode::NoSupport,
            ErrorDomain::Rpc,
            proto::unimplemented_message(method),
        )
    }

    /// Same error, carried with another gRPC code.
    pub fn with_grpc_code(mut self, code: Code) -> VirtError {
        self.grpc_code = Some(code);
        self
    }

    /// The one mapping to a gRPC status, with the detail encoded. A
    /// message longer than [`MAX_STATUS_MESSAGE`] is cut there (see it).
    pub fn to_status(&self) -> Status {
        let detail = ErrorDetail {
            code: self.code.number(),
            code_name: self.code.name().to_owned(),
            domain: self.domain.number(),
            domain_name: self.domain.name().to_owned(),
        };
        Status::with_details(
            self.grpc_code.unwrap_or_else(|| self.code.grpc_code()),
            clip_message(&self.message),
            detail.encode_to_vec().into(),
        )
    }

    /// Decodes a status (from any daemon, or from tonic itself) back into an error.
    pub fn from_status(status: &Status) -> VirtError {
        let detail = ErrorDetail::decode(status.details()).ok();
        let code = detail
            .as_ref()
            .and_then(|d| ErrorCode::from_number(d.code))
            .unwrap_or_else(|| ErrorCode::from_grpc_code(status.code()));
        let domain = detail
            .as_ref()
            .and_then(|d| ErrorDomain::from_number(d.domain))
            .unwrap_or(ErrorDomain::Rpc);
        VirtError {
            code,
            domain,
            message: status.message().to_owned(),
            grpc_code: Some(status.code()),
        }
    }
}

impl fmt::Display for VirtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VirtError {}

impl From<VirtError> for Status {
    fn from(e: VirtError) -> Status {
        e.to_status()
    }
}

/// The longest status message, in bytes. The message travels in an HTTP/2
/// header (`grpc-message`, percent-encoded: up to three times longer), and
/// clients drop the whole connection when a reply's headers pass their
/// limit (16 KiB by default in hyper, tonic's HTTP/2 layer). A message that
/// quotes a huge request value (a 1 MiB name) is cut here instead.
pub const MAX_STATUS_MESSAGE: usize = 2048;

/// `message`, cut to at most [`MAX_STATUS_MESSAGE`] bytes on a character
/// boundary, saying so.
fn clip_message(message: &str) -> String {
    if message.len() <= MAX_STATUS_MESSAGE {
        return message.to_owned();
    }
    let note = format!("... (cut: {} bytes in all)", message.len());
    let mut end = MAX_STATUS_MESSAGE - note.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &message[..end])
}

/// Decodes the libvirt error detail of a status, if it carries one.
pub fn status_detail(status: &Status) -> Option<ErrorDetail> {
    if status.details().is_empty() {
        return None;
    }
    ErrorDetail::decode(status.details()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_keeps_code_and_domain() {
        let e = VirtError::new(
            ErrorCode::NoDomain,
            ErrorDomain::Qemu,
            "Domain not found: no domain with matching name 'x'",
        );
        let s = e.to_status();
        assert_eq!(s.code(), Code::NotFound);
        let back = VirtError::from_status(&s);
        assert_eq!(back.code, ErrorCode::NoDomain);
        assert_eq!(back.domain, ErrorDomain::Qemu);
        assert_eq!(back.message, e.message);
        let d = status_detail(&s).expect("detail present");
        assert_eq!(
            (d.code, d.code_name.as_str(), d.domain),
            (42, "NO_DOMAIN", 10)
        );
    }

    #[test]
    fn a_huge_message_is_cut_on_a_character_boundary() {
        let long = format!("no volume named '{}'", "é".repeat(500_000));
        let s = VirtError::new(ErrorCode::NoStorageVol, ErrorDomain::Storage, long).to_status();
        assert!(
            s.message().len() <= MAX_STATUS_MESSAGE,
            "{}",
            s.message().len()
        );
        assert!(s.message().starts_with("no volume named 'é"));
        assert!(
            s.message().ends_with("(cut: 1000018 bytes in all)"),
            "{}",
            s.message()
        );
        let short = VirtError::new(ErrorCode::InvalidArg, ErrorDomain::Rpc, "short").to_status();
        assert_eq!(short.message(), "short");
    }

    #[test]
    fn bare_status_maps_to_a_code() {
        let s = Status::permission_denied("no");
        assert_eq!(VirtError::from_status(&s).code, ErrorCode::OperationDenied);
    }

    #[test]
    fn unimplemented_names_the_method() {
        let s = VirtError::unimplemented("virt.domain.v1.DomainService/Start").to_status();
        assert_eq!(s.code(), Code::Unimplemented);
        assert!(s.message().contains("DomainService/Start"));
    }

    #[test]
    fn numbers_round_trip() {
        for n in 0..120 {
            if let Some(c) = ErrorCode::from_number(n) {
                assert_eq!(c.number(), n);
            }
        }
    }
}
