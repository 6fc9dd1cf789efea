#!/usr/bin/env python3
"""What hostile clients cost a running `vmsec serve` (driven by bench/abuse.sh).

Usage: abuse.py HOST:PORT ADMIN_AUTH PID

Over plain HTTP on loopback, each figure next to its baseline in the same run:
- login timing: median time of a 401 for a known user with a wrong password and for an unknown
  user (each attempt from its own 127.0.0.x address, so the login rate limit is not what is
  measured);
- concurrent wrong passwords: 200 at once from one source, and how many the server hashed
  (`vmsec_password_checks_total`);
- idle flood: an admin Get's latency alone, then with 2,000 idle connections held open from
  another loopback address;
- withheld bodies: resident memory before and while 100 connections of one user each send all
  but the last byte of a 4 MiB body.
Every loop is bounded; every connection goes to loopback.
"""
import base64
import http.client
import socket
import statistics
import sys
import threading
import time

host, port = sys.argv[1].rsplit(":", 1)
port = int(port)
ADMIN = sys.argv[2]
PID = int(sys.argv[3])
VM = "B5314955-3924-42BA-ABF9-793993D340A0"
GET = open("bench/requests/get-ssd.xml").read().replace("{{VM}}", VM).encode()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def post(auth, body=GET, source=None, timeout=30):
    c = http.client.HTTPConnection(host, port, timeout=timeout,
                                   source_address=(source, 0) if source else None)
    t0 = time.perf_counter()
    c.request("POST", "/wsman", body, {"Authorization": "Basic " + auth,
                                       "Content-Type": "application/soap+xml;charset=UTF-8"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, (time.perf_counter() - t0) * 1000


def metric(name):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/metrics", headers={"Authorization": "Basic " + ADMIN})
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def rss_mib():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def median_get(n=50):
    answers = [post(ADMIN) for _ in range(n)]
    assert all(s == 200 for s, _ in answers), answers[:3]
    return statistics.median(t for _, t in answers)


rows = []
# The admin's credentials verified once, as a client's are after its first request.
assert post(ADMIN)[0] == 200

# Login timing. Sources 127.0.1.x and 127.0.2.x: one attempt each.
known = [post(b64("ops:not-the-password"), source=f"127.0.1.{i}") for i in range(1, 41)]
unknown = [post(b64("no-such-user:not-the-password"), source=f"127.0.2.{i}") for i in range(1, 41)]
assert all(s == 401 for s, _ in known + unknown), (known, unknown)
k, u = statistics.median(t for _, t in known), statistics.median(t for _, t in unknown)
rows.append(("401 for a known user, wrong password (median of 40)", f"{k:.1f} ms", ""))
rows.append(("401 for an unknown user (median of 40)", f"{u:.1f} ms", f"{u / k:.2f}× the known user's"))

# 200 concurrent wrong passwords from one source.
before = metric("vmsec_password_checks_total")
statuses = []
lock = threading.Lock()


def wrong():
    try:
        s, _ = post(b64("admin:not-the-password"), source="127.0.3.1")
    except OSError:
        s = "closed"
    with lock:
        statuses.append(s)


threads = [threading.Thread(target=wrong) for _ in range(200)]
for t in threads:
    t.start()
for t in threads:
    t.join()
after = metric("vmsec_password_checks_total")
hashed = None if before is None or after is None else after - before
counts = {s: statuses.count(s) for s in set(statuses)}
rows.append(("200 concurrent wrong passwords from one source: passwords hashed",
             "not counted by this build" if hashed is None else f"{hashed:.0f}",
             "answers " + ", ".join(f"{v}× {k}" for k, v in sorted(counts.items(), key=str))))

# Idle flood from another address.
alone = median_get()
idle = []
for _ in range(2000):
    s = socket.socket()
    s.bind(("127.0.4.1", 0))
    try:
        s.connect((host, port))
    except OSError:
        s.close()
        continue
    idle.append(s)
time.sleep(0.5)
flooded = []
for _ in range(50):
    try:
        flooded.append(post(ADMIN, timeout=10))
    except OSError:
        flooded.append(("failed", 0.0))
ok = [t for s, t in flooded if s == 200]
for s in idle:
    s.close()
rows.append(("admin Get alone (median of 50)", f"{alone:.2f} ms", ""))
rows.append(("admin Get with 2,000 idle connections from another address",
             f"{statistics.median(ok):.2f} ms" if ok else "no answer",
             f"{len(ok)} of 50 answered"))

# 100 bodies of 4 MiB, last byte withheld, by one user.
base = rss_mib()
size = 4 * 1024 * 1024 - 1024
held = []
answered = {}
for _ in range(100):
    s = socket.create_connection((host, port))
    s.sendall((f"POST /wsman HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {ADMIN}\r\n"
               f"Content-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: {size}\r\n\r\n").encode())
    s.settimeout(0.2)
    try:
        s.sendall(b"x" * (size - 1))
    except (socket.timeout, OSError):
        pass
    try:
        line = s.recv(64).split(b"\r\n")[0].decode()
        answered[line] = answered.get(line, 0) + 1
    except (socket.timeout, OSError):
        pass
    held.append(s)
time.sleep(0.5)
peak = rss_mib()
for s in held:
    s.close()
rows.append(("RSS before 100 withheld 4 MiB bodies", f"{base:.0f} MiB", ""))
rows.append(("RSS while they are held", f"{peak:.0f} MiB",
             "answered at once: " + (", ".join(f"{v}× {k}" for k, v in answered.items()) or "none")))

print("| what | figure | beside it |\n|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} |")
