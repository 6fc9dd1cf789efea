#!/usr/bin/env bash
# Crash safety on the PostgreSQL store (bench/crash.py --postgres): KILLS rounds of load and
# SIGKILL of vmsec, every 10th also SIGKILL of the whole PostgreSQL server (then restarted),
# each followed by the same checks as on SQLite. Uses a private cluster (scripts/pg), removed
# afterwards. Writes the figure into BENCHMARKS.md, exits 1 on any violation.
# Usage: bench/crash-pg.sh [KILLS] [SEED]   (default 200, seed from the clock)
source "$(dirname "$0")/lib.sh"
kills=${1:-200}
need swtpm swtpm; need swtpm_setup swtpm-tools; need psql postgresql-client
build
out=$(mktemp)
pgdir=$(mktemp -d -u /tmp/vmsec-crash-pg.XXXXXX)
trap 'rm -f "$out"; scripts/pg stop "$pgdir"' EXIT
url=$(scripts/pg start "$pgdir")
psql "$url" -X -q -c "CREATE DATABASE vmsec_crash"
set +e
python3 "$ROOT/bench/crash.py" "$BIN" "$GOLDEN_KP" --kills "$kills" ${2:+--seed "$2"} \
  --postgres "${url%/*}/vmsec_crash" --pg-dir "$pgdir" --pg-every 10 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
{ echo '```'; cat "$out"; echo '```'; } | python3 "$ROOT/bench/publish.py" crash-pg "bench/crash-pg.sh $kills${2:+ $2}"
exit "$rc"
