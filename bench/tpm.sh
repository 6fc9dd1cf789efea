#!/usr/bin/env bash
# `vmsec tpm start` latency and its parts (release build, real swtpm): the first start
# (manufacture) once, then N warm starts, each followed by `tpm stop`. The parts are those
# `tpm start --json` reports: unwrap the key protector (RSA-OAEP decrypt + verify of every
# signature), unseal the state key, roll the key protector (new transport key wrapped for the
# owner and every guardian, signed), start swtpm, commit (one transaction).
# The wall time of the whole command (process start, store open, ...) is measured too.
# Usage: bench/tpm.sh [STARTS]   (default 21)
source "$(dirname "$0")/lib.sh"
n=${1:-21}
need swtpm swtpm; need swtpm_setup swtpm-tools
build
data=$(mktemp -d)
trap '"$BIN" --data "$data" tpm stop vm1 >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
v() { "$BIN" --data "$data" "$@"; }
v guardian new owner >/dev/null
v kp new --owner owner --out "$data/kp.xml" >/dev/null
v vm add vm1 >/dev/null
v vm kp set vm1 "$data/kp.xml" >/dev/null
v vm security set vm1 --tpm on >/dev/null
sock=$data/vm1.sock
first=$(v --json tpm start vm1 --socket "$sock")
v tpm stop vm1 >/dev/null
: >"$data/runs"
for _ in $(seq "$n"); do
  t0=$(date +%s%N)
  out=$(v --json tpm start vm1 --socket "$sock")
  wall=$(( ($(date +%s%N) - t0) / 1000 ))
  echo "$out" | python3 -c 'import json,sys; t=json.load(sys.stdin)["timings"]; t["wall_ms"]=int(sys.argv[1])/1000; print(json.dumps(t))' "$wall" >>"$data/runs"
  v tpm stop vm1 >/dev/null
done
python3 - "$data/runs" "$first" "$n" <<'PY' | tee "$data/table"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
first = json.loads(sys.argv[2])["timings"]
parts = ["wall_ms", "total_ms", "unwrap_ms", "unseal_ms", "roll_ms", "swtpm_start_ms", "commit_ms"]
names = {"wall_ms": "whole command (wall)", "total_ms": "start, as timed inside", "unwrap_ms": "unwrap key protector",
         "unseal_ms": "unseal state key", "roll_ms": "roll key protector", "swtpm_start_ms": "start swtpm",
         "commit_ms": "commit"}
print(f"| part | median of {sys.argv[3]} warm starts | min | max |\n|---|---|---|---|")
for p in parts:
    xs = [r[p] for r in runs]
    print(f"| {names[p]} | {statistics.median(xs):.1f} ms | {min(xs):.1f} ms | {max(xs):.1f} ms |")
print(f"\nFirst start (manufacture with swtpm_setup included): {first['total_ms']:.0f} ms, of which manufacture {first['manufacture_ms']:.0f} ms.")
PY
python3 "$ROOT/bench/publish.py" tpm "bench/tpm.sh $n" <"$data/table"
