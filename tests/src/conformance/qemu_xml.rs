//! `domain-xml2xml-qemu` (libvirt's `qemuxmlconftest`, XML half): the
//! input parsed with the QEMU driver's hooks over the "x86_64-latest"
//! capabilities, formatted inactive and secure, compared with
//! `NAME.x86_64-latest.xml`.

use std::sync::{Arc, OnceLock};

use common::xml::{FormatFlags, ParseFlags};
use virtqemud::caps::QemuCaps;
use virtqemud::caps::qemu::LATEST_X86_64_FIXTURE;
use virtqemud::hooks::{QemuConf, QemuHooks};

use super::{Case, CaseRun, Category, Corpus, expect_output, models};

/// The QEMU driver's hooks in libvirt's test world: the fixture caps with
/// machine aliases removed, mocked randomness, no host emulator lookup.
///
/// # Errors
/// The capability fixture cannot be read or parsed.
pub fn qemu_test_hooks(corpus: &Corpus) -> Result<QemuHooks, String> {
    static CAPS: OnceLock<Result<Arc<QemuCaps>, String>> = OnceLock::new();
    let caps = CAPS.get_or_init(|| {
        let mut caps = QemuCaps::load(&corpus.path(LATEST_X86_64_FIXTURE))
            .map_err(|e| format!("capability fixture: {e}"))?;
        caps.strip_machine_aliases();
        Ok(Arc::new(caps))
    });
    caps.clone().map(QemuHooks::test_world)
}

/// The qemu.conf switches (`qemu_conf` column, `a=1,b=2`) and environment
/// (`env` column, `NAME=value`) of a case that post-parse reads.
fn case_conf(case: &Case) -> QemuConf {
    let on = |key: &str| {
        case.get("qemu_conf").is_some_and(|c| {
            c.split(',').any(|kv| {
                kv.split_once('=')
                    .is_some_and(|(k, v)| k == key && v == "1")
            })
        })
    };
    QemuConf {
        nographics_allow_host_audio: on("nographics_allow_host_audio"),
        vnc_allow_host_audio: on("vnc_allow_host_audio"),
        audio_env: case.get("env").and_then(|e| {
            e.split(',')
                .find_map(|kv| kv.strip_prefix("QEMU_AUDIO_DRV="))
                .map(str::to_owned)
        }),
    }
}

/// Parses `input` as the QEMU driver does in the test harness (with the
/// case's qemu.conf settings) and formats the inactive, secure XML.
///
/// # Errors
/// Our refusal message.
pub(super) fn qemu_round_trip(corpus: &Corpus, case: &Case, input: &str) -> Result<String, String> {
    let hooks = qemu_test_hooks(corpus)?.with_conf(case_conf(case));
    models::domain_round_trip(
        input,
        ParseFlags {
            inactive: true,
            ..ParseFlags::default()
        },
        FormatFlags {
            inactive: true,
            secure: true,
            ..FormatFlags::default()
        },
        &hooks,
    )
}

/// `NAME.xml` → `NAME.x86_64-latest.xml`.
#[derive(Debug)]
pub struct Xml2XmlQemu;

impl Category for Xml2XmlQemu {
    fn name(&self) -> &'static str {
        "domain-xml2xml-qemu"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let out_rel = format!("{}.x86_64-latest.xml", case.name);
        let produced = corpus
            .read(format!("{dir}/{}.xml", case.name))
            .and_then(|input| qemu_round_trip(corpus, case, &input));
        expect_output(corpus, dir, &out_rel, produced, Some("domain.rng"))
    }
}
