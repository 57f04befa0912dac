#!/usr/bin/python3
"""The storage bench (tests/benches/storage.rs), measured on libvirt itself.

Same metrics, same pool and volumes, same output format, so that
scripts/bench-storage.sh can put the two side by side. What each metric
measures: docs/benchmarks-storage.md.

It starts its own session-mode libvirtd (as `nobody` when run as root, since
qemu:///session is refused for root) with all state under a temporary
directory, as tests/benches/libvirt_lifecycle.py does, defines one `dir`
pool there, and at the end stops the daemon, kills any process left that
names the directory and removes it: the system's libvirt state is never
touched.

Needs (Debian 12): libvirt-daemon with the storage driver (bookworm-
backports for 11.x), python3-libvirt (run with /usr/bin/python3, not a pyenv
python), qemu-img, setpriv (util-linux) when run as root. Without libvirt it
prints a comment saying so and no metric lines.

Output on stdout: `metric<TAB>median<TAB>p90<TAB>n<TAB>unit` lines and `#`
comments; progress on stderr.

Run: /usr/bin/python3 tests/benches/libvirt_storage.py [--quick]
"""

import argparse
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import libvirt
except ImportError as e:  # the table then shows "-" for libvirt
    print(f"# libvirt: not available: python3-libvirt missing ({e})")
    sys.exit(0)

POOL = "bench"
VOLUMES = 100
CAPACITY = 1 << 30
POLL = 0.001  # seconds
WAIT = 20.0  # seconds

FULL = dict(list=1000, refresh=100)
QUICK = dict(list=200, refresh=20)


# --- statistics and output (as storage.rs) ------------------------------------

def stats(samples):
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    rank = max(1, -(-n * 9 // 10))  # nearest rank, ceil(0.9 n)
    return median, s[rank - 1]


def report(metric, samples):
    median, p90 = stats(samples)
    print(f"{metric}\t{median:.4f}\t{p90:.4f}\t{len(samples)}\tms", flush=True)
    progress(f"  {metric:<22} median {median:>10.4f} ms  p90 {p90:>10.4f}  n {len(samples)}")
    return median


def report_one(metric, value, n):
    print(f"{metric}\t{value:.4f}\t-\t{n}\tms", flush=True)
    progress(f"  {metric:<22} {value:>10.4f} ms  (n {n})")


def note(text):
    print(f"# {text}", flush=True)
    progress(f"  # {text}")


def progress(text):
    print(f"libvirt storage bench: {text}", file=sys.stderr, flush=True)


def ms(t0):
    return (time.perf_counter() - t0) * 1e3


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


def report_cpu(metric, before, pid, calls):
    report_one(f"cpu_{metric}", (cpu_ms(pid) - before) / calls, calls)


def kill_leftovers(base):
    """SIGKILL every process (not us) whose command line or environment
    names `base`. Returns how many."""
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
                    hit = hit or needle in f.read()
            except OSError:
                pass
        if hit:
            try:
                os.kill(int(e), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


# --- the daemon ---------------------------------------------------------------

class Daemon:
    """A session libvirtd on `base` (as `nobody` when we are root)."""

    def __init__(self, base):
        self.base = base
        self.proc = None
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
        log = open(os.path.join(self.base, "libvirtd.log"), "w")
        # setpriv execs libvirtd: the pid is the daemon's.
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=self.base)
        log.close()

    def connect(self):
        """Polls (every POLL) until a connection opens; returns it."""
        deadline = time.monotonic() + WAIT
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"libvirtd exited ({self.proc.returncode}); see {self.base}/libvirtd.log")
            try:
                return libvirt.open(self.uri)
            except libvirt.libvirtError:
                if time.monotonic() > deadline:
                    sys.exit("libvirtd did not answer")
                time.sleep(POLL)

    def pid(self):
        return self.proc.pid


# --- metrics ------------------------------------------------------------------

def vol_name(i):
    return f"v{i:03}.qcow2"


def vol_xml(name):
    return (f"<volume><name>{name}</name><capacity>{CAPACITY}</capacity>"
            "<allocation>0</allocation><target><format type='qcow2'/></target></volume>")


def bench_create(pool, d, target):
    progress(f"create {VOLUMES} qcow2 volumes of 1 GiB")
    for i in range(3):  # warm-up
        v = pool.createXML(vol_xml(f"warm-{i}.qcow2"), 0)
        v.delete(0)
    pid = d.pid()
    v = []
    cpu = cpu_ms(pid)
    for i in range(VOLUMES):
        t0 = time.perf_counter()
        pool.createXML(vol_xml(vol_name(i)), 0)
        v.append(ms(t0))
    report_cpu("vol_create_qcow2", cpu, pid, len(v))
    report("vol_create_qcow2", v)
    note("libvirt runs qemu-img create for each qcow2 volume")
    for i in (0, VOLUMES // 2, VOLUMES - 1):
        p = os.path.join(target, vol_name(i))
        subprocess.run(["qemu-img", "check", p], check=True, capture_output=True)


def bench_list(pool, d, r):
    progress(f"RPC floor (pool.autostart()) and list of {VOLUMES} volumes")
    vols = pool.listAllVolumes()
    names = [v.name() for v in vols]
    assert len(names) == VOLUMES, len(names)
    assert sorted(names) == [vol_name(i) for i in range(VOLUMES)]
    for _ in range(20):
        pool.autostart()
        pool.listAllVolumes()
    floors, lists = [], []
    for i in range(r["list"]):
        # Alternate which goes first.
        if i % 2 == 0:
            t0 = time.perf_counter()
            a = pool.autostart()
            floors.append(ms(t0))
        t0 = time.perf_counter()
        n = len(pool.listAllVolumes())
        lists.append(ms(t0))
        assert n == VOLUMES
        if i % 2 == 1:
            t0 = time.perf_counter()
            a = pool.autostart()
            floors.append(ms(t0))
    assert a == 0
    f = report("rpc_floor", floors)
    l = report("list_100", lists)
    report("list_100_minus_floor", [x - y for x, y in zip(lists, floors)])
    note(f"list minus RPC floor: medians {l:.4f} - {f:.4f} = {l - f:.4f} ms; paired median above")

    # The daemon's CPU per call, read around each call (another loop, so
    # that reading /proc does not show in the times above).
    pid = d.pid()
    floors, lists = [], []
    for i in range(r["list"]):
        for kind in (i % 2, 1 - i % 2):
            c0 = cpu_ms(pid)
            if kind == 0:
                pool.autostart()
                floors.append(cpu_ms(pid) - c0)
            else:
                pool.listAllVolumes()
                lists.append(cpu_ms(pid) - c0)
    report("cpu_rpc_floor", floors)
    report("cpu_list_100", lists)
    report("cpu_list_100_minus_floor", [x - y for x, y in zip(lists, floors)])


def bench_refresh(pool, d, r):
    progress(f"refresh of a pool of {VOLUMES} volumes")
    for _ in range(5):
        pool.refresh(0)
    pid = d.pid()
    v = []
    cpu = cpu_ms(pid)
    for _ in range(r["refresh"]):
        t0 = time.perf_counter()
        pool.refresh(0)
        v.append(ms(t0))
    report_cpu("refresh_100", cpu, pid, len(v))
    report("refresh_100", v)
    assert len(pool.listAllVolumes()) == VOLUMES


def bench_delete(pool, d, target):
    progress(f"delete {VOLUMES} volumes")
    vols = [pool.storageVolLookupByName(vol_name(i)) for i in range(VOLUMES)]
    pid = d.pid()
    v = []
    cpu = cpu_ms(pid)
    for vol in vols:
        t0 = time.perf_counter()
        vol.delete(0)
        v.append(ms(t0))
    report_cpu("vol_delete", cpu, pid, len(v))
    report("vol_delete", v)
    note("vol_delete: the volume objects are looked up before the timed loop")
    assert pool.listAllVolumes() == []
    assert os.listdir(target) == []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    args = ap.parse_args()
    r = QUICK if args.quick else FULL
    if shutil.which("libvirtd", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        print("# libvirt: not available: no libvirtd")
        return
    libvirt.registerErrorHandler(lambda *_: None, None)  # retries are expected
    # SIGTERM/SIGHUP: unwind through the finally below, like Ctrl-C.
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda *_: sys.exit(130))
    base = tempfile.mkdtemp(prefix="lvstor.")
    d = Daemon(base)
    conn = None
    try:
        target = os.path.join(base, "pool")
        os.mkdir(target)
        d.chown(target)
        t0 = time.perf_counter()
        d.spawn()
        conn = d.connect()
        ver = conn.getLibVersion()
        note(f"libvirt {ver // 1000000}.{ver // 1000 % 1000}.{ver % 1000} "
             f"(session libvirtd as {d.user.pw_name if d.user else 'self'} on {base}; "
             f"first start {ms(t0):.0f} ms); storage bench: "
             f"{'quick' if args.quick else 'full'} rounds, {VOLUMES} volumes")
        try:
            out = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True)
            note(out.stdout.splitlines()[0])
        except (OSError, IndexError):
            pass
        pool = conn.storagePoolDefineXML(
            f"<pool type='dir'><name>{POOL}</name><target><path>{target}</path></target></pool>")
        pool.build(0)
        pool.create(0)
        bench_create(pool, d, target)
        bench_list(pool, d, r)
        bench_refresh(pool, d, r)
        bench_delete(pool, d, target)
        progress("cleaning up")
        pool.destroy()
        pool.undefine()
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
