#!/usr/bin/env bash
# Enumerations of 100,000 VMs through WS-Management (bench/enumerate.py): Msvm_SecuritySettingData
# pulled to the end by 1 and by 4 clients at once (100 instances per Pull), and the first 2,000
# Msvm_TPMSettingData (each carries its key protector as uint8 elements, ~470 KB of XML; 10 per
# Pull). Reports time, instances/s and the server's resident memory before and at its peak.
# Uses the store bench/scale.sh filled (target/bench-scale/SIZE; run bench/scale.sh first).
# Usage: bench/enumerate.sh [SIZE]   (default 100000)
source "$(dirname "$0")/lib.sh"
size=${1:-100000}
data=$ROOT/target/bench-scale/$size
[ -s "$data/filled" ] || { echo "no filled store at $data: run bench/scale.sh 10 $size" >&2; exit 1; }
build
cat "$data/vmsec.db" >/dev/null  # the page cache, not the disk: as bench/scale.sh
out=$(mktemp); trap 'kill "${VMSEC_PID:-}" 2>/dev/null || true; rm -f "$out"' EXIT
printf '| class | clients | instances per client | per Pull | time | instances/s | RSS before | RSS peak | faults |\n|---|---|---|---|---|---|---|---|---|\n' >"$out"
run() {  # CLASS CLIENTS PER_PULL LIMIT
  start_vmsec "$data"
  sleep 1
  read -r n secs rate before peak faults < <(python3 "$ROOT/bench/enumerate.py" "$VMSEC_HTTPS" "$BENCH_AUTH" "$VMSEC_PID" "$1" "$2" "$3" "$4" \
    | awk '/^RESULT/{for(i=2;i<=NF;i++){split($i,kv,"="); printf "%s ", kv[2]}; print ""}')
  kill "$VMSEC_PID"; wait "$VMSEC_PID" 2>/dev/null || true
  printf '| %s | %s | %s | %s | %s s | %s | %s MiB | %s MiB | %s |\n' "$1" "$2" "$n" "$3" "$secs" "$rate" "$before" "$peak" "$faults" | tee -a "$out"
}
run Msvm_SecuritySettingData 1 100 "$size"
run Msvm_SecuritySettingData 4 100 "$size"
run Msvm_TPMSettingData 1 10 2000
python3 "$ROOT/bench/publish.py" enumerate "bench/enumerate.sh $size" <"$out"
