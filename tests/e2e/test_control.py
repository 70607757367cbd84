"""Run-time control: the control API on the stats listener, edgegatectl,
operator state shared by a fleet through Redis, one health view per machine
with workers, TLS resumption across gateways."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
from conftest import (ROOT, RawHTTP, dc_state, free_port, http_get, stats, wait_listen,
                      wait_until)

CTL_BIN = os.path.join(ROOT, "build", "edgegatectl")
TOKEN = "s3cret-token-42"


def api(sp, method, path, body=None, token=None, host="127.0.0.1"):
    """One control request; returns (status, parsed JSON or None)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    status, _, raw = http_get(sp, path, headers=headers, method=method, body=data, host=host)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def ctl(conf, *args, check=True):
    r = subprocess.run([CTL_BIN, "-c", conf, *args], capture_output=True, text=True, timeout=20)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def dc_of(body):
    return body.decode().split("\n")[0].removeprefix("dc=")


def control(sp, token=None):
    status, doc = api(sp, "GET", "/control", token=token)
    assert status == 200
    return {d["name"]: d for d in doc["datacenters"]}, doc


def two_dc_conf(sp, port, a, b, extra="", check="http /health"):
    """ams (priority 1) takes new sessions, fra (priority 2) is the other.
    CHECK None: passive checks only."""
    ck = f"check {check} interval 200ms timeout 500ms;" if check else ""
    return (f"stats 127.0.0.1:{sp};\n{extra}\n"
            f"datacenter ams {{ priority 1; server {a.addr}; {ck} }}\n"
            f"datacenter fra {{ priority 2; server {b.addr}; {ck} }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; session cookie sid; }}\n")


# ---- drain under load ----

class Load:
    """Threads sending requests on keep-alive connections until stopped:
    pinned sessions (cookies set before the drain) and new ones (a fresh
    cookie each time). Records where each went and every failure."""

    def __init__(self, port, pinned, threads=4):
        self.port, self.pinned = port, pinned
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures, self.log = [], []  # log: (time, kind, key, dc)
        self.n = 0
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, i):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        k = 0
        while not self.stop.is_set():
            k += 1
            if k % 2:
                kind, key = "pinned", self.pinned[(i + k) % len(self.pinned)]
            else:
                kind, key = "new", f"new-{i}-{k}"
            t0 = time.time()
            try:
                conn.request("GET", "/", headers={"Cookie": f"sid={key}"})
                r = conn.getresponse()
                body = r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException) as e:
                ok, body = False, repr(e).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            with self.lock:
                self.n += 1
                if ok:  # when it started: what routed it was in force then
                    self.log.append((t0, kind, key, dc_of(body)))
                else:
                    self.failures.append(body)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def between(self, t0, t1, kind):
        with self.lock:
            return [dc for t, k, _, dc in self.log if t0 <= t < t1 and k == kind]


def test_drain_under_load_new_sessions_leave_pinned_stay_ready_brings_them_back(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    # Passive checks only: on a loaded machine an active one that times out
    # would move sessions for another reason than the drain.
    gw = env.gateway(two_dc_conf(sp, port, a, b, extra="drain_timeout 60s;", check=None),
                     wait=[port, sp])
    pinned = [f"pin-{i}" for i in range(20)]
    for key in pinned:
        assert dc_of(http_get(port, headers={"Cookie": f"sid={key}"})[2]) == "ams"
    # Each phase lasts until it saw enough of both kinds (however slow the machine).
    enough = 80
    with Load(port, pinned) as load:
        wait_until(lambda: len(load.between(0, time.time(), "new")) > enough, timeout=30,
                   what="load before the drain")
        t_drain = time.time()
        r = ctl(gw.conf, "dc", "drain", "ams")
        assert "datacenter ams: drain" in r.stdout and "[local]" in r.stdout
        t_drained = time.time()
        wait_until(lambda: min(len(load.between(t_drained, time.time(), k))
                               for k in ("new", "pinned")) > enough, timeout=30,
                   what="load during the drain")
        t_ready = time.time()
        ctl(gw.conf, "dc", "ready", "ams")
        t_readied = time.time()
        wait_until(lambda: len(load.between(t_readied, time.time(), "new")) > enough, timeout=30,
                   what="load after ready")
    assert load.failures == [] and load.n > 300, (load.n, load.failures[:3])
    before_new = load.between(0, t_drain, "new")
    assert before_new and set(before_new) == {"ams"}
    during_new = load.between(t_drained, t_ready, "new")
    during_pinned = load.between(t_drained, t_ready, "pinned")
    assert len(during_new) > 50 and set(during_new) == {"fra"}, "new sessions leave"
    assert len(during_pinned) > 50 and set(during_pinned) == {"ams"}, "pinned ones stay"
    after_new = load.between(t_readied, time.time(), "new")
    assert len(after_new) > 50 and set(after_new) == {"ams"}, "ready brings them back"
    st = stats(sp)
    assert st["counters"]["operator_changes_total"] == 2
    assert [c["what"] for c in st["operator"]["changes"]] == [
        "datacenter ams: ready", "datacenter ams: drain (pinned sessions leave in 60s)"]
    assert re.search(r"operator: datacenter ams: drain .*\(by 127\.0\.0\.1:\d+\)", gw.output())
    print(f"drain under load: {load.n} requests, {len(load.failures)} failed; during the drain "
          f"{len(during_new)} new sessions all in fra, {len(during_pinned)} pinned all in ams; "
          f"after ready {len(after_new)} new sessions all in ams")


def test_drain_timeout_then_pinned_sessions_leave(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = env.gateway(two_dc_conf(sp, port, a, b), wait=[port, sp])
    assert dc_of(http_get(port, headers={"Cookie": "sid=alice"})[2]) == "ams"
    status, d = api(sp, "PUT", "/control/dcs/ams", {"state": "drain", "drain_timeout": 1})
    assert status == 200 and d["state"] == "drain" and not d["drained"]
    assert d["sessions_leave_in_s"] == pytest.approx(1, abs=0.2)
    assert dc_of(http_get(port, headers={"Cookie": "sid=alice"})[2]) == "ams"
    wait_until(lambda: control(sp)[0]["ams"]["drained"], what="the drain over")
    assert dc_of(http_get(port, headers={"Cookie": "sid=alice"})[2]) == "fra"
    # /stats, /metrics and the page show it.
    st = stats(sp)
    ams = [x for x in st["datacenters"] if x["name"] == "ams"][0]
    assert ams["admin"] == "drain" and ams["drained"] is True
    metrics = http_get(sp, "/metrics")[2].decode()
    assert 'edgegate_datacenter_admin_state{dc="ams",state="drain"} 1' in metrics
    assert "edgegate_operator_changes_total 1" in metrics
    assert gw.alive()


def test_operator_state_on_the_page(env):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is installed by make test (tools/deps.sh)")
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = env.gateway(two_dc_conf(sp, port, a, b), wait=[port, sp])
    ctl(gw.conf, "dc", "drain", "ams", "300")
    ctl(gw.conf, "server", "weight", "fra", b.addr, "4")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={env.path('chromium')}", "--virtual-time-budget=3000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", f"http://127.0.0.1:{sp}/"],
                         capture_output=True, text=True, timeout=60).stdout
    assert "DRAINING: sessions leave in" in dom
    assert "datacenter ams: drain (pinned sessions leave in 300s)" in dom
    assert "4 (1)" in dom and "operator state is this gateway" in dom


def test_down_moves_in_flight_at_once_and_checks_do_not_bring_it_back(env):
    a, b = env.dcsim("ams", delay="1500ms"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = env.gateway(two_dc_conf(sp, port, a, b, check="tcp"), wait=[port, sp])
    wait_until(lambda: dc_state(sp, "ams")["servers"][0]["rtt_ms"] is not None, what="checked")
    result = {}
    sent = dc_state(sp, "ams")["requests_total"]
    t = threading.Thread(target=lambda: result.update(r=http_get(port, timeout=10)))
    t.start()
    wait_until(lambda: dc_state(sp, "ams")["requests_total"] > sent, what="the request at ams")
    t0 = time.time()
    r = ctl(gw.conf, "dc", "down", "ams")
    assert "NOT HEALTHY" in r.stdout
    t.join(10)
    status, _, body = result["r"]
    assert status == 200 and dc_of(body) == "fra"
    assert time.time() - t0 < 1.0, "moved at once, not after ams answered"
    checks = stats(sp)["counters"]["checks_total"]  # ams passes a few rounds meanwhile
    wait_until(lambda: stats(sp)["counters"]["checks_total"] >= checks + 6, what="3 rounds")
    srv = dc_state(sp, "ams")["servers"][0]
    assert srv["up"] is False and srv["reason"] == "operator: down" and srv["admin"] == "down"
    ctl(gw.conf, "dc", "ready", "ams")
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams back after its checks")
    assert stats(sp)["counters"]["inflight_moved_total"] >= 1


def test_state_survives_sighup_without_redis(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = env.gateway(two_dc_conf(sp, port, a, b), wait=[port, sp])
    ctl(gw.conf, "dc", "drain", "ams")
    ctl(gw.conf, "server", "weight", "fra", b.addr, "5")
    gw.send(signal.SIGHUP)
    wait_until(lambda: stats(sp)["generation"] == 2, what="reload")
    dcs, _ = control(sp)
    assert dcs["ams"]["state"] == "drain"
    assert dcs["fra"]["servers"][0]["weight"] == 5
    assert dc_of(http_get(port)[2]) == "fra"


# ---- weights ----

def test_weight_zero_and_three_to_one(env):
    a, b = env.dcsim("ams-a"), env.dcsim("ams-b")
    port, sp = free_port(), free_port()
    conf = (f"stats 127.0.0.1:{sp};\n"
            f"datacenter ams {{ server {a.addr}; server {b.addr}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; }}\n")
    gw = env.gateway(conf, wait=[port, sp])

    def spread(n):
        c = RawHTTP(port)
        seen = {}
        for _ in range(n):
            status, _, body = c.request("/")
            assert status == 200
            seen[dc_of(body)] = seen.get(dc_of(body), 0) + 1
        c.close()
        return seen

    r = ctl(gw.conf, "server", "weight", "ams", a.addr, "0")
    assert "weight 0 (configured 1)" in r.stdout
    assert spread(200) == {"ams-b": 200}
    ctl(gw.conf, "server", "weight", "ams", a.addr, "3")
    seen = spread(1000)
    assert seen["ams-a"] + seen["ams-b"] == 1000
    assert 700 <= seen["ams-a"] <= 800, seen
    print(f"weight 3 against 1: {seen['ams-a']} / {seen['ams-b']} of 1,000 requests")
    ctl(gw.conf, "server", "drain", "ams", b.addr)
    assert spread(50) == {"ams-a": 50}
    ctl(gw.conf, "server", "ready", "ams", b.addr)
    ctl(gw.conf, "server", "weight", "ams", a.addr, "default")
    seen = spread(100)
    assert seen == {"ams-a": 50, "ams-b": 50}, seen
    metrics = http_get(sp, "/metrics")[2].decode()
    assert f'edgegate_server_weight{{dc="ams",server="{a.addr}"}} 1' in metrics


# ---- sessions ----

def test_session_get_move_forget_in_memory(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = env.gateway(two_dc_conf(sp, port, a, b), wait=[port, sp])
    http_get(port, headers={"Cookie": "sid=a/b%c"})
    r = ctl(gw.conf, "--json", "session", "get", "a/b%c")
    s = json.loads(r.stdout)
    assert s["dc"] == "ams" and s["home"] is None and s["source"] == "memory"
    assert 3500 < s["ttl_s"] <= 3600
    r = ctl(gw.conf, "session", "move", "a/b%c", "fra")
    assert "datacenter fra" in r.stdout
    assert dc_of(http_get(port, headers={"Cookie": "sid=a/b%c"})[2]) == "fra"
    assert ctl(gw.conf, "session", "move", "a/b%c", "nowhere", check=False).returncode == 3
    ctl(gw.conf, "session", "forget", "a/b%c")
    r = ctl(gw.conf, "session", "get", "a/b%c", check=False)
    assert r.returncode == 3 and "no such session" in r.stderr
    assert stats(sp)["counters"]["session_moves_total"] == 2
    assert "operator: session a/b%c moved to fra" in gw.output()


def test_session_get_and_move_in_redis(env):
    redis = env.redis()
    a, b = env.dcsim("ams"), env.dcsim("fra")
    ports = [(free_port(), free_port()) for _ in range(2)]
    gws = [env.gateway(two_dc_conf(sp, port, a, b,
                                   extra=f"redis 127.0.0.1:{redis.port} {{ prefix t:; }}"),
                       name=f"gw{i}", wait=[port, sp])
           for i, (port, sp) in enumerate(ports)]
    for _, sp in ports:
        wait_until(lambda: api(sp, "GET", "/control")[1]["fleet"]["subscribed"], what="redis")
    # Cached by gateway 1 ...
    assert dc_of(http_get(ports[1][0], headers={"Cookie": "sid=bob"})[2]) == "ams"
    s = json.loads(ctl(gws[0].conf, "--json", "session", "get", "bob").stdout)
    assert s["dc"] == "ams" and s["source"] == "redis" and s["ttl_s"] > 3500
    # ... moved through gateway 0: gateway 1 drops its cached answer.
    ctl(gws[0].conf, "session", "move", "bob", "fra")
    assert redis.client.get("t:aff:bob") == "fra"
    wait_until(lambda: dc_of(http_get(ports[1][0], headers={"Cookie": "sid=bob"})[2]) == "fra",
               timeout=2, what="gateway 1 follows the move")
    ctl(gws[1].conf, "session", "forget", "bob")
    assert redis.client.get("t:aff:bob") is None
    assert ctl(gws[0].conf, "session", "get", "bob", check=False).returncode == 3


# ---- the fleet ----

def fleet(env, n=2, extra=""):
    redis = env.redis()
    a, b = env.dcsim("ams"), env.dcsim("fra")
    gws = []
    for i in range(n):
        port, sp = free_port(), free_port()
        gw = env.gateway(two_dc_conf(sp, port, a, b,
                                     extra=f"stats_token {TOKEN};\n{extra}\n"
                                           f"redis 127.0.0.1:{redis.port} {{ prefix f:; }}"),
                         name=f"gw{i}", wait=[port, sp])
        gw.port, gw.sp = port, sp
        gws.append(gw)
    for gw in gws:
        wait_until(lambda: api(gw.sp, "GET", "/control", token=TOKEN)[1]["fleet"]["subscribed"],
                   what="subscribed")
    return redis, gws


def test_fleet_drain_applied_by_the_other_gateway_within_100ms(env):
    redis, (g0, g1) = fleet(env)
    r = ctl(g0.conf, "dc", "drain", "ams")
    assert "[fleet]" in r.stdout
    # Gateway 1 applied it when it logged it: compare with when gateway 0 made it.
    dcs0, _ = control(g0.sp, TOKEN)
    made = dcs0["ams"]["since"]
    _, doc1 = control(g1.sp, TOKEN)
    assert doc1["datacenters"][0]["state"] == "drain"
    applied = [c for c in doc1["changes"] if c["what"].startswith("datacenter ams: drain")]
    assert applied and applied[0]["origin"] == "redis"
    delay = applied[0]["at"] - made
    print(f"fleet propagation: {delay * 1000:.1f} ms")
    assert 0 <= delay < 0.1
    assert dc_of(http_get(g1.port)[2]) == "fra"
    assert json.loads(redis.client.hget("f:op:state", "dc:ams"))["state"] == "drain"
    assert re.search(r"operator: datacenter ams: drain .*\(by redis, from 127\.0\.0\.1:\d+\)",
                     g1.output())
    assert stats_with_token(g1.sp)["counters"]["operator_fleet_changes_total"] == 1
    assert stats_with_token(g0.sp)["counters"]["operator_changes_total"] == 1


def test_fleet_state_outlives_a_restart_and_holds_without_redis(env):
    redis, (g0, g1) = fleet(env)
    ctl(g0.conf, "dc", "drain", "ams")
    ctl(g0.conf, "server", "weight", "fra", json.loads(
        ctl(g0.conf, "--json", "status").stdout)["datacenters"][1]["servers"][0]["address"], "7")
    # Gateway 1 restarts: it reads the state back from Redis.
    g1.stop()
    g1b = env.gateway(open(g1.conf).read(), name="gw1b", wait=[g1.port, g1.sp])
    wait_until(lambda: control(g1.sp, TOKEN)[0]["ams"]["state"] == "drain", timeout=3,
               what="state re-read at start")
    assert control(g1.sp, TOKEN)[0]["fra"]["servers"][0]["weight"] == 7
    # Redis goes away: the last state holds, a reload included.
    redis.stop()
    g1b.send(signal.SIGHUP)
    wait_until(lambda: stats_with_token(g1.sp)["generation"] == 2, what="reload")
    for sp in (g0.sp, g1.sp):
        wait_until(lambda: not control(sp, TOKEN)[1]["fleet"]["connected"], what="redis gone")
        assert control(sp, TOKEN)[0]["ams"]["state"] == "drain"
    assert dc_of(http_get(g1.port)[2]) == "fra"
    # A change made meanwhile is applied here and written once Redis is back.
    r = ctl(g1.conf, "dc", "ready", "ams")
    assert "[pending]" in r.stdout
    assert control(g1.sp, TOKEN)[1]["fleet"]["pending"] == 1
    redis2 = env.redis(port=redis.port)
    wait_until(lambda: control(g0.sp, TOKEN)[0]["ams"]["state"] == "ready", timeout=15,
               what="the pending change reaches gateway 0 through the new Redis")
    assert control(g1.sp, TOKEN)[1]["fleet"]["pending"] == 0
    # The new Redis had nothing: the gateways wrote their state back.
    addr = control(g0.sp, TOKEN)[0]["fra"]["servers"][0]["address"]
    state = redis2.client.hgetall("f:op:state")
    assert json.loads(state[f"srv:fra:{addr}"])["weight"] == 7, state


def test_fleet_without_pubsub_permission_keeps_affinity(env):
    """A Redis whose ACL forbids SUBSCRIBE: changes are still written (and
    read at start and reload), sessions still live in Redis."""
    redis = env.redis()
    redis.client.execute_command("ACL", "SETUSER", "default", "-subscribe")
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = env.gateway(two_dc_conf(sp, port, a, b,
                                 extra=f"redis 127.0.0.1:{redis.port} {{ prefix p:; }}"),
                     wait=[port, sp])
    wait_until(lambda: control(sp)[1]["fleet"]["connected"], what="redis")
    time.sleep(0.5)
    fleet = control(sp)[1]["fleet"]
    assert fleet["connected"] and not fleet["subscribed"]
    assert dc_of(http_get(port, headers={"Cookie": "sid=carol"})[2]) == "ams"
    assert redis.client.get("p:aff:carol") == "ams"
    r = ctl(gw.conf, "dc", "drain", "ams")
    assert "[fleet]" in r.stdout
    wait_until(lambda: redis.client.hget("p:op:state", "dc:ams"), what="written")
    assert stats(sp)["redis"]["connected"]
    assert "NOT SUBSCRIBED" in ctl(gw.conf, "status").stdout
    assert gw.output().count("subscription to p:op:changes") == 1  # said once


def test_fleet_garbage_in_redis_is_ignored(env):
    redis, (g0, g1) = fleet(env)
    for msg in ["nonsense", "dc:ams\n{", "dc:ams\n{\"state\": \"sleep\"}", "dc:a b\n",
                "srv:ams:not-an-address\n{}", "session\n\x01"]:
        redis.client.publish("f:op:changes", msg)
    redis.client.hset("f:op:state", "dc:fra", "[1, 2]")
    g1.send(signal.SIGHUP)  # re-reads the hash
    wait_until(lambda: stats_with_token(g1.sp)["generation"] == 2, what="reload")
    wait_until(lambda: control(g1.sp, TOKEN)[1]["fleet"]["bad_messages"] >= 6, what="all heard")
    dcs, doc = control(g1.sp, TOKEN)
    assert all(d["state"] == "ready" for d in dcs.values())
    assert doc["fleet"]["bad_messages"] >= 6
    assert g0.alive() and g1.alive()


# ---- bad input ----

def test_bad_input_is_refused_and_changes_nothing(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = env.gateway(two_dc_conf(sp, port, a, b, extra=f"stats_token {TOKEN};"),
                     wait=[port, sp])
    good = {"state": "drain"}
    cases = [
        # token
        ("PUT", "/control/dcs/ams", good, None, 401),
        ("PUT", "/control/dcs/ams", good, "wrong-token-1234", 401),
        ("PUT", f"/control/dcs/ams?token={TOKEN}", good, None, 401),
        ("GET", "/control", None, None, 401),
        ("DELETE", "/control/sessions/x", None, None, 401),
        # unknown names
        ("PUT", "/control/dcs/nope", good, TOKEN, 404),
        ("PUT", "/control/dcs/ams/servers/127.0.0.1:1", good, TOKEN, 404),
        ("PUT", f"/control/dcs/fra/servers/{a.addr}", good, TOKEN, 404),
        ("GET", "/control/elsewhere", None, TOKEN, 404),
        ("PUT", "/control/dcs/a%20b", good, TOKEN, 404),
        ("PUT", "/control/sessions/bob", {"dc": "nope"}, TOKEN, 404),
        # malformed bodies
        ("PUT", "/control/dcs/ams", b"", TOKEN, 400),
        ("PUT", "/control/dcs/ams", b"{", TOKEN, 400),
        ("PUT", "/control/dcs/ams", b"[\"drain\"]", TOKEN, 400),
        ("PUT", "/control/dcs/ams", {"state": "sleep"}, TOKEN, 400),
        ("PUT", "/control/dcs/ams", {"state": "drain", "color": "red"}, TOKEN, 400),
        ("PUT", "/control/dcs/ams", {"state": "ready", "drain_timeout": 5}, TOKEN, 400),
        ("PUT", "/control/dcs/ams", {"state": "drain", "drain_timeout": -1}, TOKEN, 400),
        ("PUT", "/control/dcs/ams", b"{\"state\": \"drain\"} x", TOKEN, 400),
        ("PUT", "/control/dcs/ams", b"{\"state\": \"dr\\u0000ain\"}", TOKEN, 400),
        ("PUT", f"/control/dcs/ams/servers/{a.addr}", {"weight": 1001}, TOKEN, 400),
        ("PUT", f"/control/dcs/ams/servers/{a.addr}", {"weight": 2.5}, TOKEN, 400),
        ("PUT", f"/control/dcs/ams/servers/{a.addr}", {"weight": "3"}, TOKEN, 400),
        ("PUT", f"/control/dcs/ams/servers/{a.addr}", {}, TOKEN, 400),
        ("PUT", "/control/sessions/bob", {"dc": 3}, TOKEN, 400),
        ("PUT", "/control/sessions/", {"dc": "fra"}, TOKEN, 400),
        ("PUT", "/control/sessions/%zz", {"dc": "fra"}, TOKEN, 400),
        ("PUT", "/control/sessions/%01", {"dc": "fra"}, TOKEN, 400),
        ("PUT", "/control/dcs/ams", b"{\"state\": \"drain\"" + b" " * 5000 + b"}", TOKEN, 413),
        # methods
        ("POST", "/control/dcs/ams", good, TOKEN, 405),
        ("DELETE", "/control/dcs/ams", None, TOKEN, 405),
        ("PUT", "/control", good, TOKEN, 405),
    ]
    for method, path, body, token, want in cases:
        status, doc = api(sp, method, path, body, token=token)
        assert status == want, (method, path, body, status, doc)
        assert doc and doc.get("error"), (method, path, doc)
    # A body cut short, and chunked: refused as well.
    s = socket.create_connection(("127.0.0.1", sp))
    s.sendall(f"PUT /control/dcs/ams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
              "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode())
    assert s.recv(100).startswith(b"HTTP/1.1 411")
    s.close()
    s = socket.create_connection(("127.0.0.1", sp))
    s.sendall(f"PUT /control/dcs/ams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
              "Content-Length: 100\r\n\r\n{\"state\"".encode())
    s.close()
    # Nothing changed.
    dcs, doc = control(sp, TOKEN)
    assert all(d["state"] == "ready" for d in dcs.values())
    assert all(s["state"] == "ready" and s["weight"] == 1
               for d in dcs.values() for s in d["servers"])
    assert doc["changes"] == []
    c = stats_with_token(sp)["counters"]
    assert c["operator_changes_total"] == 0 and c["session_moves_total"] == 0
    assert c["control_refused_total"] == len(cases) + 1
    assert "operator:" not in gw.output()
    # edgegatectl says why and exits non-zero.
    r = ctl(gw.conf, "dc", "drain", "nope", check=False)
    assert r.returncode == 3 and "404: no such datacenter" in r.stderr
    r = ctl(gw.conf, "-t", "wrong-token-1234", "status", check=False)
    assert r.returncode == 3 and "401" in r.stderr
    assert ctl(gw.conf, "dc", "snooze", "ams", check=False).returncode == 1
    assert ctl(gw.conf, "-s", f"127.0.0.1:{free_port()}", "status", check=False).returncode == 2
    # The right token works, in the header only for a change.
    assert api(sp, "GET", f"/control?token={TOKEN}")[0] == 200
    assert api(sp, "PUT", "/control/dcs/ams", good, token=TOKEN)[0] == 200


def stats_with_token(sp):
    status, _, body = http_get(sp, "/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    return json.loads(body)


def test_changes_need_a_token_beyond_loopback(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    ip = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    ip = [x for x in ip if "." in x and not x.startswith("127.")]
    if not ip:
        pytest.skip("no non-loopback IPv4 address to reach the stats listener on")
    conf = two_dc_conf(sp, port, a, b).replace(f"stats 127.0.0.1:{sp}", f"stats 0.0.0.0:{sp}")
    gw = env.gateway(conf, wait=[port, sp])
    assert api(sp, "GET", "/control", host=ip[0])[0] == 200
    status, doc = api(sp, "PUT", "/control/dcs/ams", {"state": "drain"}, host=ip[0])
    assert status == 403 and "stats_token" in doc["error"]
    assert control(sp)[0]["ams"]["state"] == "ready"
    assert api(sp, "PUT", "/control/dcs/ams", {"state": "drain"})[0] == 200
    assert gw.alive()


# ---- TLS resumption across the fleet ----

def ticket_key():
    return subprocess.run(["openssl", "rand", "-hex", "80"], capture_output=True, text=True,
                          check=True).stdout.strip()


def tls_gateways(env, keyfiles):
    from helper_tls import make_certs
    cert = make_certs(env.path("certs"))["site"]
    a = env.dcsim("ams")
    gws = []
    for i, keys in enumerate(keyfiles):
        port, sp = free_port(), free_port()
        line = f"tls_ticket_keys {keys};\n" if keys else ""
        gw = env.gateway(f"{line}stats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; }}\n"
                         f"listener web {{ listen 127.0.0.1:{port}; "
                         f"tls cert {cert.cert} key {cert.key}; }}\n",
                         name=f"tls{i}", wait=[port, sp])
        gw.port, gw.sp = port, sp
        gws.append(gw)
    return gws


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_ticket_from_one_gateway_resumes_on_another(env, version):
    from helper_tls import s_client
    k1 = ticket_key()
    keys = env.write("tickets.keys", f"# rotated by the operator\n{k1}\n")
    g1, g2, lone = tls_gateways(env, [keys, keys, None])
    sess = env.path("sess.pem")
    rc, out = s_client(g1.port, version, "-sess_out", sess, servername="site.test")
    assert rc == 0 and "New, TLSv1." in out, out
    rc, out = s_client(g2.port, version, "-sess_in", sess, servername="site.test")
    assert rc == 0 and "Reused, TLSv1." in out, out
    # A gateway with keys of its own does not take it.
    rc, out = s_client(lone.port, version, "-sess_in", sess, servername="site.test")
    assert rc == 0 and "New, TLSv1." in out, out
    # Rotation: a new key first, the old one kept after it; gateway 2 reloads.
    k2 = ticket_key()
    with open(keys, "w") as f:
        f.write(f"{k2}\n{k1}\n")
    g2.send(signal.SIGHUP)
    wait_until(lambda: stats(g2.sp)["generation"] == 2, what="reload")
    rc, out = s_client(g2.port, version, "-sess_in", sess, servername="site.test")
    assert rc == 0 and "Reused, TLSv1." in out, "the old key still decrypts: " + out
    sess2 = env.path("sess2.pem")
    rc, out = s_client(g2.port, version, "-sess_out", sess2, servername="site.test")
    # Issued under the new key: gateway 1, which has not reloaded, cannot read it.
    rc, out = s_client(g1.port, version, "-sess_in", sess2, servername="site.test")
    assert rc == 0 and "New, TLSv1." in out, out
    # The keys never show, in logs, stats or metrics.
    for g in (g1, g2):
        shown = g.output() + http_get(g.sp, "/stats")[2].decode() + \
            http_get(g.sp, "/metrics")[2].decode()
        for k in (k1, k2):
            for part in (k[:32], k[32:96], k[96:]):
                assert part.lower() not in shown.lower()
    assert stats(g2.sp)["counters"]["tls_resumed_total"] >= 2


def test_bad_ticket_key_file_is_a_configuration_error(env):
    keys = env.write("bad.keys", "00" * 79 + "\n")
    secret = "ab" * 80
    keys2 = env.write("dup.keys", f"{secret}\n{secret}\n")
    for f, why in [(keys, "line 1: a key is 160 hex digits"), (keys2, "line 2: the same key"),
                   (env.path("missing.keys"), "cannot read")]:
        conf = env.write("t.conf", f"tls_ticket_keys {f};\ndatacenter a {{ server 127.0.0.1:1; }}\n"
                                   f"listener l {{ listen 127.0.0.1:{free_port()}; }}\n")
        r = subprocess.run([os.environ.get("EG_BIN", os.path.join(ROOT, "build", "edgegate")),
                            "-t", "-c", conf], capture_output=True, text=True)
        assert r.returncode == 1 and why in r.stderr and "tls_ticket_keys" in r.stderr, r.stderr
        assert secret not in r.stderr


# ---- one health view per machine ----

def by_worker(sp, n_workers, samples=60):
    """/stats as each worker answers it (the listener's SO_REUSEPORT spreads
    connections): {pid: [health view, ...]}."""
    seen = {}
    for _ in range(samples):
        st = stats(sp)
        view = [(d["name"], d["healthy"], d["nearest"],
                 [(s["address"], s["up"], s["reason"]) for s in d["servers"]])
                for d in st["datacenters"]]
        seen.setdefault(st["pid"], []).append((view, st["counters"]["checks_total"]))
        if len(seen) == n_workers and all(len(v) >= 5 for v in seen.values()):
            break
    assert len(seen) == n_workers, f"saw workers {list(seen)}"
    return seen


def stats_anyway(sp):
    """/stats, once more if the connection landed on a worker being killed."""
    for _ in range(5):
        try:
            return stats(sp)
        except OSError:
            time.sleep(0.05)
    return stats(sp)


def health_hits(procs):
    return sum(p.output().count("req GET /health") for p in procs)


def test_workers_share_one_health_view_and_check_once(env):
    live = [env.dcsim(f"s{i}", extra=["--log"]) for i in range(3)]
    dead = free_port()
    port, sp = free_port(), free_port()
    gw = env.gateway(f"workers 2;\nstats 127.0.0.1:{sp};\n"
                     f"datacenter ams {{ server {live[0].addr}; server {live[1].addr}; "
                     "check http /health interval 200ms timeout 200ms fall 1 rise 1; }\n"
                     f"datacenter fra {{ priority 2; server {live[2].addr}; "
                     f"server 127.0.0.1:{dead}; "
                     "check http /health interval 200ms timeout 200ms fall 1 rise 1; }\n"
                     f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port, sp])
    wait_until(lambda: not dc_state(sp, "fra")["servers"][1]["up"], what="the dead one down")
    # Checks per interval: one per server, not one per server and worker.
    c0, h0, t0 = stats(sp)["counters"]["checks_total"], health_hits(live), time.time()
    time.sleep(3)
    c1, h1, t1 = stats(sp)["counters"]["checks_total"], health_hits(live), time.time()
    rounds = (t1 - t0) / 0.2
    print(f"workers 2: {(c1 - c0) / rounds:.2f} checks and {(h1 - h0) / rounds:.2f} /health "
          f"requests per interval, 4 servers of which 3 answer")
    assert 3.5 <= (c1 - c0) / rounds <= 4.5
    assert 2.5 <= (h1 - h0) / rounds <= 3.5
    # Every worker reports the same health, whatever happens to the servers.
    phases = [("steady", None), ("s0 stopped", lambda: os.kill(live[0].pid, signal.SIGSTOP)),
              ("s0 back", lambda: os.kill(live[0].pid, signal.SIGCONT))]
    for name, act in phases:
        if act:
            act()
            want = name == "s0 back"
            wait_until(lambda: dc_state(sp, "ams")["servers"][0]["up"] == want, what=name)
            time.sleep(0.3)
        seen = by_worker(sp, 2)
        views = {json.dumps(v) for samples in seen.values() for v, _ in samples}
        assert len(views) == 1, (name, views)
        totals = [c for samples in seen.values() for _, c in samples]
        assert max(totals) - min(totals) < 20, "one machine-wide count"
    # Logged once, by the process that decided it.
    out = gw.output()
    assert out.count(f"server {live[0].addr} of ams is down") == 1, out
    # The checker (worker 0, started first) dies: its successor takes the
    # machine's view (the dead server stays down, nothing flaps) and checks on.
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(gw.pid)], capture_output=True,
                              text=True).stdout.split()
    os.kill(min(map(int, children)), signal.SIGKILL)
    wait_until(lambda: stats_anyway(sp)["counters"]["worker_restarts_total"] == 1,
               what="restarted")
    c0 = stats_anyway(sp)["counters"]["checks_total"]
    wait_until(lambda: stats_anyway(sp)["counters"]["checks_total"] > c0 + 8, what="checks go on")
    seen = by_worker(sp, 2)
    views = {json.dumps(v) for samples in seen.values() for v, _ in samples}
    assert len(views) == 1, views
    assert f"server 127.0.0.1:{dead} of fra is up" not in gw.output()


def test_workers_show_the_checkers_last_check_and_since(env):
    """Worker 0 checks; whichever worker answers /stats shows each server's
    last check and since when it is up or down, a restarted worker too."""
    ok = env.dcsim("ams")
    dead = free_port()
    port, sp = free_port(), free_port()
    gw = env.gateway(f"workers 2;\nstats 127.0.0.1:{sp};\n"
                     f"datacenter ams {{ server {ok.addr}; server 127.0.0.1:{dead}; "
                     "check http /health interval 100ms timeout 150ms fall 2 rise 2; }\n"
                     f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port, sp])
    wait_until(lambda: not dc_state(sp, "ams")["servers"][1]["up"], what="the dead one down")

    def samples():
        seen = {}
        for _ in range(100):
            st = stats_anyway(sp)
            seen.setdefault(st["pid"], []).append(st["datacenters"][0]["servers"])
            if len(seen) == 2 and all(len(v) >= 5 for v in seen.values()):
                break
        assert len(seen) == 2, f"saw workers {list(seen)}"
        return seen

    for pid, answers in samples().items():
        for good, bad in answers:
            assert good["last_check"] and good["last_check"]["result"] == "status 200", (pid, good)
            assert bad["last_check"] and bad["last_check"]["cause"] == "refused", (pid, bad)
            assert good["last_check"]["age_s"] < 1 and bad["last_check"]["age_s"] < 1
    wait_until(lambda: dc_state(sp, "ams")["servers"][1]["since_s"] >= 2, what="2 s down")
    # The worker that does not check (started last) dies: the one started
    # in its place takes since when the server is down from the view.
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(gw.pid)], capture_output=True,
                              text=True).stdout.split()
    os.kill(max(map(int, children)), signal.SIGKILL)
    wait_until(lambda: stats_anyway(sp)["counters"]["worker_restarts_total"] == 1,
               what="restarted")
    for pid, answers in samples().items():
        for good, bad in answers:
            assert bad["since_s"] >= 2 and not bad["up"], (pid, bad)
            assert bad["last_check"]["cause"] == "refused", (pid, bad)


def test_workers_a_refusal_seen_by_one_worker_moves_all(env):
    a = env.dcsim("ams")
    b = env.dcsim("ams-b")
    port, sp = free_port(), free_port()
    env.gateway(f"workers 2;\nstats 127.0.0.1:{sp};\n"
                f"datacenter ams {{ server {a.addr}; server {b.addr}; passive timeout 30s; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port, sp])
    b.stop()
    # One request (served by one worker) finds b refusing, and is retried on a.
    deadline = time.time() + 5
    while time.time() < deadline and dc_state(sp, "ams")["servers"][1]["up"]:
        assert http_get(port)[0] == 200
    # The other worker applies the shared view within 10 ms.
    wait_until(lambda: all(view[0][3][1][1:] == (False, "connection refused")
                           for samples in by_worker(sp, 2).values() for view, _ in samples),
               what="both workers see b refused")
    for _ in range(20):
        status, _, body = http_get(port)
        assert status == 200 and dc_of(body) == "ams"
