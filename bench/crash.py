#!/usr/bin/env python3
"""Crash safety: SIGKILL `vmsec serve` (and `vmsec tpm start`) at random moments under load.

Each round starts `vmsec serve` on a data directory shared by all rounds, drives it for a
random 50-1500 ms with WS-Man clients (SetKeyProtector with one of two valid key protectors,
RestoreLastKnownGoodKeyProtector, ModifySecuritySettings toggling
EncryptStateAndVmMigrationTraffic, each job polled to its end as a client does) and a CLI
thread running `vmsec tpm start` / `tpm stop` on the same data directory, then kills the
server with SIGKILL, and half of the time a running `tpm start` too. After every kill it
restarts the server and checks:

  1. every job a client saw Completed is in the store as Completed, and its effect is there:
     a SetKeyProtector's key protector is the VM's current one or in its history, and a
     ModifySecuritySettings that was the VM's last completed one is the VM's setting;
  2. no job is left New or Running;
  3. every stored key protector (current, last known good, history) verifies (`vmsec kp verify`);
  4. the last known good and the sealed state key agree with the current key protector:
     `tpm start` then `tpm stop` succeed for every VM;
  5. the audit log has no gap (seq runs without holes), holds a record for every method
     call a client got an answer to, and one for every job the store has as Completed.

With --postgres URL --pg-dir DIR (bench/crash-pg.sh) the store is that PostgreSQL database
instead of the SQLite file, and every --pg-every'th round the PostgreSQL server itself is
killed with SIGKILL mid-load (all its processes, as a crash of its machine would) and started
again before the checks, which then read the database with psql.

Prints `kills survived: N, violations: M` and exits 1 on any violation.
Usage: crash.py VMSEC_BIN GOLDEN_KP --kills N [--seed S] [--vms V] [--postgres URL --pg-dir DIR]
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jobs import GET, JOB, SERVICE, envelope, set_kp_body  # noqa: E402

JOB_DONE = {7: "Completed", 8: "Terminated", 9: "Killed", 10: "Exception"}


def ssd(vm, extra=""):
    return ('&lt;INSTANCE CLASSNAME="Msvm_SecuritySettingData"&gt;&lt;PROPERTY NAME="InstanceID" '
            'TYPE="string"&gt;&lt;VALUE&gt;Microsoft:%s&lt;/VALUE&gt;&lt;/PROPERTY&gt;%s&lt;/INSTANCE&gt;' % (vm, extra))


def method_body(method, vm, extra=""):
    return ('<p:%s_INPUT xmlns:p="%s"><p:SecuritySettingData>%s</p:SecuritySettingData></p:%s_INPUT>'
            % (method, SERVICE, ssd(vm, extra), method))


class Http:
    def __init__(self, addr, auth):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.headers = {"Content-Type": "application/soap+xml;charset=UTF-8", "Authorization": "Basic " + auth}

    def post(self, body):
        self.conn.request("POST", "/wsman", body, self.headers)
        r = self.conn.getresponse()
        data = r.read().decode()
        if r.status != 200:
            raise RuntimeError("HTTP %d: %s" % (r.status, data[:300]))
        return data


class SqliteRows:
    """The checks' queries on the SQLite file."""
    def __init__(self, data):
        self.path = os.path.join(data, "vmsec.db")

    def query(self, sql):
        with sqlite3.connect("file:%s?mode=ro" % self.path, uri=True, timeout=30) as db:
            return db.execute(sql).fetchall()

    guid = "upper(%s)"
    finish = "finish_time_us"

class PostgresRows:
    """The same queries on PostgreSQL, through psql (no driver needed): blobs travel as hex."""
    def __init__(self, url):
        self.url = url

    def query(self, sql):
        r = subprocess.run(["psql", self.url, "-X", "-A", "-t", "-F", "\t", "-c", sql],
                           capture_output=True, text=True, check=True)
        rows = []
        for line in r.stdout.splitlines():
            rows.append(tuple(self.value(v) for v in line.split("\t")))
        return rows

    @staticmethod
    def value(v):
        if v == "":
            return None
        if v.startswith("\\x"):
            return bytes.fromhex(v[2:])
        if v in ("t", "f"):
            return v == "t"
        try:
            return int(v)
        except ValueError:
            return v

    guid = "upper(%s::text)"
    finish = "finish_time"


class Harness:
    def __init__(self, args):
        self.bin, self.rng = args.bin, random.Random(args.seed)
        self.pg_url, self.pg_dir, self.pg_every = args.postgres, args.pg_dir, args.pg_every
        self.pg_kills = 0
        self.env = {**os.environ}
        if self.pg_url:
            self.env["VMSEC_STORE"] = self.pg_url
        self.dir = tempfile.mkdtemp(prefix="vmsec-crash-")
        self.data = os.path.join(self.dir, "data")
        self.vms = ["00000000-0000-4000-8000-%012d" % i for i in range(args.vms)]
        self.violations, self.kills = [], 0
        self.rows = PostgresRows(self.pg_url) if self.pg_url else SqliteRows(self.data)
        self.completed = []  # (vm, method, detail, job id)
        self.answered = {}  # audit operation -> calls answered
        self.lock = threading.Lock()
        self.verified = set()
        self.server = None
        self.cli("guardian", "new", "owner")
        self.kps = []
        for name in ("a", "b"):
            path = os.path.join(self.dir, "kp-%s.xml" % name)
            self.cli("kp", "new", "--owner", "owner", "--out", path)
            self.kps.append(open(path, "rb").read())
        for i, vm in enumerate(self.vms):
            self.cli("vm", "add", "vm%d" % i, "--id", vm)
            self.cli("vm", "kp", "set", "vm%d" % i, os.path.join(self.dir, "kp-a.xml"))
            self.cli("vm", "security", "set", "vm%d" % i, "--tpm", "on")
            self.cli("tpm", "start", "vm%d" % i, "--socket", self.socket(i))
            self.cli("tpm", "stop", "vm%d" % i)
        self.cli("user", "add", "admin", "--role", "admin", "--password-stdin", stdin="crash-secret\n")
        self.auth = __import__("base64").b64encode(b"admin:crash-secret").decode()

    def socket(self, i):
        return os.path.join(self.dir, "vm%d.sock" % i)

    def cli(self, *args, stdin=None, check=True):
        r = subprocess.run([self.bin, "--data", self.data, *args], input=stdin, capture_output=True, text=True,
                           env=self.env)
        if check and r.returncode != 0:
            raise RuntimeError("vmsec %s: %s" % (" ".join(args), r.stderr.strip()))
        return r

    def start_server(self):
        self.server = subprocess.Popen(
            [self.bin, "--data", self.data, "serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**self.env, "VMSEC_LOG": "error"})
        line = self.server.stdout.readline()
        self.addr = json.loads(line)["http"][0]

    def violation(self, text):
        self.violations.append("round %d: %s" % (self.kills, text))
        print("VIOLATION", self.violations[-1], file=sys.stderr)

    # ----- load -----

    def answered_call(self, operation):
        with self.lock:
            self.answered[operation] = self.answered.get(operation, 0) + 1

    def wait_job(self, c, jid):
        get = envelope(GET, JOB, "", {"InstanceID": jid})
        while True:
            state = int(re.search(r"<p:JobState>(\d+)</p:JobState>", c.post(get)).group(1))
            if state in JOB_DONE:
                return state
            time.sleep(0.005)

    def client(self, stop):
        try:
            c = Http(self.addr, self.auth)
            while not stop.is_set():
                vm = self.rng.choice(self.vms)
                kind = self.rng.choice(["set", "set", "restore", "modify"])
                if kind == "set":
                    kp = self.rng.choice(self.kps)
                    body = set_kp_body(vm, kp)
                    method, detail = "SetKeyProtector", hashlib.sha256(kp).hexdigest()
                elif kind == "restore":
                    method, detail = "RestoreLastKnownGoodKeyProtector", None
                    body = method_body(method, vm)
                else:
                    on = self.rng.choice([True, False])
                    method, detail = "ModifySecuritySettings", on
                    body = method_body(method, vm, '&lt;PROPERTY NAME="EncryptStateAndVmMigrationTraffic" TYPE="boolean"&gt;'
                                       '&lt;VALUE&gt;%s&lt;/VALUE&gt;&lt;/PROPERTY&gt;' % ("true" if on else "false"))
                reply = c.post(envelope(SERVICE + "/" + method, SERVICE, body))
                self.answered_call(method)
                rv = re.search(r"<p:ReturnValue>(\d+)</p:ReturnValue>", reply)
                if not rv or rv.group(1) != "4096":
                    continue  # refused at once (e.g. no last known good): nothing to follow
                jid = re.search(r'Name="InstanceID">([^<]+)<', reply).group(1)
                if self.wait_job(c, jid) == 7:
                    with self.lock:
                        self.completed.append((vm, method, detail, jid, time.monotonic()))
        except (OSError, RuntimeError, http.client.HTTPException, AttributeError):
            return  # the server was killed under us

    def tpm_cli(self, stop, procs):
        while not stop.is_set():
            i = self.rng.randrange(len(self.vms))
            p = subprocess.Popen([self.bin, "--data", self.data, "tpm", "start", "vm%d" % i, "--socket", self.socket(i)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env)
            with self.lock:
                procs.append(p)
            p.wait()
            subprocess.run([self.bin, "--data", self.data, "tpm", "stop", "vm%d" % i], capture_output=True, env=self.env)

    def round(self):
        self.start_server()
        stop, procs = threading.Event(), []
        threads = [threading.Thread(target=self.client, args=(stop,)) for _ in range(3)]
        threads.append(threading.Thread(target=self.tpm_cli, args=(stop, procs)))
        for t in threads:
            t.start()
        time.sleep(self.rng.uniform(0.05, 1.5))
        kill_pg = self.pg_url and (self.kills + 1) % self.pg_every == 0
        if kill_pg:
            # The database's machine crashes: every process of this cluster at once, mid-load.
            postmaster = open(os.path.join(self.pg_dir, "data", "postmaster.pid")).readline().strip()
            subprocess.run(["pkill", "-KILL", "-P", postmaster], check=False)
            subprocess.run(["kill", "-KILL", postmaster], check=False)
            time.sleep(self.rng.uniform(0.05, 0.3))
        self.server.send_signal(signal.SIGKILL)
        if self.rng.random() < 0.5:
            with self.lock:
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGKILL)
        stop.set()
        self.server.wait()
        for t in threads:
            t.join()
        if kill_pg:
            for _ in range(50):
                if subprocess.run(["pgrep", "-P", postmaster], capture_output=True).returncode != 0:
                    break
                time.sleep(0.1)
            subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "pg"),
                            "restart", self.pg_dir], check=True)
            self.pg_kills += 1
        self.kills += 1

    # ----- checks -----

    def verify_kp(self, blob, what):
        h = hashlib.sha256(blob).hexdigest()
        if h in self.verified:
            return
        path = os.path.join(self.dir, "check.xml")
        with open(path, "wb") as f:
            f.write(blob)
        r = self.cli("kp", "verify", path, check=False)
        if r.returncode != 0:
            self.violation("%s does not verify: %s" % (what, r.stderr.strip()))
        else:
            self.verified.add(h)

    def check(self):
        self.start_server()
        try:
            q, g = self.rows.query, self.rows.guid
            unfinished = q("SELECT instance_id, job_state FROM jobs WHERE job_state NOT IN (7, 8, 9, 10)")
            for jid, state in unfinished:
                self.violation("job %s left in state %d after restart" % (jid, state))
            states = dict(q("SELECT instance_id, job_state FROM jobs"))
            rows = {vm: (kp, lkg, enc) for vm, kp, lkg, enc in q(
                "SELECT %s, key_protector, last_known_good, encrypt_state_and_vm_migration_traffic FROM vms" % (g % "guid"))}
            history = {}
            for vm, kp in q("SELECT %s, key_protector FROM kp_history" % (g % "vm_guid")):
                history.setdefault(vm, set()).add(hashlib.sha256(kp).hexdigest())
            seqs = q("SELECT min(seq), max(seq), count(*) FROM audit")[0]
            audited = dict(q("SELECT operation, count(*) FROM audit GROUP BY operation"))
            completed_in_store = [jid for jid, state in states.items() if state == 7]
            audited_jobs = {d for (d,) in q(
                "SELECT detail FROM audit WHERE outcome = 'succeeded' AND detail LIKE 'job %'")}
            # 1. completed jobs are there with their effect
            last_modify = {}
            for vm, method, detail, jid, _ in self.completed:
                if jid in states and states[jid] != 7:
                    self.violation("job %s (%s) was seen Completed, the store says %d" % (jid, method, states[jid]))
                vmu = vm.upper()
                if method == "SetKeyProtector":
                    current = hashlib.sha256(rows[vmu][0] or b"").hexdigest()
                    if detail != current and detail not in history.get(vmu, set()):
                        self.violation("%s's completed SetKeyProtector (job %s) is neither current nor in history" % (vm, jid))
                elif method == "ModifySecuritySettings":
                    last_modify[vmu] = (detail, jid)
            # 3. every stored KP verifies
            for vmu, (kp, lkg, _) in rows.items():
                for blob, what in ((kp, "current KP of " + vmu), (lkg, "last known good of " + vmu)):
                    if blob:
                        self.verify_kp(blob, what)
            for vmu, kp in q("SELECT %s, key_protector FROM kp_history" % (g % "vm_guid")):
                self.verify_kp(kp, "a history KP of " + vmu)
            # 5. audit without gaps, every answered call audited, every completed job audited
            for jid in completed_in_store:
                if "job " + jid not in audited_jobs:
                    self.violation("job %s is Completed in the store but its completion is not audited" % jid)
            lo, hi, n = seqs
            if n and hi - lo + 1 != n:
                self.violation("audit has gaps: seq %d..%d but %d records" % (lo, hi, n))
            for op, count in self.answered.items():
                if audited.get(op, 0) < count:
                    self.violation("%d %s calls were answered but %d audited" % (count, op, audited.get(op, 0)))
            # 4. the vTPM starts with what is stored (this rolls the KP, as every start does)
            for i, vm in enumerate(self.vms):
                # A vTPM the round's CLI started may still run: its `tpm stop` needs the store,
                # which was down in a round that killed PostgreSQL (its lease keeper would stop
                # it within the lease time). Stopped first, so the start below checks the store.
                if self.pg_url:
                    self.cli("tpm", "stop", "vm%d" % i, check=False)
                r = self.cli("tpm", "start", "vm%d" % i, "--socket", self.socket(i), check=False)
                if r.returncode != 0:
                    self.violation("tpm start vm%d after restart: %s" % (i, r.stderr.strip()))
                self.cli("tpm", "stop", "vm%d" % i, check=False)
            # ModifySecuritySettings: the last completed one per VM shows, unless a later
            # ModifySecuritySettings was still running when the server died (it then failed).
            f = self.rows.finish
            enc = dict(q("SELECT %s, encrypt_state_and_vm_migration_traffic FROM vms" % (g % "guid")))
            latest = dict(q(
                "SELECT %s, instance_id FROM jobs j WHERE method = 'ModifySecuritySettings' AND job_state = 7 "
                "AND %s = (SELECT max(%s) FROM jobs WHERE vm_guid = j.vm_guid "
                "AND method = 'ModifySecuritySettings' AND job_state = 7)" % (g % "vm_guid", f, f)))
            for vmu, (on, jid) in last_modify.items():
                if latest.get(vmu) != jid:
                    continue  # a later one completed unseen before the kill
                if bool(enc[vmu]) != on:
                    self.violation("%s: the last completed ModifySecuritySettings set encryption %s, the store has %s"
                                   % (vmu, on, bool(enc[vmu])))
            # Only this round's completions can be compared with the next round's state.
            self.completed.clear()
        finally:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("golden_kp")
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--vms", type=int, default=4)
    ap.add_argument("--postgres", help="the store's URL (a database of its own)")
    ap.add_argument("--pg-dir", help="the cluster's directory (scripts/pg), to restart it after a kill")
    ap.add_argument("--pg-every", type=int, default=10, help="kill PostgreSQL every Nth round")
    args = ap.parse_args()
    h = Harness(args)
    started = time.monotonic()
    print("seed %d, data %s" % (args.seed, h.data), file=sys.stderr)
    for _ in range(args.kills):
        h.round()
        h.check()
        if h.kills % 20 == 0:
            print("%d kills, %d violations, %.0f s" % (h.kills, len(h.violations), time.monotonic() - started), file=sys.stderr)
    answered = sum(h.answered.values())
    pg = ", of them %d with PostgreSQL killed too" % h.pg_kills if h.pg_url else ""
    print("kills survived: %d%s, violations: %d (%d method calls answered, %.0f s, seed %d)"
          % (h.kills, pg, len(h.violations), answered, time.monotonic() - started, args.seed))
    for v in h.violations:
        print("  " + v)
    sys.exit(1 if h.violations else 0)


if __name__ == "__main__":
    main()
