#!/usr/bin/env bash
# Crash safety under SIGKILL (bench/crash.py): KILLS rounds of load, kill -9, restart, check.
# Prints kills survived and violations, writes the figure into BENCHMARKS.md, exits 1 on any
# violation. Usage: bench/crash.sh [KILLS] [SEED]   (default 200, seed from the clock)
source "$(dirname "$0")/lib.sh"
kills=${1:-200}
need swtpm swtpm; need swtpm_setup swtpm-tools
build
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
python3 "$ROOT/bench/crash.py" "$BIN" "$GOLDEN_KP" --kills "$kills" ${2:+--seed "$2"} | tee "$out"
rc=${PIPESTATUS[0]}
set -e
{ echo '```'; cat "$out"; echo '```'; } | python3 "$ROOT/bench/publish.py" crash "bench/crash.sh $kills${2:+ $2}"
exit "$rc"
