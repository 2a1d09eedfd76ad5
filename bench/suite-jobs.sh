#!/usr/bin/env bash
# Wall time and host CPU of `run --vm` over a set of scenarios for each
# combination of --jobs and --vm-cpus, the combinations alternated in each
# round so the machine's drift falls on all of them alike.
#
#   bash bench/suite-jobs.sh                       # the 15-case subset below
#   JOBS="2 4 6" CPUS="1 2" ROUNDS=2 FILES="scenarios/" bash bench/suite-jobs.sh
#
# Prints one line per run: jobs, vcpus, round, wall s, host CPU s (user+sys
# of QEMU and everything else the run started), PASS count, cases.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-"2 4 6"}
CPUS=${CPUS:-"1 2"}
ROUNDS=${ROUNDS:-1}
OUT=${OUT:-target/bench/suite-jobs}
BIN=${BIN:-target/release/stackquake}
# A mix of the seed suite: NLM timers, v4 mount storms on both server kinds,
# a server restart with reclaim, XFS on loop, a slow dm volume, an EIO fault.
FILES=${FILES:-"scenarios/nfs-write-error-eio.yaml scenarios/nfs41-restart-reclaim.yaml
  scenarios/xfs-shutdown-under-writes.yaml scenarios/lockd-down-flock-ex-hangs.yaml
  scenarios/nfs4-parallel-mounts.yaml scenarios/block-delay-slow-disk.yaml
  scenarios/statd-running-flock-granted.yaml"}
[ -x "$BIN" ] || cargo build --release --quiet
mkdir -p "$OUT"
echo "jobs vcpus round wall_s cpu_s pass cases load_before"
for round in $(seq "$ROUNDS"); do
  for j in $JOBS; do
    for c in $CPUS; do
      dir="$OUT/j$j-c$c-r$round"
      rm -rf "$dir"
      load=$(cut -d' ' -f1 /proc/loadavg)
      # bash's own `time`: wall, and the user and system CPU of every
      # process the run waited for (the QEMUs among them).
      TIMEFORMAT="%R %U %S"
      # shellcheck disable=SC2086 # FILES is a list of paths
      { time "$BIN" run --vm --jobs "$j" --vm-cpus "$c" --output "$dir" $FILES \
        >"$dir.out" 2>"$dir.err" || true; } 2>"$dir.time"
      read -r wall user sys <"$dir.time"
      pass=$(jq '[.results[] | select(.verdict == "PASS")] | length' "$dir/journal.json")
      cases=$(jq '.results | length' "$dir/journal.json")
      echo "$j $c $round $wall $(awk "BEGIN { print $user + $sys }") $pass $cases $load"
    done
  done
done
