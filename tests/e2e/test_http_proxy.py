"""http mode: keep-alive on both sides, pipelining, bodies, concurrency,
session keys and malformed requests."""

import asyncio
import hashlib
import os
import socket

from conftest import RawHTTP, free_port, http_get, stats, wait_until


def conf(port, sp, servers, extra="", dc_extra=""):
    srv = "".join(f" server {s};" for s in servers)
    return (f"stats 127.0.0.1:{sp};\ndatacenter ams {{{srv} {dc_extra} }}\n"
            f"listener web {{ listen 127.0.0.1:{port}; mode http; {extra} }}\n")


def test_keepalive_to_client_and_server(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])
    c = RawHTTP(port)
    for i in range(100):
        status, h, body = c.request(f"/k{i}")
        assert status == 200 and body == f"dc=ams\npath=/k{i}\n".encode()
    c.close()
    for i in range(50):
        assert http_get(port, f"/n{i}")[0] == 200
    st = stats(sp)
    assert st["counters"]["connections_total"] == 51   # 1 keep-alive + 50 one-shot
    assert st["counters"]["requests_total"] == 150
    server = st["datacenters"][0]["servers"][0]
    assert server["connections_total"] <= 2              # pooled keep-alive to dcsim


def test_idle_keepalive_connection_holds_no_buffer(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])
    c = RawHTTP(port)
    assert c.request("/")[0] == 200
    assert stats(sp)["counters"]["buffers_in_use"] == 0
    c.close()


def test_pipelined_requests_answered_in_order(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])
    c = RawHTTP(port)
    c.send(b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)))
    for i in range(5):
        status, _, body = c.response()
        assert status == 200 and body.endswith(b"path=/p%d\n" % i)
    c.close()


def test_large_bodies_intact(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])
    c = RawHTTP(port, timeout=30)
    data = os.urandom(5 * 1024 * 1024)
    status, _, body = c.request("/echo", method="POST", body=data)
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    # chunked upload, several chunks with extensions, then trailers
    chunks = [os.urandom(n) for n in (1, 1000, 70000, 3)]
    wire = b"".join(b"%x;ext=1\r\n" % len(ch) + ch + b"\r\n" for ch in chunks)
    wire += b"0\r\nX-Trailer: t\r\n\r\n"
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
    status, _, body = c.response()
    assert status == 200 and body == b"".join(chunks)
    # and the connection still works afterwards
    assert c.request("/after")[0] == 200
    c.close()


def test_large_download_intact(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])
    status, _, body = http_get(port, "/bytes/10000000", timeout=30)
    assert status == 200 and body == b"x" * 10000000


def test_head_and_http10(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])
    c = RawHTTP(port)
    status, h, body = c.request("/", method="HEAD")
    assert status == 200 and body == b"" and int(h["content-length"]) > 0
    assert c.request("/after-head")[0] == 200
    c.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /old HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    assert data.startswith(b"HTTP/1.") and data.endswith(b"path=/old\n")


def test_thousand_concurrent_clients(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])

    async def client(i):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        ok = 0
        for k in range(3):
            w.write(b"GET /c%d-%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, k))
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0]
                    .split(b":")[1])
            body = await r.readexactly(n)
            ok += head.startswith(b"HTTP/1.1 200") and body.endswith(b"/c%d-%d\n" % (i, k))
        w.close()
        return ok

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(1000))), 60)

    results = asyncio.run(main())
    assert sum(results) == 3000
    st = stats(sp)
    assert st["counters"]["client_errors_total"] == 0
    wait_until(lambda: stats(sp)["counters"]["connections_active"] == 0, what="all closed")


def test_session_keys_validated(env):
    a = env.dcsim("ams", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr], "session header X-Session;"), wait=[port])
    assert http_get(port, "/", {"X-Session": "user-1"})[0] == 200
    assert http_get(port, "/", {"X-Session": "k" * 256})[0] == 200
    assert http_get(port, "/too-long", {"X-Session": "k" * 257})[0] == 400
    c = RawHTTP(port)
    c.send(b"GET /non-ascii HTTP/1.1\r\nHost: x\r\nX-Session: caf\xc3\xa9\r\n\r\n")
    assert c.response()[0] == 400
    assert c.closed_by_peer()
    st = stats(sp)
    assert st["counters"]["bad_session_keys_total"] == 2
    log = a.output()
    assert "/too-long" not in log and "/non-ascii" not in log


def test_cookie_session_key(env):
    a = env.dcsim("ams")
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr], "session cookie sid;"), wait=[port])
    assert http_get(port, "/", {"Cookie": "a=1; sid=abc; b=2"})[0] == 200
    assert http_get(port, "/", {"Cookie": "sid=abc"})[0] == 200
    st = stats(sp)
    assert st["counters"]["affinity_misses_total"] == 1
    assert st["counters"]["affinity_hits_total"] == 1


def test_malformed_request_answered_400_and_never_forwarded(env):
    a = env.dcsim("ams", extra=["--log"])
    port, sp = free_port(), free_port()
    env.gateway(conf(port, sp, [a.addr]), wait=[port])
    c = RawHTTP(port)
    c.send(b"POST /smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    status, h, _ = c.response()
    assert status == 400 and h["connection"] == "close"
    assert c.closed_by_peer()
    assert "/smuggle" not in a.output()
