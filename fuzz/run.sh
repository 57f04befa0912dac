#!/bin/sh
# Runs one fuzz target on the stable toolchain (see fuzz/Cargo.toml).
#
#   fuzz/run.sh TARGET [SECONDS] [libFuzzer args...]   fuzz for SECONDS (default 180)
#   fuzz/run.sh TARGET replay                          run corpus + regressions once
#
# TARGET: domain | network | pool | vol. Writable corpus: fuzz/corpus/TARGET
# (git-ignored); seeds, read-only: ../shared/conformance/<category>/ (missing
# dirs are skipped); known findings: fuzz/regressions/TARGET. Crashes land in
# fuzz/artifacts/TARGET. Env: FUZZ_SANITIZER=none to build without ASan.
set -eu
cd "$(dirname "$0")/.."

target=${1:?usage: fuzz/run.sh TARGET [SECONDS|replay] [libFuzzer args...]}
shift
secs=${1:-180}
[ $# -gt 0 ] && shift

conf=../shared/conformance
case $target in
    domain)  cats="domain-xml2xml-generic domain-xml2xml-qemu domain-xml2argv domain-xml-errors domain-schema" ;;
    network) cats="network-xml2xml network-xml2conf network-xml2firewall" ;;
    pool)    cats="pool-xml2xml pool-xml2argv" ;;
    vol)     cats="vol-xml2xml/in vol-xml2argv/vols" ;;
    *) echo "unknown target '$target' (domain, network, pool, vol)" >&2; exit 2 ;;
esac
seeds=""
for c in $cats; do
    [ -d "$conf/$c" ] && seeds="$seeds $conf/$c"
done
mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target"

export RUSTC_BOOTSTRAP=1
san=${FUZZ_SANITIZER:-address}
if [ "$secs" = replay ]; then
    # shellcheck disable=SC2086
    exec cargo fuzz run -s "$san" "$target" "fuzz/corpus/$target" "fuzz/regressions/$target" $seeds \
        -- -runs=0 -rss_limit_mb=2048 "$@"
fi
# shellcheck disable=SC2086
exec cargo fuzz run -s "$san" "$target" "fuzz/corpus/$target" $seeds -- \
    -dict="fuzz/dict/$target.dict" -max_total_time="$secs" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 "$@"
