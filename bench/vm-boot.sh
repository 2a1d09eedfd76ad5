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

. bench/vs-virtme.sh

cargo build --release --example vm_true
sq="env SQ_ACCEL=tcg SQ_KERNEL=$kernel $PWD/target/release/examples/vm_true"

versus_virtme vm-boot "$sq"
