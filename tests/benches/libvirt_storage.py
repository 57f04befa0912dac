#!/usr/bin/python3
"""The storage numbers of libvirt itself, to put beside virtstoraged's.

Measures, on a private session libvirtd (as `nobody` when run as root,
everything under a temporary directory, the system's libvirt untouched):

  vol_create_qcow2   one 1 GiB qcow2 volume created in a dir pool (x100)
  list_100           listAllVolumes() of the pool holding 100 volumes
  refresh_100        refresh() of that pool

The same three are timed for virtstoraged by the end-to-end test
`hundred_qcow2_volumes_created_listed_refreshed_deleted`
(`cargo test --release -p tests --test storage hundred -- --nocapture`).

Output: `metric<TAB>median<TAB>p90<TAB>n<TAB>ms` lines on stdout.
Needs libvirt-daemon with the storage driver, python3-libvirt (run with
/usr/bin/python3), setpriv when run as root.

Run: /usr/bin/python3 virtstoraged/bench/libvirt_storage.py
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import libvirt
except ImportError as e:
    print(f"# libvirt: not available: python3-libvirt missing ({e})")
    sys.exit(0)


def stats(samples):
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    return median, s[max(1, -(-n * 9 // 10)) - 1]


def report(metric, samples):
    median, p90 = stats(samples)
    print(f"{metric}\t{median:.4f}\t{p90:.4f}\t{len(samples)}\tms", flush=True)


def main():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    base = tempfile.mkdtemp(prefix="lvstor-")
    user = None
    if os.geteuid() == 0:
        user = pwd.getpwnam(os.environ.get("LVBENCH_USER", "nobody"))
    proc = None
    try:
        pool_dir = os.path.join(base, "pool")
        os.mkdir(pool_dir)
        for d in (base, pool_dir):
            if user is not None:
                os.chown(d, user.pw_uid, user.pw_gid)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": base,
            "XDG_RUNTIME_DIR": os.path.join(base, "run"),
            "XDG_CONFIG_HOME": os.path.join(base, "config"),
            "XDG_CACHE_HOME": os.path.join(base, "cache"),
        }
        cmd = ["libvirtd"]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                   "--clear-groups"] + cmd
        log = open(os.path.join(base, "libvirtd.log"), "w")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=base)
        sock = os.path.join(base, "run", "libvirt", "libvirt-sock")
        uri = f"qemu+unix:///session?socket={sock}"
        deadline = time.monotonic() + 20
        conn = None
        while conn is None:
            if proc.poll() is not None:
                sys.exit(f"libvirtd exited; see {base}/libvirtd.log")
            try:
                conn = libvirt.open(uri)
            except libvirt.libvirtError:
                if time.monotonic() > deadline:
                    sys.exit("libvirtd did not answer")
                time.sleep(0.01)
        pool = conn.storagePoolDefineXML(
            f"<pool type='dir'><name>bench</name><target><path>{pool_dir}</path></target></pool>")
        pool.create()
        create = []
        for i in range(100):
            xml = (f"<volume><name>v{i:03}.qcow2</name><capacity>{1 << 30}</capacity>"
                   "<allocation>0</allocation><target><format type='qcow2'/></target></volume>")
            t0 = time.perf_counter()
            pool.createXML(xml, 0)
            create.append((time.perf_counter() - t0) * 1e3)
        report("vol_create_qcow2", create)
        lists = []
        for _ in range(50):
            t0 = time.perf_counter()
            vols = pool.listAllVolumes()
            lists.append((time.perf_counter() - t0) * 1e3)
            assert len(vols) == 100
        report("list_100", lists)
        refresh = []
        for _ in range(20):
            t0 = time.perf_counter()
            pool.refresh(0)
            refresh.append((time.perf_counter() - t0) * 1e3)
        report("refresh_100", refresh)
        pool.destroy()
        pool.undefine()
        conn.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
