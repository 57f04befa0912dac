#!/usr/bin/env bash
# The virtnetworkd network benchmark, side by side with libvirt
# (`make bench-network`; `make bench` runs it after the others).
#
#   scripts/bench-network.sh [--quick] [--no-libvirt] [--libvirt-drivers all]
#   scripts/bench-network.sh --join DIR     # re-print the table of a past run
#
# 1. builds the release virtnetworkd and the bench (tests/benches/network.rs);
# 2. runs our half on a temporary VIRT_ROOT, then libvirt's half
#    (tests/benches/libvirt_network.py, /usr/bin/python3 + python3-libvirt,
#    a private system-mode libvirtd as root in a mount namespace of its own,
#    every path under a temporary directory), one after the other;
# 3. joins their outputs (`metric<TAB>median<TAB>p90<TAB>n<TAB>unit` lines)
#    into one table: metric | ours (median) | libvirt (median) | target | ...
#
# Raw outputs, logs and the table stay in $BENCH_OUT/<date-time>/
# (default target/bench-network/): ours.tsv, ours.log, libvirt.tsv,
# libvirt.log, host.txt, table.md. Needs root (bridges, dnsmasq, nftables),
# dnsmasq and nft; for libvirt's column libvirtd with the network driver and
# python3-libvirt; without them the column shows "-". What each metric
# measures: docs/benchmarks-network.md.
set -euo pipefail

cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
QUICK=()
LVARGS=()
LIBVIRT=1
JOIN=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=(--quick) ;;
	--no-libvirt) LIBVIRT=0 ;;
	--libvirt-drivers)
		LVARGS=(--drivers "${2:?--libvirt-drivers network|all}")
		shift
		;;
	--join)
		JOIN=${2:?--join DIR}
		shift
		;;
	-h | --help)
		sed -n '2,21p' "$0"
		exit 0
		;;
	*)
		echo "bench-network: unknown argument $1" >&2
		exit 2
		;;
	esac
	shift
done

# --- the table -----------------------------------------------------------------
# join OURS_TSV LIBVIRT_TSV: prints the markdown table and both halves' notes.
join_table() {
	awk -F'\t' -v ours="$1" -v lv="$2" '
	function fmt(v) {
		if (v == "" || v == "-") return "-"
		if (v + 0 < 1) return sprintf("%.3f", v)
		if (v + 0 < 100) return sprintf("%.2f", v)
		return sprintf("%.0f", v)
	}
	function cell(side, k,   u) {
		if (!((side, k) in med)) return "-"
		u = (unit[side, k] == "MiB") ? " MiB" : ""
		return fmt(med[side, k]) u
	}
	function spread(side, k) {
		if (!((side, k) in med)) return "-"
		return fmt(p90[side, k]) " / " n[side, k]
	}
	# One row: key, label, target text, target kind ("le" value, "lv" =
	# below libvirt, "" = none).
	function row(k, label, ttext, kind, tval,   met, o) {
		if (!(("o", k) in med) && !(("l", k) in med)) return
		met = ""
		if (("o", k) in med) {
			o = med["o", k] + 0
			if (kind == "le") met = (o <= tval) ? "yes" : "NO"
			else if (kind == "lv" && (("l", k) in med)) met = (o < med["l", k] + 0) ? "yes" : "NO"
		}
		printf "| %s | %s | %s | %s | %s | %s | %s |\n", label, cell("o", k), cell("l", k), ttext, met, spread("o", k), spread("l", k)
	}
	FNR == 1 { side = (FILENAME == ours) ? "o" : "l" }
	/^#/ {
		notes[side] = notes[side] "\n" $0
		if (side == "l" && $0 ~ /^# libvirt [0-9]/) { split($0, w, " "); split(w[3], vv, "."); lvname = "libvirt " vv[1] "." vv[2] }
		next
	}
	NF >= 5 { med[side, $1] = $2; p90[side, $1] = $3; n[side, $1] = $4; unit[side, $1] = $5 }
	END {
		if (lvname == "") lvname = "libvirt"
		printf "| metric | ours (median) | %s (median) | target | met | ours p90 / N | libvirt p90 / N |\n", lvname
		print "|---|---:|---:|---|---|---:|---:|"
		row("rpc_floor", "RPC floor (GetNetworkAutostart / autostart()), ms", "reference", "")
		row("cpu_rpc_floor", "  daemon CPU per RPC-floor call, ms", "-", "")
		row("start", "start a NAT network with DHCP (StartNetwork / create()), ms", "<= 20", "le", 20)
		row("cpu_start", "  daemon CPU per start (its own threads), ms", "-", "")
		row("cpu_children_start", "  CPU per start of the children it waited for (nft, tc, ...), ms", "-", "")
		row("destroy", "destroy (DestroyNetwork / destroy()), ms", "<= 30", "le", 30)
		row("cpu_destroy", "  daemon CPU per destroy (its own threads), ms", "-", "")
		row("cpu_children_destroy", "  CPU per destroy of the children it waited for, ms", "-", "")
		row("destroy_settled", "destroy until the bridge and dnsmasq are gone, ms", "-", "")
		row("rss_idle", "idle RSS, one network defined (inactive)", "-", "")
		print ""
		print "Notes, ours:" notes["o"]
		print ""
		print "Notes, libvirt:" notes["l"]
	}' "$1" "$2"
}

if [ -n "$JOIN" ]; then
	touch "$JOIN/ours.tsv" "$JOIN/libvirt.tsv" 2>/dev/null || true
	join_table "$JOIN/ours.tsv" "$JOIN/libvirt.tsv"
	exit 0
fi

# --- the run -------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
	echo "bench-network: run as root (bridges, dnsmasq, nftables)" >&2
	exit 1
fi
OUT=${BENCH_OUT:-target/bench-network}/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "bench-network: results in $OUT"

$CARGO build --release -p virtnetworkd --bins
$CARGO bench -p tests --bench network --no-run

LOAD1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 1.0) }'; then
	echo "bench-network: warning: load average $LOAD1 before the run; other work will show in the figures" >&2
fi
{
	echo "# host: $(nproc) cores, $(uname -r), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# run: $(date -Is), rounds: ${QUICK[*]:-full}"
} >"$OUT/host.txt"

echo "bench-network: ours (virtnetworkd, target/release)"
if ! $CARGO bench -p tests --bench network -- "${QUICK[@]}" >"$OUT/ours.tsv" 2> >(tee "$OUT/ours.log" >&2); then
	echo "# ours: the bench failed (see ours.log); partial figures only" >>"$OUT/ours.tsv"
fi
echo "# load average after ours: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/host.txt"

: >"$OUT/libvirt.tsv"
if [ "$LIBVIRT" = 1 ]; then
	echo "bench-network: libvirt (system-mode libvirtd in a mount namespace)"
	if [ ! -x /usr/bin/python3 ]; then
		echo "# libvirt: not available: no /usr/bin/python3" >"$OUT/libvirt.tsv"
	elif ! /usr/bin/python3 tests/benches/libvirt_network.py "${QUICK[@]}" "${LVARGS[@]}" \
		>"$OUT/libvirt.tsv" 2> >(tee "$OUT/libvirt.log" >&2); then
		echo "# libvirt: its half failed (see libvirt.log); partial figures only" >>"$OUT/libvirt.tsv"
	fi
	echo "# load average after libvirt: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/host.txt"
else
	echo "# libvirt: not run (--no-libvirt)" >"$OUT/libvirt.tsv"
fi

{
	join_table "$OUT/ours.tsv" "$OUT/libvirt.tsv"
	echo ""
	cat "$OUT/host.txt"
} | tee "$OUT/table.md"
