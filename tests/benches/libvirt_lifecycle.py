#!/usr/bin/python3
"""The lifecycle bench (tests/benches/lifecycle.rs), measured on libvirt itself.

Same metrics, same guest (the test kit's tiny boot sector: q35, TCG, 32 MiB,
the XML of tests/tests/lifecycle.rs), same output format, so that
scripts/bench-lifecycle.sh can put the two side by side. What each metric
measures: docs/benchmarks.md.

The guest images come from the Rust bench (`--images DIR`, written by
`cargo bench -p tests --bench lifecycle -- --write-images DIR`; the shell
script does that), so both halves boot the same bytes.

It starts its own session-mode libvirtd (as `nobody` when run as root, since
qemu:///session is refused for root) with all state under a temporary
directory, as tests/benches/libvirt_xml.py does, connects over that daemon's
socket, and at the end destroys every domain, stops the daemon, kills any
process left that names the directory (QEMU, virtlogd) and removes it: the
system's libvirt state is never touched.

Needs (Debian 12): libvirt-daemon + libvirt-daemon-driver-qemu (bookworm-
backports for 11.x), python3-libvirt (run with /usr/bin/python3, not a pyenv
python), qemu-system-x86, setpriv (util-linux) when run as root. Without
libvirt it prints a comment saying so and no metric lines.

Output on stdout: `metric<TAB>median<TAB>p90<TAB>n<TAB>unit` lines and `#`
comments; progress on stderr.

Run: /usr/bin/python3 tests/benches/libvirt_lifecycle.py --images DIR [--quick]
"""

import argparse
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

try:
    import libvirt
except ImportError as e:  # the table then shows "-" for libvirt
    print(f"# libvirt: not available: python3-libvirt missing ({e})")
    sys.exit(0)

UP_LINE = b"virt-test-guest: up\n"
DEFINED = 200
RUNNING_VMS = 10
POLL = 0.001  # seconds
WAIT = 20.0  # seconds

FULL = dict(list=500, get_xml=1000, start=20, suspend=50, shutdown=10, reboot=10,
            restart=10, big=10_000, list_big=20)
QUICK = dict(list=100, get_xml=200, start=5, suspend=10, shutdown=3, reboot=3,
             restart=3, big=2_000, list_big=5)


# --- statistics and output (as lifecycle.rs) ---------------------------------

def stats(samples):
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    rank = max(1, -(-n * 9 // 10))  # nearest rank, ceil(0.9 n)
    return median, s[rank - 1]


def report(metric, samples, unit="ms"):
    median, p90 = stats(samples)
    print(f"{metric}\t{median:.4f}\t{p90:.4f}\t{len(samples)}\t{unit}", flush=True)
    progress(f"  {metric:<22} median {median:>10.4f} {unit}  p90 {p90:>10.4f}  n {len(samples)}")
    return median


def report_one(metric, value, n, unit="ms"):
    print(f"{metric}\t{value:.4f}\t-\t{n}\t{unit}", flush=True)
    progress(f"  {metric:<22} {value:>10.4f} {unit}  (n {n})")


def note(text):
    print(f"# {text}", flush=True)
    progress(f"  # {text}")


def progress(text):
    print(f"libvirt lifecycle bench: {text}", file=sys.stderr, flush=True)


def ms(t0):
    return (time.perf_counter() - t0) * 1e3


# --- the daemon ---------------------------------------------------------------

class Daemon:
    """A session libvirtd on `base` (as `nobody` when we are root)."""

    def __init__(self, base):
        self.base = base
        self.proc = None
        self.starts = 0
        self.sock = os.path.join(base, "run", "libvirt", "libvirt-sock")
        self.uri = f"qemu+unix:///session?socket={self.sock}"
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam(os.environ.get("LVBENCH_USER", "nobody"))
            os.chown(base, self.user.pw_uid, self.user.pw_gid)

    def chown(self, path):
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def spawn(self):
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.base,
            "XDG_RUNTIME_DIR": os.path.join(self.base, "run"),
            "XDG_CONFIG_HOME": os.path.join(self.base, "config"),
            "XDG_CACHE_HOME": os.path.join(self.base, "cache"),
        }
        cmd = ["libvirtd"]
        if self.user is not None:
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                   "--clear-groups"] + cmd
        log = open(os.path.join(self.base, f"libvirtd.{self.starts}.log"), "w")
        self.starts += 1
        # setpriv execs libvirtd: the pid is the daemon's.
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=self.base)
        log.close()

    def connect(self, timeout=WAIT):
        """Polls (every POLL) until a connection opens; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"libvirtd exited ({self.proc.returncode}); see {self.base}/libvirtd.*.log")
            try:
                return libvirt.open(self.uri)
            except libvirt.libvirtError:
                if time.monotonic() > deadline:
                    sys.exit("libvirtd did not answer")
                time.sleep(POLL)

    def stop(self):
        """SIGTERM, wait (polling every POLL) for the exit."""
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WAIT
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                sys.exit("libvirtd did not exit on SIGTERM")
            time.sleep(POLL)
        self.proc = None

    def pid(self):
        return self.proc.pid


class Reaper:
    """Makes this process a child subreaper and reaps, within about a
    millisecond, every orphan that lands here (libvirt daemonizes QEMU).

    PID 1 on these machines is not systemd and reaps orphans only about
    every 2 s; libvirt waits for a killed QEMU to be gone (not a zombie), so
    without this its destroy and shutdown would measure PID 1's delay rather
    than libvirt. systemd, as PID 1 or as the user manager, reaps at once.
    The daemon's own process (`keep()`) is left to subprocess.Popen."""

    PR_SET_CHILD_SUBREAPER = 36

    def __init__(self, keep):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(self.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.keep = keep
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:  # a daemon thread: it ends with the script
            # Blocks (without the GIL) until some child has exited; WNOWAIT
            # leaves it to be reaped below, or by Popen if it is the daemon.
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            except ChildProcessError:
                info = None
            if info is None or info.si_pid in self.keep():
                time.sleep(POLL)
                continue
            try:
                os.waitpid(info.si_pid, 0)
            except ChildProcessError:
                pass


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def cpu_ms(pid):
    """CPU time of `pid` so far (all its live threads), in ms (schedstat)."""
    ns = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                ns += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return ns / 1e6


def rss_split(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024.0
    return out.get("RssAnon", 0.0), out.get("RssFile", 0.0)


def report_cpu(metric, before, pid, calls):
    report_one(f"cpu_{metric}", (cpu_ms(pid) - before) / calls, calls)


def kill_leftovers(base):
    """SIGKILL every process (not us) whose command line or environment
    names `base`: QEMUs, the session virtlogd, a libvirtd. Returns how many."""
    me = os.getpid()
    needle = base.encode()
    killed = 0
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == me:
            continue
        hit = False
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{e}/{what}", "rb") as f:
                    if needle in f.read():
                        hit = True
                        break
            except OSError:
                pass
        if hit:
            try:
                os.kill(int(e), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


# --- guests -------------------------------------------------------------------

def guest_xml(name, image, serial):
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
  </features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{image}'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <serial type='file'>
      <source path='{serial}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class Guests:
    """Images and serial files under base/img, owned by the daemon's user."""

    def __init__(self, daemon, images):
        self.d = daemon
        self.dir = os.path.join(daemon.base, "img")
        os.mkdir(self.dir)
        daemon.chown(self.dir)
        self.images = images

    def image(self, name, kind):
        p = os.path.join(self.dir, f"{name}.img")
        shutil.copyfile(os.path.join(self.images, f"{kind}.img"), p)
        self.d.chown(p)
        return p

    def serial(self, name):
        return os.path.join(self.dir, f"{name}.serial")

    def xml(self, name, kind):
        return guest_xml(name, self.image(name, kind), self.serial(name))

    def boots(self, name):
        try:
            with open(self.serial(name), "rb") as f:
                return f.read().count(UP_LINE)
        except OSError:
            return 0

    def wait_boots(self, name, n):
        deadline = time.monotonic() + WAIT
        while self.boots(name) < n:
            if time.monotonic() > deadline:
                sys.exit(f"{name}: {n} boot(s) expected, saw {self.boots(name)}")
            time.sleep(POLL)


def wait_state(dom, want):
    deadline = time.monotonic() + WAIT
    while True:
        s = dom.state()[0]
        if s == want:
            return
        if time.monotonic() > deadline:
            sys.exit(f"{dom.name()}: state {want} expected, still {s}")
        time.sleep(POLL)


# --- metrics ------------------------------------------------------------------

def durable_write(dirname, payload):
    tmp = os.path.join(dirname, ".bench-durable.tmp")
    dst = os.path.join(dirname, ".bench-durable")
    t0 = time.perf_counter()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, payload)
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, dst)
    dfd = os.open(dirname, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)
    os.close(dfd)
    return ms(t0)


def bench_define(conn, d, g):
    progress("define (and the disk's durable write)")
    shared = g.image("shared", "ignores")
    xml = lambda n: guest_xml(n, shared, g.serial(n))  # noqa: E731
    for i in range(5):
        conn.defineXML(xml(f"warm-{i}")).undefine()
    cfg = os.path.join(d.base, "config", "libvirt", "qemu")
    payload = b"x" * 2048
    defs, writes = [], []
    for i in range(DEFINED):
        x = xml(f"def-{i:03}")
        if i % 2 == 0:
            writes.append(durable_write(cfg, payload))
        t0 = time.perf_counter()
        conn.defineXML(x)
        defs.append(ms(t0))
        if i % 2 == 1:
            writes.append(durable_write(cfg, payload))
    os.unlink(os.path.join(cfg, ".bench-durable"))
    w = report("durable_write", writes)
    m = report("define", defs)
    # Each define against the write sampled next to it: robust to the
    # disk's speed drifting during the loop.
    report("define_minus_write", [a - b for a, b in zip(defs, writes)])
    note(f"define minus durable write: medians {m:.3f} - {w:.3f} = {m - w:.3f} ms; "
         "paired median above")
    size = os.path.getsize(os.path.join(cfg, "def-000.xml"))
    note(f"durable write: 2048 bytes in {cfg}; a stored definition is {size} bytes")


def bench_list_get(conn, d, r):
    pid = d.pid()
    progress("rpc floor, list-all (200 defined), get XML")
    for _ in range(20):
        conn.getLibVersion()
    v = []
    cpu = cpu_ms(pid)
    for _ in range(r["get_xml"]):
        t0 = time.perf_counter()
        conn.getLibVersion()
        v.append(ms(t0))
    report_cpu("rpc_floor", cpu, pid, len(v))
    report("rpc_floor", v)

    assert len(conn.listAllDomains(0)) == DEFINED
    for _ in range(20):
        conn.listAllDomains(0)
    v = []
    cpu = cpu_ms(pid)
    for _ in range(r["list"]):
        t0 = time.perf_counter()
        n = len(conn.listAllDomains(0))
        v.append(ms(t0))
        assert n == DEFINED
    report_cpu("list_200", cpu, pid, len(v))
    report("list_200", v)

    dom = conn.lookupByName("def-100")
    for _ in range(20):
        dom.XMLDesc(0)
    v = []
    cpu = cpu_ms(pid)
    for _ in range(r["get_xml"]):
        t0 = time.perf_counter()
        x = dom.XMLDesc(0)
        v.append(ms(t0))
        assert x.startswith("<domain")
    report_cpu("get_xml", cpu, pid, len(v))
    report("get_xml", v)


def bench_start_destroy(conn, g, r):
    progress("start, guest up, destroy, suspend+resume")
    name = "life"
    dom = conn.defineXML(g.xml(name, "ignores"))
    dom.create()
    g.wait_boots(name, 1)
    dom.destroy()
    starts, ups, destroys = [], [], []
    for _ in range(r["start"]):
        t0 = time.perf_counter()
        dom.create()
        starts.append(ms(t0))
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        g.wait_boots(name, 1)  # the start truncates the serial file
        ups.append(ms(t0))
        t1 = time.perf_counter()
        dom.destroy()
        destroys.append(ms(t1))
        assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    report("start", starts)
    report("guest_up", ups)
    report("destroy", destroys)

    dom.create()
    g.wait_boots(name, 1)
    for _ in range(3):
        dom.suspend()
        dom.resume()
    v = []
    for _ in range(r["suspend"]):
        t0 = time.perf_counter()
        dom.suspend()
        dom.resume()
        v.append(ms(t0))
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    report("suspend_resume", v)
    dom.destroy()
    dom.undefine()


def bench_shutdown_reboot(conn, g, r):
    progress("ACPI shutdown, fake reboot")
    name = "coop"
    dom = conn.defineXML(g.xml(name, "coop"))
    v = []
    for _ in range(r["shutdown"]):
        dom.create()
        g.wait_boots(name, 1)
        t0 = time.perf_counter()
        dom.shutdown()
        wait_state(dom, libvirt.VIR_DOMAIN_SHUTOFF)
        v.append(ms(t0))
    report("shutdown", v)

    dom.create()
    g.wait_boots(name, 1)
    v = []
    for _ in range(r["reboot"]):
        before = g.boots(name)
        t0 = time.perf_counter()
        dom.reboot(0)
        g.wait_boots(name, before + 1)
        v.append(ms(t0))
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    report("reboot", v)
    dom.destroy()
    dom.undefine()


def bench_restart(conn, d, g, r):
    progress("daemon restart with 10 running + 200 defined")
    names = [f"run-{i}" for i in range(RUNNING_VMS)]
    for n in names:
        conn.defineXML(g.xml(n, "ignores")).create()
    for n in names:
        g.wait_boots(n, 1)
    assert len(conn.listAllDomains(0)) == DEFINED + RUNNING_VMS
    conn.close()
    allv, firstv, cpus = [], [], []
    for rnd in range(r["restart"] + 1):  # one warm-up
        d.stop()
        t0 = time.perf_counter()
        d.spawn()
        done = {}

        def one(n):
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    c = libvirt.open(d.uri)
                except libvirt.libvirtError:
                    if time.monotonic() > deadline:
                        return
                    time.sleep(POLL)
                    continue
                try:
                    while True:
                        try:
                            c.lookupByName(n).suspend()
                            done[n] = ms(t0)
                            return
                        except libvirt.libvirtError:
                            if time.monotonic() > deadline:
                                return
                            if not c.isAlive():
                                break
                            time.sleep(POLL)
                finally:
                    try:
                        c.close()
                    except libvirt.libvirtError:
                        pass

        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = cpu_ms(d.pid())
        if len(done) != len(names):
            sys.exit(f"after restart only {sorted(done)} could be suspended")
        if rnd > 0:
            allv.append(max(done.values()))
            firstv.append(min(done.values()))
            cpus.append(cpu)
        conn = d.connect()
        for n in names:
            dom = conn.lookupByName(n)
            assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
            dom.resume()
        conn.close()
    report("restart", allv)
    report("restart_first_domain", firstv)
    report("cpu_restart", cpus)
    return d.connect()


def bench_rss(d, metric):
    time.sleep(1)
    v = []
    for _ in range(5):
        v.append(rss_mib(d.pid()))
        time.sleep(0.2)
    report(metric, v, "MiB")
    anon, file = rss_split(d.pid())
    note(f"{metric}: RssAnon {anon:.2f} MiB + RssFile {file:.2f} MiB (the binary and libraries)")


def bench_big_list(conn, d, g, r):
    big = r["big"]
    have = len(conn.listAllDomains(0))
    missing = max(0, big - have)
    progress(f"defining {missing} more domains concurrently")
    shared = os.path.join(g.dir, "shared.img")
    serial = g.serial("big")
    workers = 8
    errors = []

    def part(k):
        c = libvirt.open(d.uri)
        try:
            for i in range(k, missing, workers):
                c.defineXML(guest_xml(f"big-{i:05}", shared, serial))
        except libvirt.libvirtError as e:
            errors.append(str(e))
        finally:
            c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=part, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = ms(t0)
    if errors:
        sys.exit(f"bulk define: {errors[0]}")
    report_one(f"define_bulk_{big}", took, missing)
    note(f"bulk define: {missing} domains, {workers} threads with a connection each, "
         f"in {took / 1e3:.2f} s ({missing / took * 1e3:.0f}/s)")
    progress(f"list-all with {big} defined")
    for _ in range(2):
        conn.listAllDomains(0)
    v = []
    cpu = cpu_ms(d.pid())
    for _ in range(r["list_big"]):
        t0 = time.perf_counter()
        n = len(conn.listAllDomains(0))
        v.append(ms(t0))
        assert n == big, n
    report_cpu(f"list_{big}", cpu, d.pid(), len(v))
    report(f"list_{big}", v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True,
                    help="directory with ignores.img and coop.img (written by "
                         "`cargo bench -p tests --bench lifecycle -- --write-images DIR`)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds, 2,000 instead of 10,000")
    ap.add_argument("--no-reaper", action="store_true",
                    help="leave orphaned QEMUs to PID 1 (see Reaper)")
    args = ap.parse_args()
    r = QUICK if args.quick else FULL
    for f in ("ignores.img", "coop.img"):
        if not os.path.isfile(os.path.join(args.images, f)):
            sys.exit(f"no {f} in {args.images}")
    if shutil.which("libvirtd", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        print("# libvirt: not available: no libvirtd")
        return
    libvirt.registerErrorHandler(lambda *_: None, None)  # retries are expected
    # SIGTERM/SIGHUP: unwind through the finally below, like Ctrl-C.
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda *_: sys.exit(130))
    base = tempfile.mkdtemp(prefix="lvbench.")
    d = Daemon(base)
    if not args.no_reaper:
        Reaper(lambda: (d.proc.pid,) if d.proc is not None else ())
        note("orphans (the daemonized QEMUs) are reaped by this script at once, "
             "as systemd would (--no-reaper: by this machine's PID 1, every ~2 s)")
    conn = None
    try:
        t0 = time.perf_counter()
        d.spawn()
        conn = d.connect()
        ver = conn.getLibVersion()
        note(f"libvirt {ver // 1000000}.{ver // 1000 % 1000}.{ver % 1000} "
             f"(session libvirtd as {d.user.pw_name if d.user else 'self'} on {base}; "
             f"first start {ms(t0):.0f} ms)")
        hv = conn.getVersion()
        note(f"QEMU {hv // 1000000}.{hv // 1000 % 1000}.{hv % 1000}")
        g = Guests(d, args.images)
        bench_rss(d, "rss_empty")
        bench_define(conn, d, g)
        bench_list_get(conn, d, r)
        bench_start_destroy(conn, g, r)
        bench_shutdown_reboot(conn, g, r)
        conn = bench_restart(conn, d, g, r)
        bench_rss(d, "rss_loaded")
        bench_big_list(conn, d, g, r)
        progress("cleaning up")
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            dom.destroy()
        conn.close()
        conn = None
    finally:
        if d.proc is not None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(10)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
        n = kill_leftovers(base)
        if n:
            progress(f"killed {n} leftover process(es) under {base}")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
