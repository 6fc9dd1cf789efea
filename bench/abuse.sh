#!/usr/bin/env bash
# What hostile clients cost a running server (issue 11's defects 4-6), each figure beside its
# baseline in the same run: login timing of known and unknown users, password checks made by
# 200 concurrent wrong passwords, an admin's Get during an idle-connection flood from another
# address, and resident memory while 100 bodies of 4 MiB are withheld. See bench/abuse.py.
# Usage: bench/abuse.sh [--no-publish]
source "$(dirname "$0")/lib.sh"
build
data=$(mktemp -d)
trap 'kill "$VMSEC_PID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT
ulimit -n 8192
start_vmsec "$data" --http-listen 127.0.0.1:0   # first start: creates the admin
"$BIN" --data "$data" vm add web1 --id "$VM" >/dev/null
echo 'an operator password' | "$BIN" --data "$data" user add ops --role operator --password-stdin >/dev/null
python3 "$ROOT/bench/abuse.py" "$VMSEC_HTTP" "$BENCH_AUTH" "$VMSEC_PID" | tee "$data/table"
[ "${1:-}" = --no-publish ] || python3 "$ROOT/bench/publish.py" abuse "bench/abuse.sh" <"$data/table"
