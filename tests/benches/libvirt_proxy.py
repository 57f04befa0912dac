#!/usr/bin/python3
"""The proxy bench (tests/benches/proxy.rs), measured on libvirt.

What this host's libvirt offers: the monolithic libvirtd 11.3 (the modular
virtproxyd and virtqemud are not installed), so there is no proxy hop to
measure. What can be measured is the same daemon over its Unix socket
("direct") and over its plain TCP listener (`--listen`, `listen_tcp = 1`,
`auth_tcp = "none"`, 127.0.0.1 on a free port: "proxy_tcp"), interleaved
call by call as in proxy.rs: the cost of the TCP transport and of libvirt's
remote driver on it, without a second daemon. The "proxy" (Unix socket of a
proxy) metrics are not printed, so the table shows "-" there.

It starts its own session-mode libvirtd (as `nobody` when run as root, since
qemu:///session is refused for root) with all state under a temporary
directory, as tests/benches/libvirt_lifecycle.py does; 200 domains are
defined (not started). At the end the daemon is stopped, any process left
that names the directory is killed and the directory removed.

Output on stdout: `metric<TAB>median<TAB>p90<TAB>n<TAB>unit` lines and `#`
comments; progress on stderr.

Run: /usr/bin/python3 tests/benches/libvirt_proxy.py [--quick]
"""

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    import libvirt
except ImportError as e:  # the table then shows "-" for libvirt
    print(f"# libvirt: not available: python3-libvirt missing ({e})")
    sys.exit(0)

DEFINED = 200
POLL = 0.001
WAIT = 30.0
PATHS = ("direct", "proxy_tcp")


def stats(samples):
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    rank = lambda pct: max(1, -(-n * pct // 100))  # nearest rank
    return median, s[rank(90) - 1], s[rank(99) - 1]


def report(metric, samples):
    median, p90, p99 = stats(samples)
    print(f"{metric}\t{median:.4f}\t{p90:.4f}\t{len(samples)}\tms", flush=True)
    progress(f"  {metric:<22} median {median:>9.4f} ms  p90 {p90:>9.4f}  p99 {p99:>9.4f}  n {len(samples)}")
    return median, p99


def report_one(metric, value, n, unit="ms"):
    print(f"{metric}\t{value:.4f}\t-\t{n}\t{unit}", flush=True)
    progress(f"  {metric:<22} {value:>10.4f} {unit}  (n {n})")


def note(text):
    print(f"# {text}", flush=True)
    progress(f"  # {text}")


def progress(text):
    print(f"libvirt proxy bench: {text}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_leftovers(base):
    """SIGKILL every process (not us) whose command line or environment
    names `base`. Returns how many."""
    me = os.getpid()
    needle = base.encode()
    killed = 0
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == me:
            continue
        for what in ("cmdline", "environ"):
            try:
                with open(f"/proc/{e}/{what}", "rb") as f:
                    if needle in f.read():
                        os.kill(int(e), signal.SIGKILL)
                        killed += 1
                        break
            except OSError:
                pass
    return killed


class Daemon:
    """A session libvirtd on `base` with a plain TCP listener on `port`."""

    def __init__(self, base, port):
        self.base = base
        self.port = port
        self.proc = None
        self.sock = os.path.join(base, "run", "libvirt", "libvirt-sock")
        self.unix_uri = f"qemu+unix:///session?socket={self.sock}"
        self.tcp_uri = f"qemu+tcp://127.0.0.1:{port}/session"
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam(os.environ.get("LVBENCH_USER", "nobody"))
        self.conf = os.path.join(base, "libvirtd.conf")
        with open(self.conf, "w") as f:
            f.write(f'listen_tls = 0\nlisten_tcp = 1\nlisten_addr = "127.0.0.1"\n'
                    f'tcp_port = "{port}"\nauth_tcp = "none"\nauth_unix_rw = "none"\n')
        for sub in ("", "run", "config", "cache"):
            p = os.path.join(base, sub)
            os.makedirs(p, exist_ok=True)
            if self.user is not None:
                os.chown(p, self.user.pw_uid, self.user.pw_gid)

    def spawn(self):
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.base,
            "XDG_RUNTIME_DIR": os.path.join(self.base, "run"),
            "XDG_CONFIG_HOME": os.path.join(self.base, "config"),
            "XDG_CACHE_HOME": os.path.join(self.base, "cache"),
        }
        cmd = ["libvirtd", "--listen", "-f", self.conf]
        if self.user is not None:
            cmd = ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                   "--clear-groups"] + cmd
        log = open(os.path.join(self.base, "libvirtd.log"), "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=self.base)
        log.close()

    def connect(self, uri):
        deadline = time.monotonic() + WAIT
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"libvirtd exited ({self.proc.returncode}); see {self.base}/libvirtd.log")
            try:
                return libvirt.open(uri)
            except libvirt.libvirtError as e:
                if time.monotonic() > deadline:
                    sys.exit(f"libvirtd did not answer on {uri}: {e}")
                time.sleep(POLL * 10)


def domain_xml(name):
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>"
            "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>")


def measure(conns, op, rounds):
    """`rounds` rounds of `op` on each connection, the order alternating;
    returns the samples (ms) per connection."""
    for _ in range(50):
        for c in conns:
            op(c)
    samples = [[] for _ in conns]
    n = len(conns)
    for i in range(rounds):
        for k in range(n):
            p = (i + k) % n
            t0 = time.perf_counter()
            op(conns[p])
            samples[p].append((time.perf_counter() - t0) * 1e3)
    return samples


def report_op(key, samples):
    med = [report(f"{key}_{PATHS[p]}", s)[0] for p, s in enumerate(samples)]
    diffs = [t - d for t, d in zip(samples[1], samples[0])]
    _, p99 = report(f"{key}_tcp_added", diffs)
    report_one(f"{key}_tcp_added_p99", p99, len(diffs))
    report_one(f"{key}_tcp_ratio", med[1] / med[0], len(diffs), "x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    args = ap.parse_args()
    rounds = 300 if args.quick else 2000
    if shutil.which("libvirtd", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        print("# libvirt: not available: no libvirtd")
        return
    libvirt.registerErrorHandler(lambda *_: None, None)  # retries are expected
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda *_: sys.exit(130))
    base = tempfile.mkdtemp(prefix="lvproxy.")
    d = Daemon(base, free_port())
    conns = []
    try:
        t0 = time.perf_counter()
        d.spawn()
        direct = d.connect(d.unix_uri)
        ver = direct.getLibVersion()
        note(f"libvirt {ver // 1000000}.{ver // 1000 % 1000}.{ver % 1000} "
             f"(session libvirtd as {d.user.pw_name if d.user else 'self'} on {base}, "
             f"--listen, TCP 127.0.0.1:{d.port}, auth_tcp none; "
             f"ready in {(time.perf_counter() - t0) * 1e3:.0f} ms)")
        note("no virtproxyd here (monolithic libvirtd): proxy_tcp is TCP to libvirtd itself, "
             "no second hop")
        tcp = d.connect(d.tcp_uri)
        conns = [direct, tcp]
        progress(f"define {DEFINED} domains")
        for i in range(DEFINED):
            direct.defineXMLFlags(domain_xml(f"def-{i:03d}"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        assert len(tcp.listAllDomains(0)) == DEFINED
        progress(f"RPC floor (getLibVersion), {rounds} rounds")
        report_op("floor", measure(conns, lambda c: c.getLibVersion(), rounds))
        progress(f"list-all with {DEFINED} defined (listAllDomains(0)), {rounds} rounds")

        def lst(c):
            n = len(c.listAllDomains(0))
            assert n == DEFINED, n
        report_op("list", measure(conns, lst, rounds))
        progress("cleaning up")
        for dom in direct.listAllDomains(0):
            dom.undefine()
        for c in conns:
            c.close()
        conns = []
    finally:
        for c in conns:
            try:
                c.close()
            except libvirt.libvirtError:
                pass
        if d.proc is not None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(10)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
        n = kill_leftovers(base)
        if n:
            progress(f"killed {n} leftover processes")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
