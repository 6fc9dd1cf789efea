#!/usr/bin/env bash
# Soak: mixed load (bench/mixed.lua: 45% Get of Msvm_SecuritySettingData, 45% GetKeyProtector,
# 10% SetKeyProtector jobs, on 16 VMs) for MINUTES minutes at half the maximum rate this mix
# reaches here (measured first, 20 s, 16 connections). Held by a pause per connection between
# requests. Reported per minute: requests/s, p50/p99/p99.9, errors, resident memory of vmsec.
# Pass: zero errors, p99 stable, memory growth after the first (warm-up) minute under 10%.
# Usage: bench/soak.sh [MINUTES]   (default 10)
source "$(dirname "$0")/lib.sh"
minutes=${1:-10}
need wrk wrk
build
data=$(mktemp -d)
trap 'kill "${VMSEC_PID:-}" 2>/dev/null || true; rm -rf "$data"' EXIT
n=16
for i in $(seq 0 $((n - 1))); do
  "$BIN" --data "$data" vm add "vm-$i" --id "$(printf '00000000-0000-4000-8000-%012d' "$i")" >/dev/null
  "$BIN" --data "$data" vm kp set "vm-$i" "$GOLDEN_KP" >/dev/null
done
mkdir -p "$data/requests"
cp "$ROOT/bench/requests/getkp.xml" "$ROOT/bench/requests/get-ssd.xml" "$data/requests/"
python3 - "$GOLDEN_KP" >"$data/requests/setkp.xml" <<'PY'
import sys
sys.path.insert(0, "bench")
from jobs import SERVICE, envelope, set_kp_body
print(envelope(SERVICE + "/SetKeyProtector", SERVICE, set_kp_body("{{VM}}", open(sys.argv[1], "rb").read())).decode(), end="")
PY
start_vmsec "$data"
export BENCH_REQUESTS=$data/requests BENCH_VMS=$n
mixed() { # CONNECTIONS SECONDS DELAY_MS
  BENCH_DELAY_MS=$3 wrk -t2 -c"$1" -d"$2s" --timeout 10s --latency -s "$ROOT/bench/mixed.lua" "https://$VMSEC_HTTPS/wsman" \
    | awk '/^RESULT/{for(i=2;i<=NF;i++){split($i,kv,"="); printf "%s ", kv[2]}; print ""}'
}
read -r max p50 _ _ err < <(mixed 16 20 0)
[ "$err" = 0 ] || { echo "errors while measuring the maximum: $err" >&2; exit 1; }
# 16 connections, each pausing so that together they ask for half the maximum:
# per connection one request every 16/(max/2) s, minus the time a request takes.
pause=$(python3 -c 'import sys; m,p=float(sys.argv[1]),float(sys.argv[2]); print(max(1, round(16000/(m/2) - p)))' "$max" "$p50")
out=$data/table
{
  echo "Maximum of the mix: $max req/s (16 connections, 20 s); soak at half: 16 connections, ${pause} ms pause each."
  echo
  echo "| minute | req/s | p50 ms | p99 ms | p99.9 ms | errors | vmsec RSS |"
  echo "|---|---|---|---|---|---|---|"
} >"$out"
rss=()
total_err=0
for m in $(seq "$minutes"); do
  read -r rps a b c e < <(mixed 16 60 "$pause")
  r=$(( $(rss_kib "$VMSEC_PID") / 1024 )); rss+=("$r")
  total_err=$((total_err + e))
  printf '| %s | %s | %s | %s | %s | %s | %s MiB |\n' "$m" "$rps" "$a" "$b" "$c" "$e" "$r" | tee -a "$out"
done
python3 - "$total_err" "${rss[@]}" <<'PY' | tee -a "$out"
import sys
err, rss = int(sys.argv[1]), [int(x) for x in sys.argv[2:]]
base = rss[0]
growth = (max(rss[1:] or rss) - base) / base * 100
print(f"\nErrors: {err}. Resident memory after the warm-up minute {base} MiB, highest later {max(rss)} MiB: "
      f"growth {growth:.1f}% (target < 10%).")
PY
python3 "$ROOT/bench/publish.py" soak "bench/soak.sh $minutes" <"$out"
