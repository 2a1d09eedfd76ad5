#!/usr/bin/env bash
# report.html of a synthetic 10,000-op run: its size, the time stackquake
# takes to render it, and the time headless Chromium takes to load it
# (--dump-dom: parse, lay out, run the script) and to paint it
# (--screenshot), each against an empty page so Chromium's own start-up is
# visible and can be subtracted. Needs chromium and hyperfine (ci/setup).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
OUT=${OUT:-target/bench/report-html-10k}
cargo build --release --quiet --example report_html_10k
target/release/examples/report_html_10k "$OUT"
page=$(realpath "$OUT/report.html")
empty=$(realpath "$OUT")/empty.html
echo '<!DOCTYPE html><html><body></body></html>' >"$empty"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium="chromium --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=$profile"
hyperfine -N --warmup 1 --runs "$RUNS" \
  --command-name "dump-dom empty" "$chromium --dump-dom file://$empty" \
  --command-name "dump-dom 10k" "$chromium --dump-dom file://$page" \
  --command-name "screenshot empty" "$chromium --window-size=1300,1000 --screenshot=$OUT/empty.png file://$empty" \
  --command-name "screenshot 10k" "$chromium --window-size=1300,1000 --screenshot=$OUT/10k.png file://$page" \
  --export-json "$OUT/chromium.json" --export-markdown "$OUT/chromium.md" >/dev/null
jq -r '.results[] | "\(.command): median \(.median * 1000 | round) ms (min \(.min * 1000 | round), max \(.max * 1000 | round))"' "$OUT/chromium.json"
