#!/usr/bin/env bash
# `vmsec tpm start` latency and its parts (release build, real swtpm): the first start
# (manufacture) once, then N warm starts, each followed by `tpm stop`. The parts are those
# `tpm start --json` reports: unwrap the key protector (RSA-OAEP decrypt + verify of every
# signature), unseal the state key, roll the key protector (new transport key wrapped for the
# owner and every guardian, signed), start swtpm, commit (one transaction).
# The wall time of the whole command (process start, store open, ...) is measured too. Then
# the same N starts with `vmsec serve` running on the data directory, which the CLI asks to
# do the start.
# Usage: bench/tpm.sh [STARTS]   (default 21)
source "$(dirname "$0")/lib.sh"
n=${1:-21}
need swtpm swtpm; need swtpm_setup swtpm-tools
build
data=$(mktemp -d)
trap 'kill "${VMSEC_PID:-}" 2>/dev/null || true; "$BIN" --data "$data" tpm stop vm1 >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
v() { "$BIN" --data "$data" "$@"; }
v guardian new owner >/dev/null
v kp new --owner owner --out "$data/kp.xml" >/dev/null
v vm add vm1 >/dev/null
v vm kp set vm1 "$data/kp.xml" >/dev/null
v vm security set vm1 --tpm on >/dev/null
sock=$data/vm1.sock
first=$(v --json tpm start vm1 --socket "$sock")
v tpm stop vm1 >/dev/null
: >"$data/table"
# starts N FILE: N warm starts (each followed by `tpm stop`), their timings into FILE.
starts() {
  : >"$2"
  for _ in $(seq "$1"); do
    t0=$(date +%s%N)
    out=$(v --json tpm start vm1 --socket "$sock")
    wall=$(( ($(date +%s%N) - t0) / 1000 ))
    echo "$out" | python3 -c 'import json,sys; t=json.load(sys.stdin); v=t.get("via", "cli"); t=t["timings"]; t["wall_ms"]=int(sys.argv[1])/1000; t["via"]=v; print(json.dumps(t))' "$wall" >>"$2"
    v tpm stop vm1 >/dev/null
  done
}
# table FILE TITLE: the medians of FILE's starts.
table() {
  python3 - "$1" "$n" "$2" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
parts = ["wall_ms", "total_ms", "unwrap_ms", "unseal_ms", "roll_ms", "swtpm_start_ms", "commit_ms"]
names = {"wall_ms": "whole command (wall)", "total_ms": "start, as timed inside", "unwrap_ms": "unwrap key protector",
         "unseal_ms": "unseal state key", "roll_ms": "roll key protector", "swtpm_start_ms": "start swtpm",
         "commit_ms": "commit"}
vias = sorted({r["via"] for r in runs})
print(f"{sys.argv[3]} (started by: {', '.join(vias)}):\n")
print(f"| part | median of {sys.argv[2]} warm starts | min | max |\n|---|---|---|---|")
for p in parts:
    xs = [r[p] for r in runs]
    print(f"| {names[p]} | {statistics.median(xs):.1f} ms | {min(xs):.1f} ms | {max(xs):.1f} ms |")
print()
PY
}
starts "$n" "$data/runs"
table "$data/runs" "The CLI alone" | tee -a "$data/table"
# The same with `vmsec serve` running on the data directory: the CLI asks it to start the
# vTPM (its random generator is seeded already).
start_vmsec "$data"
starts "$n" "$data/runs-serve"
kill "$VMSEC_PID"; wait "$VMSEC_PID" 2>/dev/null || true
table "$data/runs-serve" "With vmsec serve running" | tee -a "$data/table"
python3 - "$first" <<'PY' | tee -a "$data/table"
import json, sys
t = json.loads(sys.argv[1])["timings"]
print(f"First start (manufacture with swtpm_setup included): {t['total_ms']:.0f} ms, of which manufacture {t['manufacture_ms']:.0f} ms.")
PY
python3 "$ROOT/bench/publish.py" tpm "bench/tpm.sh $n" <"$data/table"
