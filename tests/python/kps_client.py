#!/usr/bin/env python3
"""Independent host-side client for vmsec's Attestation Service and Key
Protection Service, written from [MS-HGSA], [MS-KPS] and the vmsec profile
(docs/specs/kps.md, docs/specs/key-protector.md) with requests, lxml and
cryptography only. It plays a guarded host in host-key mode.

Commands:
  keygen DIR
      DIR/host-key.pem (PKCS#8 PEM, RSA 2048, mode 0600), DIR/host-key.pub.pem (SPKI PEM).
  roll DIR --attestation-url URL --key-protection-url URL --ca CA.pem
           --kp IN.xml --egress OUT.xml [--version V2.0|V1.0]
      Attest with DIR/host-key.pem and a fresh IDK, check the health certificate,
      fetch the fabric guardian from metadata.xml, RollTransportKey with IN.xml's
      exact bytes, decrypt TK1/TK2, check both protectors against them, write the
      egress protector to OUT.xml and print one JSON line (hashes of the keys, never
      the keys).
  expect-refusal DIR ... --kp IN.xml --status N --code CODE
      As roll up to RollTransportKey; exit 0 only if the KPS answers HTTP N with
      <Error><Code>CODE</Code>, or attestation itself answers HTTP N with a
      __type starting with CODE.
  selftest
      Offline: encrypts a reply as the server would and decodes it with the roll
      path's functions (V1 and V2 blobs), and checks the PKCS#7 loader, the
      health-certificate checks and the protector checks on material it makes.

Exit 0 when everything checked out; otherwise exit 1 with one stderr line
"kps_client: FAIL: <what>".

Choices where the contract left room (see also the report of the author):
  * The health certificate must be directly issued by a signer certificate
    (issuer name = signer subject, and the signature verifies), not just carry a
    signature that verifies.
  * Metadata: the ds:Signature is not verified (it is by the communications key);
    the EncryptionCertificateSignature inside GuardianInformation, when present,
    is checked against the SigningCertificate.
  * Error bodies are matched by local name, so <Error> in any namespace counts.
"""

import argparse
import base64
import contextlib
import datetime
import hashlib
import hmac
import io
import json
import os
import struct
import sys
import tempfile

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from lxml import etree

# Reuse the key-protector cross-check's constants and XML helpers (none of
# these exit the process; its check()/fail() are deliberately not used).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "crates", "vmsec-kp", "tests", "python"))
import kp_crosscheck as kpx  # noqa: E402

CORE = "Microsoft.Windows.RemoteAttestation.Core"
SVC = "http://schemas.microsoft.com/kps/2014/07/service"
ALG_TRANSFER = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
ALG_WRAPPING = "http://www.w3.org/2001/04/xmlenc#kw-aes256"
ALG_TRANSPORT = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
TIMEOUT = 10
# [MS-HGSA] ProvidedContent / RequestedContent item types used in host-key mode.
IDK_PUBLIC, HOST_KEY_PUBLIC, HOST_KEY_SIGNATURE = 1, 8, 9
HEALTH_CERT = 1


class Fail(Exception):
    """Any failed check; main() turns it into the FAIL line and exit 1."""


class Refused(Fail):
    """An HTTP error reply, kept structured so expect-refusal can match it."""

    def __init__(self, stage, status, code, message):
        self.stage, self.status, self.code, self.message = stage, status, code, message
        super().__init__("%s refused: HTTP %d %s: %s" % (stage, status, code, message))


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def b64e(data):
    return base64.b64encode(data).decode("ascii")


def b64d(text, what):
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except Exception as e:
        raise Fail("%s is not base64: %s" % (what, e))


def spki_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


# ------------------------------------------------------------------ HTTP


def http(method, url, ca, **kw):
    try:
        return requests.request(method, url, verify=ca, timeout=TIMEOUT, **kw)
    except requests.RequestException as e:
        raise Fail("%s %s: %s" % (method, url, e))


def json_body(resp, what):
    try:
        return resp.json()
    except ValueError:
        raise Fail("%s: HTTP %d, body is not JSON: %r" % (what, resp.status_code, resp.text[:200]))


def check_type(obj, name, what):
    check(isinstance(obj, dict) and obj.get("__type") == "%s:#%s" % (name, CORE),
          "%s: __type is %r, expected %s" % (what, obj.get("__type") if isinstance(obj, dict) else obj, name))


# ------------------------------------------------------------ attestation


def get_info(att, ca):
    resp = http("GET", att + "/Getinfo", ca)
    check(resp.status_code == 200, "Getinfo: HTTP %d" % resp.status_code)
    info = json_body(resp, "Getinfo")
    check_type(info, "ServiceInfoReply", "Getinfo")
    check(info.get("OperationMode") == 3, "Getinfo: OperationMode %r, not 3 (HostKey)" % info.get("OperationMode"))
    return info


def load_signing_certificates(body):
    """The signingCertificates reply: a JSON string (WCF byte[]) of base64 DER PKCS#7."""
    check(isinstance(body, str), "signingCertificates: reply is not a JSON string")
    try:
        certs = pkcs7.load_der_pkcs7_certificates(b64d(body, "signingCertificates"))
    except Fail:
        raise
    except Exception as e:
        raise Fail("signingCertificates: not a DER PKCS#7: %s" % e)
    check(len(certs) > 0, "signingCertificates: PKCS#7 holds no certificate")
    return certs


def attestation_request(host_key, idk_public):
    host_der, idk_der = spki_der(host_key.public_key()), spki_der(idk_public)
    # HostKeySignature binds the IDK to the registered host key ([MS-HGSA]).
    sig = host_key.sign(host_der + idk_der, padding.PKCS1v15(), hashes.SHA256())
    return {
        "__type": "AttestationRequest:#" + CORE,
        "SessionId": b64e(os.urandom(16)),
        "RequestedContent": [HEALTH_CERT],
        "ProvidedContent": [{"m_Item1": HOST_KEY_PUBLIC, "m_Item2": b64e(host_der)},
                            {"m_Item1": IDK_PUBLIC, "m_Item2": b64e(idk_der)},
                            {"m_Item1": HOST_KEY_SIGNATURE, "m_Item2": b64e(sig)}],
    }


def host_key_attest(att, ca, host_key, idk_public):
    resp = http("POST", att + "/v2.0/hostkeyattest", ca,
                data=json.dumps(attestation_request(host_key, idk_public)),
                headers={"Content-Type": "application/json"})
    body = json_body(resp, "hostkeyattest")
    if resp.status_code != 200:
        kind = body.get("__type", "?") if isinstance(body, dict) else "?"
        msg = body.get("Message", "") if isinstance(body, dict) else ""
        raise Refused("attestation", resp.status_code, kind, msg)
    check_type(body, "HealthCertificateReply", "hostkeyattest")
    items = [c for c in body.get("Content") or [] if isinstance(c, dict) and c.get("m_Item1") == HEALTH_CERT]
    check(len(items) == 1, "hostkeyattest: %d health certificates in Content" % len(items))
    return b64d(items[0].get("m_Item2"), "health certificate")


def verify_health_certificate(der, signers, idk_public, host_public, when=None):
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception as e:
        raise Fail("health certificate is not DER X.509: %s" % e)
    check(cert.version == x509.Version.v3, "health certificate is not X.509 v3")
    check(cert.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256,
          "health certificate signature algorithm %s" % cert.signature_algorithm_oid.dotted_string)
    ok = False
    for s in signers:
        try:
            cert.verify_directly_issued_by(s)
            ok = True
            break
        except Exception:
            continue
    check(ok, "health certificate is not signed by any attestation signer certificate")
    check(spki_der(cert.public_key()) == spki_der(idk_public),
          "health certificate key is not the IDK")
    want = "urn:vmsec:host-key:" + hashlib.sha256(spki_der(host_public)).hexdigest()
    try:
        uris = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    check(want in uris, "health certificate SAN URIs %r lack %s" % (uris, want))
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise Fail("health certificate has no keyUsage")
    check(ku.key_encipherment, "health certificate keyUsage lacks keyEncipherment")
    when = when or now_utc()
    check(cert.not_valid_before_utc <= when <= cert.not_valid_after_utc,
          "health certificate not valid now (%s .. %s)" % (cert.not_valid_before_utc, cert.not_valid_after_utc))
    return cert


def attest(args, host_key):
    """Step 1: returns (idk private key, health certificate DER, its parsed form)."""
    att = args.attestation_url.rstrip("/")
    get_info(att, args.ca)
    resp = http("GET", att + "/v2.0/signingCertificates", args.ca)
    check(resp.status_code == 200, "signingCertificates: HTTP %d" % resp.status_code)
    signers = load_signing_certificates(json_body(resp, "signingCertificates"))
    idk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = host_key_attest(att, args.ca, host_key, idk.public_key())
    cert = verify_health_certificate(der, signers, idk.public_key(), host_key.public_key())
    return idk, der, cert


# ------------------------------------------------------------------- KPS


def xml(data, what):
    try:
        return etree.fromstring(data, kpx.PARSER)
    except Exception as e:
        raise Fail("%s is not XML: %s" % (what, e))


def fetch_fabric(kp_url, ca):
    """Step 2: the fabric guardian's (EncryptionCertificate DER, SigningCertificate DER)."""
    resp = http("GET", kp_url + "/service/metadata/2014-07/metadata.xml", ca)
    check(resp.status_code == 200, "metadata.xml: HTTP %d" % resp.status_code)
    root = xml(resp.content, "metadata.xml")
    check(root.tag == kpx.k("Metadata"), "metadata.xml root is %s" % root.tag)
    info = root.find(kpx.k("GuardianInformation"))
    check(info is not None, "metadata.xml has no GuardianInformation")
    ecert = b64d(info.findtext(kpx.k("EncryptionCertificate")), "metadata EncryptionCertificate")
    scert = b64d(info.findtext(kpx.k("SigningCertificate")), "metadata SigningCertificate")
    check(ecert and scert, "metadata.xml lacks a certificate")
    ecs = info.find(kpx.k("EncryptionCertificateSignature"))
    if ecs is not None:
        rsa_verify(scert, b64d(ecs.findtext(kpx.k("SignatureValue")), "metadata signature"), ecert,
                   "metadata EncryptionCertificateSignature")
    return ecert, scert


def roll_request(ingress, health_der):
    root = etree.Element("{%s}RollTransportKeyRequest" % SVC, nsmap={None: SVC})
    for name, value in (("IngressProtector", b64e(ingress)), ("HealthCertificate", b64e(health_der)),
                        ("TransferKeyEncryptionAlgorithm", ALG_TRANSFER),
                        ("WrappingKeyEncryptionAlgorithm", ALG_WRAPPING),
                        ("TransportKeysEncryptionAlgorithm", ALG_TRANSPORT)):
        etree.SubElement(root, "{%s}%s" % (SVC, name)).text = value
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def local(el):
    return etree.QName(el).localname


def kps_error(status, body):
    """A Refused from an <Error><Code/><Message/></Error> body (any namespace)."""
    code, msg = "?", body[:200].decode("utf-8", "replace")
    try:
        root = etree.fromstring(body, kpx.PARSER)
        if local(root) == "Error":
            fields = {local(c): (c.text or "") for c in root if isinstance(c.tag, str)}
            code, msg = fields.get("Code", "?"), fields.get("Message", "")
    except Exception:
        pass
    return Refused("KPS", status, code, msg)


def roll_transport_key(kp_url, ca, version, ingress, health_der):
    resp = http("POST", "%s/service/%s/rolltransportkey" % (kp_url, version), ca,
                data=roll_request(ingress, health_der),
                headers={"Content-Type": "application/xml; charset=utf-8"})
    if resp.status_code != 200:
        raise kps_error(resp.status_code, resp.content)
    return parse_roll_response(resp.content)


def parse_roll_response(body):
    root = xml(body, "RollTransportKeyResponse")
    check(root.tag == "{%s}RollTransportKeyResponse" % SVC, "KPS reply root is %s" % root.tag)
    names = ["EgressProtector", "EncryptedTransferKey", "EncryptedWrappingKey", "EncryptedTransportKeys"]
    children = [c for c in root if isinstance(c.tag, str)]
    check([c.tag for c in children] == ["{%s}%s" % (SVC, n) for n in names],
          "KPS reply children are %r" % [c.tag for c in children])
    return [b64d(c.text, n) for c, n in zip(children, names)]


def decrypt_keys(idk, enc_transfer, enc_wrapping, enc_tks, version):
    """RSA-OAEP -> transfer key; AES-KW -> wrapping key; AES-GCM -> TransportKey blob."""
    try:
        transfer = idk.decrypt(enc_transfer, OAEP)
    except Exception as e:
        raise Fail("EncryptedTransferKey does not decrypt with the IDK: %r" % e)
    check(len(transfer) == 32, "transfer key is %d bytes" % len(transfer))
    try:
        wrapping = aes_key_unwrap(transfer, enc_wrapping)
    except Exception as e:
        raise Fail("EncryptedWrappingKey does not unwrap: %r" % e)
    check(len(wrapping) == 32, "wrapping key is %d bytes" % len(wrapping))
    check(len(enc_tks) >= 12 + 16, "EncryptedTransportKeys is %d bytes" % len(enc_tks))
    try:
        blob = AESGCM(wrapping).decrypt(enc_tks[:12], enc_tks[12:], None)
    except Exception as e:
        raise Fail("EncryptedTransportKeys does not decrypt: %r" % e)
    return parse_blob(blob, version)


def parse_blob(blob, version):
    """[MS-KPS] 2.2.3.10 Payload_V1/V2, every field checked exactly; returns (TK1, TK2)."""
    want_version = {"V1.0": 1, "V2.0": 2}[version]
    want_len = 16 + 64 + (4 if want_version == 2 else 0)
    check(len(blob) == want_len, "TransportKey blob is %d bytes, expected %d" % (len(blob), want_len))
    size, ver, count, klen = struct.unpack_from("<4I", blob)
    check(size == len(blob), "blob DataSize %d != length %d" % (size, len(blob)))
    check(ver == want_version, "blob Version %d, expected %d" % (ver, want_version))
    check(count == 2, "blob NumberOfKeys %d" % count)
    check(klen == 32, "blob KeyLength %d" % klen)
    if want_version == 2:
        (policies,) = struct.unpack_from("<I", blob, 80)
        check(policies == 0, "blob NumberOfPolicies %d" % policies)
    return blob[16:48], blob[48:80]


# ------------------------------------------------------------ protectors


def rsa_verify(cert_der, sig, data, what):
    try:
        x509.load_der_x509_certificate(cert_der).public_key().verify(
            sig, data, padding.PKCS1v15(), hashes.SHA256())
    except Exception as e:
        raise Fail("%s does not verify: %r" % (what, e))


def parse_protector(data, what):
    root = xml(data, what)
    check(root.tag == kpx.k("Protector"), "%s root is %s" % (what, root.tag))
    wrappings = root.find(kpx.k("Wrappings"))
    check(wrappings is not None, "%s has no Wrappings" % what)
    wraps = {}
    for w in wrappings.findall(kpx.k("Wrapping")):
        wid = int(w.findtext(kpx.k("Id")))
        check(wid not in wraps, "%s: duplicate wrapping Id %d" % (what, wid))
        wraps[wid] = {"ecert": b64d(w.findtext(kpx.k("EncryptionCertificate")), "EncryptionCertificate"),
                      "scert": b64d(w.findtext(kpx.k("SigningCertificate")), "SigningCertificate")}
    return root, kpx.exc_c14n(wrappings), wraps


def verify_tk_signature(root, canonical, tk, what):
    """TransportKeySignature: HMAC-SHA256 with HKDF-SHA256(TK, salt, info) over C14N <Wrappings>."""
    tks = root.find(kpx.k("TransportKeySignature"))
    check(tks is not None, "%s has no TransportKeySignature" % what)
    kdm, sig = tks.find(kpx.k("KeyDerivationMethod")), tks.find(kpx.k("Signature"))
    check(kdm is not None and kdm.get("Algorithm") == kpx.HKDF_URI, "%s: KeyDerivationMethod" % what)
    check(sig is not None and sig.get("Algorithm") == kpx.HMAC_SHA256, "%s: MAC algorithm" % what)
    params = kdm.find(kpx.k("Parameters"))
    check(params is not None, "%s: HKDF without Parameters" % what)
    salt = b64d(params.findtext("{%s}Salt" % kpx.VMSEC), "HKDF salt")
    info = (params.findtext("{%s}Info" % kpx.VMSEC) or "").encode()
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(tk)
    expected = hmac.new(mac_key, canonical, hashlib.sha256).digest()
    check(hmac.compare_digest(expected, b64d(sig.findtext(kpx.k("SignatureValue")), "MAC")),
          "%s: TransportKeySignature does not verify with its TK" % what)


def guardian_signer(root, canonical, wraps, what):
    """Verifies GuardianSignature; returns the signing certificate DER it used."""
    gs = root.find(kpx.k("GuardianSignature"))
    check(gs is not None, "%s has no GuardianSignature" % what)
    wid = int(gs.get("WrappingId", "-1"))
    check(wid in wraps, "%s: GuardianSignature names unknown wrapping %d" % (what, wid))
    sig = gs.find(kpx.k("Signature"))
    check(sig is not None and sig.get("Algorithm") == kpx.RSA_SHA256, "%s: GuardianSignature algorithm" % what)
    rsa_verify(wraps[wid]["scert"], b64d(sig.findtext(kpx.k("SignatureValue")), "GuardianSignature"),
               canonical, "%s GuardianSignature" % what)
    return wraps[wid]["scert"]


def check_roll(ingress, egress, tk1, tk2, fabric):
    """Step 4: both protectors against the released keys and the fabric guardian."""
    iroot, ican, iwraps = parse_protector(ingress, "ingress protector")
    eroot, ecan, ewraps = parse_protector(egress, "egress protector")
    check(tk1 != tk2, "TK1 == TK2: the KPS did not roll the key")
    verify_tk_signature(iroot, ican, tk1, "ingress protector (TK1)")
    verify_tk_signature(eroot, ecan, tk2, "egress protector (TK2)")
    ids = lambda ws: {i: w["ecert"] for i, w in ws.items()}  # noqa: E731
    check(ids(iwraps) == ids(ewraps), "egress wrappings (Id, EncryptionCertificate) differ from ingress")
    fab_enc, fab_sign = fabric
    check(any(w["ecert"] == fab_enc for w in iwraps.values()),
          "ingress protector has no wrapping for the fabric's EncryptionCertificate")
    signer = guardian_signer(eroot, ecan, ewraps, "egress protector")
    check(signer == fab_sign, "egress GuardianSignature is not by the fabric's SigningCertificate")


# -------------------------------------------------------------- commands


def load_host_key(d):
    try:
        with open(os.path.join(d, "host-key.pem"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except Exception as e:
        raise Fail("cannot load %s/host-key.pem: %s" % (d, e))
    check(isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048, "host key is not RSA >= 2048")
    return key


def cmd_keygen(args):
    os.makedirs(args.dir, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = os.path.join(args.dir, "host-key.pem")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # also when the file already existed
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(args.dir, "host-key.pub.pem"), "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def read_kp(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Fail("cannot read %s: %s" % (path, e))


def cmd_roll(args):
    host_key = load_host_key(args.dir)
    ingress = read_kp(args.kp)
    idk, health_der, health = attest(args, host_key)
    kp_url = args.key_protection_url.rstrip("/")
    fabric = fetch_fabric(kp_url, args.ca)
    egress, enc_transfer, enc_wrapping, enc_tks = roll_transport_key(
        kp_url, args.ca, args.version, ingress, health_der)
    tk1, tk2 = decrypt_keys(idk, enc_transfer, enc_wrapping, enc_tks, args.version)
    check_roll(ingress, egress, tk1, tk2, fabric)
    with open(args.egress, "wb") as f:
        f.write(egress)
    print(json.dumps({"health_certificate_serial": format(health.serial_number, "x"),
                      "tk1_sha256": hashlib.sha256(tk1).hexdigest(),
                      "tk2_sha256": hashlib.sha256(tk2).hexdigest(),
                      "version": args.version, "egress_bytes": len(egress)}))


def cmd_expect_refusal(args):
    host_key = load_host_key(args.dir)
    ingress = read_kp(args.kp)  # sent as is: it may be deliberately broken
    try:
        _, health_der, _ = attest(args, host_key)
    except Refused as r:
        check(r.status == args.status and r.code.startswith(args.code),
              "expected HTTP %d %s, got %s" % (args.status, args.code, r))
        return
    kp_url = args.key_protection_url.rstrip("/")
    fetch_fabric(kp_url, args.ca)
    try:
        roll_transport_key(kp_url, args.ca, args.version, ingress, health_der)
    except Refused as r:
        check(r.status == args.status and r.code == args.code,
              "expected HTTP %d %s, got %s" % (args.status, args.code, r))
        return
    raise Fail("expected HTTP %d %s, but the KPS released the keys" % (args.status, args.code))


# --------------------------------------------------------------- selftest


def expect_fail(fn, what):
    try:
        fn()
    except Fail:
        return
    raise Fail("selftest: %s was accepted" % what)


def server_encrypt(idk_public, tk1, tk2, version, policies=0, data_size=None):
    """The server's side of the reply, as the profile defines it."""
    v = {"V1.0": 1, "V2.0": 2}[version]
    body = struct.pack("<4I", 0, v, 2, 32) + tk1 + tk2 + (struct.pack("<I", policies) if v == 2 else b"")
    blob = struct.pack("<I", len(body) if data_size is None else data_size) + body[4:]
    transfer, wrapping, iv = os.urandom(32), os.urandom(32), os.urandom(12)
    return (idk_public.encrypt(transfer, OAEP), aes_key_wrap(transfer, wrapping),
            iv + AESGCM(wrapping).encrypt(iv, blob, None))


def self_signed(key, cn, ca=True):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    t = now_utc()
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(t - datetime.timedelta(days=1))
            .not_valid_after(t + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def health_cert(signer_key, signer_cert, idk_public, host_public, usage="key_encipherment"):
    t = now_utc()
    flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
    flags[usage] = True
    uri = "urn:vmsec:host-key:" + hashlib.sha256(spki_der(host_public)).hexdigest()
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "host1")]))
            .issuer_name(signer_cert.subject).public_key(idk_public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(t - datetime.timedelta(minutes=5)).not_valid_after(t + datetime.timedelta(hours=8))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
            .add_extension(x509.KeyUsage(**flags), critical=True)
            .sign(signer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def simulate_roll(ingress, tk2, guardian_id, guardian_key):
    """A KPS roll done locally: new TK2 in every wrapping, new MAC, GuardianSignature by guardian_key."""
    root = etree.fromstring(ingress, kpx.PARSER)
    for w in root.find(kpx.k("Wrappings")).findall(kpx.k("Wrapping")):
        ecert = x509.load_der_x509_certificate(kpx.b64d(w.findtext(kpx.k("EncryptionCertificate"))))
        cv = w.find(kpx.k("TransportKey")).find(kpx.k("EncryptedData")).find(kpx.k("CipherValue"))
        cv.text = b64e(ecert.public_key().encrypt(tk2, OAEP))
    canonical = kpx.exc_c14n(root.find(kpx.k("Wrappings")))
    tks = root.find(kpx.k("TransportKeySignature"))
    params = tks.find(kpx.k("KeyDerivationMethod")).find(kpx.k("Parameters"))
    salt = os.urandom(32)
    params.find("{%s}Salt" % kpx.VMSEC).text = b64e(salt)
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=kpx.INFO).derive(tk2)
    tks.find(kpx.k("Signature")).find(kpx.k("SignatureValue")).text = b64e(
        hmac.new(mac_key, canonical, hashlib.sha256).digest())
    gs = root.find(kpx.k("GuardianSignature"))
    gs.set("WrappingId", str(guardian_id))
    gs.find(kpx.k("Signature")).find(kpx.k("SignatureValue")).text = b64e(kpx.sign(guardian_key, canonical))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def cmd_selftest(_args):
    idk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    host = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tk1, tk2 = os.urandom(32), os.urandom(32)
    # Reply decryption, both blob versions, and exact blob checks.
    for version in ("V1.0", "V2.0"):
        got = decrypt_keys(idk, *server_encrypt(idk.public_key(), tk1, tk2, version), version)
        check(got == (tk1, tk2), "selftest: %s keys differ after decryption" % version)
    for version, other in (("V1.0", "V2.0"), ("V2.0", "V1.0")):
        expect_fail(lambda: decrypt_keys(idk, *server_encrypt(idk.public_key(), tk1, tk2, version), other),
                    "a %s blob read as %s" % (version, other))
    expect_fail(lambda: decrypt_keys(idk, *server_encrypt(idk.public_key(), tk1, tk2, "V2.0", policies=1),
                                     "V2.0"), "NumberOfPolicies 1")
    expect_fail(lambda: decrypt_keys(idk, *server_encrypt(idk.public_key(), tk1, tk2, "V1.0", data_size=81),
                                     "V1.0"), "a wrong DataSize")
    t, w, e = server_encrypt(idk.public_key(), tk1, tk2, "V2.0")
    expect_fail(lambda: decrypt_keys(idk, t, w, e[:-1] + bytes([e[-1] ^ 1]), "V2.0"), "a bad GCM tag")
    # PKCS#7 signer bundle as the attestation service serves it (a JSON string).
    skey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = self_signed(skey, "vmsec attestation signer")
    body = json.loads(json.dumps(b64e(pkcs7.serialize_certificates([signer], serialization.Encoding.DER))))
    signers = load_signing_certificates(body)
    check([c.subject for c in signers] == [signer.subject], "selftest: PKCS#7 round trip")
    # Health certificate checks, and the ways they must fail.
    der = health_cert(skey, signer, idk.public_key(), host.public_key())
    verify_health_certificate(der, signers, idk.public_key(), host.public_key())
    expect_fail(lambda: verify_health_certificate(der, signers, idk.public_key(), idk.public_key()),
                "a health certificate for another host key")
    expect_fail(lambda: verify_health_certificate(der, signers, host.public_key(), host.public_key()),
                "a health certificate for another IDK")
    rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rogue = self_signed(rogue_key, "vmsec attestation signer")
    expect_fail(lambda: verify_health_certificate(health_cert(rogue_key, rogue, idk.public_key(), host.public_key()),
                                                  signers, idk.public_key(), host.public_key()),
                "a health certificate from an unknown signer")
    expect_fail(lambda: verify_health_certificate(der, signers, idk.public_key(), host.public_key(),
                                                  now_utc() + datetime.timedelta(hours=9)),
                "an expired health certificate")
    expect_fail(lambda: verify_health_certificate(
        health_cert(skey, signer, idk.public_key(), host.public_key(), "digital_signature"),
        signers, idk.public_key(), host.public_key()), "a health certificate without keyEncipherment")
    # The attestation request's HostKeySignature.
    req = attestation_request(host, idk.public_key())
    items = {i["m_Item1"]: base64.b64decode(i["m_Item2"]) for i in req["ProvidedContent"]}
    host.public_key().verify(items[9], items[8] + items[1], padding.PKCS1v15(), hashes.SHA256())
    check(len(base64.b64decode(req["SessionId"])) == 16, "selftest: SessionId")
    # Request / response / error XML.
    reqx = etree.fromstring(roll_request(b"<kp/>", der))
    check([local(c) for c in reqx][2:] == ["TransferKeyEncryptionAlgorithm", "WrappingKeyEncryptionAlgorithm",
                                          "TransportKeysEncryptionAlgorithm"], "selftest: request shape")
    resp = etree.Element("{%s}RollTransportKeyResponse" % SVC, nsmap={None: SVC})
    for name, value in zip(("EgressProtector", "EncryptedTransferKey", "EncryptedWrappingKey",
                            "EncryptedTransportKeys"), (b"<kp/>", t, w, e)):
        etree.SubElement(resp, "{%s}%s" % (SVC, name)).text = b64e(value)
    check(parse_roll_response(etree.tostring(resp)) == [b"<kp/>", t, w, e], "selftest: response parse")
    err = kps_error(403, b"<Error><Code>HealthCertificateException</Code><Message>m</Message></Error>")
    check((err.status, err.code, err.message) == (403, "HealthCertificateException", "m"), "selftest: error")
    # Protector checks on a KP made by the independent cross-check, rolled locally.
    with tempfile.TemporaryDirectory() as d:
        with contextlib.redirect_stdout(io.StringIO()):
            kpx.make_kp(d)
        ingress = read_kp(os.path.join(d, "kp.xml"))
        tk1 = bytes.fromhex(kpx.read(d, "tk.hex").strip())
        pem = lambda n: kpx.read(d, n, "rb")  # noqa: E731
        gkey = serialization.load_pem_private_key(pem("guardian.signing.key.pem"), password=None)
        fabric = tuple(x509.load_pem_x509_certificate(pem("guardian.%s.cert.pem" % r)).public_bytes(
            serialization.Encoding.DER) for r in ("encryption", "signing"))
        egress = simulate_roll(ingress, tk2, 2, gkey)
        check_roll(ingress, egress, tk1, tk2, fabric)
        expect_fail(lambda: check_roll(ingress, egress, tk2, tk2, fabric), "a wrong TK1")
        expect_fail(lambda: check_roll(ingress, egress, tk1, tk1, fabric), "TK1 == TK2")
        owner = tuple(x509.load_pem_x509_certificate(pem("owner.%s.cert.pem" % r)).public_bytes(
            serialization.Encoding.DER) for r in ("encryption", "signing"))
        expect_fail(lambda: check_roll(ingress, egress, tk1, tk2, owner), "a GuardianSignature not by the fabric")
    print("kps_client: selftest OK")


def main(argv=None):
    p = argparse.ArgumentParser(description="vmsec KPS / attestation client (independent)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("keygen").add_argument("dir")
    sub.add_parser("selftest")
    for name in ("roll", "expect-refusal"):
        s = sub.add_parser(name)
        s.add_argument("dir")
        s.add_argument("--attestation-url", required=True)
        s.add_argument("--key-protection-url", required=True)
        s.add_argument("--ca", required=True)
        s.add_argument("--kp", required=True)
        s.add_argument("--version", choices=("V2.0", "V1.0"), default="V2.0")
        if name == "roll":
            s.add_argument("--egress", required=True)
        else:
            s.add_argument("--status", type=int, required=True)
            s.add_argument("--code", required=True)
    args = p.parse_args(argv)
    handlers = {"keygen": cmd_keygen, "roll": cmd_roll, "expect-refusal": cmd_expect_refusal,
                "selftest": cmd_selftest}
    try:
        handlers[args.cmd](args)
    except Fail as e:
        print("kps_client: FAIL: %s" % e, file=sys.stderr)
        return 1
    except Exception as e:  # an unexpected error is still a failure, on one line
        print("kps_client: FAIL: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
