#!/usr/bin/python3
"""The xml bench (tests/benches/xml.rs), measured on libvirt itself.

Same inputs as `cargo bench -p tests --bench xml`, same table layout, so the
two can be read side by side. libvirt has no public parse-only API: the
closest is define (parse + post-parse + validate + write the config file) then
XMLDesc (format) then undefine (remove the file), so every figure here
includes that persistence and the RPC round trips to the daemon (3 calls per
case). Inputs libvirt refuses are counted as skipped, as the Rust bench does.
The "vol" model is not measured: creating a volume needs an active pool and
allocates storage.

Needs (Debian 12):
  apt-get install --no-install-recommends libvirt-daemon/bookworm-backports \
    libvirt-daemon-driver-qemu/bookworm-backports \
    libvirt-daemon-driver-network/bookworm-backports \
    libvirt-daemon-driver-storage/bookworm-backports python3-libvirt
  plus, so that more pool types parse, libvirt-daemon-driver-storage-{disk,
  gluster,iscsi-direct,logical,mpath,rbd,scsi,zfs}/bookworm-backports
  (-iscsi is left out: it pulls in open-iscsi and udev; vstorage is not
  packaged by Debian; pools of a type without its backend are refused).
  python3-libvirt is Debian's own: run with /usr/bin/python3, not a pyenv
  python. Also setpriv (util-linux) when run as root, and the corpus
  (CONFORMANCE_DIR, else ../shared/conformance next to the repository).

It starts its own session-mode libvirtd (as `nobody` when run as root, since
qemu:///session is refused for root) with all state under a temporary
directory, connects over that daemon's socket, and stops it and removes the
directory at the end: the system's libvirt state is never touched. The
unprivileged daemon cannot open /dev/kvm, so <domain type='kvm'> inputs are
refused. `--dir /dev/shm` keeps the config files on tmpfs, which takes the
disk (fsync) out of the figures; the "rpc floor" line is the cost of the
round trips alone.

Run: /usr/bin/python3 tests/benches/libvirt_xml.py [--rounds N] [--dir /dev/shm]
"""

import argparse
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import libvirt

ROUNDS = 7
MIN_ROUND = 0.2  # seconds


def corpus_dir():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # As tests::conformance::Corpus::locate: the corpus next to the repository.
    for d in (os.environ.get("CONFORMANCE_DIR"), os.path.join(repo, "..", "shared", "conformance")):
        if d and os.path.isdir(d):
            return d
    sys.exit("libvirt xml bench: no corpus (set CONFORMANCE_DIR)")


def xml_files(root, rel, skip_suffix=None):
    names = sorted(
        n
        for n in (os.path.basename(p) for p in glob.glob(os.path.join(root, rel, "*.xml")))
        if not (skip_suffix and n.endswith(skip_suffix))
    )
    out = []
    for n in names:
        with open(os.path.join(root, rel, n), encoding="utf-8") as f:
            out.append(f.read())
    return out


def inputs(root):
    """The file sets of tests/benches/xml.rs, per model."""
    domain = xml_files(root, "domain-xml2xml-qemu", ".x86_64-latest.xml")
    network = []
    for d in ("network-xml2xml/in", "network-xml2conf", "network-xml2firewall"):
        network += xml_files(root, d)
    pool = []
    for d in ("pool-xml2xml/in", "pool-xml2argv", "vol-xml2xml/pools", "vol-xml2argv/pools"):
        pool += xml_files(root, d)
    return {"domain": domain, "network": network, "pool": pool}


DOMAIN_FMT = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE


def job_for(conn, model):
    """define + XMLDesc + undefine of one input; returns the formatted XML."""
    if model == "domain":
        def job(xml):
            d = conn.defineXML(xml)
            try:
                return d.XMLDesc(DOMAIN_FMT)
            finally:
                d.undefine()
    elif model == "network":
        def job(xml):
            n = conn.networkDefineXML(xml)
            try:
                return n.XMLDesc(0)
            finally:
                n.undefine()
    else:
        def job(xml):
            p = conn.storagePoolDefineXML(xml)
            try:
                return p.XMLDesc(0)
            finally:
                p.undefine()
    return job


def measure(job, xmls, rounds):
    per_pass = []
    for _ in range(rounds):
        start = time.perf_counter()
        passes = 0
        while passes == 0 or time.perf_counter() - start < MIN_ROUND:
            for x in xmls:
                job(x)
            passes += 1
        per_pass.append((time.perf_counter() - start) / passes)
    per_pass.sort()
    return per_pass[len(per_pass) // 2]


def start_daemon(base):
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": base,
        "XDG_RUNTIME_DIR": os.path.join(base, "run"),
        "XDG_CONFIG_HOME": os.path.join(base, "config"),
        "XDG_CACHE_HOME": os.path.join(base, "cache"),
    }
    cmd = ["libvirtd"]
    if os.geteuid() == 0:
        user = pwd.getpwnam(os.environ.get("LVBENCH_USER", "nobody"))
        os.chown(base, user.pw_uid, user.pw_gid)
        cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
               "--clear-groups"] + cmd
    log = open(os.path.join(base, "libvirtd.log"), "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=base)
    sock = os.path.join(base, "run", "libvirt", "libvirt-sock")
    for _ in range(100):
        if os.path.exists(sock):
            break
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if not os.path.exists(sock):
        proc.kill()
        with open(os.path.join(base, "libvirtd.log")) as f:
            sys.exit("libvirtd did not start:\n" + f.read())
    return proc, f"qemu+unix:///session?socket={sock}"


def cleanup(conn):
    """Undefines anything a failed job left behind."""
    for d in conn.listAllDomains():
        d.undefine()
    for n in conn.listAllNetworks():
        n.undefine()
    for p in conn.listAllStoragePools():
        p.undefine()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--dir", default=None,
                    help="parent of the daemon's temporary state directory "
                         "(default: $TMPDIR or /tmp; /dev/shm makes the config "
                         "writes and their fsync nearly free)")
    args = ap.parse_args()
    root = corpus_dir()
    libvirt.registerErrorHandler(lambda *_: None, None)  # refusals are counted, not printed
    base = tempfile.mkdtemp(prefix="lvbench.", dir=args.dir)
    proc = None
    try:
        proc, uri = start_daemon(base)
        conn = libvirt.open(uri)
        ver = conn.getLibVersion()
        print(f"libvirt {ver // 1000000}.{ver // 1000 % 1000}.{ver % 1000} ({uri.split('?')[0]})")
        print(f"{'model':<8} {'cases':>6} {'skipped':>8} {'KiB':>10} {'cases/s':>12} {'MB/s':>9} {'µs/case':>11}")
        for model, xmls in inputs(root).items():
            job = job_for(conn, model)
            ok = []
            for x in xmls:
                try:
                    job(x)
                    ok.append(x)
                except libvirt.libvirtError:
                    cleanup(conn)
            skipped = len(xmls) - len(ok)
            if not ok:
                print(f"{model:<8} {0:>6} {skipped:>8}   (nothing parses)")
                continue
            secs = measure(job, ok, args.rounds)
            n, nbytes = len(ok), sum(len(x.encode()) for x in ok)
            print(f"{model:<8} {n:>6} {skipped:>8} {nbytes / 1024:>10.1f} {n / secs:>12.0f} "
                  f"{nbytes / secs / 1e6:>9.2f} {secs / n * 1e6:>11.1f}")
        # What 3 round trips cost with no work behind them, per case.
        rpc = measure(lambda _: (conn.getLibVersion(), conn.getLibVersion(),
                                 conn.getLibVersion()), [None] * 100, args.rounds) / 100
        print(f"rpc floor: {rpc * 1e6:.1f} µs/case (3 no-op round trips; state in {base})")
        print(f"(median of {args.rounds} rounds of at least {MIN_ROUND * 1000:.0f}ms; "
              "define + XMLDesc + undefine over RPC, persistence included, input bytes)")
        cleanup(conn)
        conn.close()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
