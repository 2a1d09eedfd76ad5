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

command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine" >&2; exit 69; }
command -v vng >/dev/null || { echo "vng missing: pip install virtme-ng" >&2; exit 69; }

cargo build --release --quiet
sq="$PWD/target/release/stackquake run --vm --accel tcg --kernel $kernel --output $out/trivial $PWD/bench/scenarios/trivial.yaml"
vng="vng --run $kernel --disable-kvm -- true"

hyperfine -N --warmup 1 --runs "$runs" \
	--command-name stackquake "$sq" \
	--command-name virtme-ng "$vng" \
	--export-json "$out/run-vm.json" \
	--export-markdown "$out/run-vm.md"

jq -r '
	(.results | map({(.command): .median}) | add) as $m
	| "median stackquake run --vm \($m.stackquake | .*1000 | round / 1000) s, virtme-ng \($m["virtme-ng"] | .*1000 | round / 1000) s, ratio \($m.stackquake / $m["virtme-ng"] | .*100 | round / 100)x"
' "$out/run-vm.json"
