"""Safe replay on failover: what may be sent again to another server, and
what must not."""

import hashlib
import os
import signal
import socket
import threading
import time

from conftest import RawHTTP, free_port, http_get, stats, wait_until


def conf(port, sp, a, b, listener=""):
    return (f"stats 127.0.0.1:{sp};\n"
            f"datacenter ams {{ priority 1; server {a}; }}\n"
            f"datacenter fra {{ priority 2; server {b}; }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; retries 3; {listener} }}\n")


def request(port, method, path, headers=None, body=b"", timeout=10):
    c = RawHTTP(port, timeout=timeout)
    try:
        return c.request(path, method=method, headers=headers or {}, body=body)
    except (EOFError, ConnectionError) as e:
        return (None, {}, repr(e).encode())
    finally:
        c.close()


def in_flight(port, jobs):
    """Runs JOBS [(name, method, path, headers, body)] in parallel threads."""
    results, threads = {}, []
    for name, method, path, headers, body in jobs:
        t = threading.Thread(target=lambda n=name, m=method, p=path, h=headers, b=body:
                             results.__setitem__(n, request(port, m, p, h, b)))
        t.start()
        threads.append(t)
    return results, threads


def test_datacenter_killed_with_requests_in_flight(env):
    a = env.dcsim("ams", extra=["--log"])
    b = env.dcsim("fra", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, a.addr, b.addr), wait=[port])
    jobs = [(f"get{i}", "GET", f"/slow/800/get{i}", {}, b"") for i in range(5)]
    jobs += [(f"idem{i}", "POST", f"/slow/800/idem{i}", {"Idempotency-Key": f"k{i}"}, b"pay")
             for i in range(5)]
    jobs += [("plain", "POST", "/slow/800/plain", {}, b"pay once")]
    results, threads = in_flight(port, jobs)
    # Every request reached ams and waits for its slow answer.
    wait_until(lambda: stats(sp)["datacenters"][0]["servers"][0]["connections_active"] == 11,
               what="all requests at ams")
    a.stop(signal.SIGKILL)
    for t in threads:
        t.join(10)
    for i in range(5):
        assert results[f"get{i}"][0] == 200 and results[f"get{i}"][2].startswith(b"dc=fra")
        assert results[f"idem{i}"][0] == 200 and results[f"idem{i}"][2].startswith(b"dc=fra")
    # The plain POST reached ams: it is not sent again, the client is told.
    assert results["plain"][0] == 502
    assert "/slow/800/plain" not in b.output()
    assert stats(sp)["counters"]["retries_total"] >= 10


def test_post_that_never_reached_a_server_is_retried(env):
    """Connect failures are always retried: nothing was sent."""
    b = env.dcsim("fra", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, f"127.0.0.1:{free_port()}", b.addr), wait=[port])
    status, _, body = request(port, "POST", "/plain-post", body=b"data")
    assert status == 200 and body.startswith(b"dc=fra")
    assert b.output().count("/plain-post") == 1


def test_response_timeout_fails_over_idempotent_requests_only(env):
    a = env.dcsim("ams", extra=["--log"])
    b = env.dcsim("fra", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, a.addr, b.addr, "response_timeout 400ms;"), wait=[port])
    assert http_get(port, "/warm")[2].startswith(b"dc=ams")
    os.kill(a.pid, signal.SIGSTOP)  # blackholed: accepts, never answers
    try:
        t0 = time.time()
        status, _, body = request(port, "GET", "/timeout-get")
        assert status == 200 and body.startswith(b"dc=fra")
        assert 0.35 < time.time() - t0 < 3
        status, _, body = request(port, "POST", "/timeout-idem", {"Idempotency-Key": "x"}, b"1")
        assert status == 200 and body.startswith(b"dc=fra")
        status, _, _ = request(port, "POST", "/timeout-plain", body=b"1")
        assert status in (504, 200)
        if status == 200:
            # ams was marked down by the earlier timeouts: the POST went
            # straight to fra and was never sent to ams.
            assert "/timeout-plain" not in a.output()
    finally:
        os.kill(a.pid, signal.SIGCONT)


def test_plain_post_times_out_with_504(env):
    a = env.dcsim("ams", extra=["--log"])
    b = env.dcsim("fra", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, a.addr, b.addr, "response_timeout 400ms;"), wait=[port])
    status, _, _ = request(port, "POST", "/slow/3000/plain", body=b"1")
    assert status == 504
    assert "/slow/3000/plain" not in b.output()


class ResetOnce:
    """A server that reads a whole request and resets the connection without
    a word: the request reached it, then it died."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.got = b""
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        c, _ = self.sock.accept()
        c.settimeout(5)
        while True:
            d = c.recv(65536)
            if not d:
                break
            self.got += d
            if b"\r\n\r\n" in self.got:
                head, _, body = self.got.partition(b"\r\n\r\n")
                n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
                        [0].split(b":")[1])
                if len(body) >= n:
                    break
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        self.sock.close()


def test_large_idempotent_body_replayed_intact(env):
    bad = ResetOnce()
    b = env.dcsim("fra")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, f"127.0.0.1:{bad.port}", b.addr), wait=[port])
    data = os.urandom(50 * 1024)  # over one buffer, under replay_buffer (64k)
    status, _, body = request(port, "PUT", "/echo", body=data)
    assert status == 200
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert len(bad.got) > len(data)  # the first server had it all


def test_body_beyond_replay_buffer_is_not_replayed(env):
    bad = ResetOnce()
    b = env.dcsim("fra", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, f"127.0.0.1:{bad.port}", b.addr, "replay_buffer 32k;"),
                wait=[port])
    data = os.urandom(200 * 1024)
    status, _, _ = request(port, "PUT", "/echo-big", body=data)
    assert status == 502
    assert "/echo-big" not in b.output()
