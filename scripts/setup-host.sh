#!/usr/bin/env bash
# setup-host.sh: install the Debian packages the daemons and tests need.
#
# Idempotent. Run as root on Debian 12 (bookworm). When everything is already
# installed it prints one line and changes nothing; `apt-get update` runs only
# when something must be installed.
#
# QEMU: Debian 12 main carries QEMU 7.2, bookworm-backports carries 10.x. We
# prefer backports and pin per package, never the whole release
# (`-t bookworm-backports` would upgrade systemd and others too): an apt
# preferences file pins qemu-* and seabios to backports (naming only
# `qemu-system-x86/bookworm-backports` is not enough: apt then takes
# qemu-system-common, qemu-system-data and seabios from main and gives up),
# and the install names `qemu-system-x86/bookworm-backports
# qemu-utils/bookworm-backports` so qemu-utils stays at the backports version.
# A machine without a backports source gets one, written from the URIs: and
# Signed-By: lines of its own /etc/apt/sources.list.d/debian.sources, so no
# mirror address lives in this repository. If the backports install fails we
# fall back to QEMU 7.2 with qemu-utils from main (a downgrade when a
# backports qemu-utils is already installed). The project works with both.
#
# Environment: SETUP_HOST_VERBOSE=1 prints the tool versions even when
# nothing was installed.
set -euo pipefail

MIN_RUST_MINOR=88 # Rust >= 1.88 (workspace rust-version)

# Packages checked one by one with dpkg-query. QEMU is handled separately.
PACKAGES=(
    dnsmasq-base   # virtnetworkd: DHCP/DNS on bridges
    nftables       # virtnetworkd: NAT and forwarding rules
    iproute2       # bridges, taps, veths, netns in tests
    libxml2-utils  # xmllint: schema checks in the conformance tests
    python3-venv   # the Python client test builds a venv
    lvm2           # virtstoraged: logical pools
    e2fsprogs      # virtstoraged: fs pools (mkfs.ext4)
    systemd        # systemd-socket-activate for socket-activation tests
)
QEMU_PACKAGES=(qemu-system-x86 qemu-utils)

BACKPORTS_SOURCE=/etc/apt/sources.list.d/virt-bookworm-backports.sources
QEMU_PIN=/etc/apt/preferences.d/virt-qemu-backports
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=300)

say() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: error: %s\n' "$*" >&2; exit 1; }

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

check_rust() {
    local cargo ver minor
    if ! cargo=$(command -v cargo); then
        if [[ -x "${HOME:-/root}/.cargo/bin/cargo" ]]; then
            die "cargo is not on PATH, but ${HOME:-/root}/.cargo/bin/cargo exists: run 'source \"\$HOME/.cargo/env\"' (or keep PATH under sudo) and retry"
        fi
        die "cargo not found. A Rust toolchain >= 1.${MIN_RUST_MINOR} is needed; install it with rustup (the Rust project's installer), then open a new shell or source \"\$HOME/.cargo/env\""
    fi
    ver=$("$cargo" --version 2>/dev/null | awk '{print $2}')
    minor=$(cut -d. -f2 <<<"$ver")
    if [[ "$(cut -d. -f1 <<<"$ver")" == 1 && "$minor" =~ ^[0-9]+$ ]] && ((minor < MIN_RUST_MINOR)); then
        die "cargo $ver is too old: Rust >= 1.${MIN_RUST_MINOR} is needed (rustup update stable)"
    fi
}

have_backports_source() {
    grep -rqsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null
}

# Writes a deb822 bookworm-backports source from the machine's own main
# Debian source (deb822 debian.sources, or a one-line sources.list entry).
write_backports_source() {
    local src=/etc/apt/sources.list.d/debian.sources uris="" signed=""
    if [[ -r "$src" ]]; then
        # First stanza whose Suites: lists plain "bookworm" (not -security).
        IFS=$'\t' read -r uris signed < <(awk '
            function flush() {
                if (!done && suites ~ /(^|[ \t])bookworm([ \t]|$)/ && uris != "") {
                    print uris "\t" (signed == "" ? "-" : signed); done = 1
                }
                uris = ""; signed = ""; suites = ""
            }
            /^[ \t]*$/ { flush(); next }
            /^URIs:/      { sub(/^URIs:[ \t]*/, "");      uris = $0 }
            /^Suites:/    { sub(/^Suites:[ \t]*/, "");    suites = $0 }
            /^Signed-By:/ { sub(/^Signed-By:[ \t]*/, ""); signed = $0 }
            END { flush() }' "$src") || true
    fi
    if [[ -z "$uris" && -r /etc/apt/sources.list ]]; then
        uris=$(awk '$1 == "deb" && $0 ~ /[ \t]bookworm[ \t]/ {
                    for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; exit } }' /etc/apt/sources.list)
        signed=/usr/share/keyrings/debian-archive-keyring.gpg
    fi
    [[ -n "$uris" ]] || return 1
    say "adding a bookworm-backports apt source ($BACKPORTS_SOURCE)"
    {
        echo "# Written by scripts/setup-host.sh (virt): QEMU from bookworm-backports."
        echo "Types: deb"
        echo "URIs: $uris"
        echo "Suites: bookworm-backports"
        echo "Components: main"
        if [[ -n "$signed" && "$signed" != "-" ]]; then echo "Signed-By: $signed"; fi
    } >"$BACKPORTS_SOURCE"
}

write_qemu_pin() {
    cat >"$QEMU_PIN" <<'EOF'
# Written by scripts/setup-host.sh (virt): QEMU and its firmware from
# bookworm-backports, the rest of the system from bookworm.
Package: qemu-* seabios
Pin: release n=bookworm-backports
Pin-Priority: 500
EOF
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" "$@"
}

print_versions() {
    say "qemu-system-x86_64: $(qemu-system-x86_64 --version | head -n1)"
    say "qemu-img:           $(qemu-img --version | head -n1)"
    say "dnsmasq:            $(dnsmasq --version 2>/dev/null | head -n1)"
    say "nft:                $(nft --version 2>/dev/null | head -n1)"
}

main() {
    check_rust

    local missing=() need_qemu=0 qemu_note="" p
    for p in "${PACKAGES[@]}"; do
        installed "$p" || missing+=("$p")
    done
    for p in "${QEMU_PACKAGES[@]}"; do
        installed "$p" || need_qemu=1
    done
    ((need_qemu)) && qemu_note=" ${QEMU_PACKAGES[*]}"

    if ((${#missing[@]} == 0 && need_qemu == 0)); then
        qemu-system-x86_64 --version >/dev/null 2>&1 || die "qemu-system-x86_64 is installed but does not run"
        qemu-img --version >/dev/null 2>&1 || die "qemu-img is installed but does not run"
        if [[ "${SETUP_HOST_VERBOSE:-0}" == 1 ]]; then print_versions; fi
        say "host ready (all packages present)"
        return 0
    fi

    [[ $EUID -eq 0 ]] || die "packages missing:${missing[*]:+ ${missing[*]}}$qemu_note; run this script as root"
    [[ -r /etc/os-release ]] && . /etc/os-release
    if [[ "${VERSION_CODENAME:-}" != bookworm ]]; then
        say "warning: this script targets Debian 12 (bookworm); found ${PRETTY_NAME:-unknown}"
    fi

    local qemu_from_backports=0
    if ((need_qemu)); then
        if have_backports_source || write_backports_source; then
            qemu_from_backports=1
            [[ -e "$QEMU_PIN" ]] || write_qemu_pin
        else
            say "warning: cannot derive a bookworm-backports source; using QEMU from main"
        fi
    fi

    say "installing:${missing[*]:+ ${missing[*]}}$qemu_note"
    DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300

    if ((need_qemu)); then
        local ok=0
        if ((qemu_from_backports)); then
            # qemu-utils is named too so that it stays at (or moves to) the
            # backports version instead of being downgraded to 7.2.
            if apt_install "${missing[@]}" qemu-system-x86/bookworm-backports qemu-utils/bookworm-backports; then
                ok=1
            else
                say "warning: installing QEMU from bookworm-backports failed; falling back to QEMU 7.2 from main"
                # The pin would pull QEMU's dependencies from backports again.
                rm -f "$QEMU_PIN"
            fi
        fi
        if ((!ok)); then
            apt_install --allow-downgrades "${missing[@]}" qemu-system-x86/bookworm qemu-utils/bookworm \
                || die "installing QEMU from Debian main failed"
        fi
    else
        apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi

    for p in "${PACKAGES[@]}" "${QEMU_PACKAGES[@]}"; do
        installed "$p" || die "package $p is still not installed"
    done
    command -v systemd-socket-activate >/dev/null || die "systemd-socket-activate not found"
    qemu-system-x86_64 --version >/dev/null || die "qemu-system-x86_64 does not run"
    qemu-img --version >/dev/null || die "qemu-img does not run"
    print_versions
    say "host ready"
}

main "$@"
