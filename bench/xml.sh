#!/usr/bin/env bash
# Hostile XML against one release `vmsec serve` (HTTPS, loopback), driven by bench/xml.py:
# the time to refuse plain and namespace nesting 1,000 / 10,000 / 100,000 deep and namespace-
# declaration floods up to the 4 MiB body limit, each next to a normal Get of
# Msvm_SecuritySettingData in the same run; then an admin's Get latency with no load and while
# 16 reader clients send the most expensive body the parser's limits let through.
# Usage: bench/xml.sh [REPEATS] [LOAD_SECONDS]   (defaults 20 and 10)
source "$(dirname "$0")/lib.sh"
repeats=${1:-20}
load_secs=${2:-10}
build
data=$(mktemp -d)
out=$(mktemp)
trap 'kill "${VMSEC_PID:-}" 2>/dev/null || true; rm -rf "$data" "$out"' EXIT
"$BIN" --data "$data" vm add bench --id "$VM" >/dev/null
"$BIN" --data "$data" vm kp set bench "$GOLDEN_KP" >/dev/null
printf 'reader-secret\n' | "$BIN" --data "$data" user add reader --role reader --password-stdin >/dev/null
start_vmsec "$data"
reader_auth=$(printf 'reader:reader-secret' | base64 -w0)
python3 "$ROOT/bench/xml.py" "$VMSEC_HTTPS" "$BENCH_AUTH" "$reader_auth" "$VM" "$repeats" "$load_secs" | tee "$out"
python3 "$ROOT/bench/publish.py" xml "bench/xml.sh $repeats $load_secs" <"$out"
