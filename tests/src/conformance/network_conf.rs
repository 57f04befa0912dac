//! `network-xml2conf` and `network-xml2firewall`: libvirt's
//! `networkxml2conftest` and `networkxml2firewalltest`, scoring the pure
//! builders of `common::network::{dnsmasq, firewall}` (the ones
//! virtnetworkd runs).

use common::network::NetworkDef;
use common::network::dnsmasq::{self, DnsmasqPaths};
use common::network::firewall;
use common::xml::ParseFlags;

use super::{Actual, Case, CaseRun, Category, Corpus, Expected, FileKind, Outcome, compare};

/// The dnsmasq state directory of libvirt's harness.
const DNSMASQ_STATE_DIR: &str = "/var/lib/libvirt/dnsmasq";

/// libvirt's nftables table name.
const LIBVIRT_TABLE: &str = "libvirt_network";

fn parse(corpus: &Corpus, dir: &str, case: &Case) -> Result<NetworkDef, String> {
    let xml = corpus.read(format!("{dir}/{}.xml", case.name))?;
    NetworkDef::parse_str(&xml, ParseFlags::default()).map_err(|e| e.to_string())
}

fn fail(expected: String, actual: Actual) -> Outcome {
    Outcome::Fail {
        expected: Expected::Output(expected),
        actual,
    }
}

/// Compares `produced` with the corpus file `rel`; `None` when it matches.
fn differs(
    corpus: &Corpus,
    dir: &str,
    rel: &str,
    produced: &str,
    kind: FileKind,
) -> Option<Outcome> {
    let expected = match corpus.read(format!("{dir}/{rel}")) {
        Ok(t) => compare::normalize_expected(&t, kind),
        Err(e) => format!("<unreadable expected file: {e}>\n"),
    };
    (!compare::matches(&expected, produced, kind))
        .then(|| fail(expected, Actual::Output(produced.to_owned())))
}

/// Network XML → dnsmasq config (+ DHCP hosts file).
#[derive(Debug)]
pub struct Xml2Conf;

impl Category for Xml2Conf {
    fn name(&self) -> &'static str {
        "network-xml2conf"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let conf_rel = format!("{}.conf", case.name);
        let produced = parse(corpus, dir, case).and_then(|def| {
            dnsmasq::dnsmasq_config(
                &def,
                DnsmasqPaths {
                    state_dir: DNSMASQ_STATE_DIR,
                    pid_file: None,
                },
            )
            .map_err(|e| e.to_string())
        });
        let cfg = match produced {
            Ok(c) => c,
            Err(e) => {
                return CaseRun {
                    emit: vec![(format!("{}.err", case.name), format!("{e}\n"))],
                    ..CaseRun::new(fail(String::new(), Actual::Error(e)))
                };
            }
        };
        let hosts_rel = format!("{}.hostsfile", case.name);
        let mut emit = vec![(conf_rel.clone(), cfg.conf.clone())];
        let mut outcome = differs(corpus, dir, &conf_rel, &cfg.conf, FileKind::Text);
        if case.get("hostsfile") == Some("yes") {
            emit.push((hosts_rel.clone(), cfg.hostsfile.clone()));
            if outcome.is_none() {
                outcome = differs(corpus, dir, &hosts_rel, &cfg.hostsfile, FileKind::Text);
            }
        } else if outcome.is_none() && !cfg.hostsfile.is_empty() {
            outcome = Some(fail(
                "no DHCP host entries".to_owned(),
                Actual::Output(cfg.hostsfile.clone()),
            ));
        }
        CaseRun {
            emit,
            ..CaseRun::new(outcome.unwrap_or(Outcome::Pass))
        }
    }
}

/// Network XML → the nftables commands that set up its firewall.
#[derive(Debug)]
pub struct Xml2Firewall;

impl Category for Xml2Firewall {
    fn name(&self) -> &'static str {
        "network-xml2firewall"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let rel = format!("{}-linux.nftables", case.name);
        let produced = parse(corpus, dir, case).and_then(|def| {
            firewall::network_rules(&def)
                .map(|rules| {
                    let mut s: String = rules
                        .iter()
                        .map(|r| r.command(LIBVIRT_TABLE).to_libvirt_string())
                        .collect::<Vec<_>>()
                        .join("\n");
                    s.push('\n');
                    s
                })
                .map_err(|e| e.to_string())
        });
        match produced {
            Ok(out) => CaseRun {
                emit: vec![(rel.clone(), out.clone())],
                ..CaseRun::new(
                    differs(corpus, dir, &rel, &out, FileKind::CommandLine)
                        .unwrap_or(Outcome::Pass),
                )
            },
            Err(e) => CaseRun {
                emit: vec![(format!("{}.err", case.name), format!("{e}\n"))],
                ..CaseRun::new(fail(String::new(), Actual::Error(e)))
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The base chains libvirt's harness strips equal ours (minus its
    /// `list table` probe).
    #[test]
    fn base_matches_libvirt() {
        let Ok(corpus) = Corpus::locate(None) else {
            return;
        };
        let Ok(expected) = corpus.read("network-xml2firewall/base.nftables") else {
            return;
        };
        let mut ours = String::new();
        for fam in [firewall::NftFamily::Ip, firewall::NftFamily::Ip6] {
            ours.push_str(&format!(
                "nft \\\nlist \\\ntable \\\n{fam} \\\n{LIBVIRT_TABLE}\n"
            ));
            for c in firewall::base_commands(fam, LIBVIRT_TABLE) {
                ours.push_str(&c.to_libvirt_string());
                ours.push('\n');
            }
        }
        assert_eq!(ours, expected);
    }
}
