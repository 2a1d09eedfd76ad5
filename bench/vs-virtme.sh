# Shared by the VM benchmarks: times one stackquake command against virtme-ng
# running `true` on the same kernel under TCG, in one hyperfine run (median of
# $RUNS after one warm-up each), and prints the medians and their ratio.
# Source it after setting `kernel`, `runs` and `out`; then call
#   versus_virtme NAME "STACKQUAKE COMMAND"

command -v hyperfine >/dev/null || { echo "hyperfine missing: apt-get install hyperfine" >&2; exit 69; }
command -v vng >/dev/null || { echo "vng missing: pip install virtme-ng" >&2; exit 69; }

versus_virtme() {
	local name=$1 sq=$2
	hyperfine -N --warmup 1 --runs "$runs" \
		--command-name stackquake "$sq" \
		--command-name virtme-ng "vng --run $kernel --disable-kvm -- true" \
		--export-json "$out/$name.json" \
		--export-markdown "$out/$name.md"
	jq -r --arg name "$name" '
		(.results | map({(.command): .median}) | add) as $m
		| "\($name): median stackquake \($m.stackquake | .*1000 | round / 1000) s, virtme-ng \($m["virtme-ng"] | .*1000 | round / 1000) s, ratio \($m.stackquake / $m["virtme-ng"] | .*100 | round / 100)x"
	' "$out/$name.json"
}
