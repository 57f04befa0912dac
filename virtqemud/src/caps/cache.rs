//! [`CapsCache`]: the capabilities of each emulator binary, probed once and
//! kept in memory and, with [`CapsCache::with_dir`], on disk.
//!
//! ```text
//!   get(emulator) ─stat─▶ BinaryKey (path, size, mtime)
//!     memory entry with the same key?  ─yes─▶ it
//!     (per-path lock: concurrent gets of one binary probe it once)
//!     DIR/NAME-HASH.xml whose <cacheKey> matches?  ─yes─▶ load it
//!     probe() ─▶ write DIR/NAME-HASH.xml atomically ─▶ it
//! ```
//!
//! A cache file is the `<qemuCaps>` document of [`QemuCaps::to_xml`] with
//! one more element after `<emulator>`:
//!
//! ```xml
//! <cacheKey path='/usr/bin/qemu-system-x86_64' size='28686560'
//!           mtime='1757030400123456789' kvm='yes' format='1'/>
//! ```
//!
//! `mtime` is in nanoseconds since the epoch (absent when unknown), `kvm`
//! whether `/dev/kvm` was usable when probed (what the probe gives KVM
//! depends on it, see [`super::probe`]), `format` [`CACHE_FORMAT`], raised
//! whenever the probe learns something new. The file is used only when all
//! of them match the binary and host now; anything else (a missing key, a
//! corrupt or unparsable file) means a new probe that overwrites it. The
//! name is the binary's file name and a 64-bit FNV-1a hash of its full
//! path in hex, e.g. `qemu-system-x86_64-3f2a....xml`; files are written
//! with `common::fsutil::write_atomic` (temp + fsync + rename, mode 0600).
//! [`CapsCache::new`] keeps everything in memory only. The memory entries
//! are checked against the binary's key only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use common::xml::{Child, Element, XmlError};

use super::probe::{kvm_usable, probe};
use super::qemu::{BinaryKey, QemuCaps};

/// The version of the cache files' content (`<cacheKey format=>`).
pub const CACHE_FORMAT: u32 = 1;

type Entry = (BinaryKey, Arc<QemuCaps>);

/// Capabilities per emulator binary, refreshed when the binary changes.
#[derive(Debug, Default)]
pub struct CapsCache {
    entries: Mutex<HashMap<PathBuf, Entry>>,
    /// One lock per emulator path, held over load-or-probe.
    locks: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    dir: Option<PathBuf>,
    probes: AtomicU64,
}

impl CapsCache {
    /// An empty cache, in memory only.
    pub fn new() -> CapsCache {
        CapsCache::default()
    }

    /// An empty cache backed by the files in `dir` (created when first
    /// written), e.g. `/var/cache/libvirt/qemu/capabilities`.
    pub fn with_dir(dir: PathBuf) -> CapsCache {
        CapsCache {
            dir: Some(dir),
            ..CapsCache::default()
        }
    }

    /// The directory of the disk cache, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The cache file for `emulator`, if the cache has a directory.
    pub fn cache_file(&self, emulator: &Path) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(file_name(emulator)))
    }

    /// How many probes this cache has run (successful or not).
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    /// Seeds the memory cache (tests, or caps loaded elsewhere).
    pub fn insert(&self, key: BinaryKey, caps: QemuCaps) {
        self.remember(key, Arc::new(caps));
    }

    fn remember(&self, key: BinaryKey, caps: Arc<QemuCaps>) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.insert(key.path.clone(), (key, caps));
    }

    fn in_memory(&self, key: &BinaryKey) -> Option<Arc<QemuCaps>> {
        let e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.get(&key.path)
            .filter(|(k, _)| k == key)
            .map(|(_, c)| Arc::clone(c))
    }

    fn lock_for(&self, path: &Path) -> Arc<Mutex<()>> {
        let mut l = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(l.entry(path.to_path_buf()).or_default())
    }

    /// The capabilities of `emulator`: from memory, else from the disk
    /// cache, else probed (and stored). Blocking (a probe runs QEMU for
    /// about 0.1 s): run it with `spawn_blocking` from async code.
    ///
    /// # Errors
    /// The binary cannot be stat'ed or probed. Failing to write the cache
    /// file is only logged.
    pub fn get(&self, emulator: &Path) -> Result<Arc<QemuCaps>, XmlError> {
        let key = BinaryKey::of(emulator)?;
        if let Some(c) = self.in_memory(&key) {
            return Ok(c);
        }
        let lock = self.lock_for(emulator);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        // Another caller may have probed it while we waited.
        if let Some(c) = self.in_memory(&key) {
            return Ok(c);
        }
        let file = self.cache_file(emulator);
        let kvm = kvm_usable();
        if let Some(caps) = file.as_deref().and_then(|f| load(f, &key, kvm)) {
            let caps = Arc::new(caps);
            self.remember(key, Arc::clone(&caps));
            return Ok(caps);
        }
        self.probes.fetch_add(1, Ordering::Relaxed);
        let caps = Arc::new(probe(emulator)?);
        if let Some(f) = &file
            && let Err(e) = store(f, &key, kvm, &caps)
        {
            tracing::warn!(file = %f.display(), error = %e, "cannot write the QEMU capabilities cache");
        }
        self.remember(key, Arc::clone(&caps));
        Ok(caps)
    }
}

/// `NAME-HASH.xml` for `emulator`.
fn file_name(emulator: &Path) -> String {
    let name: String = emulator
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_start_matches('.');
    format!(
        "{name}-{:016x}.xml",
        fnv1a(emulator.as_os_str().as_encoded_bytes())
    )
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn mtime_ns(t: Option<SystemTime>) -> Option<u128> {
    t?.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The `<cacheKey>` element, `None` for a path that is not UTF-8.
fn key_element(key: &BinaryKey, kvm: bool) -> Option<Element> {
    Some(
        Element::new("cacheKey")
            .with_attr("path", key.path.to_str()?)
            .with_attr("size", key.size)
            .with_opt_attr("mtime", mtime_ns(key.mtime))
            .with_attr("kvm", yes_no(kvm))
            .with_attr("format", CACHE_FORMAT),
    )
}

/// The caps in `file` if its `<cacheKey>` matches `key` and `kvm`.
fn load(file: &Path, key: &BinaryKey, kvm: bool) -> Option<QemuCaps> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "cannot read the QEMU capabilities cache");
            return None;
        }
    };
    let stale = |why: &str| {
        tracing::debug!(file = %file.display(), why, "QEMU capabilities cache not used");
        None
    };
    let root = match common::xml::parse(&text) {
        Ok(r) => r,
        Err(_) => return stale("corrupt"),
    };
    let want = key_element(key, kvm)?;
    match root.child("cacheKey") {
        Some(have) if have.attrs == want.attrs => {}
        _ => return stale("key mismatch"),
    }
    match QemuCaps::from_element(&root) {
        Ok(c) => Some(c),
        Err(_) => stale("corrupt"),
    }
}

/// Writes `caps` with its key to `file`, atomically.
fn store(file: &Path, key: &BinaryKey, kvm: bool, caps: &QemuCaps) -> std::io::Result<()> {
    let Some(key_el) = key_element(key, kvm) else {
        return Ok(());
    };
    let mut root = caps.to_element();
    let at = usize::from(!root.children.is_empty());
    root.children.insert(at, Child::Element(key_el));
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    common::fsutil::write_atomic(file, root.to_xml().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const QEMU: &str = "/usr/bin/qemu-system-x86_64";

    #[test]
    fn memory_cache_reuses_known_binaries() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("qemu-system-x86_64");
        std::fs::write(&bin, "x").expect("bin");
        let cache = CapsCache::new();
        assert!(cache.cache_file(&bin).is_none());
        let e = cache.get(&bin).expect_err("not QEMU");
        assert!(e.to_string().contains(&bin.display().to_string()), "{e}");
        assert_eq!(cache.probes(), 1);
        cache.insert(BinaryKey::of(&bin).expect("stat"), QemuCaps::default());
        assert!(cache.get(&bin).is_ok());
        assert_eq!(cache.probes(), 1);
        std::fs::write(&bin, "changed").expect("bin");
        assert!(cache.get(&bin).is_err());
        assert_eq!(cache.probes(), 2);
        let e = cache.get(&tmp.path().join("none")).expect_err("missing");
        assert!(e.to_string().contains("Cannot check QEMU binary"), "{e}");
    }

    #[test]
    fn file_names_are_stable_and_distinct() {
        let a = file_name(Path::new("/usr/bin/qemu-system-x86_64"));
        assert!(
            a.starts_with("qemu-system-x86_64-") && a.ends_with(".xml"),
            "{a}"
        );
        assert_eq!(a, file_name(Path::new("/usr/bin/qemu-system-x86_64")));
        assert_ne!(a, file_name(Path::new("/usr/local/bin/qemu-system-x86_64")));
        assert!(file_name(Path::new("/x/.. odd")).starts_with("_odd-"));
    }

    #[test]
    fn disk_cache_survives_restarts_and_follows_the_binary() {
        if !Path::new(QEMU).is_file() {
            println!("skipped: {QEMU} is not installed");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("qemu-system-x86_64");
        std::fs::copy(QEMU, &bin).expect("copy qemu");
        let dir = tmp.path().join("caps");

        // Concurrent first gets probe once, and write the file.
        let cache = Arc::new(CapsCache::with_dir(dir.clone()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, b) = (Arc::clone(&cache), bin.clone());
                std::thread::spawn(move || c.get(&b).expect("get"))
            })
            .collect();
        let got: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().expect("join"))
            .collect();
        assert_eq!(cache.probes(), 1);
        assert!(got.iter().all(|c| Arc::ptr_eq(c, &got[0])));
        let caps = Arc::clone(&got[0]);
        assert_eq!(caps.emulator, bin.display().to_string());
        let file = cache.cache_file(&bin).expect("file");
        let text = std::fs::read_to_string(&file).expect("cache file");
        assert!(text.contains("<cacheKey path="), "{text}");
        assert_eq!(QemuCaps::parse(&text).expect("parses"), *caps);

        // A new cache (a daemon restart) loads the file: no probe.
        let t = Instant::now();
        let again = CapsCache::with_dir(dir.clone());
        assert_eq!(*again.get(&bin).expect("get"), *caps);
        println!("load from disk took {:?}", t.elapsed());
        assert_eq!(again.probes(), 0);

        // A changed binary (new mtime) is probed again and the file rewritten.
        let f = std::fs::File::options()
            .write(true)
            .open(&bin)
            .expect("open");
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .expect("touch");
        drop(f);
        assert_eq!(*again.get(&bin).expect("get"), *caps);
        assert_eq!(again.probes(), 1);
        let fresh = CapsCache::with_dir(dir.clone());
        fresh.get(&bin).expect("get");
        assert_eq!(fresh.probes(), 0);

        // A corrupt file is ignored and replaced.
        std::fs::write(&file, "<qemuCaps><version>garbage").expect("corrupt");
        let c = CapsCache::with_dir(dir.clone());
        assert_eq!(*c.get(&bin).expect("get"), *caps);
        assert_eq!(c.probes(), 1);
        let text = std::fs::read_to_string(&file).expect("cache file");
        assert_eq!(QemuCaps::parse(&text).expect("replaced"), *caps);
        // A valid document without our key (a libvirt file) is not trusted.
        std::fs::write(&file, caps.to_xml()).expect("keyless");
        let c = CapsCache::with_dir(dir);
        c.get(&bin).expect("get");
        assert_eq!(c.probes(), 1);
        assert!(
            std::fs::read_to_string(&file)
                .expect("file")
                .contains("<cacheKey")
        );
    }
}
