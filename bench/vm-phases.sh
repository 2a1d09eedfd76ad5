#!/bin/bash
# Where the time of one trivial `run --vm` goes, phase by phase (issue 17:
# "aim at 1.25x the kernel's own boot-to-init time; measure where the rest
# goes"). Runs bench/scenarios/trivial.yaml RUNS times and splits each run
# with the clock guest-init reports (journal.json's target) and the wall
# time of the whole command; prints every run and the medians.
#
# Needs: jq and the packages ci/setup installs.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-7}
kernel=${KERNEL:-6.1}
out=${OUT:-target/bench/phases}
mkdir -p "$out"
cargo build --release --quiet
sq=target/release/stackquake

printf '%-4s %7s %7s %7s %7s %7s %7s %7s %7s\n' run qemu kernel initrd g-init job off host wall
rows=()
for i in $(seq "$runs"); do
	t0=$(date +%s.%N)
	"$sq" run --vm --accel tcg --kernel "$kernel" --output "$out/$i" \
		bench/scenarios/trivial.yaml >/dev/null 2>&1
	t1=$(date +%s.%N)
	target=$(jq -r .target "$out/$i/journal.json")
	# "vm (booted in B s (guest clock: /init at I s, guest-init at G s, job at J s), job R s, T s in all)"
	read -r b i0 g j r t < <(sed -E 's/[^0-9.]+/ /g' <<<"$target")
	row=$(awk -v b="$b" -v i="$i0" -v g="$g" -v j="$j" -v r="$r" -v t="$t" -v w="$(echo "$t1 - $t0" | bc)" 'BEGIN {
		qemu = b - g            # QEMU start until the guest clock starts
		off = t - qemu - j - r  # job end until QEMU is gone: power off
		printf "%7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f", qemu, i, g - i, j - g, r, off, w - t, w
	}')
	printf '%-4s %s\n' "$i" "$row"
	rows+=("$row")
done
printf '%-4s' med
for c in $(seq 8); do
	printf '%s\n' "${rows[@]}" | awk -v c="$c" '{ print $c }' | sort -n |
		awk '{ a[NR] = $1 } END { printf " %7.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
done
echo
