#!/bin/bash
# VM boot benchmark: one trivial guest run (/bin/true) through
# stackquake::vm (examples/vm_true.rs) against virtme-ng running the same
# command on the same kernel, both under TCG, in one hyperfine run.
# Median of 5 runs after 1 warm-up each (warm-up also fills stackquake's
# initramfs/vmlinux cache, as any second run would find it).
#
# Needs: hyperfine, qemu-system-x86, linux-image-amd64, busybox-static,
# xz-utils, and virtme-ng (pip install virtme-ng).
set -euo pipefail
cd "$(dirname "$0")/.."

kernel=${KERNEL:-$(ls -1v /boot/vmlinuz-* | tail -1)}
runs=${RUNS:-5}
out=${OUT:-target/bench}
mkdir -p "$out"

command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine" >&2; exit 69; }
command -v vng >/dev/null || { echo "vng missing: pip install virtme-ng" >&2; exit 69; }

cargo build --release --example vm_true
sq="env SQ_ACCEL=tcg SQ_KERNEL=$kernel $PWD/target/release/examples/vm_true"
vng="vng --run $kernel --disable-kvm -- true"

hyperfine -N --warmup 1 --runs "$runs" \
	--command-name stackquake "$sq" \
	--command-name virtme-ng "$vng" \
	--export-json "$out/vm-boot.json" \
	--export-markdown "$out/vm-boot.md"

jq -r '
	(.results | map({(.command): .median}) | add) as $m
	| "median stackquake \($m.stackquake | .*1000 | round / 1000) s, virtme-ng \($m["virtme-ng"] | .*1000 | round / 1000) s, ratio \($m.stackquake / $m["virtme-ng"] | .*100 | round / 100)x"
' "$out/vm-boot.json"
