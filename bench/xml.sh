#!/usr/bin/env bash
# Hostile XML against one release `vmsec serve` (HTTPS, loopback), driven by bench/xml.py:
# the time to refuse plain and namespace nesting 1,000 / 10,000 / 100,000 deep and namespace-
# declaration floods up to the 4 MiB body limit, each next to a normal Get of
# Msvm_SecuritySettingData in the same run; then an admin's Get latency with no load and while
# 16 reader clients send the most expensive body the parser's limits let through.
# With BEFORE_BIN set to a release `vmsec` built from older code, the same run then measures it
# too (bench/xml.py's `before` mode) and publishes both tables.
# Usage: [BEFORE_BIN=path [BEFORE_LABEL=text]] bench/xml.sh [REPEATS] [LOAD_SECONDS]   (defaults 20 and 10)
source "$(dirname "$0")/lib.sh"
repeats=${1:-20}
load_secs=${2:-10}
build
data=$(mktemp -d)
out=$(mktemp)
trap 'kill "${VMSEC_PID:-}" 2>/dev/null || true; rm -rf "$data" "$out"' EXIT
reader_auth=$(printf 'reader:reader-secret' | base64 -w0)
run() {  # DIR [before]: a fresh store with the golden KP, an admin and a reader; one server
  "$BIN" --data "$1" vm add bench --id "$VM" >/dev/null
  "$BIN" --data "$1" vm kp set bench "$GOLDEN_KP" >/dev/null
  start_vmsec "$1"  # creates the admin; the reader joins once it runs
  printf 'reader-secret\n' | "$BIN" --data "$1" user add reader --role reader --password-stdin >/dev/null
  python3 "$ROOT/bench/xml.py" "$VMSEC_HTTPS" "$BENCH_AUTH" "$reader_auth" "$VM" "$repeats" "$load_secs" "${@:2}" | tee -a "$out"
  kill "$VMSEC_PID"; wait "$VMSEC_PID" 2>/dev/null || true
}
run "$data/after"
command="bench/xml.sh $repeats $load_secs"
if [ -n "${BEFORE_BIN:-}" ]; then
  printf '\nThe code before (%s):\n\n' "${BEFORE_LABEL:-$BEFORE_BIN}" | tee -a "$out"
  BIN=$BEFORE_BIN run "$data/before" before
  command="BEFORE_BIN=$BEFORE_BIN $command"
fi
python3 "$ROOT/bench/publish.py" xml "$command" <"$out"
