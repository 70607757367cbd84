"""The faults and how one is run: load on a gateway, the fault brought and
lifted, and one row of measurements per gateway."""

import os
import signal
import time

import badinputs
from gateways import RESPONSE_TIMEOUT_S
from harness import Load, Poller, SessionProbe, TcpCheck, caught, wait_until

FAR = 15  # seconds: bound on any wait for a state a fault should bring


def clients(tag):
    """The h2load clients: plain GETs, a large response, an idempotent POST."""
    ck = [f"cookie: sid={tag}-{i}" for i in range(6)]
    return ([("/", "GET", [ck[i]]) for i in range(4)] +
            [("/bytes/32768", "GET", [ck[4]]),
             ("/echo", "POST", [ck[5], "Idempotency-Key: chaos"])])


class Ctx:
    """One gateway under test, its site and everything watching it."""

    def __init__(self, env, site, gw):
        self.env, self.site, self.gw = env, site, gw
        self.poll = self.tcp = self.probe = None
        self.crashes = []

    def start_watchers(self, probe_keys=None, seconds=900):
        """Poller, tcp checker and session probe, for at most SECONDS."""
        self.poll = Poller(self.gw.state)
        self.poll.start()
        self.tcp = TcpCheck(self.env, self.gw.tcp_addr, f"{self.gw.name}-tcpcheck", seconds)
        self.tcp.flowing()
        self.probe = SessionProbe(self.gw.host.ip, self.gw.web_port, f"{self.gw.name}-probe",
                                  keys=probe_keys)
        self.probe.start()

    def stop_watchers(self):
        self.probe.stop()
        final = self.tcp.finish()
        self.poll.stop()
        return final


def dcs_down(names):
    return lambda s: not any(s["dcs"].get(n, False) for n in names)


def dcs_up(names):
    return lambda s: all(s["dcs"].get(n, False) for n in names)


def redis_state(want):
    return lambda s: s["redis"] is want


def outage(ctx, t, bring, lift, is_down, is_up, seconds, down_within=FAR):
    """The shape of most faults: BRING it, note when the gateway sees IS_DOWN,
    keep it for SECONDS from the start, LIFT it, note when it sees IS_UP."""
    t["fault"] = time.time()
    bring()
    t["down"] = ctx.poll.wait_for(is_down, t["fault"], down_within)
    hold(t["fault"] + seconds)
    t["lift"] = time.time()
    lift()
    t["up"] = ctx.poll.wait_for(is_up, t["lift"], FAR)


# ---- faults: each sets t["fault"], and t["down"], t["lift"], t["up"] where they apply ----

def act_none(ctx, t):
    pass


def act_kill(names):
    """SIGKILL of the datacenters NAMES (every one when empty), restarted after 2 s."""
    def act(ctx, t):
        dcs = [d for d in ctx.site.dcs.values() if not names or d.name in names]
        every = [d.name for d in dcs]
        outage(ctx, t, lambda: [d.kill() for d in dcs], lambda: [d.start(ctx.env) for d in dcs],
               dcs_down(every), dcs_up(every), 2)
    return act


def act_dc_blackhole(ctx, t):
    # Long enough for requests caught in the blackhole to reach response_timeout.
    dc = ctx.site.dcs["ams"]
    outage(ctx, t, lambda: dc.signal(signal.SIGSTOP), lambda: dc.signal(signal.SIGCONT),
           dcs_down(["ams"]), dcs_up(["ams"]), RESPONSE_TIMEOUT_S + 2)


def act_dc_flap(ctx, t):
    dc = ctx.site.dcs["ams"]
    t["fault"] = time.time()
    while time.time() < t["fault"] + 3:
        dc.signal(signal.SIGSTOP)
        hold(time.time() + 0.3)
        dc.signal(signal.SIGCONT)
        hold(time.time() + 0.3)
    t["lift"] = time.time()
    t["down"] = ctx.poll.wait_for(dcs_down(["ams"]), t["fault"], 0)
    t["up"] = ctx.poll.wait_for(dcs_up(["ams"]), t["lift"], FAR)


def act_redis_kill(ctx, t):
    r = ctx.site.redis
    outage(ctx, t, r.kill, lambda: r.start(ctx.env), redis_state(False), redis_state(True), 2)


def act_redis_stop(ctx, t):
    r = ctx.site.redis
    outage(ctx, t, lambda: r.proc.send(signal.SIGSTOP), lambda: r.proc.send(signal.SIGCONT),
           redis_state(False), redis_state(True), 3, down_within=5)


def act_reloads(ctx, t):
    resent = ctx.gw.resent
    t["fault"] = time.time()
    for i in range(20):
        ctx.gw.reload(i + 1)
    t["lift"] = time.time()
    if ctx.gw.resent > resent:
        t["notes"].append(f"{ctx.gw.resent - resent} reload signals went unheeded and were "
                          "sent again")


def act_bad_inputs(ctx, t):
    t["fault"] = time.time()
    t["bad"] = badinputs.run(ctx.gw.host.ip, ctx.gw.web_port)
    t["lift"] = time.time()


def act_worker_kill(ctx, t):
    victim = ctx.gw.worker_pids()[0]
    t["fault"] = t["lift"] = time.time()
    os.kill(victim, signal.SIGKILL)

    def replaced():
        pids = ctx.gw.worker_pids()
        return len(pids) == 2 and victim not in pids
    wait_until(replaced, timeout=FAR, what="a new worker")
    t["up"] = time.time()


def hold(until):
    """Keeps a fault in place until the time UNTIL: the fault's shape, not a wait
    for something to happen."""
    time.sleep(max(0.0, until - time.time()))


# (name, what, seconds of load, action, gateways it applies to, in --short)
SCHEDULE = [
    ("baseline", "no fault", 3, act_none, ("edgegate", "haproxy"), True),
    ("dc-kill", "SIGKILL of the nearest datacenter, restart after 2 s", 9, act_kill(["ams"]),
     ("edgegate", "haproxy"), True),
    ("dc-blackhole", "SIGSTOP of the nearest datacenter for 7 s, then SIGCONT", 14,
     act_dc_blackhole, ("edgegate", "haproxy"), False),
    ("all-dcs-kill", "SIGKILL of every datacenter, restart after 2 s", 9, act_kill([]),
     ("edgegate", "haproxy"), False),
    ("dc-flap", "SIGSTOP/SIGCONT of the nearest datacenter every 300 ms for 3 s", 8,
     act_dc_flap, ("edgegate", "haproxy"), False),
    ("redis-kill", "SIGKILL of Redis, restart after 2 s", 8, act_redis_kill, ("edgegate",), True),
    ("redis-stop", "SIGSTOP of Redis for 3 s, then SIGCONT", 8, act_redis_stop, ("edgegate",),
     False),
    ("reloads", "20 reloads (edgegate SIGHUP, HAProxy SIGUSR2 to its master)", 12, act_reloads,
     ("edgegate", "haproxy"), True),
    ("bad-inputs", f"{len(badinputs.CASES)} malformed or hostile requests", 5, act_bad_inputs,
     ("edgegate", "haproxy"), True),
]
WORKER_FAULT = ("worker-kill", "SIGKILL of one of 2 workers", 7, act_worker_kill)

# What the short form asserts: faults edgegate already handles without losing a request.
MUST_HOLD = ("baseline", "dc-kill", "reloads")


def run_phase(ctx, name, seconds, action, others=()):
    """Load on CTX's gateway (and on the OTHERS' ones) for SECONDS, a second of it
    before ACTION brings the fault; one result row per gateway, CTX's first. The
    OTHERS' rows share the fault's times but not CTX's down and up."""
    loads = [(c, Load(c.env, c.gw.web_url, seconds, clients(f"{c.gw.name}-{name}"),
                      f"{c.gw.name}-{name}")) for c in (ctx, *others)]
    t = {"start": min(load.t0 for _, load in loads), "notes": []}
    for c, load in loads:
        if not load.flowing():
            t["notes"].append(f"{c.gw.name}: a load client had no answer within 10 s of its start")
    hold(t["start"] + 1)
    action(ctx, t)
    over = time.time() - (t["start"] + seconds)
    if over > 0:
        t["notes"].append(f"the fault outlasted the load by {over:.1f} s")
    results = [(c, load.finish()) for c, load in loads]
    t["end"] = time.time()
    # Let messages sent during the fault come back (or time out) before counting.
    hold(t["end"] + 0.5)
    rows = []
    for c, res in results:
        times = t if c is ctx else {k: v for k, v in t.items() if k not in ("down", "up")}
        rows.append(result_row(c, name, times, res))
        if c is not ctx:  # what the fault caught is measured where it struck
            rows[-1].update(caught=None, last_answer=None)
    return rows


def result_row(ctx, name, t, res):
    gw = ctx.gw
    tcp = ctx.tcp.window(t["start"], t["end"])
    probe = ctx.probe.window(t["start"], res["window"][1])
    reqs = res["requests"] + probe["requests"]
    r = {"fault": name, "gateway": gw.kind, "name": gw.name, "times": t,
         "started": res["started"] + probe["started"],
         "failed": res["failed"] + probe["failed"],
         "unanswered": res["unanswered"] + probe["unanswered"],
         "h2load": {k: res[k] for k in ("started", "done", "succeeded", "failed", "errored",
                                         "unanswered", "clients_stalled", "4xx", "5xx")},
         "probe": {k: probe[k] for k in ("started", "failed", "unanswered", "sent_again",
                                         "failures")},
         "tcp": {k: v for k, v in tcp.items() if k != "events"},
         "tcp_events": sorted(tcp.get("events", []), key=lambda e: e["kind"] == "unanswered")[:20],
         "slow": [(round(s - t.get("fault", t["start"]), 3), st, round(e, 3))
                  for s, st, e in reqs if e > 0.5][:20],
         "bad": t.get("bad")}
    if "fault" in t:
        settled = t.get("down") or t["fault"]
        r["caught"], r["last_answer"] = caught(reqs, t["fault"], settled)
        r["markdown"] = t["down"] - t["fault"] if t.get("down") else None
        r["recover"] = t["up"] - t["lift"] if t.get("up") and t.get("lift") else None
        r["worst"] = max([e for s, _, e in reqs if t["fault"] - 1 <= s <= t.get("lift", t["end"])],
                         default=0.0)
    if not gw.alive():
        ctx.crashes.append(f"{gw.name} died during {name}: rc={gw.proc.p.returncode}")
    return r


