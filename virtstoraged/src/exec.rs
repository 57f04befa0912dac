//! Running the host tools the backends need (`mount`, `mkfs`, `qemu-img`,
//! LVM): no shell, stdin closed, output captured, bounded in time (a hung
//! NFS mount must not hang the daemon), killed when the caller gives up.

use std::time::Duration;

use common::storage::argv::Command;
use common::{ErrorCode, ErrorDomain, VirtError};

/// How long a command may run unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a command printed.
#[derive(Debug, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

fn failed(cmd: &Command, why: &str) -> VirtError {
    VirtError::new(
        ErrorCode::InternalError,
        ErrorDomain::Storage,
        format!("internal error: Child process ({cmd}) {why}"),
    )
}

/// Runs `cmd` with [`DEFAULT_TIMEOUT`].
///
/// # Errors
/// See [`run_with`].
pub async fn run(cmd: &Command) -> Result<Output, VirtError> {
    run_with(cmd, DEFAULT_TIMEOUT).await
}

/// Runs `cmd`, waits at most `timeout`, and returns its output when it
/// exits with status 0.
///
/// # Errors
/// INTERNAL_ERROR in libvirt's words (`Child process (CMD) unexpected
/// exit status N: STDERR`), also when it cannot be spawned or times out
/// (it is killed then).
pub async fn run_with(cmd: &Command, timeout: Duration) -> Result<Output, VirtError> {
    let mut c = tokio::process::Command::new(&cmd.program);
    c.args(&cmd.args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env("LC_ALL", "C")
        // LVM complains about every inherited descriptor otherwise.
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .kill_on_drop(true);
    let child = c
        .spawn()
        .map_err(|e| failed(cmd, &format!("could not be run: {e}")))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| failed(cmd, &format!("failed: {e}")))?,
        Err(_) => return Err(failed(cmd, &format!("timed out after {timeout:?}"))),
    };
    let output = Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if out.status.success() {
        tracing::debug!(%cmd, "ran");
        return Ok(output);
    }
    let status = match out.status.code() {
        Some(c) => format!("unexpected exit status {c}"),
        None => "was killed by a signal".to_owned(),
    };
    let detail = output.stderr.trim();
    let detail = if detail.is_empty() {
        output.stdout.trim()
    } else {
        detail
    };
    let e = failed(
        cmd,
        &if detail.is_empty() {
            status
        } else {
            format!("{status}: {detail}")
        },
    );
    // A tool that ran out of room (it runs with LC_ALL=C: strerror's words)
    // failed because of what was asked for, not because of the daemon.
    if ["No space left on device", "Disk quota exceeded"]
        .iter()
        .any(|w| detail.contains(w))
    {
        return Err(e.with_grpc_code(tonic::Code::ResourceExhausted));
    }
    Err(e)
}

/// Whether `program` is on `PATH`.
pub fn have_program(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|d| {
        let p = d.join(program);
        p.is_file()
            && std::fs::metadata(&p).is_ok_and(|m| {
                std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_and_stderr_are_reported() {
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo out"]);
        assert_eq!(run(&ok).await.expect("ok").stdout, "out\n");
        let mut bad = Command::new("sh");
        bad.args(["-c", "echo nope >&2; exit 3"]);
        let e = run(&bad).await.expect_err("fails");
        assert!(
            e.message.contains("unexpected exit status 3: nope"),
            "{}",
            e.message
        );
        let mut slow = Command::new("sleep");
        slow.arg("5");
        let e = run_with(&slow, Duration::from_millis(100))
            .await
            .expect_err("timeout");
        assert!(e.message.contains("timed out"), "{}", e.message);
        assert!(have_program("sh"));
        assert!(!have_program("no-such-program-here"));
    }
}
