"""Reliability under hostile conditions outside the data path: a log reader
that stops reading, the descriptor limit, a Redis that answers garbage or
nothing at all."""

import json
import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest
from conftest import (EG_BIN, RawHTTP, dc_state, free_port, http_get, stats, wait_listen,
                      wait_until)

CHECK = "check tcp interval 200ms timeout 200ms rise 2 fall 2;"


def cpu_seconds(pid):
    """User and system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def accept_queue(port):
    """Connections waiting to be accepted on the listening socket of PORT."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return int(fields[4].split(":")[1], 16)
    raise KeyError(port)


# ---- a log reader that stops reading ----


class PipedGateway:
    """edgegate whose stdout and stderr are a pipe that nobody reads until
    stop(), which drains it (a sanitizer report included) while it exits."""

    def __init__(self, argv):
        self.r, w = os.pipe()
        self.p = subprocess.Popen(argv, stdout=w, stderr=w, start_new_session=True)
        os.close(w)
        self.pid = self.p.pid
        self.out = b""

    def stop(self, timeout=10.0):
        if self.r is None:
            return self.p.returncode
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready, _, _ = select.select([self.r], [], [], 0.1)
            if ready:
                data = os.read(self.r, 65536)
                if not data:
                    break  # every writer is gone: the gateway exited
                self.out += data
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        os.close(self.r)
        self.r = None
        return self.p.returncode

    def output(self):
        return self.out.decode(errors="replace")


def test_stalled_log_reader_does_not_stop_traffic(env):
    sim = env.dcsim("ams")
    port, sp = free_port(), free_port()
    conf = env.write("edgegate.conf",
                     f"log info;\naccess_log on;\nstats 127.0.0.1:{sp};\n"
                     f"datacenter ams {{ server {sim.addr}; {CHECK} }}\n"
                     f"listener web {{ listen 127.0.0.1:{port}; }}\n")
    gw = PipedGateway([EG_BIN, "-f", "-c", conf])
    env.procs.append(gw)
    wait_listen(port)
    # Long paths make long access lines: the pipe (64k) and the gateway's
    # own buffer (256k) fill after a few hundred requests.
    path = "/" + "x" * 3000
    c = RawHTTP(port, timeout=3)
    served = 0
    while stats(sp)["counters"].get("log_lines_dropped_total", 0) == 0:
        for _ in range(50):
            assert c.request(path)[0] == 200
        served += 50
        assert served < 5000, "no log line dropped: is anything buffering them?"
    for _ in range(200):
        assert c.request(path)[0] == 200
    assert http_get(sp, "/healthz", timeout=3)[0] == 200
    dropped = stats(sp)["counters"].get("log_lines_dropped_total", 0)
    assert dropped > 0
    m = http_get(sp, "/metrics")[2].decode()
    assert f"edgegate_log_lines_dropped_total {dropped}" in m
    # The gateway wrote through a description of its own: the one it shares
    # with whoever else holds the pipe stays blocking.
    with open(f"/proc/{gw.pid}/fdinfo/2") as f:
        flags = int(f.read().split("flags:")[1].split()[0], 8)
    assert not flags & os.O_NONBLOCK
    c.close()
    assert gw.stop() == 0
    assert "log lines dropped (log sink too slow)" in gw.output()


# ---- the descriptor limit ----


def nofile_gateway(env, conf_text, nofile, wait):
    path = env.write("edgegate.conf", conf_text)
    gw = env.spawn(["prlimit", f"--nofile={nofile}", EG_BIN, "-f", "-c", path], "edgegate")
    for port in wait:
        wait_listen(port)
    return gw


def connect_many(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def stats_on(sock):
    """/stats over a connection opened (and accepted) earlier."""
    sock.sendall(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_checks_at_the_descriptor_limit_do_not_blame_the_datacenters(env):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    gw = nofile_gateway(env, f"log info;\nstats 127.0.0.1:{sp};\n"
                             f"datacenter ams {{ server {a.addr}; {CHECK} }}\n"
                             f"datacenter fra {{ priority 2; server {b.addr}; {CHECK} }}\n"
                             f"listener web {{ listen 127.0.0.1:{port}; "
                             "max_connections 100000; }\n", 256, [port, sp])
    wait_until(lambda: dc_state(sp, "ams")["healthy"] and dc_state(sp, "fra")["healthy"],
               what="datacenters up")
    # Scrapes for later, accepted while descriptors are still there.
    scrapes = [socket.create_connection(("127.0.0.1", sp)) for _ in range(8)]
    wait_until(lambda: accept_queue(sp) == 0, what="scrapes accepted")
    idle = connect_many(port, 300)
    try:
        wait_until(lambda: open_fds(gw.pid) == 256, what="descriptors exhausted")
        # Several check rounds run out of descriptors: not one may count
        # against its server.
        for sock in scrapes:
            st = stats_on(sock)
            healthy = all(dc["healthy"] for dc in st["datacenters"])
            if not healthy or st["counters"].get("check_local_errors_total", 0) >= 4:
                break
            time.sleep(0.6)  # 8 scrapes, up to 5 s: a busy machine runs fewer rounds
        assert all(dc["healthy"] for dc in st["datacenters"]), st["datacenters"]
        assert st["counters"].get("check_local_errors_total", 0) >= 4
        # A scrape waiting in the stats queue while no descriptor is left
        # must not spin the loop.
        wait_until(lambda: open_fds(gw.pid) == 256, what="descriptors exhausted again")
        pending = socket.create_connection(("127.0.0.1", sp))
        assert accept_queue(sp) == 1
        t0 = cpu_seconds(gw.pid)
        time.sleep(1.5)
        assert cpu_seconds(gw.pid) - t0 < 0.3
        pending.close()
    finally:
        for s in idle + scrapes:
            s.close()
    assert http_get(port, "/", timeout=5)[0] == 200
    st = stats(sp)
    assert all(dc["healthy"] for dc in st["datacenters"])
    gw.wait_output("skipped: Too many open files")  # the log is flushed by the loop


def test_max_connections_defaults_below_the_descriptor_limit(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    gw = nofile_gateway(env, f"log info;\nstats 127.0.0.1:{sp};\n"
                             f"datacenter ams {{ server {a.addr}; {CHECK} }}\n"
                             f"listener web {{ listen 127.0.0.1:{port}; }}\n", 256, [port, sp])
    wait_until(lambda: dc_state(sp, "ams")["healthy"], what="ams up")
    # (256 descriptors - 64 kept - 1 server) / 2
    limit = 95
    idle = connect_many(port, 200)
    result = {}
    late = threading.Thread(target=lambda: result.update(r=http_get(port, "/late", timeout=10)))
    try:
        wait_until(lambda: stats(sp)["counters"]["max_connections_hits_total"] >= 1,
                   what="the default limit reached")
        st = stats(sp)
        assert st["counters"]["connections_active"] == limit
        assert st["counters"].get("check_local_errors_total", 0) == 0
        assert dc_state(sp, "ams")["healthy"]
        late.start()
        t0 = cpu_seconds(gw.pid)
        time.sleep(1)
        assert late.is_alive()  # waiting in the accept queue, not refused
        assert cpu_seconds(gw.pid) - t0 < 0.3
    finally:
        for s in idle:
            s.close()
    late.join(10)
    assert result["r"][0] == 200
    gw.wait_output(f"take up to {limit} connections each (256 descriptors)")


# ---- a Redis that answers garbage, or nothing ----


def resp_commands(buf):
    """Splits complete RESP commands (arrays of bulk strings) off BUF:
    returns ([[arg, ...], ...], rest)."""
    cmds = []
    while True:
        args = []
        try:
            end = buf.index(b"\r\n")
            pos = end + 2
            for _ in range(int(buf[1:end])):
                end = buf.index(b"\r\n", pos)
                size = int(buf[pos + 1:end])
                if len(buf) < end + 2 + size + 2:
                    raise ValueError
                args.append(buf[end + 2:end + 2 + size])
                pos = end + 2 + size + 2
        except ValueError:
            return cmds, buf
        cmds.append(args)
        buf = buf[pos:]


class FakeRedis:
    """A server on a Redis port that is not quite Redis: ANSWER(command)
    gives the bytes to send back for each command (None: nothing). Keeps the
    times of the data connections it accepts (a gateway's subscriber
    connection, which it opens once a data connection is ready, starts with
    SUBSCRIBE and is not counted)."""

    def __init__(self, answer):
        self.answer = answer
        self.port = free_port()
        self.accepted = []
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(64)
        self.conns = {}
        self.opened = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            self.loop()
        finally:
            for s in list(self.conns) + [self.lsock]:
                s.close()

    def loop(self):
        while not self.done.is_set():
            ready, _, _ = select.select([self.lsock] + list(self.conns), [], [], 0.1)
            for s in ready:
                if s is self.lsock:
                    c, _ = self.lsock.accept()
                    self.opened[c] = time.time()
                    self.conns[c] = b""
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    del self.conns[s]
                    s.close()
                    continue
                cmds, self.conns[s] = resp_commands(self.conns[s] + data)
                if cmds and s in self.opened:
                    t = self.opened.pop(s)
                    if cmds[0][0].upper() != b"SUBSCRIBE":
                        self.accepted.append(t)
                out = b"".join(self.answer(c) or b"" for c in cmds)
                if out:
                    s.sendall(out)

    def close(self):
        self.done.set()
        self.thread.join(5)


def garbage(cmd):
    return b"HTTP/1.1 400 Bad Request\r\n\r\n"


def silent(cmd):
    return None


def ok_to_everything(cmd):
    return b"+OK\r\n"


def handshake_then_silent(cmd):
    """Answers the handshake as Redis does, then never a script call."""
    name = b" ".join(cmd[:2]).upper()
    if name == b"SCRIPT LOAD":
        return b"$40\r\n" + b"0" * 40 + b"\r\n"
    if name == b"PING":
        return b"+PONG\r\n"
    return None


def redis_gateway(env, fake):
    a, b = env.dcsim("ams"), env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(f"log info;\nstats 127.0.0.1:{sp};\n"
                f"redis 127.0.0.1:{fake.port} {{ prefix eg:; timeout 50ms; }}\n"
                f"datacenter ams {{ server {a.addr}; {CHECK} }}\n"
                f"datacenter fra {{ server {b.addr}; {CHECK} }}\n"
                f"listener web {{ listen 127.0.0.1:{port}; session cookie sid; }}\n",
                wait=[port, sp])
    wait_until(lambda: dc_state(sp, "ams")["healthy"] and dc_state(sp, "fra")["healthy"],
               what="datacenters up")
    return port, sp


def session_answered(port, sid):
    """A session is answered without waiting for Redis, and stays where it
    went (the cache, or rendezvous hashing: the same answer either way)."""
    t0 = time.time()
    status, _, body = http_get(port, "/", {"Cookie": f"sid={sid}"}, timeout=3)
    assert status == 200 and time.time() - t0 < 1
    assert http_get(port, "/", {"Cookie": f"sid={sid}"})[2] == body


def assert_backoff(fake):
    """Dropped and tried again, each time after a longer wait."""
    gaps = [b - a for a, b in zip(fake.accepted, fake.accepted[1:])]
    assert gaps[-1] > 2 * gaps[0] and sum(gaps) > 0.5, gaps


@pytest.mark.parametrize("answer", [garbage, silent, ok_to_everything],
                         ids=lambda f: f.__name__)
def test_redis_answering_nonsense_is_down(env, answer):
    fake = FakeRedis(answer)
    try:
        port, sp = redis_gateway(env, fake)
        for i in range(20):
            session_answered(port, f"s{i}")
        st = stats(sp)["redis"]
        assert st["configured"] and not st["connected"]
        wait_until(lambda: len(fake.accepted) >= 5, timeout=10, what="reconnections")
        assert_backoff(fake)
        st = stats(sp)["redis"]
        assert not st["connected"] and st["reconnects_total"] >= 4
    finally:
        fake.close()


def test_redis_that_stalls_after_its_handshake_is_not_hammered(env):
    fake = FakeRedis(handshake_then_silent)
    try:
        port, sp = redis_gateway(env, fake)
        wait_until(lambda: stats(sp)["redis"]["connected"], what="handshake")
        # Every connection dies on the first script call: each is opened
        # after a longer wait than the one before.
        i = 0
        deadline = time.time() + 15
        while len(fake.accepted) < 5 and time.time() < deadline:
            session_answered(port, f"s{i}")
            i += 1
        assert_backoff(fake)
        assert stats(sp)["redis"]["timeouts_total"] >= 4
    finally:
        fake.close()
