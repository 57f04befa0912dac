//! `ObjList`: a driver's objects by UUID, by name and (while active) by id,
//! after libvirt's `virDomainObjList` (`src/conf/virdomainobjlist.c`).
//!
//! The list is an index, not the objects' owner of state: it holds each
//! object as an `Arc<T>` next to the keys it is found by (name, UUID and,
//! for running objects, id). `T` keeps its own locks; the list's lock is a
//! `std::sync::RwLock` held only for the map operations themselves, never
//! across an `.await` or file I/O (see `docs/locking.md`).
//!
//! Insertion refuses duplicates as libvirt's `virDomainObjListAddLocked`,
//! with its messages (libvirt's `operation failed: ` prefix included, so
//! clients print what virsh prints) and the kind's "exists" code
//! (`DOM_EXIST` → gRPC ALREADY_EXISTS; libvirt itself says
//! `OPERATION_FAILED`):
//!
//! - same UUID, different name:
//!   `operation failed: domain 'old' is already defined with uuid U`;
//! - same name, different UUID:
//!   `operation failed: domain 'x' already exists with uuid U`;
//! - same name and UUID: the existing object is returned
//!   ([`Added::Existing`]), for the caller to redefine it.
//!
//! The list is generic: domains, networks and storage pools use it with
//! their own [`ObjKind`] (the noun and error codes in messages).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::{ErrorCode, ErrorDomain, VirtError};

/// A UUID as the list keys it: 16 raw bytes.
pub type RawUuid = [u8; 16];

/// Formats a UUID as libvirt's `virUUIDFormat`: lowercase `8-4-4-4-12`.
///
/// # Examples
/// ```
/// let u = [0x4d, 0xea, 0x22, 0xb3, 0x1d, 0x52, 0xd8, 0xf3,
///          0x25, 0x16, 0x78, 0x2e, 0x98, 0xab, 0x3f, 0xa0];
/// assert_eq!(common::objlist::format_uuid(&u), "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
/// ```
pub fn format_uuid(u: &RawUuid) -> String {
    UuidStr::new(u).as_str().to_owned()
}

/// A UUID formatted once as libvirt's `virUUIDFormat` (lowercase
/// `8-4-4-4-12`), kept inline: 36 bytes, no allocation. Objects that are
/// listed often keep theirs, so a listing copies text instead of
/// formatting it.
///
/// # Examples
/// ```
/// let u = [0x4d, 0xea, 0x22, 0xb3, 0x1d, 0x52, 0xd8, 0xf3,
///          0x25, 0x16, 0x78, 0x2e, 0x98, 0xab, 0x3f, 0xa0];
/// let s = common::objlist::UuidStr::new(&u);
/// assert_eq!(s.as_str(), "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UuidStr([u8; 36]);

impl UuidStr {
    /// Formats `u`.
    pub fn new(u: &RawUuid) -> UuidStr {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut at = 0;
        for (i, b) in u.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1;
            }
            out[at] = HEX[usize::from(b >> 4)];
            out[at + 1] = HEX[usize::from(b & 0xf)];
            at += 2;
        }
        UuidStr(out)
    }

    /// The text as bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8; 36] {
        &self.0
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits and '-' are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for UuidStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for UuidStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Parses a UUID as libvirt's `virUUIDParse`: 32 hex digits in pairs,
/// `-` and spaces allowed between pairs, white space around.
///
/// # Examples
/// ```
/// let u = common::objlist::parse_uuid("4dea22b3-1d52-d8f3-2516-782e98ab3fa0").expect("valid");
/// assert_eq!(u[0], 0x4d);
/// assert!(common::objlist::parse_uuid("not-a-uuid").is_none());
/// ```
pub fn parse_uuid(s: &str) -> Option<RawUuid> {
    crate::xml::Uuid::parse(s).map(|u| u.0)
}

/// What kind of object a list holds: the words and codes of its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjKind {
    /// The noun in messages (`domain`, `network`, `storage pool`).
    pub noun: &'static str,
    /// The code of a duplicate (`DOM_EXIST`).
    pub exists: ErrorCode,
    /// The code of a failed lookup (`NO_DOMAIN`).
    pub not_found: ErrorCode,
    /// libvirt's prefix of a failed lookup's message (`Domain not found`).
    pub not_found_prefix: &'static str,
    /// The noun in a failed lookup's message (`storage pool` where
    /// duplicates say `pool`).
    pub not_found_noun: &'static str,
    /// The error domain the list reports from.
    pub domain: ErrorDomain,
}

impl ObjKind {
    /// QEMU domains.
    pub const DOMAIN: ObjKind = ObjKind {
        noun: "domain",
        exists: ErrorCode::DomExist,
        not_found: ErrorCode::NoDomain,
        not_found_prefix: "Domain not found",
        not_found_noun: "domain",
        domain: ErrorDomain::Qemu,
    };

    /// Virtual networks.
    pub const NETWORK: ObjKind = ObjKind {
        noun: "network",
        exists: ErrorCode::NetworkExist,
        not_found: ErrorCode::NoNetwork,
        not_found_prefix: "Network not found",
        not_found_noun: "network",
        domain: ErrorDomain::Network,
    };

    /// Storage pools.
    pub const STORAGE_POOL: ObjKind = ObjKind {
        noun: "pool",
        exists: ErrorCode::OperationFailed,
        not_found: ErrorCode::NoStoragePool,
        not_found_prefix: "Storage pool not found",
        not_found_noun: "storage pool",
        domain: ErrorDomain::Storage,
    };

    /// `Domain not found: no domain with matching name 'x'`, as libvirt.
    pub fn no_name(&self, name: &str) -> VirtError {
        self.not_found_error(&format!(
            "no {} with matching name '{name}'",
            self.not_found_noun
        ))
    }

    /// `Domain not found: no domain with matching uuid 'U'`.
    pub fn no_uuid(&self, uuid: &str) -> VirtError {
        self.not_found_error(&format!(
            "no {} with matching uuid '{uuid}'",
            self.not_found_noun
        ))
    }

    /// `Domain not found: no domain with matching id N`.
    pub fn no_id(&self, id: i32) -> VirtError {
        self.not_found_error(&format!("no {} with matching id {id}", self.not_found_noun))
    }

    fn not_found_error(&self, what: &str) -> VirtError {
        VirtError::new(
            self.not_found,
            self.domain,
            format!("{}: {what}", self.not_found_prefix),
        )
    }
}

/// How a caller names an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjRef {
    /// By name.
    Name(String),
    /// By UUID.
    Uuid(RawUuid),
    /// By the id of a running object.
    Id(i32),
}

impl fmt::Display for ObjRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjRef::Name(n) => f.write_str(n),
            ObjRef::Uuid(u) => f.write_str(&format_uuid(u)),
            ObjRef::Id(i) => write!(f, "{i}"),
        }
    }
}

/// One object in the list, with the keys it is found by.
#[derive(Debug)]
pub struct Entry<T> {
    /// Its name.
    pub name: String,
    /// Its UUID.
    pub uuid: RawUuid,
    /// Its id while active.
    pub id: Option<i32>,
    /// The object.
    pub obj: Arc<T>,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            name: self.name.clone(),
            uuid: self.uuid,
            id: self.id,
            obj: self.obj.clone(),
        }
    }
}

/// The result of [`ObjList::add`].
#[derive(Debug)]
pub enum Added<T> {
    /// A new object was inserted (built by the closure).
    New(Arc<T>),
    /// An object with the same name and UUID exists; nothing was inserted.
    Existing(Arc<T>),
}

#[derive(Debug)]
struct Inner<T> {
    by_uuid: HashMap<RawUuid, Entry<T>>,
    by_name: HashMap<String, RawUuid>,
    by_id: HashMap<i32, RawUuid>,
    /// Every object sorted by name, built on demand and dropped by every
    /// insertion or removal (ids do not change the order).
    sorted: Option<Arc<[Arc<T>]>>,
    /// Counts insertions and removals.
    version: u64,
}

/// Objects by UUID, name and id. See the module docs.
#[derive(Debug)]
pub struct ObjList<T> {
    kind: ObjKind,
    inner: RwLock<Inner<T>>,
}

// === impl ObjList ===

impl<T> ObjList<T> {
    /// An empty list of objects of `kind`.
    pub fn new(kind: ObjKind) -> ObjList<T> {
        ObjList {
            kind,
            inner: RwLock::new(Inner {
                by_uuid: HashMap::new(),
                by_name: HashMap::new(),
                by_id: HashMap::new(),
                sorted: None,
                version: 0,
            }),
        }
    }

    /// The kind of objects held.
    pub fn kind(&self) -> &ObjKind {
        &self.kind
    }

    // A panic while the lock was held cannot leave the maps half-updated
    // (every update is a few infallible map operations), so a poisoned
    // lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, Inner<T>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<T>> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks `name`/`uuid` against the list as [`ObjList::add`] does,
    /// without inserting.
    ///
    /// # Errors
    /// The duplicate errors of the module docs.
    pub fn check(&self, name: &str, uuid: &RawUuid) -> Result<Option<Arc<T>>, VirtError> {
        check_locked(&self.kind, &self.read(), name, uuid)
    }

    /// Adds an object named `name` with `uuid`, built by `make` only when
    /// neither key is taken. Returns the existing object when both keys
    /// match one.
    ///
    /// # Errors
    /// The duplicate errors of the module docs.
    pub fn add(
        &self,
        name: &str,
        uuid: &RawUuid,
        make: impl FnOnce() -> T,
    ) -> Result<Added<T>, VirtError> {
        self.add_arc(name, uuid, || Arc::new(make()))
    }

    /// [`ObjList::add`] for an object that is already shared (e.g. one
    /// whose job lock the caller took before publishing it).
    ///
    /// # Errors
    /// The duplicate errors of the module docs.
    pub fn add_arc(
        &self,
        name: &str,
        uuid: &RawUuid,
        make: impl FnOnce() -> Arc<T>,
    ) -> Result<Added<T>, VirtError> {
        let mut inner = self.write();
        if let Some(existing) = check_locked(&self.kind, &inner, name, uuid)? {
            return Ok(Added::Existing(existing));
        }
        let obj = make();
        inner.sorted = None;
        inner.version += 1;
        inner.by_name.insert(name.to_owned(), *uuid);
        inner.by_uuid.insert(
            *uuid,
            Entry {
                name: name.to_owned(),
                uuid: *uuid,
                id: None,
                obj: obj.clone(),
            },
        );
        Ok(Added::New(obj))
    }

    /// Inserts a new object, refusing any duplicate, even one with the
    /// same name and UUID (as loading definitions at start does).
    ///
    /// # Errors
    /// The duplicate errors of the module docs; for an identical object,
    /// `domain 'x' already exists with uuid U`.
    pub fn insert(&self, name: &str, uuid: &RawUuid, obj: Arc<T>) -> Result<(), VirtError> {
        match self.add_arc(name, uuid, || obj)? {
            Added::New(_) => Ok(()),
            Added::Existing(_) => Err(exists_error(&self.kind, name, uuid)),
        }
    }

    /// Removes the object with `uuid`; returns it if it was listed.
    pub fn remove(&self, uuid: &RawUuid) -> Option<Arc<T>> {
        let mut inner = self.write();
        let entry = inner.by_uuid.remove(uuid)?;
        inner.sorted = None;
        inner.version += 1;
        inner.by_name.remove(&entry.name);
        if let Some(id) = entry.id {
            inner.by_id.remove(&id);
        }
        Some(entry.obj)
    }

    /// Sets (or clears) the id of the object with `uuid`, as it starts or
    /// stops. Returns false if the object is not listed.
    pub fn set_id(&self, uuid: &RawUuid, id: Option<i32>) -> bool {
        let mut inner = self.write();
        let Some(entry) = inner.by_uuid.get_mut(uuid) else {
            return false;
        };
        let old = std::mem::replace(&mut entry.id, id);
        if let Some(old) = old {
            inner.by_id.remove(&old);
        }
        if let Some(id) = id {
            inner.by_id.insert(id, *uuid);
        }
        true
    }

    /// The object with `uuid`.
    pub fn find_by_uuid(&self, uuid: &RawUuid) -> Option<Entry<T>> {
        self.read().by_uuid.get(uuid).cloned()
    }

    /// The object called `name`.
    pub fn find_by_name(&self, name: &str) -> Option<Entry<T>> {
        let inner = self.read();
        let uuid = inner.by_name.get(name)?;
        inner.by_uuid.get(uuid).cloned()
    }

    /// The active object with `id`.
    pub fn find_by_id(&self, id: i32) -> Option<Entry<T>> {
        let inner = self.read();
        let uuid = inner.by_id.get(&id)?;
        inner.by_uuid.get(uuid).cloned()
    }

    /// The object `r` names.
    ///
    /// # Errors
    /// libvirt's not-found error for the kind (`NO_DOMAIN`, ...).
    pub fn lookup(&self, r: &ObjRef) -> Result<Entry<T>, VirtError> {
        match r {
            ObjRef::Name(n) => self.find_by_name(n).ok_or_else(|| self.kind.no_name(n)),
            ObjRef::Uuid(u) => self
                .find_by_uuid(u)
                .ok_or_else(|| self.kind.no_uuid(&format_uuid(u))),
            ObjRef::Id(i) => self.find_by_id(*i).ok_or_else(|| self.kind.no_id(*i)),
        }
    }

    /// The object `r` names, without the copy of its keys that
    /// [`ObjList::lookup`] returns.
    ///
    /// # Errors
    /// libvirt's not-found error for the kind (`NO_DOMAIN`, ...).
    pub fn lookup_obj(&self, r: &ObjRef) -> Result<Arc<T>, VirtError> {
        let inner = self.read();
        let uuid = match r {
            ObjRef::Name(n) => inner.by_name.get(n.as_str()),
            ObjRef::Uuid(u) => Some(u),
            ObjRef::Id(i) => inner.by_id.get(i),
        };
        match uuid.and_then(|u| inner.by_uuid.get(u)) {
            Some(e) => Ok(Arc::clone(&e.obj)),
            None => {
                drop(inner);
                self.lookup(r).map(|e| e.obj)
            }
        }
    }

    /// Every object, in no particular order: a cheap copy of the index
    /// (names, keys and `Arc`s) taken under the read lock.
    pub fn snapshot(&self) -> Vec<Entry<T>> {
        self.read().by_uuid.values().cloned().collect()
    }

    /// Every object, sorted by name. The sorted list is kept until the
    /// next insertion or removal, so repeated listings of an unchanged list
    /// cost one `Arc` clone, not a sort.
    pub fn sorted_by_name(&self) -> Arc<[Arc<T>]> {
        if let Some(s) = &self.read().sorted {
            return Arc::clone(s);
        }
        let mut inner = self.write();
        if let Some(s) = &inner.sorted {
            return Arc::clone(s);
        }
        let mut entries: Vec<(&str, &Arc<T>)> = inner
            .by_uuid
            .values()
            .map(|e| (e.name.as_str(), &e.obj))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let sorted: Arc<[Arc<T>]> = entries.into_iter().map(|(_, o)| Arc::clone(o)).collect();
        inner.sorted = Some(Arc::clone(&sorted));
        sorted
    }

    /// Changes with every insertion and removal (not with ids): a listing
    /// computed at one version is still the list's membership while the
    /// version stays.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// How many objects are listed.
    pub fn len(&self) -> usize {
        self.read().by_uuid.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A name or UUID taken: libvirt's code for the kind (OPERATION_FAILED for
/// pools), ALREADY_EXISTS for gRPC whatever the kind.
fn exists_error(kind: &ObjKind, name: &str, uuid: &RawUuid) -> VirtError {
    VirtError::new(
        kind.exists,
        kind.domain,
        format!(
            "operation failed: {} '{name}' already exists with uuid {}",
            kind.noun,
            format_uuid(uuid)
        ),
    )
    .with_grpc_code(tonic::Code::AlreadyExists)
}

fn check_locked<T>(
    kind: &ObjKind,
    inner: &Inner<T>,
    name: &str,
    uuid: &RawUuid,
) -> Result<Option<Arc<T>>, VirtError> {
    if let Some(e) = inner.by_uuid.get(uuid) {
        if e.name != name {
            // UUID matches but the name does not: refuse, naming the
            // object that has the UUID.
            return Err(VirtError::new(
                kind.exists,
                kind.domain,
                format!(
                    "operation failed: {} '{}' is already defined with uuid {}",
                    kind.noun,
                    e.name,
                    format_uuid(uuid)
                ),
            )
            .with_grpc_code(tonic::Code::AlreadyExists));
        }
        return Ok(Some(e.obj.clone()));
    }
    if let Some(other) = inner.by_name.get(name) {
        // The name is taken by an object with another UUID.
        return Err(exists_error(kind, name, other));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(n: u8) -> RawUuid {
        let mut b = [0u8; 16];
        b[15] = n;
        b
    }

    #[test]
    fn uuids_format_and_parse() {
        let s = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0";
        let p = parse_uuid(s).expect("valid");
        assert_eq!(format_uuid(&p), s);
        assert_eq!(parse_uuid(" 4dea22b31d52d8f32516782e98ab3fa0 "), Some(p));
        assert_eq!(parse_uuid("4dea22b3-1d52-d8f3-2516-782e98ab3fa"), None);
        assert_eq!(parse_uuid("4dea22b3-1d52-d8f3-2516-782e98ab3fa0x"), None);
        assert_eq!(parse_uuid("vm1"), None);
        // The inline formatter agrees with the XML layer's.
        for seed in 0..=255u8 {
            let u: RawUuid = std::array::from_fn(|i| {
                seed.wrapping_mul(37)
                    .wrapping_add((i as u8).wrapping_mul(29))
            });
            assert_eq!(UuidStr::new(&u).as_str(), crate::xml::Uuid(u).to_string());
            assert_eq!(format!("{}", UuidStr::new(&u)), format_uuid(&u));
        }
    }

    #[test]
    fn sorted_by_name_follows_changes() {
        let l: ObjList<&str> = ObjList::new(ObjKind::DOMAIN);
        let _ = l.add("b", &u(2), || "B");
        let _ = l.add("a", &u(1), || "A");
        let first = l.sorted_by_name();
        assert_eq!(first.iter().map(|o| **o).collect::<Vec<_>>(), ["A", "B"]);
        // Unchanged: the same list, not a new sort.
        assert!(Arc::ptr_eq(&first, &l.sorted_by_name()));
        // Ids do not change the order.
        l.set_id(&u(2), Some(1));
        assert!(Arc::ptr_eq(&first, &l.sorted_by_name()));
        let _ = l.add("c", &u(3), || "C");
        assert_eq!(
            l.sorted_by_name().iter().map(|o| **o).collect::<Vec<_>>(),
            ["A", "B", "C"]
        );
        l.remove(&u(1));
        assert_eq!(
            l.sorted_by_name().iter().map(|o| **o).collect::<Vec<_>>(),
            ["B", "C"]
        );
        // An existing object found by add() changes nothing.
        let before = l.sorted_by_name();
        let version = l.version();
        assert!(matches!(l.add("b", &u(2), || "X"), Ok(Added::Existing(_))));
        assert!(Arc::ptr_eq(&before, &l.sorted_by_name()));
        assert_eq!(l.version(), version);
        l.set_id(&u(2), None);
        assert_eq!(l.version(), version);
        l.remove(&u(2));
        assert_ne!(l.version(), version);
    }

    #[test]
    fn add_finds_by_name_uuid_and_id() {
        let l: ObjList<&str> = ObjList::new(ObjKind::DOMAIN);
        assert!(matches!(l.add("a", &u(1), || "A"), Ok(Added::New(_))));
        assert!(matches!(l.add("b", &u(2), || "B"), Ok(Added::New(_))));
        assert_eq!(l.find_by_name("a").map(|e| *e.obj), Some("A"));
        assert_eq!(l.find_by_uuid(&u(2)).map(|e| e.name), Some("b".to_owned()));
        // Inactive objects have no id.
        assert!(l.find_by_id(1).is_none());
        assert!(l.set_id(&u(2), Some(7)));
        assert_eq!(l.find_by_id(7).map(|e| e.name), Some("b".to_owned()));
        assert!(l.set_id(&u(2), Some(8)));
        assert!(l.find_by_id(7).is_none());
        assert!(l.set_id(&u(2), None));
        assert!(l.find_by_id(8).is_none());
        assert!(!l.set_id(&u(9), Some(1)));
        assert_eq!(l.len(), 2);
        let mut names: Vec<String> = l.snapshot().into_iter().map(|e| e.name).collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn same_name_and_uuid_returns_the_existing_object() {
        let l: ObjList<&str> = ObjList::new(ObjKind::DOMAIN);
        let _ = l.add("a", &u(1), || "A");
        let mut built = false;
        match l.add("a", &u(1), || {
            built = true;
            "A2"
        }) {
            Ok(Added::Existing(o)) => assert_eq!(*o, "A"),
            other => panic!("{other:?}"),
        }
        assert!(!built);
        let e = l.insert("a", &u(1), Arc::new("A3")).expect_err("duplicate");
        assert_eq!(e.code, ErrorCode::DomExist);
    }

    #[test]
    fn duplicates_are_refused_as_libvirt() {
        let l: ObjList<&str> = ObjList::new(ObjKind::DOMAIN);
        let _ = l.add("a", &u(1), || "A");
        // Same name, other UUID.
        let e = l.add("a", &u(2), || "X").expect_err("dup name");
        assert_eq!(e.code, ErrorCode::DomExist);
        assert_eq!(
            e.message,
            format!(
                "operation failed: domain 'a' already exists with uuid {}",
                format_uuid(&u(1))
            )
        );
        // Same UUID, other name.
        let e = l.add("z", &u(1), || "X").expect_err("dup uuid");
        assert_eq!(e.code, ErrorCode::DomExist);
        assert_eq!(
            e.message,
            format!(
                "operation failed: domain 'a' is already defined with uuid {}",
                format_uuid(&u(1))
            )
        );
        assert!(l.check("z", &u(1)).is_err());
        assert!(matches!(l.check("z", &u(3)), Ok(None)));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn remove_frees_every_key() {
        let l: ObjList<&str> = ObjList::new(ObjKind::NETWORK);
        let _ = l.add("a", &u(1), || "A");
        l.set_id(&u(1), Some(3));
        assert_eq!(l.remove(&u(1)).map(|o| *o), Some("A"));
        assert!(l.is_empty());
        assert!(l.find_by_id(3).is_none());
        assert!(l.find_by_name("a").is_none());
        assert!(l.remove(&u(1)).is_none());
        // Both keys are free again.
        assert!(matches!(l.add("a", &u(2), || "B"), Ok(Added::New(_))));
    }

    #[test]
    fn lookups_report_libvirt_not_found() {
        let l: ObjList<()> = ObjList::new(ObjKind::DOMAIN);
        let e = l.lookup(&ObjRef::Name("x".into())).expect_err("missing");
        assert_eq!(e.code, ErrorCode::NoDomain);
        assert_eq!(
            e.message,
            "Domain not found: no domain with matching name 'x'"
        );
        let e = l.lookup(&ObjRef::Id(4)).expect_err("missing");
        assert_eq!(e.message, "Domain not found: no domain with matching id 4");
        let e = l.lookup(&ObjRef::Uuid(u(1))).expect_err("missing");
        assert_eq!(
            e.message,
            format!(
                "Domain not found: no domain with matching uuid '{}'",
                format_uuid(&u(1))
            )
        );
        // lookup_obj reports the same errors, and finds what lookup finds.
        for r in [ObjRef::Name("x".into()), ObjRef::Id(4), ObjRef::Uuid(u(1))] {
            assert_eq!(
                l.lookup_obj(&r).expect_err("missing").message,
                l.lookup(&r).expect_err("missing").message
            );
        }
        let _ = l.add("x", &u(1), || ());
        l.set_id(&u(1), Some(4));
        for r in [ObjRef::Name("x".into()), ObjRef::Id(4), ObjRef::Uuid(u(1))] {
            let obj = l.lookup_obj(&r).expect("found");
            assert!(Arc::ptr_eq(&obj, &l.lookup(&r).expect("found").obj));
        }
        let l: ObjList<()> = ObjList::new(ObjKind::NETWORK);
        let e = l.lookup(&ObjRef::Name("n".into())).expect_err("missing");
        assert_eq!(
            e.message,
            "Network not found: no network with matching name 'n'"
        );
    }
}
