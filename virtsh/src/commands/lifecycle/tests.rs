//! Tests of the lifecycle commands: option parsing and request building,
//! help text, and the exact lines against a fake `DomainService` on a Unix
//! socket (the real daemon side of these RPCs is not there yet).

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::error::{ErrorCode, ErrorDomain, VirtError};
use proto::domain::v1::domain_service_server::{DomainService, DomainServiceServer};
use tonic::codegen::tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::*;
use crate::cli::{command_help, group_help, parse_command};
use crate::ctl::Settings;

fn parse(words: &[&str]) -> Result<Invocation, String> {
    let words: Vec<String> = words.iter().map(|s| (*s).to_owned()).collect();
    parse_command(&crate::commands::TABLE, &words).map_err(|e| e.to_string())
}

fn inv(words: &[&str]) -> Invocation {
    match parse(words) {
        Ok(i) => i,
        Err(e) => panic!("{words:?}: {e}"),
    }
}

fn modes(mode: Option<&str>, which: ModeCommand) -> Result<Vec<pb::ShutdownMode>, String> {
    parse_modes(mode, which).map_err(|e| e.to_string())
}

#[test]
fn mode_names_map_to_the_proto_enum() {
    use pb::ShutdownMode as M;
    for (name, m, n) in [
        ("acpi", M::AcpiPowerBtn, 1),
        ("agent", M::GuestAgent, 2),
        ("initctl", M::Initctl, 3),
        ("signal", M::Signal, 4),
        ("paravirt", M::Paravirt, 5),
    ] {
        assert_eq!(modes(Some(name), ModeCommand::Shutdown), Ok(vec![m]));
        assert_eq!(m as i32, n, "{name}");
    }
    assert_eq!(modes(None, ModeCommand::Shutdown), Ok(vec![]));
}

#[test]
fn mode_lists_are_flag_sets() {
    use pb::ShutdownMode as M;
    assert_eq!(
        modes(Some("agent,acpi"), ModeCommand::Reboot),
        Ok(vec![M::AcpiPowerBtn, M::GuestAgent])
    );
    assert_eq!(
        modes(Some("paravirt,agent,paravirt"), ModeCommand::Shutdown),
        Ok(vec![M::GuestAgent, M::Paravirt])
    );
    assert_eq!(
        modes(
            Some("acpi,agent,initctl,signal,paravirt"),
            ModeCommand::Shutdown
        )
        .map(|v| v.len()),
        Ok(5)
    );
}

#[test]
fn bad_modes_are_virsh_errors() {
    assert_eq!(
        modes(Some("acpi,hard"), ModeCommand::Shutdown),
        Err("Unknown mode hard value, expecting 'acpi', 'agent', 'initctl', 'signal', or 'paravirt'"
            .to_owned())
    );
    assert_eq!(
        modes(Some("ACPI"), ModeCommand::Reboot),
        Err(
            "Unknown mode ACPI value, expecting 'acpi', 'agent', 'initctl', 'signal' or 'paravirt'"
                .to_owned()
        )
    );
    // g_strsplit keeps the empty word after a trailing comma.
    assert_eq!(
        modes(Some("acpi,"), ModeCommand::Shutdown),
        Err(
            "Unknown mode  value, expecting 'acpi', 'agent', 'initctl', 'signal', or 'paravirt'"
                .to_owned()
        )
    );
    assert_eq!(
        modes(Some(""), ModeCommand::Shutdown),
        Err("Failed to get option 'mode': Option argument is empty".to_owned())
    );
}

#[test]
fn start_flags_become_the_request() {
    let d = pb::Domain {
        name: "vm1".into(),
        uuid: "u".into(),
        id: -1,
    };
    let r = start_request(&inv(&["start", "vm1"]), &d);
    assert_eq!(
        r,
        pb::StartRequest {
            domain: Some(uuid_ref(&d)),
            ..Default::default()
        }
    );
    let r = start_request(
        &inv(&[
            "start",
            "--domain",
            "vm1",
            "--paused",
            "--autodestroy",
            "--bypass-cache",
            "--force-boot",
            "--reset-nvram",
        ]),
        &d,
    );
    assert!(r.paused && r.autodestroy && r.bypass_cache && r.force_boot && r.reset_nvram);
    assert_eq!(
        parse(&["start"]).err().as_deref(),
        Some("command 'start' requires <domain> option")
    );
    assert_eq!(
        parse(&["start", "vm1", "--console"]).err().as_deref(),
        Some("command 'start' doesn't support option --console")
    );
}

#[test]
fn create_and_destroy_flags_become_the_request() {
    let r = create_request(
        &inv(&["create", "f.xml", "--paused", "--validate"]),
        "<domain/>".into(),
    );
    assert_eq!(
        r,
        pb::CreateRequest {
            xml: "<domain/>".into(),
            start_paused: true,
            autodestroy: false,
            validate: true,
            reset_nvram: false,
        }
    );
    let r = create_request(
        &inv(&[
            "create",
            "--file",
            "f.xml",
            "--autodestroy",
            "--reset-nvram",
        ]),
        String::new(),
    );
    assert!(r.autodestroy && r.reset_nvram && !r.start_paused && !r.validate);

    let d = pb::Domain::default();
    let r = destroy_request(&inv(&["destroy", "vm"]), &d);
    assert!(!r.graceful && !r.remove_logs);
    let r = destroy_request(&inv(&["destroy", "vm", "--graceful", "--remove-logs"]), &d);
    assert!(r.graceful && r.remove_logs);
}

#[test]
fn domxml_to_native_positionals() {
    let i = inv(&["domxml-to-native", "qemu-argv", "dom.xml"]);
    assert_eq!(i.string("format"), Some("qemu-argv"));
    assert_eq!(i.string("xml"), Some("dom.xml"));
    assert!(!i.is_set("domain"));
    let i = inv(&["domxml-to-native", "qemu-argv", "--domain", "vm1"]);
    assert_eq!(i.string("domain"), Some("vm1"));
    assert!(!i.is_set("xml"));
    // --domain is never filled positionally.
    assert_eq!(
        parse(&["domxml-to-native", "qemu-argv", "a.xml", "vm1"])
            .err()
            .as_deref(),
        Some("unexpected data 'vm1'")
    );
    assert_eq!(
        parse(&["domxml-to-native"]).err().as_deref(),
        Some("command 'domxml-to-native' requires <format> option")
    );
}

#[test]
fn help_of_start_and_the_domain_group() {
    let def = crate::commands::TABLE.lookup("start").expect("defined");
    assert_eq!(
        command_help(def),
        "  NAME\n\
         \x20   start - start a (previously defined) inactive domain\n\
         \n  SYNOPSIS\n\
         \x20   start [--domain] <string> [--paused] [--autodestroy] [--bypass-cache] [--force-boot] [--reset-nvram]\n\
         \n  DESCRIPTION\n\
         \x20   Start a domain, either from the last managedsave\n\
         \x20   state, or via a fresh boot if no managedsave state\n\
         \x20   is present.\n\
         \n  OPTIONS\n\
         \x20   [--domain] <string>  name of the inactive domain\n\
         \x20   --paused         leave the guest paused after creation\n\
         \x20   --autodestroy    automatically destroy the guest when virsh disconnects\n\
         \x20   --bypass-cache   avoid file system cache when loading\n\
         \x20   --force-boot     force fresh boot by discarding any managed save\n\
         \x20   --reset-nvram    re-initialize NVRAM from its pristine template\n\
         \n"
    );
    let def = crate::commands::TABLE
        .lookup("domxml-to-native")
        .expect("defined");
    assert!(command_help(def).contains(
        "    domxml-to-native [--format] <string> [--domain <string>] [[--xml] <string>]\n"
    ));
    let text = group_help(&crate::commands::TABLE, Group::Domain);
    for line in [
        "    create                         create a domain from an XML file\n",
        "    destroy                        destroy (stop) a domain\n",
        "    domxml-to-native               Convert domain XML to native config\n",
        "    reboot                         reboot a domain\n",
        "    reset                          reset a domain\n",
        "    resume                         resume a domain\n",
        "    shutdown                       gracefully shutdown a domain\n",
        "    start                          start a (previously defined) inactive domain\n",
        "    suspend                        suspend a domain\n",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    // Sorted by name, as virsh lists them.
    let create = text.find("    create ").expect("listed");
    let define = text.find("    define ").expect("listed");
    let start = text.find("    start ").expect("listed");
    assert!(create < define && define < start);
}

#[test]
fn unsupported_errors() {
    let no_support = VirtError::new(ErrorCode::NoSupport, ErrorDomain::Rpc, "x").to_status();
    assert!(unsupported(&no_support.into()));
    let invalid = VirtError::new(ErrorCode::InvalidArg, ErrorDomain::Qemu, "x").to_status();
    assert!(unsupported(&invalid.into()));
    assert!(unsupported(&Status::unimplemented("").into()));
    let other = VirtError::new(ErrorCode::OperationInvalid, ErrorDomain::Qemu, "x").to_status();
    assert!(!unsupported(&other.into()));
    assert_eq!(
        start_error(false, "vm", Error::msg("boom")).lines(),
        vec!["Failed to start domain 'vm'", "boom"]
    );
    assert_eq!(
        start_error(true, "vm", Error::msg("boom")).lines(),
        vec!["boom"]
    );
}

// ---- Against a fake daemon ----

const U_VM1: &str = "11111111-1111-1111-1111-111111111111";
const U_VM2: &str = "22222222-2222-2222-2222-222222222222";
const U_BAD: &str = "33333333-3333-3333-3333-333333333333";
const U_BAD_OFF: &str = "44444444-4444-4444-4444-444444444444";

fn domains() -> Vec<pb::Domain> {
    [
        ("vm1", U_VM1, -1),
        ("vm2", U_VM2, 2),
        ("bad", U_BAD, 3),
        ("bad-off", U_BAD_OFF, -1),
    ]
    .into_iter()
    .map(|(name, uuid, id)| pb::Domain {
        name: name.into(),
        uuid: uuid.into(),
        id,
    })
    .collect()
}

/// A `DomainService` with four domains (`vm1` inactive, `vm2` running as
/// id 2, `bad` running and `bad-off` inactive, whose operations fail),
/// recording the requests it gets. With `unimplemented`, the lifecycle
/// RPCs answer as today's virtqemud does.
#[derive(Default)]
struct Fake {
    calls: Arc<Mutex<Vec<String>>>,
    unimplemented: bool,
}

impl Fake {
    fn find(r: Option<&pb::DomainRef>) -> Result<pb::Domain, Status> {
        use pb::domain_ref::By;
        let by = r.and_then(|r| r.by.clone());
        let found = domains().into_iter().find(|d| match &by {
            Some(By::Name(n)) => *n == d.name,
            Some(By::Uuid(u)) => *u == d.uuid,
            Some(By::Id(i)) => *i == d.id,
            None => false,
        });
        found.ok_or_else(|| {
            let what = match by {
                Some(By::Name(n)) => format!("name '{n}'"),
                Some(By::Uuid(u)) => format!("uuid '{u}'"),
                Some(By::Id(i)) => format!("id {i}"),
                None => String::new(),
            };
            VirtError::new(
                ErrorCode::NoDomain,
                ErrorDomain::Qemu,
                format!("Domain not found: no domain with matching {what}"),
            )
            .to_status()
        })
    }

    /// Records `call` and fails for the `bad*` domains.
    fn op<T: Default>(
        &self,
        method: &str,
        call: String,
        r: Option<&pb::DomainRef>,
    ) -> Result<Response<T>, Status> {
        self.calls.lock().expect("lock").push(call);
        if self.unimplemented {
            return Err(proto::unimplemented_status(&format!(
                "/virt.domain.v1.DomainService/{method}"
            )));
        }
        let d = Fake::find(r)?;
        if d.name.starts_with("bad") {
            return Err(VirtError::new(
                ErrorCode::OperationInvalid,
                ErrorDomain::Qemu,
                format!(
                    "Requested operation is not valid: {method} of '{}' refused",
                    d.name
                ),
            )
            .to_status());
        }
        Ok(Response::new(T::default()))
    }
}

#[tonic::async_trait]
impl DomainService for Fake {
    async fn lookup_domain(
        &self,
        r: Request<pb::LookupDomainRequest>,
    ) -> Result<Response<pb::LookupDomainResponse>, Status> {
        let d = Fake::find(r.get_ref().domain.as_ref())?;
        Ok(Response::new(pb::LookupDomainResponse { domain: Some(d) }))
    }

    async fn start(
        &self,
        r: Request<pb::StartRequest>,
    ) -> Result<Response<pb::StartResponse>, Status> {
        let r = r.into_inner();
        self.op("Start", format!("{r:?}"), r.domain.as_ref())
    }

    async fn create(
        &self,
        r: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateResponse>, Status> {
        let r = r.into_inner();
        self.calls.lock().expect("lock").push(format!("{r:?}"));
        if r.xml.contains("<name>bad</name>") {
            return Err(VirtError::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                "operation failed: domain 'bad' already exists with uuid 3333",
            )
            .to_status());
        }
        Ok(Response::new(pb::CreateResponse {
            domain: Some(pb::Domain {
                name: "new".into(),
                uuid: U_VM1.into(),
                id: 7,
            }),
        }))
    }

    async fn shutdown(
        &self,
        r: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        let r = r.into_inner();
        self.op("Shutdown", format!("{r:?}"), r.domain.as_ref())
    }

    async fn reboot(
        &self,
        r: Request<pb::RebootRequest>,
    ) -> Result<Response<pb::RebootResponse>, Status> {
        let r = r.into_inner();
        self.op("Reboot", format!("{r:?}"), r.domain.as_ref())
    }

    async fn reset(
        &self,
        r: Request<pb::ResetRequest>,
    ) -> Result<Response<pb::ResetResponse>, Status> {
        let r = r.into_inner();
        self.op("Reset", format!("{r:?}"), r.domain.as_ref())
    }

    async fn destroy(
        &self,
        r: Request<pb::DestroyRequest>,
    ) -> Result<Response<pb::DestroyResponse>, Status> {
        let r = r.into_inner();
        self.op("Destroy", format!("{r:?}"), r.domain.as_ref())
    }

    async fn suspend(
        &self,
        r: Request<pb::SuspendRequest>,
    ) -> Result<Response<pb::SuspendResponse>, Status> {
        let r = r.into_inner();
        self.op("Suspend", format!("{r:?}"), r.domain.as_ref())
    }

    async fn resume(
        &self,
        r: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::ResumeResponse>, Status> {
        let r = r.into_inner();
        self.op("Resume", format!("{r:?}"), r.domain.as_ref())
    }

    async fn get_xml(
        &self,
        r: Request<pb::GetXmlRequest>,
    ) -> Result<Response<pb::GetXmlResponse>, Status> {
        let d = Fake::find(r.get_ref().domain.as_ref())?;
        if d.name.starts_with("bad") {
            return Err(VirtError::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                "operation failed: no XML",
            )
            .to_status());
        }
        Ok(Response::new(pb::GetXmlResponse {
            xml: format!("<domain><name>{}</name></domain>\n", d.name),
        }))
    }

    async fn domain_xml_to_native(
        &self,
        r: Request<pb::DomainXmlToNativeRequest>,
    ) -> Result<Response<pb::DomainXmlToNativeResponse>, Status> {
        let r = r.into_inner();
        self.calls.lock().expect("lock").push(format!("{r:?}"));
        if r.native_format != "qemu-argv" {
            return Err(VirtError::new(
                ErrorCode::ConfigUnsupported,
                ErrorDomain::Qemu,
                format!(
                    "unsupported configuration: Unsupported config type {}",
                    r.native_format
                ),
            )
            .to_status());
        }
        Ok(Response::new(pb::DomainXmlToNativeResponse {
            native_config: "LC_ALL=C /usr/bin/qemu-system-x86_64 -name guest=vm2".into(),
        }))
    }
}

/// Output captured from a `Ctl`.
#[derive(Clone, Default)]
struct Buf(Rc<RefCell<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn take(&self) -> String {
        let text = String::from_utf8_lossy(&self.0.borrow()).into_owned();
        self.0.borrow_mut().clear();
        text
    }
}

/// A fake daemon on a fresh socket, and a `Ctl` talking to it.
struct Harness {
    ctl: Ctl,
    out: Buf,
    err: Buf,
    calls: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Harness {
    fn new(unimplemented: bool) -> Harness {
        let dir = std::env::temp_dir().join(format!(
            "virtsh-lc-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let sock = dir.join("sock");
        let listener = tokio::net::UnixListener::bind(&sock).expect("bind");
        let fake = Fake {
            calls: Arc::default(),
            unimplemented,
        };
        let calls = fake.calls.clone();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(DomainServiceServer::new(fake))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        let (out, err) = (Buf::default(), Buf::default());
        let uri = format!("qemu+unix:///system?socket={}", sock.display());
        let ctl = Ctl::new(&crate::commands::TABLE, Settings::default(), Some(uri))
            .with_output(Box::new(out.clone()), Box::new(err.clone()));
        Harness {
            ctl,
            out,
            err,
            calls,
            dir,
        }
    }

    /// Writes `text` to a file in the harness directory; returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }

    /// Runs one command line: (success, stdout, stderr, requests seen).
    async fn run(&mut self, line: &str) -> (bool, String, String, Vec<String>) {
        let cmds = match self.ctl.parse_line(line) {
            Ok(c) => c,
            Err(e) => panic!("{line}: {e}"),
        };
        let ok = self.ctl.run(&cmds).await;
        let calls = std::mem::take(&mut *self.calls.lock().expect("lock"));
        (ok, self.out.take(), self.err.take(), calls)
    }

    /// Runs `line`, expecting success and exactly `stdout` (before the
    /// blank line virsh prints after each command).
    async fn ok(&mut self, line: &str, stdout: &str) -> Vec<String> {
        let (ok, out, err, calls) = self.run(line).await;
        assert!(ok, "{line}: {err}");
        assert_eq!(out, format!("{stdout}\n"), "{line}");
        assert_eq!(err, "", "{line}");
        calls
    }

    /// Runs `line`, expecting failure with exactly `stderr`.
    async fn fails(&mut self, line: &str, stderr: &str) -> Vec<String> {
        let (ok, out, err, calls) = self.run(line).await;
        assert!(!ok, "{line}: {out}");
        assert_eq!(err, stderr, "{line}");
        assert_eq!(out, "\n", "{line}");
        calls
    }
}

#[tokio::test]
async fn start_lines() {
    let mut h = Harness::new(false);
    let calls = h.ok("start vm1", "Domain 'vm1' started\n").await;
    assert_eq!(calls.len(), 1);
    assert!(calls[0].contains(U_VM1), "{calls:?}");
    let calls = h
        .ok(&format!("start {U_VM1} --paused"), "Domain 'vm1' started\n")
        .await;
    assert!(calls[0].contains("paused: true"), "{calls:?}");

    let calls = h
        .fails("start vm2", "error: Domain is already active\n")
        .await;
    assert!(calls.is_empty());
    // start looks domains up by name or UUID only, not by id.
    h.fails(
        "start 2",
        "error: failed to get domain '2'\n\
         error: Domain not found: no domain with matching name '2'\n",
    )
    .await;
    h.fails(
        "start bad-off",
        "error: Failed to start domain 'bad-off'\n\
         error: Requested operation is not valid: Start of 'bad-off' refused\n",
    )
    .await;
    h.fails(
        "start bad-off --force-boot",
        "error: Requested operation is not valid: Start of 'bad-off' refused\n",
    )
    .await;
    h.fails(
        "start ''",
        "error: Failed to get option 'domain': Option argument is empty\n",
    )
    .await;
}

#[tokio::test]
async fn create_lines() {
    let mut h = Harness::new(false);
    let good = h.file("good.xml", "<domain><name>new</name></domain>");
    let calls = h
        .ok(
            &format!("create {good} --validate"),
            &format!("Domain 'new' created from {good}\n"),
        )
        .await;
    assert!(calls[0].contains("validate: true"), "{calls:?}");
    let bad = h.file("bad.xml", "<domain><name>bad</name></domain>");
    h.fails(
        &format!("create {bad}"),
        &format!(
            "error: Failed to create domain from {bad}\n\
             error: operation failed: domain 'bad' already exists with uuid 3333\n"
        ),
    )
    .await;
    let calls = h
        .fails(
            "create /nonexistent/x.xml",
            "error: Failed to open file '/nonexistent/x.xml': No such file or directory\n",
        )
        .await;
    assert!(calls.is_empty());
}

#[tokio::test]
async fn domain_operation_lines() {
    let mut h = Harness::new(false);
    let calls = h
        .ok(
            "shutdown vm2 --mode agent,acpi",
            "Domain 'vm2' is being shutdown\n",
        )
        .await;
    assert!(
        calls[0].contains("modes: [AcpiPowerBtn, GuestAgent]"),
        "{calls:?}"
    );
    // Lines name the domain as given (here by id).
    let calls = h.ok("shutdown 2", "Domain '2' is being shutdown\n").await;
    assert!(calls[0].contains("modes: []"), "{calls:?}");
    let calls = h
        .ok(
            "reboot vm2 --mode=paravirt",
            "Domain 'vm2' is being rebooted\n",
        )
        .await;
    assert!(calls[0].contains("modes: [Paravirt]"), "{calls:?}");
    h.ok("reset vm2", "Domain 'vm2' was reset\n").await;
    let calls = h
        .ok("destroy vm2 --graceful", "Domain 'vm2' destroyed\n")
        .await;
    assert!(
        calls[0].contains("graceful: true, remove_logs: false"),
        "{calls:?}"
    );
    h.ok("suspend vm2", "Domain 'vm2' suspended\n").await;
    h.ok(
        &format!("resume {U_VM2}"),
        &format!("Domain '{U_VM2}' resumed\n"),
    )
    .await;

    for (cmd, first) in [
        ("shutdown", "Failed to shutdown domain 'bad'"),
        ("reboot", "Failed to reboot domain 'bad'"),
        ("reset", "Failed to reset domain 'bad'"),
        ("destroy", "Failed to destroy domain 'bad'"),
        ("suspend", "Failed to suspend domain 'bad'"),
        ("resume", "Failed to resume domain 'bad'"),
    ] {
        let method = match cmd {
            "shutdown" => "Shutdown",
            "reboot" => "Reboot",
            "reset" => "Reset",
            "destroy" => "Destroy",
            "suspend" => "Suspend",
            _ => "Resume",
        };
        h.fails(
            &format!("{cmd} bad"),
            &format!(
                "error: {first}\n\
                 error: Requested operation is not valid: {method} of 'bad' refused\n"
            ),
        )
        .await;
    }

    // Mode errors come before the domain is looked up.
    let calls = h
        .fails(
            "shutdown nosuch --mode hard",
            "error: Unknown mode hard value, expecting 'acpi', 'agent', 'initctl', 'signal', or 'paravirt'\n",
        )
        .await;
    assert!(calls.is_empty());
    h.fails(
        "reboot nosuch",
        "error: failed to get domain 'nosuch'\n\
         error: Domain not found: no domain with matching name 'nosuch'\n",
    )
    .await;
}

#[tokio::test]
async fn quiet_silences_the_lines() {
    let mut h = Harness::new(false);
    h.ctl.settings.quiet = true;
    let (ok, out, err, _) = h.run("suspend vm2; resume vm2").await;
    assert!(ok, "{err}");
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
}

#[tokio::test]
async fn todays_daemon_answers_unimplemented() {
    let mut h = Harness::new(true);
    h.fails(
        "start vm1 --force-boot",
        "error: Failed to start domain 'vm1'\n\
         error: this function is not supported by the connection driver: virt.domain.v1.DomainService/Start\n",
    )
    .await;
    h.fails(
        "destroy vm2",
        "error: Failed to destroy domain 'vm2'\n\
         error: this function is not supported by the connection driver: virt.domain.v1.DomainService/Destroy\n",
    )
    .await;
}

#[tokio::test]
async fn domxml_to_native_lines() {
    let mut h = Harness::new(false);
    let xml = h.file("d.xml", "<domain><name>vm2</name></domain>");
    // Printed as returned: virsh adds no newline (the blank line after
    // the command ends it).
    let (ok, out, err, calls) = h.run(&format!("domxml-to-native qemu-argv {xml}")).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "LC_ALL=C /usr/bin/qemu-system-x86_64 -name guest=vm2\n"
    );
    assert!(
        calls[0].contains("xml: \"<domain><name>vm2</name></domain>\""),
        "{calls:?}"
    );
    let (ok, _, err, calls) = h.run("domxml-to-native qemu-argv --domain vm2").await;
    assert!(ok, "{err}");
    assert!(
        calls[0].contains(r#"xml: "<domain><name>vm2</name></domain>\n""#),
        "{calls:?}"
    );

    h.fails(
        "domxml-to-native xen-xm --domain vm2",
        "error: unsupported configuration: Unsupported config type xen-xm\n",
    )
    .await;
    h.fails(
        "domxml-to-native qemu-argv --domain bad",
        "error: failed to retrieve XML\nerror: operation failed: no XML\n",
    )
    .await;
    h.fails(
        "domxml-to-native qemu-argv",
        "error: need either domain or domain XML\n",
    )
    .await;
    let calls = h
        .fails(
            &format!("domxml-to-native qemu-argv {xml} --domain vm2"),
            "error: Options --domain and --xml are mutually exclusive\n",
        )
        .await;
    assert!(calls.is_empty());
    h.fails(
        "domxml-to-native qemu-argv --domain nosuch",
        "error: failed to get domain 'nosuch'\n\
         error: Domain not found: no domain with matching name 'nosuch'\n",
    )
    .await;
}
