#!/usr/bin/env bash
# GetKeyProtector throughput and latency over HTTPS keep-alive, measured with wrk against a
# release `vmsec serve` on loopback whose VM holds a 13 KB key protector (owner + 2
# guardians): the reply is ~470 KB of XML. Usage: bench/getkp.sh [SECONDS]
# Prints one line per concurrency. Figures go into BENCHMARKS.md by hand, with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p vmsec
bin=target/release/vmsec
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
vm=B5314955-3924-42BA-ABF9-793993D340A0
$bin --data "$data" vm add bench --id "$vm" >/dev/null
$bin --data "$data" vm kp set bench crates/vmsec-kp/testdata/golden-kp.xml >/dev/null
VMSEC_LOG=warn $bin --data "$data" serve --listen 127.0.0.1:0 > "$data/addr" 2>"$data/log" &
pid=$!
for _ in $(seq 50); do [ -s "$data/addr" ] && break; sleep 0.1; done
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["https"][0])' "$data/addr")
auth=$(printf 'admin:%s' "$(cat "$data/initial-admin-password")" | base64 -w0)
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%FT%TZ)"
for c in 1 16 64; do
  t=$(( c < 2 ? 1 : 2 ))
  printf 'connections=%-3s ' "$c"
  VMSEC_AUTH=$auth VMSEC_VM=$vm wrk -t"$t" -c"$c" -d"${secs}s" --latency -s bench/getkp.lua "https://$addr/wsman" | grep '^RESULT' | sed 's/^RESULT //'
done
