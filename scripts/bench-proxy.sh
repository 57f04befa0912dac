#!/usr/bin/env bash
# The virtproxyd benchmark, side by side with libvirt (`make bench-proxy`;
# `make bench` runs it after the network one).
#
#   scripts/bench-proxy.sh [--quick] [--no-libvirt] [--no-tcp]
#   scripts/bench-proxy.sh --join DIR     # re-print the table of a past run
#
# 1. builds the release virtqemud and virtproxyd and the bench
#    (tests/benches/proxy.rs);
# 2. runs our half on a temporary VIRT_ROOT (the same calls direct to
#    virtqemud, through virtproxyd's Unix socket and through its TCP
#    listener, interleaved), then libvirt's half (tests/benches/libvirt_proxy.py,
#    /usr/bin/python3 + python3-libvirt, a private session libvirtd with a
#    TCP listener, as `nobody` when run as root), one after the other;
# 3. joins their outputs (`metric<TAB>median<TAB>p90<TAB>n<TAB>unit` lines)
#    into one table: metric | ours (median) | libvirt (median) | target | ...
#
# Raw outputs, logs and the table stay in $BENCH_OUT/<date-time>/
# (default target/bench-proxy/): ours.tsv, ours.log, libvirt.tsv,
# libvirt.log, host.txt, table.md. Root is not needed. For libvirt's
# column, libvirtd and python3-libvirt; without them the column shows "-".
# What each metric measures: docs/benchmarks-proxy.md.
set -euo pipefail

cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
QUICK=()
TCP=()
LIBVIRT=1
JOIN=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=(--quick) ;;
	--no-tcp) TCP=(--no-tcp) ;; # not through our proxy's TCP listener
	--tcp) ;; # the default now (kept for old command lines)
	--no-libvirt) LIBVIRT=0 ;;
	--join)
		JOIN=${2:?--join DIR}
		shift
		;;
	-h | --help)
		sed -n '2,23p' "$0"
		exit 0
		;;
	*)
		echo "bench-proxy: unknown argument $1" >&2
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
	function cell(side, k) {
		if (!((side, k) in med)) return "-"
		return fmt(med[side, k]) ((unit[side, k] == "x") ? " x" : "")
	}
	function spread(side, k) {
		if (!((side, k) in med)) return "-"
		return fmt(p90[side, k]) " / " n[side, k]
	}
	# One row: key, label, target text, target kind ("le" value, "lv" =
	# at most tval times the libvirt median, "" = none).
	function row(k, label, ttext, kind, tval,   met, o, l) {
		if (!(("o", k) in med) && !(("l", k) in med)) return
		met = ""
		if (("o", k) in med) {
			o = med["o", k] + 0
			if (kind == "le") met = (o <= tval) ? "yes" : "NO"
			else if (kind == "lv" && (("l", k) in med)) {
				l = med["l", k] * tval
				ttext = sprintf("%s = %s", ttext, fmt(l))
				met = (o <= l) ? "yes" : "NO"
			}
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
		row("floor_direct", "RPC floor direct (GetVersion / getLibVersion, the daemon Unix socket), ms", "reference", "")
		row("floor_proxy", "RPC floor through the proxy Unix socket, ms", "-", "")
		row("floor_added", "  added by the proxy, paired, p50, ms", "-", "")
		row("floor_added_p99", "  added by the proxy, paired, p99, ms", "-", "")
		row("floor_ratio", "  proxy / direct (medians)", "-", "")
		row("floor_proxy_tcp", "RPC floor through the proxy over TCP (libvirt: TCP to libvirtd, no proxy), ms", "-", "")
		row("floor_tcp_added", "  added over TCP, paired, p50, ms", "-", "")
		row("floor_tcp_added_p99", "  added over TCP, paired, p99, ms", "-", "")
		row("floor_tcp_ratio", "  TCP / direct (medians)", "-", "")
		row("failed_floor", "  proxied RPC-floor calls that failed (UNAVAILABLE) and were made again, count", "0", "le", 0)
		row("cpu_proxy_floor", "  proxy CPU per proxied RPC-floor call, ms", "-", "")
		row("list_direct", "list-all, 200 defined, direct, ms", "reference", "")
		row("list_proxy", "list-all, 200 defined, through the proxy Unix socket, ms", "-", "")
		row("list_added", "  added by the proxy, paired, p50, ms", "-", "")
		row("list_added_p99", "  added by the proxy, paired, p99, ms", "-", "")
		row("list_ratio", "  proxy / direct (medians)", "<= 1.3 (libvirt 1.5)", "le", 1.3)
		row("list_proxy_tcp", "list-all, 200 defined, through the proxy over TCP (libvirt: TCP to libvirtd, no proxy), ms", "-", "")
		row("list_tcp_added", "  added over TCP, paired, p50, ms", "-", "")
		row("list_tcp_added_p99", "  added over TCP, paired, p99, ms", "-", "")
		row("list_tcp_ratio", "  TCP / direct (medians)", "<= 1.3", "le", 1.3)
		row("failed_list", "  proxied list-all calls that failed (UNAVAILABLE) and were made again, count", "0", "le", 0)
		row("cpu_proxy_list", "  proxy CPU per proxied list-all, ms", "-", "")
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
OUT=${BENCH_OUT:-target/bench-proxy}/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "bench-proxy: results in $OUT"

$CARGO build --release -p virtqemud -p virtproxyd --bins
$CARGO bench -p tests --bench proxy --no-run

LOAD1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 1.0) }'; then
	echo "bench-proxy: warning: load average $LOAD1 before the run; other work will show in the figures" >&2
fi
{
	echo "# host: $(nproc) cores, $(uname -r), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# run: $(date -Is), rounds: ${QUICK[*]:-full}"
} >"$OUT/host.txt"

echo "bench-proxy: ours (virtqemud + virtproxyd, target/release)"
if ! $CARGO bench -p tests --bench proxy -- "${QUICK[@]}" "${TCP[@]}" >"$OUT/ours.tsv" 2> >(tee "$OUT/ours.log" >&2); then
	echo "# ours: the bench failed (see ours.log); partial figures only" >>"$OUT/ours.tsv"
fi
echo "# load average after ours: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/host.txt"

: >"$OUT/libvirt.tsv"
if [ "$LIBVIRT" = 1 ]; then
	echo "bench-proxy: libvirt (session libvirtd, Unix socket and TCP)"
	if [ ! -x /usr/bin/python3 ]; then
		echo "# libvirt: not available: no /usr/bin/python3" >"$OUT/libvirt.tsv"
	elif ! /usr/bin/python3 tests/benches/libvirt_proxy.py "${QUICK[@]}" \
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
