#!/usr/bin/env bash
# TPM-mode attestation (issue 15). First the exchange itself with a swtpm per host, sans-IO
# (crates/vmsec-kps/benches/tpm_attest.rs: latency, attestations/s at 1 and 16 concurrent
# hosts, the TPM's own operations beside them). Then `tpm start` end to end against a release
# `vmsec kps serve` in the three modes: local, HGS with a host key, HGS with the host's TPM
# (a swtpm manufactured with an EK certificate, a two-event boot extended into it).
# Usage: bench/tpm-mode.sh [ROUNDS per host, default 10]   (about 2 minutes)
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-10}
build
work=$(mktemp -d)
cleanup() {
  kill "$KPS_PID" 2>/dev/null || true
  [ -s "$work/hosttpm/pid" ] && kill "$(cat "$work/hosttpm/pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cargo bench --locked -q -p vmsec-kps --bench tpm_attest -- "$ROUNDS" 2>/dev/null | tee "$work/exchange"

export VMSEC_KPS_DATA=$work/kps
"$BIN" kps init --key-size 2048 >/dev/null 2>&1
VMSEC_LOG=warn "$BIN" kps serve --listen 127.0.0.1:0 >"$work/addr" 2>"$work/kps.log" &
KPS_PID=$!
for _ in $(seq 200); do [ -s "$work/addr" ] && break; sleep 0.05; done
PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["https"][0].rsplit(":",1)[1])' "$work/addr")
URL=https://localhost:$PORT
CA=$work/kps/tls/cert.pem
owner=$work/owner
"$BIN" --data "$owner" guardian import fabric --url "$URL/KeyProtection" --ca "$CA" >/dev/null
"$BIN" --data "$owner" guardian new owner --key-size 2048 >/dev/null
"$BIN" --data "$owner" kp new --owner owner --guardian fabric --out "$work/kp.xml" >/dev/null

# The host's own TPM: swtpm with an EK certificate from a local CA in the work directory.
mkdir -p "$work/hosttpm/state" "$work/hosttpm/ca"
cat >"$work/hosttpm/ca/swtpm-localca.conf" <<CONF
statedir = $work/hosttpm/ca
signingkey = $work/hosttpm/ca/signkey.pem
issuercert = $work/hosttpm/ca/issuercert.pem
certserial = $work/hosttpm/ca/certserial
CONF
: >"$work/hosttpm/ca/swtpm-localca.options"
cat >"$work/hosttpm/ca/swtpm_setup.conf" <<CONF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $work/hosttpm/ca/swtpm-localca.conf
create_certs_tool_options = $work/hosttpm/ca/swtpm-localca.options
active_pcr_banks = sha256
CONF
swtpm_setup --tpm2 --tpmstate "$work/hosttpm/state" --create-ek-cert --config "$work/hosttpm/ca/swtpm_setup.conf" >/dev/null
# A free port pair is found by trying: the bind is the test.
for _ in $(seq 20); do
  TPORT=$(( 20000 + (RANDOM % 10000) * 2 ))
  swtpm socket --tpm2 --tpmstate dir="$work/hosttpm/state" --flags not-need-init,startup-clear \
    --server type=tcp,bindaddr=127.0.0.1,port=$TPORT --ctrl type=tcp,bindaddr=127.0.0.1,port=$((TPORT + 1)) \
    --daemon --pid file="$work/hosttpm/pid" 2>/dev/null && break
done
TCTI=swtpm:host=127.0.0.1,port=$TPORT
for _ in $(seq 100); do [ -s "$work/hosttpm/pid" ] && break; sleep 0.05; done
# A boot of two events, in the TPM and in the log.
python3 - "$work/hosttpm/log" >"$work/hosttpm/extends" <<'PY'
import hashlib, struct, sys
spec = b"Spec ID Event03\0" + bytes([0, 0, 0, 0, 0, 2, 0, 2]) + struct.pack("<IHH", 1, 0x0b, 32) + b"\0"
out = struct.pack("<II", 0, 3) + b"\0" * 20 + struct.pack("<I", len(spec)) + spec
for pcr, data in [(0, b"firmware"), (4, b"bootloader")]:
    d = hashlib.sha256(data).digest()
    out += struct.pack("<IIIH", pcr, 0x0d, 1, 0x0b) + d + struct.pack("<I", len(data)) + data
    print(f"{pcr}:sha256={d.hex()}")
open(sys.argv[1], "wb").write(out)
PY
while read -r e; do TPM2TOOLS_TCTI=$TCTI tpm2_pcrextend "$e"; done <"$work/hosttpm/extends"

hk=$work/hostkey; tp=$work/tpm; loc=$work/local
"$BIN" --data "$hk" hgs host-key new >"$work/h.pem"
"$BIN" kps host add hk --host-key "$work/h.pem" >/dev/null
"$BIN" --data "$hk" hgs set --attestation-url "$URL/Attestation" --key-protection-url "$URL/KeyProtection" --ca "$CA" >/dev/null
"$BIN" --data "$tp" hgs set --attestation-url "$URL/Attestation" --key-protection-url "$URL/KeyProtection" --ca "$CA" \
  --tpm --tcti "$TCTI" --event-log "$work/hosttpm/log" >/dev/null
"$BIN" --data "$tp" hgs ek --tcti "$TCTI" >"$work/ek.pem"
"$BIN" kps host add tp --ek-cert "$work/ek.pem" >/dev/null
"$BIN" --data "$tp" hgs tpm-baseline --out "$work/golden.json" --tcti "$TCTI" --event-log "$work/hosttpm/log" >/dev/null
"$BIN" kps baseline add golden --from "$work/golden.json" >/dev/null
for d in "$loc" "$hk" "$tp"; do
  "$BIN" --data "$d" vm add vm1 >/dev/null
  if [ "$d" = "$loc" ]; then
    "$BIN" --data "$d" guardian new owner --key-size 2048 >/dev/null
    "$BIN" --data "$d" kp new --owner owner --out "$work/local-kp.xml" >/dev/null
    "$BIN" --data "$d" vm kp set vm1 "$work/local-kp.xml" >/dev/null
  else
    "$BIN" --data "$d" vm kp set vm1 "$work/kp.xml" >/dev/null
  fi
  "$BIN" --data "$d" vm security set vm1 --tpm on >/dev/null
  "$BIN" --data "$d" tpm start vm1 >/dev/null; "$BIN" --data "$d" tpm stop vm1 >/dev/null
  for i in 1 2 3 4 5; do
    # A fresh attestation each time (TPM mode's cost is in it): the cached certificate dropped.
    rm -f "$d/hgs/health-certificate.der"
    "$BIN" --data "$d" --json tpm start vm1 >"$work/start-$(basename "$d")-$i.json"
    "$BIN" --data "$d" tpm stop vm1 >/dev/null
  done
done
python3 - "$work" <<'PY' | tee "$work/table"
import glob, json, statistics, sys
work = sys.argv[1]
print(open(work + "/exchange").read())
print("| `tpm start` (median of 5, after the first; each attests anew) | total ms | unwrap ms (HGS: attest + RollTransportKey) | unseal ms | roll ms | swtpm start ms |")
print("|---|---|---|---|---|---|")
for mode, name in (("local", "local mode"), ("hostkey", "HGS, host key"), ("tpm", "HGS, TPM mode")):
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{work}/start-{mode}-*.json"))]
    med = lambda k: statistics.median(r["timings"][k] for r in runs)
    print(f"| {name} | {med('total_ms'):.1f} | {med('unwrap_ms'):.1f} | {med('unseal_ms'):.1f} | {med('roll_ms'):.1f} | {med('swtpm_start_ms'):.1f} |")
PY
