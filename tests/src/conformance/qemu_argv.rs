//! `domain-xml2argv`: domain XML → QEMU command line (libvirt's
//! `qemuxmlconftest` argv half). The input is the normalised
//! `NAME.x86_64-latest.xml` libvirt built the command from, so the
//! builder is scored independently of the QEMU post-parse hooks.

use common::domain::{DomainDef, TestHooks};
use common::xml::ParseFlags;
use virtqemud::command::{self, CommandContext};

use super::{Actual, Case, CaseRun, Category, Corpus, Expected, FileKind, Outcome, compare};

/// The value of every secret in libvirt's test world.
const TEST_SECRET: &[u8] = b"AQCVn5hO6HzFAhAAq0NCv8jtJcIcE+HOBlMQ1A";

/// The command-line category.
#[derive(Debug)]
pub struct Xml2Argv;

/// The test context for one case: libvirt's fake world plus the case's
/// `qemu_conf` switches.
pub fn context(case: &Case) -> Result<CommandContext, String> {
    let mut ctx = CommandContext::test();
    if let Some(conf) = case.get("qemu_conf").filter(|c| *c != "-") {
        for item in conf.split(',') {
            let (k, v) = item.split_once('=').unwrap_or((item, "1"));
            let on = v == "1";
            match k {
                "vnc_tls" => ctx.conf.vnc_tls = on,
                "vnc_sasl" => ctx.conf.vnc_sasl = on,
                "vnc_tls_x509_verify" => ctx.conf.vnc_tls_x509_verify = on,
                "vnc_tls_x509_secret_uuid" => {
                    ctx.conf.vnc_tls_x509_secret_uuid = Some(v.to_owned());
                    ctx.secrets.push((v.to_owned(), TEST_SECRET.to_vec()));
                }
                "vnc_auto_unix_socket" => ctx.conf.vnc_auto_unix_socket = on,
                "dump_guest_core" => ctx.conf.dump_guest_core = on,
                "chardev_tls" => ctx.conf.chardev_tls = on,
                "chardev_tls_x509_verify" => ctx.conf.chardev_tls_x509_verify = on,
                "chardev_tls_x509_secret_uuid" => {
                    ctx.conf.chardev_tls_x509_secret_uuid = Some(v.to_owned());
                    ctx.secrets.push((v.to_owned(), TEST_SECRET.to_vec()));
                }
                other => return Err(format!("qemu.conf switch '{other}' is not supported")),
            }
        }
    }
    Ok(ctx)
}

/// libvirt's fake network driver names networks `NETXML;PORTXML`; the
/// network definitions are the `network-xml2xml` inputs, and a listen on
/// one uses its first IP address.
fn network_addresses(corpus: &Corpus, domain_xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in domain_xml.split("network='").skip(1) {
        let Some(name) = part.split('\'').next() else {
            continue;
        };
        let file = name.split(';').next().unwrap_or_default();
        let Ok(net) = corpus.read(format!("network-xml2xml/in/{file}.xml")) else {
            continue;
        };
        let addr = net.split("<ip ").nth(1).and_then(|ip| {
            let rest = ip.split("address=").nth(1)?;
            let quote = rest.chars().next()?;
            rest[1..].split(quote).next().map(str::to_owned)
        });
        if let Some(a) = addr {
            out.push((name.to_owned(), a));
        }
    }
    out
}

fn produce(corpus: &Corpus, dir: &str, case: &Case) -> Result<String, String> {
    let xml = corpus.read(format!("{dir}/{}.x86_64-latest.xml", case.name))?;
    let def = DomainDef::parse_str(
        &xml,
        ParseFlags {
            inactive: false,
            ..ParseFlags::default()
        },
        &TestHooks,
    )
    .map_err(|e| e.to_string())?;
    let mut ctx = context(case)?;
    ctx.network_addresses = network_addresses(corpus, &xml);
    let cmd = command::build(&def, &ctx).map_err(|e| e.to_string())?;
    Ok(command::args_to_string(&cmd))
}

impl Category for Xml2Argv {
    fn name(&self) -> &'static str {
        "domain-xml2argv"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let rel = format!("{}.x86_64-latest.args", case.name);
        let expected = match corpus.read(format!("{dir}/{rel}")) {
            Ok(t) => compare::normalize_expected(&t, FileKind::CommandLine),
            Err(e) => format!("<unreadable expected file: {e}>\n"),
        };
        match produce(corpus, dir, case) {
            Ok(out) => {
                let outcome = if compare::matches(&expected, &out, FileKind::CommandLine) {
                    Outcome::Pass
                } else {
                    Outcome::Fail {
                        expected: Expected::Output(expected),
                        actual: Actual::Output(out.clone()),
                    }
                };
                CaseRun {
                    emit: vec![(rel, out)],
                    ..CaseRun::new(outcome)
                }
            }
            Err(e) => CaseRun {
                emit: vec![(format!("{}.x86_64-latest.err", case.name), format!("{e}\n"))],
                ..CaseRun::new(Outcome::Fail {
                    expected: Expected::Output(expected),
                    actual: Actual::Error(e),
                })
            },
        }
    }
}

/// Domain XML the QEMU driver accepts but cannot start (`domain-xml-errors`
/// with `stage=start`): the input must parse (QEMU post-parse, as
/// `domain-xml2xml-qemu`) and building its command line must fail. Our
/// message goes to `NAME.x86_64-latest.err`.
#[derive(Debug)]
pub struct XmlErrorsStart;

impl Category for XmlErrorsStart {
    fn name(&self) -> &'static str {
        "domain-xml-errors-start"
    }

    fn cases(&self, corpus: &Corpus) -> Result<Vec<Case>, String> {
        Ok(corpus
            .manifest("domain-xml-errors")?
            .into_iter()
            .filter(|c| c.get("stage") == Some("start"))
            .collect())
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = "domain-xml-errors";
        let err_rel = format!("{}.x86_64-latest.err", case.name);
        let out_rel = format!("{}.x86_64-latest.args", case.name);
        let expected = corpus.read(format!("{dir}/{err_rel}")).ok();
        let parsed = corpus
            .read(format!("{dir}/{}.xml", case.name))
            .and_then(|input| super::qemu_xml::qemu_round_trip(corpus, case, &input));
        let normalised = match parsed {
            Ok(x) => x,
            Err(e) => {
                return CaseRun::new(Outcome::Fail {
                    expected: Expected::Output(
                        "accepted XML (the refusal comes at start)".to_owned(),
                    ),
                    actual: Actual::Error(e),
                });
            }
        };
        let built = DomainDef::parse_str(
            &normalised,
            ParseFlags {
                inactive: false,
                ..ParseFlags::default()
            },
            &TestHooks,
        )
        .map_err(|e| e.to_string())
        .and_then(|def| {
            let mut ctx = context(case)?;
            ctx.network_addresses = network_addresses(corpus, &normalised);
            command::build(&def, &ctx).map_err(|e| e.to_string())
        })
        .map(|cmd| command::args_to_string(&cmd));
        super::expect_refusal(&err_rel, expected, &out_rel, built)
    }
}
