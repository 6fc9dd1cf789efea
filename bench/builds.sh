#!/usr/bin/env bash
# Several builds of vmsec against nginx in one run: the before-and-after figure of a change.
#
# Each build serves its own data directory (the VM holding the golden key protector, as in
# bench/wsman.sh); nginx serves the first build's reply as a static file. Every server gets
# SLICES slices of SLICE_SECONDS each, taken in turn (nginx, build 1, build 2, …, then the other
# way round), so that a change in this shared machine's load falls on all of them alike: two
# runs of one build taken a minute apart differed by a quarter. Prints each server's req/s,
# its ratio to nginx's, and p50/p99 (ms) pooled over its slices (bench/slices.py).
# Usage: bench/builds.sh BIN... (env REPLY=get-ssd, CONNECTIONS=16, SLICE_SECONDS=2, SLICES=8)
source "$(dirname "$0")/lib.sh"
[ $# -gt 0 ] || { echo "usage: bench/builds.sh BIN..." >&2; exit 2; }
name=${REPLY:-get-ssd}; c=${CONNECTIONS:-16}; each=${SLICE_SECONDS:-2}; slices=${SLICES:-8}
need wrk wrk; need nginx nginx-light; need curl curl
data=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; stop_nginx "$data"; rm -rf "$data"' EXIT
labels=(nginx) urls=() auths=()
for i in $(seq $#); do
  BIN=$(realpath "${!i}")
  d=$data/build$i
  mkdir -p "$d"
  serve_golden "$d"
  pids+=("$VMSEC_PID")
  labels+=("$i: ${!i}") urls+=("https://$VMSEC_HTTPS/wsman") auths+=("$BENCH_AUTH")
  [ "$i" = 1 ] && first_https=$VMSEC_HTTPS first_auth=$BENCH_AUTH
done
cp -r "$data/build1/tls" "$data/tls"  # nginx presents the first build's certificate
start_nginx "$data"
urls=("https://127.0.0.1:$NGINX_PORT/wsman" "${urls[@]}") auths=("$first_auth" "${auths[@]}")
body=$(request "$name" "$data")
VMSEC_HTTPS=$first_https BENCH_AUTH=$first_auth mirror_reply "$body" "$data"
for j in "${!urls[@]}"; do
  BENCH_AUTH=${auths[$j]} wrk_run "${urls[$j]}" "$body" 16 "${WARMUP:-3}" >/dev/null
done
order=("${!urls[@]}")
for k in $(seq "$slices"); do
  for j in "${order[@]}"; do
    BENCH_AUTH=${auths[$j]} BENCH_QUANTILES=$data/q$j.$k wrk_run "${urls[$j]}" "$body" "$c" "$each" >/dev/null
  done
  mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
done
echo "$name at $c connections, $slices slices of $each s per server"
for j in "${!urls[@]}"; do
  # shellcheck disable=SC2046  # mktemp paths hold no spaces
  echo "$(python3 "$ROOT/bench/slices.py" $(ls "$data"/q"$j".*)) ${labels[$j]}"
done | awk 'NR==1{n=$1} {l=$6; for(i=7;i<=NF;i++) l=l" "$i; printf "%-40s %8.0f req/s  ratio %.3f  p50 %s  p99 %s ms\n", l, $1, $1/n, $2, $3}'
