#!/bin/bash
# Time from `stackquake run --vm` to verdict for a trivial scenario, against
# virtme-ng running `true` on the same kernel, both under TCG, in one
# hyperfine run (median of 5 after 1 warm-up each).
#
# Needs: hyperfine, jq, the packages ci/setup installs, and virtme-ng
# (pip install virtme-ng).
set -euo pipefail
cd "$(dirname "$0")/.."

kernel=${KERNEL:-$(ls -1v /boot/vmlinuz-* | tail -1)}
runs=${RUNS:-5}
out=${OUT:-target/bench}
mkdir -p "$out"

. bench/vs-virtme.sh

cargo build --release --quiet
sq="$PWD/target/release/stackquake run --vm --accel tcg --kernel $kernel --output $out/trivial $PWD/bench/scenarios/trivial.yaml"

versus_virtme run-vm "$sq"
