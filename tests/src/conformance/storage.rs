//! `pool-xml2xml` and `vol-xml2xml`: libvirt's `storagepoolxml2xmltest`
//! and `storagevolxml2xmltest`.

use super::models::{self, VolParseFlags};
use super::{Case, CaseRun, Category, Corpus, expect_output};

/// Pool XML round trip: `in/NAME.xml` → `out/NAME.xml`. The `build_cond`
/// column is ignored: we build every backend's XML.
#[derive(Debug)]
pub struct PoolXml2Xml;

impl Category for PoolXml2Xml {
    fn name(&self) -> &'static str {
        "pool-xml2xml"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let out_rel = format!("out/{}.xml", case.name);
        let produced = corpus
            .read(format!("{dir}/in/{}.xml", case.name))
            .and_then(|input| models::pool_round_trip(&input));
        expect_output(corpus, dir, &out_rel, produced, Some("storagepool.rng"))
    }
}

/// Volume XML round trip inside `pools/POOL.xml`: `in/NAME.xml` →
/// `out/NAME.xml`; `parse_flags` may be `VIR_VOL_XML_PARSE_NO_CAPACITY`.
#[derive(Debug)]
pub struct VolXml2Xml;

impl Category for VolXml2Xml {
    fn name(&self) -> &'static str {
        "vol-xml2xml"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let out_rel = format!("out/{}.xml", case.name);
        let produced = (|| {
            let pool_name = case.require("pool")?;
            let pool_xml = corpus.read(format!("{dir}/pools/{pool_name}.xml"))?;
            let pool = models::pool_parse(&pool_xml)
                .map_err(|e| format!("pool {pool_name} does not parse: {e}"))?;
            let (flags, opt_capacity) = vol_parse_flags(case.get("parse_flags"))?;
            let input = corpus.read(format!("{dir}/in/{}.xml", case.name))?;
            models::vol_round_trip(&input, &pool, flags, opt_capacity)
        })();
        expect_output(corpus, dir, &out_rel, produced, Some("storagevol.rng"))
    }
}

/// libvirt's `VIR_VOL_XML_PARSE_*` names (`|`-separated) → our flags and
/// whether capacity is optional when the volume has a backing store
/// (`VIR_VOL_XML_PARSE_OPT_CAPACITY`).
///
/// # Errors
/// An unknown flag name.
pub fn vol_parse_flags(col: Option<&str>) -> Result<(VolParseFlags, bool), String> {
    let mut flags = VolParseFlags {
        validate: false,
        no_capacity: false,
    };
    let mut opt_capacity = false;
    for f in col.into_iter().flat_map(|c| c.split('|')).map(str::trim) {
        match f {
            "VIR_VOL_XML_PARSE_NO_CAPACITY" => flags.no_capacity = true,
            "VIR_VOL_XML_PARSE_OPT_CAPACITY" => opt_capacity = true,
            "VIR_VOL_XML_PARSE_VALIDATE" => flags.validate = true,
            "0" | "" => {}
            other => return Err(format!("unknown volume parse flag '{other}'")),
        }
    }
    Ok((flags, opt_capacity))
}
