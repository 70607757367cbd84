"""Priority routing and transparent connect-failover in http mode."""

import threading
import time

from conftest import free_port, http_get, stats, wait_until


def conf(port, stats_port, dcs, extra=""):
    out = [f"log info;\nstats 127.0.0.1:{stats_port};"]
    for name, prio, servers in dcs:
        srv = "".join(f" server {s};" for s in servers)
        out.append(f"datacenter {name} {{ priority {prio};{srv} }}")
    out.append(f"listener web {{ listen 127.0.0.1:{port}; mode http; retries 3; {extra} }}")
    return "\n".join(out)


def dead_addr():
    return f"127.0.0.1:{free_port()}"  # nothing listens there


def get_dc(port, path="/"):
    status, _, body = http_get(port, path)
    assert status == 200, (status, body)
    return body.decode().split("\n")[0]


def test_lowest_priority_datacenter_serves(env):
    a, b, c = env.dcsim("ams"), env.dcsim("fra"), env.dcsim("lon")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("fra", 2, [b.addr]), ("ams", 1, [a.addr]),
                                ("lon", 3, [c.addr])]), wait=[port])
    assert {get_dc(port) for _ in range(20)} == {"dc=ams"}


def test_dead_first_server_costs_no_error(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, [dead_addr(), a.addr])]), wait=[port])
    results = [get_dc(port, f"/r{i}") for i in range(200)]
    assert results == ["dc=ams"] * 200
    dc = stats(sp)["datacenters"][0]
    assert [s["up"] for s in dc["servers"]] == [False, True]


def test_dead_datacenter_costs_no_error(env):
    b = env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, [dead_addr(), dead_addr()]), ("fra", 2, [b.addr])]),
                wait=[port])
    results = [get_dc(port, f"/r{i}") for i in range(200)]
    assert results == ["dc=fra"] * 200
    st = stats(sp)
    assert st["datacenters"][0]["healthy"] is False
    assert st["counters"]["client_errors_total"] == 0
    assert st["counters"]["failovers_total"] >= 1


def test_datacenter_killed_under_load_costs_no_error(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [("ams", 1, [a.addr]), ("fra", 2, [b.addr])]), wait=[port])
    seen, errors = [], []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                seen.append(get_dc(port))
            except Exception as e:  # any failure is what this test looks for
                errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(seen) > 100, what="traffic to ams")
    a.stop(__import__("signal").SIGKILL)
    n = len(seen)
    wait_until(lambda: len(seen) > n + 200, what="traffic after the kill")
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert seen[-1] == "dc=fra"
    assert "dc=ams" in seen


def test_hold_until_a_datacenter_returns(env):
    """No datacenter up: the request waits and is served when one returns."""
    port, sp, back = free_port(), free_port(), free_port()
    env.gateway(f"""stats 127.0.0.1:{sp};
datacenter ams {{ server 127.0.0.1:{back}; check tcp interval 100ms timeout 100ms rise 2 fall 1; }}
listener web {{ listen 127.0.0.1:{port}; hold_timeout 8s; }}
""", wait=[port])
    wait_until(lambda: not stats(sp)["datacenters"][0]["healthy"], what="ams down")
    result = {}

    def client():
        result["r"] = http_get(port, "/held", timeout=10)

    t = threading.Thread(target=client)
    t.start()
    wait_until(lambda: stats(sp)["counters"]["held_now"] == 1, what="a held request")
    time.sleep(0.5)
    assert t.is_alive()
    env.dcsim("ams", port=back)
    t.join(10)
    status, _, body = result["r"]
    assert status == 200 and body.startswith(b"dc=ams")
    assert stats(sp)["counters"]["client_errors_total"] == 0


def test_hold_timeout_answers_503(env):
    port, sp = free_port(), free_port()
    env.gateway(f"""stats 127.0.0.1:{sp};
datacenter ams {{ server {dead_addr()}; check tcp interval 100ms; }}
listener web {{ listen 127.0.0.1:{port}; hold_timeout 300ms; }}
""", wait=[port])
    t0 = time.time()
    status, headers, _ = http_get(port, "/")
    assert status == 503
    assert headers.get("Retry-After") == "1"
    assert 0.25 < time.time() - t0 < 3
