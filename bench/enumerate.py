#!/usr/bin/env python3
"""Enumerations of a large store through WS-Management: time and server memory.

Each client thread opens its own keep-alive HTTPS connection, sends Enumerate (not optimized)
for CLASS, then Pull with MaxElements PER_PULL until the context ends or LIMIT instances
arrived (then Release). All clients start together, so their enumerations are open at the
same time. The server's resident memory is sampled every 50 ms from /proc/PID/status.

Usage: enumerate.py HOST:PORT AUTH_B64 PID CLASS CLIENTS PER_PULL LIMIT
Prints one RESULT line: instances (per client), seconds, instances/s (all clients),
rss_before_mib, rss_peak_mib, faults (the first fault's subcode, or 0).
"""
import http.client
import re
import ssl
import sys
import threading
import time
import uuid

V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
WSEN = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/"


def envelope(action, uri, body):
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>'
        "<a:To>http://localhost/wsman</a:To><w:ResourceURI>%s</w:ResourceURI>"
        "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
        "</a:Address></a:ReplyTo><a:Action>%s</a:Action><w:MaxEnvelopeSize>4096000</w:MaxEnvelopeSize>"
        "<a:MessageID>uuid:%s</a:MessageID></s:Header><s:Body>%s</s:Body></s:Envelope>"
        % (uri, action, uuid.uuid4(), body)).encode()


def rss_mib(pid):
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def main():
    addr, auth, pid, cls, clients, per_pull, limit = sys.argv[1:8]
    clients, per_pull, limit = int(clients), int(per_pull), int(limit)
    host, port = addr.rsplit(":", 1)
    uri = V2 + cls
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": "Basic " + auth,
               "Content-Type": "application/soap+xml;charset=UTF-8"}
    counts, faults = [0] * clients, []
    start = threading.Barrier(clients + 1)

    def call(conn, body):
        conn.request("POST", "/wsman", body, headers)
        r = conn.getresponse()
        text = r.read().decode()
        if r.status != 200:
            m = re.search(r"Subcode>.*?<s:Value>[^:<]*:([^<]+)</s:Value>", text, re.S)
            raise RuntimeError(m.group(1) if m else "HTTP %d" % r.status)
        return text

    def client(i):
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=600)
        start.wait()
        try:
            text = call(conn, envelope(WSEN + "Enumerate", uri, "<n:Enumerate/>"))
            context = re.search(r"EnumerationContext>([^<]+)<", text).group(1)
            while True:
                text = call(conn, envelope(WSEN + "Pull", uri,
                    "<n:Pull><n:EnumerationContext>%s</n:EnumerationContext>"
                    "<n:MaxElements>%d</n:MaxElements></n:Pull>" % (context, per_pull)))
                counts[i] += len(re.findall(r"<p:%s[ >]" % cls, text))
                m = re.search(r"EnumerationContext>([^<]+)<", text)
                if not m:
                    break
                context = m.group(1)
                if counts[i] >= limit:
                    call(conn, envelope(WSEN + "Release", uri,
                        "<n:Release><n:EnumerationContext>%s</n:EnumerationContext></n:Release>"
                        % context))
                    break
        except Exception as e:  # a fault ends this client; it is reported
            faults.append(str(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    before = peak = rss_mib(pid)
    start.wait()
    t0 = time.monotonic()
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mib(pid))
        time.sleep(0.05)
    secs = time.monotonic() - t0
    print("RESULT instances=%s seconds=%.1f rate=%.0f rss_before=%.0f rss_peak=%.0f faults=%s" % (
        "/".join(map(str, sorted(set(counts)))), secs, sum(counts) / secs, before, peak,
        faults[0].replace(" ", "_") if faults else 0))


main()
