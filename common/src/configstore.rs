//! A driver's definition files, as libvirt lays them out:
//! `<dir>/<name>.xml` (written atomically with [`fsutil::write_atomic`],
//! after libvirt's "AUTO-GENERATED FILE" comment) and autostart symlinks
//! `<dir>/autostart/<name>.xml` pointing at them. The storage driver keeps
//! pools here (`/etc/virt/storage`) and its live state files the same way
//! (`/run/virt/storage`, no autostart links); what each file is, who writes
//! it and what a crash leaves: `docs/state-files.md`.
//!
//! (virtqemud has its own copy of this store in `virtqemud::persist`;
//! this one differs only in the editing command the header names.)
//!
//! Blocking file I/O: drivers call these from `spawn_blocking`.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::fsutil;

/// The longest name of an object whose definition is stored as
/// `<name>.xml` (domains, networks, pools), in bytes. Every file a daemon
/// derives from the name must fit the file system's 255-byte file names:
/// the longest is the temporary file of an atomic write of
/// `<name>.addnhosts` (`.<name>.addnhosts.<pid>.<n>.tmp`, up to 45 bytes
/// more). libvirt has no limit of its own and fails at the write instead.
pub const MAX_NAME: usize = 200;

/// Why `name` is too long for [`MAX_NAME`], if it is (the start of the name
/// and its length, for an error about the field `name`).
pub fn name_too_long(name: &str) -> Option<String> {
    if name.len() <= MAX_NAME {
        return None;
    }
    let mut end = 32.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Some(format!(
        "name '{}...' is too long ({} bytes, at most {MAX_NAME})",
        &name[..end],
        name.len()
    ))
}

/// libvirt's header of every stored definition (comments are dropped when
/// the file is read back).
const HEADER: &str = "<!--\n\
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n";

/// A failed definition-file operation; the message is libvirt's.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The config or autostart directory could not be created.
    #[error("cannot create config directory '{}': {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The definition could not be written.
    #[error("cannot write config file '{}': {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The definition could not be removed.
    #[error("cannot remove config {}: {source}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The autostart link could not be created.
    #[error("Failed to create symlink '{}' to '{}': {source}", link.display(), target.display())]
    Link {
        /// The link.
        link: PathBuf,
        /// What it points at.
        target: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The autostart link could not be removed.
    #[error("Failed to delete autostart link '{}': {source}", path.display())]
    Unlink {
        /// The link.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The config directory could not be read.
    #[error("Failed to open dir '{}': {source}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// One stored definition, as read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDef {
    /// The name from the file name (`<name>.xml`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Its content.
    pub xml: String,
    /// Whether the autostart link points at it.
    pub autostart: bool,
}

/// A file that could not be read at start (left alone).
#[derive(Debug)]
pub struct Unreadable {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: io::Error,
}

/// The definition directory of a driver.
#[derive(Clone, Debug)]
pub struct ConfigStore {
    dir: PathBuf,
    autostart_dir: PathBuf,
    edit_command: &'static str,
}

impl ConfigStore {
    /// The store in `dir` (e.g. `/etc/virt/storage`); `edit_command` is
    /// the virsh command the header recommends (`pool-edit`, `net-edit`,
    /// `edit`).
    pub fn new(dir: PathBuf, edit_command: &'static str) -> ConfigStore {
        let autostart_dir = dir.join("autostart");
        ConfigStore {
            dir,
            autostart_dir,
            edit_command,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<name>.xml`.
    pub fn config_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.xml"))
    }

    /// `<dir>/autostart/<name>.xml`.
    pub fn autostart_link(&self, name: &str) -> PathBuf {
        self.autostart_dir.join(format!("{name}.xml"))
    }

    fn create_dir(path: &Path) -> Result<(), PersistError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|source| PersistError::CreateDir {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Writes `<name>.xml` atomically and durably, with libvirt's header.
    ///
    /// # Errors
    /// The directory or the file cannot be written; the old file (if
    /// any) is then unchanged.
    pub fn save(&self, name: &str, xml: &str) -> Result<(), PersistError> {
        Self::create_dir(&self.dir)?;
        let path = self.config_file(name);
        let text = format!(
            "{HEADER}  virsh {} {name}\nor other application using the libvirt API.\n-->\n\n{xml}",
            self.edit_command
        );
        fsutil::write_atomic(&path, text.as_bytes())
            .map_err(|source| PersistError::Write { path, source })
    }

    /// Removes the autostart link, then the definition (as libvirt's
    /// `virDomainDeleteConfig`). Missing files are not errors.
    ///
    /// # Errors
    /// A file exists but cannot be removed.
    pub fn delete(&self, name: &str) -> Result<(), PersistError> {
        let link = self.autostart_link(name);
        fsutil::remove_durable(&link)
            .map_err(|source| PersistError::Unlink { path: link, source })?;
        let path = self.config_file(name);
        fsutil::remove_durable(&path).map_err(|source| PersistError::Remove { path, source })?;
        Ok(())
    }

    /// Creates or removes the autostart link of `name`.
    ///
    /// # Errors
    /// The link cannot be created or removed.
    pub fn set_autostart(&self, name: &str, on: bool) -> Result<(), PersistError> {
        let link = self.autostart_link(name);
        if on {
            Self::create_dir(&self.autostart_dir)?;
            let target = self.config_file(name);
            fsutil::symlink_durable(&target, &link).map_err(|source| PersistError::Link {
                link,
                target,
                source,
            })
        } else {
            fsutil::remove_durable(&link)
                .map(|_| ())
                .map_err(|source| PersistError::Unlink { path: link, source })
        }
    }

    /// Whether `autostart/<name>.xml` resolves to `<name>.xml` (libvirt's
    /// `virFileLinkPointsTo`).
    pub fn autostart_of(&self, name: &str) -> bool {
        let (Ok(link), Ok(file)) = (
            std::fs::metadata(self.autostart_link(name)),
            std::fs::metadata(self.config_file(name)),
        ) else {
            return false;
        };
        link.dev() == file.dev() && link.ino() == file.ino()
    }

    /// Every `*.xml` in the directory (sorted by name), read but not
    /// parsed; removes stale temporary files of interrupted writes first.
    /// Files that cannot be read are returned apart and left alone.
    ///
    /// # Errors
    /// The directory exists but cannot be read.
    pub fn scan(&self) -> Result<(Vec<StoredDef>, Vec<Unreadable>), PersistError> {
        let read_dir_err = |source| PersistError::ReadDir {
            path: self.dir.clone(),
            source,
        };
        match fsutil::remove_stale_temps(&self.dir) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(dir = %self.dir.display(), "removed {n} stale temporary file(s)")
            }
            Err(e) => return Err(read_dir_err(e)),
        }
        let _ = fsutil::remove_stale_temps(&self.autostart_dir);
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(e) => return Err(read_dir_err(e)),
        };
        let mut defs = Vec::new();
        let mut bad = Vec::new();
        for entry in entries {
            let entry = entry.map_err(read_dir_err)?;
            let path = entry.path();
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".xml"))
                .map(str::to_owned)
            else {
                continue;
            };
            if name.is_empty() || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(xml) => {
                    let autostart = self.autostart_of(&name);
                    defs.push(StoredDef {
                        name,
                        path,
                        xml,
                        autostart,
                    });
                }
                Err(error) => bad.push(Unreadable { path, error }),
            }
        }
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((defs, bad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_file_names_made_from_them() {
        assert_eq!(name_too_long(&"a".repeat(MAX_NAME)), None);
        let why = name_too_long(&"é".repeat(MAX_NAME)).expect("too long");
        assert!(why.contains("(400 bytes, at most 200)"), "{why}");
        // The longest derived file still fits 255 bytes.
        let longest = format!(
            ".{}.addnhosts.{}.{}.tmp",
            "a".repeat(MAX_NAME),
            u32::MAX,
            u64::MAX
        );
        assert!(longest.len() <= 255, "{}", longest.len());
    }

    #[test]
    fn save_scan_autostart_delete() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ConfigStore::new(tmp.path().join("qemu"), "edit");
        let (defs, bad) = store.scan().expect("empty scan");
        assert!(defs.is_empty() && bad.is_empty());

        store.save("vm1", "<domain/>\n").expect("save");
        let text = std::fs::read_to_string(store.config_file("vm1")).expect("read");
        assert!(text.starts_with("<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE."));
        assert!(text.contains("  virsh edit vm1\n"));
        assert!(text.ends_with("-->\n\n<domain/>\n"));

        store.set_autostart("vm1", true).expect("autostart");
        assert!(store.autostart_of("vm1"));
        std::fs::write(store.dir().join("notes.txt"), "x").expect("other file");
        std::fs::write(store.dir().join(".vm1.xml.1.2.tmp"), "half").expect("stale");
        let (defs, _) = store.scan().expect("scan");
        assert_eq!(defs.len(), 1);
        assert_eq!(defs[0].name, "vm1");
        assert!(defs[0].autostart);
        assert!(!store.dir().join(".vm1.xml.1.2.tmp").exists());
        assert!(store.dir().join("notes.txt").exists());

        store.set_autostart("vm1", false).expect("no autostart");
        assert!(!store.autostart_of("vm1"));
        store.set_autostart("vm1", true).expect("autostart");
        store.delete("vm1").expect("delete");
        assert!(!store.config_file("vm1").exists());
        assert!(std::fs::symlink_metadata(store.autostart_link("vm1")).is_err());
        store.delete("vm1").expect("delete twice");
    }

    #[test]
    fn a_link_to_another_file_is_not_autostart() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ConfigStore::new(tmp.path().to_path_buf(), "edit");
        store.save("a", "<domain/>").expect("a");
        store.save("b", "<domain/>").expect("b");
        std::fs::create_dir_all(tmp.path().join("autostart")).expect("dir");
        std::os::unix::fs::symlink(store.config_file("b"), store.autostart_link("a"))
            .expect("link");
        assert!(!store.autostart_of("a"));
        assert!(!store.autostart_of("b"));
    }
}
