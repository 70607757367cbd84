"""Answers the gateway cannot pass on, and slow endpoints: a "query of
death" must cost one server hit per request and mark nothing down (it
marked every datacenter down once), and a client sees a clean 502."""

import socket
import struct
import threading
import time

import pytest

from conftest import RawHTTP, dc_state, free_port, http_get, stats, wait_until

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

BAD = {
    "/dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "/obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "/bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "/huge-head": b"HTTP/1.1 200 OK\r\nSet-Cookie: " + b"a" * 70000 + b"\r\n"
                  b"Content-Length: 2\r\n\r\nok",
    "/many-headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150))
                     + b"Content-Length: 2\r\n\r\nok",
    "/endless-1xx": b"HTTP/1.1 100 Continue\r\n\r\n" * 50 + OK,
}

# A 103 with about 8 KB of Link headers, then a final head of about 9 KB, in
# one write: the second head starts in the middle of the buffer.
EARLY_HINTS = (b"HTTP/1.1 103 Early Hints\r\n" +
               b"".join(b"Link: </%s%02d.css>; rel=preload\r\n" % (b"s" * 70, i)
                        for i in range(80)) +
               b"\r\nHTTP/1.1 200 OK\r\n" +
               b"".join(b"X-Pad-%02d: %s\r\n" % (i, b"p" * 140) for i in range(60)) +
               b"Content-Length: 2\r\n\r\nok")


class FakeServer:
    """An HTTP server answering canned bytes by path; /slow answers after
    SLOW seconds; counts the requests it got (health checks apart)."""

    def __init__(self, name, slow=2.0):
        self.name, self.slow = name, slow
        self.hits = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                if path != "/health":
                    with self.lock:
                        self.hits.append(path)
                if path == "/slow":
                    time.sleep(self.slow)
                    c.sendall(OK)
                elif path == "/early-hints":
                    c.sendall(EARLY_HINTS)
                elif path == "/reset":  # as a server crashing on it would
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                else:
                    c.sendall(BAD.get(path, OK))
                    if path in BAD:
                        return
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture
def three(env):
    servers = [FakeServer(n) for n in ("ams", "fra", "lon")]
    port, sp = free_port(), free_port()
    dcs = "".join(f"datacenter {s.name} {{ priority {i + 1}; server {s.addr}; "
                  f"check http /health interval 100ms timeout 500ms rise 1 fall 2; "
                  f"passive fall 3 timeout 10s; }}\n" for i, s in enumerate(servers))
    env.gateway(f"""
stats 127.0.0.1:{sp};
{dcs}
listener web {{ listen 127.0.0.1:{port}; mode http; retries 2; response_timeout 300ms; }}
""", wait=[port])
    wait_until(lambda: all(d["healthy"] for d in stats(sp)["datacenters"]), what="all up")
    yield servers, port, sp
    for s in servers:
        s.stop()


def healthy(sp):
    return {d["name"]: d["healthy"] for d in stats(sp)["datacenters"]}


@pytest.mark.parametrize("path", sorted(BAD))
def test_a_query_of_death_costs_one_hit_and_marks_nothing_down(three, path):
    servers, port, sp = three
    for _ in range(3):
        status, _, _ = http_get(port, path)
        assert status == 502
    hits = sum(len(s.hits) for s in servers)
    assert hits == 3, [s.hits for s in servers]
    assert all(healthy(sp).values()), healthy(sp)
    assert stats(sp)["counters"]["invalid_responses_total"] == 3
    # The client's next request is served as usual.
    assert http_get(port, "/fine")[0] == 200


def test_a_request_that_resets_every_server_gets_502_once_the_checks_say_up(three):
    """Resets alone cannot tell servers killed at once from a request that
    crashes them: the request waits for the checks' verdict, without going
    out again, then gets its 502."""
    servers, port, sp = three
    t0 = time.time()
    status, _, _ = http_get(port, "/reset")
    took = time.time() - t0
    assert status == 502
    assert sum(len(s.hits) for s in servers) == 3, [s.hits for s in servers]
    assert 0.6 <= took < 3.0, took  # interval 100ms x fall 2 + timeout 500ms
    assert all(healthy(sp).values()), healthy(sp)
    assert http_get(port, "/fine")[0] == 200


def test_a_slow_endpoint_marks_no_checked_server_down(three):
    servers, port, sp = three
    for _ in range(3):
        status, _, _ = http_get(port, "/slow", timeout=10)
        assert status == 504
    hits = sum(len(s.hits) for s in servers)
    assert hits <= 9, hits
    assert all(healthy(sp).values()), healthy(sp)
    assert http_get(port, "/fine")[0] == 200


def test_early_hints_then_a_large_head_in_one_read(three):
    _, port, sp = three
    c = RawHTTP(port)
    c.send(b"GET /early-hints HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, _ = c.response()
    assert status == 103 and "link" in headers
    status, headers, body = c.response()
    assert status == 200 and body == b"ok" and "x-pad-59" in headers
    assert all(healthy(sp).values())
