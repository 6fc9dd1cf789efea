#!/usr/bin/env bash
# Key-protector cryptography against the raw aws-lc-rs operations it consists of, measured in
# the same criterion run (crates/vmsec-kp/benches/kp.rs; a protector with an owner and 3
# guardians, so 4 wrappings and 9 RSA signatures):
#   verify = 9 signature verifications
#   unwrap = verify + 1 RSA-OAEP decryption (HKDF + HMAC of the transport key are in ours only)
#   roll   = unwrap + 4 RSA-OAEP encryptions + 1 signature
# Usage: bench/kp.sh
source "$(dirname "$0")/lib.sh"
out=$(mktemp); trap 'rm -f "$out"' EXIT
cargo bench --locked -p vmsec-kp --bench kp 2>/dev/null | tee "$out.raw" | grep -E "^rsa|time:" >"$out" || true
python3 - "$out" <<'PY' | tee "$out.table"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
unit = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
times, name = {}, None
for l in lines:
    m = re.match(r"^(rsa\d+/\S+(?: \S+)*?)\s+time:\s+\[\S+ \S+ (\S+) (\S+) ", l)
    if m:
        times[m.group(1).strip()] = float(m.group(2)) * unit[m.group(3)]
        continue
    m = re.match(r"^(rsa\d+/.+?)\s*$", l)
    if m:
        name = m.group(1)
        continue
    m = re.match(r"^\s+time:\s+\[\S+ \S+ (\S+) (\S+) ", l)
    if m and name:
        times[name] = float(m.group(1)) * unit[m.group(2)]
print("| operation | RSA | ours | raw aws-lc-rs | ratio (target ≤ 1.3) |\n|---|---|---|---|---|")
for bits in ("2048", "3072"):
    t = lambda k: times["rsa%s/%s" % (bits, k)]
    v, d, e, s = t("raw/rsa-sha256 verify"), t("raw/oaep-sha256 decrypt"), t("raw/oaep-sha256 encrypt"), t("raw/rsa-sha256 sign")
    raw = {"verify": 9 * v, "unwrap": 9 * v + d, "roll": 9 * v + d + 4 * e + s}
    for op in ("verify", "unwrap", "roll"):
        ours = t("kp/" + op)
        print(f"| {op} | {bits} | {ours:.3f} ms | {raw[op]:.3f} ms | {ours / raw[op]:.2f} |")
    print(f"| parse | {bits} | {t('kp/parse'):.3f} ms | | |")
    print(f"| new (owner + 3) | {bits} | {t('kp/new owner+3'):.2f} ms | | |")
PY
python3 "$ROOT/bench/publish.py" kp "bench/kp.sh" <"$out.table"
rm -f "$out.raw" "$out.table"
