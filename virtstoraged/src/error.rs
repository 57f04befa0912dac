//! The driver's errors: libvirt's codes and messages (error domain
//! STORAGE), built in one place so that messages keep libvirt's wording.

use std::fmt::Display;
use std::io;

use common::{ErrorCode, ErrorDomain, VirtError};

fn err(code: ErrorCode, msg: String) -> VirtError {
    VirtError::new(code, ErrorDomain::Storage, msg)
}

/// SYSTEM_ERROR: `what: OS reason`. When the OS reason is about what the
/// request named or asked for, the gRPC code says so instead of INTERNAL:
/// a missing file or directory is NOT_FOUND, one in the way ALREADY_EXISTS,
/// one of the wrong kind or busy FAILED_PRECONDITION, a full file system
/// (or quota) RESOURCE_EXHAUSTED, a file past the largest size
/// OUT_OF_RANGE.
pub fn sys(what: impl Display, e: &io::Error) -> VirtError {
    let reason = e.to_string();
    let reason = reason
        .find(" (os error")
        .map_or(reason.as_str(), |i| &reason[..i])
        .to_owned();
    let e2 = err(ErrorCode::SystemError, format!("{what}: {reason}"));
    use io::ErrorKind as K;
    let code = match e.kind() {
        K::NotFound => tonic::Code::NotFound,
        K::AlreadyExists => tonic::Code::AlreadyExists,
        K::NotADirectory
        | K::IsADirectory
        | K::DirectoryNotEmpty
        | K::ResourceBusy
        | K::ExecutableFileBusy => tonic::Code::FailedPrecondition,
        K::StorageFull | K::QuotaExceeded => tonic::Code::ResourceExhausted,
        K::FileTooLarge => tonic::Code::OutOfRange,
        _ => return e2,
    };
    e2.with_grpc_code(code)
}

/// INVALID_ARG.
pub fn invalid_arg(msg: impl Display) -> VirtError {
    err(ErrorCode::InvalidArg, format!("invalid argument: {msg}"))
}

/// INVALID_ARG: `field`'s `value` is above `limit` (libvirt's "value too
/// large" of sizes it parses, with the field and the limit named).
pub fn too_large(field: &str, value: impl Display, limit: impl Display) -> VirtError {
    invalid_arg(format!(
        "{field} value too large: {value} (the largest is {limit})"
    ))
}

/// OPERATION_INVALID.
pub fn op_invalid(msg: impl Display) -> VirtError {
    err(
        ErrorCode::OperationInvalid,
        format!("Requested operation is not valid: {msg}"),
    )
}

/// OPERATION_FAILED.
pub fn op_failed(msg: impl Display) -> VirtError {
    err(
        ErrorCode::OperationFailed,
        format!("operation failed: {msg}"),
    )
}

/// INTERNAL_ERROR.
pub fn internal(msg: impl Display) -> VirtError {
    err(ErrorCode::InternalError, format!("internal error: {msg}"))
}

/// NO_SUPPORT: the backend does not implement it.
pub fn no_support(what: impl Display) -> VirtError {
    err(
        ErrorCode::NoSupport,
        format!("this function is not supported by the connection driver: {what}"),
    )
}

/// CONFIG_UNSUPPORTED.
pub fn config_unsupported(msg: impl Display) -> VirtError {
    err(
        ErrorCode::ConfigUnsupported,
        format!("unsupported configuration: {msg}"),
    )
}

/// `storage pool 'X' is not active`.
pub fn not_active(pool: &str) -> VirtError {
    op_invalid(format!("storage pool '{pool}' is not active"))
}

/// NO_STORAGE_VOL.
pub fn no_vol(what: impl Display) -> VirtError {
    err(
        ErrorCode::NoStorageVol,
        format!("Storage volume not found: {what}"),
    )
}

/// STORAGE_VOL_EXIST.
pub fn vol_exists(name: &str) -> VirtError {
    err(
        ErrorCode::StorageVolExist,
        format!("storage volume already exists: '{name}'"),
    )
}

/// A pool-builder error (`common::storage::argv`) as the driver reports it.
pub fn argv(e: &common::storage::argv::ArgvError) -> VirtError {
    use common::storage::argv::ArgvError as A;
    let code = match e {
        A::NoPoolCommand(_) | A::OperationUnsupported(_) => ErrorCode::OperationUnsupported,
        A::MissingSource(_) => ErrorCode::XmlError,
        A::Unsupported(_) => ErrorCode::ConfigUnsupported,
        A::InvalidArg(_) => ErrorCode::InvalidArg,
        A::Internal(_) => ErrorCode::InternalError,
    };
    err(code, e.to_string())
}

/// Runs blocking work off the async threads.
///
/// # Errors
/// The work's error, or INTERNAL_ERROR when the task panicked.
pub async fn blocking<T, F>(f: F) -> Result<T, VirtError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, VirtError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(internal(format!("storage task failed: {e}"))),
    }
}
