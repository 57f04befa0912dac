//! Calls that change state run to their end even when their client goes
//! away.
//!
//! tonic drops a handler's future when the client's connection closes (a
//! client killed mid-call, the proxy restarted, a peer daemon killed while
//! it asks for a port). A driver call dropped between two of its steps (a
//! file written, memory not yet updated; a device added to QEMU, the
//! definition not yet changed) would leave them disagreeing until the next
//! restart. In a task of its own the call always finishes; only the answer
//! may be lost, as when the reply itself does not arrive.

use std::future::Future;

use tonic::Status;
use tracing::Instrument;

use crate::{ErrorCode, ErrorDomain, VirtError};

/// Runs `call` in a task of its own and waits for it. The task runs in
/// the caller's span, so the calls it makes to other daemons carry the
/// request's trace.
///
/// # Errors
/// The call's error as a status; INTERNAL_ERROR if its task panicked.
pub async fn to_completion<T, F>(domain: ErrorDomain, call: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: Future<Output = Result<T, VirtError>> + Send + 'static,
{
    match tokio::spawn(call.instrument(tracing::Span::current())).await {
        Ok(r) => r.map_err(Status::from),
        Err(e) => Err(VirtError::new(
            ErrorCode::InternalError,
            domain,
            format!("internal error: the call's task failed: {e}"),
        )
        .to_status()),
    }
}
