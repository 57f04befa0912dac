#!/usr/bin/env bash
# The virtqemud lifecycle benchmark, side by side with libvirt (`make bench`).
#
#   scripts/bench-lifecycle.sh [--quick] [--no-libvirt]
#   scripts/bench-lifecycle.sh --join DIR     # re-print the table of a past run
#
# 1. builds the release virtqemud and the bench (tests/benches/lifecycle.rs);
# 2. runs our half on a temporary VIRT_ROOT, then libvirt's half
#    (tests/benches/libvirt_lifecycle.py, /usr/bin/python3 + python3-libvirt,
#    a private session libvirtd as `nobody`), one after the other;
# 3. joins their outputs (`metric<TAB>median<TAB>p90<TAB>n<TAB>unit` lines)
#    into one table: metric | ours (median) | libvirt (median) | target | ...
#
# Raw outputs, logs and the table stay in $BENCH_OUT/<date-time>/
# (default target/bench-lifecycle/): ours.tsv, ours.log, libvirt.tsv,
# libvirt.log, table.md. Needs root (QEMU, libvirtd as nobody), QEMU and,
# for libvirt's column, libvirtd + python3-libvirt; without them the column
# shows "-". What each metric measures: docs/benchmarks.md.
set -euo pipefail

cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
QUICK=()
LIBVIRT=1
JOIN=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=(--quick) ;;
	--no-libvirt) LIBVIRT=0 ;;
	--join)
		JOIN=${2:?--join DIR}
		shift
		;;
	-h | --help)
		sed -n '2,19p' "$0"
		exit 0
		;;
	*)
		echo "bench-lifecycle: unknown argument $1" >&2
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
	# One row: key, label, target text, target kind ("le" value, "lt" value,
	# "lv" = below libvirt, "" = none).
	function row(k, label, ttext, kind, tval,   met, o, l) {
		if (!(("o", k) in med) && !(("l", k) in med)) return
		met = ""
		if (("o", k) in med) {
			o = med["o", k] + 0
			if (kind == "le") met = (o <= tval) ? "yes" : "NO"
			else if (kind == "lt") met = (o < tval) ? "yes" : "NO"
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
	NF >= 5 {
		med[side, $1] = $2; p90[side, $1] = $3; n[side, $1] = $4; unit[side, $1] = $5
		if ($1 ~ /^list_[0-9]+$/ && $1 != "list_200") big = substr($1, 6)
	}
	END {
		if (lvname == "") lvname = "libvirt"
		printf "| metric | ours (median) | %s (median) | target | met | ours p90 / N | libvirt p90 / N |\n", lvname
		print "|---|---:|---:|---|---|---:|---:|"
		row("durable_write", "durable write of 2 KiB (tmp, fsync, rename, fsync dir), same dir, ms", "reference", "")
		dw = (("o", "durable_write") in med) ? med["o", "durable_write"] + 0.15 : 0
		row("define", "define (DefineXml / defineXML), ms", sprintf("<= write + 0.15 = %.3f", dw), (dw > 0) ? "le" : "", dw)
		row("define_minus_write", "define minus durable write (paired), ms", "<= 0.15", "le", 0.15)
		row("rpc_floor", "RPC floor (GetVersion / getLibVersion), ms", "reference", "")
		row("cpu_rpc_floor", "  daemon CPU per RPC-floor call, ms", "-", "")
		row("list_200", "list-all, 200 defined, ms", "<= 0.15", "le", 0.15)
		row("cpu_list_200", "  daemon CPU per list-all of 200, ms", "-", "")
		row("get_xml", "get XML (GetXml / XMLDesc), ms", "<= 0.05", "le", 0.05)
		row("cpu_get_xml", "  daemon CPU per get XML, ms", "-", "")
		row("start", "start until running (call returns), ms", "<= 120", "le", 120)
		row("guest_up", "start until guest up (UP line in serial file), ms", "-", "")
		row("destroy", "destroy, ms", "<= 40", "le", 40)
		row("suspend_resume", "suspend + resume, ms", "< libvirt", "lv")
		row("shutdown", "ACPI shutdown until shut off, ms", "< libvirt", "lv")
		row("reboot", "fake reboot until guest up again, ms", "< libvirt", "lv")
		row("restart", "daemon restart (10 running + 200 defined) until all 10 monitors answer, ms", "<= 60", "le", 60)
		row("restart_first_domain", "daemon restart until the first monitor answers, ms", "-", "")
		row("cpu_restart", "  daemon CPU from its spawn to the 10th answer, ms", "-", "")
		row("rss_empty", "idle RSS, nothing defined", "<= 10 MB", "le", 10)
		row("rss_loaded", "idle RSS, 200 defined + 10 running", "<= 10 MB", "le", 10)
		if (big != "") {
			row("define_bulk_" big, "define up to " big " domains, concurrently (total), ms", "-", "")
			row("list_" big, "list-all, " big " defined, ms", "< 5", "lt", 5)
			row("cpu_list_" big, "  daemon CPU per list-all of " big ", ms", "-", "")
		}
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
	echo "bench-lifecycle: run as root (QEMU, and libvirtd as nobody)" >&2
	exit 1
fi
OUT=${BENCH_OUT:-target/bench-lifecycle}/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "bench-lifecycle: results in $OUT"

$CARGO build --release -p virtqemud --bins
$CARGO bench -p tests --bench lifecycle --no-run
# The guest images for libvirt's half, from the same code as ours.
$CARGO bench -p tests --bench lifecycle -- --write-images "$OUT/images" >/dev/null

LOAD1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 1.0) }'; then
	echo "bench-lifecycle: warning: load average $LOAD1 before the run; other work will show in the figures" >&2
fi
{
	echo "# host: $(nproc) cores, $(uname -r), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# run: $(date -Is), rounds: ${QUICK[*]:-full}"
} >"$OUT/host.txt"

echo "bench-lifecycle: ours (virtqemud, target/release)"
if ! $CARGO bench -p tests --bench lifecycle -- "${QUICK[@]}" >"$OUT/ours.tsv" 2> >(tee "$OUT/ours.log" >&2); then
	echo "# ours: the bench failed (see ours.log); partial figures only" >>"$OUT/ours.tsv"
fi
echo "# load average after ours: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/host.txt"

: >"$OUT/libvirt.tsv"
if [ "$LIBVIRT" = 1 ]; then
	echo "bench-lifecycle: libvirt (session libvirtd as nobody)"
	if [ ! -x /usr/bin/python3 ]; then
		echo "# libvirt: not available: no /usr/bin/python3" >"$OUT/libvirt.tsv"
	elif ! /usr/bin/python3 tests/benches/libvirt_lifecycle.py --images "$OUT/images" "${QUICK[@]}" \
		>"$OUT/libvirt.tsv" 2> >(tee "$OUT/libvirt.log" >&2); then
		echo "# libvirt: its half failed (see libvirt.log); partial figures only" >>"$OUT/libvirt.tsv"
	fi
	echo "# load average after libvirt: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/host.txt"
else
	echo "# libvirt: not run (--no-libvirt)" >"$OUT/libvirt.tsv"
fi
rm -rf "$OUT/images"

{
	join_table "$OUT/ours.tsv" "$OUT/libvirt.tsv"
	echo ""
	cat "$OUT/host.txt"
} | tee "$OUT/table.md"
