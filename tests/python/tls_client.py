#!/usr/bin/env python3
"""A plain grpcio client of virtproxyd over mutual TLS, as a third-party
tool would write it: generated modules, a secure channel with the client
certificate, typed stubs for the domain service behind the proxy.

Run by tests/tests/proxy_tls.rs:

    tls_client.py --gen DIR --target HOST:PORT --ca FILE --cert FILE --key FILE

Exits 0 when every check passes, 1 otherwise; one line per check on stdout.
"""

import argparse
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.gen)

    import grpc
    from virt.domain.v1 import domain_pb2, domain_pb2_grpc, types_pb2

    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key),
        certificate_chain=read(args.cert),
    )
    stub = domain_pb2_grpc.DomainServiceStub(grpc.secure_channel(args.target, creds))
    timeout = 10

    xml = (
        "<domain type='qemu'><name>from-python</name><memory unit='MiB'>32</memory>"
        "<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"
    )
    stub.DefineXml(domain_pb2.DefineXmlRequest(xml=xml), timeout=timeout)
    check(True, "DefineXml over TLS")
    listed = stub.ListAllDomains(domain_pb2.ListAllDomainsRequest(), timeout=timeout)
    names = [d.domain.name for d in listed.domains]
    check("from-python" in names, "ListAllDomains shows it: %r" % names)
    ref = types_pb2.DomainRef(name="from-python")
    got = stub.GetXml(domain_pb2.GetXmlRequest(domain=ref), timeout=timeout)
    check("<name>from-python</name>" in got.xml, "GetXml returns the definition")
    try:
        stub.Start(domain_pb2.StartRequest(domain=types_pb2.DomainRef(name="nope")), timeout=timeout)
        check(False, "Start of an unknown domain fails")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.NOT_FOUND, "unknown domain: %s %s" % (e.code(), e.details()))

    # Without a client certificate the handshake is refused.
    anon = grpc.ssl_channel_credentials(root_certificates=read(args.ca))
    try:
        domain_pb2_grpc.DomainServiceStub(grpc.secure_channel(args.target, anon)).ListAllDomains(
            domain_pb2.ListAllDomainsRequest(), timeout=timeout
        )
        check(False, "a client without certificate is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNAVAILABLE, "no certificate: refused (%s)" % e.code())

    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
