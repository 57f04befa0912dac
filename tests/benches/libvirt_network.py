#!/usr/bin/python3
"""The network bench (tests/benches/network.rs), measured on libvirt itself.

Same metrics, same network (NAT, DNS records, DHCP range and a static host:
the XML of tests/tests/network.rs), same output format, so that
scripts/bench-network.sh can put the two side by side. What each metric
measures: docs/benchmarks-network.md.

A network's bridge, dnsmasq and nftables rules need root, and a session
libvirtd has no network driver that creates bridges. So this runs a private
*system-mode* libvirtd as root, isolated by a mount namespace of its own:
system mode has fixed paths (/etc/libvirt, /var/lib/libvirt, /run/libvirt,
...; no option or LIBVIRT_* variable moves them), so the script starts
libvirtd under `unshare --mount` with

  - a tmpfs on /run (the host's /run is out of sight: /run/libvirt does not
    exist on these hosts, and libvirtd must not see or create the host's);
  - <tmp>/etc, <tmp>/run, <tmp>/lib, <tmp>/cache, <tmp>/log bind-mounted on
    /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt,
    /var/log/libvirt;
  - `libvirtd --config <tmp>/libvirtd.conf --pid-file <tmp>/libvirtd.pid`,
    sockets in <tmp>/sock (unix_sock_dir, auth none), its log in <tmp>;
  - network.conf with firewall_backend = "nftables" (as virtnetworkd; there
    is no iptables here anyway);
  - LIBVIRT_DRIVER_DIR naming a directory with the network driver module
    only, so libvirtd is a network daemon like virtnetworkd (`--drivers all`
    loads every installed driver, as a stock monolithic libvirtd does).

The tc `csum` action: libvirt 11's nftables backend adds, at every start of
a network, a tc filter on the bridge that fixes DHCP checksums (`tc filter
add dev BR ... u32 match ip dport 68 ffff action csum ip and udp`), and
fails the start when tc fails. The kernels here have no tc action modules
at all (no /lib/modules), so libvirt cannot start any NAT network as it
comes. When a probe (`tc actions add action csum ...`) fails, libvirtd gets
a `tc` shim first in its PATH (<tmp>/bin/tc, a /bin/sh script) that runs
the real tc with those last five words replaced by `classid 1:2`: the same
fork, exec and netlink filter insertion on the same qdisc, with a
classification instead of the action the kernel lacks. Every other tc call
goes to the real tc unchanged. A `#` line says when the shim was used.

Everything it writes is under the temporary directory; what it does to the
host is what a network does (a bridge, dnsmasq, rules in nftables tables
`ip libvirt_network` / `ip6 libvirt_network`, libvirt's fixed names). The
bridge name and subnet are unique to the run. At the end (also after an
exception or Ctrl-C) it destroys the network, stops libvirtd, kills every
process left in its mount namespace (dnsmasq), deletes the bridge, deletes
the libvirt_network tables if they did not exist before the run, and
removes the directory.

Reaping: dnsmasq daemonizes, and PID 1 on these machines reaps orphans
only about every 2 s. Unlike a domain's destroy (libvirt_lifecycle.py needs
a child subreaper), a network's destroy does not wait for dnsmasq: libvirt
sends it SIGTERM, removes the rules and the bridge, then SIGKILLs it if
kill(pid, 0) still succeeds (a zombie does). So no reaper here; the
`destroy_settled` wait counts a zombie as gone, on both sides.

Needs (Debian 12): root, libvirt-daemon + libvirt-daemon-driver-network
(bookworm-backports for 11.x), python3-libvirt (run with /usr/bin/python3),
dnsmasq-base, nftables, unshare and mount (util-linux). Without libvirt it
prints a comment saying so and no metric lines.

Output on stdout: `metric<TAB>median<TAB>p90<TAB>n<TAB>unit` lines and `#`
comments; progress on stderr.

Run: /usr/bin/python3 tests/benches/libvirt_network.py [--quick] [--drivers all]
"""

import argparse
import ipaddress
import os
import random
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

NET = "bench"
POLL = 0.001  # seconds
WAIT = 20.0  # seconds
# Before each start and before each destroy (as network.rs).
PAUSE = 0.15  # seconds
WARMUP = 2

FULL = dict(rounds=30, floor=1000)
QUICK = dict(rounds=8, floor=200)

SYS_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# The tc shim for kernels without tc actions (see the module's doc).
TC_SHIM = """#!/bin/sh
# libvirt_network.py: no tc action modules in this kernel. libvirt's DHCP
# checksum filter (last words "action csum ip and udp") becomes a
# classification on the same qdisc; everything else is passed on as is.
case " $* " in
*" action csum ip and udp ")
	n=$(($# - 5))
	i=0
	for a do
		shift
		i=$((i + 1))
		[ "$i" -le "$n" ] && set -- "$@" "$a"
	done
	set -- "$@" classid 1:2
	;;
esac
exec {tc} "$@"
"""
DRIVER_DIR = "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- statistics and output (as network.rs) ------------------------------------

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
    print(f"libvirt network bench: {text}", file=sys.stderr, flush=True)


def ms(t0):
    return (time.perf_counter() - t0) * 1e3


# --- the host -----------------------------------------------------------------

def link_index(name):
    try:
        with open(f"/sys/class/net/{name}/ifindex") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def link_by_index(index):
    """The name of the link with `index`, or None."""
    try:
        names = os.listdir("/sys/class/net")
    except OSError:
        return None
    for n in names:
        if link_index(n) == index:
            return n
    return None


def alive(pid):
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return not st.rpartition(")")[2].lstrip().startswith("Z")


def routed_nets():
    """The IPv4 networks in the host's routing table."""
    nets = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                w = line.split()
                dest = int(w[1], 16).to_bytes(4, "little")
                mask = int(w[7], 16).to_bytes(4, "little")
                nets.append(ipaddress.ip_network(
                    f"{ipaddress.IPv4Address(dest)}/{ipaddress.IPv4Address(mask)}", strict=False))
    except (OSError, ValueError, StopIteration):
        pass
    return nets


def pick_subnet():
    """A 10.250-254.x.0/24 no route covers (network.rs picks 10.200-249)."""
    taken = routed_nets()
    for _ in range(1000):
        net = ipaddress.ip_network(f"10.{random.randint(250, 254)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return net
    sys.exit("no free 10.250-254.x.0/24 subnet")


def nft_table_exists(family, table):
    r = subprocess.run(["nft", "list", "table", family, table],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def tc_has_csum():
    """Whether the kernel has tc's csum action (a standalone action is
    added and deleted again)."""
    index = str(random.randint(10_000, 60_000))
    r = subprocess.run(["tc", "actions", "add", "action", "csum", "ip", "and", "udp",
                        "index", index], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        return False
    subprocess.run(["tc", "actions", "del", "action", "csum", "index", index],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True


def cpu_ms(pid):
    """CPU time of the live threads of `pid` so far, in ms (the sum of
    /proc/PID/task/*/schedstat): for loops served by long-lived threads."""
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


def cpu_ticks(pid):
    """(own, children) CPU of `pid` in ms from /proc/PID/stat: utime + stime
    (every thread, exited ones included) and cutime + cstime (children it
    waited for: nft, dnsmasq's first process). Clock-tick resolution; the
    per-call figures are sums over the loop divided by the calls."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            w = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0, 0.0
    # w[0] is field 3 (state): utime is field 14.
    own = int(w[11]) + int(w[12])
    kids = int(w[13]) + int(w[14])
    return own * 1e3 / CLK_TCK, kids * 1e3 / CLK_TCK


def rss_split(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0]) / 1024.0
    return out.get("VmRSS", 0.0), out.get("RssAnon", 0.0), out.get("RssFile", 0.0)


def net_xml(name, bridge, net):
    """The NAT network of tests/tests/network.rs (nat_xml)."""
    h = list(net.hosts())
    ip = h[0]
    return f"""<network>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}'/>
  <domain name='test.lan'/>
  <dns>
    <host ip='{h[49]}'><hostname>web</hostname></host>
    <txt name='t' value='v'/>
    <srv service='http' protocol='tcp' target='web.test.lan' port='80'/>
  </dns>
  <mtu size='1400'/>
  <ip address='{ip}' prefix='24'>
    <dhcp>
      <range start='{h[99]}' end='{h[149]}'/>
      <host mac='52:54:00:77:00:01' name='guest1' ip='{h[9]}'/>
    </dhcp>
  </ip>
</network>
"""


# --- the daemon ---------------------------------------------------------------

class Daemon:
    """A system-mode libvirtd as root in a mount namespace of its own, all
    its paths under `base`."""

    BINDS = [("etc", "/etc/libvirt"), ("run", "/run/libvirt"), ("lib", "/var/lib/libvirt"),
             ("cache", "/var/cache/libvirt"), ("log", "/var/log/libvirt")]

    def __init__(self, base, all_drivers):
        self.base = base
        self.proc = None
        self.mntns = None
        self.all_drivers = all_drivers
        self.sockdir = os.path.join(base, "sock")
        self.sock = os.path.join(self.sockdir, "libvirt-sock")
        self.uri = f"network+unix:///system?socket={self.sock}"
        for d, _ in self.BINDS:
            os.makedirs(os.path.join(base, d), mode=0o755)
        os.makedirs(os.path.join(base, "etc", "qemu", "networks", "autostart"))
        os.makedirs(self.sockdir, mode=0o755)
        self.conf = os.path.join(base, "libvirtd.conf")
        with open(self.conf, "w") as f:
            f.write(f'unix_sock_dir = "{self.sockdir}"\n'
                    'auth_unix_rw = "none"\n'
                    'auth_unix_ro = "none"\n'
                    f'log_outputs = "3:file:{base}/libvirtd.log"\n')
        with open(os.path.join(base, "etc", "network.conf"), "w") as f:
            f.write('firewall_backend = "nftables"\n')
        self.shim = None
        self.drivers = os.path.join(base, "drivers")
        os.mkdir(self.drivers)
        os.symlink(os.path.join(DRIVER_DIR, "libvirt_driver_network.so"),
                   os.path.join(self.drivers, "libvirt_driver_network.so"))

    def use_tc_shim(self):
        """Puts the tc shim (see the module's doc) first in libvirtd's PATH."""
        bindir = os.path.join(self.base, "bin")
        os.mkdir(bindir)
        self.shim = os.path.join(bindir, "tc")
        with open(self.shim, "w") as f:
            f.write(TC_SHIM.format(tc=shutil.which("tc", path=SYS_PATH)))
        os.chmod(self.shim, 0o755)

    def spawn(self):
        path = SYS_PATH if self.shim is None else f"{os.path.dirname(self.shim)}:{SYS_PATH}"
        env = {"PATH": path, "HOME": self.base}
        if not self.all_drivers:
            env["LIBVIRT_DRIVER_DIR"] = self.drivers
        script = ["set -e", "mount -t tmpfs -o mode=0755 virt-bench /run", "mkdir /run/libvirt"]
        for d, target in self.BINDS:
            script.append(f"mount --bind '{os.path.join(self.base, d)}' '{target}'")
        script.append(f"exec libvirtd --config '{self.conf}' "
                      f"--pid-file '{os.path.join(self.base, 'libvirtd.pid')}'")
        log = open(os.path.join(self.base, "libvirtd.out"), "w")
        # unshare and sh exec: the pid is libvirtd's.
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
             "\n".join(script)],
            env=env, stdout=log, stderr=log, cwd=self.base)
        log.close()

    def connect(self, timeout=WAIT):
        """Polls (every POLL) until a connection opens; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"libvirtd exited ({self.proc.returncode}); see "
                                   f"{self.base}/libvirtd.out and libvirtd.log")
            try:
                conn = libvirt.open(self.uri)
                self.mntns = os.readlink(f"/proc/{self.proc.pid}/ns/mnt")
                return conn
            except libvirt.libvirtError:
                if time.monotonic() > deadline:
                    raise RuntimeError("libvirtd did not answer")
                time.sleep(POLL)

    def stop(self):
        """SIGTERM, wait (polling every POLL) for the exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WAIT
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("libvirtd did not exit on SIGTERM")
            time.sleep(POLL)

    def kill_namespace(self):
        """SIGKILL every process (not us) in libvirtd's mount namespace
        (libvirtd, dnsmasq). Returns how many."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.mntns is None:
            return 0
        killed = 0
        me = os.getpid()
        for e in os.listdir("/proc"):
            if not e.isdigit() or int(e) == me:
                continue
            try:
                if os.readlink(f"/proc/{e}/ns/mnt") != self.mntns:
                    continue
                os.kill(int(e), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        return killed

    def pid(self):
        return self.proc.pid

    def dnsmasq_pid(self, name):
        try:
            with open(os.path.join(self.base, "run", "network", f"{name}.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None


# --- the bench ----------------------------------------------------------------

def wait_settled(index, dns_pid, t0):
    """Polls (every POLL) until the link `index` and dnsmasq `dns_pid` are
    gone; returns the ms since `t0`."""
    deadline = time.monotonic() + WAIT
    while link_by_index(index) is not None or (dns_pid is not None and alive(dns_pid)):
        if time.monotonic() > deadline:
            raise RuntimeError("bridge or dnsmasq still there after destroy")
        time.sleep(POLL)
    return ms(t0)


def bench_floor(d, net, rounds):
    progress(f"RPC floor: {rounds} autostart() calls")
    for _ in range(50):
        net.autostart()
    v = []
    cpu0 = cpu_ms(d.pid())
    for _ in range(rounds):
        t0 = time.perf_counter()
        if net.autostart():
            raise RuntimeError("autostart set")
        v.append(ms(t0))
    used = cpu_ms(d.pid()) - cpu0
    report("rpc_floor", v)
    report_one("cpu_rpc_floor", used / rounds, rounds)


def bench_start_destroy(d, net, bridge, rounds):
    progress(f"start/destroy: {WARMUP} warm-up + {rounds} rounds")
    up, down, settled = [], [], []
    cpu = dict(start=[0.0, 0.0], destroy=[0.0, 0.0])
    pid = d.pid()
    for r in range(WARMUP + rounds):
        time.sleep(PAUSE)
        c0 = cpu_ticks(pid)
        t0 = time.perf_counter()
        net.create()
        t_up = ms(t0)
        c1 = cpu_ticks(pid)
        index = link_index(bridge)
        dns = d.dnsmasq_pid(NET)
        if index is None or dns is None or not alive(dns) or not net.isActive():
            raise RuntimeError(f"after start: bridge index {index}, dnsmasq {dns}")
        time.sleep(PAUSE)
        c2 = cpu_ticks(pid)
        t0 = time.perf_counter()
        net.destroy()
        t_down = ms(t0)
        c3 = cpu_ticks(pid)
        t_settled = wait_settled(index, dns, t0)
        if link_index(bridge) is not None or net.isActive():
            raise RuntimeError("after destroy: bridge still there or network active")
        if r >= WARMUP:
            up.append(t_up)
            down.append(t_down)
            settled.append(t_settled)
            for k, a, b in (("start", c0, c1), ("destroy", c2, c3)):
                cpu[k][0] += b[0] - a[0]
                cpu[k][1] += b[1] - a[1]
    report("start", up)
    report_one("cpu_start", cpu["start"][0] / rounds, rounds)
    report_one("cpu_children_start", cpu["start"][1] / rounds, rounds)
    report("destroy", down)
    report_one("cpu_destroy", cpu["destroy"][0] / rounds, rounds)
    report_one("cpu_children_destroy", cpu["destroy"][1] / rounds, rounds)
    report("destroy_settled", settled)


def bench_rss(d):
    time.sleep(1.0)
    v = []
    for _ in range(5):
        v.append(rss_split(d.pid())[0])
        time.sleep(0.2)
    report("rss_idle", v, "MiB")
    _, anon, file = rss_split(d.pid())
    note(f"rss_idle: RssAnon {anon:.2f} MiB + RssFile {file:.2f} MiB (the binary and libraries)")


def run(args, base, state):
    rounds = QUICK if args.quick else FULL
    tag = os.path.basename(base)[-6:].lower()
    tag = "".join(ch for ch in tag if ch.isalnum())
    bridge = f"lvb{tag}0"[:15]
    subnet = pick_subnet()
    state["bridge"] = bridge
    d = Daemon(base, args.drivers == "all")
    state["daemon"] = d
    if not tc_has_csum():
        d.use_tc_shim()
    for fam in ("ip", "ip6"):
        state["tables_before"][fam] = nft_table_exists(fam, "libvirt_network")
    t0 = time.perf_counter()
    d.spawn()
    conn = d.connect()
    note(f"libvirt {'.'.join(str(x) for x in divmod_version(conn.getLibVersion()))}, "
         f"libvirtd (system mode, {'every installed driver' if args.drivers == 'all' else 'network driver only'}) "
         f"in a mount namespace on {base}, first answer {ms(t0):.0f} ms after the spawn")
    note(f"network '{NET}': NAT, DHCP, bridge {bridge}, {subnet}; firewall backend nftables")
    if d.shim is not None:
        note("no tc csum action in this kernel: libvirt's DHCP checksum filter goes through "
             "the tc shim (a u32 filter with classid 1:2 instead of action csum)")
    if any(state["tables_before"].values()):
        note("the libvirt_network nftables tables existed before the run (another libvirt?)")
    net = conn.networkDefineXML(net_xml(NET, bridge, subnet))
    bench_floor(d, net, rounds["floor"])
    bench_start_destroy(d, net, bridge, rounds["rounds"])
    bench_rss(d)
    net.undefine()
    conn.close()
    d.stop()


def divmod_version(v):
    return v // 1_000_000, (v // 1000) % 1000, v % 1000


def cleanup(state, base):
    d = state.get("daemon")
    if d is not None:
        try:
            if d.proc is not None and d.proc.poll() is None:
                try:
                    conn = libvirt.open(d.uri)
                    for n in conn.listAllNetworks():
                        if n.isActive():
                            n.destroy()
                    conn.close()
                except libvirt.libvirtError:
                    pass
                try:
                    d.stop()
                except RuntimeError:
                    pass
        finally:
            n = d.kill_namespace()
            if n:
                progress(f"killed {n} process(es) left in libvirtd's mount namespace")
    br = state.get("bridge")
    if br and link_index(br) is not None:
        subprocess.run(["ip", "link", "del", br], stderr=subprocess.DEVNULL)
    for fam, existed in state["tables_before"].items():
        if not existed and nft_table_exists(fam, "libvirt_network"):
            subprocess.run(["nft", "delete", "table", fam, "libvirt_network"],
                           stderr=subprocess.DEVNULL)
    shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--drivers", choices=["network", "all"], default="network",
                    help="the driver modules libvirtd loads (default: network only)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("# libvirt: not available: needs root (bridges, dnsmasq, nftables)")
        return
    for tool in ("libvirtd", "unshare", "mount", "nft", "dnsmasq", "tc"):
        if shutil.which(tool, path=SYS_PATH) is None:
            print(f"# libvirt: not available: no {tool}")
            return
    if not os.path.exists(os.path.join(DRIVER_DIR, "libvirt_driver_network.so")):
        print("# libvirt: not available: no network driver (libvirt-daemon-driver-network)")
        return
    # libvirt's errors are exceptions here; no copy on stderr.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    note(f"libvirt network bench: {'quick' if args.quick else 'full'} rounds")
    base = tempfile.mkdtemp(prefix="lvnet-", dir="/tmp")
    os.chmod(base, 0o755)
    state = {"tables_before": {}}

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        run(args, base, state)
    except KeyboardInterrupt:
        progress("interrupted; cleaning up")
        cleanup(state, base)
        sys.exit(130)
    except BaseException:
        progress(f"failed; libvirtd's logs: {base}/libvirtd.out, {base}/libvirtd.log (removed now)")
        for f in ("libvirtd.out", "libvirtd.log"):
            try:
                with open(os.path.join(base, f)) as fh:
                    tail = fh.read()[-3000:]
                if tail:
                    progress(f"--- {f} (tail)\n{tail}")
            except OSError:
                pass
        cleanup(state, base)
        raise
    cleanup(state, base)


if __name__ == "__main__":
    main()
