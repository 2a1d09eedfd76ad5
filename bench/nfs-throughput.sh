#!/usr/bin/env bash
# Kernel NFS client throughput against stackquake's server, the guest
# kernel's nfsd and nfs-ganesha, side by side in one TCG guest (see
# bench/README.md), over NFSv3 or VERS=4.0/4.1/4.2. Needs root,
# qemu-system-x86, linux-image-amd64, busybox-static, nfs-kernel-server;
# nfs-ganesha nfs-ganesha-vfs optional.
#   VERS=3 ROUNDS=1 OUT=target/bench/nfs-throughput bash bench/nfs-throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export SQ_BENCH_OUT="${OUT:-$PWD/target/bench/nfs-throughput}"
export SQ_BENCH_ROUNDS="${ROUNDS:-1}"
export SQ_NFS_VERS="${VERS:-3}"
exec cargo test --release --quiet --test vm_nfs_peers bench_throughput -- --ignored --exact --nocapture
