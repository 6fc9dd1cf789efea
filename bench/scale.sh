#!/usr/bin/env bash
# Scale: the same service with 1,000 and with 100,000 VMs in its store, each VM holding the
# 13,887-byte golden key protector (1.4 GB of key protectors at 100,000), filled through the
# service by the `fill` example (add_vm + SetKeyProtector jobs).
# Per size: `vmsec serve` start-up time (process start until it accepts requests, median of
# 3 starts), resident memory after start-up and after the load, and GetKeyProtector over
# HTTPS for a random VM per request (wrk, 1 and 16 connections) after a warm-up (the store
# file read through the page cache once, 5 s of load): the steady state of a host, not a
# cold disk.
# Usage: bench/scale.sh [SECONDS] [SIZES...]   (default 10 s per run; sizes 1000 100000)
# Filled stores are kept under target/bench-scale/ and reused (delete it to refill).
# BENCH_STORE=postgres: the same on PostgreSQL, one database per size on a private cluster
# (scripts/pg) kept under target/bench-scale-pg/ with the data directories.
source "$(dirname "$0")/lib.sh"
secs=${1:-10}; shift || true
sizes=("${@:-1000 100000}"); read -r -a sizes <<<"${sizes[*]}"
need wrk wrk
build
cargo build --release --locked -q -p vmsec-service --example fill
root=$ROOT/target/bench-scale
section=scale
pg=""
if [ "${BENCH_STORE:-sqlite}" = postgres ]; then
  need psql postgresql-client
  root=$ROOT/target/bench-scale-pg
  section=scale-pg
  mkdir -p "$root"
  pg=$(scripts/pg start "$root/cluster")
fi
mkdir -p "$root"
out=$(mktemp)
trap 'kill "${VMSEC_PID:-}" 2>/dev/null || true; rm -f "$out"; [ -z "$pg" ] || scripts/pg stop "$root/cluster" --keep' EXIT

printf '| VMs | fill rate | start-up (median of 3) | RSS after start | RSS after load | GetKP 1 conn p50 / p99 ms | req/s | GetKP 16 conn p50 / p99 ms | req/s | errors |\n|---|---|---|---|---|---|---|---|---|---|\n' >"$out"
declare -A P50 P99
for n in "${sizes[@]}"; do
  data=$root/$n
  if [ -n "$pg" ]; then
    psql "$pg" -X -q -A -t -c "SELECT 1 FROM pg_database WHERE datname = 'vmsec_scale_$n'" | grep -q 1 \
      || { rm -rf "$data"; psql "$pg" -X -q -c "CREATE DATABASE vmsec_scale_$n"; }
    export VMSEC_STORE=${pg%/*}/vmsec_scale_$n
  fi
  fill="(reused)"
  if [ ! -s "$data/filled" ] && [ -n "$pg" ]; then
    # Through the service (add_vm + a SetKeyProtector job per VM) PostgreSQL fills at ~90
    # VMs/s here, each job several transactions with a commit each: 100,000 would take 20
    # minutes. So the rows such a job leaves (the VM, its key protector, its provenance) are
    # inserted with SQL, into the schema the service made (the fill example with 0 VMs).
    rm -rf "$data"; mkdir -p "$data"
    install -m 0644 "$GOLDEN_KP" "$root/cluster/golden-kp.xml"
    t0=$(date +%s%N)
    psql "$VMSEC_STORE" -X -q -v ON_ERROR_STOP=1 -c "SELECT 1 FROM vms LIMIT 0" >/dev/null 2>&1 \
      || VMSEC_STORE=$VMSEC_STORE "$ROOT/target/release/examples/fill" "$data" 0 "$GOLDEN_KP" >/dev/null
    psql "$VMSEC_STORE" -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO vms (guid, name, created, key_protector, kp_set_by, kp_set)
      SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'vm-' || i, now(),
             pg_read_binary_file('$root/cluster/golden-kp.xml'), 'fill', now()
      FROM generate_series(0, $n - 1) AS i"
    fill="$(( n * 1000000000 / ($(date +%s%N) - t0) ))/s (SQL)"
    echo "$fill" >"$data/filled"
  elif [ ! -s "$data/filled" ]; then
    rm -rf "$data"
    fill=$("$ROOT/target/release/examples/fill" "$data" "$n" "$GOLDEN_KP" | sed -n 's/.*(\([0-9]*\/s\)).*/\1/p')
    echo "$fill" >"$data/filled"
  else
    fill="$(cat "$data/filled") (earlier fill)"
  fi
  # Start-up: until the address line is printed, i.e. the listener accepts.
  starts=()
  for _ in 1 2 3; do
    rm -f "$data/addr"
    t0=$(date +%s%N)
    VMSEC_LOG=warn "$BIN" --data "$data" serve --listen 127.0.0.1:0 >"$data/addr" 2>>"$data/serve.log" &
    pid=$!
    until [ -s "$data/addr" ]; do sleep 0.005; kill -0 "$pid" || exit 1; done
    starts+=($(( ($(date +%s%N) - t0) / 1000000 )))
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
  startup=$(printf '%s\n' "${starts[@]}" | sort -n | sed -n 2p)
  start_vmsec "$data"
  sleep 1
  rss0=$(( $(rss_kib "$VMSEC_PID") / 1024 ))
  body=$ROOT/bench/requests/getkp.xml
  # Steady state, not a cold disk: the store file through the page cache once, then 5 s of
  # the same load unmeasured.
  if [ -n "$pg" ]; then
    psql "$VMSEC_STORE" -X -q -A -t -c "SELECT sum(length(key_protector)) FROM vms" >/dev/null
  else
    cat "$data/vmsec.db" >/dev/null
  fi
  BENCH_VMS=$n BENCH_BODY=$body wrk -t2 -c16 -d5s --timeout 10s -s "$ROOT/bench/random-vm.lua" "https://$VMSEC_HTTPS/wsman" >/dev/null
  read -r r1 a50 a99 _ e1 < <(BENCH_VMS=$n BENCH_BODY=$body wrk -t1 -c1 -d"${secs}s" --timeout 10s --latency -s "$ROOT/bench/random-vm.lua" "https://$VMSEC_HTTPS/wsman" | awk '/^RESULT/{for(i=2;i<=NF;i++){split($i,kv,"="); printf "%s ", kv[2]}; print ""}')
  read -r r16 b50 b99 _ e16 < <(BENCH_VMS=$n BENCH_BODY=$body wrk -t2 -c16 -d"${secs}s" --timeout 10s --latency -s "$ROOT/bench/random-vm.lua" "https://$VMSEC_HTTPS/wsman" | awk '/^RESULT/{for(i=2;i<=NF;i++){split($i,kv,"="); printf "%s ", kv[2]}; print ""}')
  rss1=$(( $(rss_kib "$VMSEC_PID") / 1024 ))
  kill "$VMSEC_PID"; wait "$VMSEC_PID" 2>/dev/null || true
  P50[$n]=$a50; P99[$n]=$a99
  printf '| %s | %s | %s ms | %s MiB | %s MiB | %s / %s | %s | %s / %s | %s | %s |\n' \
    "$n" "$fill" "$startup" "$rss0" "$rss1" "$a50" "$a99" "$r1" "$b50" "$b99" "$r16" "$((e1 + e16))" | tee -a "$out"
done
if [ "${#sizes[@]}" -ge 2 ]; then
  small=${sizes[0]}; large=${sizes[-1]}
  python3 -c 'import sys; a,b,c,d=map(float,sys.argv[1:5]); print(f"\nGetKeyProtector latency ratio {sys.argv[6]} / {sys.argv[5]} VMs (1 connection; target ≤ 1.5): p50 {c/a:.2f}, p99 {d/b:.2f}")' \
    "${P50[$small]}" "${P99[$small]}" "${P50[$large]}" "${P99[$large]}" "$small" "$large" | tee -a "$out"
fi
python3 "$ROOT/bench/publish.py" "$section" "${BENCH_STORE:+BENCH_STORE=$BENCH_STORE }bench/scale.sh $secs ${sizes[*]}" <"$out"
