#!/usr/bin/env bash
# SetKeyProtector jobs per second through WS-Management, with 1, 4 and 16 clients (bench/jobs.py:
# one keep-alive HTTPS connection and one VM per client; invoke, then poll the job with Get
# every 5 ms until the client sees it completed). A job is ~420 KB of request XML.
# Usage: bench/jobs.sh [SECONDS]   (default 10 per run)
source "$(dirname "$0")/lib.sh"
secs=${1:-10}
build
data=$(mktemp -d)
trap 'kill "${VMSEC_PID:-}" 2>/dev/null || true; rm -rf "$data"' EXIT
vms=()
for i in $(seq 0 15); do
  id=$(printf '00000000-0000-4000-8000-%012d' "$i")
  "$BIN" --data "$data" vm add "vm-$i" --id "$id" >/dev/null
  vms+=("${id^^}")
done
start_vmsec "$data"
out=$data/table
printf '| clients | jobs/s | p50 invoke→seen completed | p99 | jobs | errors |\n|---|---|---|---|---|---|\n' >"$out"
for c in 1 4 16; do
  read -r jps p50 p99 n err < <(python3 "$ROOT/bench/jobs.py" "$VMSEC_HTTPS" "$BENCH_AUTH" "$GOLDEN_KP" "$secs" "$c" "${vms[@]}" \
    | awk '/^RESULT/{for(i=2;i<=NF;i++){split($i,kv,"="); printf "%s ", kv[2]}; print ""}')
  printf '| %s | %s | %s ms | %s ms | %s | %s |\n' "$c" "$jps" "$p50" "$p99" "$n" "$err" | tee -a "$out"
done
python3 "$ROOT/bench/publish.py" jobs "bench/jobs.sh $secs" <"$out"
