#!/usr/bin/env python3
"""SetKeyProtector jobs completed per second, end to end through WS-Management.

Each client thread has its own keep-alive HTTPS connection and its own VM, and loops: Invoke
SetKeyProtector with the 13,887-byte golden key protector (as uint8[] elements, the way WinRM
clients send it), read the job reference from the reply, then poll the Msvm_ConcreteJob with
Get every POLL seconds until it is finished, checking it Completed (JobState 7). A job counts
when its client has seen it completed.

Usage: jobs.py HOST:PORT AUTH_B64 KP_FILE SECONDS THREADS VM_GUID...   (prints one RESULT line)
"""
import http.client
import re
import ssl
import sys
import threading
import time
import uuid

V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2"
SERVICE = V2 + "/Msvm_SecurityService"
JOB = V2 + "/Msvm_ConcreteJob"
GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
POLL = 0.005


def envelope(action, uri, body, selectors=None):
    sel = ""
    if selectors:
        sel = "<w:SelectorSet>%s</w:SelectorSet>" % "".join(
            '<w:Selector Name="%s">%s</w:Selector>' % kv for kv in selectors.items())
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
        "<a:To>http://localhost/wsman</a:To><w:ResourceURI>%s</w:ResourceURI>"
        "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
        "</a:Address></a:ReplyTo><a:Action>%s</a:Action><w:MaxEnvelopeSize>4096000</w:MaxEnvelopeSize>"
        "<a:MessageID>uuid:%s</a:MessageID>%s</s:Header><s:Body>%s</s:Body></s:Envelope>"
        % (uri, action, uuid.uuid4(), sel, body)).encode()


def set_kp_body(vm, kp):
    ssd = ('&lt;INSTANCE CLASSNAME="Msvm_SecuritySettingData"&gt;&lt;PROPERTY NAME="InstanceID" '
           'TYPE="string"&gt;&lt;VALUE&gt;Microsoft:%s&lt;/VALUE&gt;&lt;/PROPERTY&gt;&lt;/INSTANCE&gt;' % vm)
    return ('<p:SetKeyProtector_INPUT xmlns:p="%s"><p:SecuritySettingData>%s</p:SecuritySettingData>%s'
            "</p:SetKeyProtector_INPUT>" % (SERVICE, ssd, "".join("<p:KeyProtector>%d</p:KeyProtector>" % b for b in kp)))


class Client:
    def __init__(self, addr, auth):
        host, port = addr.rsplit(":", 1)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
        self.headers = {"Content-Type": "application/soap+xml;charset=UTF-8", "Authorization": "Basic " + auth}

    def post(self, body):
        self.conn.request("POST", "/wsman", body, self.headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("HTTP %d: %s" % (r.status, data[:300]))
        return data.decode()


def worker(addr, auth, vm, kp, deadline, out, errors):
    c = Client(addr, auth)
    request = envelope(SERVICE + "/SetKeyProtector", SERVICE, set_kp_body(vm, kp))
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            reply = c.post(request)
            rv = re.search(r"<p:ReturnValue>(\d+)</p:ReturnValue>", reply)
            if not rv or rv.group(1) != "4096":
                raise RuntimeError("SetKeyProtector did not start a job: %s" % reply[-400:])
            jid = re.search(r'Name="InstanceID">([^<]+)<', reply).group(1)
            get = envelope(GET, JOB, "", {"InstanceID": jid})
            while True:
                state = int(re.search(r"<p:JobState>(\d+)</p:JobState>", c.post(get)).group(1))
                if state >= 7:
                    break
                time.sleep(POLL)
            if state != 7:
                raise RuntimeError("job %s ended in state %d" % (jid, state))
            out.append(time.monotonic() - t0)
        except Exception as e:  # counted and shown, never hidden
            errors.append(repr(e))
            c = Client(addr, auth)


def main():
    addr, auth, kp_file, seconds, threads = sys.argv[1:6]
    vms = sys.argv[6:]
    kp = open(kp_file, "rb").read()
    threads, seconds = int(threads), float(seconds)
    assert len(vms) >= threads, "one VM per thread"
    out, errors = [], []
    deadline = time.monotonic() + seconds
    ts = [threading.Thread(target=worker, args=(addr, auth, vms[i], kp, deadline, out, errors)) for i in range(threads)]
    start = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - start
    lat = sorted(out)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")
    print("RESULT jobs_per_s=%.1f p50_ms=%.1f p99_ms=%.1f jobs=%d errors=%d" % (
        len(out) / elapsed, pct(0.50), pct(0.99), len(out), len(errors)))
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)


if __name__ == "__main__":
    main()
