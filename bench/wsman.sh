#!/usr/bin/env bash
# WS-Man throughput and latency against the ceiling of an HTTPS exchange on this machine.
#
# A release `vmsec serve` (HTTPS, loopback) answers GetKeyProtector for a VM holding the
# 13,887-byte golden key protector (~470 KB reply) and Get of its Msvm_SecuritySettingData
# (~2 KB reply). nginx (Debian) serves each reply, byte for byte, as a static file over HTTPS
# on loopback with the same certificate, to the same wrk script (POST with the same body and
# Authorization header). Each pair runs at 1, 16 and 64 keep-alive connections.
# Before the runs of each reply, both servers are warmed up (`warm_up` in lib.sh).
# Each server's SECONDS at a concurrency are taken in SLICES (default 5) runs, alternating
# with the other's (A B B A A B ...): on this shared machine the load of other tenants moves
# by a quarter within a minute, and a ratio of two runs taken 10 s apart measured it as much
# as the servers (five back-to-back runs of one build: 0.60-0.86 at one point). At one
# connection the slices are 1 s: a request takes ~0.4 ms there, so p99 is the share of
# time the machine stalled the pair, and stalls of 50-100 ms that fell in one server's 2 s
# slice moved the p99 ratio of one build from 1.0 to 3.0 (issue 17, fifth step). At 16 and
# 64 connections a 1 s slice would count the connections' TLS handshakes in its time.
# Usage: bench/wsman.sh [SECONDS]  (default 10 per server and concurrency)
source "$(dirname "$0")/lib.sh"
secs=${1:-10}
slices=${SLICES:-5}
need wrk wrk; need nginx nginx-light; need curl curl
build
against_nginx
port=$NGINX_PORT

printf '| reply | connections | vmsec req/s | nginx req/s | ratio (≥ 0.9 getkp, ≥ 0.8 get-ssd) | vmsec p50 / p99 / p99.9 ms | nginx p50 / p99 / p99.9 ms | p99 ratio (≤ 1.5) | errors vmsec / nginx |\n' >"$data/table"
printf '|---|---|---|---|---|---|---|---|---|\n' >>"$data/table"
for name in getkp get-ssd; do
  body=$(request "$name" "$data")
  mirror_reply "$body" "$data"  # nginx serves exactly what vmsec answers
  size=$(stat -c %s "$data/www/wsman")
  warm_up "$body"
  for c in 1 16 64; do
    n=$slices; [ "$c" = 1 ] && n=${SLICES:-$secs}
    { read -r vr v50 v99 v999 ve; read -r nr n50 n99 n999 ne; } < <(interleaved \
      "https://$VMSEC_HTTPS/wsman" "https://127.0.0.1:$port/wsman" "$body" "$c" "$secs" "$n")
    row=$(python3 -c 'import sys; vr,nr,v99,n99=map(float,sys.argv[1:5]); print(f"{vr/nr:.2f} | {v99/n99:.2f}")' "$vr" "$nr" "$v99" "$n99")
    rr=${row%% |*}; pr=${row##*| }
    printf '| %s (%s bytes) | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s | %s | %s / %s |\n' \
      "$name" "$size" "$c" "$vr" "$nr" "$rr" "$v50" "$v99" "$v999" "$n50" "$n99" "$n999" "$pr" "$ve" "$ne" | tee -a "$data/table"
  done
done
echo "vmsec resident memory after the runs: $(( $(rss_kib "$VMSEC_PID") / 1024 )) MiB" | tee -a "$data/table"
python3 "$ROOT/bench/publish.py" wsman "bench/wsman.sh $secs" <"$data/table"
