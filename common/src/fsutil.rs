//! Crash-safe file updates for definition files (see `docs/state-files.md`).
//!
//! [`write_atomic`] replaces a file so that, whatever instant the process
//! (or the host) dies at, the path holds either the complete old content
//! or the complete new content, never a mix or a truncated file:
//!
//! 1. write the bytes to a temporary file in the same directory
//!    (`.NAME.PID.N.tmp`, created exclusively, mode 0600);
//! 2. `fsync` it, so its data is on disk before it gets the name;
//! 3. `rename` it over `NAME` (atomic within one file system);
//! 4. `fsync` the directory, so the rename itself is durable.
//!
//! A crash before step 3 leaves only a stale temporary file, which
//! [`remove_stale_temps`] deletes at the next start; after step 3 the new
//! content is in place. [`remove_durable`] and [`symlink_durable`] make
//! removals and symlinks (autostart links) durable the same way.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of the temporary files [`write_atomic`] creates.
pub const TEMP_SUFFIX: &str = ".tmp";

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn parent_of(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        Some(_) => Ok(Path::new(".")),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' has no parent directory", path.display()),
        )),
    }
}

/// The temporary file name used for `path`.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let dir = parent_of(path)?;
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("'{}' has no file name", path.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}.{n}{TEMP_SUFFIX}", std::process::id()));
    Ok(dir.join(tmp))
}

/// `fsync`s directory `dir`, making renames and unlinks in it durable.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Atomically and durably replaces `path` with `bytes` (mode 0600). See
/// the module docs for the steps and what a crash leaves.
///
/// # Arguments
/// * `path` - the file to write; its directory must exist.
/// * `bytes` - the complete new content.
///
/// # Errors
/// Any step failed; the temporary file is removed and `path` is unchanged.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir().expect("tempdir");
/// let p = dir.path().join("vm1.xml");
/// common::fsutil::write_atomic(&p, b"<domain/>\n").expect("write");
/// assert_eq!(std::fs::read(&p).expect("read"), b"<domain/>\n");
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_of(path)?;
    let tmp = temp_path(path)?;
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Removes `path` and syncs its directory. A missing file is not an error
/// (returns `Ok(false)`).
///
/// # Errors
/// The file exists but cannot be removed, or the directory cannot be synced.
pub fn remove_durable(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            sync_dir(parent_of(path)?)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes `link` a symlink to `target`, replacing whatever `link` was,
/// atomically (a temporary link renamed over it) and durably.
///
/// # Errors
/// The link cannot be created or the directory synced.
pub fn symlink_durable(target: &Path, link: &Path) -> io::Result<()> {
    let dir = parent_of(link)?;
    let tmp = temp_path(link)?;
    if let Err(e) =
        std::os::unix::fs::symlink(target, &tmp).and_then(|()| std::fs::rename(&tmp, link))
    {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Deletes the temporary files a crashed [`write_atomic`] or
/// [`symlink_durable`] left in `dir` (`.*.tmp`); returns how many. Missing
/// `dir` is not an error.
///
/// # Errors
/// `dir` cannot be read.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) && name.len() > 5 {
            let is_file_or_link = entry
                .file_type()
                .is_ok_and(|t| t.is_file() || t.is_symlink());
            if is_file_or_link && std::fs::remove_file(entry.path()).is_ok() {
                n += 1;
            }
        }
    }
    if n > 0 {
        sync_dir(dir)?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_creates_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.xml");
        write_atomic(&p, b"one").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"one");
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        write_atomic(&p, b"two, longer").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"two, longer");
        write_atomic(&p, b"3").expect("shorter");
        assert_eq!(std::fs::read(&p).expect("read"), b"3");
        // No temporary file is left behind.
        assert_eq!(names(dir.path()), ["a.xml"]);
    }

    #[test]
    fn failed_write_leaves_old_content_and_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.xml");
        write_atomic(&p, b"old").expect("write");
        // Renaming a file over a directory fails after the temp was written.
        let d = dir.path().join("sub.xml");
        std::fs::create_dir(&d).expect("mkdir");
        std::fs::write(d.join("x"), b"x").expect("fill");
        assert!(write_atomic(&d, b"new").is_err());
        assert_eq!(std::fs::read(&p).expect("read"), b"old");
        assert_eq!(names(dir.path()), ["a.xml", "sub.xml"]);
        // A missing directory fails cleanly.
        assert!(write_atomic(&dir.path().join("nope/a.xml"), b"x").is_err());
    }

    #[test]
    fn stale_temps_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".a.xml.123.0.tmp"), b"half").expect("temp");
        std::fs::write(dir.path().join("a.xml"), b"keep").expect("file");
        std::fs::write(dir.path().join("b.tmp"), b"not ours").expect("file");
        assert_eq!(remove_stale_temps(dir.path()).expect("clean"), 1);
        assert_eq!(names(dir.path()), ["a.xml", "b.tmp"]);
        assert_eq!(
            remove_stale_temps(&dir.path().join("missing")).expect("missing"),
            0
        );
    }

    #[test]
    fn symlinks_and_removal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.xml");
        let link = dir.path().join("link.xml");
        std::fs::write(&target, b"x").expect("file");
        symlink_durable(&target, &link).expect("link");
        assert_eq!(std::fs::read_link(&link).expect("readlink"), target);
        symlink_durable(&target, &link).expect("relink");
        assert!(remove_durable(&link).expect("rm"));
        assert!(!remove_durable(&link).expect("rm again"));
        assert_eq!(names(dir.path()), ["a.xml"]);
    }
}
