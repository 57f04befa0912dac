//! Domains on real QEMU (TCG) through virtqemud: start, shutdown, fake
//! reboot (also across a daemon kill -9), reset, destroy, suspend/resume,
//! crashes, reconnect after a daemon restart, transient domains,
//! autostart, events, and the errors of bad requests. The guest is the
//! test kit's tiny boot sector (`tests::guest`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::error::status_detail;
use proto::domain::v1 as pb;
use proto::domain::v1::domain_service_client::DomainServiceClient;
use tests::calls::{domain_ref as by_name, domain_xml};
use tests::guest::{GuestKind, UP_LINE, build_image, create_overlay};
use tests::{Daemon, SocketKind, TestRoot, wait_until, wait_until_async};
use tonic::transport::Channel;

type Client = DomainServiceClient<Channel>;

const RUNNING: i32 = pb::DomainState::Running as i32;
const PAUSED: i32 = pb::DomainState::Paused as i32;
const SHUTOFF: i32 = pb::DomainState::Shutoff as i32;

/// A stack of one virtqemud on its own root, with the guest's files.
/// Dropping it kills every QEMU still running from that root.
struct Env {
    root: TestRoot,
    daemon: Daemon,
}

impl Drop for Env {
    fn drop(&mut self) {
        tests::kill_qemus_under(self.root.path());
    }
}

impl Env {
    async fn new() -> Env {
        let root = TestRoot::new();
        let daemon = Daemon::builder("virtqemud", &root)
            .env("RUST_LOG", "info,virtqemud=debug")
            .start()
            .await;
        Env { root, daemon }
    }

    async fn client(&self) -> Client {
        self.daemon.domain(SocketKind::ReadWrite).await
    }

    fn image(&self, name: &str, kind: GuestKind) -> PathBuf {
        let p = self.root.path().join(format!("{name}.img"));
        build_image(&p, kind).expect("guest image");
        p
    }

    fn serial(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.serial"))
    }

    fn boots(&self, name: &str) -> usize {
        std::fs::read_to_string(self.serial(name))
            .unwrap_or_default()
            .matches(UP_LINE)
            .count()
    }

    /// The domain XML of the tiny guest `kind`.
    fn xml(&self, name: &str, kind: GuestKind) -> String {
        guest_xml(name, &self.image(name, kind), &self.serial(name), kind, "")
    }

    /// The domain XML of the cooperative guest on the disk `image` of
    /// format `format` (`<driver type=>`), which this does not write.
    fn xml_on(&self, name: &str, image: &Path, format: &str) -> String {
        let xml = guest_xml(name, image, &self.serial(name), GuestKind::Cooperative, "").replacen(
            "<driver name='qemu' type='raw'/>",
            &format!("<driver name='qemu' type='{format}'/>"),
            1,
        );
        assert!(xml.contains(&format!("type='{format}'")), "{xml}");
        xml
    }

    async fn define(&self, c: &mut Client, name: &str, kind: GuestKind) {
        c.define_xml(pb::DefineXmlRequest {
            xml: self.xml(name, kind),
            validate: true,
        })
        .await
        .unwrap_or_else(|e| panic!("define {name}: {}", e.message()));
    }

    /// Defines and starts `name`, and waits for its first boot line.
    async fn boot(&self, c: &mut Client, name: &str, kind: GuestKind) {
        self.define(c, name, kind).await;
        start(c, name).await;
        self.wait_boots(name, 1).await;
    }

    async fn wait_boots(&self, name: &str, n: usize) {
        assert!(
            wait_until(Duration::from_secs(5), || self.boots(name) >= n).await,
            "{name}: {n} boot(s) expected, saw {}; QEMU log:\n{}",
            self.boots(name),
            self.qemu_log(name)
        );
    }

    fn qemu_log(&self, name: &str) -> String {
        std::fs::read_to_string(
            self.root
                .paths()
                .driver_log_dir("qemu")
                .join(format!("{name}.log")),
        )
        .unwrap_or_default()
    }

    fn status_file(&self, name: &str) -> PathBuf {
        self.root
            .paths()
            .driver_run_dir("qemu")
            .join(format!("{name}.xml"))
    }

    fn domain_dirs(&self) -> Vec<String> {
        let dir = self.root.paths().driver_state_dir("qemu");
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("domain-"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn qemu_pid(&self, name: &str) -> i32 {
        let text = std::fs::read_to_string(self.status_file(name)).expect("status file");
        let at = text.find("pid='").expect("pid attribute") + 5;
        text[at..]
            .split('\'')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("pid")
    }
}

fn guest_xml(name: &str, image: &Path, serial: &Path, kind: GuestKind, extra: &str) -> String {
    let panic = if kind.needs_pvpanic() {
        "\n    <panic model='isa'/>"
    } else {
        ""
    };
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
  </features>{extra}
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{}'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <serial type='file'>
      <source path='{}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>{panic}
  </devices>
</domain>
",
        image.display(),
        serial.display()
    )
}

async fn start(c: &mut Client, name: &str) -> pb::Domain {
    c.start(pb::StartRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("start {name}: {}", e.message()))
    .into_inner()
    .domain
    .expect("domain")
}

async fn state(c: &mut Client, name: &str) -> (i32, i32) {
    let r = c
        .get_state(pb::GetStateRequest {
            domain: by_name(name),
        })
        .await
        .unwrap_or_else(|e| panic!("state {name}: {}", e.message()))
        .into_inner();
    (r.state, r.reason)
}

async fn wait_state(c: &mut Client, name: &str, want: (i32, i32)) {
    let mut last = (0, 0);
    let ok = wait_until_async(Duration::from_secs(10), || {
        let mut c = c.clone();
        let name = name.to_owned();
        async move { state(&mut c, &name).await == want }
    })
    .await;
    if !ok {
        last = state(c, name).await;
    }
    assert!(ok, "{name}: state {want:?} expected, still {last:?}");
}

/// The domain's XML: live, or with `inactive` the next boot's.
async fn get_xml(mut c: Client, name: &str, inactive: bool) -> String {
    domain_xml(&mut c, name, inactive).await
}

async fn destroy(c: &mut Client, name: &str) {
    c.destroy(pb::DestroyRequest {
        domain: by_name(name),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("destroy {name}: {}", e.message()));
}

/// Lifecycle events of `name` as (event, detail), read until `until`
/// arrives or 10 s pass.
async fn lifecycle_events(
    stream: &mut tonic::Streaming<pb::DomainEvent>,
    name: &str,
    until: (i32, i32),
) -> Vec<(i32, i32)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(Some(ev))) = tokio::time::timeout(left, stream.message()).await else {
            break;
        };
        if ev.domain.as_ref().map(|d| d.name.as_str()) != Some(name) {
            continue;
        }
        if let Some(pb::domain_event::Event::Lifecycle(l)) = &ev.event {
            seen.push((l.event, l.detail));
            if (l.event, l.detail) == until {
                break;
            }
        }
    }
    seen
}

async fn watch(c: &mut Client) -> tonic::Streaming<pb::DomainEvent> {
    c.watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner()
}

// libvirt's event numbers.
const EV_STARTED: i32 = 2;
const EV_SUSPENDED: i32 = 3;
const EV_RESUMED: i32 = 4;
const EV_STOPPED: i32 = 5;
const EV_SHUTDOWN: i32 = 6;
const EV_CRASHED: i32 = 8;

#[tokio::test]
async fn start_runs_the_guest_and_destroy_releases_everything() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let mut events = watch(&mut c).await;
    env.define(&mut c, "vm1", GuestKind::IgnoresPowerButton)
        .await;
    let t0 = Instant::now();
    let d = start(&mut c, "vm1").await;
    let started_in = t0.elapsed();
    assert_eq!(d.id, 1);
    assert_eq!(state(&mut c, "vm1").await, (RUNNING, 1), "running (booted)");
    env.wait_boots("vm1", 1).await;
    eprintln!("start took {started_in:?}");

    // Live XML carries the id; the inactive one does not.
    let live = c
        .get_xml(pb::GetXmlRequest {
            domain: by_name("vm1"),
            ..Default::default()
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    assert!(live.starts_with("<domain type='qemu' id='1'>"), "{live}");
    for alias in ["sata0-0-0", "serial0", "pcie.0", "usb"] {
        assert!(
            live.contains(&format!("<alias name='{alias}'/>")),
            "{alias}: {live}"
        );
    }
    let inactive = c
        .get_xml(pb::GetXmlRequest {
            domain: by_name("vm1"),
            inactive: true,
            ..Default::default()
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    assert!(inactive.starts_with("<domain type='qemu'>"), "{inactive}");
    assert!(!inactive.contains("<alias"), "{inactive}");
    assert!(env.status_file("vm1").is_file());
    assert_eq!(env.domain_dirs(), ["domain-1-vm1"]);
    let pid = env.qemu_pid("vm1");
    let info = c
        .get_info(pb::GetInfoRequest {
            domain: by_name("vm1"),
        })
        .await
        .expect("info")
        .into_inner();
    assert_eq!(
        (info.state, info.nr_virt_cpu, info.max_mem_kib),
        (RUNNING, 1, 32768)
    );
    assert!(info.cpu_time_ns > 0, "QEMU's CPU time is counted");

    // Listing filters see it as active.
    let active = c
        .list_all_domains(pb::ListAllDomainsRequest {
            filter: Some(pb::DomainListFilter {
                active: Some(true),
                ..Default::default()
            }),
        })
        .await
        .expect("list")
        .into_inner()
        .domains;
    assert_eq!(active.len(), 1);

    // Starting again is refused.
    let e = c
        .start(pb::StartRequest {
            domain: by_name("vm1"),
            ..Default::default()
        })
        .await
        .expect_err("already running");
    assert_eq!(
        e.message(),
        "Requested operation is not valid: domain is already running"
    );

    destroy(&mut c, "vm1").await;
    assert_eq!(
        state(&mut c, "vm1").await,
        (SHUTOFF, 2),
        "shut off (destroyed)"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU is gone and reaped"
    );
    assert!(!env.status_file("vm1").exists());
    assert!(env.domain_dirs().is_empty());
    let seen = lifecycle_events(&mut events, "vm1", (EV_STOPPED, 1)).await;
    assert_eq!(seen, [(0, 0), (EV_STARTED, 0), (EV_STOPPED, 1)]);

    // Destroying an inactive domain is refused.
    let e = c
        .destroy(pb::DestroyRequest {
            domain: by_name("vm1"),
            ..Default::default()
        })
        .await
        .expect_err("inactive");
    assert_eq!(
        e.message(),
        "Requested operation is not valid: domain is not running"
    );
    let d = status_detail(&e).expect("detail");
    assert_eq!(d.code, 55, "VIR_ERR_OPERATION_INVALID");

    // It starts again, with the next id; the serial file (append off) was
    // truncated by the start.
    assert_eq!(start(&mut c, "vm1").await.id, 2);
    env.wait_boots("vm1", 1).await;
    assert_eq!(env.domain_dirs(), ["domain-2-vm1"]);
    destroy(&mut c, "vm1").await;
}

#[tokio::test]
async fn acpi_shutdown_ends_shut_off_shutdown() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "vm", GuestKind::Cooperative).await;
    let mut events = watch(&mut c).await;
    let t0 = Instant::now();
    c.shutdown(pb::ShutdownRequest {
        domain: by_name("vm"),
        modes: vec![],
    })
    .await
    .expect("shutdown");
    wait_state(&mut c, "vm", (SHUTOFF, 1)).await;
    eprintln!("shutdown to shut off: {:?}", t0.elapsed());
    let seen = lifecycle_events(&mut events, "vm", (EV_STOPPED, 0)).await;
    assert_eq!(
        seen,
        [(EV_SHUTDOWN, 1), (EV_STOPPED, 0)],
        "shutdown (guest), stopped (shutdown)"
    );
    assert!(env.domain_dirs().is_empty());
    assert!(!env.status_file("vm").exists());
}

#[tokio::test]
async fn fake_reboot_never_leaves_running() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "vm", GuestKind::Cooperative).await;
    let pid = env.qemu_pid("vm");
    let mut events = watch(&mut c).await;

    // Poll the state every few ms while the reboot runs.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let mut c = c.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let s = state(&mut c, "vm").await;
                if seen.last() != Some(&s) {
                    seen.push(s);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            seen
        })
    };
    for round in 1..=2 {
        let t0 = Instant::now();
        c.reboot(pb::RebootRequest {
            domain: by_name("vm"),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("reboot {round}: {}", e.message()));
        eprintln!("reboot {round}: {:?}", t0.elapsed());
        env.wait_boots("vm", 1 + round).await;
    }
    stop.store(true, Ordering::Relaxed);
    let seen = poller.await.expect("poller");
    assert_eq!(
        seen,
        [(RUNNING, 1)],
        "the state never left running (booted)"
    );
    assert_eq!(env.qemu_pid("vm"), pid, "the same QEMU");
    // REBOOT events, and no lifecycle change.
    let mut reboots = 0;
    while let Ok(Ok(Some(ev))) =
        tokio::time::timeout(Duration::from_millis(300), events.message()).await
    {
        match ev.event {
            Some(pb::domain_event::Event::Reboot(_)) => reboots += 1,
            Some(pb::domain_event::Event::Lifecycle(l)) => panic!("lifecycle event {l:?}"),
            _ => {}
        }
    }
    assert!(reboots >= 2, "{reboots} REBOOT events");
    destroy(&mut c, "vm").await;
}

#[tokio::test]
async fn reboot_of_a_guest_ignoring_the_button_times_out_and_keeps_running() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "vm", GuestKind::IgnoresPowerButton).await;
    let e = c
        .reboot(pb::RebootRequest {
            domain: by_name("vm"),
            modes: vec![],
            timeout_ms: 700,
        })
        .await
        .expect_err("times out");
    assert_eq!(
        e.message(),
        "Timed out during operation: domain 'vm' did not act on the ACPI power button within 700 ms; it keeps running"
    );
    assert_eq!(
        status_detail(&e).expect("detail").code,
        68,
        "VIR_ERR_OPERATION_TIMEOUT"
    );
    assert_eq!(state(&mut c, "vm").await, (RUNNING, 1));
    let text = std::fs::read_to_string(env.status_file("vm")).expect("status");
    assert!(!text.contains("<fakereboot/>"), "the flag is cleared");
    destroy(&mut c, "vm").await;
}

#[tokio::test]
async fn suspend_resume_reset() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "vm", GuestKind::IgnoresPowerButton).await;
    let mut events = watch(&mut c).await;
    let t0 = Instant::now();
    c.suspend(pb::SuspendRequest {
        domain: by_name("vm"),
    })
    .await
    .expect("suspend");
    assert_eq!(state(&mut c, "vm").await, (PAUSED, 1), "paused (user)");
    c.resume(pb::ResumeRequest {
        domain: by_name("vm"),
    })
    .await
    .expect("resume");
    eprintln!("suspend+resume: {:?}", t0.elapsed());
    assert_eq!(
        state(&mut c, "vm").await,
        (RUNNING, 5),
        "running (unpaused)"
    );
    let seen = lifecycle_events(&mut events, "vm", (EV_RESUMED, 0)).await;
    assert_eq!(seen, [(EV_SUSPENDED, 0), (EV_RESUMED, 0)], "one event each");

    c.reset(pb::ResetRequest {
        domain: by_name("vm"),
    })
    .await
    .expect("reset");
    env.wait_boots("vm", 2).await;
    assert_eq!(state(&mut c, "vm").await.0, RUNNING);
    destroy(&mut c, "vm").await;
}

#[tokio::test]
async fn start_paused_then_resume() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.define(&mut c, "vm", GuestKind::IgnoresPowerButton)
        .await;
    c.start(pb::StartRequest {
        domain: by_name("vm"),
        paused: true,
        ..Default::default()
    })
    .await
    .expect("start paused");
    assert_eq!(state(&mut c, "vm").await, (PAUSED, 1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.boots("vm"), 0, "the guest has not run");
    c.resume(pb::ResumeRequest {
        domain: by_name("vm"),
    })
    .await
    .expect("resume");
    env.wait_boots("vm", 1).await;
    destroy(&mut c, "vm").await;
}

#[tokio::test]
async fn qemu_killed_from_outside_is_a_crash() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "vm", GuestKind::IgnoresPowerButton).await;
    let mut events = watch(&mut c).await;
    let pid = env.qemu_pid("vm");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill QEMU");
    let t0 = Instant::now();
    wait_state(&mut c, "vm", (SHUTOFF, 3)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "seen at once: {:?}",
        t0.elapsed()
    );
    let seen = lifecycle_events(&mut events, "vm", (EV_STOPPED, 2)).await;
    assert_eq!(seen, [(EV_STOPPED, 2)], "stopped (crashed)");
    assert!(env.domain_dirs().is_empty());
    assert!(!env.status_file("vm").exists());
}

#[tokio::test]
async fn guest_panic_destroys_with_crashed() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let mut events = watch(&mut c).await;
    env.define(&mut c, "vm", GuestKind::Panics).await;
    start(&mut c, "vm").await;
    wait_state(&mut c, "vm", (SHUTOFF, 3)).await;
    let seen = lifecycle_events(&mut events, "vm", (EV_STOPPED, 2)).await;
    assert_eq!(
        seen,
        [(0, 0), (EV_STARTED, 0), (EV_CRASHED, 0), (EV_STOPPED, 2)],
        "crashed (panicked), then stopped (crashed)"
    );
}

#[tokio::test]
async fn transient_domains_vanish_when_they_stop() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let d = c
        .create(pb::CreateRequest {
            xml: env.xml("tr", GuestKind::IgnoresPowerButton),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .domain
        .expect("domain");
    assert_eq!(d.name, "tr");
    assert!(d.id > 0);
    env.wait_boots("tr", 1).await;
    let list = c
        .list_all_domains(pb::ListAllDomainsRequest {
            filter: Some(pb::DomainListFilter {
                persistent: Some(false),
                ..Default::default()
            }),
        })
        .await
        .expect("list")
        .into_inner()
        .domains;
    assert_eq!(list.len(), 1);
    assert!(
        !env.root
            .paths()
            .driver_config_dir("qemu")
            .join("tr.xml")
            .exists()
    );
    destroy(&mut c, "tr").await;
    let e = c
        .get_state(pb::GetStateRequest {
            domain: by_name("tr"),
        })
        .await
        .expect_err("gone");
    assert_eq!(
        e.message(),
        "Domain not found: no domain with matching name 'tr'"
    );
}

#[tokio::test]
async fn a_failed_start_leaves_nothing_behind() {
    let env = Env::new().await;
    let mut c = env.client().await;
    // A qcow2 disk whose file is no qcow2: it exists and is a regular
    // file, so the daemon's checks let it by (the format mismatch is
    // QEMU's to report), and QEMU refuses to open it after it started.
    let not_an_image = env.root.path().join("not-a-qcow2.img");
    std::fs::write(&not_an_image, vec![0u8; 4096]).expect("file");
    let xml = env.xml_on("bad", &not_an_image, "qcow2");
    c.define_xml(pb::DefineXmlRequest {
        xml,
        validate: false,
    })
    .await
    .expect("define");
    let e = c
        .start(pb::StartRequest {
            domain: by_name("bad"),
            ..Default::default()
        })
        .await
        .expect_err("QEMU fails");
    assert!(
        e.message()
            .starts_with("internal error: QEMU unexpectedly closed the monitor")
            && e.message().contains("not-a-qcow2.img"),
        "{}",
        e.message()
    );
    assert_eq!(state(&mut c, "bad").await, (SHUTOFF, 0));
    assert!(env.domain_dirs().is_empty());
    assert!(!env.status_file("bad").exists());
    // Unknown domains and missing references.
    let e = c
        .start(pb::StartRequest {
            domain: by_name("nope"),
            ..Default::default()
        })
        .await
        .expect_err("unknown");
    assert_eq!(
        e.message(),
        "Domain not found: no domain with matching name 'nope'"
    );
    let e = c
        .start(pb::StartRequest::default())
        .await
        .expect_err("no reference");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = c
        .shutdown(pb::ShutdownRequest {
            domain: by_name("bad"),
            modes: vec![pb::ShutdownMode::Signal as i32],
        })
        .await
        .expect_err("mode");
    assert!(
        e.message().starts_with("argument unsupported"),
        "{}",
        e.message()
    );
}

/// The QEMUs running from `env`'s root.
fn qemus(env: &Env) -> Vec<i32> {
    tests::procs::processes("qemu-system", &env.root.path().display().to_string())
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// Asserts that the start of `name` failed with `e`, NOT_FOUND
/// SYSTEM_ERROR `want` in the storage domain, before QEMU ran: the domain
/// is still defined and shut off, and nothing is on the host: no domain
/// directory, no status file, no QEMU, and no log, which only a QEMU about
/// to run gets.
async fn refused_before_qemu_ran(
    env: &Env,
    c: &mut Client,
    name: &str,
    e: &tonic::Status,
    want: &str,
) {
    assert_eq!(e.code(), tonic::Code::NotFound, "{}", e.message());
    assert_eq!(e.message(), want);
    let detail = status_detail(e).expect("detail");
    assert_eq!(
        (detail.code_name.as_str(), detail.domain_name.as_str()),
        ("SYSTEM_ERROR", "STORAGE")
    );
    assert_eq!(state(c, name).await, (SHUTOFF, 0));
    assert!(env.domain_dirs().is_empty());
    assert!(!env.status_file(name).exists());
    assert!(qemus(env).is_empty());
    assert_eq!(env.qemu_log(name), "");
}

#[tokio::test]
async fn a_missing_disk_source_is_refused_before_qemu_runs() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let image = env.root.path().join("later.img");
    let xml = env.xml_on("late", &image, "raw");
    c.define_xml(pb::DefineXmlRequest {
        xml: xml.clone(),
        validate: true,
    })
    .await
    .expect("a definition may name a file that is not there yet");
    let want = format!(
        "Cannot access storage file '{}' of disk 'sda': No such file or directory",
        image.display()
    );
    let e = c
        .start(pb::StartRequest {
            domain: by_name("late"),
            ..Default::default()
        })
        .await
        .expect_err("no image");
    refused_before_qemu_ran(&env, &mut c, "late", &e, &want).await;

    // A transient domain the same: refused, and gone.
    let e = c
        .create(pb::CreateRequest {
            xml: xml.replace("<name>late</name>", "<name>late2</name>"),
            ..Default::default()
        })
        .await
        .expect_err("no image");
    assert_eq!(e.code(), tonic::Code::NotFound, "{}", e.message());
    assert_eq!(e.message(), want);
    let e = c
        .get_state(pb::GetStateRequest {
            domain: by_name("late2"),
        })
        .await
        .expect_err("gone");
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(env.domain_dirs().is_empty());
    assert!(qemus(&env).is_empty());

    // Something else at that path (QEMU's file driver opens only regular
    // files) is refused the same way, before QEMU runs.
    std::fs::create_dir(&image).expect("a directory where the image goes");
    let e = c
        .start(pb::StartRequest {
            domain: by_name("late"),
            ..Default::default()
        })
        .await
        .expect_err("a directory");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
    assert_eq!(
        e.message(),
        format!(
            "invalid argument: source '{}' of disk 'sda' is a directory, \
             but <disk type='file'> needs a regular file",
            image.display()
        )
    );
    assert_eq!(state(&mut c, "late").await, (SHUTOFF, 0));
    assert!(env.domain_dirs().is_empty());
    assert!(qemus(&env).is_empty());
    std::fs::remove_dir(&image).expect("rmdir");

    // Once the file is there, the same domain starts.
    build_image(&image, GuestKind::Cooperative).expect("guest image");
    start(&mut c, "late").await;
    env.wait_boots("late", 1).await;
    destroy(&mut c, "late").await;
}

/// A qcow2 overlay whose backing file is gone is refused before QEMU
/// runs, as libvirt does, rather than by QEMU ("Could not open backing
/// file"); once the backing file is back, the same domain boots from it.
#[tokio::test]
async fn a_missing_backing_file_is_refused_before_qemu_runs() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let base = env.image("chain-base", GuestKind::Cooperative);
    let overlay = env.root.path().join("chain.qcow2");
    // Named relative to the overlay, as written into it: QEMU looks for
    // it next to the overlay.
    create_overlay(&overlay, "chain-base.img", "raw").expect("overlay");
    let xml = env.xml_on("chain", &overlay, "qcow2");
    c.define_xml(pb::DefineXmlRequest {
        xml,
        validate: true,
    })
    .await
    .expect("define");
    let kept = env.root.path().join("chain-base.kept");
    std::fs::rename(&base, &kept).expect("the backing file goes away");

    let e = c
        .start(pb::StartRequest {
            domain: by_name("chain"),
            ..Default::default()
        })
        .await
        .expect_err("no backing file");
    let want = format!(
        "Cannot access backing file 'chain-base.img' of storage file '{}' \
         (as uid:{}, gid:{}): No such file or directory",
        overlay.display(),
        nix::unistd::geteuid(),
        nix::unistd::getegid()
    );
    refused_before_qemu_ran(&env, &mut c, "chain", &e, &want).await;

    // The backing file back: the guest boots through the overlay.
    std::fs::rename(&kept, &base).expect("the backing file is back");
    start(&mut c, "chain").await;
    env.wait_boots("chain", 1).await;
    destroy(&mut c, "chain").await;
}

/// `<backingStore/>` ends the chain where the definition says: the start
/// neither looks for the backing file the image names nor lets QEMU open
/// it (`"backing":null` on the format node, as libvirt).
#[tokio::test]
async fn an_empty_backing_store_starts_without_the_images_backing_file() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let base = env.image("cut-base", GuestKind::Cooperative);
    let overlay = env.root.path().join("cut.qcow2");
    create_overlay(&overlay, "cut-base.img", "raw").expect("overlay");
    std::fs::remove_file(&base).expect("the backing file goes away");
    let xml = env.xml_on("cut", &overlay, "qcow2").replacen(
        "<driver name='qemu' type='qcow2'/>",
        "<driver name='qemu' type='qcow2'/><backingStore/>",
        1,
    );
    c.define_xml(pb::DefineXmlRequest {
        xml,
        validate: true,
    })
    .await
    .expect("define");
    start(&mut c, "cut").await;
    assert_eq!(state(&mut c, "cut").await.0, RUNNING);
    assert_eq!(qemus(&env).len(), 1);
    destroy(&mut c, "cut").await;
}

#[tokio::test]
async fn an_optional_cdrom_whose_file_is_missing_starts_empty() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let iso = env.root.path().join("gone.iso");
    let cdrom = format!(
        "<disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{}' startupPolicy='optional'/>
      <target dev='sdb' bus='sata'/>
      <readonly/>
    </disk>
    <serial type='file'>",
        iso.display()
    );
    let xml = env
        .xml("cd", GuestKind::Cooperative)
        .replacen("<serial type='file'>", &cdrom, 1);
    c.define_xml(pb::DefineXmlRequest {
        xml,
        validate: true,
    })
    .await
    .expect("define");
    start(&mut c, "cd").await;
    env.wait_boots("cd", 1).await;
    let reader = c.clone();
    let xml = |inactive| get_xml(reader.clone(), "cd", inactive);
    // The live drive is there, without a medium; the definition keeps it.
    let live = xml(false).await;
    let drive = live
        .split("<disk ")
        .find(|d| d.contains("device='cdrom'"))
        .unwrap_or_else(|| panic!("no cdrom: {live}"));
    assert!(drive.contains("<target dev='sdb' bus='sata'/>"), "{drive}");
    assert!(!drive.contains("file="), "{drive}");
    assert!(!drive.contains("startupPolicy"), "{drive}");
    assert!(!live.contains("gone.iso"), "{live}");
    let inactive = xml(true).await;
    assert!(
        inactive.contains(&format!(
            "<source file='{}' startupPolicy='optional'/>",
            iso.display()
        )),
        "{inactive}"
    );
    destroy(&mut c, "cd").await;
    // The next start looks again: the medium is used once it is there.
    std::fs::write(&iso, vec![0u8; 2048]).expect("iso");
    start(&mut c, "cd").await;
    assert!(xml(false).await.contains("gone.iso"));
    destroy(&mut c, "cd").await;
}

#[tokio::test]
async fn daemon_kill9_with_running_domains_reconnects_them() {
    let mut env = Env::new().await;
    let mut c = env.client().await;
    for n in ["a", "b"] {
        env.boot(&mut c, n, GuestKind::Cooperative).await;
    }
    c.suspend(pb::SuspendRequest {
        domain: by_name("b"),
    })
    .await
    .expect("suspend b");
    let pids = (env.qemu_pid("a"), env.qemu_pid("b"));
    assert_eq!(state(&mut c, "b").await, (PAUSED, 1), "before the kill");
    let before = std::fs::read_to_string(env.status_file("b")).expect("status");
    env.daemon.kill9();
    let first_log = env.daemon.output();
    env.daemon = Daemon::start("virtqemud", &env.root).await;
    let mut c = env.client().await;
    assert_eq!(state(&mut c, "a").await, (RUNNING, 1));
    let b = state(&mut c, "b").await;
    if b != (PAUSED, 1) {
        panic!(
            "b is {b:?} after the restart; status before the kill:\n{}\nthe first daemon said:\n{first_log}\nthe daemon said:\n{}",
            before.lines().next().unwrap_or_default(),
            env.daemon.output()
        );
    }
    assert_eq!(
        (env.qemu_pid("a"), env.qemu_pid("b")),
        pids,
        "the same processes"
    );
    // Still controllable: resume, reboot, shutdown, destroy.
    c.resume(pb::ResumeRequest {
        domain: by_name("b"),
    })
    .await
    .expect("resume b");
    assert_eq!(state(&mut c, "b").await, (RUNNING, 5));
    c.reboot(pb::RebootRequest {
        domain: by_name("a"),
        ..Default::default()
    })
    .await
    .expect("reboot a");
    env.wait_boots("a", 2).await;
    c.shutdown(pb::ShutdownRequest {
        domain: by_name("a"),
        modes: vec![],
    })
    .await
    .expect("shutdown a");
    wait_state(&mut c, "a", (SHUTOFF, 1)).await;
    // A QEMU that dies now is seen at once (pidfd, not our child).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids.1),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill b");
    wait_state(&mut c, "b", (SHUTOFF, 3)).await;
    assert!(env.domain_dirs().is_empty());
}

#[tokio::test]
async fn qemu_dying_while_the_daemon_is_down() {
    let mut env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "p", GuestKind::IgnoresPowerButton).await;
    let tr = c
        .create(pb::CreateRequest {
            xml: env.xml("t", GuestKind::IgnoresPowerButton),
            ..Default::default()
        })
        .await;
    tr.expect("create t");
    let pids = [env.qemu_pid("p"), env.qemu_pid("t")];
    env.daemon.kill9();
    for pid in pids {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill QEMU");
    }
    // Wait until both are really gone (PID 1 reaps slowly).
    assert!(
        wait_until(Duration::from_secs(5), || pids
            .iter()
            .all(|p| tests_proc_gone(*p)))
        .await
    );
    env.daemon = Daemon::start("virtqemud", &env.root).await;
    let mut c = env.client().await;
    let p = state(&mut c, "p").await;
    assert_eq!(
        p,
        (SHUTOFF, 8),
        "shut off (daemon); the daemon said:\n{}",
        env.daemon.output()
    );
    let e = c
        .get_state(pb::GetStateRequest {
            domain: by_name("t"),
        })
        .await
        .expect_err("transient dropped");
    assert_eq!(
        e.message(),
        "Domain not found: no domain with matching name 't'"
    );
    assert!(env.domain_dirs().is_empty());
    assert!(!env.status_file("p").exists());
    // And it starts again.
    start(&mut c, "p").await;
    destroy(&mut c, "p").await;
}

/// Whether `pid` no longer runs (gone, or a zombie waiting for PID 1).
fn tests_proc_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn reboot_survives_a_daemon_kill9_in_the_middle() {
    let mut env = Env::new().await;
    let mut c = env.client().await;
    // The guest takes about 1 s from the button to its shutdown.
    env.boot(&mut c, "vm", GuestKind::SlowCooperative).await;
    let status = env.status_file("vm");
    let pid = env.qemu_pid("vm");
    let mut c2 = c.clone();
    let req = tokio::spawn(async move {
        c2.reboot(pb::RebootRequest {
            domain: by_name("vm"),
            ..Default::default()
        })
        .await
    });
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&status)
            .is_ok_and(|t| t.contains("<fakereboot/>")))
        .await,
        "the reboot flag is in the status file"
    );
    // The button press (one QMP command after the flag) has gone out.
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.daemon.kill9();
    let _ = req.await;
    // With no daemon, the guest's shutdown stops QEMU (-no-shutdown).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.boots("vm"), 1, "no reboot without a daemon");
    assert!(
        std::fs::read_to_string(&status)
            .expect("status")
            .contains("<fakereboot/>")
    );
    env.daemon = Daemon::start("virtqemud", &env.root).await;
    let mut c = env.client().await;
    if !wait_until(Duration::from_secs(5), || env.boots("vm") >= 2).await {
        panic!(
            "the restarted daemon did not finish the reboot; its output:\n{}",
            env.daemon.output()
        );
    }
    assert_eq!(state(&mut c, "vm").await, (RUNNING, 1));
    assert_eq!(env.qemu_pid("vm"), pid);
    assert!(
        wait_until(Duration::from_secs(2), || !std::fs::read_to_string(&status)
            .expect("status")
            .contains("<fakereboot/>"))
        .await
    );
    // A later ACPI shutdown is a real one.
    c.shutdown(pb::ShutdownRequest {
        domain: by_name("vm"),
        modes: vec![],
    })
    .await
    .expect("shutdown");
    wait_state(&mut c, "vm", (SHUTOFF, 1)).await;
}

#[tokio::test]
async fn event_stream_resumes_after_a_client_reconnect() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "vm", GuestKind::IgnoresPowerButton).await;
    let mut events = watch(&mut c).await;
    c.suspend(pb::SuspendRequest {
        domain: by_name("vm"),
    })
    .await
    .expect("suspend");
    let first = events.message().await.expect("stream").expect("event");
    drop(events);
    // Missed while disconnected.
    c.resume(pb::ResumeRequest {
        domain: by_name("vm"),
    })
    .await
    .expect("resume");
    destroy(&mut c, "vm").await;
    let mut c = env.client().await;
    let mut again = c
        .watch_events(pb::WatchEventsRequest {
            resume_after_seq: Some(first.seq),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let seen = lifecycle_events(&mut again, "vm", (EV_STOPPED, 1)).await;
    if seen != [(EV_RESUMED, 0), (EV_STOPPED, 1)] {
        eprintln!("DAEMON:\n{}", env.daemon.output());
    }
    assert_eq!(seen, [(EV_RESUMED, 0), (EV_STOPPED, 1)]);
}

#[tokio::test]
async fn autostart_once_per_host_boot() {
    let mut env = Env::new().await;
    let mut c = env.client().await;
    env.define(&mut c, "auto", GuestKind::IgnoresPowerButton)
        .await;
    c.set_autostart(pb::SetAutostartRequest {
        domain: by_name("auto"),
        autostart: true,
    })
    .await
    .expect("autostart");
    // This daemon start already counted as the boot's autostart.
    env.daemon.stop().await;
    env.daemon = Daemon::start("virtqemud", &env.root).await;
    let mut c = env.client().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        state(&mut c, "auto").await.0,
        SHUTOFF,
        "not on every daemon start"
    );
    // A host reboot empties the run directory.
    env.daemon.stop().await;
    std::fs::remove_file(env.root.paths().driver_run_dir("qemu").join("autostarted"))
        .expect("marker");
    env.daemon = Daemon::start("virtqemud", &env.root).await;
    let mut c = env.client().await;
    wait_state(&mut c, "auto", (RUNNING, 1)).await;
    destroy(&mut c, "auto").await;
}

// === virtsh ===

use tests::virtsh::{fails as sh_fails, ok as sh_ok};

#[tokio::test]
async fn virtsh_lifecycle_commands_print_virsh_lines() {
    let env = Env::new().await;
    let r = &env.root;
    let file = r.path().join("vm.xml");
    std::fs::write(&file, env.xml("vm", GuestKind::Cooperative)).expect("xml file");
    let f = file.to_str().expect("utf-8");
    assert_eq!(
        sh_ok(r, &["define", f]),
        "Domain 'vm' defined from ".to_owned() + f + "\n\n"
    );
    assert_eq!(sh_ok(r, &["start", "vm"]), "Domain 'vm' started\n\n");
    assert_eq!(
        sh_fails(r, &["start", "vm"]),
        "error: Domain is already active\n"
    );
    env.wait_boots("vm", 1).await;
    assert_eq!(
        sh_ok(r, &["domstate", "vm", "--reason"]),
        "running (booted)\n\n"
    );
    assert_eq!(sh_ok(r, &["suspend", "vm"]), "Domain 'vm' suspended\n\n");
    assert_eq!(
        sh_ok(r, &["domstate", "vm", "--reason"]),
        "paused (user)\n\n"
    );
    assert_eq!(sh_ok(r, &["resume", "vm"]), "Domain 'vm' resumed\n\n");
    assert_eq!(
        sh_ok(r, &["reboot", "vm"]),
        "Domain 'vm' is being rebooted\n\n"
    );
    env.wait_boots("vm", 2).await;
    assert_eq!(sh_ok(r, &["reset", "vm"]), "Domain 'vm' was reset\n\n");
    env.wait_boots("vm", 3).await;
    let list = sh_ok(r, &["list"]);
    assert!(list.contains(" 1    vm     running"), "{list}");
    assert_eq!(
        sh_ok(r, &["shutdown", "vm"]),
        "Domain 'vm' is being shutdown\n\n"
    );
    let mut c = env.client().await;
    wait_state(&mut c, "vm", (SHUTOFF, 1)).await;
    assert_eq!(
        sh_ok(r, &["domstate", "vm", "--reason"]),
        "shut off (shutdown)\n\n"
    );
    assert_eq!(
        sh_fails(r, &["destroy", "vm"]),
        "error: Failed to destroy domain 'vm'\nerror: Requested operation is not valid: domain is not running\n"
    );
    assert_eq!(
        sh_ok(r, &["start", "vm", "--paused"]),
        "Domain 'vm' started\n\n"
    );
    assert_eq!(sh_ok(r, &["domstate", "vm"]), "paused\n\n");
    assert_eq!(sh_ok(r, &["destroy", "vm"]), "Domain 'vm' destroyed\n\n");
    assert_eq!(
        sh_ok(r, &["domstate", "vm", "--reason"]),
        "shut off (destroyed)\n\n"
    );

    // Transient: create, then destroy makes it vanish.
    let tfile = r.path().join("t.xml");
    std::fs::write(&tfile, env.xml("t", GuestKind::IgnoresPowerButton)).expect("xml file");
    let tf = tfile.to_str().expect("utf-8");
    assert_eq!(
        sh_ok(r, &["create", tf]),
        format!("Domain 't' created from {tf}\n\n")
    );
    let all = sh_ok(r, &["list", "--all", "--name"]);
    assert_eq!(all, "t\nvm\n\n");
    assert_eq!(sh_ok(r, &["list", "--transient", "--name"]), "t\n\n");
    assert_eq!(sh_ok(r, &["destroy", "t"]), "Domain 't' destroyed\n\n");
    assert_eq!(sh_ok(r, &["list", "--all", "--name"]), "vm\n\n");

    // domxml-to-native: the command line this definition starts with.
    let argv = sh_ok(r, &["domxml-to-native", "qemu-argv", f]);
    assert!(argv.contains("-name guest=vm,debug-threads=on"), "{argv}");
    assert!(argv.contains("-no-shutdown"), "{argv}");
    assert!(argv.contains("-machine pc-q35-"), "{argv}");
    let e = sh_fails(r, &["domxml-to-native", "xen-xm", f]);
    assert_eq!(
        e,
        "error: invalid argument: unsupported config type xen-xm\n"
    );
}

#[tokio::test]
async fn a_qemu_of_an_unfinished_start_is_killed_at_daemon_start() {
    let mut env = Env::new().await;
    env.daemon.stop().await;
    // What a daemon killed between spawn and status write leaves: a QEMU
    // with its master key under our domain directories, no status file.
    let dir = env
        .root
        .paths()
        .driver_state_dir("qemu")
        .join("domain-7-orphan");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("master-key.aes"), [7u8; 32]).expect("key");
    let secret = format!(
        "secret,id=masterKey0,format=raw,file={}",
        dir.join("master-key.aes").display()
    );
    let mut orphan = std::process::Command::new(tests::guest::qemu_binary())
        .args(["-S", "-no-shutdown", "-machine", "none", "-display", "none"])
        .args(["-object", &secret])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn QEMU");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(orphan.try_wait().expect("wait").is_none(), "QEMU runs");
    env.daemon = Daemon::start("virtqemud", &env.root).await;
    let status = tokio::task::spawn_blocking(move || orphan.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(!status.success(), "killed: {status:?}");
    assert!(!dir.exists(), "its directory is gone");
}

#[tokio::test]
async fn redefining_or_undefining_a_running_domain_changes_only_the_next_boot() {
    let env = Env::new().await;
    let mut c = env.client().await;
    env.boot(&mut c, "vm", GuestKind::IgnoresPowerButton).await;
    let reader = c.clone();
    let xml = |inactive| get_xml(reader.clone(), "vm", inactive);
    let live_before = xml(false).await;
    // Same name and UUID, more memory.
    let uuid = live_before
        .split("<uuid>")
        .nth(1)
        .and_then(|r| r.split("</uuid>").next())
        .expect("uuid")
        .to_owned();
    let bigger = env
        .xml("vm", GuestKind::IgnoresPowerButton)
        .replace(
            "<memory unit='MiB'>32</memory>",
            "<memory unit='MiB'>48</memory>",
        )
        .replace(
            "<name>vm</name>",
            &format!("<name>vm</name>\n  <uuid>{uuid}</uuid>"),
        );
    c.define_xml(pb::DefineXmlRequest {
        xml: bigger,
        validate: false,
    })
    .await
    .expect("redefine while running");
    assert_eq!(
        xml(false).await,
        live_before,
        "the live definition is unchanged"
    );
    assert!(
        xml(true)
            .await
            .contains("<memory unit='KiB'>49152</memory>")
    );
    destroy(&mut c, "vm").await;
    assert!(
        xml(false)
            .await
            .contains("<memory unit='KiB'>49152</memory>"),
        "next boot"
    );

    // Undefine while running: it becomes transient and goes when it stops.
    start(&mut c, "vm").await;
    c.undefine(pb::UndefineRequest {
        domain: by_name("vm"),
        ..Default::default()
    })
    .await
    .expect("undefine while running");
    assert_eq!(state(&mut c, "vm").await.0, RUNNING);
    assert!(
        !env.root
            .paths()
            .driver_config_dir("qemu")
            .join("vm.xml")
            .exists()
    );
    destroy(&mut c, "vm").await;
    let e = c
        .get_state(pb::GetStateRequest {
            domain: by_name("vm"),
        })
        .await
        .expect_err("gone");
    assert_eq!(e.code(), tonic::Code::NotFound);
}

/// A Linux bridge for a test, removed when dropped.
struct Bridge(String);

impl Bridge {
    fn new(root: &TestRoot) -> Bridge {
        // ≤ 15 characters, unique per test root.
        let tag: String = root
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .rev()
            .take(7)
            .collect();
        let name = format!("vtbr{tag}");
        let ok = std::process::Command::new("ip")
            .args(["link", "add", &name, "type", "bridge"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip link add {name}");
        Bridge(name)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .status();
    }
}

#[tokio::test]
async fn a_bridge_nic_gets_a_tap_on_the_bridge_and_loses_it_at_stop() {
    let env = Env::new().await;
    let br = Bridge::new(&env.root);
    let mut c = env.client().await;
    let nic = format!(
        "<interface type='bridge'><mac address='52:54:00:aa:bb:01'/><source bridge='{}'/><model type='virtio'/></interface>\n    <memballoon",
        br.0
    );
    let xml = env
        .xml("vm", GuestKind::IgnoresPowerButton)
        .replacen("<memballoon", &nic, 1);
    c.define_xml(pb::DefineXmlRequest {
        xml,
        validate: true,
    })
    .await
    .unwrap_or_else(|e| panic!("define: {}", e.message()));
    start(&mut c, "vm").await;
    env.wait_boots("vm", 1).await;
    let live = c
        .get_xml(pb::GetXmlRequest {
            domain: by_name("vm"),
            ..Default::default()
        })
        .await
        .expect("xml")
        .into_inner()
        .xml;
    let tap = live
        .split("<interface type='bridge'>")
        .nth(1)
        .and_then(|r| r.split("<target dev='").nth(1))
        .and_then(|r| r.split('\'').next())
        .expect("the live NIC names its tap")
        .to_owned();
    assert!(tap.starts_with("vnet"), "{live}");
    let master = std::fs::read_link(format!("/sys/class/net/{tap}/master")).expect("on a bridge");
    assert_eq!(
        master.file_name().map(|n| n.to_string_lossy().into_owned()),
        Some(br.0.clone())
    );
    let mac = std::fs::read_to_string(format!("/sys/class/net/{tap}/address")).expect("mac");
    assert_eq!(mac.trim(), "fe:54:00:aa:bb:01");
    destroy(&mut c, "vm").await;
    assert!(
        !Path::new(&format!("/sys/class/net/{tap}")).exists(),
        "the tap goes with QEMU"
    );
    // A bridge that does not exist is refused before anything starts.
    drop(br);
    let e = c
        .start(pb::StartRequest {
            domain: by_name("vm"),
            ..Default::default()
        })
        .await
        .expect_err("no bridge");
    assert!(e.message().contains("No such device"), "{}", e.message());
    assert!(env.domain_dirs().is_empty());
}
