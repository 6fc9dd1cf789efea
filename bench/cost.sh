#!/usr/bin/env bash
# What one request costs each server, beside bench/wsman.sh's throughput: CPU time (user and
# system), context switches and syscalls per request, for vmsec and for nginx serving the
# same reply to the same wrk script. `perf stat` counts over each server's threads while wrk
# runs; per request = count / requests wrk completed.
# Usage: bench/cost.sh [REPLY] [CONNECTIONS] [SECONDS] [ROUNDS]  (default getkp 1 5 3; REPLY
# is a file of bench/requests/). Rounds alternate vmsec and nginx; VMSEC_BIN as in lib.sh.
source "$(dirname "$0")/lib.sh"
name=${1:-getkp}; c=${2:-1}; secs=${3:-5}; rounds=${4:-3}
need wrk wrk; need nginx nginx-light; need curl curl; need perf linux-perf
build
against_nginx
body=$(request "$name" "$data")
mirror_reply "$body" "$data"
warm_up "$body"
sleep 0.3
nginx_workers=$(pgrep -P "$(cat "$data/nginx.pid")" | paste -sd,)
# utime and stime (clock ticks) summed over a process's threads.
ticks() { for p in ${1//,/ }; do awk '{print $14, $15}' "/proc/$p/stat"; done | awk '{u+=$1; s+=$2} END {print u, s}'; }
hz=$(getconf CLK_TCK)
echo "$name at $c connections, $secs s per run"
printf '| server | req/s | p50 / p99 ms | CPU µs per request (user + system) | context switches | syscalls |\n|---|---|---|---|---|---|\n'
for _ in $(seq "$rounds"); do
  for who in vmsec nginx; do
    if [ $who = vmsec ]; then url="https://$VMSEC_HTTPS/wsman"; pids=$VMSEC_PID; else url="https://127.0.0.1:$NGINX_PORT/wsman"; pids=$nginx_workers; fi
    perf stat -x, -e context-switches,raw_syscalls:sys_enter -p "$pids" -o "$data/perf" -- sleep $((secs + 1)) &
    sp=$!
    read -r u0 s0 < <(ticks "$pids")
    read -r rps p50 p99 _ _ < <(wrk_run "$url" "$body" "$c" "$secs")
    read -r u1 s1 < <(ticks "$pids")
    wait $sp
    python3 - "$who" "$rps" "$secs" "$p50" "$p99" "$data/perf" "$((u1 - u0))" "$((s1 - s0))" "$hz" <<'PY'
import sys
who, rps, secs, p50, p99, f, u, s, hz = sys.argv[1:]
n = float(rps) * int(secs)
counts = {}
for line in open(f):
    p = line.strip().split(',')
    if len(p) > 2 and p[0].replace('.', '', 1).isdigit():
        counts[p[2].split(':')[-1]] = float(p[0])
us = lambda t: int(t) / int(hz) * 1e6 / n
print(f"| {who} | {float(rps):.0f} | {p50} / {p99} | {us(u) + us(s):.0f} ({us(u):.0f} + {us(s):.0f}) "
      f"| {counts.get('context-switches', 0) / n:.2f} | {counts.get('sys_enter', 0) / n:.1f} |")
PY
  done
done
