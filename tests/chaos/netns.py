"""Hosts in network namespaces, and links cut for real.

    switch ns: bridge "front" 10.201.0.0/24          bridge "back" 10.201.1.0/24
      cli  .2  (load, this process)                    gw1 .11
      gw1 .11  (edgegate; HAProxy)                     gw2 .12
      gw2 .12  (edgegate)                              rds .31 (Redis)
      ams .21, fra .22 (dcsim http and echo)

Every host is a namespace with a veth pair to a bridge port in the switch
namespace. A cut is `ip link set PORT down` on the switch's side of a host's
link: what crosses it vanishes (no reset, no refusal). This process moves its
own network namespace to cli for the scenarios, so the clients it starts
(h2load, the tcp checker, its threads) are there; servers are started with
`ip netns exec`. Namespaces are named egc<pid>-<host> and removed at the end,
on failure too; ones left by a run that was killed are removed by the next.

Scenarios:
  link-cut-dc     the link of the nearest datacenter (ams) cut for 7 s, under
                  load through gw1 (edgegate, then HAProxy on the same host)
  redis-link-cut  gw1's link to Redis cut for a while: gw1 loses Redis, gw2
                  keeps it; both under load; how many sessions they agree on
"""

import ctypes
import http.client
import os
import subprocess
import time

import report
from gateways import RESPONSE_TIMEOUT_S, DC, Edgegate, HAProxy, Host, Redis, Site
from phases import FAR, Ctx, dcs_down, dcs_up, hold, outage, redis_state, run_phase

CLONE_NEWNET = 0x40000000
FRONT, BACK = "10.201.0", "10.201.1"
HOSTS = {"cli": [(FRONT, 2)], "gw1": [(FRONT, 11), (BACK, 11)], "gw2": [(FRONT, 12), (BACK, 12)],
         "ams": [(FRONT, 21)], "fra": [(FRONT, 22)], "rds": [(BACK, 31)]}
BRIDGES = {FRONT: "front", BACK: "back"}


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and r.returncode:
        raise OSError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def sweep_stale():
    """Removes namespaces of earlier runs whose process is gone."""
    for line in ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("egc") and "-" in name:
            pid = name[3:].split("-")[0]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                ip("netns", "del", name, check=False)


class Topology:
    def __init__(self):
        self.tag = f"egc{os.getpid()}"
        self.made = []

    def ns(self, host):
        return f"{self.tag}-{host}"

    def port(self, host, net):
        return f"{host}-{BRIDGES[net]}"

    def addr(self, host, net=FRONT):
        return next(f"{n}.{i}" for n, i in HOSTS[host] if n == net)

    def host(self, name, net=FRONT):
        return Host(self.addr(name, net), self.ns(name))

    def up(self):
        sw = self.ns("sw")
        for h in ["sw", *HOSTS]:
            ip("netns", "add", self.ns(h))
            self.made.append(self.ns(h))
            ip("-n", self.ns(h), "link", "set", "lo", "up")
        for br in BRIDGES.values():
            ip("-n", sw, "link", "add", br, "type", "bridge")
            ip("-n", sw, "link", "set", br, "up")
        for h, nets in HOSTS.items():
            for i, (net, n) in enumerate(nets):
                port, dev = self.port(h, net), f"eth{i}"
                ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", dev,
                   "netns", self.ns(h))
                ip("-n", sw, "link", "set", port, "master", BRIDGES[net], "up")
                ip("-n", self.ns(h), "addr", "add", f"{net}.{n}/24", "dev", dev)
                ip("-n", self.ns(h), "link", "set", dev, "up")

    def cut(self, host, net=FRONT):
        ip("-n", self.ns("sw"), "link", "set", self.port(host, net), "down")

    def mend(self, host, net=FRONT):
        ip("-n", self.ns("sw"), "link", "set", self.port(host, net), "up")

    def down(self):
        for n in reversed(self.made):
            ip("netns", "del", n, check=False)
        self.made = []


class InNamespace:
    """Moves this process's main thread (and what it starts from then on:
    threads, children) into a network namespace, and back."""

    def __init__(self, name):
        self.path = f"/var/run/netns/{name}"
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _set(self, fd):
        if self.libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self._set(fd)
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        self._set(self.home)
        os.close(self.home)


def dc_of(conn, key):
    conn.request("GET", "/agree", headers={"Cookie": f"sid={key}"})
    r = conn.getresponse()
    body = r.read()
    return body.split(b"\n")[0].decode()[3:] if r.status == 200 else f"status {r.status}"


def agreement(gws, keys, first=0):
    """How many of KEYS get the same datacenter through both gateways, asking
    gateway FIRST first."""
    conns = [http.client.HTTPConnection(g.host.ip, g.web_port, timeout=10) for g in gws]
    order = [first, 1 - first]
    same = 0
    try:
        for k in keys:
            answers = {i: dc_of(conns[i], k) for i in order}
            same += answers[0] == answers[1]
    finally:
        for c in conns:
            c.close()
    return same, len(keys)


def converge(gw1, gw2, healed, bound=20):
    """Seconds from gw1 getting Redis back until the two gateways agree on
    every session made during the cut, or None if not within BOUND seconds."""
    if not healed.get("up"):
        return None
    deadline = time.time() + bound
    while time.time() < deadline:
        same, total = agreement((gw1, gw2), healed["keys"])
        if same == total:
            return time.time() - healed["up"]
        hold(time.time() + 0.5)
    return None


def run(env, kinds, log):
    if os.geteuid() != 0:
        log("netns: skipped (not root)")
        return {"ran": False, "skipped": "not root: network namespaces need CAP_SYS_ADMIN"}
    sweep_stale()
    topo = Topology()
    try:
        topo.up()
    except OSError as e:
        topo.down()
        log(f"netns: skipped ({e})")
        return {"ran": False, "skipped": f"cannot make network namespaces ({e})"}
    try:
        with InNamespace(topo.ns("cli")):
            return scenarios(env, topo, kinds, log)
    finally:
        env.teardown()
        topo.down()


def scenarios(env, topo, kinds, log):
    site = Site([DC("ams", 1, "2ms", topo.host("ams")), DC("fra", 1, "10ms", topo.host("fra"))],
                Redis(topo.host("rds", BACK)))
    site.start(env)
    out = {"ran": True, "results": [], "crashes": [], "topology": [
        "Hosts are network namespaces joined by veth pairs to two bridges: clients, two "
        "edgegate gateways (gw1 also runs HAProxy) and two datacenters (`ams`, 2 ms, and "
        "`fra`, 10 ms, both priority 1: `ams` is the nearest; HAProxy has `fra` as "
        "`backup`) on one; the gateways and Redis on the other. A cut is `ip link set "
        "DEV down` on the switch's port of a link: packets vanish, nothing is refused.",
        "",
        "- **link-cut-dc**: `ams`'s link cut for "
        f"{RESPONSE_TIMEOUT_S + 2} s under load through gw1, then mended.",
        "- **redis-link-cut**: gw1's link to Redis cut while both gateways carry load; "
        "gw2 keeps Redis. Rows for gw1 (cut off) and gw2."]}
    gws = {"edgegate": lambda: Edgegate(env, site, topo.host("gw1"), "gw1"),
           "haproxy": lambda: HAProxy(env, site, topo.host("gw1"), "haproxy-gw1")}
    ctxs = {}
    for kind in kinds:
        gw = gws[kind]()
        gw.start()
        ctxs[kind] = Ctx(env, site, gw)

    def act_link_cut(ctx, t):
        outage(ctx, t, lambda: topo.cut("ams"), lambda: topo.mend("ams"), dcs_down(["ams"]),
               dcs_up(["ams"]), RESPONSE_TIMEOUT_S + 2)

    for kind in kinds:
        ctx = ctxs[kind]
        ctx.start_watchers()
        log(f"netns {kind}: link-cut-dc")
        r = run_phase(ctx, "link-cut-dc", 15, act_link_cut)[0]
        r["what"] = f"the nearest datacenter's link cut for {RESPONSE_TIMEOUT_S + 2} s (netns)"
        r["tcp_final"] = ctx.stop_watchers()
        out["results"].append(r)
        log("  " + report.one_line(r))
        out["crashes"] += ctx.crashes
    if "edgegate" in kinds:
        redis_link_cut(env, topo, site, ctxs["edgegate"], out, log)
    return out


def redis_link_cut(env, topo, site, c1, out, log):
    """gw1 (C1's gateway) loses Redis, a second edgegate gw2 keeps it: both under
    load, and sets of session keys asked through both, before, during and after."""
    gw1, gw2 = c1.gw, Edgegate(env, site, topo.host("gw2"), "gw2")
    gw2.start()
    c2 = Ctx(env, site, gw2)
    for c in (c1, c2):
        c.start_watchers()
    keys = 100
    sets, healed = [], {}

    def act_redis_cut(ctx, t):
        known = [f"known-{i}" for i in range(keys)]
        sets.append(("known sessions, both gateways with Redis", agreement((gw1, gw2), known)))
        t["fault"] = time.time()
        topo.cut("gw1", BACK)
        t["down"] = ctx.poll.wait_for(redis_state(False), t["fault"], FAR)
        cut = [f"cut-{i}" for i in range(keys)]
        cut2 = [f"cut2-{i}" for i in range(keys)]
        sets.append(("known sessions, gw1 cut off from Redis", agreement((gw1, gw2), known)))
        sets.append(("new sessions, gw1 cut off, asked at gw1 first",
                     agreement((gw1, gw2), cut)))
        sets.append(("new sessions, gw1 cut off, asked at gw2 first",
                     agreement((gw1, gw2), cut2, first=1)))
        hold(t["fault"] + 6)
        t["lift"] = time.time()
        topo.mend("gw1", BACK)
        t["up"] = ctx.poll.wait_for(redis_state(True), t["lift"], FAR)
        healed.update(up=t["up"], keys=cut + cut2)
        sets.append(("sessions made during the cut, once gw1 has Redis back",
                     agreement((gw1, gw2), cut + cut2)))
        sets.append(("new sessions after the cut", agreement((gw1, gw2),
                                                             [f"after-{i}" for i in range(keys)])))

    log("netns edgegate: redis-link-cut")
    rows = run_phase(c1, "redis-link-cut", 14, act_redis_cut, others=(c2,))
    for r, c in zip(rows, (c1, c2)):
        r["what"] = "gw1's link to Redis cut for 6 s; gw2 keeps Redis (netns)"
        r["fault"] = f"redis-link-cut ({c.gw.name})"
        r["tcp_final"] = c.stop_watchers()
        out["crashes"] += c.crashes
        log("  " + report.one_line(r))
    out["results"] += rows
    out["agreement"] = {"keys": keys, "sets": sets, "converged": converge(gw1, gw2, healed)}
    for label, (same, total) in sets:
        log(f"  agree: {same}/{total} {label}")
    log(f"  all sessions agree again {report.secs(out['agreement']['converged'])} s after the heal")
    for g in (gw1, gw2):
        rc = g.stop()
        if rc != 0:
            out["crashes"].append(f"{g.name} exited with {rc} on SIGTERM")
