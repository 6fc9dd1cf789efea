#!/usr/bin/env python3
"""Independent cross-check of vmsec key protectors, written against the
profile (docs/specs/key-protector.md) with lxml and cryptography only.

Modes (each takes a directory of files):
  verify-vmsec DIR   check a KP vmsec wrote: DIR/kp.xml, DIR/tk.hex,
                     DIR/guardian.encryption.key.pem, DIR/canonical-wrappings.bin,
                     and optionally DIR/metadata.xml (a guardian's metadata).
  make-kp DIR        build a KP here (own keys, certificates, serialization;
                     the guardian's wrapping uses RSA-OAEP without Parameters,
                     i.e. SHA-1) that vmsec must verify and unwrap: writes DIR/kp.xml,
                     DIR/tk.hex, DIR/{owner,guardian}.{encryption,signing}.{key,cert}.pem
  make-metadata DIR  build a Windows-HGS-style metadata.xml (inclusive C14N,
                     Reference URI="#ID", default-namespace ds:Signature) for
                     DIR/guardian.*: writes DIR/hgs-metadata.xml
Exit status 0 means every check passed.
"""

import base64
import datetime
import hashlib
import hmac
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID
from lxml import etree

KPS = "http://schemas.microsoft.com/kps/2014/07"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
VMSEC = "urn:vmsec:kp:v1"
RSA_OAEP = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
HKDF_URI = "http://www.w3.org/2021/04/xmldsig-more#hkdf"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
MGF1_SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"
INFO = b"vmsec kp transport key signature v1"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
C14N_INCL = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def k(name):
    return "{%s}%s" % (KPS, name)


def ds(name):
    return "{%s}%s" % (DS, name)


def b64d(text):
    return base64.b64decode("".join(text.split()))


def b64e(data):
    return base64.b64encode(data).decode("ascii")


def fail(msg):
    print("kp_crosscheck: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def exc_c14n(element):
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def rsa_verify(cert, sig, data, what):
    try:
        cert.public_key().verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    except Exception as e:  # cryptography raises InvalidSignature
        fail("%s does not verify: %r" % (what, e))


def read(d, name, mode="r"):
    with open(os.path.join(d, name), mode) as f:
        return f.read()


def write(d, name, data):
    with open(os.path.join(d, name), "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


# ---------------------------------------------------------------- mode A


def verify_vmsec(d):
    root = etree.fromstring(read(d, "kp.xml", "rb"), PARSER)
    check(root.tag == k("Protector"), "root is %s" % root.tag)
    wrappings_el = root.find(k("Wrappings"))
    canonical = exc_c14n(wrappings_el)
    check(
        canonical == read(d, "canonical-wrappings.bin", "rb"),
        "lxml's exclusive C14N of <Wrappings> differs from vmsec's",
    )
    wraps = {}
    for w in wrappings_el.findall(k("Wrapping")):
        wid = int(w.findtext(k("Id")))
        check(wid not in wraps, "duplicate Id %d" % wid)
        scs = w.find(k("SigningCertificateSignature"))
        enc = w.find(k("TransportKey")).find(k("EncryptedData"))
        check(enc.get("Algorithm") == RSA_OAEP, "wrapping %d: OAEP URI" % wid)
        params = enc.find(k("Parameters"))
        check(params.find(ds("DigestMethod")).get("Algorithm") == SHA256_URI, "digest")
        check(params.find("{%s}MGF" % XENC11).get("Algorithm") == MGF1_SHA256, "mgf")
        wraps[wid] = {
            "scert_der": b64d(w.findtext(k("SigningCertificate"))),
            "ecert_der": b64d(w.findtext(k("EncryptionCertificate"))),
            "parent": int(scs.get("ParentWrappingId")),
            "scs": scs.find(k("Signature")),
            "ecs": w.find(k("EncryptionCertificateSignature")).find(k("Signature")),
            "cipher": b64d(enc.findtext(k("CipherValue"))),
        }
    owners = [i for i, w in wraps.items() if w["parent"] == i]
    check(len(owners) == 1, "owners: %r" % owners)
    for wid, w in wraps.items():
        w["scert"] = x509.load_der_x509_certificate(w["scert_der"])
        w["ecert"] = x509.load_der_x509_certificate(w["ecert_der"])
    for wid, w in wraps.items():
        seen, cur = set(), wid
        while wraps[cur]["parent"] != cur:
            check(cur not in seen, "cycle at %d" % wid)
            seen.add(cur)
            cur = wraps[cur]["parent"]
        for sig_el, signer, data, what in (
            (w["scs"], wraps[w["parent"]]["scert"], w["scert_der"], "SigningCertificateSignature"),
            (w["ecs"], w["scert"], w["ecert_der"], "EncryptionCertificateSignature"),
        ):
            check(sig_el.get("Algorithm") == RSA_SHA256, "%s algorithm" % what)
            rsa_verify(signer, b64d(sig_el.findtext(k("SignatureValue"))), data,
                       "%s of wrapping %d" % (what, wid))
    gs = root.find(k("GuardianSignature"))
    signer = int(gs.get("WrappingId"))
    rsa_verify(wraps[signer]["scert"], b64d(gs.find(k("Signature")).findtext(k("SignatureValue"))),
               canonical, "GuardianSignature")

    key = serialization.load_pem_private_key(
        read(d, "guardian.encryption.key.pem", "rb"), password=None)
    n = key.public_key().public_numbers().n
    mine = [w for w in wraps.values() if w["ecert"].public_key().public_numbers().n == n]
    check(len(mine) == 1, "guardian key matches %d wrappings" % len(mine))
    tk = key.decrypt(mine[0]["cipher"], padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    check(tk.hex() == read(d, "tk.hex").strip(), "decrypted TK differs from vmsec's")

    tks = root.find(k("TransportKeySignature"))
    kdm = tks.find(k("KeyDerivationMethod"))
    check(kdm.get("Algorithm") == HKDF_URI, "KDF URI")
    salt = b64d(kdm.find(k("Parameters")).findtext("{%s}Salt" % VMSEC))
    info = kdm.find(k("Parameters")).findtext("{%s}Info" % VMSEC).encode()
    check(info == INFO and len(salt) == 32, "HKDF parameters")
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(tk)
    sig = tks.find(k("Signature"))
    check(sig.get("Algorithm") == HMAC_SHA256, "MAC URI")
    expected = hmac.new(mac_key, canonical, hashlib.sha256).digest()
    check(hmac.compare_digest(expected, b64d(sig.findtext(k("SignatureValue")))),
          "TransportKeySignature HMAC differs")

    if os.path.exists(os.path.join(d, "metadata.xml")):
        verify_metadata(read(d, "metadata.xml", "rb"))
    print("kp_crosscheck: verify-vmsec OK (%d wrappings)" % len(wraps))


def verify_metadata(data):
    tree = etree.ElementTree(etree.fromstring(data, PARSER))
    root = tree.getroot()
    info = root.find(k("GuardianInformation"))
    scert_der = b64d(info.findtext(k("SigningCertificate")))
    ecert_der = b64d(info.findtext(k("EncryptionCertificate")))
    scert = x509.load_der_x509_certificate(scert_der)
    rsa_verify(scert, b64d(info.find(k("EncryptionCertificateSignature")).findtext(k("SignatureValue"))),
               ecert_der, "metadata EncryptionCertificateSignature")
    rsa_verify(scert, b64d(info.find(k("SigningCertificateSelfSignature")).findtext(k("SignatureValue"))),
               scert_der, "metadata SigningCertificateSelfSignature")
    sig = root.find(ds("Signature"))
    si = sig.find(ds("SignedInfo"))
    check(si.find(ds("CanonicalizationMethod")).get("Algorithm") == EXC_C14N, "metadata c14n")
    ref = si.find(ds("Reference"))
    check(ref.get("URI") == "", "metadata Reference URI")
    # Enveloped-signature transform: drop ds:Signature but keep the text after it.
    copy = etree.ElementTree(etree.fromstring(data, PARSER))
    csig = copy.getroot().find(ds("Signature"))
    prev = csig.getprevious()
    tail = csig.tail or ""
    if prev is not None:
        prev.tail = (prev.tail or "") + tail
    else:
        csig.getparent().text = (csig.getparent().text or "") + tail
    csig.getparent().remove(csig)
    digest = hashlib.sha256(
        etree.tostring(copy, method="c14n", exclusive=True, with_comments=False)).digest()
    check(digest == b64d(ref.findtext(ds("DigestValue"))), "metadata DigestValue")
    rsa_verify(scert, b64d(sig.findtext(ds("SignatureValue"))), exc_c14n(si), "metadata ds:Signature")


# ---------------------------------------------------------------- mode B


def make_guardian(name):
    out = {}
    for role, usage in (("encryption", "key_encipherment"), ("signing", "digital_signature")):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(
            NameOID.COMMON_NAME, "Shielded VM %s Certificate (%s)" % (role.capitalize(), name))])
        flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                     crl_sign=False, encipher_only=False, decipher_only=False)
        flags[usage] = True
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=365))
                .add_extension(x509.KeyUsage(**flags), critical=True)
                .sign(key, hashes.SHA256()))
        out[role] = (key, cert)
    return out


def sign(key, data):
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def make_kp(d):
    owner, guardian = make_guardian("py-owner"), make_guardian("py-guardian")
    tk = os.urandom(32)
    # A different but equivalent serialization: prefixed KPS namespace, no indentation.
    nsmap = {"kp": KPS}
    root = etree.Element(k("Protector"), nsmap=nsmap)
    wrappings = etree.SubElement(root, k("Wrappings"))
    owner_sign_key = owner["signing"][0]
    for wid, g in ((1, owner), (2, guardian)):
        skey, scert = g["signing"]
        ekey, ecert = g["encryption"]
        sder = scert.public_bytes(serialization.Encoding.DER)
        eder = ecert.public_bytes(serialization.Encoding.DER)
        w = etree.SubElement(wrappings, k("Wrapping"))
        etree.SubElement(w, k("Id")).text = str(wid)
        etree.SubElement(w, k("SigningCertificate")).text = b64e(sder)
        scs = etree.SubElement(w, k("SigningCertificateSignature"), ParentWrappingId="1")
        s = etree.SubElement(scs, k("Signature"), Algorithm=RSA_SHA256)
        etree.SubElement(s, k("SignatureValue")).text = b64e(sign(owner_sign_key, sder))
        etree.SubElement(w, k("EncryptionCertificate")).text = b64e(eder)
        ecs = etree.SubElement(w, k("EncryptionCertificateSignature"))
        s = etree.SubElement(ecs, k("Signature"), Algorithm=RSA_SHA256)
        etree.SubElement(s, k("SignatureValue")).text = b64e(sign(skey, eder))
        tkel = etree.SubElement(w, k("TransportKey"))
        ed = etree.SubElement(tkel, k("EncryptedData"), Algorithm=RSA_OAEP)
        if wid == 1:
            params = etree.SubElement(ed, k("Parameters"))
            etree.SubElement(params, "{%s}DigestMethod" % DS, nsmap={"dsig": DS}, Algorithm=SHA256_URI)
            etree.SubElement(params, "{%s}MGF" % XENC11, nsmap={"x11": XENC11}, Algorithm=MGF1_SHA256)
            oaep_hash = hashes.SHA256()
        else:
            # No Parameters: the XML Encryption default, SHA-1 with MGF1-SHA-1.
            oaep_hash = hashes.SHA1()
        cipher = ecert.public_key().encrypt(tk, padding.OAEP(
            mgf=padding.MGF1(oaep_hash), algorithm=oaep_hash, label=None))
        etree.SubElement(ed, k("CipherValue")).text = b64e(cipher)
    salt = os.urandom(32)
    tks = etree.SubElement(root, k("TransportKeySignature"))
    kdm = etree.SubElement(tks, k("KeyDerivationMethod"), Algorithm=HKDF_URI)
    params = etree.SubElement(kdm, k("Parameters"))
    etree.SubElement(params, "{%s}Salt" % VMSEC, nsmap={"vm": VMSEC}).text = b64e(salt)
    etree.SubElement(params, "{%s}Info" % VMSEC, nsmap={"vm": VMSEC}).text = INFO.decode()
    mac_sig = etree.SubElement(tks, k("Signature"), Algorithm=HMAC_SHA256)
    mac_value = etree.SubElement(mac_sig, k("SignatureValue"))
    gs = etree.SubElement(root, k("GuardianSignature"), WrappingId="1")
    gsig = etree.SubElement(gs, k("Signature"), Algorithm=RSA_SHA256)
    gs_value = etree.SubElement(gsig, k("SignatureValue"))

    canonical = exc_c14n(wrappings)
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=INFO).derive(tk)
    mac_value.text = b64e(hmac.new(mac_key, canonical, hashlib.sha256).digest())
    gs_value.text = b64e(sign(owner_sign_key, canonical))

    write(d, "kp.xml", etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    write(d, "tk.hex", tk.hex() + "\n")
    for name, g in (("owner", owner), ("guardian", guardian)):
        for role in ("encryption", "signing"):
            key, cert = g[role]
            write(d, "%s.%s.key.pem" % (name, role), key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            write(d, "%s.%s.cert.pem" % (name, role), cert.public_bytes(serialization.Encoding.PEM))
    print("kp_crosscheck: make-kp wrote %s" % os.path.join(d, "kp.xml"))


def make_metadata(d):
    g = make_guardian("hgs")
    skey, scert = g["signing"]
    _, ecert = g["encryption"]
    sder = scert.public_bytes(serialization.Encoding.DER)
    eder = ecert.public_bytes(serialization.Encoding.DER)
    root = etree.Element(k("Metadata"), nsmap={None: KPS}, Version="1", ID="_hgs-metadata-1")
    info = etree.SubElement(root, k("GuardianInformation"))
    etree.SubElement(info, k("Version")).text = "1"
    etree.SubElement(info, k("EncryptionCertificate")).text = b64e(eder)
    etree.SubElement(info, k("SigningCertificate")).text = b64e(sder)
    for name, data in (("EncryptionCertificateSignature", eder), ("SigningCertificateSelfSignature", sder)):
        el = etree.SubElement(info, k(name), Algorithm=RSA_SHA256)
        etree.SubElement(el, k("SignatureValue")).text = b64e(sign(skey, data))
    # Digest first (inclusive C14N of Metadata without the signature), then the signature.
    digest = hashlib.sha256(etree.tostring(root, method="c14n")).digest()
    sig = etree.SubElement(root, ds("Signature"), nsmap={None: DS})
    si = etree.SubElement(sig, ds("SignedInfo"))
    etree.SubElement(si, ds("CanonicalizationMethod"), Algorithm=C14N_INCL)
    etree.SubElement(si, ds("SignatureMethod"), Algorithm=RSA_SHA256)
    ref = etree.SubElement(si, ds("Reference"), URI="#_hgs-metadata-1")
    tr = etree.SubElement(ref, ds("Transforms"))
    etree.SubElement(tr, ds("Transform"), Algorithm=ENVELOPED)
    etree.SubElement(ref, ds("DigestMethod"), Algorithm=SHA256_URI)
    etree.SubElement(ref, ds("DigestValue")).text = b64e(digest)
    value = etree.SubElement(sig, ds("SignatureValue"))
    kinfo = etree.SubElement(etree.SubElement(sig, ds("KeyInfo")), ds("X509Data"))
    etree.SubElement(kinfo, ds("X509Certificate")).text = b64e(sder)
    # Inclusive C14N of SignedInfo in place: its in-scope namespaces are just the
    # default ds one, so it equals the C14N of SignedInfo as a document of its own.
    # (libxml2's C14N of an in-document subtree wrongly emits xmlns="" on some
    # descendants here, so the subtree is not canonicalized in place.)
    standalone = etree.fromstring(etree.tostring(si), PARSER)
    value.text = b64e(sign(skey, etree.tostring(etree.ElementTree(standalone), method="c14n")))
    write(d, "hgs-metadata.xml", etree.tostring(root, xml_declaration=True, encoding="utf-8"))
    write(d, "hgs.encryption.cert.pem", ecert.public_bytes(serialization.Encoding.PEM))
    write(d, "hgs.signing.cert.pem", scert.public_bytes(serialization.Encoding.PEM))
    print("kp_crosscheck: make-metadata wrote %s" % os.path.join(d, "hgs-metadata.xml"))


def main(argv):
    modes = {"verify-vmsec": verify_vmsec, "make-kp": make_kp, "make-metadata": make_metadata}
    if len(argv) != 3 or argv[1] not in modes:
        print(__doc__, file=sys.stderr)
        return 2
    modes[argv[1]](argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
