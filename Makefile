# Makefile: entry points of the virt workspace (GNU make).
#
#   make run        set up the host, build, run the four daemons in the foreground
#   make test       set up the host, build, run every test (unit, end-to-end, Python client;
#                   includes a short run of the kill-anywhere soak)
#   make soak       the kill-anywhere soak: 1000 rounds of a random call cut by kill -9
#                   of a random daemon, every invariant checked after each restart
#                   (SOAK_ARGS: e.g. "--rounds 5000 --seed 7 --keep-going"; root)
#   make setup-host install missing Debian packages (alias: make setup)
#   make build      cargo build of all binaries (debug)
#   make lint       rustfmt check and clippy with -D warnings
#   make bench      the benchmarks beside libvirt (release builds; also
#                   bench-lifecycle, bench-storage, bench-network, bench-proxy alone)
#   make load       64 clients through virtproxyd for 10 minutes, a mixed workload on
#                   the four release daemons: no error, no deadlock, p99 latency, and
#                   every daemon's RSS checked for leaks (root; LOAD_ARGS=--calls N ...)
#   make install    release build; binaries and systemd units under $(DESTDIR)
#   make uninstall  remove what install put there
#   make clean      cargo clean and the run-stack root
#
# Debug builds are used for run and test: they share the build cache with
# `cargo test`. Only `install` builds in release mode.

SHELL := /bin/bash
CARGO ?= cargo

PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= /etc/systemd/system

DAEMONS := virtqemud virtstoraged virtnetworkd virtproxyd
UNITS := $(notdir $(wildcard systemd/*.service systemd/*.socket))

.PHONY: all setup setup-host build run test soak lint fmt clippy install install-bin install-units \
	release uninstall clean

all: build

setup-host:
	@bash scripts/setup-host.sh

setup: setup-host

build:
	$(CARGO) build --workspace --bins

run: setup-host build
	bash scripts/run-stack.sh

# The tests crate finds ../shared/conformance itself and drives the Python
# client test (tests/) from a Rust test, so plain `cargo test` runs it all.
test: setup-host build
	$(CARGO) test --workspace -- --test-threads=2

# The kill-anywhere soak (tests/src/soak.rs): its own command, debug build
# like the tests (the daemons are found beside it). Prints the seed, a line
# per round and the figures; exits 1 on a broken invariant.
SOAK_ARGS ?= --rounds 1000
soak: setup-host build
	$(CARGO) run -p tests --bin soak -- $(SOAK_ARGS)

# The benchmarks beside libvirt (release builds); not part of `test`.
# BENCH_ARGS=--quick: fewer rounds. bench runs them all, one after the other
# (never at the same time, also under -j: they would share the cores).
#   bench-lifecycle  virtqemud lifecycle (QEMU under TCG, minutes), docs/benchmarks.md
#   bench-storage    virtstoraged volumes and pools (seconds), docs/benchmarks-storage.md
#   bench-network    virtnetworkd network start/destroy (root, seconds), docs/benchmarks-network.md
#   bench-proxy      virtproxyd: what the proxy adds to a call (seconds), docs/benchmarks-proxy.md
#   bench-floor      the transport's floor: bare tonic and a bare HTTP/2 forwarder beside virtqemud (seconds)
.PHONY: bench bench-lifecycle bench-storage bench-network bench-proxy bench-floor
bench:
	bash scripts/bench-lifecycle.sh $(BENCH_ARGS)
	bash scripts/bench-storage.sh $(BENCH_ARGS)
	bash scripts/bench-network.sh $(BENCH_ARGS)
	bash scripts/bench-proxy.sh $(BENCH_ARGS)

bench-floor:
	cargo build --release -p virtqemud --bins
	cargo bench -p tests --bench floor -- $(BENCH_ARGS)

bench-lifecycle:
	bash scripts/bench-lifecycle.sh $(BENCH_ARGS)

bench-storage:
	bash scripts/bench-storage.sh $(BENCH_ARGS)

bench-network:
	bash scripts/bench-network.sh $(BENCH_ARGS)

bench-proxy:
	bash scripts/bench-proxy.sh $(BENCH_ARGS)

# The load run (release builds; not part of `test`, whose short run is
# tests/tests/load.rs): tests/src/bin/load.rs, the runner tests/src/load.rs.
# LOAD_ARGS: e.g. --minutes 2, --calls 200000, --clients 32 (load --help).
LOAD_ARGS ?= --clients 64 --minutes 10 --strict
.PHONY: load
load:
	$(CARGO) build --release --workspace --bins
	target/release/load $(LOAD_ARGS)

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

release:
	$(CARGO) build --release --workspace --bins

install: release install-bin install-units
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		echo "systemctl daemon-reload"; systemctl daemon-reload; \
	fi

install-bin: release
	install -d "$(DESTDIR)$(SBINDIR)" "$(DESTDIR)$(BINDIR)"
	for d in $(DAEMONS); do \
		install -m 0755 "target/release/$$d" "$(DESTDIR)$(SBINDIR)/$$d" || exit 1; \
	done
	install -m 0755 target/release/virtsh "$(DESTDIR)$(BINDIR)/virtsh"

# Units carry @SBINDIR@ (and @BINDIR@) placeholders for the install paths.
install-units:
	install -d "$(DESTDIR)$(UNITDIR)"
	for u in $(UNITS); do \
		sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' "systemd/$$u" \
			> "$(DESTDIR)$(UNITDIR)/$$u.tmp" && \
		chmod 0644 "$(DESTDIR)$(UNITDIR)/$$u.tmp" && \
		mv -f "$(DESTDIR)$(UNITDIR)/$$u.tmp" "$(DESTDIR)$(UNITDIR)/$$u" || exit 1; \
	done

# Removes files only: stop and disable the units first if they are in use.
uninstall:
	rm -f $(addprefix "$(DESTDIR)$(SBINDIR)"/,$(DAEMONS)) "$(DESTDIR)$(BINDIR)/virtsh"
	rm -f $(addprefix "$(DESTDIR)$(UNITDIR)"/,$(UNITS))
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
		echo "systemctl daemon-reload"; systemctl daemon-reload; \
	fi

clean:
	$(CARGO) clean
	rm -rf --one-file-system run-root .venv
