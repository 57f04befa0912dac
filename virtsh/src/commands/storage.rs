//! What the "Storage Pool" and "Storage Volume" commands share: the pool
//! and volume lookups (virsh's `virshCommandOptPoolBy` and
//! `virshCommandOptVolBy`), virsh's size parsing (`virshVolSize`, libvirt's
//! `virScaleInteger`) and printing (`vshPrettyCapacity`), and the
//! references sent to virtstoraged.

use proto::storage::v1 as pb;
use proto::storage::v1::storage_service_client::StorageServiceClient;

use crate::cli::Invocation;
use crate::commands::domain::string_req;
use crate::connection::VirtChannel;
use crate::ctl::Ctl;
use crate::error::Error;

/// The client every storage command uses.
pub(crate) type Client = StorageServiceClient<VirtChannel>;

/// Look the pool up by UUID (virsh's `VIRSH_BYUUID`); for volumes: by key
/// and then by path.
pub(crate) const BY_UUID: u8 = 1;
/// Look the pool up by name (virsh's `VIRSH_BYNAME`); for volumes: by name
/// within the `--pool` given.
pub(crate) const BY_NAME: u8 = 2;
/// Both, in virsh's order.
pub(crate) const BY_ANY: u8 = BY_UUID | BY_NAME;

/// virsh's `vshPrettyCapacity`: `val` in the largest binary unit (B, KiB,
/// ..., EiB) that keeps it at or above 1.
pub fn pretty_capacity(val: u64) -> (f64, &'static str) {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    // virsh compares in double precision, as here.
    #[allow(clippy::cast_precision_loss)]
    let v = val as f64;
    let mut limit = 1024.0_f64;
    for unit in &UNITS[..6] {
        if v < limit {
            return (v / (limit / 1024.0), unit);
        }
        limit *= 1024.0;
    }
    (v / (limit / 1024.0), UNITS[6])
}

/// A size as virsh prints it in tables and `*-info`: `10.00 GiB`
/// (`"%.2lf %s"` of [`pretty_capacity`]).
pub fn format_capacity(val: u64) -> String {
    let (v, unit) = pretty_capacity(val);
    format!("{v:.2} {unit}")
}

/// The scale of a size suffix, as libvirt's `virScaleInteger` (with a
/// default scale of 1): empty, `b`, `byte`, `bytes`: 1; `k`, `KiB`, `M`,
/// `MiB`, ... `E`, `EiB`: powers of 1024; `KB`, `MB`, ... `EB`: powers of
/// 1000; case-insensitive.
fn suffix_scale(suffix: &str) -> Option<u64> {
    let lower = suffix.to_ascii_lowercase();
    if lower.is_empty() || lower == "b" || lower == "byte" || lower == "bytes" {
        return Some(1);
    }
    let mut chars = lower.chars();
    let first = chars.next()?;
    let rest = chars.as_str();
    let base: u64 = match rest {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    let power = match first {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    Some(base.pow(power))
}

/// virsh's `virshVolSize`: a non-negative decimal integer (leading spaces
/// allowed), then an optional unit suffix ([`suffix_scale`]).
///
/// # Errors
/// `Malformed size S`, followed (as virsh's reported libvirt error) by
/// `invalid argument: unknown suffix 'X'` or
/// `numerical overflow: value too large: NX` where libvirt has one.
pub fn parse_size(s: &str) -> Result<u64, Error> {
    let malformed = |cause: Option<String>| {
        Error::context(format!("Malformed size {s}"), cause.map(Error::msg))
    };
    // strtoull: leading C white space, an optional sign; the "p" variant
    // refuses a minus sign.
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if t.starts_with('-') {
        return Err(malformed(None));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(malformed(None));
    }
    let value: u64 = t[..digits].parse().map_err(|_| malformed(None))?;
    let suffix = &t[digits..];
    let Some(scale) = suffix_scale(suffix) else {
        return Err(malformed(Some(format!(
            "invalid argument: unknown suffix '{suffix}'"
        ))));
    };
    value.checked_mul(scale).ok_or_else(|| {
        malformed(Some(format!(
            "numerical overflow: value too large: {value}{suffix}"
        )))
    })
}

/// A `PoolRef` naming `p` by UUID (by name if the daemon sent none).
pub(crate) fn pool_ref(p: &pb::Pool) -> pb::PoolRef {
    let by = if p.uuid.is_empty() {
        pb::pool_ref::By::Name(p.name.clone())
    } else {
        pb::pool_ref::By::Uuid(p.uuid.clone())
    };
    pb::PoolRef { by: Some(by) }
}

/// A `VolumeRef` naming `v` by its pool and name (by key if the daemon
/// sent no pool).
pub(crate) fn vol_ref(v: &pb::Volume) -> pb::VolumeRef {
    let by = if v.pool.is_empty() {
        pb::volume_ref::By::Key(v.key.clone())
    } else {
        pb::volume_ref::By::PoolVolume(pb::PoolVolume {
            pool: v.pool.clone(),
            name: v.name.clone(),
        })
    };
    pb::VolumeRef { by: Some(by) }
}

/// Finds the pool `arg` names, as virsh's `virshCommandOptPoolBy`: by UUID
/// if `arg` is UUID-long, then by name, as `by` allows.
///
/// # Errors
/// `failed to get pool 'arg'`, then the last lookup's error (if one was
/// made).
pub(crate) async fn lookup_pool(client: &mut Client, arg: &str, by: u8) -> Result<pb::Pool, Error> {
    let mut attempts = Vec::new();
    if by & BY_UUID != 0 && arg.len() == 36 {
        attempts.push(pb::pool_ref::By::Uuid(arg.to_owned()));
    }
    if by & BY_NAME != 0 {
        attempts.push(pb::pool_ref::By::Name(arg.to_owned()));
    }
    let mut last = None;
    for by in attempts {
        let req = pb::LookupPoolRequest {
            by: Some(pb::lookup_pool_request::By::Pool(pb::PoolRef {
                by: Some(by),
            })),
        };
        match client.lookup_pool(req).await {
            Ok(r) => {
                if let Some(p) = r.into_inner().pool {
                    return Ok(p);
                }
            }
            Err(s) => last = Some(Error::from(s)),
        }
    }
    Err(Error::context(format!("failed to get pool '{arg}'"), last))
}

/// The pool of option `opt` (by UUID or name), with the client and the
/// option's value (virsh names the pool as the user wrote it).
pub(crate) async fn opt_pool(
    ctl: &mut Ctl,
    inv: &Invocation,
    opt: &str,
    by: u8,
) -> Result<(Client, pb::Pool, String), Error> {
    let arg = string_req(inv, opt)?.unwrap_or_default().to_owned();
    let mut client = ctl.storage().await?;
    let p = lookup_pool(&mut client, &arg, by).await?;
    Ok((client, p, arg))
}

/// One `LookupVolume` call.
async fn lookup_vol_by(client: &mut Client, by: pb::volume_ref::By) -> Result<pb::Volume, Error> {
    let req = pb::LookupVolumeRequest {
        volume: Some(pb::VolumeRef { by: Some(by) }),
    };
    let v = client.lookup_volume(req).await?.into_inner().volume;
    v.ok_or_else(|| Error::msg("no volume in the daemon's answer"))
}

/// Finds the volume of option `opt`, as virsh's `virshCommandOptVolBy`:
/// with `pool_opt` given (and `BY_NAME`), by name in that (active) pool;
/// then by key and by path (`BY_UUID`). Returns the volume and the option's
/// value.
///
/// # Errors
/// The option errors; the pool's lookup error, or `pool 'P' is not
/// active`; `failed to get vol 'V'` (with `, specifying --pool might help`
/// when the command has a pool option that was not given) and the last
/// lookup's error; `Requested volume 'V' is not in pool 'P'`.
pub(crate) async fn lookup_vol(
    client: &mut Client,
    inv: &Invocation,
    opt: &str,
    pool_opt: Option<&str>,
    by: u8,
) -> Result<(pb::Volume, String), Error> {
    let arg = string_req(inv, opt)?.unwrap_or_default().to_owned();
    let pool_arg = match pool_opt {
        Some(p) => string_req(inv, p)?,
        None => None,
    };
    let pool = match pool_arg {
        Some(p) => {
            let pool = lookup_pool(client, p, by).await?;
            if !pool.active {
                return Err(Error::msg(format!("pool '{p}' is not active")));
            }
            Some(pool)
        }
        None => None,
    };
    let mut attempts = Vec::new();
    if let Some(pool) = &pool
        && by & BY_NAME != 0
    {
        attempts.push(pb::volume_ref::By::PoolVolume(pb::PoolVolume {
            pool: pool.name.clone(),
            name: arg.clone(),
        }));
    }
    if by & BY_UUID != 0 {
        attempts.push(pb::volume_ref::By::Key(arg.clone()));
        attempts.push(pb::volume_ref::By::Path(arg.clone()));
    }
    let mut last = None;
    let mut found = None;
    for by in attempts {
        match lookup_vol_by(client, by).await {
            Ok(v) => {
                found = Some(v);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(vol) = found else {
        let msg = match pool_opt {
            Some(p) if pool.is_none() => {
                format!("failed to get vol '{arg}', specifying --{p} might help")
            }
            _ => format!("failed to get vol '{arg}'"),
        };
        return Err(Error::context(msg, last));
    };
    if let Some(pool) = &pool
        && !vol.pool.is_empty()
        && vol.pool != pool.name
    {
        return Err(Error::msg(format!(
            "Requested volume '{arg}' is not in pool '{}'",
            pool.name
        )));
    }
    Ok((vol, arg))
}

/// The volume of option `vol` (with the optional `pool` option), with the
/// client; see [`lookup_vol`].
pub(crate) async fn opt_vol(
    ctl: &mut Ctl,
    inv: &Invocation,
) -> Result<(Client, pb::Volume, String), Error> {
    let mut client = ctl.storage().await?;
    let (v, arg) = lookup_vol(&mut client, inv, "vol", Some("pool"), BY_ANY).await?;
    Ok((client, v, arg))
}

/// The pool holding `v` (virsh's `virStoragePoolLookupByVolume`).
///
/// # Errors
/// `failed to get parent pool` and the daemon's error.
pub(crate) async fn parent_pool(client: &mut Client, v: &pb::Volume) -> Result<pb::Pool, Error> {
    let req = pb::LookupPoolRequest {
        by: Some(pb::lookup_pool_request::By::Volume(vol_ref(v))),
    };
    let ctx = |e: Option<Error>| Error::context("failed to get parent pool", e);
    client
        .lookup_pool(req)
        .await
        .map_err(|s| ctx(Some(s.into())))?
        .into_inner()
        .pool
        .ok_or_else(|| ctx(None))
}

/// Writes an XML document as virsh's `virshDumpXML` without `--xpath`:
/// as returned, ending with a newline.
pub(crate) fn print_xml(ctl: &mut Ctl, xml: &str) -> Result<(), Error> {
    let out = ctl.out();
    out.write_all(xml.as_bytes())?;
    if !xml.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// libvirt's escaping of a text or attribute value in the XML virsh
/// builds (`pool-define-as`, `vol-create-as`). virsh itself pastes the
/// values unescaped; escaping them keeps the document well-formed.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    common::xml::escape_attr_into(&mut out, s);
    out
}

/// virsh's `VSH_EXCLUSIVE_OPTIONS_EXPR` on two flags.
pub(crate) fn exclusive_flags(a: (&str, bool), b: (&str, bool)) -> Result<(), Error> {
    if a.1 && b.1 {
        return Err(Error::msg(format!(
            "Options --{} and --{} are mutually exclusive",
            a.0, b.0
        )));
    }
    Ok(())
}

/// Sorts by name as virsh's pool and volume sorters (`strcasecmp`).
pub(crate) fn sort_by_name<T>(v: &mut [T], name: impl Fn(&T) -> &str) {
    v.sort_by(|a, b| {
        name(a)
            .to_ascii_lowercase()
            .cmp(&name(b).to_ascii_lowercase())
    });
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_print_as_virsh() {
        assert_eq!(format_capacity(0), "0.00 B");
        assert_eq!(format_capacity(1023), "1023.00 B");
        assert_eq!(format_capacity(1024), "1.00 KiB");
        assert_eq!(format_capacity(1536), "1.50 KiB");
        assert_eq!(format_capacity(10 << 30), "10.00 GiB");
        assert_eq!(format_capacity((1 << 20) - 1), "1024.00 KiB");
        assert_eq!(format_capacity(5 << 40), "5.00 TiB");
        assert_eq!(format_capacity(3 << 50), "3.00 PiB");
        assert_eq!(format_capacity(u64::MAX), "16.00 EiB");
        // An exact tie rounds to even, as printf does.
        assert_eq!(format_capacity(1152), "1.12 KiB");
        assert_eq!(format_capacity(2_872_279_285), "2.68 GiB");
        assert_eq!(pretty_capacity(512 << 20), (512.0, "MiB"));
    }

    fn size(s: &str) -> Result<u64, Vec<String>> {
        parse_size(s).map_err(|e| e.lines())
    }

    #[test]
    fn sizes_parse_as_virsh() {
        assert_eq!(size("0"), Ok(0));
        assert_eq!(size("1000"), Ok(1000));
        assert_eq!(size(" +10"), Ok(10));
        assert_eq!(size("10b"), Ok(10));
        assert_eq!(size("10Bytes"), Ok(10));
        assert_eq!(size("1k"), Ok(1024));
        assert_eq!(size("1KiB"), Ok(1024));
        assert_eq!(size("1KB"), Ok(1000));
        assert_eq!(size("1kb"), Ok(1000));
        assert_eq!(size("10G"), Ok(10 << 30));
        assert_eq!(size("10GiB"), Ok(10 << 30));
        assert_eq!(size("2M"), Ok(2 << 20));
        assert_eq!(size("3T"), Ok(3 << 40));
        assert_eq!(size("1P"), Ok(1 << 50));
        assert_eq!(size("1E"), Ok(1 << 60));
        assert_eq!(size("1EB"), Ok(1_000_000_000_000_000_000));
        assert_eq!(size("15E"), Ok(15 << 60));
    }

    #[test]
    fn bad_sizes_are_virsh_errors() {
        assert_eq!(size("abc"), Err(vec!["Malformed size abc".to_owned()]));
        assert_eq!(size("-1"), Err(vec!["Malformed size -1".to_owned()]));
        assert_eq!(size(""), Err(vec!["Malformed size ".to_owned()]));
        assert_eq!(
            size("10x"),
            Err(vec![
                "Malformed size 10x".to_owned(),
                "invalid argument: unknown suffix 'x'".to_owned()
            ])
        );
        assert_eq!(
            size("1 G"),
            Err(vec![
                "Malformed size 1 G".to_owned(),
                "invalid argument: unknown suffix ' G'".to_owned()
            ])
        );
        assert_eq!(
            size("1GiBs"),
            Err(vec![
                "Malformed size 1GiBs".to_owned(),
                "invalid argument: unknown suffix 'GiBs'".to_owned()
            ])
        );
        assert_eq!(
            size("16E"),
            Err(vec![
                "Malformed size 16E".to_owned(),
                "numerical overflow: value too large: 16E".to_owned()
            ])
        );
        assert_eq!(
            size("99999999999999999999"),
            Err(vec!["Malformed size 99999999999999999999".to_owned()])
        );
    }

    #[test]
    fn refs_prefer_stable_names() {
        let p = pb::Pool {
            name: "default".into(),
            uuid: "u".into(),
            ..Default::default()
        };
        assert_eq!(pool_ref(&p).by, Some(pb::pool_ref::By::Uuid("u".into())));
        let p = pb::Pool {
            name: "default".into(),
            ..Default::default()
        };
        assert_eq!(
            pool_ref(&p).by,
            Some(pb::pool_ref::By::Name("default".into()))
        );
        let v = pb::Volume {
            name: "a".into(),
            key: "/k/a".into(),
            path: "/k/a".into(),
            pool: "default".into(),
        };
        assert_eq!(
            vol_ref(&v).by,
            Some(pb::volume_ref::By::PoolVolume(pb::PoolVolume {
                pool: "default".into(),
                name: "a".into()
            }))
        );
    }

    #[test]
    fn names_sort_ignoring_case() {
        let mut v = vec!["b", "A", "a2", "C"];
        sort_by_name(&mut v, |s| s);
        assert_eq!(v, ["A", "a2", "b", "C"]);
    }
}
