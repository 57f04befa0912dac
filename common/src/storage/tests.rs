//! Conformance tests against libvirt's storage test data (the shared
//! corpus), plus behaviour tests of the pool and volume models.

use std::path::{Path, PathBuf};

use crate::xml::ParseFlags;

use super::{PoolDef, PoolType, VolDef, VolParseFlags};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");

fn corpus(sub: &str) -> Option<PathBuf> {
    let p = Path::new(CORPUS).join(sub);
    if p.is_dir() {
        Some(p)
    } else {
        println!("note: conformance corpus {} absent; skipping", p.display());
        None
    }
}

/// Manifest rows (header skipped), split on tabs.
fn manifest(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The README's comparison: add a final newline, drop backslash-newline
/// pairs from the expected text.
fn same(actual: &str, expected: &str) -> bool {
    let mut a = actual.to_owned();
    if !a.ends_with('\n') {
        a.push('\n');
    }
    a == expected.replace("\\\n", "")
}

fn first_diff(actual: &str, expected: &str) -> String {
    let a: Vec<&str> = actual.lines().collect();
    let e: Vec<&str> = expected.lines().collect();
    for i in 0..a.len().max(e.len()) {
        let (x, y) = (a.get(i), e.get(i));
        if x != y {
            return format!(
                "line {}:\n  got:      {:?}\n  expected: {:?}",
                i + 1,
                x.unwrap_or(&"<eof>"),
                y.unwrap_or(&"<eof>")
            );
        }
    }
    "no line differs (trailing newline?)".into()
}

/// Validates `xml` with xmllint against `schema` when xmllint exists.
fn xmllint_ok(xml: &str, schema: &str, tag: &str) -> Option<bool> {
    let dir = std::env::temp_dir().join(format!("storage-rng-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    // Tests run in parallel and share tags (the same case name in two
    // categories): every call gets its own file.
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("{tag}.{n}.xml"));
    std::fs::write(&file, xml).ok()?;
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--relaxng")
        .arg(Path::new(CORPUS).join("schemas").join(schema))
        .arg(&file)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&file);
    if !out.status.success() {
        println!("{tag}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Some(out.status.success())
}

fn strict() -> ParseFlags {
    ParseFlags {
        validate: true,
        ..ParseFlags::default()
    }
}

#[test]
fn pool_xml2xml_corpus() {
    let Some(dir) = corpus("pool-xml2xml") else {
        return;
    };
    let rows = manifest(&dir);
    let mut failed = Vec::new();
    for row in &rows {
        let name = &row[0];
        let input = read(&dir.join("in").join(format!("{name}.xml")));
        let expected = read(&dir.join("out").join(format!("{name}.xml")));
        let def = match PoolDef::parse_str(&input, ParseFlags::default()) {
            Ok(d) => d,
            Err(e) => {
                println!("FAIL {name}: parse error: {e}");
                failed.push(name.clone());
                continue;
            }
        };
        let out = def.to_xml();
        if !same(&out, &expected) {
            println!("FAIL {name}: {}", first_diff(&out, &expected));
            failed.push(name.clone());
            continue;
        }
        // Strict parsing accepts libvirt's own inputs; output is stable.
        if let Err(e) = PoolDef::parse_str(&input, strict()) {
            println!("FAIL {name}: validate flag refuses the input: {e}");
            failed.push(name.clone());
            continue;
        }
        let again = PoolDef::parse_str(&out, strict()).map(|d| d.to_xml());
        if again.as_deref() != Ok(out.as_str()) {
            println!("FAIL {name}: output does not round-trip: {again:?}");
            failed.push(name.clone());
            continue;
        }
        if xmllint_ok(&out, "storagepool.rng", name) == Some(false) {
            println!("FAIL {name}: output does not validate");
            failed.push(name.clone());
        }
    }
    println!(
        "pool-xml2xml: {}/{} pass",
        rows.len() - failed.len(),
        rows.len()
    );
    assert!(failed.is_empty(), "failing: {failed:?}");
}

fn vol_flags(col: Option<&String>) -> (VolParseFlags, bool) {
    let col = col.map_or("-", String::as_str);
    (
        VolParseFlags {
            validate: false,
            no_capacity: col.contains("VIR_VOL_XML_PARSE_NO_CAPACITY"),
        },
        col.contains("VIR_VOL_XML_PARSE_OPT_CAPACITY"),
    )
}

#[test]
fn vol_xml2xml_corpus() {
    let Some(dir) = corpus("vol-xml2xml") else {
        return;
    };
    let rows = manifest(&dir);
    let mut failed = Vec::new();
    for row in &rows {
        let (name, pool) = (&row[0], &row[1]);
        let (flags, opt) = vol_flags(row.get(2));
        let pool_xml = read(&dir.join("pools").join(format!("{pool}.xml")));
        let pool = PoolDef::parse_str(&pool_xml, ParseFlags::default()).expect("pool parses");
        let input = read(&dir.join("in").join(format!("{name}.xml")));
        let expected = read(&dir.join("out").join(format!("{name}.xml")));
        let def = match VolDef::parse_str_opt_capacity(&input, &pool, flags, opt) {
            Ok(d) => d,
            Err(e) => {
                println!("FAIL {name}: parse error: {e}");
                failed.push(name.clone());
                continue;
            }
        };
        let out = def.to_xml(&pool);
        if !same(&out, &expected) {
            println!("FAIL {name}: {}", first_diff(&out, &expected));
            failed.push(name.clone());
            continue;
        }
        let strict = VolParseFlags {
            validate: true,
            ..flags
        };
        if let Err(e) = VolDef::parse_str_opt_capacity(&input, &pool, strict, opt) {
            println!("FAIL {name}: validate flag refuses the input: {e}");
            failed.push(name.clone());
            continue;
        }
        let again = VolDef::parse_str(&out, &pool, strict).map(|d| d.to_xml(&pool));
        if again.as_deref() != Ok(out.as_str()) {
            println!("FAIL {name}: output does not round-trip: {again:?}");
            failed.push(name.clone());
            continue;
        }
        if xmllint_ok(&out, "storagevol.rng", name) == Some(false) {
            println!("FAIL {name}: output does not validate");
            failed.push(name.clone());
        }
    }
    println!(
        "vol-xml2xml: {}/{} pass",
        rows.len() - failed.len(),
        rows.len()
    );
    assert!(failed.is_empty(), "failing: {failed:?}");
}

#[test]
fn pool_xml2argv_inputs_parse() {
    let Some(dir) = corpus("pool-xml2argv") else {
        return;
    };
    let rows = manifest(&dir);
    let mut failed = Vec::new();
    for row in &rows {
        let name = &row[0];
        let input = read(&dir.join(format!("{name}.xml")));
        for flags in [ParseFlags::default(), strict()] {
            match PoolDef::parse_str(&input, flags) {
                Ok(def) => {
                    if xmllint_ok(&def.to_xml(), "storagepool.rng", name) == Some(false) {
                        failed.push(name.clone());
                    }
                }
                Err(e) => {
                    println!("FAIL {name}: {e}");
                    failed.push(name.clone());
                }
            }
        }
    }
    println!("pool-xml2argv inputs: {} parsed", rows.len());
    assert!(failed.is_empty(), "failing: {failed:?}");
}

#[test]
fn vol_xml2argv_inputs_parse() {
    let Some(dir) = corpus("vol-xml2argv") else {
        return;
    };
    let pool = |name: &str| {
        let xml = read(&dir.join("pools").join(format!("{name}.xml")));
        PoolDef::parse_str(&xml, strict()).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let rows = manifest(&dir);
    let mut failed = Vec::new();
    let mut n = 0;
    for row in &rows {
        let (flags, opt) = vol_flags(row.get(7));
        // (pool, vol) is the new volume; (inputpool, inputvol) the source,
        // which is parsed with default flags. A new volume cloned from an
        // input volume needs no capacity.
        let mut pairs = vec![(row[2].clone(), row[3].clone(), flags, opt)];
        if row[4] != "-" {
            pairs[0].2.no_capacity = true;
            pairs.push((
                row[4].clone(),
                row[5].clone(),
                VolParseFlags::default(),
                false,
            ));
        }
        for (p, v, flags, opt) in pairs {
            let pool = pool(&p);
            let xml = read(&dir.join("vols").join(format!("{v}.xml")));
            for validate in [false, true] {
                let f = VolParseFlags { validate, ..flags };
                n += 1;
                match VolDef::parse_str_opt_capacity(&xml, &pool, f, opt) {
                    Ok(def) => {
                        let out = def.to_xml(&pool);
                        if xmllint_ok(&out, "storagevol.rng", &v) == Some(false) {
                            failed.push(v.clone());
                        }
                    }
                    Err(e) => {
                        println!("FAIL {}/{v}: {e}", row[0]);
                        failed.push(v.clone());
                    }
                }
            }
        }
    }
    println!("vol-xml2argv inputs: {n} parses");
    assert!(failed.is_empty(), "failing: {failed:?}");
}

// === behaviour ===

fn pool(xml: &str) -> Result<PoolDef, crate::xml::XmlError> {
    PoolDef::parse_str(xml, ParseFlags::default())
}

const DIR_POOL: &str = "<pool type='dir'><name>p</name><uuid>70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2</uuid><target><path>/x</path></target></pool>";

fn vol(xml: &str) -> Result<VolDef, crate::xml::XmlError> {
    let p = pool(DIR_POOL).expect("pool");
    VolDef::parse_str(xml, &p, VolParseFlags::default())
}

#[test]
fn pool_refusals() {
    for (bad, why) in [
        (
            "<pool><name>p</name><target><path>/x</path></target></pool>",
            "no type",
        ),
        ("<pool type='foo'><name>p</name></pool>", "unknown type"),
        (
            "<pool type='dir'><target><path>/x</path></target></pool>",
            "no name",
        ),
        (
            "<pool type='dir'><name></name><target><path>/x</path></target></pool>",
            "empty name",
        ),
        (
            "<pool type='dir'><name>a/b</name><target><path>/x</path></target></pool>",
            "slash",
        ),
        ("<pool type='dir'><name>p</name></pool>", "no target path"),
        (
            "<pool type='dir'><name>p</name><target><path>../../etc</path></target></pool>",
            "relative target path",
        ),
        (
            "<pool type='dir'><name>p</name><uuid>zz</uuid><target><path>/x</path></target></pool>",
            "uuid",
        ),
        (
            "<pool type='dir'><name>p</name><target><path>/x</path><permissions><mode>0800</mode></permissions></target></pool>",
            "mode",
        ),
        (
            "<pool type='netfs'><name>p</name><source><dir path='/a'/></source><target><path>/x</path></target></pool>",
            "no host",
        ),
        (
            "<pool type='netfs'><name>p</name><source><host name='h'/></source><target><path>/x</path></target></pool>",
            "no dir",
        ),
        (
            "<pool type='netfs'><name>p</name><source><host name='h'/><dir path='/a'/><format type='ext4'/></source><target><path>/x</path></target></pool>",
            "bad format",
        ),
        (
            "<pool type='netfs'><name>p</name><source><host name='h'/><dir path='/a'/><format type='cifs'/><protocol ver='3'/></source><target><path>/x</path></target></pool>",
            "protocol on cifs",
        ),
        (
            "<pool type='netfs'><name>p</name><source><host name='h'/><dir path='/a'/><protocol ver='4,1'/></source><target><path>/x</path></target></pool>",
            "comma",
        ),
        (
            "<pool type='netfs'><name>p</name><source><host/><dir path='/a'/></source><target><path>/x</path></target></pool>",
            "host name",
        ),
        (
            "<pool type='netfs'><name>p</name><source><host name='h' port='x'/><dir path='/a'/></source><target><path>/x</path></target></pool>",
            "port",
        ),
        (
            "<pool type='fs'><name>p</name><target><path>/x</path></target></pool>",
            "no device",
        ),
        (
            "<pool type='fs'><name>p</name><source><device/></source><target><path>/x</path></target></pool>",
            "device path",
        ),
        (
            "<pool type='disk'><name>p</name><source><device path='/dev/sda' part_separator='maybe'/></source><target><path>/x</path></target></pool>",
            "part_separator",
        ),
        (
            "<pool type='rbd'><name>p</name><source><host name='h'/></source></pool>",
            "rbd name",
        ),
        ("<pool type='rbd'><name>p</name></pool>", "rbd no source"),
        (
            "<pool type='scsi'><name>p</name><source/><target><path>/x</path></target></pool>",
            "no adapter",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter type='fc_host' wwnn='1'/></source><target><path>/x</path></target></pool>",
            "fc wwpn",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter type='fc_host' wwnn='20000000c9831b4b' wwpn='10000000c9831b4g'/></source><target><path>/x</path></target></pool>",
            "bad wwn",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter type='fc_host' wwnn='20000000c9831b4b' wwpn='10000000c9831b4b' parent_wwnn='20000000c9831b4b'/></source><target><path>/x</path></target></pool>",
            "parent wwpn",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter wwnn='20000000c9831b4b'/></source><target><path>/x</path></target></pool>",
            "legacy wwnn",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter type='bogus'/></source><target><path>/x</path></target></pool>",
            "adapter type",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter type='scsi_host'/></source><target><path>/x</path></target></pool>",
            "scsi_host empty",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter type='scsi_host'><parentaddr unique_id='1'/></adapter></source><target><path>/x</path></target></pool>",
            "no address",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter type='scsi_host'><parentaddr><address bus='1'/></parentaddr></adapter></source><target><path>/x</path></target></pool>",
            "no unique_id",
        ),
        (
            "<pool type='scsi'><name>p</name><source><adapter type='scsi_host'><parentaddr unique_id='1'><address bus='0x100'/></parentaddr></adapter></source><target><path>/x</path></target></pool>",
            "bus",
        ),
        (
            "<pool type='iscsi'><name>p</name><source><host name='h'/><device path='t'/><auth username='u'><secret usage='x'/></auth></source><target><path>/x</path></target></pool>",
            "auth type",
        ),
        (
            "<pool type='iscsi-direct'><name>p</name><source><host name='h'/><device path='iqn.2013-06.com.example:x'/></source></pool>",
            "no initiator",
        ),
        (
            "<pool type='logical'><name>p</name><features><cow state='yes'/></features><source><name>vg</name></source><target/></pool>",
            "cow logical",
        ),
        (
            "<pool type='dir'><name>p</name><features><cow state='maybe'/></features><target><path>/x</path></target></pool>",
            "cow value",
        ),
        (
            "<pool type='rbd'><name>p</name><source><name>r</name><host name='h'/></source><refresh><volume allocation='x'/></refresh></pool>",
            "refresh",
        ),
        (
            "<pool type='rbd' xmlns:rbd='http://libvirt.org/schemas/storagepool/rbd/1.0'><name>p</name><source><name>r</name><host name='h'/></source><rbd:config_opts><rbd:option name='a'/></rbd:config_opts></pool>",
            "rbd value",
        ),
        ("<volume/>", "root"),
        ("<pool type='dir'>", "syntax"),
    ] {
        assert!(pool(bad).is_err(), "{why}: {bad}");
    }
}

#[test]
fn pool_defaults_and_layout() {
    let p = pool("<pool type='logical'><source><name>vg</name><device path='/dev/sda1'/></source><target><path>/ignored</path></target></pool>").expect("ok");
    assert_eq!(p.name, "vg");
    assert!(p.uuid.is_some());
    assert_eq!(p.target.path.as_deref(), Some("/dev/vg"));
    let out = p.to_xml();
    assert!(out.contains("<source>\n    <device path='/dev/sda1'/>\n    <name>vg</name>\n    <format type='lvm2'/>\n  </source>"), "{out}");

    let p = pool("<pool type='zfs'><name>z</name><source><name>tank</name></source></pool>")
        .expect("ok");
    assert_eq!(p.target.path.as_deref(), Some("/dev/zvol/tank"));

    let p = pool("<pool type='disk'><name>d</name><source><device path='/dev/sda' part_separator='no'/></source><target><path>/dev</path></target></pool>").expect("ok");
    let out = p.to_xml();
    assert!(
        out.contains("<device path='/dev/sda' part_separator='no'/>\n    <format type='unknown'/>"),
        "{out}"
    );

    let p = pool("<pool type='sheepdog'><source><name>sd</name><host name='localhost' port='7000'/></source></pool>").expect("ok");
    assert_eq!(p.name, "sd");
    assert!(!p.to_xml().contains("<target>"));

    let p = pool("<pool type='netfs' xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'><name>n</name><uuid>70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2</uuid><source><host name='h'/><dir path='/a//b/'/></source><target><path>/mnt</path></target><fs:mount_opts><fs:option name='sync'/><fs:option name='lazytime'/></fs:mount_opts></pool>").expect("ok");
    assert_eq!(
        p.to_xml(),
        "<pool type='netfs' xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'>
  <name>n</name>
  <uuid>70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2</uuid>
  <capacity unit='bytes'>0</capacity>
  <allocation unit='bytes'>0</allocation>
  <available unit='bytes'>0</available>
  <source>
    <host name='h'/>
    <dir path='/a/b'/>
    <format type='auto'/>
  </source>
  <target>
    <path>/mnt</path>
  </target>
  <fs:mount_opts>
    <fs:option name='sync'/>
    <fs:option name='lazytime'/>
  </fs:mount_opts>
</pool>
"
    );
    // A foreign namespace (or the right prefix bound to another URI) is ignored.
    let p = pool("<pool type='netfs' xmlns:fs='urn:other'><name>n</name><source><host name='h'/><dir path='/a'/></source><target><path>/mnt</path></target><fs:mount_opts><fs:option name='sync'/></fs:mount_opts></pool>").expect("ok");
    assert!(p.namespace.is_none());

    let p = pool("<pool type='rbd'><name>c</name><uuid>70a7eb15-6c34-ee9c-bf57-69e8e5ff3fb2</uuid><source><name>rbd</name><host name='h'/></source><refresh><volume allocation='capacity'/></refresh></pool>").expect("ok");
    assert!(p.to_xml().ends_with(
        "  </source>\n  <refresh>\n    <volume allocation='capacity'/>\n  </refresh>\n</pool>\n"
    ));

    let p = pool("<pool type='scsi'><name>h</name><source><adapter type='fc_host' managed='yes' parent_wwnn='20000000c9831b4b' parent_wwpn='10000000c9831b4b' wwnn='20000000c9831b4b' wwpn='10000000c9831b4b'/></source><target><path>/dev/disk/by-path</path></target></pool>").expect("ok");
    assert!(p.to_xml().contains("<adapter type='fc_host' parent_wwnn='20000000c9831b4b' parent_wwpn='10000000c9831b4b' managed='yes' wwnn='20000000c9831b4b' wwpn='10000000c9831b4b'/>"));

    let p = pool("<pool type='iscsi'><name>i</name><source><host name='h'/><device path='t'/><initiator><iqn name='iqn.1'/></initiator></source><target><path>/dev/disk/by-path</path></target></pool>").expect("ok");
    assert!(p.to_xml().contains("<device path='t'/>\n    <initiator>\n      <iqn name='iqn.1'/>\n    </initiator>\n  </source>"));
    assert_eq!(p.pool_type, PoolType::Iscsi);
}

#[test]
fn pool_validate_flag() {
    let ok = "<pool type='dir'><name>p</name><target><path>/x</path></target></pool>";
    assert!(PoolDef::parse_str(ok, strict()).is_ok());
    for bad in [
        "<pool type='dir' foo='1'><name>p</name><target><path>/x</path></target></pool>",
        "<pool type='dir'><name>p</name><bogus/><target><path>/x</path></target></pool>",
        "<pool type='dir'><name>p</name><target><path>/x</path><extra/></target></pool>",
        "<pool type='dir'><name>p</name><name>q</name><target><path>/x</path></target></pool>",
        "<pool type='dir'><name>p</name><capacity unit='zz'>1</capacity><target><path>/x</path></target></pool>",
        "<pool type='netfs'><name>p</name><source><host name='h'/><dir path='/a'/><format type='cifs'/><protocol ver='3'/></source><target><path>/x</path></target></pool>",
        "<pool type='rbd'><name>p</name><source><name>r</name><host name='h'/></source><target><path>/x</path></target></pool>",
    ] {
        assert!(pool(bad).is_ok() || bad.contains("cifs"), "lenient: {bad}");
        assert!(PoolDef::parse_str(bad, strict()).is_err(), "strict: {bad}");
    }
}

#[test]
fn volume_units_and_defaults() {
    let v = vol("<volume><name>v</name><capacity unit='KiB'>2</capacity><target><path>/x/v</path></target></volume>").expect("ok");
    assert_eq!(v.capacity, 2048);
    assert_eq!(v.allocation, 2048);
    let v = vol("<volume><name>v</name><capacity unit='kb'>2</capacity><allocation unit='M'>1</allocation><target/></volume>").expect("ok");
    assert_eq!((v.capacity, v.allocation), (2000, 1 << 20));
    for bad in [
        "<volume><capacity>1</capacity><target/></volume>",
        "<volume><name>v</name><target/></volume>",
        "<volume><name>v</name><capacity>-1</capacity><target/></volume>",
        "<volume><name>v</name><capacity>1 </capacity><target/></volume>",
        "<volume><name>v</name><capacity unit='Q'>1</capacity><target/></volume>",
        "<volume><name>v</name><capacity unit='E'>9</capacity><target/></volume>",
        "<volume><name>v</name><capacity>9223372036854775808</capacity><target/></volume>",
        "<volume type='bogus'><name>v</name><capacity>1</capacity><target/></volume>",
        "<volume><name>v</name><capacity>1</capacity><target><format type='none'/></target></volume>",
        "<volume><name>v</name><capacity>1</capacity><target><format type='bogus'/></target></volume>",
        "<volume><name>v</name><capacity>1</capacity><target><compat>1</compat></target></volume>",
        "<volume><name>v</name><capacity>1</capacity><target><compat>1.a</compat></target></volume>",
        "<volume><name>v</name><capacity>1</capacity><target><features><bogus/></features></target></volume>",
        "<volume><name>v</name><capacity>1</capacity><target><clusterSize unit='x'>1</clusterSize></target></volume>",
        "<volume><name>v</name><capacity>1</capacity><target/><backingStore><path>/b</path><format type='zz'/></backingStore></volume>",
        "<volume><name>v</name><capacity>1</capacity><target><permissions><owner>abc</owner></permissions></target></volume>",
        "<pool/>",
    ] {
        assert!(vol(bad).is_err(), "{bad}");
    }
    let p = pool(DIR_POOL).expect("pool");
    let nocap = VolParseFlags {
        validate: false,
        no_capacity: true,
    };
    let v = VolDef::parse_str("<volume><name>v</name><target/></volume>", &p, nocap).expect("ok");
    assert_eq!(v.capacity, 0);
    let xml =
        "<volume><name>v</name><target/><backingStore><path>/b</path></backingStore></volume>";
    assert!(VolDef::parse_str(xml, &p, VolParseFlags::default()).is_err());
    assert!(VolDef::parse_str_opt_capacity(xml, &p, VolParseFlags::default(), true).is_ok());
}

#[test]
fn volume_formats_follow_the_pool() {
    let xml = "<volume><name>v</name><capacity>1</capacity><target><path>/p/v</path><format type='qcow2'/><nocow/></target></volume>";
    let logical = pool("<pool type='logical'><name>vg</name></pool>").expect("pool");
    let v = VolDef::parse_str(xml, &logical, VolParseFlags::default()).expect("ok");
    assert!(v.target.nocow);
    assert_eq!(
        v.to_xml(&logical),
        "<volume type='file'>\n  <name>v</name>\n  <capacity unit='bytes'>1</capacity>\n  <allocation unit='bytes'>1</allocation>\n  <target>\n    <path>/p/v</path>\n  </target>\n</volume>\n"
    );
    let iscsi = pool("<pool type='iscsi'><name>i</name><source><host name='h'/><device path='t'/></source><target><path>/dev/disk/by-path</path></target></pool>").expect("pool");
    let v = VolDef::parse_str(xml, &iscsi, VolParseFlags::default()).expect("ok");
    assert!(v.to_xml(&iscsi).contains("<format type='unknown'/>"));
    let sheep =
        pool("<pool type='sheepdog'><source><name>sd</name><host name='h'/></source></pool>")
            .expect("pool");
    let v = VolDef::parse_str(xml, &sheep, VolParseFlags::default()).expect("ok");
    assert!(v.to_xml(&sheep).contains("<format type='none'/>"));
    let disk = pool("<pool type='disk'><name>d</name><source><device path='/dev/sda'/></source><target><path>/dev</path></target></pool>").expect("pool");
    assert!(VolDef::parse_str(xml, &disk, VolParseFlags::default()).is_err());
    let dxml = "<volume><name>sda1</name><capacity>1</capacity><target><format type='linux-swap'/></target></volume>";
    let v = VolDef::parse_str(dxml, &disk, VolParseFlags::default()).expect("ok");
    assert!(v.to_xml(&disk).contains("<format type='linux-swap'/>"));
    let v = VolDef::parse_str(
        "<volume><name>sda1</name><capacity>1</capacity><target/></volume>",
        &disk,
        VolParseFlags::default(),
    )
    .expect("ok");
    assert_eq!(
        v.to_xml(&disk),
        "<volume type='file'>\n  <name>sda1</name>\n  <capacity unit='bytes'>1</capacity>\n  <allocation unit='bytes'>1</allocation>\n  <target>\n    <format type='none'/>\n  </target>\n</volume>\n"
    );
}

#[test]
fn volume_live_data_layout() {
    use super::{Timestamp, Timestamps, VolExtent};
    let p = pool(DIR_POOL).expect("pool");
    let mut v = vol("<volume type='block'><name>v</name><capacity>1</capacity><target><encryption format='qcow'/></target></volume>").expect("ok");
    v.physical = 5;
    v.extents = vec![
        VolExtent {
            path: "/dev/a".into(),
            start: 0,
            end: 1,
        },
        VolExtent {
            path: "/dev/a".into(),
            start: 2,
            end: 3,
        },
        VolExtent {
            path: "/dev/b".into(),
            start: 4,
            end: 5,
        },
    ];
    v.target.timestamps = Some(Timestamps {
        atime: Some(Timestamp { sec: 1, nsec: 5 }),
        mtime: Some(Timestamp { sec: 2, nsec: 0 }),
        ..Timestamps::default()
    });
    assert_eq!(
        v.to_xml(&p),
        "<volume type='block'>
  <name>v</name>
  <source>
    <device path='/dev/a'>
      <extent start='0' end='1'/>
      <extent start='2' end='3'/>
    </device>
    <device path='/dev/b'>
      <extent start='4' end='5'/>
    </device>
  </source>
  <capacity unit='bytes'>1</capacity>
  <allocation unit='bytes'>1</allocation>
  <physical unit='bytes'>5</physical>
  <target>
    <format type='raw'/>
    <timestamps>
      <atime>1.000000005</atime>
      <mtime>2</mtime>
    </timestamps>
    <encryption format='qcow'>
    </encryption>
  </target>
</volume>
"
    );
}

#[test]
fn volume_validate_flag() {
    let p = pool(DIR_POOL).expect("pool");
    let strict = VolParseFlags {
        validate: true,
        no_capacity: false,
    };
    let ok =
        "<volume><name>v</name><capacity>1</capacity><target><path>/x</path></target></volume>";
    assert!(VolDef::parse_str(ok, &p, strict).is_ok());
    for bad in [
        "<volume><name>v</name><capacity>1</capacity><target><path>/x</path><bogus/></target></volume>",
        "<volume><name>v</name><capacity>1</capacity></volume>",
        "<volume foo='x'><name>v</name><capacity>1</capacity><target/></volume>",
        "<volume><name>..</name><capacity>1</capacity><target/></volume>",
        "<volume><name>v</name><capacity>1</capacity><target><compat>x</compat></target></volume>",
    ] {
        assert!(VolDef::parse_str(bad, &p, strict).is_err(), "{bad}");
    }
}

#[test]
fn hostile_inputs_do_not_panic() {
    let p = pool(DIR_POOL).expect("pool");
    let seeds = [
        DIR_POOL,
        "<pool type='scsi'><name>h</name><source><adapter type='scsi_host'><parentaddr unique_id='5'><address domain='0x0000' bus='0x00' slot='0x1f' function='0x2'/></parentaddr></adapter></source><target><path>/d</path></target></pool>",
        "<volume><name>v</name><capacity unit='G'>5</capacity><target><path>/x</path><encryption format='luks'><secret type='passphrase' uuid='f52a81b2-424e-490c-823d-6bd4235bc572'/><cipher name='a' size='1'/><ivgen name='b'/></encryption></target></volume>",
    ];
    for seed in seeds {
        let bytes: Vec<char> = seed.chars().collect();
        for i in 0..bytes.len() {
            for repl in ["", "é", "'", "0", "-", "/", "<x/>", "\u{0}"] {
                let mut s: String = bytes[..i].iter().collect();
                s.push_str(repl);
                s.extend(bytes[i + 1..].iter());
                for validate in [false, true] {
                    if let Ok(d) = PoolDef::parse_str(
                        &s,
                        ParseFlags {
                            validate,
                            ..ParseFlags::default()
                        },
                    ) {
                        let _ = d.to_xml();
                    }
                    if let Ok(v) = VolDef::parse_str(
                        &s,
                        &p,
                        VolParseFlags {
                            validate,
                            no_capacity: true,
                        },
                    ) {
                        let _ = v.to_xml(&p);
                    }
                }
            }
        }
    }
}

/// One definition of every pool type (shapes of libvirt's own test
/// inputs): strict parsing accepts them, the output validates against the
/// schema and parses back to itself.
#[test]
fn every_pool_type_round_trips() {
    let uuid = "<uuid>e9392370-2917-565e-692b-d057f46512d6</uuid>";
    let perms = "<permissions><mode>0755</mode><owner>-1</owner><group>-1</group></permissions>";
    let pools = [
        format!(
            "<pool type='dir'><name>d</name>{uuid}<target><path>/var/lib/x/</path>{perms}</target></pool>"
        ),
        format!(
            "<pool type='fs'><name>f</name>{uuid}<source><device path='/dev/sda6'/><format type='ext3'/></source><target><path>/mnt</path></target></pool>"
        ),
        format!(
            "<pool type='fs' xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'><name>f</name>{uuid}<source><device path='/dev/sda6'/></source><target><path>/mnt</path></target><fs:mount_opts><fs:option name='ro'/></fs:mount_opts></pool>"
        ),
        format!(
            "<pool type='netfs'><name>n</name>{uuid}<source><host name='localhost'/><dir path='/var/lib/libvirt/images/'/><format type='nfs'/></source><target><path>/mnt/</path></target></pool>"
        ),
        format!(
            "<pool type='logical'><name>HostVG</name>{uuid}<source><device path='/dev/sda20'/><device path='/dev/sda21'/><name>HostVG</name><format type='lvm2'/></source><target>{perms}</target></pool>"
        ),
        format!(
            "<pool type='disk'><name>vdb</name>{uuid}<source><device path='/dev/vdb' part_separator='no'/><format type='gpt'/></source><target><path>/dev</path></target></pool>"
        ),
        format!(
            "<pool type='iscsi'><name>i</name>{uuid}<source><host name='iscsi.example.com' port='3260'/><device path='demo-target'/><initiator><iqn name='iqn.2013-06.com.example:initiator'/></initiator></source><target><path>/dev/disk/by-path</path></target></pool>"
        ),
        format!(
            "<pool type='iscsi-direct'><name>i</name>{uuid}<source><host name='iscsi.example.com'/><device path='iqn.2013-06.com.example:iscsi-pool'/><initiator><iqn name='iqn.2013-06.com.example:initiator'/></initiator><auth type='chap' username='u'><secret usage='libvirtiscsi'/></auth></source></pool>"
        ),
        format!(
            "<pool type='scsi'><name>s</name>{uuid}<source><adapter type='fc_host' parent='scsi_host5' managed='yes' wwnn='20000000c9831b4b' wwpn='10000000c9831b4b'/></source><target><path>/dev/disk/by-path</path></target></pool>"
        ),
        format!(
            "<pool type='mpath'><name>m</name>{uuid}<target><path>/dev/mapper</path></target></pool>"
        ),
        format!(
            "<pool type='rbd'><name>c</name>{uuid}<source><name>rbd</name><host name='localhost' port='6789'/><auth username='admin' type='ceph'><secret uuid='2ec115d7-3a88-3ceb-bc12-0ac909a6fd87'/></auth></source><refresh><volume allocation='capacity'/></refresh></pool>"
        ),
        format!(
            "<pool type='sheepdog'><name>sheepdog</name>{uuid}<source><name>sheepdog</name><host name='localhost' port='7000'/></source></pool>"
        ),
        format!(
            "<pool type='gluster'><name>g</name>{uuid}<source><name>volume</name><dir path='/sub'/><host name='localhost'/></source></pool>"
        ),
        format!(
            "<pool type='zfs'><name>zfspool</name>{uuid}<source><name>zfspool</name><device path='/dev/ada1'/></source></pool>"
        ),
        format!(
            "<pool type='vstorage'><name>v</name>{uuid}<source><name>cluster</name></source><target><path>/mnt/v</path></target></pool>"
        ),
    ];
    assert_ne!(
        xmllint_ok(
            "<pool type='dir'><bogus/></pool>",
            "storagepool.rng",
            "bogus"
        ),
        Some(true)
    );
    for xml in &pools {
        let def = PoolDef::parse_str(xml, strict()).unwrap_or_else(|e| panic!("{e}: {xml}"));
        let out = def.to_xml();
        assert_ne!(
            xmllint_ok(&out, "storagepool.rng", "synthetic"),
            Some(false),
            "{out}"
        );
        let again = PoolDef::parse_str(&out, strict())
            .expect("output parses")
            .to_xml();
        assert_eq!(again, out);
    }
}
