//! `pool-xml2argv` and `vol-xml2argv`: libvirt's `storagepoolxml2argvtest`
//! and `storagevolxml2argvtest`, scoring the pure builders of
//! `common::storage::argv` (the same ones virtstoraged runs).

use common::storage::argv::{self, QemuImgOptions};
use common::storage::{PoolDef, PoolType, VolDef, VolType};

use super::models::{self, VolParseFlags};
use super::{
    Actual, Case, CaseRun, Category, Corpus, Expected, FileKind, Outcome, compare, expect_refusal,
    vol_parse_flags,
};

/// The secret files of libvirt's harness.
const SECRET_FILE: &str = "/path/to/secretFile";
const INPUT_SECRET_FILE: &str = "/path/to/inputSecretFile";

/// Scores a produced command line against the expected `.argv` file (or
/// an expected refusal when the manifest says `expect=fail`).
fn score(
    corpus: &Corpus,
    dir: &str,
    case: &Case,
    expected_rel: Option<&str>,
    produced: Result<String, String>,
) -> CaseRun {
    let Some(rel) = expected_rel else {
        let out_rel = format!("{}.argv", case.name);
        return expect_refusal(&format!("{}.err", case.name), None, &out_rel, produced);
    };
    let expected = match corpus.read(format!("{dir}/{rel}")) {
        Ok(t) => compare::normalize_expected(&t, FileKind::CommandLine),
        Err(e) => format!("<unreadable expected file: {e}>\n"),
    };
    match produced {
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
                emit: vec![(rel.to_owned(), out)],
                ..CaseRun::new(outcome)
            }
        }
        Err(e) => CaseRun {
            emit: vec![(format!("{}.err", case.name), format!("{e}\n"))],
            ..CaseRun::new(Outcome::Fail {
                expected: Expected::Output(expected),
                actual: Actual::Error(e),
            })
        },
    }
}

/// Whether the manifest expects a command (`expect=argv`) and its file.
fn expected_file(case: &Case) -> Result<Option<String>, String> {
    match case.require("expect")? {
        "fail" => Ok(None),
        _ => Ok(Some(
            case.require("argv")
                .map_or_else(|_| format!("{}.argv", case.name), str::to_owned),
        )),
    }
}

/// Pool XML → the command that starts the pool.
#[derive(Debug)]
pub struct PoolXml2Argv;

impl Category for PoolXml2Argv {
    fn name(&self) -> &'static str {
        "pool-xml2argv"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let expected = match expected_file(case) {
            Ok(e) => e,
            Err(e) => return CaseRun::new(fail(e)),
        };
        let produced = corpus
            .read(format!("{dir}/{}.xml", case.name))
            .and_then(|xml| models::pool_parse(&xml))
            .and_then(|def| {
                argv::pool_start_command(&def)
                    .map(|c| c.to_libvirt_string())
                    .map_err(|e| e.to_string())
            });
        score(corpus, dir, case, expected.as_deref(), produced)
    }
}

/// Volume XML (+ an input volume) → the `qemu-img` command(s) creating it.
#[derive(Debug)]
pub struct VolXml2Argv;

/// The volume type the pool's backend gives (libvirt's harness:
/// `testSetVolumeType`).
fn set_vol_type(vol: &mut VolDef, pool: &PoolDef) {
    vol.vol_type = match pool.pool_type {
        PoolType::Logical => Some(VolType::Block),
        PoolType::Dir | PoolType::Fs | PoolType::NetFs => Some(VolType::File),
        _ => vol.vol_type,
    };
}

fn fail(e: String) -> Outcome {
    Outcome::Fail {
        expected: Expected::Output(String::new()),
        actual: Actual::Error(e),
    }
}

fn produce_vol(corpus: &Corpus, dir: &str, case: &Case) -> Result<String, String> {
    let load_pool = |name: &str| -> Result<PoolDef, String> {
        let xml = corpus.read(format!("{dir}/pools/{name}.xml"))?;
        models::pool_parse(&xml).map_err(|e| format!("pool {name} does not parse: {e}"))
    };
    let pool = load_pool(case.require("pool")?)?;
    let (mut flags, opt_capacity) = vol_parse_flags(case.get("parse_flags"))?;
    let input = match (case.get("inputpool"), case.get("inputvol")) {
        (Some(p), Some(v)) if p != "-" && v != "-" => {
            let ipool = load_pool(p)?;
            let xml = corpus.read(format!("{dir}/vols/{v}.xml"))?;
            let mut ivol = VolDef::parse_str(&xml, &ipool, VolParseFlags::default())
                .map_err(|e| format!("input volume {v} does not parse: {e}"))?;
            set_vol_type(&mut ivol, &ipool);
            Some(ivol)
        }
        _ => None,
    };
    if input.is_some() {
        flags.no_capacity = true;
    }
    let vname = case.require("vol")?;
    let xml = corpus.read(format!("{dir}/vols/{vname}.xml"))?;
    let mut vol = VolDef::parse_str_opt_capacity(&xml, &pool, flags, opt_capacity)
        .map_err(|e| e.to_string())?;
    set_vol_type(&mut vol, &pool);
    let mut opts = QemuImgOptions {
        secret_path: Some(SECRET_FILE),
        input_secret_path: Some(INPUT_SECRET_FILE),
        ..QemuImgOptions::default()
    };
    for f in case
        .get("create_flags")
        .into_iter()
        .flat_map(|c| c.split('|'))
        .map(str::trim)
    {
        match f {
            "VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA" => opts.prealloc_metadata = true,
            "-" | "0" | "" => {}
            other => return Err(format!("unknown volume create flag '{other}'")),
        }
    }
    let cmds = argv::qemu_img_commands(&vol, input.as_ref(), &opts).map_err(|e| e.to_string())?;
    Ok(argv::commands_to_libvirt_string(&cmds))
}

impl Category for VolXml2Argv {
    fn name(&self) -> &'static str {
        "vol-xml2argv"
    }

    fn run(&self, corpus: &Corpus, case: &Case) -> CaseRun {
        let dir = self.name();
        let expected = match case.require("expect") {
            Ok("fail") => None,
            Ok(_) => Some(format!("{}.argv", case.name)),
            Err(e) => return CaseRun::new(fail(e)),
        };
        let produced = produce_vol(corpus, dir, case);
        score(corpus, dir, case, expected.as_deref(), produced)
    }
}
