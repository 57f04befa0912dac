//! A tiny bootable test guest, and a helper that runs it under real QEMU.
//!
//! [`build_image`] writes a raw disk image whose first sector is a
//! hand-encoded x86 real-mode boot sector. SeaBIOS loads it at `0000:7C00`
//! and jumps to it (q35, TCG: about 0.1–0.2 s from QEMU start). Every kind
//! first prints [`UP_LINE`] on COM1 (so tests can count boots from the
//! serial file), then behaves as its [`GuestKind`] says. After any reset
//! (`system_reset`, guest reset) SeaBIOS boots the sector again, so the line
//! appears once per boot.
//!
//! [`TestVm`] spawns `qemu-system-x86_64` with the image on the command line
//! the lifecycle tests use ([`qemu_args`]), a QMP socket and a serial file in
//! its own temporary directory, and kills QEMU when dropped, so a failing
//! test never leaves a process behind. It speaks no QMP itself.
//!
//! No assembler is used: each piece of machine code below is a byte array
//! with its listing beside it (offsets are from the start of the sector,
//! which sits at address 0x7C00).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The line every kind prints on COM1 at each boot.
pub const UP_LINE: &str = "virt-test-guest: up\n";

/// The image size in 512-byte sectors. SeaBIOS refuses disks much smaller
/// than one 16-head, 63-sector cylinder (1008 sectors: "could not read the
/// boot disk"); 2048 sectors (1 MiB) is comfortably above it.
pub const IMAGE_SECTORS: u64 = 2048;

/// What the guest does after printing [`UP_LINE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestKind {
    /// Enables the ACPI power button and, on each timer tick, polls the
    /// power-button status; when it is set, enters S5 (SLP_EN): QMP
    /// `system_powerdown` gives POWERDOWN then SHUTDOWN {guest: true,
    /// reason: guest-shutdown}.
    Cooperative,
    /// As [`GuestKind::Cooperative`], but waits about one second (18 timer
    /// ticks) between seeing the button and entering S5: time to do
    /// something (kill a daemon) between the press and the SHUTDOWN.
    SlowCooperative,
    /// Halts forever with interrupts on: `system_powerdown` gives
    /// POWERDOWN and nothing else (shutdown timeouts).
    IgnoresPowerButton,
    /// Waits about four timer ticks (~0.2 s), then resets through port
    /// 0xCF9: RESET {guest: true, reason: guest-reset}, then it boots again
    /// (and resets again, in a loop).
    ResetsItself,
    /// Writes "panicked" to the pvpanic port 0x505: GUEST_PANICKED (QEMU
    /// needs `-device pvpanic`, which [`qemu_args`] adds for this kind).
    Panics,
}

impl GuestKind {
    /// All kinds.
    pub const ALL: [GuestKind; 5] = [
        GuestKind::Cooperative,
        GuestKind::SlowCooperative,
        GuestKind::IgnoresPowerButton,
        GuestKind::ResetsItself,
        GuestKind::Panics,
    ];

    /// Whether QEMU needs `-device pvpanic` for this kind.
    pub fn needs_pvpanic(self) -> bool {
        self == GuestKind::Panics
    }

    /// The code after the common prologue (placed at [`TAIL_OFFSET`]).
    fn tail(self) -> &'static [u8] {
        match self {
            GuestKind::Cooperative => &TAIL_COOPERATIVE,
            GuestKind::SlowCooperative => &TAIL_SLOW_COOPERATIVE,
            GuestKind::IgnoresPowerButton => &TAIL_IGNORES,
            GuestKind::ResetsItself => &TAIL_RESETS,
            GuestKind::Panics => &TAIL_PANICS,
        }
    }
}

/// Where the message lives in the sector (address 0x7C00 + 0x180 = 0x7D80,
/// hard-coded in the prologue's `mov si`).
const MSG_OFFSET: usize = 0x180;

/// Where the per-kind code starts: right after the prologue.
const TAIL_OFFSET: usize = PROLOGUE.len();

/// Common to every kind: set up segments and stack, print [`UP_LINE`]
/// (NUL-terminated at [`MSG_OFFSET`]) on COM1 with a polled UART write.
/// The UART needs no set-up: QEMU's 16550 accepts bytes at any baud rate.
/// Interrupts stay off until the tail turns them on.
#[rustfmt::skip]
const PROLOGUE: [u8; 0x25] = [
    /* 00 */ 0xFA,             // cli
    /* 01 */ 0x31, 0xC0,       // xor  ax, ax
    /* 03 */ 0x8E, 0xD8,       // mov  ds, ax
    /* 05 */ 0x8E, 0xD0,       // mov  ss, ax
    /* 07 */ 0xBC, 0x00, 0x7C, // mov  sp, 0x7C00        ; stack grows down below us
    /* 0A */ 0xFC,             // cld
    /* 0B */ 0xBE, 0x80, 0x7D, // mov  si, 0x7D80        ; the message
    // next:
    /* 0E */ 0xAC,             // lodsb                  ; al = [si++]
    /* 0F */ 0x84, 0xC0,       // test al, al
    /* 11 */ 0x74, 0x12,       // jz   done (0x25)
    /* 13 */ 0x88, 0xC4,       // mov  ah, al            ; keep the byte
    /* 15 */ 0xBA, 0xFD, 0x03, // mov  dx, 0x3FD         ; COM1 line status
    // wait:
    /* 18 */ 0xEC,             // in   al, dx
    /* 19 */ 0xA8, 0x20,       // test al, 0x20          ; THR empty?
    /* 1B */ 0x74, 0xFB,       // jz   wait (0x18)
    /* 1D */ 0xBA, 0xF8, 0x03, // mov  dx, 0x3F8         ; COM1 data
    /* 20 */ 0x88, 0xE0,       // mov  al, ah
    /* 22 */ 0xEE,             // out  dx, al
    /* 23 */ 0xEB, 0xE9,       // jmp  next (0x0E)
    // done: the tail follows at 0x25
];

/// Cooperative: enable the power button, then on every wake-up (the BIOS
/// timer tick, 18.2 Hz) poll PM1 status; on the button, enter S5.
/// q35's ACPI PM block is at 0x600 (SeaBIOS sets it; no ACPI-enable step).
/// QEMU only latches the button status while PM1 enable has PWRBTN_EN.
/// The SCI this may raise is IRQ 9, which SeaBIOS leaves masked.
#[rustfmt::skip]
const TAIL_COOPERATIVE: [u8; 0x1C] = [
    /* 25 */ 0xBA, 0x02, 0x06, // mov  dx, 0x602         ; PM1 enable
    /* 28 */ 0xB8, 0x00, 0x01, // mov  ax, 0x0100        ; PWRBTN_EN (bit 8)
    /* 2B */ 0xEF,             // out  dx, ax
    /* 2C */ 0xFB,             // sti                    ; timer ticks wake hlt
    // poll:
    /* 2D */ 0xF4,             // hlt
    /* 2E */ 0xBA, 0x00, 0x06, // mov  dx, 0x600         ; PM1 status
    /* 31 */ 0xED,             // in   ax, dx
    /* 32 */ 0xF6, 0xC4, 0x01, // test ah, 0x01          ; PWRBTN_STS (bit 8)
    /* 35 */ 0x74, 0xF6,       // jz   poll (0x2D)
    /* 37 */ 0xBA, 0x04, 0x06, // mov  dx, 0x604         ; PM1 control
    /* 3A */ 0xB8, 0x00, 0x20, // mov  ax, 0x2000        ; SLP_EN (bit 13), SLP_TYP 0 = S5
    /* 3D */ 0xEF,             // out  dx, ax
    // idle:
    /* 3E */ 0xF4,             // hlt
    /* 3F */ 0xEB, 0xFD,       // jmp  idle (0x3E)
];

/// SlowCooperative: as Cooperative, with 18 timer ticks (~1 s) between the
/// button and S5.
#[rustfmt::skip]
const TAIL_SLOW_COOPERATIVE: [u8; 0x22] = [
    /* 25 */ 0xBA, 0x02, 0x06, // mov  dx, 0x602         ; PM1 enable
    /* 28 */ 0xB8, 0x00, 0x01, // mov  ax, 0x0100        ; PWRBTN_EN (bit 8)
    /* 2B */ 0xEF,             // out  dx, ax
    /* 2C */ 0xFB,             // sti                    ; timer ticks wake hlt
    // poll:
    /* 2D */ 0xF4,             // hlt
    /* 2E */ 0xBA, 0x00, 0x06, // mov  dx, 0x600         ; PM1 status
    /* 31 */ 0xED,             // in   ax, dx
    /* 32 */ 0xF6, 0xC4, 0x01, // test ah, 0x01          ; PWRBTN_STS (bit 8)
    /* 35 */ 0x74, 0xF6,       // jz   poll (0x2D)
    /* 37 */ 0xB9, 0x12, 0x00, // mov  cx, 18
    // wait:
    /* 3A */ 0xF4,             // hlt
    /* 3B */ 0xE2, 0xFD,       // loop wait (0x3A)
    /* 3D */ 0xBA, 0x04, 0x06, // mov  dx, 0x604         ; PM1 control
    /* 40 */ 0xB8, 0x00, 0x20, // mov  ax, 0x2000        ; SLP_EN (bit 13), SLP_TYP 0 = S5
    /* 43 */ 0xEF,             // out  dx, ax
    // idle:
    /* 44 */ 0xF4,             // hlt
    /* 45 */ 0xEB, 0xFD,       // jmp  idle (0x44)
];

/// IgnoresPowerButton: halt forever, interrupts on.
#[rustfmt::skip]
const TAIL_IGNORES: [u8; 4] = [
    /* 25 */ 0xFB,             // sti
    // idle:
    /* 26 */ 0xF4,             // hlt
    /* 27 */ 0xEB, 0xFD,       // jmp  idle (0x26)
];

/// ResetsItself: sleep four timer ticks, then a full reset through the
/// ICH9 reset control register.
#[rustfmt::skip]
const TAIL_RESETS: [u8; 0x10] = [
    /* 25 */ 0xFB,             // sti
    /* 26 */ 0xB9, 0x04, 0x00, // mov  cx, 4
    // tick:
    /* 29 */ 0xF4,             // hlt
    /* 2A */ 0xE2, 0xFD,       // loop tick (0x29)
    /* 2C */ 0xBA, 0xF9, 0x0C, // mov  dx, 0xCF9         ; reset control
    /* 2F */ 0xB0, 0x06,       // mov  al, 0x06          ; SYS_RST | RST_CPU
    /* 31 */ 0xEE,             // out  dx, al
    // idle (the reset is asynchronous):
    /* 32 */ 0xF4,             // hlt
    /* 33 */ 0xEB, 0xFD,       // jmp  idle (0x32)
];

/// Panics: tell pvpanic "panicked" (bit 0), then halt.
#[rustfmt::skip]
const TAIL_PANICS: [u8; 0x0A] = [
    /* 25 */ 0xBA, 0x05, 0x05, // mov  dx, 0x505         ; pvpanic (ISA)
    /* 28 */ 0xB0, 0x01,       // mov  al, 0x01          ; PVPANIC_PANICKED
    /* 2A */ 0xEE,             // out  dx, al
    /* 2B */ 0xFB,             // sti
    // idle:
    /* 2C */ 0xF4,             // hlt
    /* 2D */ 0xEB, 0xFD,       // jmp  idle (0x2C)
];

// The layout fits: code below the message, message (and its NUL) below the
// 0x55AA signature at 510.
const _: () = {
    assert!(TAIL_OFFSET + TAIL_COOPERATIVE.len() <= MSG_OFFSET);
    assert!(TAIL_OFFSET + TAIL_SLOW_COOPERATIVE.len() <= MSG_OFFSET);
    assert!(TAIL_OFFSET + TAIL_IGNORES.len() <= MSG_OFFSET);
    assert!(TAIL_OFFSET + TAIL_RESETS.len() <= MSG_OFFSET);
    assert!(TAIL_OFFSET + TAIL_PANICS.len() <= MSG_OFFSET);
    assert!(MSG_OFFSET + UP_LINE.len() < 510);
    // SeaBIOS does not boot smaller disks.
    assert!(IMAGE_SECTORS >= 1008);
};

/// The 512-byte boot sector of `kind`.
pub fn boot_sector(kind: GuestKind) -> [u8; 512] {
    let mut s = [0u8; 512];
    s[..PROLOGUE.len()].copy_from_slice(&PROLOGUE);
    let tail = kind.tail();
    s[TAIL_OFFSET..TAIL_OFFSET + tail.len()].copy_from_slice(tail);
    // NUL-terminated: the rest of the sector is zero already.
    let msg = UP_LINE.as_bytes();
    s[MSG_OFFSET..MSG_OFFSET + msg.len()].copy_from_slice(msg);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

/// Writes a raw disk image of `kind` to `path` (created or truncated):
/// the boot sector followed by zeros up to [`IMAGE_SECTORS`] sectors.
///
/// # Errors
/// Creating or writing the file.
pub fn build_image(path: &Path, kind: GuestKind) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(&boot_sector(kind))?;
    f.set_len(IMAGE_SECTORS * 512)?;
    f.sync_all()
}

/// Writes at `path` a qcow2 overlay (`qemu-img create`) whose backing file
/// is `backing`, as written into it (QEMU looks for a relative name next
/// to `path`), of format `backing_format`.
///
/// # Errors
/// qemu-img cannot run, or fails (with its message).
pub fn create_overlay(path: &Path, backing: &str, backing_format: &str) -> io::Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-b", backing, "-F"])
        .arg(backing_format)
        .arg(path)
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "qemu-img create {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

// ---------------------------------------------------------------------------
// Running it
// ---------------------------------------------------------------------------

/// The QEMU binary: `VIRT_TEST_QEMU` or `qemu-system-x86_64` from `PATH`.
pub fn qemu_binary() -> OsString {
    std::env::var_os("VIRT_TEST_QEMU").unwrap_or_else(|| "qemu-system-x86_64".into())
}

/// The QEMU arguments for the tiny guest: q35 under TCG, 32 MiB, no
/// default devices, the image on IDE, COM1 into `serial`, a QMP server on
/// `qmp` (not waiting for a client) and `-no-shutdown` (a guest shutdown
/// stops the VM instead of ending QEMU: fake reboots). `-device pvpanic` for
/// [`GuestKind::Panics`]. Valid for QEMU 7.2 and 10.x.
pub fn qemu_args(image: &Path, serial: &Path, qmp: &Path, kind: GuestKind) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "32",
        "-nodefaults",
        "-display",
        "none",
        "-no-user-config",
        "-no-shutdown",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let mut drive = OsString::from("file=");
    drive.push(image);
    drive.push(",format=raw,if=ide");
    let mut ser = OsString::from("file:");
    ser.push(serial);
    let mut mon = OsString::from("unix:");
    mon.push(qmp);
    mon.push(",server=on,wait=off");
    args.extend([
        "-drive".into(),
        drive,
        "-serial".into(),
        ser,
        "-qmp".into(),
        mon,
    ]);
    if kind.needs_pvpanic() {
        args.extend(["-device".into(), "pvpanic".into()]);
    }
    args
}

/// One QEMU process running the tiny guest, in its own temporary
/// directory (image, serial file, QMP socket, QEMU's output). Dropping it
/// kills and reaps QEMU.
#[derive(Debug)]
pub struct TestVm {
    // Field order: QEMU is killed (Drop) before the directory goes.
    child: Child,
    kind: GuestKind,
    dir: tempfile::TempDir,
}

impl TestVm {
    /// Builds the image of `kind` and starts QEMU on it. Does not wait for
    /// anything: QEMU creates the QMP socket shortly after (wait for it with
    /// [`TestVm::wait_qmp_socket`] or a connect that retries).
    ///
    /// # Errors
    /// Creating the directory or image, or spawning QEMU.
    pub fn start(kind: GuestKind) -> io::Result<TestVm> {
        TestVm::start_with(kind, &[])
    }

    /// [`TestVm::start`] with extra QEMU arguments appended.
    ///
    /// # Errors
    /// See [`TestVm::start`].
    pub fn start_with(kind: GuestKind, extra: &[&str]) -> io::Result<TestVm> {
        // Short base: the QMP socket path must stay below 108 bytes.
        let base = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new().prefix("virt-g").tempdir_in(base)?;
        let image = dir.path().join("disk.img");
        build_image(&image, kind)?;
        let log = File::create(dir.path().join("qemu.log"))?;
        let child = Command::new(qemu_binary())
            .args(qemu_args(
                &image,
                &dir.path().join("serial.log"),
                &dir.path().join("qmp.sock"),
                kind,
            ))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(TestVm { child, kind, dir })
    }

    /// The guest's kind.
    pub fn kind(&self) -> GuestKind {
        self.kind
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding image, serial file and socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The QMP socket.
    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.path().join("qmp.sock")
    }

    /// The serial output file.
    pub fn serial_path(&self) -> PathBuf {
        self.dir.path().join("serial.log")
    }

    /// What the guest printed so far.
    pub fn serial(&self) -> String {
        std::fs::read_to_string(self.serial_path()).unwrap_or_default()
    }

    /// How many times the guest has booted (printed [`UP_LINE`]).
    pub fn boots(&self) -> usize {
        self.serial().matches(UP_LINE).count()
    }

    /// What QEMU printed (stdout and stderr).
    pub fn qemu_output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default()
    }

    /// Whether QEMU is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (blocking, polling every 5 ms) until the guest has booted `n`
    /// times; returns whether it did within `timeout`.
    pub fn wait_boots(&self, n: usize, timeout: Duration) -> bool {
        poll_blocking(timeout, || self.boots() >= n)
    }

    /// Async [`TestVm::wait_boots`].
    pub async fn wait_boots_async(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.boots() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits (blocking) until QEMU has created its QMP socket; returns
    /// whether it did within `timeout`.
    pub fn wait_qmp_socket(&self, timeout: Duration) -> bool {
        let sock = self.qmp_socket();
        poll_blocking(timeout, || sock.exists())
    }

    /// Kills QEMU (SIGKILL) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for TestVm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn poll_blocking(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sectors_are_well_formed() {
        for kind in GuestKind::ALL {
            let s = boot_sector(kind);
            assert_eq!(&s[510..], &[0x55, 0xAA]);
            assert_eq!(s[0], 0xFA, "starts with cli");
            let msg = &s[MSG_OFFSET..MSG_OFFSET + UP_LINE.len() + 1];
            assert_eq!(&msg[..UP_LINE.len()], UP_LINE.as_bytes());
            assert_eq!(msg[UP_LINE.len()], 0, "NUL-terminated");
        }
        // The prologue's `mov si, imm16` points at the message.
        assert_eq!(
            u16::from_le_bytes([PROLOGUE[0x0C], PROLOGUE[0x0D]]),
            0x7C00 + u16::try_from(MSG_OFFSET).expect("small")
        );
    }

    #[test]
    fn image_is_padded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("g.img");
        build_image(&p, GuestKind::Cooperative).expect("build");
        let data = std::fs::read(&p).expect("read");
        assert_eq!(data.len() as u64, IMAGE_SECTORS * 512);
        assert_eq!(&data[..512], &boot_sector(GuestKind::Cooperative));
    }
}
