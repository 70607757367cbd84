"""Active and passive health checks, nearest routing, time to mark down."""

import os
import signal
import subprocess
import threading
import time

from conftest import RawHTTP, dc_state, free_port, http_get, stats, wait_until


def gw_conf(port, sp, dcs, listener=""):
    """DCS: (name, priority, [addresses], dc_extra)."""
    out = [f"log info;\nstats 127.0.0.1:{sp};"]
    for name, prio, servers, extra in dcs:
        srv = "".join(f" server {s};" for s in servers)
        out.append(f"datacenter {name} {{ priority {prio};{srv} {extra} }}")
    out.append(f"listener web {{ listen 127.0.0.1:{port}; mode http; {listener} }}")
    return "\n".join(out) + "\n"


FAST = "check http /health interval 100ms timeout 100ms rise 2 fall 2;"


def test_new_sessions_go_to_the_nearest_of_equal_priority(env):
    far = env.dcsim("far", delay="60ms")
    near = env.dcsim("near", delay="5ms")
    mid = env.dcsim("mid", delay="25ms")
    port, sp = free_port(), free_port()
    env.gateway(gw_conf(port, sp, [("far", 1, [far.addr], FAST), ("mid", 1, [mid.addr], FAST),
                                   ("near", 1, [near.addr], FAST)]), wait=[port])
    wait_until(lambda: all(d["rtt_ms"] for d in stats(sp)["datacenters"]), what="RTTs")
    time.sleep(0.5)
    st = {d["name"]: d for d in stats(sp)["datacenters"]}
    assert st["near"]["rtt_ms"] < st["mid"]["rtt_ms"] < st["far"]["rtt_ms"]
    assert st["near"]["nearest"] and not st["far"]["nearest"]
    for i in range(10):
        status, _, body = http_get(port, f"/s{i}")
        assert status == 200 and body.startswith(b"dc=near")


def test_sigstop_marked_down_within_600ms_and_no_errors_after(env):
    a = env.dcsim("ams")
    b = env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(gw_conf(port, sp, [("ams", 1, [a.addr], FAST), ("fra", 2, [b.addr], FAST)],
                        "connect_timeout 200ms;"), wait=[port])
    wait_until(lambda: dc_state(sp, "ams")["rtt_ms"] is not None, what="first checks")
    results = []  # (start, end, ok, dc)
    stop = threading.Event()

    def client():
        while not stop.is_set():
            t0 = time.time()
            try:
                status, _, body = http_get(port, "/", timeout=3)
                results.append((t0, time.time(), status == 200, body[:6]))
            except Exception:
                results.append((t0, time.time(), False, b""))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    t_stop = time.time()
    os.kill(a.pid, signal.SIGSTOP)
    down_at = wait_until(lambda: (not dc_state(sp, "ams")["healthy"]) and time.time(),
                         timeout=3, interval=0.01, what="ams marked down")
    # Requests in flight at SIGSTOP hang with it; every request started
    # after the datacenter is down must succeed, from fresh clients too.
    fresh = [threading.Thread(target=client) for _ in range(3)]
    for t in fresh:
        t.start()
    time.sleep(1.0)
    stop.set()
    for t in threads + fresh:
        t.join(5)
    os.kill(a.pid, signal.SIGCONT)
    detect = down_at - t_stop
    print(f"SIGSTOP detected in {detect * 1000:.0f} ms")
    assert detect <= 0.6
    after = [r for r in results if r[0] > down_at]
    assert len(after) > 20
    assert all(ok and dc == b"dc=fra" for _, _, ok, dc in after), after[:5]


def test_sigkill_passive_detection_then_rise(env):
    a = env.dcsim("ams")
    b = env.dcsim("fra")
    port, sp = free_port(), free_port()
    slow = "check http /health interval 2s timeout 500ms rise 2 fall 3;"
    env.gateway(gw_conf(port, sp, [("ams", 1, [a.addr], slow), ("fra", 2, [b.addr], FAST)]),
                wait=[port])
    assert http_get(port, "/")[2].startswith(b"dc=ams")
    a.stop(signal.SIGKILL)
    t0 = time.time()
    status, _, body = http_get(port, "/after-kill")
    assert status == 200 and body.startswith(b"dc=fra")
    ams = dc_state(sp, "ams")
    assert not ams["healthy"]
    assert ams["servers"][0]["reason"] == "connection refused"
    assert time.time() - t0 < 1.0  # well before the next 2s check
    env.dcsim("ams", port=a.port)
    wait_until(lambda: dc_state(sp, "ams")["healthy"], timeout=8, what="ams back")
    assert dc_state(sp, "ams")["servers"][0]["reason"] == "check passed"
    assert http_get(port, "/back")[2].startswith(b"dc=ams")


def test_http_check_wrong_status_marks_down(env):
    a = env.dcsim("ams", extra=["--health-status", "500"])
    b = env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(gw_conf(port, sp, [("ams", 1, [a.addr], FAST), ("fra", 2, [b.addr], FAST)]),
                wait=[port])
    wait_until(lambda: not dc_state(sp, "ams")["healthy"], what="ams down")
    assert dc_state(sp, "ams")["servers"][0]["reason"] == "check failed"
    assert http_get(port, "/")[2].startswith(b"dc=fra")


def test_http_check_expect_and_toggle(env):
    a = env.dcsim("ams")
    b = env.dcsim("fra")
    port, sp = free_port(), free_port()
    ck = "check http /health expect 200 interval 100ms timeout 100ms rise 2 fall 2;"
    env.gateway(gw_conf(port, sp, [("ams", 1, [a.addr], ck), ("fra", 2, [b.addr], FAST)]),
                wait=[port])
    wait_until(lambda: dc_state(sp, "ams")["rtt_ms"] is not None, what="checks")
    a.send(signal.SIGUSR1)  # /health answers 503 from now on
    wait_until(lambda: not dc_state(sp, "ams")["healthy"], what="ams down")
    a.send(signal.SIGUSR2)
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams up again")
    assert dc_state(sp, "ams")["transitions_total"] >= 2


def test_tls_check_against_openssl_s_server(env):
    cert, key = env.path("c.pem"), env.path("k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    tls_port, plain = free_port(), env.dcsim("plain")
    srv = env.spawn(["openssl", "s_server", "-accept", str(tls_port), "-cert", cert, "-key", key,
                     "-naccept", "1000", "-quiet"], "s_server")
    wait_until(lambda: __import__("conftest").listening(tls_port), what="s_server")
    port, sp = free_port(), free_port()
    ck = "check tls interval 200ms timeout 500ms rise 1 fall 1;"
    env.gateway(gw_conf(port, sp, [("tls", 1, [f"127.0.0.1:{tls_port}"], ck),
                                   ("plain", 2, [plain.addr], ck)]), wait=[port])
    wait_until(lambda: dc_state(sp, "tls")["rtt_ms"] is not None, what="tls checks")
    wait_until(lambda: not dc_state(sp, "plain")["healthy"], what="plain down")
    assert dc_state(sp, "tls")["healthy"]
    assert srv.alive()


def test_localhost_resolves_with_c_ares(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(gw_conf(port, sp, [("ams", 1, [f"localhost:{a.port}"], FAST)]), wait=[port])
    wait_until(lambda: dc_state(sp, "ams")["servers"], what="resolution")
    servers = dc_state(sp, "ams")["servers"]
    assert f"127.0.0.1:{a.port}" in [s["address"] for s in servers]
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams healthy")
    assert http_get(port, "/")[2].startswith(b"dc=ams")


def test_unresolvable_name_leaves_the_gateway_running(env):
    b = env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = env.gateway(gw_conf(port, sp, [("ghost", 1, ["no-such-host.invalid:80"], FAST),
                                        ("fra", 2, [b.addr], FAST)]), wait=[port])
    wait_until(lambda: "cannot resolve no-such-host.invalid" in gw.output(), what="warning")
    assert gw.alive()
    assert dc_state(sp, "ghost")["servers"] == []
    assert not dc_state(sp, "ghost")["healthy"]
    assert http_get(port, "/")[2].startswith(b"dc=fra")


def test_min_servers(env):
    a1, a2, b = env.dcsim("ams"), env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(gw_conf(port, sp, [("ams", 1, [a1.addr, a2.addr], FAST + " min_servers 2;"),
                                   ("fra", 2, [b.addr], FAST)]), wait=[port])
    wait_until(lambda: dc_state(sp, "ams")["rtt_ms"] is not None, what="checks")
    assert dc_state(sp, "ams")["healthy"]
    a2.stop(signal.SIGKILL)
    wait_until(lambda: not dc_state(sp, "ams")["healthy"], what="ams below min_servers")
    assert dc_state(sp, "ams")["servers_up"] == 1
    assert http_get(port, "/")[2].startswith(b"dc=fra")
