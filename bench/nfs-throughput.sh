#!/usr/bin/env bash
# Kernel NFSv3 client throughput against stackquake's server, the guest
# kernel's nfsd and nfs-ganesha, side by side in one TCG guest (see
# bench/README.md). Needs root, qemu-system-x86, linux-image-amd64,
# busybox-static, nfs-kernel-server; nfs-ganesha nfs-ganesha-vfs optional.
#   ROUNDS=1 OUT=target/bench/nfs-throughput bash bench/nfs-throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export SQ_BENCH_OUT="${OUT:-$PWD/target/bench/nfs-throughput}"
export SQ_BENCH_ROUNDS="${ROUNDS:-1}"
exec cargo test --release --quiet --test vm_nfs_peers bench_throughput -- --ignored --exact --nocapture
