#!/usr/bin/env python3
"""A plain grpcio client of a running virtqemud, as a third-party tool would
write it: Python modules generated from proto/ by grpc_tools.protoc, a Unix
socket channel, typed stubs.

Run by tests/tests/python_client.rs:

    client.py --gen DIR --rw SOCK --ro SOCK --admin SOCK --pid PID [--qemu]

DIR holds the generated modules (virt/domain/v1/domain_pb2.py, ...). Exits 0
when every check passes, 1 with a message on stderr otherwise; prints one
line per check on stdout.
"""

import argparse
import sys


def channel(path):
    import grpc

    # A Unix socket path is no valid :authority; tonic wants a host name.
    return grpc.insecure_channel(
        "unix:" + path, options=[("grpc.default_authority", "localhost")]
    )


def show(d):
    return "none" if d is None else "%d %s (domain %s)" % (d.code, d.code_name, d.domain_name)


def detail_of(err, common_pb2):
    """The libvirt ErrorDetail a daemon puts in grpc-status-details-bin."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return common_pb2.ErrorDetail.FromString(value)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", required=True)
    ap.add_argument("--rw", required=True)
    ap.add_argument("--ro", required=True)
    ap.add_argument("--admin", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--qemu", action="store_true", help="qemu-system-x86_64 is on PATH")
    args = ap.parse_args()
    sys.path.insert(0, args.gen)

    import grpc
    from virt.admin.v1 import admin_pb2, admin_pb2_grpc
    from virt.common.v1 import common_pb2
    from virt.domain.v1 import domain_pb2, domain_pb2_grpc, types_pb2

    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    timeout = 10

    # DomainService.GetVersion on the read-write socket.
    rw = domain_pb2_grpc.DomainServiceStub(channel(args.rw))
    try:
        v = rw.GetVersion(domain_pb2.GetVersionRequest(), timeout=timeout)
        check(args.qemu, "GetVersion answered (QEMU on PATH)")
        check(v.hypervisor_type == "QEMU", "hypervisor_type == QEMU: %r" % v.hypervisor_type)
        check(v.daemon_name == "virtqemud", "daemon_name: %r" % v.daemon_name)
        check(v.hypervisor_version_number > 0, "hypervisor version %s" % v.hypervisor_version)
    except grpc.RpcError as e:
        check(not args.qemu, "GetVersion fails only without QEMU: %s %s" % (e.code(), e.details()))
        check(e.code() != grpc.StatusCode.PERMISSION_DENIED, "GetVersion not denied on rw")

    h = rw.GetHostname(domain_pb2.GetHostnameRequest(), timeout=timeout)
    check(h.hostname != "", "GetHostname: %r" % h.hostname)

    # AdminService.GetDaemonInfo on the admin socket.
    admin = admin_pb2_grpc.AdminServiceStub(channel(args.admin))
    info = admin.GetDaemonInfo(admin_pb2.GetDaemonInfoRequest(), timeout=timeout)
    check(info.name == "virtqemud", "GetDaemonInfo name: %r" % info.name)
    check(info.pid == args.pid, "GetDaemonInfo pid %d == %d" % (info.pid, args.pid))
    check(info.mode == admin_pb2.DAEMON_MODE_SYSTEM, "mode SYSTEM")
    check(
        sorted(s.address for s in info.sockets) == sorted([args.rw, args.ro, args.admin]),
        "socket addresses %r" % [s.address for s in info.sockets],
    )
    clients = admin.ListClients(admin_pb2.ListClientsRequest(), timeout=timeout).clients
    check(any(c.socket == admin_pb2.SOCKET_KIND_RW for c in clients), "our rw client is listed")

    # The read-only socket refuses DefineXml with PERMISSION_DENIED.
    ro = domain_pb2_grpc.DomainServiceStub(channel(args.ro))
    try:
        ro.DefineXml(domain_pb2.DefineXmlRequest(), timeout=timeout)
        check(False, "DefineXml on ro must fail")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.PERMISSION_DENIED, "DefineXml on ro: %s" % e.code())
        d = detail_of(e, common_pb2)
        check(d is not None and d.code_name == "OPERATION_DENIED", "ro detail: %s" % show(d))

    # A read-only RPC passes the ACL; an unknown domain is NOT_FOUND with
    # libvirt's NO_DOMAIN (42) code in the details.
    try:
        ro.LookupDomain(
            domain_pb2.LookupDomainRequest(domain=types_pb2.DomainRef(name="no-such-domain")),
            timeout=timeout,
        )
        check(False, "LookupDomain of a missing domain succeeded")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, "LookupDomain on ro: %s" % e.code())
        check("no-such-domain" in e.details(), e.details())
        d = detail_of(e, common_pb2)
        check(d is not None and d.code == 42 and d.code_name == "NO_DOMAIN", "detail: %s" % show(d))

    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
