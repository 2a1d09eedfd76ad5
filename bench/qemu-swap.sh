#!/usr/bin/env bash
# A stand-in for qemu-system-x86_64 on PATH, for A/B runs of guest
# settings without a rebuild: QW_CPU replaces the TCG -cpu model,
# QW_APPEND adds words to the kernel command line.
#
#   mkdir -p /tmp/qw && ln -sf "$PWD/bench/qemu-swap.sh" /tmp/qw/qemu-system-x86_64
#   QW_CPU=max PATH=/tmp/qw:$PATH target/release/stackquake run --vm …
set -euo pipefail
args=()
prev=""
for a in "$@"; do
  if [ "$prev" = "-cpu" ] && [ -n "${QW_CPU:-}" ]; then a="$QW_CPU"; fi
  if [ "$prev" = "-append" ] && [ -n "${QW_APPEND:-}" ]; then a="${a/ rdinit=/ $QW_APPEND rdinit=}"; fi
  args+=("$a")
  prev="$a"
done
exec /usr/bin/qemu-system-x86_64 "${args[@]}"
