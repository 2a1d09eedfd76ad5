#!/bin/bash
# Runs every cargo-fuzz target under fuzz/ for SECONDS_PER_TARGET seconds,
# one at a time, and prints one row per target: executions, execs/s, crashes
# (libFuzzer stops at the first; its input is kept in fuzz/artifacts/<t>/),
# peak RSS, and the new corpus size.
#
#   bash bench/fuzz.sh                  # SECONDS_PER_TARGET=60, all targets
#   SECONDS_PER_TARGET=20 bash bench/fuzz.sh scenario_parse
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The toolchain is stable:
# RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's -Z flags (sancov for
# libFuzzer's coverage). SANITIZER defaults to none: ASan checks memory
# accesses of `unsafe` code, which here is only src/sys/, and slows every
# target down; SANITIZER=address rebuilds everything with it (not tried).
set -euo pipefail

secs=${SECONDS_PER_TARGET:-60}
rss_limit=${RSS_LIMIT_MB:-4096}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1
flags=(-O --sanitizer "${SANITIZER:-none}")

cargo fuzz build "${flags[@]}" >&2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

printf '%-16s %8s %12s %10s %8s %12s %8s\n' \
    target seconds execs execs/s crashes peak_rss_mb corpus
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    seeds=()
    # The parser starts from every scenario we have, good and bad.
    [ "$t" = scenario_parse ] && seeds=("$root/scenarios" "$root/tests/scenarios/bad")
    before=$(find "artifacts/$t" -type f | wc -l)
    log="artifacts/$t.log"
    status=0
    cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb="$rss_limit" \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    stat() { grep -o "^stat::$1: *[0-9]*" "$log" | grep -o '[0-9]*$' || echo '?'; }
    after=$(find "artifacts/$t" -type f | wc -l)
    printf '%-16s %8s %12s %10s %8s %12s %8s\n' "$t" "$secs" \
        "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
        "$((after - before))" "$(stat peak_rss_mb)" \
        "$(find "corpus/$t" -type f | wc -l)"
    if [ "$status" -ne 0 ]; then
        echo "  $t stopped (exit $status): see fuzz/$log" >&2
        grep -m3 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/  /' >&2 || true
    fi
done
