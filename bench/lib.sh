# Shared by the bench/ scripts: build once, start a release `vmsec serve`, read its address.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# VMSEC_BIN runs another build (a saved baseline) with the same script, back to back.
BIN=${VMSEC_BIN:-$ROOT/target/release/vmsec}
VM=B5314955-3924-42BA-ABF9-793993D340A0
GOLDEN_KP=$ROOT/crates/vmsec-kp/testdata/golden-kp.xml
export BENCH_LUA=$ROOT/bench  # where the wrk scripts find common.lua

need() { command -v "$1" >/dev/null || { echo "$1 is not installed: run bench/setup (apt package $2)" >&2; exit 1; }; }

build() { [ -n "${VMSEC_BIN:-}" ] || cargo build --release --locked -q -p vmsec; }

# start_vmsec DATA [serve args...]: starts the server in the background on free loopback ports;
# sets VMSEC_PID, VMSEC_HTTPS (host:port), VMSEC_HTTP (host:port or empty), BENCH_AUTH.
start_vmsec() {
  local data=$1; shift
  VMSEC_LOG=${VMSEC_LOG:-warn} "$BIN" --data "$data" serve --listen 127.0.0.1:0 "$@" >"$data/addr" 2>>"$data/serve.log" &
  VMSEC_PID=$!
  for _ in $(seq 600); do [ -s "$data/addr" ] && break; sleep 0.05; done
  [ -s "$data/addr" ] || { echo "vmsec serve did not start:" >&2; cat "$data/serve.log" >&2; exit 1; }
  VMSEC_HTTPS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["https"][0])' "$data/addr")
  VMSEC_HTTP=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1])).get("http") or [""]; print(a[0])' "$data/addr")
  BENCH_AUTH=$(printf 'admin:%s' "$(cat "$data/initial-admin-password")" | base64 -w0)
  export BENCH_AUTH
}

# request NAME DATA: the request body bench/requests/NAME.xml for $VM, written into DATA.
request() { sed "s/{{VM}}/$VM/g" "$ROOT/bench/requests/$1.xml" >"$2/$1.xml"; echo "$2/$1.xml"; }

# rss_kib PID: resident memory of a process.
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# wrk_run URL BODY CONNECTIONS SECONDS: prints "rps p50 p99 p999 errors".
wrk_run() {
  local t=$(( $3 < 2 ? 1 : 2 ))
  BENCH_BODY=$2 wrk -t"$t" -c"$3" -d"${4}s" --timeout 10s --latency -s "$ROOT/bench/post.lua" "$1" \
    | awk '/^RESULT/{for(i=2;i<=NF;i++){split($i,kv,"="); printf "%s ", kv[2]}; print ""}'
}

# interleaved URL_A URL_B BODY CONNECTIONS SECONDS SLICES: SECONDS of load on each URL, in
# SLICES runs of SECONDS/SLICES each, in the order A B B A A B ..., so that a change in this
# shared machine's load falls on both alike. Prints "rps p50 p99 p999 errors" for A, then
# for B: requests over time summed, latencies from the slices' pooled quantiles
# (bench/slices.py).
interleaved() {
  local a=$1 b=$2 body=$3 c=$4 slices=$6 k q url dir
  local each=$(( $5 / slices ))
  local -A runs=()
  dir=$(mktemp -d)
  for k in $(seq "$slices"); do
    for q in $( ((k % 2)) && echo "a b" || echo "b a"); do
      url=$a; [ "$q" = b ] && url=$b
      BENCH_QUANTILES=$dir/$q$k wrk_run "$url" "$body" "$c" "$each" >/dev/null
      runs[$q]+=" $dir/$q$k"
    done
  done
  # shellcheck disable=SC2086  # lists of mktemp paths, which hold no spaces
  python3 "$ROOT/bench/slices.py" ${runs[a]}
  # shellcheck disable=SC2086
  python3 "$ROOT/bench/slices.py" ${runs[b]}
  rm -rf "$dir"
}

# warm_up BODY: WARMUP seconds (default 3) of BODY at 16 connections on vmsec, then on
# nginx, not counted: a fresh vmsec's first seconds carry one-off costs (a thread's first
# random bytes seed aws-lc's jitter entropy, ~35 ms; the allocator's memory is touched for
# the first time) that made a first 10 s run's p99.9 three times the next runs'.
warm_up() {
  wrk_run "https://$VMSEC_HTTPS/wsman" "$1" 16 "${WARMUP:-3}" >/dev/null
  wrk_run "https://127.0.0.1:$NGINX_PORT/wsman" "$1" 16 "${WARMUP:-3}" >/dev/null
}

# start_nginx DATA: nginx serving DATA/www over HTTPS on a free loopback port with vmsec's
# certificate (DATA/tls), 2 workers (one per core), keep-alive without limit, no access
# log; sets NGINX_PORT. POST to a static file is 405 in nginx; `error_page 405 =200 $uri`
# serves the file instead.
start_nginx() {
  local data=$1
  NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$data/www"
  chmod 711 "$data"  # nginx workers run as www-data: they may traverse, not list
  cat >"$data/nginx.conf" <<CONF
worker_processes 2;
pid $data/nginx.pid;
error_log $data/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $data/nginx-body;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  default_type application/soap+xml;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $data/tls/cert.pem;
    ssl_certificate_key $data/tls/key.pem;
    ssl_protocols TLSv1.3;
    root $data/www;
    location / { error_page 405 =200 \$uri; }
  }
}
CONF
  nginx -c "$data/nginx.conf" -p "$data"
}

stop_nginx() { [ -f "$1/nginx.pid" ] && kill "$(cat "$1/nginx.pid")" 2>/dev/null || true; }

# mirror_reply BODY DATA: what vmsec answers BODY with, as the file nginx serves.
mirror_reply() {
  curl -sSk --fail -H "Authorization: Basic $BENCH_AUTH" -H 'Content-Type: application/soap+xml;charset=UTF-8' \
    --data-binary @"$1" "https://$VMSEC_HTTPS/wsman" -o "$2/www/wsman"
  chmod 644 "$2/www/wsman"
}

# against_nginx: a data directory ($data, removed on exit) whose VM holds the golden key
# protector, a release `vmsec serve` on it (start_vmsec) and nginx beside it (start_nginx).
against_nginx() {
  data=$(mktemp -d)
  trap 'kill "$VMSEC_PID" 2>/dev/null || true; stop_nginx "$data"; rm -rf "$data"' EXIT
  serve_golden "$data"
  start_nginx "$data"
}

# serve_golden DATA: DATA's VM holds the golden key protector, and `$BIN serve` runs on it
# (start_vmsec).
serve_golden() {
  "$BIN" --data "$1" vm add bench --id "$VM" >/dev/null
  "$BIN" --data "$1" vm kp set bench "$GOLDEN_KP" >/dev/null
  # Every wrk connection comes from 127.0.0.1. At 64 of them, a run that began while the
  # server was still noticing the last run's closes met the per-source limit (default 64)
  # and wrk counted a connect error; the limit is the test suite's to check, not the bench's.
  printf 'max_connections_per_source = 256\n' >"$1/bench.toml"
  start_vmsec "$1" --config "$1/bench.toml"
}
