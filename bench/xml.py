#!/usr/bin/env python3
"""Hostile XML against one running server: time to refuse, and an admin's Get under load.

Usage: xml.py HOST:PORT ADMIN_AUTH_B64 READER_AUTH_B64 VM REPEATS LOAD_SECONDS [before]

Every request goes over its own keep-alive HTTPS connection per thread. Prints Markdown rows:

1. For plain nesting and namespace nesting (each level declares a new prefix) 1,000, 10,000
   and 100,000 deep, and for namespace-declaration floods as large as the 4 MiB body limit
   allows: the median time from sending the request to the end of its answer over REPEATS
   requests, the answer's status, and next to it the median of REPEATS normal Gets
   (Msvm_SecuritySettingData) sent right after.
2. The admin's Get latency (p50, p99, over LOAD_SECONDS) with no load, then while 16 reader
   clients send, without pause, the most expensive body the parser's limits let through, at
   16 and 32 KiB (up to which bodies are read on the connection's thread, depending on the
   server's version) and at 4 MiB (read on a blocking thread).

With `before` (a server built from the code before vmsec-xml), namespace nests deeper than
3,000 are left out (10,000 would take about 10 minutes a request: the cost grew as n³), those
of 2,000 and 3,000 are sent once, and the load is the costliest 32 KiB body that code let
through: a namespace nest of 1,400 levels.
"""
import http.client
import ssl
import statistics
import sys
import threading
import time

V2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2/"
BODY_LIMIT = 4 * 1024 * 1024
MAX_DEPTH, MAX_ATTRIBUTES, MAX_DECLARATIONS = 64, 64, 128


def get_ssd(vm, header=""):
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header>%s'
        "<a:To>http://localhost/wsman</a:To><w:ResourceURI>%sMsvm_SecuritySettingData</w:ResourceURI>"
        "<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
        "</a:Address></a:ReplyTo><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action>"
        "<w:MaxEnvelopeSize>512000</w:MaxEnvelopeSize><a:MessageID>uuid:00000000-0000-0000-0000-000000000002"
        '</a:MessageID><w:SelectorSet><w:Selector Name="InstanceID">Microsoft:%s</w:Selector>'
        "</w:SelectorSet></s:Header><s:Body/></s:Envelope>" % (header, V2, vm))


def plain_nest(n):
    return "<a>" * n + "</a>" * n


def ns_nest(n):
    return "".join('<a xmlns:p%d="u">' % i for i in range(n)) + "</a>" * n


def flood_siblings(vm):
    """Sibling header elements each declaring a namespace, up to the body limit."""
    base = len(get_ssd(vm))
    one = '<n%d:h xmlns:n%d="urn:n"/>'
    parts, size, i = [], base, 0
    while True:
        p = one % (i, i)
        if size + len(p) > BODY_LIMIT:
            break
        parts.append(p)
        size += len(p)
        i += 1
    return get_ssd(vm, "".join(parts))


def flood_one_element(vm):
    """Namespace declarations on one header element, up to the body limit."""
    base = len(get_ssd(vm, "<x:h></x:h>"))
    decls, size, i = [], base, 0
    while True:
        d = ' xmlns:x%d="urn:x"' % i
        if size + len(d) > BODY_LIMIT:
            break
        decls.append(d)
        size += len(d)
        i += 1
    return get_ssd(vm, '<x0:h%s></x0:h>' % "".join(decls))


def worst_allowed(vm, limit):
    """The costliest body found that passes every limit: all 128 namespace declarations (64 on
    each of two nested header elements, the envelope's three taken from the second), then
    elements nested down to the depth limit (or through half the bytes), each with 63 attributes in the prefix that sits last in
    the in-scope list (q63, copied after r0:h's own), so that every name lookup walks all of it and every element's duplicate check
    compares 63 expanded names pairwise; then as many such elements as fit in `limit` bytes."""
    first = "".join(' xmlns:q%d="urn:q%d"' % (i, i) for i in range(MAX_ATTRIBUTES))
    second = "".join(' xmlns:r%d="urn:r%d"' % (i, i) for i in range(MAX_DECLARATIONS - 3 - MAX_ATTRIBUTES))
    attrs = "".join(' q63:a%d=""' % i for i in range(MAX_ATTRIBUTES - 1))
    # Depth: Envelope, Header, q0:h, r0:h are 4; the nest fills the rest, or half the bytes.
    level = "<q63:d%s></q63:d>" % attrs
    levels = min(MAX_DEPTH - 5, limit // 2 // len(level))
    elem = "<q63:e%s/>" % attrs
    head = '<q0:h%s><r0:h%s>%s' % (first, second, "<q63:d%s>" % attrs * levels)
    tail = "</q63:d>" * levels + "</r0:h></q0:h>"
    base = len(get_ssd(vm, head + tail))
    count = max(0, (limit - base) // len(elem))
    return get_ssd(vm, head + elem * count + tail)


def connect(host, port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection(host, port, context=ctx, timeout=120)


class Client:
    def __init__(self, host, port, auth):
        self.host, self.port = host, port
        self.headers = {"Authorization": "Basic " + auth,
                        "Content-Type": "application/soap+xml;charset=UTF-8"}
        self.conn = connect(host, port)

    def post(self, body):
        """Seconds until the whole answer arrived, and its status."""
        for attempt in (0, 1):
            try:
                t0 = time.perf_counter()
                self.conn.request("POST", "/wsman", body, self.headers)
                r = self.conn.getresponse()
                r.read()
                secs = time.perf_counter() - t0
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = connect(self.host, self.port)
                return secs, r.status
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = connect(self.host, self.port)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def ms(x):
    return "%.2f ms" % (x * 1000) if x < 1 else "%.2f s" % x


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    addr, admin_auth, reader_auth, vm, repeats, load_secs = sys.argv[1:7]
    before = sys.argv[7:] == ["before"]
    repeats, load_secs = int(repeats), float(load_secs)
    host, port = addr.rsplit(":", 1)
    port = int(port)
    admin = Client(host, port, admin_auth)
    get = get_ssd(vm).encode()
    secs, status = admin.post(get)
    assert status == 200, status
    for _ in range(20):
        admin.post(get)

    def median_get():
        return statistics.median(admin.post(get)[0] for _ in range(repeats))

    print("| body | size | answer | time to refuse (median of %d) | normal Get (median of %d) |" % (repeats, repeats))
    print("|---|---|---|---|---|")
    cases = []
    for n in (1000, 10000, 100000):
        cases.append(("plain nesting, %s deep" % format(n, ","), plain_nest(n)))
    for n in ((1000, 2000, 3000) if before else (1000, 10000, 100000)):
        cases.append(("namespace nesting, %s deep" % format(n, ","), ns_nest(n)))
    cases.append(("namespace declarations on sibling elements, up to 4 MiB", flood_siblings(vm)))
    cases.append(("namespace declarations on one element, up to 4 MiB", flood_one_element(vm)))
    for name, body in cases:
        body = body.encode()
        assert len(body) <= BODY_LIMIT, (name, len(body))
        times, statuses = [], set()
        slow = before and body.count(b"xmlns:p") >= 2000
        for _ in range(1 if slow else repeats):
            secs, status = admin.post(body)
            times.append(secs)
            statuses.add(status)
        print("| %s | %d KB | %s | %s | %s |" % (
            name + (" (once)" if slow else ""), len(body) // 1000, "/".join(map(str, sorted(statuses))),
            ms(statistics.median(times)), ms(median_get())), flush=True)

    print()
    print("| load | worst body | its answer | reader requests answered (refused: 503 or closed) | admin Get p50 | admin Get p99 | admin Gets |")
    print("|---|---|---|---|---|---|---|")

    def admin_gets(seconds):
        lat = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            lat.append(admin.post(get)[0])
        return lat

    lat = admin_gets(load_secs)
    print("| none | — | — | — | %s | %s | %d |" % (ms(percentile(lat, 50)), ms(percentile(lat, 99)), len(lat)), flush=True)
    loads = [(32 * 1024, "32 KiB")]
    if not before:
        loads = [(16 * 1024, "16 KiB")] + loads + [(BODY_LIMIT, "4 MiB")]
    for limit, label in loads:
        worst = (ns_nest(1400) if before else worst_allowed(vm, limit)).encode()
        assert len(worst) <= limit, len(worst)
        probe = Client(host, port, reader_auth)
        _, worst_status = probe.post(worst)
        stop = threading.Event()
        sent = [0] * 16
        refused = [0] * 16
        ready = threading.Barrier(17)

        def send(c, i):
            # Past the reader's share of body memory the server answers 503 and closes,
            # often before the whole body is written: a refusal, and the reader goes on.
            try:
                _, status = c.post(worst)
            except (http.client.HTTPException, OSError):
                status = None
            if status == 200 or status == 400:
                sent[i] += 1
            else:
                refused[i] += 1

        def reader(i):
            c = Client(host, port, reader_auth)
            send(c, i)  # credentials verified once, as a reader's repeated requests are
            ready.wait()
            while not stop.is_set():
                send(c, i)

        threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(16)]
        for t in threads:
            t.start()
        ready.wait()
        lat = admin_gets(load_secs)
        stop.set()
        for t in threads:
            t.join(timeout=120)
        print("| 16 readers | %s (%d bytes) | %d | %d (%d refused) | %s | %s | %d |" % (
            label, len(worst), worst_status, sum(sent), sum(refused), ms(percentile(lat, 50)),
            ms(percentile(lat, 99)), len(lat)), flush=True)


main()
