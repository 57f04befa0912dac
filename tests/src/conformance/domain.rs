//! Domain categories that need only the driver-neutral model:
//! `domain-xml2xml-generic` (libvirt's `genericxml2xmltest`),
//! `domain-schema` (`virschematest` on extra files) and the parse stage of
//! `domain-xml-errors` (`qemuxmlconftest` refusals, through the QEMU
//! driver's hooks as in [`super::qemu_xml`]).

use common::xml::{FormatFlags, ParseFlags};

use super::{
    Actual, Case, CaseRun, Category, Corpus, Expected, Outcome, SchemaCheck, expect_output,
    expect_refusal, models,
};

/// Round trip through the generic hooks. `expect`: `same` (compare with
/// `out/NAME.xml`, or the input when there is none), `different`, or
/// `parse-error`; `parse`: `live` or `inactive`, which also selects the
/// inactive format.
#[derive(Debug)]
pub struct Xml2XmlGeneric;

impl Category for Xml2XmlGeneric {
    fn name(&self) -> &'static str {
        "domain-xml2xml-generic"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let in_rel = format!("in/{}.xml", case.name);
        let mut out_rel = format!("out/{}.xml", case.name);
        let input = match corpus.read(format!("{dir}/{in_rel}")) {
            Ok(t) => t,
            Err(e) => return expect_output(corpus, dir, &out_rel, Err(e), None),
        };
        let inactive = case.get("parse") == Some("inactive");
        let produced = models::domain_round_trip(
            &input,
            ParseFlags {
                inactive,
                ..ParseFlags::default()
            },
            FormatFlags {
                inactive,
                secure: true,
                ..FormatFlags::default()
            },
            &models::generic_hooks(),
        );
        match case.get("expect") {
            Some("parse-error") => {
                expect_refusal(&format!("out/{}.err", case.name), None, &out_rel, produced)
            }
            expect => {
                if expect == Some("same") && !corpus.path(format!("{dir}/{out_rel}")).is_file() {
                    out_rel = in_rel;
                }
                let mut run = expect_output(corpus, dir, &out_rel, produced, Some("domain.rng"));
                // Emit under out/ even when the expected file is the input.
                for (rel, _) in &mut run.emit {
                    if let Some(rest) = rel.strip_prefix("in/") {
                        *rel = format!("out/{rest}");
                    }
                }
                run
            }
        }
    }
}

/// Extra domain XML: must parse with the generic hooks, and our output
/// must validate against `schemas/domain.rng`.
#[derive(Debug)]
pub struct Schema;

impl Category for Schema {
    fn name(&self) -> &'static str {
        "domain-schema"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let rel = format!("{}.xml", case.name);
        let schema = match case.get("schema") {
            Some("domain.rng") | None => "domain.rng",
            Some(other) => {
                return CaseRun::new(Outcome::Fail {
                    expected: Expected::Valid(other.to_owned()),
                    actual: Actual::Error(format!("schema '{other}' is not supported")),
                });
            }
        };
        let produced = corpus
            .read(format!("{}/{rel}", self.name()))
            .and_then(|input| {
                models::domain_round_trip(
                    &input,
                    ParseFlags::default(),
                    FormatFlags {
                        secure: true,
                        ..FormatFlags::default()
                    },
                    &models::generic_hooks(),
                )
            });
        match produced {
            Ok(xml) => CaseRun {
                emit: vec![(rel, xml.clone())],
                schema: Some(SchemaCheck {
                    schema,
                    xml,
                    required: true,
                }),
                ..CaseRun::new(Outcome::Pass)
            },
            Err(e) => CaseRun {
                emit: vec![(format!("{}.err", case.name), format!("{e}\n"))],
                ..CaseRun::new(Outcome::Fail {
                    expected: Expected::Valid(schema.to_owned()),
                    actual: Actual::Error(format!("refused: {e}")),
                })
            },
        }
    }
}

/// Domain XML the QEMU driver refuses while parsing (`stage=parse`): we
/// pass when we refuse it too. Our message goes to `NAME.x86_64-latest.err`;
/// identical messages are counted separately. `stage=start` cases need the
/// command-line builder and are not listed here yet.
#[derive(Debug)]
pub struct XmlErrors;

impl Category for XmlErrors {
    fn name(&self) -> &'static str {
        "domain-xml-errors"
    }

    fn cases(&self, corpus: &Corpus) -> Result<Vec<Case>, String> {
        Ok(corpus
            .manifest(self.name())?
            .into_iter()
            .filter(|c| c.get("stage") == Some("parse"))
            .collect())
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let err_rel = format!("{}.x86_64-latest.err", case.name);
        let out_rel = format!("{}.x86_64-latest.xml", case.name);
        let expected = corpus.read(format!("{dir}/{err_rel}")).ok();
        let input = match corpus.read(format!("{dir}/{}.xml", case.name)) {
            Ok(t) => t,
            Err(e) => {
                return CaseRun::new(Outcome::Fail {
                    expected: Expected::Error(expected.unwrap_or_default()),
                    actual: Actual::Error(format!("corpus: {e}")),
                });
            }
        };
        let produced = super::qemu_xml::qemu_round_trip(corpus, case, &input);
        expect_refusal(&err_rel, expected, &out_rel, produced)
    }
}
