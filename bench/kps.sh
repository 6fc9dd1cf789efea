#!/usr/bin/env bash
# The guarded fabric: RollTransportKey requests/s and latency at 1, 16 and 64 connections
# against a release `vmsec kps serve` (wrk over HTTPS, one valid request replayed: the KPS
# keeps no per-roll state), beside the raw aws-lc-rs floor of one roll measured in the same
# run (crates/vmsec-kps/benches/roll.rs: the floor at N connections is min(N, cores) / the
# floor's time, since a roll is CPU-bound). Then health certificates issued per second, and
# `tpm start` in HGS mode next to local mode, with their parts.
# Usage: bench/kps.sh [SECONDS per wrk run, default 10]   (about 3 minutes)
source "$(dirname "$0")/lib.sh"
need wrk wrk
SECS=${1:-10}
export BENCH_AUTH=unused  # common.lua builds SOAP headers the KPS script does not send
PY=${VMSEC_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || { echo "no test venv: run scripts/setup" >&2; exit 1; }
build
cargo build --release --locked -q -p vmsec-kps --benches
work=$(mktemp -d); trap 'kill $KPS_PID 2>/dev/null || true; rm -rf "$work"' EXIT
export VMSEC_KPS_DATA=$work/kps
"$BIN" kps init --key-size 2048 >/dev/null 2>&1
cat >"$work/kps.toml" <<TOML
requests_per_minute_per_host = 100000000
TOML
VMSEC_LOG=warn "$BIN" kps serve --listen 127.0.0.1:0 --config "$work/kps.toml" >"$work/addr" 2>"$work/kps.log" &
KPS_PID=$!
for _ in $(seq 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["https"][0])' "$work/addr")
PORT=${ADDR##*:}
URL=https://localhost:$PORT
CA=$work/kps/tls/cert.pem

# An owner's protector granting the fabric, a registered host key and one valid request.
owner=$work/owner
"$BIN" --data "$owner" guardian import fabric --url "$URL/KeyProtection" --ca "$CA" >/dev/null
"$BIN" --data "$owner" guardian new owner --key-size 2048 >/dev/null
"$BIN" --data "$owner" kp new --owner owner --guardian fabric --out "$work/kp.xml" >/dev/null
"$PY" "$ROOT/tests/python/kps_client.py" keygen "$work/py"
"$BIN" kps host add bench --host-key "$work/py/host-key.pub.pem" >/dev/null
"$PY" - "$work" "$URL" "$CA" <<'PY'
import sys
sys.path.insert(0, "tests/python")
import kps_client
from cryptography.hazmat.primitives.asymmetric import rsa
work, url, ca = sys.argv[1:]
idk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
health = kps_client.host_key_attest(url + "/Attestation", ca, kps_client.load_host_key(work + "/py"), idk.public_key())
open(work + "/roll.xml", "wb").write(kps_client.roll_request(open(work + "/kp.xml", "rb").read(), health))
PY

cargo bench --locked -q -p vmsec-kps --bench roll -- --noplot 2>/dev/null | grep -E "^(kps|raw)/|time:" >"$work/criterion"
# CPU seconds the KPS process has used (user + system), to report its CPU per release.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$KPS_PID/stat"; }
for c in 1 16 64; do
  before=$(cpu)
  # One wrk thread: the client shares the two cores with the KPS, so it should take little.
  BENCH_BODY=$work/roll.xml wrk -t1 -c$c -d"${SECS}s" --timeout 10s --latency -s "$ROOT/bench/kps.lua" "$URL" \
    | awk -v c=$c '/^RESULT/{for(i=2;i<=NF;i++){split($i,kv,"="); printf "%s ", kv[2]}; printf "c=%s ", c}' >>"$work/wrk"
  echo "cpu=$(python3 -c "print($(cpu) - $before)")" >>"$work/wrk"
done

# tpm start in each mode: a host in HGS mode and a host in local mode, 5 starts each.
hgs=$work/hgs; loc=$work/local
"$BIN" --data "$hgs" hgs host-key new >"$work/h.pem"
"$BIN" kps host add h1 --host-key "$work/h.pem" >/dev/null
"$BIN" --data "$hgs" hgs set --attestation-url "$URL/Attestation" --key-protection-url "$URL/KeyProtection" --ca "$CA" >/dev/null
for d in "$hgs" "$loc"; do
  "$BIN" --data "$d" vm add vm1 >/dev/null
  if [ "$d" = "$loc" ]; then
    "$BIN" --data "$d" guardian new owner --key-size 2048 >/dev/null
    "$BIN" --data "$d" kp new --owner owner --out "$work/local-kp.xml" >/dev/null
    "$BIN" --data "$d" vm kp set vm1 "$work/local-kp.xml" >/dev/null
  else
    "$BIN" --data "$d" vm kp set vm1 "$work/kp.xml" >/dev/null
  fi
  "$BIN" --data "$d" vm security set vm1 --tpm on >/dev/null
  # The first start manufactures the vTPM; it is not counted.
  "$BIN" --data "$d" tpm start vm1 >/dev/null; "$BIN" --data "$d" tpm stop vm1 >/dev/null
  for i in 1 2 3 4 5; do
    "$BIN" --data "$d" --json tpm start vm1 >"$work/start-$(basename "$d")-$i.json"
    "$BIN" --data "$d" tpm stop vm1 >/dev/null
  done
done

SECS=$SECS python3 - "$work" <<'PY' | tee "$work/table"
import glob, json, os, re, statistics, sys
work = sys.argv[1]
unit = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
times, name = {}, None
for l in open(work + "/criterion").read().splitlines():
    m = re.match(r"^((?:kps|raw)/\S+)?\s*time:\s+\[\S+ \S+ (\S+) (\S+) ", l)
    if m:
        times[(m.group(1) or name).strip()] = float(m.group(2)) * unit[m.group(3)]
    elif re.match(r"^(kps|raw)/", l):
        name = l.strip()
cores = os.cpu_count()
floor_ms = times["raw/roll"]
print(f"One roll in-process: {times['kps/roll_transport_key']:.3f} ms; its raw aws-lc-rs floor {floor_ms:.3f} ms "
      f"(ratio {times['kps/roll_transport_key'] / floor_ms:.2f}). RSA 2048, owner + fabric.\n")
print("| connections | vmsec req/s | p50 ms | p99 ms | errors | raw floor req/s | vmsec / floor (target ≥ 0.7) | KPS CPU per release | floor / that |")
print("|---|---|---|---|---|---|---|---|---|")
secs = float(os.environ.get("SECS", "10"))
for l in open(work + "/wrk").read().splitlines():
    rps, p50, p99, p999, errors, c, cpu = l.split()
    c = int(c.split("=")[1])
    cpu_ms = float(cpu.split("=")[1]) * 1000 / (float(rps) * secs)
    floor = min(c, cores) * 1000 / floor_ms
    print(f"| {c} | {float(rps):,.0f} | {p50} | {p99} | {errors} | {floor:,.0f} | {float(rps) / floor:.2f} | {cpu_ms:.3f} ms | {floor_ms / cpu_ms:.2f} |")
issue = times["kps/host_key_attest"]
print(f"\nHealth certificates: {1000 / issue:,.0f}/s on one core in-process ({issue:.3f} ms each: "
      f"HostKeySignature check with a 3072-bit host key, then an RSA-2048 certificate signature); "
      f"raw floor {times['raw/issue']:.3f} ms (both with 2048-bit keys).\n")
print("| `tpm start` (median of 5, after the first) | total ms | unwrap ms (HGS: attest + RollTransportKey) | unseal ms | roll ms | swtpm start ms | commit ms |")
print("|---|---|---|---|---|---|---|")
for mode in ("local", "hgs"):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{work}/start-{mode}-*.json"))]
    med = lambda k: statistics.median(r["timings"][k] for r in runs)
    print(f"| {'HGS mode' if mode == 'hgs' else 'local mode'} | {med('total_ms'):.1f} | {med('unwrap_ms'):.1f} | {med('unseal_ms'):.1f} | {med('roll_ms'):.1f} | {med('swtpm_start_ms'):.1f} | {med('commit_ms'):.1f} |")
PY
python3 "$ROOT/bench/publish.py" kps "bench/kps.sh $SECS" <"$work/table"
