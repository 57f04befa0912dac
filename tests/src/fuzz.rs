//! Request fuzzing for the gRPC API, driven by the API's own descriptors.
//!
//! Every RPC is found in [`proto::FILE_DESCRIPTOR_SET`] ([`methods`]), so an
//! RPC added to `proto/` is fuzzed without touching the tests. A request is
//! written as protobuf wire bytes straight from the request message's
//! descriptor ([`Gen`]), which lets it carry what no generated Rust type
//! can: strings that are not UTF-8, enum numbers nobody defined, fields
//! with the wrong wire type, several members of one oneof, truncated
//! messages. The bytes go out through tonic's own client with a
//! pass-through codec ([`RawCodec`]) to `/package.Service/Method`.
//!
//! - [`Rng`]: a small seeded xorshift generator (no `rand` crate here), so
//!   a run can be replayed from its printed seed.
//! - [`Gen`]: per field type, boundary and random values: strings empty,
//!   1 MiB long, with NUL, path traversal, `/`, invalid UTF-8, UUIDs valid
//!   but unknown and malformed, XML templates with a fuzzed name; integers
//!   0, -1, the type's limits; enums out of range; bytes empty and large;
//!   nested messages absent, empty or filled; repeated fields with many
//!   elements. `hits` are strings of real objects (names, UUIDs, paths) used
//!   now and then, so that lookups find something and the call goes deeper.
//! - [`unary`], [`server_streaming`], [`client_streaming`]: the three call
//!   shapes of the API with raw bytes.

use std::sync::OnceLock;
use std::time::Duration;

use prost::bytes::{Buf, BufMut};
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

// ---------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------

/// xorshift64*: small, fast, and reproducible from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n as u64).expect("below n fits usize")
    }

    /// True with probability `num`/`den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// One element of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// A random lowercase identifier of 1..=len characters.
    pub fn ident(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_";
        let n = 1 + self.below(len);
        (0..n)
            .map(|i| {
                let set = if i == 0 { &CHARS[..26] } else { CHARS };
                char::from(*self.pick(set))
            })
            .collect()
    }

    /// A random version-4 UUID in canonical form.
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

/// The seed of this run: `FUZZ_SEED` (decimal or 0x-hex) to replay one,
/// otherwise taken from the clock. Printed either way.
pub fn seed_from_env() -> u64 {
    let seed = match std::env::var("FUZZ_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("FUZZ_SEED={s}: {e}"))
        }
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
        }
    };
    println!("fuzz seed: {seed} (replay with FUZZ_SEED={seed})");
    seed
}

/// A positive integer from environment variable `name`, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={s}: {e}")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------
// The API's methods
// ---------------------------------------------------------------------------

/// The decoded descriptors of the whole API.
pub fn descriptors() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET)
            .expect("the API's descriptor set decodes")
    })
}

/// One RPC of the API.
#[derive(Clone, Debug)]
pub struct Method {
    /// `/virt.domain.v1.DomainService/DefineXml`.
    pub path: String,
    /// `virt.domain.v1.DomainService`.
    pub service: String,
    /// `DefineXml`.
    pub name: String,
    /// The request message.
    pub input: MessageDescriptor,
    /// The client sends a stream.
    pub client_streaming: bool,
    /// The server answers with a stream.
    pub server_streaming: bool,
    /// Who may call it.
    pub access: proto::Access,
}

/// Every RPC of every `virt.*` service, sorted by path.
///
/// # Panics
/// A method has no entry in [`proto::METHOD_ACCESS`].
pub fn methods() -> Vec<Method> {
    let mut out = Vec::new();
    for s in descriptors().services() {
        if !s.full_name().starts_with("virt.") {
            continue;
        }
        for m in s.methods() {
            let path = format!("/{}/{}", s.full_name(), m.name());
            let access = proto::method_access(&path)
                .unwrap_or_else(|| panic!("{path} is not in proto::METHOD_ACCESS"));
            out.push(Method {
                service: s.full_name().to_owned(),
                name: m.name().to_owned(),
                input: m.input(),
                client_streaming: m.is_client_streaming(),
                server_streaming: m.is_server_streaming(),
                access,
                path,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

const WT_VARINT: u32 = 0;
const WT_I64: u32 = 1;
const WT_LEN: u32 = 2;
const WT_I32: u32 = 5;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn put_len(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, WT_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// One MiB: the size of the "huge" strings and bytes.
pub const HUGE: usize = 1 << 20;

/// Generates request messages as wire bytes.
#[derive(Debug)]
pub struct Gen<'a> {
    /// The random source.
    pub rng: &'a mut Rng,
    /// Strings of real objects (names, UUIDs, paths) to use now and then.
    pub hits: &'a [String],
    /// An absolute directory the XML templates may name as a path (a pool
    /// target that a successful build creates): keep it inside the test's
    /// root. The templates' other paths are relative or `/dev/null`.
    pub scratch: &'a str,
    /// The request being made is a plausible one with a fault here and
    /// there (see [`Gen::request`]).
    sane: bool,
    /// The full name of the request message being made.
    request: String,
}

impl<'a> Gen<'a> {
    /// A generator drawing from `rng`.
    pub fn new(rng: &'a mut Rng, hits: &'a [String], scratch: &'a str) -> Gen<'a> {
        Gen {
            rng,
            hits,
            scratch,
            sane: false,
            request: String::new(),
        }
    }

    /// Whether this value keeps to plausible ones (a sane request, and no
    /// fault drawn for it).
    fn plausible(&mut self) -> bool {
        self.sane && !self.rng.chance(1, 8)
    }

    /// A whole request for `desc`. About half are plausible requests (real
    /// names, valid enums, small numbers, no broken encoding) with a bad
    /// value here and there, so that a call gets past the first check and
    /// into the daemon; the others are wild field by field, and some are
    /// mutated as a whole (truncated, unknown fields, a random blob).
    pub fn request(&mut self, desc: &MessageDescriptor) -> Vec<u8> {
        desc.full_name().clone_into(&mut self.request);
        self.sane = self.rng.chance(1, 2);
        if self.sane {
            let m = self.message(desc, 0);
            self.sane = false;
            return m;
        }
        match self.rng.below(20) {
            0 => self.blob(),
            // A well-formed message cut short.
            1 => {
                let mut m = self.message(desc, 0);
                if !m.is_empty() {
                    let cut = self.rng.below(m.len());
                    m.truncate(cut);
                }
                m
            }
            // Unknown field numbers around a message.
            2 => {
                let mut m = self.message(desc, 0);
                put_len(&mut m, 999, b"unknown");
                put_tag(&mut m, 536_870_911, WT_VARINT);
                put_varint(&mut m, 7);
                m
            }
            _ => self.message(desc, 0),
        }
    }

    /// Random bytes of a random length: most do not decode as the
    /// request; the ones that do carry fields nobody chose.
    pub fn blob(&mut self) -> Vec<u8> {
        let n = *self.rng.pick(&[0usize, 1, 2, 3, 7, 16, 64, 1000]);
        self.rng.bytes(n)
    }

    /// A message for `desc`, every field set or not at random.
    pub fn message(&mut self, desc: &MessageDescriptor, depth: usize) -> Vec<u8> {
        let mut out = Vec::new();
        if depth > 4 {
            return out;
        }
        // Oneof members: usually one, sometimes none or two (the last wins).
        let mut oneof_done = Vec::new();
        for oneof in desc.oneofs() {
            if oneof.is_synthetic() {
                continue;
            }
            let fields: Vec<FieldDescriptor> = oneof.fields().collect();
            let n = match self.rng.below(10) {
                _ if self.sane => 1,
                0 => 0,
                1 => 2,
                _ => 1,
            };
            for _ in 0..n {
                let f = self.rng.pick(&fields).clone();
                self.field(&mut out, &f, depth);
            }
            oneof_done.extend(fields.iter().map(FieldDescriptor::number));
        }
        for f in desc.fields() {
            if oneof_done.contains(&f.number()) {
                continue;
            }
            if self.rng.chance(2, 3) {
                self.field(&mut out, &f, depth);
            }
        }
        out
    }

    /// One field (all elements of a repeated one) appended to `out`.
    fn field(&mut self, out: &mut Vec<u8>, f: &FieldDescriptor, depth: usize) {
        let num = f.number();
        // Now and then the wrong wire type: the request cannot decode.
        if !self.sane && self.rng.chance(1, 60) {
            let wt = match wire_type(&f.kind()) {
                WT_LEN => WT_VARINT,
                _ => WT_LEN,
            };
            put_tag(out, num, wt);
            if wt == WT_LEN {
                put_varint(out, 3);
                out.extend_from_slice(b"xyz");
            } else {
                put_varint(out, 1);
            }
            return;
        }
        if f.is_list() {
            let count = match self.rng.below(8) {
                n if self.sane && n < 7 => n % 3,
                0..=1 => 0,
                2..=4 => 1,
                5 => 2 + self.rng.below(3),
                _ => 100 + self.rng.below(900),
            };
            let packable = wire_type(&f.kind()) != WT_LEN;
            if packable && count > 0 && self.rng.chance(1, 2) {
                let mut packed = Vec::new();
                for _ in 0..count {
                    self.scalar(&mut packed, &f.kind());
                }
                put_len(out, num, &packed);
            } else {
                for _ in 0..count {
                    self.value(out, f, depth);
                }
            }
            return;
        }
        self.value(out, f, depth);
    }

    /// One value of field `f`, with its tag.
    fn value(&mut self, out: &mut Vec<u8>, f: &FieldDescriptor, depth: usize) {
        let num = f.number();
        match f.kind() {
            Kind::String => {
                let s = self.string(f.name());
                put_len(out, num, &s);
            }
            Kind::Bytes => {
                let b = match self.rng.below(4) {
                    0 => Vec::new(),
                    1 => vec![0u8; HUGE],
                    _ => {
                        let n = self.rng.below(4096);
                        self.rng.bytes(n)
                    }
                };
                put_len(out, num, &b);
            }
            Kind::Message(m) => {
                let body = if self.rng.chance(1, if self.sane { 12 } else { 4 }) {
                    Vec::new()
                } else {
                    self.message(&m, depth + 1)
                };
                put_len(out, num, &body);
            }
            k => {
                put_tag(out, num, wire_type(&k));
                self.scalar(out, &k);
            }
        }
    }

    /// A scalar value without its tag (packed element or after a tag).
    fn scalar(&mut self, out: &mut Vec<u8>, kind: &Kind) {
        if self.plausible() {
            let r = &mut *self.rng;
            match kind {
                // Flags mostly off: each one set asks for more.
                Kind::Bool => put_varint(out, u64::from(r.chance(1, 8))),
                Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Sint32 | Kind::Sint64 => {
                    put_varint(out, *r.pick(&[0, 1, 2]));
                }
                Kind::Uint64 => put_varint(out, *r.pick(&[0, 1, 512, 4096, 65_536])),
                Kind::Enum(e) => {
                    let known: Vec<i32> = e.values().map(|v| v.number()).collect();
                    put_varint(out, i64::from(*r.pick(&known)) as u64);
                }
                _ => return self.wild_scalar(out, kind),
            }
            return;
        }
        self.wild_scalar(out, kind);
    }

    /// A boundary or random value of a scalar kind.
    fn wild_scalar(&mut self, out: &mut Vec<u8>, kind: &Kind) {
        let r = &mut *self.rng;
        match kind {
            Kind::Bool => put_varint(out, *r.pick(&[0, 1, 1, 2, u64::MAX])),
            Kind::Int32 => {
                let v = *r.pick(&[0i64, 1, -1, 2, i64::from(i32::MAX), i64::from(i32::MIN)]);
                let v = if r.chance(1, 4) {
                    i64::from(r.next_u64() as i32)
                } else {
                    v
                };
                put_varint(out, v as u64);
            }
            Kind::Int64 => {
                let v = *r.pick(&[0i64, 1, -1, i64::MAX, i64::MIN, 1 << 40]);
                let v = if r.chance(1, 4) {
                    r.next_u64().cast_signed()
                } else {
                    v
                };
                put_varint(out, v as u64);
            }
            Kind::Uint32 => {
                let v = *r.pick(&[0u64, 1, 2, 100, u64::from(u32::MAX), u64::MAX]);
                let v = if r.chance(1, 4) {
                    u64::from(r.next_u64() as u32)
                } else {
                    v
                };
                put_varint(out, v);
            }
            Kind::Uint64 => {
                let v = *r.pick(&[0u64, 1, 512, 4096, 1 << 20, 1 << 40, 1 << 63, u64::MAX]);
                let v = if r.chance(1, 4) { r.next_u64() } else { v };
                put_varint(out, v);
            }
            Kind::Sint32 => put_varint(out, zigzag(*r.pick(&[0i64, -1, i64::from(i32::MIN)]))),
            Kind::Sint64 => put_varint(out, zigzag(*r.pick(&[0i64, -1, i64::MIN, i64::MAX]))),
            Kind::Fixed32 | Kind::Sfixed32 => {
                out.put_u32_le(*r.pick(&[0u32, 1, u32::MAX, 0x8000_0000]));
            }
            Kind::Fixed64 | Kind::Sfixed64 => {
                out.put_u64_le(*r.pick(&[0u64, 1, u64::MAX, 1 << 63]));
            }
            Kind::Float => {
                out.put_f32_le(*r.pick(&[0.0f32, -0.0, f32::NAN, f32::INFINITY, f32::MAX]));
            }
            Kind::Double => {
                out.put_f64_le(*r.pick(&[0.0f64, -1.5, f64::NAN, f64::NEG_INFINITY, f64::MAX]));
            }
            Kind::Enum(e) => {
                let known: Vec<i32> = e.values().map(|v| v.number()).collect();
                let v = if r.chance(1, 2) {
                    *r.pick(&known)
                } else {
                    *r.pick(&[-1, 99, 1000, i32::MAX, i32::MIN])
                };
                put_varint(out, i64::from(v) as u64);
            }
            Kind::String | Kind::Bytes | Kind::Message(_) => {
                // Not packable: a length-prefixed empty value.
                put_varint(out, 0);
            }
        }
    }

    /// The bytes of a string field named `field`.
    pub fn string(&mut self, field: &str) -> Vec<u8> {
        if field.contains("xml") && (self.sane || self.rng.chance(1, 2)) {
            let doc = if self.plausible() {
                doc_for(&self.request).unwrap_or_else(|| *self.rng.pick(Doc::ALL))
            } else {
                *self.rng.pick(Doc::ALL)
            };
            let plausible = self.plausible();
            let name = self.name();
            let scratch = format!("{}/{}", self.scratch, self.rng.ident(8));
            return xml_template(self.rng, doc, plausible, &name, &scratch).into_bytes();
        }
        if !self.hits.is_empty() && (self.plausible() || self.rng.chance(1, 3)) {
            return self.hit(field).into_bytes();
        }
        let r = &mut *self.rng;
        match r.below(24) {
            0 => Vec::new(),
            1 => vec![b'a'; HUGE],
            2 => b"a\0b".to_vec(),
            3 => b"\0".to_vec(),
            4 => b"../../etc/passwd".to_vec(),
            5 => b"a/b".to_vec(),
            6 => r
                .pick(&[&b"/"[..], b".", b"..", b"/etc/passwd", b"./x"])
                .to_vec(),
            // Not UTF-8: prost refuses the whole request.
            7 => r
                .pick(&[&b"\xff\xfe"[..], b"ok\xc3\x28", b"\xed\xa0\x80"])
                .to_vec(),
            8 => r.uuid().into_bytes(),
            9 => r.uuid().to_uppercase().into_bytes(),
            10 => r.uuid().replace('-', "").into_bytes(),
            11 => r
                .pick(&[
                    "1234",
                    "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
                    "00000000-0000-0000-0000-000000000000",
                    "4dea22b3-1d52-d8f3-2516-782e98ab3fa",
                    "4dea22b3-1d52-d8f3-2516-782e98ab3fa00",
                ])
                .as_bytes()
                .to_vec(),
            12 => "n".repeat(300).into_bytes(),
            13 => r
                .pick(&[
                    "a b",
                    "-x",
                    "a\nb",
                    "$(reboot)",
                    "<>&'\"",
                    "ümlaut-✓",
                    " ",
                    "\t",
                ])
                .as_bytes()
                .to_vec(),
            14 => r
                .pick(&["-1", "18446744073709551616", "0x10", "1e9", "NaN"])
                .as_bytes()
                .to_vec(),
            15 => {
                let n = r.below(64);
                r.bytes(n)
            }
            _ => r.ident(24).into_bytes(),
        }
    }

    /// A real object's string for a field named `field`: one that looks
    /// like it (a UUID for `uuid`, a path for `path`, ...) most of the time.
    fn hit(&mut self, field: &str) -> String {
        let uuid = |h: &&String| h.len() == 36 && h.matches('-').count() == 4;
        let path = |h: &&String| h.starts_with('/');
        let fitting: Vec<&String> = match field {
            f if f.contains("uuid") => self.hits.iter().filter(uuid).collect(),
            f if f.contains("path") || f == "key" => self.hits.iter().filter(path).collect(),
            _ => self.hits.iter().filter(|h| !uuid(h) && !path(h)).collect(),
        };
        if fitting.is_empty() || self.rng.chance(1, 4) {
            return self.rng.pick(self.hits).clone();
        }
        (*self.rng.pick(&fitting)).clone()
    }

    /// A name for an XML template: a new valid one, a real object's, or
    /// a fuzz value.
    fn name(&mut self) -> String {
        if !self.hits.is_empty() && self.rng.chance(1, 6) {
            return self.rng.pick(self.hits).clone();
        }
        if self.plausible() || self.rng.chance(3, 8) {
            return format!("fz-{}", self.rng.ident(8));
        }
        let sane = std::mem::replace(&mut self.sane, false);
        let s = String::from_utf8_lossy(&self.string("name")).into_owned();
        self.sane = sane;
        s
    }
}

/// The wire type a field of `kind` is written with.
fn wire_type(kind: &Kind) -> u32 {
    match kind {
        Kind::String | Kind::Bytes | Kind::Message(_) => WT_LEN,
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => WT_I64,
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => WT_I32,
        _ => WT_VARINT,
    }
}

/// The kinds of XML document the API takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Doc {
    Domain,
    Device,
    Pool,
    Volume,
    Network,
    NetworkSection,
    Port,
    Broken,
}

impl Doc {
    const ALL: &'static [Doc] = &[
        Doc::Domain,
        Doc::Device,
        Doc::Pool,
        Doc::Volume,
        Doc::Network,
        Doc::NetworkSection,
        Doc::Port,
        Doc::Broken,
    ];
}

/// The document a request (full message name) takes in its `xml`, for
/// plausible requests. Other requests get any kind.
fn doc_for(request: &str) -> Option<Doc> {
    let short = request.rsplit('.').next().unwrap_or(request);
    Some(match short {
        "DefineXmlRequest" | "CreateRequest" | "DomainXmlToNativeRequest" => Doc::Domain,
        "AttachDeviceRequest" | "DetachDeviceRequest" | "UpdateDeviceRequest" => Doc::Device,
        "DefinePoolRequest" | "CreatePoolRequest" => Doc::Pool,
        "CreateVolumeRequest" | "CreateVolumeFromRequest" => Doc::Volume,
        "DefineNetworkRequest" | "CreateNetworkRequest" => Doc::Network,
        "UpdateNetworkRequest" => Doc::NetworkSection,
        "CreatePortRequest" => Doc::Port,
        _ => return None,
    })
}

/// An XML document of kind `doc` with `name` where a name goes (raw: it
/// may break the document) and numbers that are `plausible` or boundary
/// ones. Paths are `scratch`, relative ones, empty or `/dev/null`: a
/// template never names a place outside the test's root that a daemon
/// could create. Networks get no addresses (a started one would route
/// next to the host's and other tests' networks).
fn xml_template(r: &mut Rng, doc: Doc, plausible: bool, name: &str, scratch: &str) -> String {
    let num = if plausible {
        *r.pick(&["1", "64", "65536"])
    } else {
        *r.pick(&[
            "0",
            "-1",
            "1",
            "64",
            "18446744073709551615",
            "99999999999999999999",
            "x",
        ])
    };
    let path = if plausible {
        scratch
    } else {
        *r.pick(&["/dev/null", "../../etc/passwd", "", "rel/dir", scratch])
    };
    let short = format!("fzb{}", r.ident(6));
    match doc {
        Doc::Domain => match r.below(3) {
            0 => format!(
                "<domain type='qemu'><name>{name}</name><memory unit='MiB'>{num}</memory>\
                 <vcpu>{num}</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
            ),
            1 => format!("<domain type='kvm'><name>{name}</name><uuid>{name}</uuid></domain>"),
            _ => format!(
                "<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>\
                 <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
                 <disk type='file' device='disk'><source file='{path}'/>\
                 <target dev='vda' bus='virtio'/></disk></devices></domain>"
            ),
        },
        Doc::Device => match r.below(5) {
            0 => {
                let dev = *r.pick(&["vdb", "sdb", "hdc", name]);
                format!(
                    "<disk type='file' device='disk'><source file='{path}'/>\
                     <target dev='{dev}' bus='virtio'/></disk>"
                )
            }
            1 => format!(
                "<interface type='network'><mac address='52:54:00:00:01:{:02x}'/>\
                 <source network='{name}'/><model type='virtio'/></interface>",
                r.below(256)
            ),
            2 => format!("<controller type='usb' index='{num}'/>"),
            3 => format!("<input type='{name}' bus='usb'/>"),
            _ => format!("<watchdog model='{name}' action='reset'/>"),
        },
        Doc::Pool => format!(
            "<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"
        ),
        Doc::Volume => {
            let unit = *r.pick(&["bytes", "KiB", "M", name]);
            let format = *r.pick(&["raw", "qcow2", name]);
            format!(
                "<volume><name>{name}</name><capacity unit='{unit}'>{num}</capacity>\
                 <target><format type='{format}'/></target></volume>"
            )
        }
        Doc::Network => {
            let bridge = if plausible { short.as_str() } else { name };
            format!("<network><name>{name}</name><bridge name='{bridge}'/></network>")
        }
        Doc::NetworkSection => match r.below(3) {
            0 => format!("<host mac='52:54:00:00:00:{num}' name='{name}' ip='10.0.0.{num}'/>"),
            1 => format!("<range start='10.0.0.{num}' end='10.0.0.{num}'/>"),
            _ => format!("<portgroup name='{name}'/>"),
        },
        Doc::Port => format!(
            "<networkport><owner name='{name}' uuid='{}'/>\
             <mac address='52:54:00:00:02:01'/><plug type='network' bridge='{short}'/></networkport>",
            r.uuid()
        ),
        Doc::Broken => match r.below(2) {
            0 => format!("<{name}/>"),
            _ => r
                .pick(&[
                    "<",
                    "<domain>",
                    "<?xml version='1.0'?>",
                    "<a><b></a>",
                    "&bogus;",
                    "",
                ])
                .to_string(),
        },
    }
}

// ---------------------------------------------------------------------------
// Calls with raw bytes
// ---------------------------------------------------------------------------

/// A codec that passes message bytes through untouched.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut v = vec![0u8; buf.remaining()];
        buf.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

fn grpc(channel: Channel) -> tonic::client::Grpc<Channel> {
    tonic::client::Grpc::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

fn path_of(path: &str) -> http::uri::PathAndQuery {
    path.parse().expect("a gRPC path")
}

/// A unary call of `path` with `body`: the reply's bytes or the status.
///
/// # Errors
/// The call's status.
pub async fn unary(channel: Channel, path: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut g = grpc(channel);
    g.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    g.unary(tonic::Request::new(body), path_of(path), RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

/// How a server-streaming call went.
#[derive(Debug)]
pub enum StreamEnd {
    /// The stream ended with OK after this many messages.
    Finished(usize),
    /// Still open (no error) after this many messages when we stopped reading.
    Open(usize),
}

/// A server-streaming call: reads messages until the stream ends or
/// `read_for` passes, then drops it.
///
/// # Errors
/// The call's status, at its start or after some messages.
pub async fn server_streaming(
    channel: Channel,
    path: &str,
    body: Vec<u8>,
    read_for: Duration,
) -> Result<StreamEnd, Status> {
    let mut g = grpc(channel);
    g.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let mut stream = g
        .server_streaming(tonic::Request::new(body), path_of(path), RawCodec)
        .await?
        .into_inner();
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + read_for;
    loop {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Err(_) => return Ok(StreamEnd::Open(n)),
            Ok(Ok(Some(_))) => n += 1,
            Ok(Ok(None)) => return Ok(StreamEnd::Finished(n)),
            Ok(Err(s)) => return Err(s),
        }
    }
}

/// A client-streaming call sending `messages`, then ending the stream.
///
/// # Errors
/// The call's status.
pub async fn client_streaming(
    channel: Channel,
    path: &str,
    messages: Vec<Vec<u8>>,
) -> Result<Vec<u8>, Status> {
    let mut g = grpc(channel);
    g.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    g.client_streaming(
        tonic::Request::new(tokio_stream::iter(messages)),
        path_of(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_access_table_is_found() {
        let found: Vec<String> = methods().into_iter().map(|m| m.path).collect();
        let table: Vec<String> = proto::METHOD_ACCESS
            .iter()
            .map(|(p, _)| (*p).to_owned())
            .collect();
        assert_eq!(found, table);
    }

    #[test]
    fn generated_requests_decode_or_fail_cleanly() {
        use prost_reflect::DynamicMessage;
        let mut rng = Rng::new(7);
        let hits = vec!["x".to_owned()];
        let mut decoded = 0;
        for m in methods() {
            for _ in 0..20 {
                let mut g = Gen::new(&mut rng, &hits, "/tmp/x");
                let bytes = g.request(&m.input);
                if DynamicMessage::decode(m.input.clone(), &bytes[..]).is_ok() {
                    decoded += 1;
                }
            }
        }
        // Many requests decode (plausible ones, and wild ones that happen
        // to); some do not (non-UTF-8, cut short, blobs). prost-reflect is
        // more lenient than prost: it keeps a field of the wrong wire type
        // as an unknown one.
        let all = methods().len() * 20;
        assert!(
            decoded * 5 > all && decoded < all,
            "{decoded} of {all} decode"
        );
    }

    #[test]
    fn uuids_are_canonical() {
        let mut r = Rng::new(1);
        for _ in 0..100 {
            let u = r.uuid();
            assert_eq!(u.len(), 36, "{u}");
            assert_eq!(&u[14..15], "4", "{u}");
        }
    }
}
