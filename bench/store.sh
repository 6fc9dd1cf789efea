#!/usr/bin/env bash
# The store under the service: SQLite against PostgreSQL, and several servers on one database.
#
# Per backend, a release `vmsec serve` over HTTPS with 16 VMs holding the 13,887-byte golden
# key protector (the `fill` example): GetKeyProtector of a random VM (wrk, bench/random-vm.lua)
# and SetKeyProtector jobs (bench/jobs.py: invoke, poll the job to Completed), at 1 and 16
# connections. Then 1, 2 and 3 servers (hosts of their own) on one PostgreSQL database, the
# same 16 connections split among them. PostgreSQL is a private cluster (scripts/pg) on this
# machine, with pg_stat_statements: the database time per request is its executor time summed
# over the run, divided by the requests served.
# Usage: bench/store.sh [SECONDS]   (default 10 per run)
source "$(dirname "$0")/lib.sh"
secs=${1:-10}
need wrk wrk; need psql postgresql-client
build
cargo build --release --locked -q -p vmsec-service --example fill
root=$(mktemp -d)
chmod 711 "$root"  # the cluster's unprivileged owner must reach $root/pg
pgdir=$root/pg
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; scripts/pg stop "$pgdir"; rm -rf "$root"; }
trap cleanup EXIT
pg=$(VMSEC_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements" scripts/pg start "$pgdir")
psql "$pg" -X -q -c "CREATE DATABASE vmsec_bench" -c "CREATE EXTENSION pg_stat_statements"
url=${pg%/*}/vmsec_bench
vms=(); for i in $(seq 0 15); do vms+=("$(printf '00000000-0000-4000-8000-%012d' "$i")"); done
getkp=$ROOT/bench/requests/getkp.xml

# serve_on NAME [STORE_URL]: a server of host NAME; sets ADDR (host:port) and appends its pid.
serve_on() {
  local data=$root/$1
  mkdir -p "$data"
  env ${2:+VMSEC_STORE=$2} VMSEC_HOST_NAME="$1" VMSEC_LOG=warn "$BIN" --data "$data" serve --listen 127.0.0.1:0 >"$data/addr" 2>>"$data/serve.log" &
  pids+=($!)
  for _ in $(seq 600); do [ -s "$data/addr" ] && break; sleep 0.05; done
  ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["https"][0])' "$data/addr")
}
result() { awk '/^RESULT/{for(i=2;i<=NF;i++){split($i,kv,"="); printf "%s ", kv[2]}; print ""}'; }
db_ms() { psql "$pg" -X -A -t -c "SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'vmsec_bench'"; }
db_reset() { psql "$pg" -X -q -A -t -c "SELECT pg_stat_statements_reset()" >/dev/null; }

out=$root/table
printf '| store | connections | GetKP req/s | GetKP p50 / p99 ms | SetKP jobs/s | SetKP p50 / p99 ms | DB ms per GetKP / SetKP | errors |\n|---|---|---|---|---|---|---|---|\n' >"$out"
# Both servers run side by side and every measurement is taken on one, then at once on the
# other: load from elsewhere on the machine falls on both alike.
"$ROOT/target/release/examples/fill" "$root/sqlite" 16 "$GOLDEN_KP" >/dev/null
VMSEC_STORE=$url "$ROOT/target/release/examples/fill" "$root/fill" 16 "$GOLDEN_KP" >/dev/null
declare -A ADDR_OF AUTH_OF R
serve_on sqlite; ADDR_OF[sqlite]=$ADDR
AUTH_OF[sqlite]=$(printf 'admin:%s' "$(cat "$root/sqlite/initial-admin-password")" | base64 -w0)
serve_on host-1 "$url"; ADDR_OF[postgres]=$ADDR
AUTH_OF[postgres]=$(printf 'admin:%s' "$(cat "$root/host-1/initial-admin-password")" | base64 -w0)
first_pg_pid=${pids[-1]}
for c in 1 16; do
  t=$(( c < 2 ? 1 : 2 ))
  for store in sqlite postgres; do
    export BENCH_AUTH=${AUTH_OF[$store]}
    db_reset
    read -r gr g50 g99 _ ge < <(BENCH_VMS=16 BENCH_BODY=$getkp wrk -t"$t" -c"$c" -d"${secs}s" --timeout 10s --latency -s "$ROOT/bench/random-vm.lua" "https://${ADDR_OF[$store]}/wsman" | result)
    gdb=$(db_ms)
    db_reset
    read -r sj s50 s99 sn se < <(python3 "$ROOT/bench/jobs.py" "${ADDR_OF[$store]}" "$BENCH_AUTH" "$GOLDEN_KP" "$secs" "$c" "${vms[@]^^}" | result)
    sdb=$(db_ms)
    per=$( [ "$store" = postgres ] && python3 -c 'import sys; g,gr,s,sn,secs=map(float,sys.argv[1:6]); print(f"{g/max(gr*secs,1):.2f} / {s/max(sn,1):.2f}")' "$gdb" "$gr" "$sdb" "$sn" "$secs" || echo "—")
    R[$store-$c]="$gr $g99 $sj $s99"
    printf '| %s | %s | %s | %s / %s | %s | %s / %s | %s | %s |\n' "$store" "$c" "$gr" "$g50" "$g99" "$sj" "$s50" "$s99" "$per" "$((ge + se))" | tee -a "$out"
  done
done
python3 - "${R[sqlite-1]}" "${R[postgres-1]}" "${R[sqlite-16]}" "${R[postgres-16]}" <<'PY' | tee -a "$out"
import sys
rows = [list(map(float, a.split())) for a in sys.argv[1:5]]
print()
for c, (s, p) in (("1", rows[0:2]), ("16", rows[2:4])):
    print(f"PostgreSQL / SQLite at {c} connection(s) (targets: throughput ≥ 0.5, p99 ≤ 3): "
          f"GetKP {p[0]/s[0]:.2f} (p99 {p[1]/s[1]:.2f}), SetKP {p[2]/s[2]:.2f} (p99 {p[3]/s[3]:.2f})")
PY
kill "${pids[0]}" 2>/dev/null || true
pids=("$first_pg_pid")
export BENCH_AUTH=${AUTH_OF[postgres]}

# Several servers on one database: the 16 connections (and 16 job clients) split among them.
printf '\n| servers on one PostgreSQL | GetKP req/s (sum) | SetKP jobs/s (sum) | DB ms per GetKP / SetKP |\n|---|---|---|---|\n' >>"$out"
addrs=("${ADDR_OF[postgres]}")
for n in 1 2 3; do
  while [ "${#addrs[@]}" -lt "$n" ]; do serve_on "host-$(( ${#addrs[@]} + 1 ))" "$url"; addrs+=("$ADDR"); done
  each=$(( 16 / n ))
  db_reset
  tmp=$root/multi; rm -f "$tmp".*
  load=()
  for i in $(seq 0 $((n - 1))); do
    BENCH_VMS=16 BENCH_BODY=$getkp wrk -t1 -c"$each" -d"${secs}s" --timeout 10s --latency -s "$ROOT/bench/random-vm.lua" "https://${addrs[$i]}/wsman" | result >"$tmp.g$i" &
    load+=($!)
  done
  for j in "${load[@]}"; do wait "$j" || true; done
  gsum=$(cat "$tmp".g* | awk '{s+=$1} END {print s}')
  gdb=$(db_ms)
  db_reset
  load=()
  for i in $(seq 0 $((n - 1))); do
    python3 "$ROOT/bench/jobs.py" "${addrs[$i]}" "$BENCH_AUTH" "$GOLDEN_KP" "$secs" "$each" "${vms[@]:$((i * each)):$each}" | result >"$tmp.s$i" &
    load+=($!)
  done
  for j in "${load[@]}"; do wait "$j" || true; done
  ssum=$(cat "$tmp".s* | awk '{s+=$1} END {print s}')
  sn=$(cat "$tmp".s* | awk '{s+=$4} END {print s}')
  sdb=$(db_ms)
  per=$(python3 -c 'import sys; g,gr,s,sn,secs=map(float,sys.argv[1:6]); print(f"{g/max(gr*secs,1):.2f} / {s/max(sn,1):.2f}")' "$gdb" "$gsum" "$sdb" "$sn" "$secs")
  printf '| %s | %s | %s | %s |\n' "$n" "$gsum" "$ssum" "$per" | tee -a "$out"
done
echo "
On this 2-core machine the servers, PostgreSQL and the load generators share two cores, so more
servers show contention, not scale. The database time per request above is what one more core's
worth of servers would add to the database's load: with it, PostgreSQL's throughput ceiling per
core is about 1000 / (DB ms per request) requests per second." >>"$out"
python3 "$ROOT/bench/publish.py" store "bench/store.sh $secs" <"$out"
