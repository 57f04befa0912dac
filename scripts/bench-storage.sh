#!/usr/bin/env bash
# The virtstoraged storage benchmark, side by side with libvirt
# (`make bench-storage`; `make bench` runs it after the lifecycle one).
#
#   scripts/bench-storage.sh [--quick] [--no-libvirt]
#   scripts/bench-storage.sh --join DIR     # re-print the table of a past run
#
# 1. builds the release virtstoraged and the bench (tests/benches/storage.rs);
# 2. runs our half on a temporary VIRT_ROOT, then libvirt's half
#    (tests/benches/libvirt_storage.py, /usr/bin/python3 + python3-libvirt,
#    a private session libvirtd, as `nobody` when run as root), one after
#    the other;
# 3. joins their outputs (`metric<TAB>median<TAB>p90<TAB>n<TAB>unit` lines)
#    into one table: metric | ours (median) | libvirt (median) | target | ...
#
# Raw outputs, logs and the table stay in $BENCH_OUT/<date-time>/
# (default target/bench-storage/): ours.tsv, ours.log, libvirt.tsv,
# libvirt.log, host.txt, table.md. Needs qemu-img; root is not needed. For
# libvirt's column, libvirtd with the storage driver and python3-libvirt;
# without them the column shows "-". What each metric measures:
# docs/benchmarks-storage.md.
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
		sed -n '2,21p' "$0"
		exit 0
		;;
	*)
		echo "bench-storage: unknown argument $1" >&2
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
		return fmt(med[side, k])
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
	NF >= 5 { med[side, $1] = $2; p90[side, $1] = $3; n[side, $1] = $4 }
	END {
		if (lvname == "") lvname = "libvirt"
		printf "| metric | ours (median) | %s (median) | target | met | ours p90 / N | libvirt p90 / N |\n", lvname
		print "|---|---:|---:|---|---|---:|---:|"
		row("vol_create_qcow2", "create a 1 GiB qcow2 volume (x100), ms", "<= 0.7 x libvirt", "lv", 0.7)
		row("cpu_vol_create_qcow2", "  daemon CPU per create (libvirt: without its qemu-img), ms", "-", "")
		row("rpc_floor", "RPC floor (GetPoolAutostart / pool.autostart()), ms", "reference", "")
		row("cpu_rpc_floor", "  daemon CPU per RPC-floor call, ms", "-", "")
		row("list_100", "list 100 volumes (ListAllVolumes / listAllVolumes()), ms", "<= 0.1", "le", 0.1)
		row("list_100_minus_floor", "  list of 100 minus RPC floor (paired), ms", "-", "")
		row("list_100_undecoded", "  list of 100, reply taken as bytes, not decoded, ms", "-", "")
		row("undecoded_minus_floor", "    of the residual: transport and daemon (paired), ms", "-", "")
		row("list_100_minus_undecoded", "    of the residual: client decode and drop (paired), ms", "-", "")
		row("cpu_list_100", "  daemon CPU per list of 100, ms", "-", "")
		row("cpu_list_100_minus_floor", "  daemon CPU, list of 100 minus RPC floor (paired), ms", "-", "")
		row("client_decode_100", "  client: decoding one reply of 100 (in the list time), ms", "-", "")
		row("refresh_100", "refresh a pool of 100 volumes, ms", "<= 1", "le", 1)
		row("cpu_refresh_100", "  daemon CPU per refresh of 100, ms", "-", "")
		row("vol_delete", "delete a volume (x100), ms", "-", "")
		row("cpu_vol_delete", "  daemon CPU per delete, ms", "-", "")
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
OUT=${BENCH_OUT:-target/bench-storage}/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
echo "bench-storage: results in $OUT"

$CARGO build --release -p virtstoraged --bins
$CARGO bench -p tests --bench storage --no-run

LOAD1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 1.0) }'; then
	echo "bench-storage: warning: load average $LOAD1 before the run; other work will show in the figures" >&2
fi
{
	echo "# host: $(nproc) cores, $(uname -r), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# run: $(date -Is), rounds: ${QUICK[*]:-full}"
} >"$OUT/host.txt"

echo "bench-storage: ours (virtstoraged, target/release)"
if ! $CARGO bench -p tests --bench storage -- "${QUICK[@]}" >"$OUT/ours.tsv" 2> >(tee "$OUT/ours.log" >&2); then
	echo "# ours: the bench failed (see ours.log); partial figures only" >>"$OUT/ours.tsv"
fi
echo "# load average after ours: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/host.txt"

: >"$OUT/libvirt.tsv"
if [ "$LIBVIRT" = 1 ]; then
	echo "bench-storage: libvirt (session libvirtd)"
	if [ ! -x /usr/bin/python3 ]; then
		echo "# libvirt: not available: no /usr/bin/python3" >"$OUT/libvirt.tsv"
	elif ! /usr/bin/python3 tests/benches/libvirt_storage.py "${QUICK[@]}" \
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
