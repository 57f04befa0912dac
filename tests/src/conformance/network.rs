//! `network-xml2xml`: libvirt's `networkxml2xmltest`.

use common::xml::FormatFlags;

use super::{Case, CaseRun, Category, Corpus, expect_output, expect_refusal, models};

/// Network XML round trip: `in/NAME.xml` → `out/NAME.xml`; manifest
/// `expect` is `ok` or `parse-error`, `format` is `default` or `inactive`.
#[derive(Debug)]
pub struct Xml2Xml;

impl Category for Xml2Xml {
    fn name(&self) -> &'static str {
        "network-xml2xml"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let out_rel = format!("out/{}.xml", case.name);
        let input = match corpus.read(format!("{dir}/in/{}.xml", case.name)) {
            Ok(t) => t,
            Err(e) => return expect_output(corpus, dir, &out_rel, Err(e), None),
        };
        let format = FormatFlags {
            inactive: case.get("format") == Some("inactive"),
            ..FormatFlags::default()
        };
        let produced = models::network_round_trip(&input, format);
        if case.get("expect") == Some("parse-error") {
            expect_refusal(&format!("out/{}.err", case.name), None, &out_rel, produced)
        } else {
            expect_output(corpus, dir, &out_rel, produced, Some("network.rng"))
        }
    }
}
