"""What the chaos suite and the soak share: processes (the end-to-end
harness's Env and Proc), a state poller that timestamps what a gateway
reports, h2load clients whose per-request logs are read back, and the tcp
integrity checker."""

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import conftest  # noqa: E402  (the end-to-end harness: processes, ports, waiting)

DCSIM_BIN, EG_BIN, Env, free_port, wait_until = (conftest.DCSIM_BIN, conftest.EG_BIN, conftest.Env,
                                                  conftest.free_port, conftest.wait_until)

TCPCHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcpcheck.py")
# A request still waiting this many seconds when its load window ends is unanswered.
STALL = 3.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(env):
    """Names of the processes whose output holds a sanitizer report."""
    return [p.name for p in env.procs if any(m in p.output() for m in SANITIZER_MARKS)]


class Poller(threading.Thread):
    """Calls FN every INTERVAL seconds and keeps each value it returns with the
    time it was first seen (on change only). wait_for() answers when a
    condition first held, as observed: the resolution is INTERVAL plus the
    time FN takes."""

    def __init__(self, fn, interval=0.025):
        super().__init__(daemon=True)
        self.fn, self.interval = fn, interval
        self.history = []            # [(time, value)], a new entry on change
        self.cond = threading.Condition()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t = time.time()
            try:
                v = self.fn()
            except Exception:  # the endpoint not answering is a state too
                v = None
            with self.cond:
                if not self.history or self.history[-1][1] != v:
                    self.history.append((t, v))
                    self.cond.notify_all()
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join(5)

    def _first(self, pred, since):
        before = [v for t, v in self.history if t < since]
        if before and before[-1] is not None and pred(before[-1]):
            return since  # already so when asked
        return next((t for t, v in self.history if t >= since and v is not None and pred(v)),
                    None)

    def wait_for(self, pred, since, timeout):
        """Time (epoch) PRED first held at or after SINCE, or None after TIMEOUT."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                t = self._first(pred, since)
                if t is not None or time.time() >= deadline:
                    return t
                self.cond.wait(min(0.1, max(0.0, deadline - time.time())))


H2_CODES = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
H2_SUMMARY = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                        r"(\d+) failed, (\d+) errored, (\d+) timeout")


class Load:
    """One h2load process per client (`--h1 -c1`), each for SECONDS. h2load
    does not reconnect a client whose connection failed and leaves the request
    it had in flight out of `done`, so per client: started - done is the one
    request in flight when the run ended, or the one it lost. A client whose
    last answer came more than STALL seconds before the end lost it (or is
    still waiting for it): that request counts as unanswered.

    CLIENTS: [(path, method, headers)]."""

    def __init__(self, env, base_url, seconds, clients, name):
        self.seconds, self.t0 = int(seconds), time.time()
        self.procs, self.logs = [], []
        body = env.write(f"{name}-body", "x" * 1024)
        for i, (path, method, headers) in enumerate(clients):
            log = env.path(f"{name}-{i}.h2log")
            argv = ["h2load", "--h1", "-c1", "-t1", "-D", str(self.seconds),
                    f"--log-file={log}"]
            for h in headers:
                argv += ["-H", h]
            if method == "POST":
                argv += ["-d", body]
            argv.append(base_url + path)
            self.procs.append(env.spawn(argv, f"{name}-{i}"))
            self.logs.append(log)

    def flowing(self, timeout=10):
        """Waits until every client has had an answer; False if one has not."""
        try:
            return wait_until(lambda: all(os.path.exists(l) and os.path.getsize(l)
                                          for l in self.logs), timeout=timeout)
        except TimeoutError:
            return False

    def finish(self):
        """Waits for the clients; returns totals and every answered request."""
        tot = dict.fromkeys(("started", "done", "succeeded", "failed", "errored", "unanswered",
                             "clients_stalled", "4xx", "5xx"), 0)
        reqs = []
        end = self.t0 + self.seconds
        for p, log in zip(self.procs, self.logs):
            try:
                p.p.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                p.stop(signal.SIGKILL)
            out = p.output()
            m = H2_SUMMARY.search(out)
            mine = read_h2log(log)
            reqs += mine
            if not m:
                tot["clients_stalled"] += 1
                continue
            _, started, done, ok, failed, errored, _ = map(int, m.groups())
            tot["started"] += started
            tot["done"] += done
            tot["succeeded"] += ok
            tot["failed"] += failed
            tot["errored"] += errored
            codes = H2_CODES.search(out)
            if codes:
                tot["4xx"] += int(codes.group(3))
                tot["5xx"] += int(codes.group(4))
            last = max([s + e for s, _, e in mine], default=self.t0)
            if end - last > STALL:
                tot["clients_stalled"] += 1
                tot["unanswered"] += started - done
        tot["requests"] = sorted(reqs)
        tot["window"] = (self.t0, end)
        return tot


def read_h2log(path):
    """[(start epoch s, status, elapsed s)]; status -1 is a request that failed."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    out.append((int(parts[0]) / 1e6, int(parts[1]), int(parts[2]) / 1e6))
    except FileNotFoundError:
        pass
    return out


def caught(requests, t_fault, t_settled):
    """Requests a fault caught: in flight at some time between T_FAULT and
    T_SETTLED (when the gateway had routed around it). Returns (count, seconds
    from T_FAULT until the last of them was answered)."""
    hit = [s + e for s, _, e in requests if s <= t_settled and s + e >= t_fault]
    return len(hit), (max(hit) - t_fault if hit else 0.0)


class SessionProbe(threading.Thread):
    """Requests with a new session key each (cookie sid), one at a time on a
    keep-alive connection, every PACE seconds: they make the gateway ask Redis,
    where h2load's fixed keys are answered from its cache. With KEYS, the keys
    come round again after KEYS requests. Each request is kept as
    [start, end or None, status or error text, datacenter, sent again].

    Like browsers and curl (RFC 9112, 9.3.1), a GET that fails on a kept-alive
    connection before any answer byte, because the server closed it, is sent
    once more on a new connection."""

    def __init__(self, host, port, tag, pace=0.05, timeout=30, keys=None):
        super().__init__(daemon=True)
        self.host, self.port, self.tag, self.pace, self.timeout = host, port, tag, pace, timeout
        self.keys = keys  # cycle through this many keys (None: a new one every time)
        self.records = []
        self.halt = threading.Event()
        self.conn, self.reused = None, False

    def exchange(self, n):
        import http.client
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.reused = False
        key = n % self.keys if self.keys else n
        self.conn.request("GET", f"/probe/{n}", headers={"Cookie": f"sid={self.tag}-{key}"})
        r = self.conn.getresponse()
        body = r.read()
        self.reused = True
        if r.will_close:
            self.close()
        return r.status, body.split(b"\n")[0].decode(errors="replace")[3:]

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def run(self):
        import http.client
        stale = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
        n = 0
        while not self.halt.is_set():
            n += 1
            rec = [time.time(), None, None, None, False]
            self.records.append(rec)
            try:
                try:
                    rec[2], rec[3] = self.exchange(n)
                except stale:
                    if not self.reused:
                        raise
                    self.close()
                    rec[4] = True
                    rec[2], rec[3] = self.exchange(n)
            except Exception as e:
                rec[2] = type(e).__name__
                self.close()
            rec[1] = time.time()
            self.halt.wait(self.pace)
        self.close()

    def stop(self):
        self.halt.set()
        self.join(self.timeout + 5)

    def window(self, t0, t1):
        """Requests started between T0 and T1: count, failed (not 200), unanswered
        (waiting for more than STALL seconds); younger ones waiting are left out."""
        now = time.time()
        w = [r for r in list(self.records) if t0 <= r[0] < t1 and (r[1] or now - r[0] > STALL)]
        return {"started": len(w), "failed": sum(1 for r in w if r[1] and r[2] != 200),
                "unanswered": sum(1 for r in w if r[1] is None),
                "sent_again": sum(1 for r in w if r[4]),
                "failures": dict(collections.Counter(str(r[2]) for r in w if r[1] and r[2] != 200)),
                "requests": [(r[0], 200 if r[2] == 200 else -1, (r[1] or time.time()) - r[0])
                             for r in w]}


class TcpCheck:
    """tests/chaos/tcpcheck.py running in the background; window() gives the
    counts of a time window from its ticks and events."""

    def __init__(self, env, addr, name, seconds=900, conns=3):
        n = 1
        while os.path.exists(env.path(f"{name}-{n}.jsonl")):  # one file per run: counts restart
            n += 1
        name = f"{name}-{n}"
        self.events = env.path(f"{name}.jsonl")
        self.proc = env.spawn(["/usr/bin/python3", TCPCHECK, "--connect", addr,
                               "--conns", str(conns), "--seconds", str(seconds), "--pace", "0.01",
                               "--max-size", "65536", "--events", self.events], name)

    def lines(self):
        try:
            with open(self.events) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def flowing(self, timeout=10):
        wait_until(lambda: any(l.get("tick", {}).get("ok", 0) > 0 for l in self.lines()),
                   timeout=timeout, what="tcp checker flowing")

    def window(self, t0, t1):
        """Messages sent between T0 and T1, and the events of messages sent then."""
        ticks = [(l["t"], l["tick"]) for l in self.lines() if "tick" in l]
        after = [v for t, v in ticks if t <= t1]
        if not after:
            return {}
        a = ([v for t, v in ticks if t <= t0] or [dict.fromkeys(ticks[0][1], 0)])[-1]
        b = after[-1]
        w = {k: b[k] - a[k] for k in b if k != "max_latency"}
        w["max_latency"] = max([v["max_latency"] for t, v in ticks if t0 < t <= t1 + 1],
                               default=0.0)
        w["events"] = [l for l in self.lines() if l.get("kind") in ("unanswered", "altered", "lost")
                       and t0 <= l["sent_at"] <= t1]
        return w

    def finish(self):
        """Stops it; returns the final counters."""
        self.proc.stop(signal.SIGTERM, timeout=40)
        finals = [l["final"] for l in self.lines() if "final" in l]
        return finals[-1] if finals else None
