#!/usr/bin/env bash
# Key-protector cryptography against the raw aws-lc-rs operations it consists of, measured in
# the same criterion run (crates/vmsec-kp/benches/kp.rs; a protector with an owner and 3
# guardians, so 4 wrappings and 9 RSA signatures). Each raw baseline is exactly the aws-lc-rs
# calls the step needs, on the protector's own messages, signatures and ciphertexts:
#   verify = 9 RSA-SHA256 verifications (8 over certificates, 1 over canonical <Wrappings>)
#   unwrap = verify + 1 RSA-OAEP decryption + HKDF/HMAC check
#   roll   = unwrap + 64 random bytes + 4 x (load SPKI + RSA-OAEP encryption) + HKDF/HMAC + 1 signature
# Usage: bench/kp.sh   (about a minute)
source "$(dirname "$0")/lib.sh"
out=$(mktemp); trap 'rm -f "$out" "$out.table"' EXIT
cargo bench --locked -p vmsec-kp --bench kp 2>/dev/null | grep -E "^rsa|time:" >"$out"
python3 - "$out" <<'PY' | tee "$out.table"
import re, sys
unit = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
times, name = {}, None
# criterion prints "name  time: [low median high]", or the name alone on its own line when long.
for l in open(sys.argv[1]).read().splitlines():
    m = re.match(r"^(rsa\d+/\S+(?: \S+)*?)?\s*time:\s+\[\S+ \S+ (\S+) (\S+) ", l)
    if m:
        times[(m.group(1) or name).strip()] = float(m.group(2)) * unit[m.group(3)]
    elif l.startswith("rsa"):
        name = l.strip()
print("| operation | RSA | ours | raw aws-lc-rs | ratio (target ≤ 1.3) |\n|---|---|---|---|---|")
for bits in ("2048", "3072"):
    t = lambda k: times[f"rsa{bits}/{k}"]
    for op in ("verify", "unwrap", "roll"):
        ours, raw = t("kp/" + op), t("raw/" + op)
        print(f"| {op} | {bits} | {ours:.3f} ms | {raw:.3f} ms | {ours / raw:.2f} |")
    print(f"| parse | {bits} | {t('kp/parse'):.3f} ms | | |")
    print(f"| new (owner + 3) | {bits} | {t('kp/new owner+3'):.2f} ms | | |")
PY
python3 "$ROOT/bench/publish.py" kp "bench/kp.sh" <"$out.table"
