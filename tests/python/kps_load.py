#!/usr/bin/env python3
"""Load for the KPS crash test: THREADS threads send RollTransportKey with one health
certificate until the server goes away, then print how many releases were answered (HTTP 200,
whole reply read). Usage: kps_load.py DIR ATT_URL KP_URL CA KP THREADS"""

import sys
import threading

import requests

sys.path.insert(0, __import__("os").path.dirname(__file__))
import kps_client  # noqa: E402


def main(argv):
    d, att, kp_url, ca, kp_path, threads = argv
    host_key = kps_client.load_host_key(d)
    from cryptography.hazmat.primitives.asymmetric import rsa

    idk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    health = kps_client.host_key_attest(att, ca, host_key, idk.public_key())
    body = kps_client.roll_request(open(kp_path, "rb").read(), health)
    url = kp_url.rstrip("/") + "/service/V2.0/rolltransportkey"
    answered = [0]
    lock = threading.Lock()

    def worker():
        s = requests.Session()
        while True:
            try:
                r = s.post(url, data=body, headers={"Content-Type": "application/xml; charset=utf-8"},
                           verify=ca, timeout=10)
            except requests.RequestException:
                return
            if r.status_code == 200 and r.content.endswith(b"</RollTransportKeyResponse>\n"):
                with lock:
                    answered[0] += 1

    ts = [threading.Thread(target=worker) for _ in range(int(threads))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(answered[0])


if __name__ == "__main__":
    main(sys.argv[1:])
