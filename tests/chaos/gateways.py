"""The site under test (datacenters as dcsim processes, Redis) and the two
gateways put in front of it, edgegate and HAProxy, configured for the same
job. Both answer state() in one shape: {"dcs": {name: up}, "redis": bool or None}."""

import csv
import io
import json
import os
import signal
import subprocess
import urllib.request

from harness import DCSIM_BIN, EG_BIN, free_port, wait_until

CHECK_INTERVAL_MS, CHECK_TIMEOUT_MS, RISE, FALL = 100, 300, 2, 2
RESPONSE_TIMEOUT_S = 5
CONNECT_TIMEOUT_S = 1
RETRIES = 2


class Host:
    """Where processes run: loopback of this namespace, or a network namespace
    (argv prefixed with `ip netns exec`)."""

    def __init__(self, ip="127.0.0.1", ns=None):
        self.ip, self.ns = ip, ns

    def argv(self, argv):
        return ["ip", "netns", "exec", self.ns, *argv] if self.ns else list(argv)


class DC:
    """A datacenter: an http dcsim and an echo dcsim on one host, both answering
    after DELAY (which makes the measured RTT, so the nearest is the same for both)."""

    def __init__(self, name, priority, delay, host):
        self.name, self.priority, self.delay, self.host = name, priority, delay, host
        self.http_port, self.echo_port = free_port(), free_port()
        self.procs, self.starts = [], 0

    @property
    def http(self):
        return f"{self.host.ip}:{self.http_port}"

    @property
    def echo(self):
        return f"{self.host.ip}:{self.echo_port}"

    def start(self, env):
        self.procs, self.starts = [], self.starts + 1
        for mode, port in (("http", self.http_port), ("echo", self.echo_port)):
            argv = [DCSIM_BIN, "--name", self.name, "--listen", f"{self.host.ip}:{port}",
                    "--mode", mode, "--delay", self.delay]
            # A log of its own per start: the readiness line must be this process's.
            p = env.spawn(self.host.argv(argv), f"dcsim-{self.name}-{mode}-{self.starts}")
            p.wait_output("listening on", timeout=10)
            self.procs.append(p)

    def signal(self, sig):
        for p in self.procs:
            if p.alive():
                p.send(sig)

    def kill(self):
        for p in self.procs:
            p.stop(signal.SIGKILL)


class Redis:
    def __init__(self, host):
        self.host, self.port, self.proc, self.starts = host, free_port(), None, 0

    @property
    def addr(self):
        return f"{self.host.ip}:{self.port}"

    def start(self, env):
        self.starts += 1
        self.proc = env.spawn(self.host.argv(
            ["redis-server", "--port", str(self.port), "--bind", self.host.ip, "--save", "",
             "--appendonly", "no", "--protected-mode", "no"]), f"redis-{self.starts}")
        self.proc.wait_output("Ready to accept connections", timeout=10)

    def kill(self):
        self.proc.stop(signal.SIGKILL)


class Site:
    """DCS (http datacenters, each with its echo server) and REDIS."""

    def __init__(self, dcs, redis=None):
        self.dcs = {d.name: d for d in dcs}
        self.redis = redis

    def start(self, env):
        for d in self.dcs.values():
            d.start(env)
        if self.redis:
            self.redis.start(env)

    @classmethod
    def loopback(cls):
        """The site of the loopback schedule: three datacenters at growing
        distance, in priority order, and Redis."""
        h = Host()
        return cls([DC("ams", 1, "5ms", h), DC("fra", 2, "10ms", h), DC("lon", 3, "20ms", h)],
                   Redis(h))

    def ordered(self):
        return sorted(self.dcs.values(), key=lambda d: d.priority)


def get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


class Gateway:
    kind = "?"
    resent = 0  # reload signals that had to be sent again

    def __init__(self, env, site, host, name):
        self.env, self.site, self.host, self.name = env, site, host, name
        self.web_port, self.tcp_port, self.stats_port = free_port(), free_port(), free_port()
        self.proc = None

    @property
    def web_url(self):
        return f"http://{self.host.ip}:{self.web_port}"

    @property
    def tcp_addr(self):
        return f"{self.host.ip}:{self.tcp_port}"

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def wait_ready(self):
        """Every datacenter up (and Redis connected, where there is one)."""
        def ready():
            st = self.state()
            return st and all(st["dcs"].values()) and st["redis"] in (None, True)
        wait_until(ready, timeout=20, what=f"{self.name} ready")

    def start(self):
        """Writes the configuration, starts the gateway, waits until it sees every
        datacenter up."""
        path = self.env.write(f"{self.name}.conf", self.conf())
        self.proc = self.env.spawn(self.host.argv(self.command(path)), self.name)
        self.proc.conf = path
        wait_until(lambda: self.state() is not None or not self.proc.alive(), timeout=20,
                   what=f"{self.name} stats")
        if not self.proc.alive():
            raise RuntimeError(f"{self.name} did not start:\n{self.proc.output()[-3000:]}")
        self.wait_ready()

    def write_conf(self, variant):
        with open(self.proc.conf, "w") as f:
            f.write(self.conf(variant))

    def stop(self):
        return self.proc.stop(signal.SIGTERM, timeout=15)

    def worker_pids(self):
        """The children of the gateway's (master) process."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return sorted(int(p) for p in out.split())


class Edgegate(Gateway):
    kind = "edgegate"

    def __init__(self, env, site, host, name="edgegate", workers=1):
        super().__init__(env, site, host, name)
        self.workers = workers

    def command(self, path):
        return [EG_BIN, "-f", "-c", path]

    def conf(self, variant=0):
        chk = (f"interval {CHECK_INTERVAL_MS}ms timeout {CHECK_TIMEOUT_MS}ms "
               f"rise {RISE} fall {FALL}")
        out = ["log warn;", f"workers {self.workers};", "drain_timeout 2s;",
               f"stats {self.host.ip}:{self.stats_port};"]
        r = self.site.redis
        if r:
            out.append(f"redis {r.addr} {{ prefix chaos:; ttl 1h; timeout 50ms; }}")
        for d in self.site.dcs.values():
            out.append(f"datacenter {d.name} {{ priority {d.priority}; server {d.http}; "
                       f"check http /health {chk}; }}")
            out.append(f"datacenter {d.name}_tcp {{ priority {d.priority}; server {d.echo}; "
                       f"check tcp {chk}; }}")
        # A reload must change something: a spare datacenter no listener uses.
        if variant % 2:
            out.append(f"datacenter spare {{ priority 9; server {self.host.ip}:9; }}")
        names = [d.name for d in self.site.dcs.values()]
        out.append(f"listener web {{ listen {self.host.ip}:{self.web_port}; mode http; "
                   "session cookie sid; failback on; "
                   f"datacenters {' '.join(names)}; retries {RETRIES}; "
                   f"connect_timeout {CONNECT_TIMEOUT_S}s; response_timeout {RESPONSE_TIMEOUT_S}s; "
                   f"idle_timeout {60 + variant % 2}s; }}")
        out.append(f"listener raw {{ listen {self.host.ip}:{self.tcp_port}; mode tcp; "
                   f"datacenters {' '.join(n + '_tcp' for n in names)}; retries {RETRIES}; "
                   f"connect_timeout {CONNECT_TIMEOUT_S}s; }}")
        return "\n".join(out) + "\n"

    def stats(self):
        try:
            return json.loads(get(f"http://{self.host.ip}:{self.stats_port}/stats"))
        except Exception:  # not answering, or cut short: no state
            return None

    def state(self):
        st = self.stats()
        if st is None:
            return None
        r = st.get("redis", {})
        return {"dcs": {d["name"]: d["healthy"] for d in st["datacenters"]
                        if d["name"] in self.site.dcs},
                "redis": r.get("connected") if r.get("configured") else None}

    def reload(self, i):
        """Writes configuration variant I, sends SIGHUP, waits until applied."""
        gen = self.stats()["generation"]
        self.write_conf(i)
        self.proc.send(signal.SIGHUP)
        wait_until(lambda: (self.stats() or {}).get("generation", 0) > gen, timeout=15,
                   what="reload applied")

    def memory(self):
        """(RSS kB, open descriptors, buffers_in_use) of the gateway process."""
        pid = self.proc.pid
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return rss, fds, self.stats()["counters"]["buffers_in_use"]


class HAProxy(Gateway):
    """HAProxy 2.6 for the same job: one backend, the datacenters in priority
    order, the farther ones `backup` (HAProxy uses the first backup when every
    normal server is down), the same checks, timeouts and retries; master-worker
    mode so that SIGUSR2 reloads it. It keeps no affinity store.

    `observe layer4 error-limit 1 on-error mark-down` is HAProxy's counterpart
    of edgegate marking a server down at once when traffic finds it refusing:
    without it, a retry after a refused connection goes back to the same dead
    server until the checks mark it down, and the request is lost."""

    kind = "haproxy"

    def conf(self, variant=0):
        dcs = self.site.ordered()
        chk = (f"check inter {CHECK_INTERVAL_MS} fall {FALL} rise {RISE} "
               "observe layer4 error-limit 1 on-error mark-down")
        web = "\n".join(f"    server {d.name} {d.http} {chk}{' backup' if i else ''}"
                        for i, d in enumerate(dcs))
        raw = "\n".join(f"    server {d.name} {d.echo} {chk}{' backup' if i else ''}"
                        for i, d in enumerate(dcs))
        return f"""global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect {CONNECT_TIMEOUT_S}s
    timeout client 60s
    timeout server {RESPONSE_TIMEOUT_S}s
    timeout check {CHECK_TIMEOUT_MS}ms
    timeout http-request 10s
    timeout http-keep-alive {60 + variant % 2}s
    retries {RETRIES}
    option redispatch
    http-reuse always
frontend web
    bind {self.host.ip}:{self.web_port}
    default_backend web
backend web
    retry-on all-retryable-errors
    option forwardfor
    option httpchk GET /health
{web}
listen raw
    mode tcp
    bind {self.host.ip}:{self.tcp_port}
    timeout server 60s
{raw}
frontend stats
    bind {self.host.ip}:{self.stats_port}
    stats enable
    stats uri /stats
"""

    def command(self, path):
        return ["haproxy", "-W", "-db", "-f", path]

    def state(self):
        try:
            text = get(f"http://{self.host.ip}:{self.stats_port}/stats;csv").decode()
        except Exception:  # not answering, or cut short: no state
            return None
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        # "UP", "UP 1/2" (going down) and "no check" serve; "DOWN", "DOWN 1/2"
        # (coming back) and "MAINT" do not.
        dcs = {r["svname"]: r["status"].startswith(("UP", "no check")) for r in rows
               if r["pxname"] == "web" and r["svname"] in self.site.dcs}
        return {"dcs": dcs, "redis": None}

    def reload(self, i):
        """Writes configuration variant I, sends SIGUSR2 to the master, waits
        until the master says the new worker runs. HAProxy 2.6's master lets a
        SIGUSR2 that comes soon after the last reload pass without reloading:
        it is sent again when no reload starts within a second."""
        out = self.proc.output
        started, done = out().count("Reloading HAProxy"), out().count("Loading success")
        self.write_conf(i)
        for _ in range(10):
            self.proc.send(signal.SIGUSR2)
            try:
                wait_until(lambda: out().count("Reloading HAProxy") > started, timeout=1)
                break
            except TimeoutError:
                self.resent += 1
        wait_until(lambda: out().count("Loading success") > done, timeout=15,
                   what="haproxy reloaded")
