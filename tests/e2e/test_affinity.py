"""Session affinity: in Redis, shared by gateways, surviving Redis and
datacenter outages."""

import signal
import threading
import time

from conftest import RawHTTP, dc_state, free_port, http_get, stats, wait_until

FAST = "check http /health interval 100ms timeout 100ms rise 2 fall 2;"


def conf(port, sp, dcs, redis=None, listener="", prefix="eg:", redis_extra=""):
    """DCS: [(name, priority, dcsim)]."""
    out = [f"log info;\nstats 127.0.0.1:{sp};"]
    if redis:
        out.append(f"redis 127.0.0.1:{redis.port} {{ prefix {prefix}; ttl 1h; timeout 50ms; "
                   f"{redis_extra} }}")
    for name, prio, sim in dcs:
        out.append(f"datacenter {name} {{ priority {prio}; server {sim.addr}; {FAST} }}")
    out.append(f"listener web {{ listen 127.0.0.1:{port}; session cookie sid; retries 3; "
               f"{listener} }}")
    return "\n".join(out) + "\n"


def dc_of(port, sid, path="/"):
    status, _, body = http_get(port, path, {"Cookie": f"sid={sid}"})
    assert status == 200, (status, body)
    return body.split(b"\n")[0].decode()[3:]


def test_hand_set_key_is_honoured(env):
    r = env.redis()
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, a), ("fra", 2, b)], r), wait=[port])
    wait_until(lambda: stats(sp)["redis"]["connected"], what="redis connected")
    r.client.set("eg:aff:by-hand", "fra")
    assert dc_of(port, "by-hand") == "fra"
    assert dc_of(port, "fresh") == "ams"
    assert r.client.get("eg:aff:fresh") == "ams"
    assert 3000 < r.client.ttl("eg:aff:fresh") <= 3600


def test_two_gateways_agree_on_every_session(env):
    r = env.redis()
    a, b = env.dcsim("ams"), env.dcsim("fra")
    p1, s1, p2, s2 = free_port(), free_port(), free_port(), free_port()
    # Opposite preferences: without the shared store they would disagree.
    env.gateway(conf(p1, s1, [("ams", 1, a), ("fra", 2, b)], r), name="gw1", wait=[p1])
    env.gateway(conf(p2, s2, [("ams", 2, a), ("fra", 1, b)], r), name="gw2", wait=[p2])
    wait_until(lambda: stats(s1)["redis"]["connected"] and stats(s2)["redis"]["connected"],
               what="both connected")
    first = {}
    for i in range(100):
        port = p1 if i % 2 else p2
        first[i] = dc_of(port, f"user-{i}")
    assert set(first.values()) == {"ams", "fra"}
    for i in range(100):
        assert dc_of(p1, f"user-{i}") == first[i]
        assert dc_of(p2, f"user-{i}") == first[i]
        assert r.client.get(f"eg:aff:user-{i}") == first[i]


def test_concurrent_first_requests_settle_on_one_answer(env):
    r = env.redis()
    a, b = env.dcsim("ams"), env.dcsim("fra")
    p1, s1, p2, s2 = free_port(), free_port(), free_port(), free_port()
    env.gateway(conf(p1, s1, [("ams", 1, a), ("fra", 2, b)], r), name="gw1", wait=[p1])
    env.gateway(conf(p2, s2, [("ams", 2, a), ("fra", 1, b)], r), name="gw2", wait=[p2])
    wait_until(lambda: stats(s1)["redis"]["connected"] and stats(s2)["redis"]["connected"],
               what="both connected")
    results = {}

    def hit(port, sid, slot):
        results[slot] = dc_of(port, sid)

    for i in range(30):
        t1 = threading.Thread(target=hit, args=(p1, f"race-{i}", (i, 1)))
        t2 = threading.Thread(target=hit, args=(p2, f"race-{i}", (i, 2)))
        t1.start(), t2.start()
        t1.join(), t2.join()
        assert results[(i, 1)] == results[(i, 2)] == r.client.get(f"eg:aff:race-{i}")


def run_failover(env, failback):
    r = env.redis()
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, a), ("fra", 2, b)], r,
                     f"failback {'on' if failback else 'off'};"), wait=[port])
    wait_until(lambda: stats(sp)["redis"]["connected"], what="redis connected")
    sessions = [f"s{i}" for i in range(20)]
    assert {dc_of(port, s) for s in sessions} == {"ams"}
    a.stop(signal.SIGKILL)
    errors = 0
    for s in sessions:  # the first requests after the kill find ams refusing
        try:
            assert dc_of(port, s) == "fra"
        except Exception:
            errors += 1
    assert errors == 0
    for s in sessions:
        assert r.client.get(f"eg:aff:{s}") == "fra"
        assert r.client.get(f"eg:home:{s}") == "ams"
    env.dcsim("ams", port=a.port)
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams back")
    expected = "ams" if failback else "fra"
    for s in sessions:
        assert dc_of(port, s) == expected
        assert r.client.get(f"eg:aff:{s}") == expected
    assert stats(sp)["counters"]["client_errors_total"] == 0
    return stats(sp)


def test_failover_rewrites_keys_and_failback_on_returns_home(env):
    st = run_failover(env, failback=True)
    assert st["counters"]["failbacks_total"] >= 20


def test_failover_with_failback_off_stays(env):
    st = run_failover(env, failback=False)
    assert st["counters"]["failbacks_total"] == 0


def load(port, sessions, stop, results):
    i = 0
    while not stop.is_set():
        sid = sessions[i % len(sessions)]
        i += 1
        try:
            status, _, body = http_get(port, "/", {"Cookie": f"sid={sid}"}, timeout=3)
            results.append(status)
        except Exception as e:
            results.append(repr(e))


def test_redis_killed_under_load_costs_nothing_and_comes_back(env):
    r = env.redis()
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, a), ("fra", 1, b)], r), wait=[port])
    wait_until(lambda: stats(sp)["redis"]["connected"], what="redis connected")
    results, stop = [], threading.Event()
    sessions = [f"load-{i}" for i in range(200)]
    threads = [threading.Thread(target=load, args=(port, sessions, stop, results))
               for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(results) > 300, what="load")
    r.stop(signal.SIGKILL)
    wait_until(lambda: not stats(sp)["redis"]["connected"], what="redis seen down")
    n = len(results)
    wait_until(lambda: len(results) > n + 300, what="load without redis")
    r2 = env.redis(port=r.port)
    wait_until(lambda: stats(sp)["redis"]["connected"], timeout=10, what="reconnected")
    assert dc_of(port, "after-restart") in ("ams", "fra")
    assert r2.client.get("eg:aff:after-restart") in ("ams", "fra")
    stop.set()
    for t in threads:
        t.join(5)
    assert [x for x in results if x != 200] == []
    st = stats(sp)
    assert st["redis"]["degraded_s"] > 0
    assert st["redis"]["reconnects_total"] >= 1


def test_slow_redis_counts_as_down(env):
    r = env.redis()
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, a)], r), wait=[port])
    wait_until(lambda: stats(sp)["redis"]["connected"], what="redis connected")
    r.send(signal.SIGSTOP)
    try:
        times = []
        for i in range(10):
            t0 = time.time()
            assert dc_of(port, f"slow-{i}") == "ams"
            times.append(time.time() - t0)
        assert max(times) < 0.5          # at worst the 50ms timeout once
        assert sorted(times)[5] < 0.03   # then no waiting at all
        assert stats(sp)["redis"]["timeouts_total"] >= 1
    finally:
        r.send(signal.SIGCONT)


def test_gateways_without_redis_still_agree(env):
    """Redis down for both: rendezvous hashing gives both the same answers."""
    r = env.redis()
    a, b, c = env.dcsim("ams"), env.dcsim("fra"), env.dcsim("lon")
    p1, s1, p2, s2 = free_port(), free_port(), free_port(), free_port()
    dcs = [("ams", 1, a), ("fra", 1, b), ("lon", 1, c)]
    env.gateway(conf(p1, s1, dcs, r), name="gw1", wait=[p1])
    env.gateway(conf(p2, s2, dcs, r), name="gw2", wait=[p2])
    r.stop(signal.SIGKILL)
    wait_until(lambda: not stats(s1)["redis"]["connected"] and not stats(s2)["redis"]["connected"],
               what="both degraded")
    seen = {dc_of(p1, f"k{i}") for i in range(60)}
    assert seen == {"ams", "fra", "lon"}  # spread, not all to one
    for i in range(60):
        assert dc_of(p1, f"k{i}") == dc_of(p2, f"k{i}")


def test_bad_keys_never_reach_redis(env):
    r = env.redis()
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, a)], r), wait=[port])
    wait_until(lambda: stats(sp)["redis"]["connected"], what="redis connected")
    assert http_get(port, "/", {"Cookie": "sid=" + "x" * 300})[0] == 400
    c = RawHTTP(port)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: sid=caf\xc3\xa9\r\n\r\n")
    assert c.response()[0] == 400
    assert r.client.keys("*") == []
    assert stats(sp)["counters"]["bad_session_keys_total"] == 2


def test_in_memory_affinity_without_redis(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, a), ("fra", 2, b)], None, "failback on;"),
                wait=[port])
    assert dc_of(port, "m1") == "ams"
    a.stop(signal.SIGKILL)
    assert dc_of(port, "m1") == "fra"
    env.dcsim("ams", port=a.port)
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams back")
    assert dc_of(port, "m1") == "ams"
    st = stats(sp)
    assert st["redis"]["configured"] is False
    assert st["counters"]["failovers_total"] >= 1 and st["counters"]["failbacks_total"] == 1


def test_sentinel_failover_keeps_affinity_working(env):
    # Diskless sync would wait 5s (repl-diskless-sync-delay) for more replicas
    # before the first one; the replica keeps what it receives in the test's
    # directory, not in the working directory.
    where = ["--dir", env.dir]
    master = env.redis(extra=[*where, "--repl-diskless-sync-delay", "0"])
    replica = env.redis(extra=[*where, "--replicaof", "127.0.0.1", str(master.port)])
    wait_until(lambda: replica.client.info("replication").get("master_link_status") == "up",
               timeout=15, what="replication")
    sport = free_port()
    sconf = env.write("sentinel.conf",
                      f"port {sport}\nbind 127.0.0.1\n"
                      f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                      "sentinel down-after-milliseconds mymaster 400\n"
                      "sentinel failover-timeout mymaster 2000\n")
    env.spawn(["redis-sentinel", sconf], "sentinel")
    wait_until(lambda: __import__("conftest").listening(sport), what="sentinel")
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    cfg = conf(port, sp, [("ams", 1, a), ("fra", 2, b)]).replace(
        "datacenter", f"redis sentinel 127.0.0.1:{sport} {{ master mymaster; prefix eg:; "
                      "timeout 100ms; }\ndatacenter", 1)
    env.gateway(cfg, wait=[port])
    wait_until(lambda: stats(sp)["redis"]["connected"], what="redis via sentinel")
    assert stats(sp)["redis"]["server"] == f"127.0.0.1:{master.port}"
    assert dc_of(port, "before") == "ams"
    wait_until(lambda: replica.client.get("eg:aff:before") == "ams", what="replicated")

    results, stop = [], threading.Event()
    t = threading.Thread(target=load, args=(port, ["before", "x1", "x2"], stop, results))
    t.start()
    master.stop(signal.SIGKILL)
    wait_until(lambda: stats(sp)["redis"]["server"] == f"127.0.0.1:{replica.port}",
               timeout=15, what="gateway on the promoted replica")
    assert dc_of(port, "after") == "ams"
    assert replica.client.get("eg:aff:after") == "ams"
    assert replica.client.get("eg:aff:before") == "ams"
    stop.set()
    t.join(5)
    assert [x for x in results if x != 200] == []
