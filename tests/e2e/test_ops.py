"""Operations: reload under load, drain, workers, stats endpoint formats,
logs, privileges and limits."""

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
from conftest import (EG_BIN, dc_state, RawHTTP, free_port, http_get, listening, stats, wait_listen,
                      wait_until)


def make_cert(env, name, cn):
    cert, key = env.path(f"{name}.pem"), env.path(f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={cn}", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def reload_and_wait(gw, generation_before, sp):
    gw.send(signal.SIGHUP)
    wait_until(lambda: stats(sp)["generation"] > generation_before, what="reload applied")


def test_fifty_reloads_under_load_cost_no_request(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    certs = [make_cert(env, "a", "a.test"), make_cert(env, "b", "b.test")]
    confs = []
    for i in range(2):
        cert, key = certs[i]
        extra = f"datacenter fra {{ priority 2; server {b.addr}; }}" if i == 0 else ""
        confs.append(f"log warn;\nstats 127.0.0.1:{sp};\n"
                     f"datacenter ams {{ priority 1; server {a.addr}; }}\n{extra}\n"
                     f"listener web {{ listen 127.0.0.1:{port}; tls cert {cert} key {key}; }}\n")
    gw = env.gateway(confs[0], wait=[port])
    wrk = subprocess.Popen(["wrk", "-t1", "-c16", "-d12s", f"https://127.0.0.1:{port}/"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1)
    for i in range(50):
        with open(gw.conf, "w") as f:
            f.write(confs[(i + 1) % 2])
        reload_and_wait(gw, i + 1, sp)
        time.sleep(0.05)
    out = wrk.communicate(timeout=30)[0]
    st = stats(sp)
    assert st["counters"]["reloads_total"] == 50
    assert st["counters"]["reload_failures_total"] == 0
    done = int(re.search(r"(\d+) requests in", out).group(1))
    assert done > 1000, out
    assert "Socket errors" not in out and "Non-2xx" not in out, out
    # The 50th reload went back to the first configuration: fra, cert a.
    assert [d["name"] for d in st["datacenters"]] == ["ams", "fra"]
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}"], input="",
                         capture_output=True, text=True, timeout=10).stdout
    assert "CN = a.test" in out or "CN=a.test" in out


def test_health_state_survives_a_reload(env):
    a = env.dcsim("ams")
    port, sp, dead = free_port(), free_port(), free_port()
    conf = (f"stats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; server 127.0.0.1:{dead};"
            " check http /health interval 2s timeout 500ms rise 3 fall 1; }\n"
            f"listener web {{ listen 127.0.0.1:{port}; }}\n")
    gw = env.gateway(conf, wait=[port])
    wait_until(lambda: [s["up"] for s in stats(sp)["datacenters"][0]["servers"]] == [True, False],
               what="the dead server down")
    rtt = stats(sp)["datacenters"][0]["rtt_ms"]
    reload_and_wait(gw, 1, sp)
    dc = stats(sp)["datacenters"][0]
    # Not reset to "up" on reload (rise 3 at a 2s interval would take 6s), RTT kept.
    assert [s["up"] for s in dc["servers"]] == [True, False]
    assert dc["rtt_ms"] == pytest.approx(rtt)


def test_bad_configuration_on_sighup_keeps_the_old_one(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    good = (f"stats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; }}\n")
    gw = env.gateway(good, wait=[port])
    with open(gw.conf, "w") as f:  # would route to fra, but does not parse
        f.write(good.replace(a.addr, b.addr) + "bogus directive;\n")
    gw.send(signal.SIGHUP)
    wait_until(lambda: stats(sp)["counters"]["reload_failures_total"] == 1, what="failure counted")
    gw.wait_output("unknown directive \"bogus\"")  # the log is flushed by the loop
    assert http_get(port, "/")[2].startswith(b"dc=ams")
    assert stats(sp)["generation"] == 1
    assert gw.alive()


def test_drain_lets_a_slow_request_finish_and_refuses_new_ones(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    gw = env.gateway(f"stats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; }}\n"
                     f"listener web {{ listen 127.0.0.1:{port}; }}\ndrain_timeout 10s;\n",
                     wait=[port])
    idle = RawHTTP(port)
    assert idle.request("/")[0] == 200
    result = {}
    t = threading.Thread(target=lambda: result.update(r=http_get(port, "/slow/1500", timeout=10)))
    t.start()
    # Connected is not enough: until its request is read, a connection is idle,
    # and drain closes idle connections.
    # (The first request left its server connection in the pool: the slow one
    # takes it from there.)
    def at_server():
        srv = dc_state(sp, "ams")["servers"][0]
        return srv["connections_active"] == 1 and srv["idle_pooled"] == 0
    wait_until(at_server, timeout=10, what="the slow request at the server")
    gw.send(signal.SIGTERM)
    wait_until(lambda: not listening(port), timeout=10, what="listener closed")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert idle.closed_by_peer(timeout=5)  # idle keep-alive connections close at once
    assert http_get(sp, "/healthz")[0] == 503
    t.join(10)
    assert result["r"][0] == 200 and result["r"][2].startswith(b"dc=ams")
    assert gw.p.wait(10) == 0


def worker_pids(master_pid):
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout
    return sorted(int(p) for p in out.split())


def test_workers_killed_one_is_replaced_and_no_listener_lost(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    gw = env.gateway(f"workers 2;\nstats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; }}\n"
                     f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port])
    wait_until(lambda: len(worker_pids(gw.pid)) == 2, what="two workers")
    for i in range(40):
        assert http_get(port, f"/before{i}")[0] == 200
    before = stats(sp)["counters"]["requests_total"]
    victim = worker_pids(gw.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(worker_pids(gw.pid)) == 2 and victim not in worker_pids(gw.pid),
               what="a new worker")
    for i in range(100):
        assert http_get(port, f"/after{i}")[0] == 200
    st = stats(sp)
    assert st["workers"] == 2
    assert st["counters"]["worker_restarts_total"] == 1
    # The dead worker's counts are kept: totals never go back.
    assert st["counters"]["requests_total"] >= before + 100
    gw.send(signal.SIGTERM)
    assert gw.p.wait(15) == 0


def test_workers_reload_and_stop(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    conf = (f"workers 2;\nstats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; }}\n")
    gw = env.gateway(conf, wait=[port])
    wait_until(lambda: len(worker_pids(gw.pid)) == 2, what="two workers")
    with open(gw.conf, "w") as f:
        f.write(conf.replace(a.addr, b.addr))
    gw.send(signal.SIGHUP)
    wait_until(lambda: all(http_get(port, "/")[2].startswith(b"dc=fra") for _ in range(10)),
               what="both workers on the new configuration")
    assert stats(sp)["counters"]["reloads_total"] == 1
    gw.send(signal.SIGTERM)
    assert gw.p.wait(15) == 0
    assert worker_pids(gw.pid) == []


def test_metrics_parse_with_prometheus_client(env):
    from prometheus_client.parser import text_string_to_metric_families
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; "
                "check http /health interval 100ms; }\n"
                f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port])
    for i in range(25):
        assert http_get(port, f"/m{i}")[0] == 200
    status, headers, body = http_get(sp, "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert fams["edgegate_requests"].type == "counter"
    assert fams["edgegate_requests"].samples[0].value == 25
    assert fams["edgegate_connections_active"].type == "gauge"
    up = fams["edgegate_server_up"].samples[0]
    assert up.labels == {"dc": "ams", "server": a.addr} and up.value == 1
    assert fams["edgegate_datacenter_healthy"].samples[0].labels == {"dc": "ams"}
    h = fams["edgegate_request_duration_seconds"]
    assert h.type == "histogram"
    count = [s for s in h.samples if s.name.endswith("_count")][0]
    assert count.labels == {"listener": "web"} and count.value == 25
    buckets = [s for s in h.samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 25
    assert all(x.value <= y.value for x, y in zip(buckets, buckets[1:]))
    c = fams["edgegate_connect_duration_seconds"]
    assert {s.labels.get("server") for s in c.samples} == {a.addr}
    assert fams["edgegate_listener_responses"].type == "counter"


def test_every_metric_is_in_the_operators_guide(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port])
    names = re.findall(r"^# TYPE (edgegate_\w+) ", http_get(sp, "/metrics")[2].decode(), re.M)
    assert len(names) > 50
    guide = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs",
                              "operations.md")).read()
    missing = [n for n in names if f"`{n}`" not in guide and f"`{n}{{" not in guide]
    assert missing == [], "add them to docs/operations.md (Metrics reference)"


def test_stats_json_has_the_contract_fields(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\ndatacenter ams {{ priority 3; server {a.addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port])
    status, headers, body = http_get(sp, "/stats")
    assert status == 200 and headers["Content-Type"] == "application/json"
    st = json.loads(body)
    assert st["version"] == "0.1.0" and isinstance(st["uptime_s"], (int, float))
    dc = st["datacenters"][0]
    assert dc["name"] == "ams" and dc["healthy"] is True and dc["priority"] == 3
    assert dc["rtt_ms"] is None or isinstance(dc["rtt_ms"], float)
    assert dc["servers"][0] == {**dc["servers"][0], "address": a.addr, "up": True}
    assert set(st["redis"]) >= {"configured", "connected", "degraded_s"}
    for k in ["connections_total", "connections_active", "requests_total", "retries_total",
              "failovers_total", "client_errors_total", "reloads_total", "reload_failures_total",
              "affinity_hits_total", "affinity_misses_total"]:
        assert isinstance(st["counters"][k], int), k
    assert http_get(sp, "/healthz")[:3:2] == (200, b"ok\n")


def test_stats_token(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\nstats_token s3cret-token;\n"
                f"datacenter ams {{ server {a.addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; }}\n", wait=[port])
    assert http_get(sp, "/stats")[0] == 401
    assert http_get(sp, "/metrics", {"Authorization": "Bearer wrong"})[0] == 401
    assert http_get(sp, "/stats", {"Authorization": "Bearer s3cret-token"})[0] == 200
    assert http_get(sp, "/?token=s3cret-token")[0] == 200
    assert http_get(sp, "/healthz")[0] == 200


def test_access_log_lines(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    logf = env.path("access.log")
    gw = env.gateway(f"log {logf} info;\naccess_log on;\nstats 127.0.0.1:{sp};\n"
                     f"datacenter ams {{ server {a.addr}; }}\n"
                     f"listener web {{ listen 127.0.0.1:{port}; session header X-S; }}\n",
                     wait=[port])
    http_get(port, "/logged?q=1", {"X-S": "user 7"})
    wait_until(lambda: "/logged" in open(logf).read(), what="access line")
    line = [l for l in open(logf) if "/logged" in l][0]
    fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
    assert fields["listener"] == "web" and fields["mode"] == "http"
    assert fields["dc"] == "ams" and fields["server"] == a.addr
    # Values with spaces, quotes or "=" are quoted, as in logfmt.
    assert fields["method"] == "GET" and fields["path"] == '"/logged?q=1"'
    assert fields["status"] == "200" and fields["session"] == '"user 7"'
    assert fields["client"].startswith("127.0.0.1:") and fields["end"] == "ok"
    assert float(fields["duration_ms"]) >= 0 and int(fields["bytes_out"]) > 0
    # SIGUSR1 reopens the log: after a rotation lines go to the new file.
    os.rename(logf, logf + ".1")
    gw.send(signal.SIGUSR1)
    wait_until(lambda: os.path.exists(logf), what="log reopened")
    http_get(port, "/after-rotation")
    wait_until(lambda: "path=/after-rotation" in open(logf).read(), what="line in new file")


def test_access_log_json(env):
    a = env.dcsim("ams", mode="echo")
    port = free_port()
    gw = env.gateway(f"access_log json;\ndatacenter ams {{ server {a.addr}; }}\n"
                     f"listener raw {{ listen 127.0.0.1:{port}; mode tcp; }}\n", wait=[port])
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"12345")
    assert s.recv(10) == b"12345"
    s.close()
    line = wait_until(lambda: [l for l in gw.output().splitlines() if l.startswith("{")],
                      what="json line")[0]
    rec = json.loads(line)
    assert rec["mode"] == "tcp" and rec["bytes_in"] == 5 and rec["bytes_out"] == 5
    assert rec["dc"] == "ams" and rec["status"] == 0


def test_user_pid_file_and_privileged_port_after_drop(env, tmp_path_factory):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    # After the drop, reloads re-read the configuration as nobody: it lives in
    # a directory nobody can read (and write, for the pid file).
    import tempfile
    shared = tempfile.mkdtemp(prefix="edgegate-user-")
    os.chmod(shared, 0o777)
    pidf = os.path.join(shared, "edgegate.pid")
    low = 81
    conf = (f"user nobody;\npid {pidf};\nstats 127.0.0.1:{sp};\n"
            f"datacenter ams {{ server {a.addr}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; }}\n")
    path = os.path.join(shared, "edgegate.conf")
    with open(path, "w") as f:
        f.write(conf)
    os.chmod(path, 0o644)
    gw = env.spawn([EG_BIN, "-f", "-c", path], "edgegate")
    gw.conf = path
    wait_listen(port)
    assert int(open(pidf).read()) == gw.pid

    def uid():
        status = open(f"/proc/{gw.pid}/status").read()
        return int(re.search(r"Uid:\s+(\d+)", status).group(1))
    # The sockets are open before the drop: wait for it, not for the port.
    wait_until(lambda: uid() == 65534, what="running as nobody")
    assert http_get(port, "/")[0] == 200
    if listening(low):
        pytest.skip(f"port {low} is taken here")
    with open(gw.conf, "w") as f:
        f.write(conf + f"listener low {{ listen 127.0.0.1:{low}; }}\n")
    gw.send(signal.SIGHUP)
    wait_until(lambda: listening(low), what="privileged port bound after the drop")
    assert http_get(low, "/")[0] == 200
    gw.send(signal.SIGTERM)
    assert gw.p.wait(10) == 0
    assert not os.path.exists(pidf)
    shutil.rmtree(shared, ignore_errors=True)


def test_max_connections_makes_new_clients_wait(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(f"stats 127.0.0.1:{sp};\ndatacenter ams {{ server {a.addr}; }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; max_connections 2; }}\n", wait=[port])
    c1, c2 = RawHTTP(port), RawHTTP(port)
    assert c1.request("/1")[0] == 200 and c2.request("/2")[0] == 200
    result = {}
    t = threading.Thread(target=lambda: result.update(r=http_get(port, "/3", timeout=10)))
    t.start()
    time.sleep(0.5)
    assert t.is_alive()  # waiting in the accept queue, not refused
    c1.close()
    t.join(5)
    assert result["r"][0] == 200
    assert stats(sp)["counters"]["max_connections_hits_total"] >= 1
    c2.close()
