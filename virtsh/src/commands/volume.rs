//! "Storage Volume" commands (`tools/virsh-volume.c`): `vol-create`,
//! `vol-create-as`, `vol-create-from`, `vol-clone`, `vol-delete`,
//! `vol-wipe`, `vol-resize`, `vol-list`, `vol-info`, `vol-dumpxml`,
//! `vol-path`, `vol-key`, `vol-name`, `vol-pool`, and the data transfers
//! `vol-upload` and `vol-download` ([`stream`]).
//!
//! A volume is found as virsh does (`virshCommandOptVolBy`): by name in
//! the `--pool` given, else by key, else by path.

use proto::storage::v1 as pb;

use crate::cli::{CommandDef, Group, HandlerFuture, Invocation, OptDef};
use crate::commands::domain::{print_extra, read_xml_file, string_req};
use crate::commands::storage::{
    BY_ANY, BY_UUID, Client, esc, format_capacity, lookup_vol, opt_pool, opt_vol, parent_pool,
    parse_size, pool_ref, print_xml, sort_by_name, vol_ref,
};
use crate::ctl::Ctl;
use crate::error::Error;
use crate::table::Table;

pub mod stream;

/// `--vol` of most commands.
const OPT_VOL: OptDef = OptDef::string("vol", "vol name, key or path")
    .required()
    .positional();
/// The optional `--pool` of the commands taking a volume; virsh also takes
/// it positionally (`vol-info VOL POOL`).
const OPT_POOL_OPTIONAL: OptDef = OptDef::string("pool", "pool name or uuid").positional();
/// `--prealloc-metadata` of the creating commands.
const OPT_PREALLOC: OptDef = OptDef::flag(
    "prealloc-metadata",
    "preallocate metadata (for qcow2 instead of full allocation)",
);
/// `--reflink` of `vol-create-from` and `vol-clone`.
const OPT_REFLINK: OptDef = OptDef::flag("reflink", "use btrfs COW lightweight copy");
/// `--validate` of `vol-create` and `vol-create-from`.
const OPT_VALIDATE: OptDef = OptDef::flag("validate", "validate the XML against the schema");
/// `--file` of `vol-create` and `vol-create-from`.
const OPT_XML_FILE: OptDef = OptDef::string("file", "file containing an XML vol description")
    .required()
    .positional();

/// The commands of this module.
pub const COMMANDS: &[CommandDef] = &[
    CommandDef::new(
        "vol-clone",
        Group::Volume,
        "clone a volume.",
        "Clone an existing volume within the parent pool.",
        cmd_vol_clone,
    )
    .opts(&[
        OPT_VOL,
        OptDef::string("newname", "clone name")
            .required()
            .positional(),
        OPT_POOL_OPTIONAL,
        OPT_PREALLOC,
        OPT_REFLINK,
        OptDef::flag("print-xml", "print XML document rather than clone the volume"),
    ]),
    CommandDef::new(
        "vol-create-as",
        Group::Volume,
        "create a volume from a set of args",
        "Create a vol.",
        cmd_vol_create_as,
    )
    .opts(&[
        OptDef::string("pool", "pool name").required().positional(),
        OptDef::string("name", "name of the volume")
            .required()
            .positional(),
        OptDef::string("capacity", "size of the vol, as scaled integer (default bytes)")
            .required()
            .positional(),
        OptDef::string(
            "allocation",
            "initial allocation size, as scaled integer (default bytes)",
        ),
        OptDef::string("format", "file format type raw,bochs,qcow,qcow2,qed,vmdk"),
        OptDef::string("backing-vol", "the backing volume if taking a snapshot"),
        OptDef::string(
            "backing-vol-format",
            "format of backing volume if taking a snapshot",
        ),
        OPT_PREALLOC,
        OptDef::flag("print-xml", "print XML document, but don't define/create"),
    ]),
    CommandDef::new(
        "vol-create",
        Group::Volume,
        "create a vol from an XML file",
        "Create a vol.",
        cmd_vol_create,
    )
    .opts(&[
        OptDef::string("pool", "pool name").required().positional(),
        OPT_XML_FILE,
        OPT_PREALLOC,
        OPT_VALIDATE,
    ]),
    CommandDef::new(
        "vol-create-from",
        Group::Volume,
        "create a vol, using another volume as input",
        "Create a vol from an existing volume.",
        cmd_vol_create_from,
    )
    .opts(&[
        OptDef::string("pool", "pool name or uuid")
            .required()
            .positional(),
        OPT_XML_FILE,
        OPT_VOL,
        OptDef::string("inputpool", "pool name or uuid of the input volume's pool"),
        OPT_PREALLOC,
        OPT_REFLINK,
        OPT_VALIDATE,
    ]),
    CommandDef::new(
        "vol-delete",
        Group::Volume,
        "delete a vol",
        "Delete a given vol.",
        cmd_vol_delete,
    )
    .opts(&[
        OPT_VOL,
        OPT_POOL_OPTIONAL,
        OptDef::flag(
            "delete-snapshots",
            "delete snapshots associated with volume (must be supported by storage driver)",
        ),
    ]),
    CommandDef::new(
        "vol-download",
        Group::Volume,
        "download volume contents to a file",
        "Download volume contents to a file",
        stream::cmd_vol_download,
    )
    .opts(&[
        OPT_VOL,
        OptDef::string("file", "file").required().positional(),
        OPT_POOL_OPTIONAL,
        OptDef::int("offset", "volume offset to download from"),
        OptDef::int("length", "amount of data to download"),
        OptDef::flag("sparse", "preserve sparseness of volume"),
    ]),
    CommandDef::new(
        "vol-dumpxml",
        Group::Volume,
        "vol information in XML",
        "Output the vol information as an XML dump to stdout.",
        cmd_vol_dumpxml,
    )
    .opts(&[OPT_VOL, OPT_POOL_OPTIONAL]),
    CommandDef::new(
        "vol-info",
        Group::Volume,
        "storage vol information",
        "Returns basic information about the storage vol.",
        cmd_vol_info,
    )
    .opts(&[
        OPT_VOL,
        OPT_POOL_OPTIONAL,
        OptDef::flag(
            "bytes",
            "sizes are represented in bytes rather than pretty units",
        ),
        OptDef::flag(
            "physical",
            "return the physical size of the volume in allocation field",
        ),
    ]),
    CommandDef::new(
        "vol-key",
        Group::Volume,
        "returns the volume key for a given volume name or path",
        "",
        cmd_vol_key,
    )
    .opts(&[
        OptDef::string("vol", "volume name or path")
            .required()
            .positional(),
        OPT_POOL_OPTIONAL,
    ]),
    CommandDef::new(
        "vol-list",
        Group::Volume,
        "list vols",
        "Returns list of vols by pool.",
        cmd_vol_list,
    )
    .opts(&[
        OptDef::string("pool", "pool name or uuid")
            .required()
            .positional(),
        OptDef::flag("details", "display extended details for volumes"),
    ]),
    CommandDef::new(
        "vol-name",
        Group::Volume,
        "returns the volume name for a given volume key or path",
        "",
        cmd_vol_name,
    )
    .opts(&[OptDef::string("vol", "volume key or path")
        .required()
        .positional()]),
    CommandDef::new(
        "vol-path",
        Group::Volume,
        "returns the volume path for a given volume name or key",
        "",
        cmd_vol_path,
    )
    .opts(&[
        OptDef::string("vol", "volume name or key")
            .required()
            .positional(),
        OPT_POOL_OPTIONAL,
    ]),
    CommandDef::new(
        "vol-pool",
        Group::Volume,
        "returns the storage pool for a given volume key or path",
        "",
        cmd_vol_pool,
    )
    .opts(&[
        OptDef::string("vol", "volume key or path")
            .required()
            .positional(),
        OptDef::flag("uuid", "return the pool uuid rather than pool name"),
    ]),
    CommandDef::new(
        "vol-resize",
        Group::Volume,
        "resize a vol",
        "Resizes a storage volume. This is safe only for storage volumes not in use by an active guest.\nSee blockresize for live resizing.",
        cmd_vol_resize,
    )
    .opts(&[
        OPT_VOL,
        OptDef::string(
            "capacity",
            "new capacity for the vol, as scaled integer (default bytes)",
        )
        .required()
        .positional(),
        OPT_POOL_OPTIONAL,
        OptDef::flag(
            "allocate",
            "allocate the new capacity, rather than leaving it sparse",
        ),
        OptDef::flag(
            "delta",
            "use capacity as a delta to current size, rather than the new size",
        ),
        OptDef::flag("shrink", "allow the resize to shrink the volume"),
    ]),
    CommandDef::new(
        "vol-upload",
        Group::Volume,
        "upload file contents to a volume",
        "Upload file contents to a volume",
        stream::cmd_vol_upload,
    )
    .opts(&[
        OPT_VOL,
        OptDef::string("file", "file").required().positional(),
        OPT_POOL_OPTIONAL,
        OptDef::int("offset", "volume offset to upload to"),
        OptDef::int("length", "amount of data to upload"),
        OptDef::flag("sparse", "preserve sparseness of volume"),
    ]),
    CommandDef::new(
        "vol-wipe",
        Group::Volume,
        "wipe a vol",
        "Ensure data previously on a volume is not accessible to future reads",
        cmd_vol_wipe,
    )
    .opts(&[
        OPT_VOL,
        OPT_POOL_OPTIONAL,
        OptDef::string("algorithm", "perform selected wiping algorithm"),
    ]),
];

/// virsh's wipe algorithm names, in `virStorageVolWipeAlgorithm` order.
pub const WIPE_ALGORITHMS: &[(&str, pb::WipeAlgorithm)] = &[
    ("zero", pb::WipeAlgorithm::Zero),
    ("nnsa", pb::WipeAlgorithm::Nnsa),
    ("dod", pb::WipeAlgorithm::Dod),
    ("bsi", pb::WipeAlgorithm::Bsi),
    ("gutmann", pb::WipeAlgorithm::Gutmann),
    ("schneier", pb::WipeAlgorithm::Schneier),
    ("pfitzner7", pb::WipeAlgorithm::Pfitzner7),
    ("pfitzner33", pb::WipeAlgorithm::Pfitzner33),
    ("random", pb::WipeAlgorithm::Random),
    ("trim", pb::WipeAlgorithm::Trim),
];

/// The `--algorithm` of `vol-wipe` (default: zero).
///
/// # Errors
/// `Unsupported algorithm 'X'`.
pub fn wipe_algorithm(name: Option<&str>) -> Result<pb::WipeAlgorithm, Error> {
    let Some(name) = name else {
        return Ok(pb::WipeAlgorithm::Zero);
    };
    WIPE_ALGORITHMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .ok_or_else(|| Error::msg(format!("Unsupported algorithm '{name}'")))
}

/// virsh's `virshVolumeTypeToString`.
pub fn vol_type_str(t: i32) -> &'static str {
    match pb::VolumeType::try_from(t) {
        Ok(pb::VolumeType::File) => "file",
        Ok(pb::VolumeType::Block) => "block",
        Ok(pb::VolumeType::Dir) => "dir",
        Ok(pb::VolumeType::Network) => "network",
        Ok(pb::VolumeType::Netdir) => "netdir",
        Ok(pb::VolumeType::Ploop) => "ploop",
        Err(_) => "unknown",
    }
}

/// The values `vol-create-as` builds its XML from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolXmlArgs {
    /// `name`.
    pub name: String,
    /// `capacity`, in bytes.
    pub capacity: u64,
    /// `--allocation`, in bytes.
    pub allocation: Option<u64>,
    /// `--format`.
    pub format: Option<String>,
    /// The path of the `--backing-vol` (looked up by then).
    pub backing_path: Option<String>,
    /// `--backing-vol-format`.
    pub backing_format: Option<String>,
}

impl VolXmlArgs {
    /// The volume XML, laid out as virsh's `cmdVolCreateAs` builds it
    /// (values are XML-escaped).
    pub fn to_xml(&self) -> String {
        let mut x = String::from("<volume>\n");
        x.push_str(&format!("  <name>{}</name>\n", esc(&self.name)));
        x.push_str(&format!("  <capacity>{}</capacity>\n", self.capacity));
        if let Some(a) = self.allocation {
            x.push_str(&format!("  <allocation>{a}</allocation>\n"));
        }
        if let Some(f) = &self.format {
            x.push_str("  <target>\n");
            x.push_str(&format!("    <format type='{}'/>\n", esc(f)));
            x.push_str("  </target>\n");
        }
        if let Some(p) = &self.backing_path {
            x.push_str("  <backingStore>\n");
            x.push_str(&format!("    <path>{}</path>\n", esc(p)));
            if let Some(f) = &self.backing_format {
                x.push_str(&format!("    <format type='{}'/>\n", esc(f)));
            }
            x.push_str("  </backingStore>\n");
        }
        x.push_str("</volume>\n");
        x
    }
}

/// The clone XML of `vol-clone`: the original volume's XML with the
/// content of `/volume/name` replaced by `newname` (the rest of the
/// document is kept as the daemon wrote it).
///
/// # Errors
/// The XML does not parse or has no `/volume/name`.
pub fn clone_xml(orig: &str, newname: &str) -> Result<String, Error> {
    let root = common::xml::parse(orig).map_err(|e| Error::msg(e.to_string()))?;
    if root.name != "volume" || root.child("name").is_none() {
        return Err(Error::msg("Failed to allocate XML buffer"));
    }
    // The root's first `<name` child: the first `<name>` or `<name/>` at
    // depth one. Walk the tags, counting depth.
    let bytes = orig.as_bytes();
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(off) = orig[i..].find('<') {
        let start = i + off;
        let rest = &orig[start..];
        if rest.starts_with("<?") || rest.starts_with("<!--") || rest.starts_with("<!") {
            let end = if rest.starts_with("<!--") {
                rest.find("-->").map(|e| e + 3)
            } else {
                rest.find('>').map(|e| e + 1)
            };
            i = start + end.unwrap_or(rest.len());
            continue;
        }
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..=close];
        if tag.starts_with("</") {
            depth = depth.saturating_sub(1);
            i = start + close + 1;
            continue;
        }
        let self_closing = tag.ends_with("/>");
        let is_name = depth == 1
            && rest[1..].starts_with("name")
            && matches!(
                bytes.get(start + 5),
                Some(b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r')
            );
        if is_name {
            let content_start = start + close + 1;
            let content_end = if self_closing {
                content_start
            } else {
                match orig[content_start..].find("</name") {
                    Some(e) => content_start + e,
                    None => break,
                }
            };
            let mut out = String::with_capacity(orig.len() + newname.len());
            if self_closing {
                out.push_str(&orig[..start]);
                out.push_str(&format!("<name>{}</name>", esc(newname)));
                out.push_str(&orig[content_start..]);
            } else {
                out.push_str(&orig[..content_start]);
                out.push_str(&esc(newname));
                out.push_str(&orig[content_end..]);
            }
            return Ok(out);
        }
        if !self_closing {
            depth += 1;
        }
        i = start + close + 1;
    }
    Err(Error::msg("Failed to allocate XML buffer"))
}

/// `vol-create POOL FILE [--prealloc-metadata] [--validate]`.
fn cmd_vol_create<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, _) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        let file = string_req(inv, "file")?.unwrap_or_default();
        let xml = read_xml_file(file)?;
        let req = pb::CreateVolumeRequest {
            pool: Some(pool_ref(&p)),
            xml,
            prealloc_metadata: inv.flag("prealloc-metadata"),
            validate: inv.flag("validate"),
        };
        let v = client
            .create_volume(req)
            .await
            .map_err(|s| {
                Error::context(format!("Failed to create vol from {file}"), Some(s.into()))
            })?
            .into_inner()
            .volume
            .unwrap_or_default();
        print_extra(ctl, &format!("Vol {} created from {file}", v.name))
    })
}

/// The backing volume of `vol-create-as`: by name in `pool`, then by key,
/// then by path.
async fn backing_vol(client: &mut Client, pool: &pb::Pool, arg: &str) -> Result<pb::Volume, Error> {
    let attempts = [
        pb::volume_ref::By::PoolVolume(pb::PoolVolume {
            pool: pool.name.clone(),
            name: arg.to_owned(),
        }),
        pb::volume_ref::By::Key(arg.to_owned()),
        pb::volume_ref::By::Path(arg.to_owned()),
    ];
    let mut last = None;
    for by in attempts {
        let req = pb::LookupVolumeRequest {
            volume: Some(pb::VolumeRef { by: Some(by) }),
        };
        match client.lookup_volume(req).await {
            Ok(r) => {
                if let Some(v) = r.into_inner().volume {
                    return Ok(v);
                }
            }
            Err(s) => last = Some(Error::from(s)),
        }
    }
    Err(Error::context(format!("failed to get vol '{arg}'"), last))
}

/// `vol-create-as POOL NAME CAPACITY [--allocation SIZE] [--format F]
/// [--backing-vol VOL] [--backing-vol-format F] [--prealloc-metadata]
/// [--print-xml]`.
fn cmd_vol_create_as<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, _) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        let name = string_req(inv, "name")?.unwrap_or_default().to_owned();
        let capacity = parse_size(string_req(inv, "capacity")?.unwrap_or_default())?;
        // virsh reads --allocation quietly: an empty one is ignored.
        let allocation = match inv.string("allocation") {
            Some(a) if !a.is_empty() => Some(parse_size(a)?),
            _ => None,
        };
        let format = string_req(inv, "format")?.map(str::to_owned);
        let backing = string_req(inv, "backing-vol")?;
        let backing_format = string_req(inv, "backing-vol-format")?.map(str::to_owned);
        let backing_path = match backing {
            Some(b) => {
                let v = backing_vol(&mut client, &p, b).await?;
                let req = pb::GetVolumePathRequest {
                    volume: Some(vol_ref(&v)),
                };
                Some(client.get_volume_path(req).await?.into_inner().path)
            }
            None => None,
        };
        let args = VolXmlArgs {
            name,
            capacity,
            allocation,
            format,
            backing_path,
            backing_format,
        };
        let xml = args.to_xml();
        if inv.flag("print-xml") {
            ctl.out().write_all(xml.as_bytes())?;
            return Ok(());
        }
        let req = pb::CreateVolumeRequest {
            pool: Some(pool_ref(&p)),
            xml,
            prealloc_metadata: inv.flag("prealloc-metadata"),
            validate: false,
        };
        client.create_volume(req).await.map_err(|s| {
            Error::context(
                format!("Failed to create vol {}", args.name),
                Some(s.into()),
            )
        })?;
        print_extra(ctl, &format!("Vol {} created", args.name))
    })
}

/// `vol-create-from POOL FILE VOL [--inputpool POOL] [--prealloc-metadata]
/// [--reflink] [--validate]`.
fn cmd_vol_create_from<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, _) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        let file = string_req(inv, "file")?.unwrap_or_default();
        let (input, _) = lookup_vol(&mut client, inv, "vol", Some("inputpool"), BY_ANY).await?;
        let xml = read_xml_file(file)?;
        let req = pb::CreateVolumeFromRequest {
            pool: Some(pool_ref(&p)),
            xml,
            source: Some(vol_ref(&input)),
            prealloc_metadata: inv.flag("prealloc-metadata"),
            reflink: inv.flag("reflink"),
            validate: inv.flag("validate"),
        };
        let v = client
            .create_volume_from(req)
            .await
            .map_err(|s| {
                Error::context(format!("Failed to create vol from {file}"), Some(s.into()))
            })?
            .into_inner()
            .volume
            .unwrap_or_default();
        print_extra(
            ctl,
            &format!("Vol {} created from input vol {}", v.name, input.name),
        )
    })
}

/// `vol-clone VOL NEWNAME [--pool POOL] [--prealloc-metadata] [--reflink]
/// [--print-xml]`.
fn cmd_vol_clone<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, orig, _) = opt_vol(ctl, inv).await?;
        let pool = parent_pool(&mut client, &orig).await?;
        let newname = string_req(inv, "newname")?.unwrap_or_default();
        let req = pb::GetVolumeXmlRequest {
            volume: Some(vol_ref(&orig)),
        };
        let origxml = client.get_volume_xml(req).await?.into_inner().xml;
        let newxml = clone_xml(&origxml, newname)?;
        if inv.flag("print-xml") {
            ctl.out().write_all(newxml.as_bytes())?;
            return Ok(());
        }
        let req = pb::CreateVolumeFromRequest {
            pool: Some(pool_ref(&pool)),
            xml: newxml,
            source: Some(vol_ref(&orig)),
            prealloc_metadata: inv.flag("prealloc-metadata"),
            reflink: inv.flag("reflink"),
            validate: false,
        };
        let v = client
            .create_volume_from(req)
            .await
            .map_err(|s| {
                Error::context(
                    format!("Failed to clone vol from {}", orig.name),
                    Some(s.into()),
                )
            })?
            .into_inner()
            .volume
            .unwrap_or_default();
        print_extra(ctl, &format!("Vol {} cloned from {}", v.name, orig.name))
    })
}

/// `vol-delete VOL [--pool POOL] [--delete-snapshots]`.
fn cmd_vol_delete<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, v, arg) = opt_vol(ctl, inv).await?;
        let req = pb::DeleteVolumeRequest {
            volume: Some(vol_ref(&v)),
            zeroed: false,
            with_snapshots: inv.flag("delete-snapshots"),
        };
        client
            .delete_volume(req)
            .await
            .map_err(|s| Error::context(format!("Failed to delete vol {arg}"), Some(s.into())))?;
        print_extra(ctl, &format!("Vol {arg} deleted"))
    })
}

/// `vol-wipe VOL [--pool POOL] [--algorithm ALG]`.
fn cmd_vol_wipe<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, v, arg) = opt_vol(ctl, inv).await?;
        let algorithm = wipe_algorithm(string_req(inv, "algorithm")?)?;
        let req = pb::WipeVolumeRequest {
            volume: Some(vol_ref(&v)),
            algorithm: algorithm as i32,
        };
        client
            .wipe_volume(req)
            .await
            .map_err(|s| Error::context(format!("Failed to wipe vol {arg}"), Some(s.into())))?;
        print_extra(ctl, &format!("Vol {arg} wiped"))
    })
}

/// What `vol-resize` asks for: the size in bytes, whether it is a delta,
/// and the size as virsh prints it (without a leading `-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resize {
    /// Bytes (new capacity, or change with `delta`).
    pub capacity: u64,
    /// `--delta` (or a negative size with `--shrink`).
    pub delta: bool,
    /// The capacity string of virsh's lines.
    pub text: String,
}

/// virsh's reading of `vol-resize`'s capacity: leading spaces skipped; a
/// leading `-` needs `--shrink` and makes the size a delta.
///
/// # Errors
/// `negative size requires --shrink`; `Malformed size S`.
pub fn resize_args(capacity: &str, delta: bool, shrink: bool) -> Result<Resize, Error> {
    let mut text = capacity.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let mut delta = delta;
    if let Some(rest) = text.strip_prefix('-') {
        if !shrink {
            return Err(Error::msg("negative size requires --shrink"));
        }
        text = rest;
        delta = true;
    }
    let capacity = parse_size(text)?;
    Ok(Resize {
        capacity,
        delta,
        text: text.to_owned(),
    })
}

/// `vol-resize VOL CAPACITY [--pool POOL] [--allocate] [--delta]
/// [--shrink]`.
fn cmd_vol_resize<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, v, _) = opt_vol(ctl, inv).await?;
        let cap = string_req(inv, "capacity")?.unwrap_or_default();
        let r = resize_args(cap, inv.flag("delta"), inv.flag("shrink"))?;
        let req = pb::ResizeVolumeRequest {
            volume: Some(vol_ref(&v)),
            capacity: r.capacity,
            allocate: inv.flag("allocate"),
            delta: r.delta,
            shrink: inv.flag("shrink"),
        };
        let (how, text) = (if r.delta { "by" } else { "to" }, &r.text);
        client.resize_volume(req).await.map_err(|s| {
            Error::context(
                format!("Failed to change size of volume '{}' {how} {text}", v.name),
                Some(s.into()),
            )
        })?;
        print_extra(
            ctl,
            &format!(
                "Size of volume '{}' successfully changed {how} {text}",
                v.name
            ),
        )
    })
}

/// `vol-dumpxml VOL [--pool POOL]`.
fn cmd_vol_dumpxml<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, v, _) = opt_vol(ctl, inv).await?;
        let req = pb::GetVolumeXmlRequest {
            volume: Some(vol_ref(&v)),
        };
        let xml = client.get_volume_xml(req).await?.into_inner().xml;
        print_xml(ctl, &xml)
    })
}

/// The `vol-info` lines after `Name:` (`%-15s`), as virsh prints them.
pub fn vol_info_lines(info: &pb::GetVolumeInfoResponse, bytes: bool, physical: bool) -> String {
    let (label, second) = if physical {
        ("Physical:", info.physical)
    } else {
        ("Allocation:", info.allocation)
    };
    let size = |v: u64| {
        if bytes {
            format!("{v} bytes")
        } else {
            format_capacity(v)
        }
    };
    format!(
        "{:<15} {}\n{:<15} {}\n{:<15} {}\n",
        "Type:",
        vol_type_str(info.r#type),
        "Capacity:",
        size(info.capacity),
        label,
        size(second)
    )
}

/// `vol-info VOL [--pool POOL] [--bytes] [--physical]`.
fn cmd_vol_info<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, v, _) = opt_vol(ctl, inv).await?;
        writeln!(ctl.out(), "{:<15} {}", "Name:", v.name)?;
        let req = pb::GetVolumeInfoRequest {
            volume: Some(vol_ref(&v)),
        };
        let info = client.get_volume_info(req).await?.into_inner();
        let text = vol_info_lines(&info, inv.flag("bytes"), inv.flag("physical"));
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// `vol-list POOL [--details]`.
fn cmd_vol_list<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, p, _) = opt_pool(ctl, inv, "pool", BY_ANY).await?;
        let details = inv.flag("details");
        let req = pb::ListAllVolumesRequest {
            pool: Some(pool_ref(&p)),
        };
        let mut vols = client
            .list_all_volumes(req)
            .await
            .map_err(|s| Error::context("Failed to list volumes", Some(s.into())))?
            .into_inner()
            .volumes;
        sort_by_name(&mut vols, |v| &v.name);
        let mut table = if details {
            Table::new(&["Name", "Path", "Type", "Capacity", "Allocation"])
        } else {
            Table::new(&["Name", "Path"])
        };
        for v in &vols {
            let path = if v.path.is_empty() {
                "unknown".to_owned()
            } else {
                v.path.clone()
            };
            let mut row = vec![v.name.clone(), path];
            if details {
                let req = pb::GetVolumeInfoRequest {
                    volume: Some(vol_ref(v)),
                };
                match client.get_volume_info(req).await {
                    Ok(info) => {
                        let info = info.into_inner();
                        row.push(vol_type_str(info.r#type).to_owned());
                        row.push(format_capacity(info.capacity));
                        row.push(format_capacity(info.allocation));
                    }
                    Err(_) => row.extend(["unknown", "unknown", "unknown"].map(str::to_owned)),
                }
            }
            table.row(row);
        }
        let text = table.render(!ctl.settings.quiet);
        ctl.out().write_all(text.as_bytes())?;
        Ok(())
    })
}

/// `vol-name VOL-KEY-OR-PATH`.
fn cmd_vol_name<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let mut client = ctl.storage().await?;
        let (v, _) = lookup_vol(&mut client, inv, "vol", None, BY_UUID).await?;
        writeln!(ctl.out(), "{}", v.name)?;
        Ok(())
    })
}

/// `vol-pool VOL-KEY-OR-PATH [--uuid]`.
fn cmd_vol_pool<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let mut client = ctl.storage().await?;
        let (v, _) = lookup_vol(&mut client, inv, "vol", None, BY_UUID).await?;
        let p = parent_pool(&mut client, &v).await?;
        let line = if inv.flag("uuid") { p.uuid } else { p.name };
        writeln!(ctl.out(), "{line}")?;
        Ok(())
    })
}

/// `vol-key VOL [--pool POOL]`.
fn cmd_vol_key<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (_, v, _) = opt_vol(ctl, inv).await?;
        writeln!(ctl.out(), "{}", v.key)?;
        Ok(())
    })
}

/// `vol-path VOL [--pool POOL]`.
fn cmd_vol_path<'a>(ctl: &'a mut Ctl, inv: &'a Invocation) -> HandlerFuture<'a> {
    Box::pin(async move {
        let (mut client, v, _) = opt_vol(ctl, inv).await?;
        let req = pb::GetVolumePathRequest {
            volume: Some(vol_ref(&v)),
        };
        let path = client.get_volume_path(req).await?.into_inner().path;
        writeln!(ctl.out(), "{path}")?;
        Ok(())
    })
}

#[cfg(test)]
mod tests;
