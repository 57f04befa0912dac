//! Definition files: `<config_dir>/qemu/<name>.xml` (inactive XML, written
//! atomically) and autostart symlinks `<config_dir>/qemu/autostart/<name>.xml`
//! pointing at them, as libvirt lays them out. What each file is, who writes
//! it and what a crash leaves: `docs/state-files.md`.
//!
//! Blocking file I/O: the driver calls these from `spawn_blocking`.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::fsutil;

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

/// One stored definition file, found but not read yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The name from the file name (`<name>.xml`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
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
}

impl ConfigStore {
    /// The store in `dir` (e.g. `/etc/virt/qemu`).
    pub fn new(dir: PathBuf) -> ConfigStore {
        let autostart_dir = dir.join("autostart");
        ConfigStore { dir, autostart_dir }
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
        let path = self.config_file(name);
        let text = format!(
            "{HEADER}  virsh edit {name}\nor other application using the libvirt API.\n-->\n\n{xml}"
        );
        // The directory exists but for the first save (or after someone
        // removed it): create it only then, not on every save.
        let written = match fsutil::write_atomic(&path, text.as_bytes()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.dir.is_dir() => {
                Self::create_dir(&self.dir)?;
                fsutil::write_atomic(&path, text.as_bytes())
            }
            r => r,
        };
        written.map_err(|source| PersistError::Write { path, source })
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
        let mut defs = Vec::new();
        let mut bad = Vec::new();
        for l in self.list()? {
            match std::fs::read_to_string(&l.path) {
                Ok(xml) => defs.push(StoredDef {
                    name: l.name,
                    path: l.path,
                    xml,
                    autostart: l.autostart,
                }),
                Err(error) => bad.push(Unreadable {
                    path: l.path,
                    error,
                }),
            }
        }
        Ok((defs, bad))
    }

    /// Every `*.xml` in the directory (sorted by name), not read: the
    /// caller reads each when it parses it, so the texts of all
    /// definitions are never in memory at once. Removes stale temporary
    /// files of interrupted writes first. Autostart is looked up only for
    /// the names that have a link.
    ///
    /// # Errors
    /// The directory exists but cannot be read.
    pub fn list(&self) -> Result<Vec<Listed>, PersistError> {
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
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_dir_err(e)),
        };
        let links: std::collections::HashSet<std::ffi::OsString> =
            match std::fs::read_dir(&self.autostart_dir) {
                Ok(d) => d.filter_map(|e| Some(e.ok()?.file_name())).collect(),
                Err(_) => std::collections::HashSet::new(),
            };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(read_dir_err)?;
            let file_name = entry.file_name();
            let Some(name) = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(".xml"))
                .map(str::to_owned)
            else {
                continue;
            };
            if name.is_empty() || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let autostart = links.contains(&file_name) && self.autostart_of(&name);
            out.push(Listed {
                name,
                path: entry.path(),
                autostart,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_scan_autostart_delete() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ConfigStore::new(tmp.path().join("qemu"));
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
        let store = ConfigStore::new(tmp.path().to_path_buf());
        store.save("a", "<domain/>").expect("a");
        store.save("b", "<domain/>").expect("b");
        std::fs::create_dir_all(tmp.path().join("autostart")).expect("dir");
        std::os::unix::fs::symlink(store.config_file("b"), store.autostart_link("a"))
            .expect("link");
        assert!(!store.autostart_of("a"));
        assert!(!store.autostart_of("b"));
    }
}
