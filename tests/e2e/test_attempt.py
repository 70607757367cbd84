"""The attempt engine shared by tcp and http mode: holding that ends on
time, held traffic that follows a reload, and the same behaviour in both
modes."""

import signal
import socket
import threading
import time

import pytest

from conftest import dc_state, free_port, http_get, stats, wait_listen, wait_until

FAST = "check tcp interval 100ms timeout 100ms rise 1 fall 1;"


def test_hold_timeout_fires_while_another_datacenter_passes_checks(env):
    """Every passing check of a healthy datacenter once woke every held
    request, which re-armed its hold deadline: it never fired."""
    live = env.dcsim("live")
    dead_port = free_port()  # nothing listens there
    port, other, sp = free_port(), free_port(), free_port()
    env.gateway(f"""
stats 127.0.0.1:{sp};
datacenter dead {{ server 127.0.0.1:{dead_port}; {FAST} }}
datacenter live {{ server {live.addr}; {FAST} }}
listener web {{ listen 127.0.0.1:{port}; mode http; datacenters dead; hold_timeout 1s; }}
listener other {{ listen 127.0.0.1:{other}; mode http; datacenters live; }}
""", wait=[port, other])
    wait_until(lambda: not dc_state(sp, "dead")["healthy"] and dc_state(sp, "live")["healthy"],
               what="dead down, live up")
    t0 = time.time()
    status, headers, _ = http_get(port, "/", timeout=10)
    took = time.time() - t0
    assert status == 503 and headers.get("Retry-After") == "1"
    assert 0.9 <= took < 2.5, took
    assert stats(sp)["counters"]["hold_expired_total"] == 1


def _held_client(mode, port, result):
    t0 = time.time()
    try:
        if mode == "http":
            status, _, body = http_get(port, "/", timeout=20)
            result.append((status, body[:6], time.time() - t0))
        else:
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                s.sendall(b"ping\n")
                result.append((200, s.recv(100)[:5], time.time() - t0))
    except Exception as e:  # noqa: BLE001 - reported by the assertion
        result.append((0, repr(e).encode(), time.time() - t0))


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_held_traffic_follows_a_reload_and_is_served_when_the_datacenter_returns(env, mode):
    """A request held across SIGHUP once kept the retired generation, whose
    checks had stopped: it never saw its datacenter come back."""
    dc_port = free_port()
    port, sp = free_port(), free_port()
    conf = f"""
stats 127.0.0.1:{sp};
datacenter ams {{ server 127.0.0.1:{dc_port}; {FAST} }}
listener web {{ listen 127.0.0.1:{port}; mode {mode}; hold_timeout 15s; }}
"""
    gw = env.gateway(conf, wait=[port])
    wait_until(lambda: not dc_state(sp, "ams")["healthy"], what="ams down")
    result = []
    t = threading.Thread(target=_held_client, args=(mode, port, result))
    t.start()
    wait_until(lambda: stats(sp)["counters"]["held_now"] == 1, what="the client held")
    gen = stats(sp)["generation"]
    gw.send(signal.SIGHUP)
    wait_until(lambda: stats(sp)["generation"] != gen, what="reload")
    env.dcsim("ams", port=dc_port, mode="http" if mode == "http" else "echo")
    back = time.time()
    t.join(15)
    assert result, "the held client got nothing"
    status, body, _ = result[0]
    assert status == 200, result
    assert body.startswith(b"dc=ams" if mode == "http" else b"ping"), result
    assert time.time() - back < 3
    assert stats(sp)["counters"]["held_now"] == 0


def test_a_failed_reload_keeps_the_stats_token(env):
    """A reload that failed (its stats address could not be bound) once
    changed stats_token all the same."""
    dc = env.dcsim("ams")
    port, sp = free_port(), free_port()
    conf = """
stats 127.0.0.1:{sp};
stats_token {token};
datacenter ams {{ server {dc}; }}
listener web {{ listen 127.0.0.1:{port}; }}
"""
    gw = env.gateway(conf.format(sp=sp, token="old-secret", dc=dc.addr, port=port), wait=[port])
    auth = {"Authorization": "Bearer old-secret"}
    assert http_get(sp, "/stats", headers=auth)[0] == 200
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    with open(gw.conf, "w") as f:
        f.write(conf.format(sp=taken, token="new-secret", dc=dc.addr, port=port))
    gw.send(signal.SIGHUP)
    gw.wait_output("reload failed")
    busy.close()
    assert http_get(sp, "/stats", headers=auth)[0] == 200
    assert http_get(sp, "/stats", headers={"Authorization": "Bearer new-secret"})[0] == 401


def test_a_daemon_started_with_a_relative_path_reloads(env, tmp_path):
    """The daemon changes to "/": a relative -c once made every later
    SIGHUP fail with "cannot read the configuration"."""
    import os
    import subprocess
    from conftest import EG_BIN
    dc = env.dcsim("ams")
    port, sp = free_port(), free_port()
    log, pid = tmp_path / "gw.log", tmp_path / "gw.pid"
    (tmp_path / "gw.conf").write_text(f"""
log {log} info;
pid {pid};
stats 127.0.0.1:{sp};
datacenter ams {{ server {dc.addr}; }}
listener web {{ listen 127.0.0.1:{port}; }}
""")
    subprocess.run([EG_BIN, "-c", "gw.conf"], cwd=tmp_path, check=True, timeout=10)
    wait_until(lambda: pid.exists() and pid.read_text().strip(), what="pid file")
    daemon = int(pid.read_text())
    try:
        wait_listen(sp)  # the pid file comes before the sockets
        gen = stats(sp)["generation"]
        os.kill(daemon, signal.SIGHUP)
        wait_until(lambda: stats(sp)["generation"] != gen, what="reload")
        assert "cannot read" not in log.read_text()
        assert http_get(port, "/")[0] == 200
    finally:
        os.kill(daemon, signal.SIGTERM)
        wait_until(lambda: not os.path.exists(f"/proc/{daemon}"), what="daemon gone")
